"""Batch jobs: thousands of pairs, or many products' creatives, through one offline engine.

`select_pairs` reads a table of pairs (CSV, JSONL or parquet: `image_a`, `image_b`, optional
`query`, `title`, `id`), `rank_groups` a table of creatives by `group` (or a folder with one
sub-folder per product). Both submit many requests at once, so vLLM's continuous batching keeps
the engine full, and append one JSON line per row (or group) as results come in:

- resumable: a rerun after a kill skips every id already in the output (a line the kill cut
  short is dropped first), so each row is answered exactly once;
- never fatal: a row whose image is missing or unreadable, or that the engine refuses, gets a
  line with `"ok": false` and the reason; the job goes on.

A `.parquet` output is written at the end from the JSON lines journal next to it.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from creative4u.errors import APIError
from creative4u.images import ImageError, load_image

logger = logging.getLogger("creative4u.batch")

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif")


@dataclass
class BatchReport:
    rows: int
    done_before: int
    answered: int
    failed: int
    seconds: float
    out: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def read_table(path: str | Path) -> list[dict[str, Any]]:
    """Rows of a CSV, JSONL or parquet file, as dicts (missing cells become None)."""
    import pandas as pd

    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"input file not found: {p}")
    suffix = p.suffix.lower()
    if suffix == ".csv":
        df = pd.read_csv(p, dtype=str, keep_default_na=False)
    elif suffix in (".jsonl", ".ndjson"):
        df = pd.read_json(p, lines=True, dtype=False)
    elif suffix == ".parquet":
        df = pd.read_parquet(p)
    else:
        raise ValueError(f"{p}: expected a .csv, .jsonl or .parquet file, got {suffix or 'none'}")
    df = df.astype(object).where(df.notna(), None)
    return df.to_dict("records")


def journal_path(out: Path) -> Path:
    return out.with_name(out.name + ".jsonl") if out.suffix == ".parquet" else out


def done_ids(journal: Path, key: str = "id") -> set[str]:
    """Ids already in the journal; a last line a kill cut short is removed from the file."""
    if not journal.is_file():
        return set()
    raw = journal.read_bytes()
    keep = raw[: raw.rfind(b"\n") + 1]
    if len(keep) != len(raw):
        journal.write_bytes(keep)  # the torn last line: its row is answered again
    ids = set()
    for line in keep.decode().splitlines():
        if line.strip():
            rec = json.loads(line)
            ids.add(str(rec.get("key", rec[key])))
    return ids


def _resolve_image(value: Any, root: Path) -> Any:
    """A path relative to the input file's folder (or absolute), or a data URL as given."""
    if value is None or (isinstance(value, str) and not value.strip()):
        raise ImageError("no image given")
    if isinstance(value, str) and value.startswith("data:"):
        return value
    p = Path(str(value))
    return p if p.is_absolute() else root / p


def _load(value: Any, root: Path) -> Any:
    return load_image(_resolve_image(value, root))


def pair_input(selector: Any, row: dict[str, Any], root: Path) -> Any:
    """A table row -> the selector's input; an unusable image names its column."""
    from creative4u.selection import PairInput

    images = []
    for col in ("image_a", "image_b"):
        try:
            images.append(selector.prepare(_load(row.get(col), root)))
        except ImageError as e:
            raise ImageError(f"{col}: {e}") from e
    return PairInput(*images, str(row.get("query") or ""), str(row.get("title") or ""))


async def _judge(selector: Any, items: list[Any], options: Any) -> list[Any]:
    """Selections for `items` in one engine batch; when the engine refuses the batch, each
    item alone, so one bad row costs only its own line (its reason in place of a result)."""
    if not items:
        return []
    try:
        return [selector.selection(o) for o in await selector.compare_many(items, options)]
    except APIError:
        if len(items) == 1:
            raise
    out: list[Any] = []
    for it in items:
        try:
            out += await _judge(selector, [it], options)
        except APIError as e:
            out.append(f"the engine refused this pair: {e.message}")
    return out


def finish_parquet(out: Path) -> None:
    """The JSON lines journal as a parquet table (nested fields as JSON text)."""
    import pandas as pd

    journal = journal_path(out)
    rows = [json.loads(x) for x in journal.read_text().splitlines() if x.strip()]
    flat = [
        {k: json.dumps(v) if isinstance(v, (dict, list)) else v for k, v in r.items()} for r in rows
    ]
    pd.DataFrame(flat).to_parquet(out, index=False)


async def select_pairs(
    selector: Any,
    rows: Sequence[dict[str, Any]],
    out: Path,
    *,
    root: Path,
    options: Any = None,
    chunk: int = 128,
    progress: bool = True,
) -> BatchReport:
    """Every row of `rows` through `selector` (both orders), appended to `out` as it comes."""
    import time

    from tqdm import tqdm

    t0 = time.time()
    journal = journal_path(out)
    journal.parent.mkdir(parents=True, exist_ok=True)
    seen = done_ids(journal)
    ids = [
        str(r.get("id")) if r.get("id") not in (None, "") else f"row-{i}"
        for i, r in enumerate(rows)
    ]
    # a repeated id is a bad row of its own, keyed by its row so a rerun knows it is done
    keys, first_row = [], {}
    for i, rid in enumerate(ids):
        keys.append(rid if first_row.setdefault(rid, i) == i else f"{rid}@row{i}")
    todo = [i for i, k in enumerate(keys) if k not in seen]
    answered = failed = 0
    bar = tqdm(total=len(rows), initial=len(rows) - len(todo), unit="pair", disable=not progress)
    with journal.open("a") as fh:

        def write(rec: dict[str, Any]) -> None:
            nonlocal answered, failed
            fh.write(json.dumps(rec) + "\n")
            answered += rec["ok"]
            failed += not rec["ok"]

        for start in range(0, len(todo), chunk):
            idx = todo[start : start + chunk]
            items, ok_idx = [], []
            for i in idx:
                if keys[i] != ids[i]:
                    why = (
                        f"duplicate id {ids[i]!r} (first at row {first_row[ids[i]]}): not answered"
                    )
                    write({"id": ids[i], "key": keys[i], "ok": False, "error": why})
                    continue
                try:
                    items.append(pair_input(selector, rows[i], root))
                except ImageError as e:
                    write({"id": ids[i], "ok": False, "error": str(e)})
                    continue
                ok_idx.append(i)
            for i, sel in zip(ok_idx, await _judge(selector, items, options), strict=True):
                if isinstance(sel, str):
                    write({"id": ids[i], "ok": False, "error": sel})
                else:
                    write({"id": ids[i], "ok": True, **sel.model_dump()})
            fh.flush()
            bar.update(len(idx))
    bar.close()
    if out.suffix == ".parquet":
        finish_parquet(out)
    return BatchReport(
        len(rows), len(rows) - len(todo), answered, failed, round(time.time() - t0, 1), str(out)
    )


def read_groups(source: str | Path, query: str = "", title: str = "") -> list[dict[str, Any]]:
    """Groups to rank: `{"group", "query", "title", "images": [...], "ids": [...]}` each.

    A folder holds one sub-folder per product with its creatives (and optionally a
    `product.json` with its `query` and `title`); a table has one row per creative with
    `group`, `image`, and optional `id`, `query`, `title`."""
    src = Path(source)
    groups: dict[str, dict[str, Any]] = {}
    if src.is_dir():
        for folder in sorted(p for p in src.iterdir() if p.is_dir()):
            meta_file = folder / "product.json"
            meta = json.loads(meta_file.read_text()) if meta_file.is_file() else {}
            files = sorted(f for f in folder.iterdir() if f.suffix.lower() in IMAGE_SUFFIXES)
            groups[folder.name] = {
                "group": folder.name,
                "query": str(meta.get("query", query)),
                "title": str(meta.get("title", title)),
                "images": [str(f) for f in files],
                "ids": [f.name for f in files],
            }
        if not groups:
            raise ValueError(f"{src}: no sub-folders (one per product) to rank")
        return list(groups.values())
    for i, r in enumerate(read_table(src)):
        if r.get("group") in (None, ""):
            raise ValueError(f"{src}: row {i} has no 'group' (the product the creative belongs to)")
        g = groups.setdefault(
            str(r["group"]),
            {
                "group": str(r["group"]),
                "query": str(r.get("query") or query),
                "title": str(r.get("title") or title),
                "images": [],
                "ids": [],
            },
        )
        g["images"].append(r.get("image"))
        g["ids"].append(str(r.get("id") or r.get("image") or f"row-{i}"))
    return list(groups.values())


async def rank_groups(
    selector: Any,
    groups: Sequence[dict[str, Any]],
    out: Path,
    *,
    root: Path,
    options: Any = None,
    concurrency: int = 8,
    progress: bool = True,
) -> BatchReport:
    """Rank every group, `concurrency` at a time (their comparisons share the engine's batch),
    one JSON line per group as each finishes."""
    import time

    from tqdm import tqdm

    t0 = time.time()
    journal = journal_path(out)
    journal.parent.mkdir(parents=True, exist_ok=True)
    seen = done_ids(journal, key="group")
    todo = [g for g in groups if g["group"] not in seen]
    counts = {"ok": 0, "failed": 0}
    bar = tqdm(
        total=len(groups), initial=len(groups) - len(todo), unit="group", disable=not progress
    )
    gate = asyncio.Semaphore(concurrency)
    with journal.open("a") as fh:

        async def one(g: dict[str, Any]) -> None:
            async with gate:
                try:
                    images, problems = [], []
                    ids = []
                    for img, cid in zip(g["images"], g["ids"], strict=True):
                        try:
                            images.append(_load(img, root))
                            ids.append(cid)
                        except ImageError as e:
                            problems.append(f"{cid}: {e} (left out of the ranking)")
                    if len(images) < 2:
                        raise ValueError(
                            f"{len(images)} usable creatives; ranking needs at least 2"
                        )
                    ranking = await selector.rank(images, g["query"], g["title"], options, ids=ids)
                    rec = {"group": g["group"], "ok": True, **ranking.model_dump()}
                    rec["problems"] = problems + rec["problems"]
                except (ValueError, APIError) as e:
                    rec = {"group": g["group"], "ok": False, "error": getattr(e, "message", str(e))}
            fh.write(json.dumps(rec) + "\n")
            fh.flush()
            counts["ok" if rec["ok"] else "failed"] += 1
            bar.update(1)

        await asyncio.gather(*(one(g) for g in todo))
    bar.close()
    if out.suffix == ".parquet":
        finish_parquet(out)
    return BatchReport(
        len(groups),
        len(groups) - len(todo),
        counts["ok"],
        counts["failed"],
        round(time.time() - t0, 1),
        str(out),
    )
