"""Run every benchmark, one after the other, and write a summary table.

    python bench/run_all.py            # or: make bench
    python bench/run_all.py --skip serve

Runs bench_train.py (data build, M2FN training, SFT and GRPO for the tiny and small models),
bench_m2fn.py (M2FN scoring), bench_measure.py (creative measuring in threads, processes and
from the cache), bench_ingest.py (`data build` on a 50 M-row log under a memory limit, against
the same log summed into CTR cells), bench_serve.py (the engine, `/v1/select` and transformers on the
same pairs, with a freshly built `small` model) and bench_load.py (`/v1/select` under 8, 32 and
128 clients with the admission defaults, same model) and bench_batch.py (`select --pairs` on
1,000 pairs, killed and rerun, against `/v1/select` on the same pairs, tiny model), then writes
bench/results/summary.md and prints it. bench_rank.py (adaptive against full ranking) needs a
trained selector and runs on its own: `python bench/bench_rank.py --model runs/demo/grpo`. Each script keeps its own JSON in bench/results/. Run it on an otherwise idle machine: the
ratios inside each benchmark are measured side by side, but the absolute rates depend on what else
runs.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
BENCHES = ("train", "m2fn", "measure", "ingest", "serve", "load", "batch")


def run(script: str, *args: str) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    print(f"== {script} {' '.join(args)}", flush=True)
    t0 = time.perf_counter()
    subprocess.run(
        [sys.executable, str(ROOT / "bench" / script), *args], cwd=ROOT, env=env, check=True
    )
    print(f"== {script}: {time.perf_counter() - t0:.0f}s", flush=True)


def summary(results: Path) -> str:
    """One table of the headline figures of every result file present."""
    rows: list[str] = []

    def row(name: str, rate: str, note: str) -> None:
        rows.append(f"| {name} | {rate} | {note} |")

    def load(name: str) -> dict | None:
        path = results / f"{name}.json"
        return json.loads(path.read_text()) if path.exists() else None

    if t := load("train"):
        d = t["data_build"]
        row(
            "data build",
            f"{d['rows_per_s']:,.0f} log rows/s",
            f"{d['creatives']} creatives in {d['seconds']}s (OCR dominates)",
        )
        m = t["m2fn_train"]
        row("M2FN training", f"{m['samples_per_s']} samples/s", f"{m['steps']} steps")
        for key in sorted(k for k in t if k.startswith(("sft_", "grpo_"))):
            stage, preset = key.split("_", 1)
            unit = "completions/s" if stage == "grpo" else "pairs/s"
            r = t[key]
            row(
                f"{stage.upper()} {preset}",
                f"{r['samples_per_s']} {unit}",
                f"{r['steps']} steps in {r['seconds']}s",
            )
    if m := load("m2fn"):
        c = m["creatives_per_s"]
        row(
            "M2FN score, batched",
            f"{c['score_batched_cached_features']} creatives/s",
            f"x{m['ratios']['batched_over_one_at_a_time']} over one at a time",
        )
        row(
            "M2FN score, new creatives",
            f"{c['score_new_creatives_reading_colour_and_ocr']} creatives/s",
            "colour and OCR read now",
        )
    if s := load("serve"):
        r, q = s["results"], s["ratios"]
        how = f"{s['max_tokens']} tokens, {s['pairs']} new pairs x 2 orders"
        labels = {
            "engine_direct": f"vLLM engine, {s['concurrency']} pairs in flight",
            "engine_all_at_once": "vLLM engine, every pair at once",
            "api_select": f"/v1/select API, {s['concurrency']} clients",
            "api_select_m2fn": f"/v1/select API with M2FN CTRs, {s['concurrency']} clients",
        }
        for name, label in labels.items():
            if name in r:
                v = r[name]
                span = f" (range {v['pairs_per_s_min']:.1f}-{v['pairs_per_s_max']:.1f})"
                row(label, f"{v['pairs_per_s']:.1f} pairs/s", how + (span if "runs" in v else ""))
        for name in sorted(k for k in r if k.startswith("transformers")):
            row(
                f"transformers generate, batch {r[name]['batch_size']}",
                f"{r[name]['pairs_per_s']:.1f} pairs/s",
                how,
            )
        row("API / engine", f"{q['api_over_engine']:.2f}x", "same pairs in flight, one engine")
        if "api_m2fn_over_engine" in q:
            row(
                "API with M2FN / engine",
                f"{q['api_m2fn_over_engine']:.2f}x",
                "colour and OCR of each new creative",
            )
        row(
            "engine / transformers",
            f"{q['engine_over_transformers']:.2f}x",
            f"against {s['transformers_compared'].replace('_', ' ')}; every pair at once: "
            f"{q['engine_all_at_once_over_transformers']:.2f}x",
        )
    if ld := load("load"):
        for r in ld["rows"]:
            row(
                f"/v1/select, {r['clients']} clients",
                f"{r['answered']} answered, {r['refused']} refused",
                f"p95 {r['latency_p95_s']} s, peak {r['peak_rss_gib']} GiB; {r['limits']} "
                f"({r['max_concurrency']} running + {r['max_queue']} waiting)",
            )
    if b := load("batch"):
        row(
            "`select --pairs` batch",
            f"{b['batch']['pairs_per_s']} pairs/s",
            f"x{b['batch_over_server']} over /v1/select at {b['server']['clients']} clients; "
            f"killed and rerun: every row once {b['resume']['every_row_once']}",
        )
    if r := load("rank"):
        for t in r["table"]:
            row(
                f"rank N={t['n']}, adaptive / full",
                f"{t['adaptive_generations']:.0f} / {t['full_generations']:.0f} generations",
                f"tau(adaptive, full) {t['tau_adaptive_vs_full']}; vs true CTR "
                f"{t['adaptive_tau_truth']} / {t['full_tau_truth']}",
            )
    if ms := load("measure"):
        c = ms["creatives_per_second"]
        row(
            "creative measuring, threads / processes",
            f"{c['threads (before)']:.2f} / {c['processes']:.2f} creatives/s",
            f"{ms['n_images']} creatives, {ms['workers']} workers; cached "
            f"{c['processes, cached']:.1f} creatives/s",
        )
    if ig := load("ingest"):
        for name, r in ig["runs"].items():
            row(
                f"data build, {name}",
                f"{r['rows_per_s']:,} log rows/s",
                f"{r['rows_in']:,} rows in {r['seconds']} s, memory limit "
                f"{r['memory_limit'] or 'none'}, peak RSS {r['peak_rss_gib']} GiB, spill "
                f"{r['peak_spill_gib']} GiB",
            )
    lines = ["| benchmark | rate | note |", "|---|---|---|"]
    lines += rows
    return "\n".join(lines) + "\n"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--skip", nargs="*", default=[], choices=BENCHES, help="benchmarks to leave out"
    )
    ap.add_argument("--serve-pairs", type=int, default=128)
    args = ap.parse_args()

    t0 = time.perf_counter()
    if "train" not in args.skip:
        run("bench_train.py")
    if "m2fn" not in args.skip:
        run("bench_m2fn.py")
    if "measure" not in args.skip:
        run("bench_measure.py")
    if "ingest" not in args.skip:
        run("bench_ingest.py")
    if "serve" not in args.skip or "load" not in args.skip:
        with tempfile.TemporaryDirectory() as tmp:
            model = Path(tmp) / "small"
            subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "creative4u",
                    "model",
                    "init",
                    str(model),
                    "--preset",
                    "small",
                ],
                cwd=ROOT,
                env={**os.environ, "PYTHONPATH": str(ROOT)},
                check=True,
                capture_output=True,
            )
            if "serve" not in args.skip:
                run("bench_serve.py", "--model", str(model), "--pairs", str(args.serve_pairs))
            if "load" not in args.skip:
                run("bench_load.py", "--model", str(model))
    if "batch" not in args.skip:
        run("bench_batch.py")
    table = summary(RESULTS)
    (RESULTS / "summary.md").write_text(
        "# Benchmarks on this machine\n\nWritten by `python bench/run_all.py`; the figures come "
        "from the JSON files next to this one.\n\n" + table
    )
    print(f"\n{table}\nall benchmarks in {time.perf_counter() - t0:.0f}s; {RESULTS / 'summary.md'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
