"""Click-log ingestion at warehouse scale: `data build` on a generated log of 50 million rows
under a DuckDB memory limit, against the same log pre-aggregated into CTR cells, side by side.

The log is a CreativeSim world's click log with every cell spread over K partitions (impressions
and clicks split K ways), each row with a timestamp and a user id (columns outside the contract,
which the build carries into the quarantine and otherwise ignores), in time order within each
file as a real log is, plus one broken row per million: so its sums are exactly the world's, and
the three builds below must write the same pairs and the same impression table.

1. reference: `data build` on the world's own log (115,200 rows by default), after an untimed
   first build has filled the feature cache: no build below measures an image, so they time the
   log and the fixed cost (pairs, dataset, baseline) alone;
2. raw: `data build` on the 50 M-row log (a folder of parquet files) with `--memory-limit`, and
   again under `--tight-limit`;
3. cells: the log summed by `data warehouse-sql` (run on DuckDB here, as any warehouse would run
   it), then `data build` on the cells.

Each build runs as `creative4u data build` in its own process; reported: wall seconds, log rows
per second (end to end, and with the reference build's fixed cost taken off), the peak resident
memory of the process tree, and the peak size of DuckDB's spill folder.

    python bench/bench_ingest.py                       # 50 M rows, --memory-limit 2GB
    python bench/bench_ingest.py --rows 5000000 --memory-limit 1GB

Writes bench/results/ingest.json and bench/results/ingest.md; the generated log stays in
--work (bench/runs/ingest) for reruns.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
RESULTS = Path(__file__).parent / "results"
SECONDS = 30 * 86400  # the generated log spans 30 days

from bench.bench_load import PeakMemory  # noqa: E402


def folder_bytes(path: Path) -> int:
    total = 0
    for p in path.rglob("*"):
        try:
            total += p.stat().st_size if p.is_file() else 0
        except OSError:  # a spill file removed while we looked
            pass
    return total


class PeakSpill:
    """Peak bytes under OUT/.build-*/spill (DuckDB's temp_directory), sampled every 0.5 s."""

    def __init__(self, out: Path):
        self.out, self.peak = out, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.5):
            now = sum(folder_bytes(d) for d in self.out.glob(".build-*/spill"))
            self.peak = max(self.peak, now)

    def __enter__(self) -> PeakSpill:
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self._thread.join()


def world(work: Path, given: str | None) -> Path:
    if given:
        return Path(given)
    w = work / "world"
    if not (w / "logs.parquet").is_file():
        subprocess.run([sys.executable, "-m", "creative4u", "data", "simulate", str(w), "--force"],
                       check=True, cwd=ROOT)  # fmt: skip
    return w


def generate(w: Path, raw: Path, rows: int, files: int, wide: bool = False) -> dict[str, Any]:
    """Spread the world's log over K partitions (and add one broken row per million) into
    `files` parquet files; skipped when a log of that size is already there.

    `wide` moves partition p's rows to hour (hour + p) mod 24: the same pairs (they sum over
    context) but up to 24 times the impression table's cells, so its GROUP BY and ORDER BY
    outgrow a tight memory limit and DuckDB has to spill."""
    import duckdb

    stamp = raw / "generated.json"
    made = json.loads(stamp.read_text()) if stamp.is_file() else {}
    if made.get("version") == 2 and made.get("wide", False) == wide and made["rows"] >= rows:
        return made
    shutil.rmtree(raw, ignore_errors=True)
    raw.mkdir(parents=True)
    con = duckdb.connect()
    con.execute("SET preserve_insertion_order = false")
    base = con.execute(f"SELECT count(*) FROM '{w / 'logs.parquet'}'").fetchone()[0]
    k = -(-rows // base)
    t0 = time.perf_counter()
    per_file = -(-k // files)
    hour = ", ((hour + p % 24) % 24)::INT AS hour" if wide else ""
    for f in range(files):
        lo, hi = f * per_file, min(k, (f + 1) * per_file)
        if lo >= hi:
            break
        con.execute(
            f"COPY (SELECT l.* REPLACE ("
            f"  impressions // {k} + (p < impressions % {k})::INT AS impressions,"
            f"  clicks // {k} + (p < clicks % {k})::INT AS clicks{hour}),"
            f"  TIMESTAMP '2026-11-01' + to_seconds((hash(p, creative_id, query, impressions, clicks) % {SECONDS})::BIGINT) AS ts,"
            f"  (hash(p, creative_id, query, impressions, clicks, 1) % 100000000)::BIGINT AS user_id"
            f" FROM '{w / 'logs.parquet'}' l, range({lo}, {hi}) t(p) ORDER BY ts)"
            f" TO '{raw / f'part-{f:03d}.parquet'}' (FORMAT parquet)"
        )
    broken = max(1, base * k // 1_000_000)
    con.execute(
        f"COPY (SELECT * REPLACE (impressions + 1 AS clicks), TIMESTAMP '2026-11-15' AS ts, "
        f"0::BIGINT AS user_id FROM '{w / 'logs.parquet'}' USING SAMPLE {broken} ROWS "
        f"(reservoir, 7)) TO '{raw / 'part-broken.parquet'}' (FORMAT parquet)"
    )
    info = {
        "rows": base * k + broken,
        "partitions": k,
        "broken_rows": broken,
        "world_rows": base,
        "bytes": folder_bytes(raw),
        "seconds": round(time.perf_counter() - t0, 1),
        "version": 2,
        "wide": wide,
    }
    stamp.write_text(json.dumps(info, indent=2) + "\n")
    return info


def warehouse_cells(raw: Path, cells: Path) -> dict[str, Any]:
    import duckdb
    import pyarrow.parquet as pq

    from creative4u.schema import LOG_CONTEXT
    from data.warehouse import ctr_cells_sql, valid_row_sql

    names = pq.read_schema(next(raw.glob("part-*.parquet"))).names
    context = [c for c in LOG_CONTEXT if c in names]
    con = duckdb.connect()
    con.execute(f"CREATE VIEW click_log AS SELECT * FROM read_parquet('{raw}/part-*.parquet')")
    t0 = time.perf_counter()
    con.execute(f"COPY ({ctr_cells_sql(context)}) TO '{cells}' (FORMAT parquet)")
    left_out = con.execute(
        f"SELECT count(*) FROM click_log WHERE NOT ({valid_row_sql()})"
    ).fetchone()
    return {"seconds": round(time.perf_counter() - t0, 1), "rows_left_out": int(left_out[0])}


def build(w: Path, logs: Path, out: Path, cache: Path, memory_limit: str | None) -> dict[str, Any]:
    cmd = [sys.executable, "-m", "creative4u", "data", "build", "--logs", str(logs),
           "--images", str(w / "images"), "--out", str(out), "--truth", str(w / "truth.parquet"),
           "--no-ocr", "--feature-cache", str(cache), "--force", "--no-resume"]  # fmt: skip
    if memory_limit:
        cmd += ["--memory-limit", memory_limit]
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    log = out.parent / f"{out.name}.log"
    t0 = time.perf_counter()
    with log.open("w") as fh:
        proc = subprocess.Popen(cmd, cwd=ROOT, stdout=fh, stderr=subprocess.STDOUT)
        with PeakMemory(proc.pid) as mem, PeakSpill(out) as spill:
            rc = proc.wait()
    wall = time.perf_counter() - t0
    if rc != 0:
        raise SystemExit(f"data build failed ({rc}); see {log}")
    card = json.loads((out / "card.json").read_text())
    return {
        "seconds": round(wall, 1),
        "rows_in": card["rows"]["in"],
        "rows_quarantined": card["rows"]["quarantined"],
        "impression_cells": card["impressions"]["rows"],
        "peak_rss_gib": round(mem.peak / 2**30, 2),
        "peak_spill_gib": round(spill.peak / 2**30, 2),
        "memory_limit": memory_limit,
    }


def pairs_frame(d: Path):
    import pandas as pd
    from datasets import load_from_disk

    cols = ["pair_id", "creative_a", "creative_b", "label", "ctr_a", "ctr_b", "impressions_a",
            "impressions_b", "rationale"]  # fmt: skip
    ds = load_from_disk(str(d))
    return (
        pd.concat([ds[s].select_columns(cols).to_pandas().assign(split=s) for s in ds])
        .sort_values("pair_id")
        .reset_index(drop=True)
    )


def same_dataset(a: Path, b: Path) -> bool:
    """The same CreativePair splits and the same impression table, row for row."""
    import pandas as pd

    imps = [pd.read_parquet(d / "impressions.parquet") for d in (a, b)]
    return pairs_frame(a).equals(pairs_frame(b)) and imps[0].equals(imps[1])


def same_pairs_and_sums(wide: Path, ref: Path) -> bool:
    """The wide log's build: the same pairs, and its impression table (more cells) sums to the
    reference's per creative and split."""
    import pandas as pd

    keys = ["creative_id", "split"]
    sums = [
        pd.read_parquet(d / "impressions.parquet")
        .groupby(keys)[["impressions", "clicks"]]
        .sum()
        .sort_index()
        for d in (wide, ref)
    ]
    return pairs_frame(wide).equals(pairs_frame(ref)) and sums[0].equals(sums[1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=50_000_000)
    ap.add_argument("--memory-limit", default="2GB")
    ap.add_argument(
        "--tight-limit", default="512MB", help="a second raw-log build under this limit ('' skips)"
    )
    ap.add_argument("--files", type=int, default=10, help="parquet files the log is written in")
    ap.add_argument(
        "--no-wide", action="store_true", help="skip the wide log (24x the impression cells)"
    )
    ap.add_argument("--world", default=None, help="a CreativeSim world (default: simulated)")
    ap.add_argument("--work", default=str(ROOT / "bench" / "runs" / "ingest"))
    args = ap.parse_args()

    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    w = world(work, args.world)
    raw, cells, cache = work / "log", work / "cells.parquet", work / "features"
    gen = generate(w, raw, args.rows, args.files)
    print(
        f"log: {gen['rows']:,} rows in {args.files} files ({gen['bytes'] / 2**30:.2f} GiB)",
        flush=True,
    )

    runs: dict[str, dict[str, Any]] = {}
    if not cache.is_dir():  # measure the creatives once, untimed: every build below reads them
        build(w, w / "logs.parquet", work / "ds_ref", cache, None)
    runs["reference (the world's log)"] = build(w, w / "logs.parquet", work / "ds_ref", cache, None)
    runs["raw log"] = build(w, raw, work / "ds_raw", cache, args.memory_limit)
    if args.tight_limit:
        runs["raw log, tight limit"] = build(w, raw, work / "ds_tight", cache, args.tight_limit)
    wide = None
    if not args.no_wide:
        wide = generate(w, work / "log_wide", args.rows, args.files, wide=True)
        limit = args.tight_limit or args.memory_limit
        runs["wide log (24x the cells), tight limit"] = build(
            w, work / "log_wide", work / "ds_wide", cache, limit
        )
    wh = warehouse_cells(raw, cells)
    runs["warehouse cells"] = build(w, cells, work / "ds_cells", cache, args.memory_limit)
    runs["warehouse cells"]["warehouse_seconds"] = wh["seconds"]
    fixed = runs["reference (the world's log)"]["seconds"]
    for r in runs.values():
        r["rows_per_s"] = round(r["rows_in"] / r["seconds"])
    raw_run = runs["raw log"]
    raw_run["log_rows_per_s_beyond_fixed"] = round(
        raw_run["rows_in"] / max(1e-9, raw_run["seconds"] - fixed)
    )
    same = {
        "raw = reference": same_dataset(work / "ds_raw", work / "ds_ref"),
        **(
            {"tight = reference": same_dataset(work / "ds_tight", work / "ds_ref")}
            if args.tight_limit
            else {}
        ),
        "cells = reference": same_dataset(work / "ds_cells", work / "ds_ref"),
        **(
            {
                "wide: pairs = reference, sums per creative = reference": same_pairs_and_sums(
                    work / "ds_wide", work / "ds_ref"
                )
            }
            if not args.no_wide
            else {}
        ),
    }
    for name, r in runs.items():
        print(f"{name:>28}: {r['seconds']:7.1f} s, {r['rows_in']:>12,} rows, "
              f"{r['rows_per_s']:>10,} rows/s, peak RSS {r['peak_rss_gib']:.2f} GiB, "
              f"spill {r['peak_spill_gib']:.2f} GiB", flush=True)  # fmt: skip
    print(f"warehouse aggregation (DuckDB): {wh['seconds']} s, rows left out {wh['rows_left_out']}")
    print("same pairs and impression table:", same)

    out = {
        "log": gen,
        "wide_log": wide,
        "runs": runs,
        "warehouse": wh,
        "same_dataset": same,
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform()},
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "ingest.json").write_text(json.dumps(out, indent=2) + "\n")
    md = [
        "# Click-log ingestion at scale",
        "",
        f"Log: {gen['rows']:,} rows ({gen['world_rows']:,} world cells x {gen['partitions']} "
        f"partitions + {gen['broken_rows']} broken rows), {gen['bytes'] / 2**20:.0f} MiB of "
        f"parquet in {args.files} files; `data build --no-ocr`, features from the cache; "
        f"{os.cpu_count()} cores.",
        "",
        "| build | memory limit | seconds | rows in | rows/s | impression cells | peak RSS GiB "
        "| peak spill GiB |",
        "|---|---|---|---|---|---|---|---|",
        *[
            f"| {k} | {r['memory_limit'] or 'none'} | {r['seconds']} | {r['rows_in']:,} | "
            f"{r['rows_per_s']:,} | {r['impression_cells']:,} | {r['peak_rss_gib']} | "
            f"{r['peak_spill_gib']} |"
            for k, r in runs.items()
        ],
        "",
        f"- raw log, with the reference build's {fixed} s of fixed cost (pairs, dataset, "
        f"baseline) taken off: {raw_run['log_rows_per_s_beyond_fixed']:,} log rows/s",
        f"- the warehouse's aggregation (DuckDB standing in for one): {wh['seconds']} s; rows it "
        f"leaves out: {wh['rows_left_out']} (the raw build quarantined {raw_run['rows_quarantined']})",
        f"- same pairs and impression table: {same}",
    ]
    (RESULTS / "ingest.md").write_text("\n".join(md) + "\n")


if __name__ == "__main__":
    main()
