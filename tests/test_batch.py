"""Batch jobs and the Python API on the tiny model: `creative4u select --pairs` killed half-way
and rerun answers every pair exactly once and lists the bad rows; `rank --groups` ranks a folder
of products; `Selector.from_pretrained` compares and ranks from a script."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from PIL import Image, ImageDraw

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[1]
COLOURS = [(205, 35, 45), (35, 85, 200), (40, 160, 70), (212, 175, 55), (120, 40, 160)]


def creatives(folder: Path, n: int, prefix: str = "c") -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for i in range(n):
        img = Image.new("RGB", (200 + 10 * i, 240), (240, 240, 236))
        ImageDraw.Draw(img).rectangle([30, 40, 150, 200 - 5 * i], fill=COLOURS[i % len(COLOURS)])
        out.append(folder / f"{prefix}{i}.png")
        img.save(out[-1])
    return out


def lines(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.read_text().splitlines() if x.strip()]


def test_batch_select_killed_and_rerun_answers_each_pair_once(
    tiny_model: Path, tmp_path: Path
) -> None:
    imgs = creatives(tmp_path / "images", 5)
    (tmp_path / "images" / "corrupt.png").write_bytes(imgs[0].read_bytes()[:60])
    rows = [
        {
            "id": f"p{i}",
            "image_a": f"images/{imgs[i % 5].name}",
            "image_b": f"images/{imgs[(i + 1) % 5].name}",
            "query": "red dress",
            "title": "Nova red dress",
        }
        for i in range(24)
    ]
    rows.insert(5, {"id": "missing", "image_a": "images/nope.png", "image_b": rows[0]["image_b"]})
    rows.insert(
        9, {"id": "corrupt", "image_a": rows[0]["image_a"], "image_b": "images/corrupt.png"}
    )
    rows.append(dict(rows[2]))  # a repeated id
    pd.DataFrame(rows).to_csv(tmp_path / "pairs.csv", index=False)
    out = tmp_path / "out.jsonl"
    cmd = [
        sys.executable,
        "-m",
        "creative4u",
        "select",
        "--pairs",
        str(tmp_path / "pairs.csv"),
        "--model",
        str(tiny_model),
        "--max-model-len",
        "2048",
        "--max-tokens",
        "6",
        "--chunk",
        "4",
        "--out",
        str(out),
    ]
    env = {**os.environ, "VLLM_CPU_KVCACHE_SPACE": "1", "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        cmd,
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    deadline = time.time() + 600
    while time.time() < deadline and proc.poll() is None:
        if out.is_file() and len(lines(out)) >= 8:
            break
        time.sleep(0.2)
    assert proc.poll() is None, "the job ended before it could be killed"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    before = lines(out)
    assert 8 <= len(before) < len(rows)
    with out.open("a") as fh:
        fh.write('{"id": "p20", "ok": tr')  # a line the kill cut short

    res = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    assert res.returncode == 0, res.stderr[-3000:]
    report = json.loads(res.stdout.strip().splitlines()[-1])
    done = lines(out)
    ids = [d["id"] for d in done]
    assert len(ids) == len(rows)  # one line per input row, the repeated id's included
    assert sorted(set(ids)) == sorted({r["id"] for r in rows})
    assert report["done_before"] == len(before) and report["rows"] == len(rows)
    assert report["answered"] + report["failed"] == len(rows) - len(before)
    assert done[: len(before)] == before  # nothing answered before the kill was written again
    ok = [d for d in done if d["ok"]]
    assert len(ok) == 24 and all(d["winner"] in ("A", "B") for d in ok)
    assert len({d["id"] for d in ok}) == 24
    bad = {d["id"]: d["error"] for d in done if not d["ok"]}
    assert set(bad) == {"missing", "corrupt", "p2"}
    assert "image_a" in bad["missing"] and "not found" in bad["missing"]
    assert "image_b" in bad["corrupt"]
    assert "duplicate" in bad["p2"]


def test_rank_groups_folder_and_the_python_api(tiny_model: Path, tmp_path: Path) -> None:
    """A folder per product (with its query and title); one product with a broken creative,
    one with too few. Then the same model from a script: `Selector.compare` and `.rank`."""
    from creative4u import Selector, batch
    from creative4u.results import Ranking, Selection

    root = tmp_path / "products"
    creatives(root / "dress", 4)
    (root / "dress" / "product.json").write_text(
        json.dumps({"query": "red dress", "title": "Nova red dress"})
    )
    broken = creatives(root / "shoes", 3, "s")
    broken[0].write_bytes(broken[0].read_bytes()[:50])
    creatives(root / "lonely", 1, "l")
    groups = batch.read_groups(root)
    assert [g["group"] for g in groups] == ["dress", "lonely", "shoes"]
    assert groups[0]["query"] == "red dress" and len(groups[0]["images"]) == 4

    with Selector.from_pretrained(str(tiny_model), engine="transformers", max_tokens=6) as sel:
        import asyncio

        out = tmp_path / "ranks.parquet"
        report = asyncio.run(
            batch.rank_groups(sel.selector, groups, out, root=root, progress=False)
        )
        assert (report.answered, report.failed) == (2, 1)
        table = pd.read_parquet(out).set_index("group")
        assert not table.loc["lonely", "ok"] and "at least 2" in table.loc["lonely", "error"]
        shoes = json.loads(table.loc["shoes", "ranking"])
        assert len(shoes) == 2 and "s0.png" in table.loc["shoes", "problems"]
        assert len(json.loads(table.loc["dress", "ranking"])) == 4

        files = sorted((root / "dress").glob("*.png"))
        s = sel.compare(files[0], files[1], query="red dress", title="Nova red dress")
        assert isinstance(s, Selection) and s.winner in ("A", "B")
        assert [o.order for o in s.orders] == ["AB", "BA"] and not s.calibrated
        r = sel.rank(files, query="red dress", title="Nova red dress", ids=["w", "x", "y", "z"])
        assert isinstance(r, Ranking) and sorted(e.id for e in r.ranking) == ["w", "x", "y", "z"]
        assert r.pairs_compared == r.pairs_possible == 6 and r.generations == 12
