"""CreativeSim examples for the page, so a first visit shows the selector at work in one click.

The creatives are rendered by `creative4u data simulate` (a small, fixed-seed world) into a
cache folder on first use and reused afterwards; nothing binary lives in the repository. The
simulator is run as a command, as the demo runs it, so serving never imports the data stage.
Each example carries the simulator's true CTRs, so a visitor can check the model's verdict.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

log = logging.getLogger("creative4u.ui")

WORLD_ARGS = ["--products", "2", "--creatives", "4", "--queries", "2", "--seed", "7"]
IMAGE_SIZE = 320
VERSION = 1


@dataclass
class PairExample:
    image_a: str
    image_b: str
    query: str
    title: str
    true_ctr_a: float
    true_ctr_b: float


@dataclass
class RankExample:
    images: list[str]
    query: str
    title: str
    true_ctr: list[float]


@dataclass
class Examples:
    pairs: list[PairExample]
    rank: RankExample


def cache_root() -> Path:
    """`CREATIVE4U_CACHE_DIR`, else the XDG cache folder."""
    if os.environ.get("CREATIVE4U_CACHE_DIR"):
        return Path(os.environ["CREATIVE4U_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "creative4u"


def _simulate(out: Path) -> None:
    cmd = [sys.executable, "-m", "creative4u", "data", "simulate", str(out), *WORLD_ARGS]
    cmd += ["--image-size", str(IMAGE_SIZE), "--force"]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    if res.returncode != 0:
        raise RuntimeError(f"`{' '.join(cmd[2:])}` failed: {res.stderr.strip()[-500:]}")


def _pick(world: Path) -> Examples:
    """Per product and query, its best creative against its worst (true CTR), the winner on
    alternating sides; and one product's creatives to rank."""
    import pandas as pd

    creatives = pd.read_parquet(world / "creatives.parquet")
    truth = pd.read_parquet(world / "truth.parquet")
    title = dict(zip(creatives["product_id"], creatives["title"], strict=True))
    img = str((world / "images").resolve())
    pairs: list[PairExample] = []
    rank: RankExample | None = None
    for (pid, query), g in truth.groupby(["product_id", "query"], sort=True):
        g = g.sort_values("true_ctr", ascending=False)
        best, worst = g.iloc[0], g.iloc[-1]
        a, b = (best, worst) if len(pairs) % 2 == 0 else (worst, best)
        pairs.append(
            PairExample(
                f"{img}/{a.creative_id}.png",
                f"{img}/{b.creative_id}.png",
                str(query),
                title[pid],
                round(float(a.true_ctr), 5),
                round(float(b.true_ctr), 5),
            )
        )
        if rank is None:
            g = g.sort_values("creative_id")
            rank = RankExample(
                [f"{img}/{c}.png" for c in g["creative_id"]],
                str(query),
                title[pid],
                [round(float(x), 5) for x in g["true_ctr"]],
            )
    assert rank is not None
    return Examples(pairs, rank)


def load_examples(root: Path | None = None) -> Examples:
    """The examples, simulated into the cache the first time (a few seconds)."""
    folder = (root or cache_root()) / f"ui-examples-v{VERSION}"
    index = folder / "examples.json"
    if not index.is_file():
        folder.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=".ui-examples-", dir=folder.parent))
        try:
            _simulate(tmp / "world")
            ex = _pick(tmp / "world")
            # paths point into tmp until the folder is moved into place: rewrite them
            text = json.dumps(asdict(ex), indent=2).replace(str(tmp.resolve()), str(folder))
            (tmp / "examples.json").write_text(text)
            try:
                tmp.rename(folder)
            except OSError:  # another process finished first: use its copy
                pass
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    raw = json.loads(index.read_text())
    return Examples(pairs=[PairExample(**p) for p in raw["pairs"]], rank=RankExample(**raw["rank"]))


def try_load_examples(root: Path | None = None) -> tuple[Examples | None, str | None]:
    """Examples, or None and why not: a page without examples still works."""
    try:
        return load_examples(root), None
    except Exception as e:  # the simulator is optional for serving
        log.warning("UI examples unavailable: %s", e)
        return None, f"Examples are unavailable here ({type(e).__name__}: {e})."
