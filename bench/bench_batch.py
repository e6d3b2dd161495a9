"""Batch selection: `creative4u select --pairs` against the server path, on the same pairs.

1,000 pairs of distinct synthetic creatives (plus bad rows: a missing file, a corrupt one, a
repeated id) in a CSV:

1. `creative4u select --pairs` is killed (SIGKILL) once 40 % of the rows are written, then rerun:
   every row must then have exactly one line (bad rows with their reason), and no line written
   before the kill may be written again;
2. the same job on a fresh output, uninterrupted: pairs/s inside the job (engine start excluded);
3. `creative4u serve` with the same model and generation length, the same pairs as `/v1/select`
   requests from `--clients` concurrent clients: pairs/s (server start excluded).

    python bench/bench_batch.py --model models/small-base --max-tokens 64

Without --model a tiny random model is built in a temporary folder. Results go to
bench/results/batch.json and bench/results/batch.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.bench_serve import QUERY, TITLE, make_creative, post_all  # noqa: E402
from creative4u.images import to_data_url  # noqa: E402

RESULTS = ROOT / "bench" / "results"
ENV = {**os.environ, "VLLM_CPU_KVCACHE_SPACE": "1", "PYTHONPATH": str(ROOT)}


def make_pairs(folder: Path, n_pairs: int, n_creatives: int, seed: int = 0) -> Path:
    rng = random.Random(seed)
    images = folder / "images"
    images.mkdir(parents=True)
    names = []
    for i in range(n_creatives):
        names.append(f"c{i:03d}.png")
        make_creative(rng).save(images / names[-1])
    (images / "corrupt.png").write_bytes((images / names[0]).read_bytes()[:64])
    rows = []
    for i in range(n_pairs):
        a, b = rng.sample(names, 2)
        rows.append(
            {"id": f"p{i:04d}", "image_a": f"images/{a}", "image_b": f"images/{b}", "query": QUERY}
        )
    for r in rows:
        r["title"] = TITLE
    rows.insert(10, {"id": "missing", "image_a": "images/none.png", "image_b": rows[0]["image_b"]})
    rows.insert(
        20, {"id": "corrupt", "image_a": "images/corrupt.png", "image_b": rows[0]["image_b"]}
    )
    rows.append(dict(rows[3]))
    pd.DataFrame(rows).to_csv(folder / "pairs.csv", index=False)
    return folder / "pairs.csv"


def lines(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        return []
    out = []
    for x in path.read_text().splitlines():
        try:
            out.append(json.loads(x))
        except json.JSONDecodeError:
            pass
    return out


def batch_cmd(model: str, pairs: Path, out: Path, max_tokens: int) -> list[str]:
    return [
        sys.executable,
        "-m",
        "creative4u",
        "select",
        "--pairs",
        str(pairs),
        "--model",
        model,
        "--max-tokens",
        str(max_tokens),
        "--max-model-len",
        "2048",
        "--out",
        str(out),
    ]


def killed_and_rerun(model: str, pairs: Path, out: Path, max_tokens: int) -> dict[str, Any]:
    n_rows = len(pd.read_csv(pairs))
    cmd = batch_cmd(model, pairs, out, max_tokens)
    proc = subprocess.Popen(
        cmd,
        cwd=ROOT,
        env=ENV,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    while proc.poll() is None and len(lines(out)) < 0.4 * n_rows:
        time.sleep(0.5)
    if proc.poll() is not None:
        raise SystemExit("the batch job ended before it could be killed")
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    before = lines(out)
    res = subprocess.run(cmd, cwd=ROOT, env=ENV, capture_output=True, text=True)
    if res.returncode != 0:
        raise SystemExit(f"rerun failed:\n{res.stderr[-3000:]}")
    after = lines(out)
    counts = Counter(r.get("key", r["id"]) for r in after)
    return {
        "rows": n_rows,
        "lines_before_kill": len(before),
        "lines_after_rerun": len(after),
        "every_row_once": len(after) == n_rows and max(counts.values()) == 1,
        "kept_lines_before_kill": after[: len(before)] == before,
        "answered": sum(r["ok"] for r in after),
        "bad_rows": {r.get("key", r["id"]): r["error"] for r in after if not r["ok"]},
    }


def batch_throughput(model: str, pairs: Path, out: Path, max_tokens: int) -> dict[str, Any]:
    t0 = time.perf_counter()
    res = subprocess.run(
        batch_cmd(model, pairs, out, max_tokens), cwd=ROOT, env=ENV, capture_output=True, text=True
    )
    if res.returncode != 0:
        raise SystemExit(f"batch failed:\n{res.stderr[-3000:]}")
    report = json.loads(res.stdout.strip().splitlines()[-1])
    return {
        **report,
        "wall_s_with_engine_start": round(time.perf_counter() - t0, 1),
        "pairs_per_s": round(report["answered"] / report["seconds"], 2),
    }


def server_throughput(
    model: str, pairs: Path, max_tokens: int, clients: int, log: Path
) -> dict[str, Any]:
    from serve.launch import ServerProcess, free_port, serve_command

    rows = [r for r in pd.read_csv(pairs).to_dict("records") if r["id"].startswith("p")]
    rows = list({r["id"]: r for r in rows}.values())
    cache: dict[str, str] = {}

    def url(rel: str) -> str:
        if rel not in cache:
            cache[rel] = to_data_url(pairs.parent / rel)
        return cache[rel]

    bodies = [
        {
            "creatives": [url(r["image_a"]), url(r["image_b"])],
            "query": r["query"],
            "title": r["title"],
            "options": {"max_tokens": max_tokens},
        }
        for r in rows
    ]
    port = free_port()
    args = serve_command(
        model,
        port,
        "--max-tokens",
        str(max_tokens),
        "--max-model-len",
        "2048",
        "--max-queue",
        str(len(bodies) + 8),
        "--no-ui",
        "--log-level",
        "warning",
    )
    base = f"http://127.0.0.1:{port}"
    with ServerProcess(args, f"{base}/health", log, env=ENV, cwd=ROOT):
        asyncio.run(post_all(f"{base}/v1/select", bodies[:4], clients))  # warm-up
        t0 = time.perf_counter()
        ok = len(asyncio.run(post_all(f"{base}/v1/select", bodies, clients)))
        seconds = time.perf_counter() - t0
    return {
        "pairs": len(bodies),
        "answered": ok,
        "clients": clients,
        "seconds": round(seconds, 1),
        "pairs_per_s": round(ok / seconds, 2),
    }


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default=None, help="model folder (default: build a tiny one)")
    p.add_argument("--pairs", type=int, default=1000)
    p.add_argument("--creatives", type=int, default=60)
    p.add_argument("--max-tokens", type=int, default=32)
    p.add_argument("--clients", type=int, default=64)
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        model = args.model
        if model is None:
            from creative4u.model_factory import build

            model = str(build(tmp_path / "tiny", preset="tiny", seed=0))
        pairs = make_pairs(tmp_path / "job", args.pairs, args.creatives)
        resume = killed_and_rerun(model, pairs, tmp_path / "killed.jsonl", args.max_tokens)
        batch = batch_throughput(model, pairs, tmp_path / "clean.jsonl", args.max_tokens)
        server = server_throughput(
            model, pairs, args.max_tokens, args.clients, tmp_path / "server.log"
        )
    result = {
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
        "model": args.model or "tiny (random weights)",
        "max_tokens": args.max_tokens,
        "resume": resume,
        "batch": batch,
        "server": server,
        "batch_over_server": round(batch["pairs_per_s"] / server["pairs_per_s"], 2),
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "batch.json").write_text(json.dumps(result, indent=2) + "\n")
    md = [
        "# Batch selection against the server path",
        "",
        f"{resume['rows']} rows ({args.pairs} pairs and 3 bad rows), model {result['model']}, "
        f"{args.max_tokens} tokens an order, {result['machine']}.",
        "",
        f"- killed at {resume['lines_before_kill']} lines and rerun: {resume['lines_after_rerun']} "
        f"lines, every row once: {resume['every_row_once']}, lines before the kill kept as they "
        f"were: {resume['kept_lines_before_kill']}; bad rows: "
        + "; ".join(f"{k}: {v}" for k, v in resume["bad_rows"].items()),
        "",
        "| path | pairs | seconds | pairs/s |",
        "|---|---|---|---|",
        f"| `creative4u select --pairs` (in-process vLLM) | {batch['answered']} | "
        f"{batch['seconds']} | {batch['pairs_per_s']} |",
        f"| `/v1/select`, {server['clients']} clients | {server['answered']} | "
        f"{server['seconds']} | {server['pairs_per_s']} |",
        "",
        f"Batch over server: {result['batch_over_server']}x.",
    ]
    (RESULTS / "batch.md").write_text("\n".join(md) + "\n")
    print("\n".join(md))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
