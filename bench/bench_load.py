"""What the API's admission defaults answer, refuse and cost under load: 8, 32 and 128 clients.

One `creative4u serve` (its admission limits left to their engine-sized defaults, read back from
`/health`) gets `--requests` `/v1/select` calls from N concurrent clients, each client sending its
next request as soon as the last one returned; a 429 counts as refused and is not retried (the
client would back off). Reported per N: answered, refused, other errors, p50/p95 latency of the
answered requests, throughput, and the peak resident memory of the server with its engine
process, sampled every 0.2 s. The same server serves every N, one after the other; a second
server with fixed limits (`--compare-limits`, by default the 4 running + 16 waiting served before
the limits were sized from the engine) runs the same load right after, so the rows compare like
with like.

    python bench/bench_load.py --model models/small-base --requests 200 --max-tokens 64

Without --model a tiny random model is built in a temporary folder (a smoke run). Results go to
bench/results/load.json and bench/results/load.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import random
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.bench_serve import QUERY, TITLE, make_creative  # noqa: E402
from creative4u.images import to_data_url  # noqa: E402


class PeakMemory:
    """Peak RSS of a process and all its children, sampled in a background thread."""

    def __init__(self, pid: int, every_s: float = 0.2):
        import psutil

        self.proc, self.every_s, self.peak = psutil.Process(pid), every_s, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _rss(self) -> int:
        import psutil

        total = 0
        try:
            children = self.proc.children(recursive=True)
        except psutil.Error:  # the process has exited
            children = []
        for p in [self.proc, *children]:
            try:
                total += p.memory_info().rss
            except psutil.Error:
                pass
        return total

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self._rss())
            self._stop.wait(self.every_s)

    def __enter__(self) -> PeakMemory:
        self.peak = self._rss()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


async def load(url: str, bodies: list[dict[str, Any]], clients: int) -> dict[str, Any]:
    """`clients` workers share the list of bodies; each sends its next one when the last returned."""
    queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    for b in bodies:
        queue.put_nowait(b)
    latencies: list[float] = []
    counts = {"answered": 0, "refused": 0, "errors": 0}
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(timeout=1800, limits=limits) as client:

        async def worker() -> None:
            while not queue.empty():
                body = queue.get_nowait()
                t0 = time.perf_counter()
                try:
                    r = await client.post(url, json=body)
                except httpx.HTTPError:
                    counts["errors"] += 1
                    continue
                if r.status_code == 200:
                    counts["answered"] += 1
                    latencies.append(time.perf_counter() - t0)
                elif r.status_code == 429:
                    counts["refused"] += 1
                else:
                    counts["errors"] += 1

        t0 = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(clients)))
        seconds = time.perf_counter() - t0
    latencies.sort()

    def pct(q: float) -> float | None:
        return (
            round(latencies[min(len(latencies) - 1, int(q * len(latencies)))], 2)
            if latencies
            else None
        )

    return {
        **counts,
        "seconds": round(seconds, 1),
        "answered_per_s": round(counts["answered"] / seconds, 2),
        "latency_p50_s": pct(0.5),
        "latency_p95_s": pct(0.95),
    }


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--model", default=None, help="model folder (default: a tiny random model)")
    ap.add_argument("--requests", type=int, default=200, help="requests per client count")
    ap.add_argument("--clients", default="8,32,128")
    ap.add_argument("--max-tokens", type=int, default=64)
    ap.add_argument(
        "--compare-limits",
        default="4,16",
        help="also run a server with these explicit CONCURRENCY,QUEUE limits ('' to skip; "
        "default: the fixed limits served before admission was sized from the engine)",
    )
    ap.add_argument("--out", default=str(ROOT / "bench" / "results"))
    args = ap.parse_args()

    from serve.launch import ServerProcess, free_port, serve_command

    tmp = Path(tempfile.mkdtemp(prefix="bench-load-"))
    model = args.model
    if model is None:
        from creative4u.model_factory import build

        model = str(build(tmp / "tiny", preset="tiny", seed=0))
    rng = random.Random(0)
    creatives = [to_data_url(make_creative(rng)) for _ in range(16)]
    bodies = [
        {
            "creatives": rng.sample(creatives, 2),
            "query": QUERY,
            "title": TITLE,
            "options": {"max_tokens": args.max_tokens},
        }
        for _ in range(args.requests)
    ]
    configs: list[tuple[str, list[str]]] = [("engine-sized defaults", [])]
    if args.compare_limits:
        c, q = args.compare_limits.split(",")
        configs.append((f"fixed {c} + {q}", ["--max-concurrency", c, "--max-queue", q]))
    rows, health = [], {}
    for label, extra in configs:
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        cmd = serve_command(
            model, port, "--max-tokens", str(args.max_tokens), "--max-model-len", "2048",
            "--no-probe", "--log-level", "warning", *extra,
        )  # fmt: skip
        log = tmp / f"server-{len(rows)}.log"
        env = {"VLLM_CPU_KVCACHE_SPACE": "1"}
        with ServerProcess(cmd, f"{base}/health", log, env=env, cwd=ROOT) as server:
            h = httpx.get(f"{base}/health").json()
            health = health or h
            asyncio.run(load(f"{base}/v1/select", bodies[:4], 2))  # warm-up
            for n in [int(c) for c in args.clients.split(",")]:
                with PeakMemory(server.proc.pid) as mem:
                    row = asyncio.run(load(f"{base}/v1/select", bodies, n))
                row = {
                    "limits": label,
                    "max_concurrency": h["admission"]["max_concurrency"],
                    "max_queue": h["admission"]["max_queue"],
                    "clients": n,
                    **row,
                    "peak_rss_gib": round(mem.peak / 2**30, 2),
                }
                print(json.dumps(row), flush=True)
                rows.append(row)
                if not server.alive:
                    raise RuntimeError(f"the server died under load:\n{server.log_tail()}")
    result = {
        "model": args.model or "tiny (random weights)",
        "machine": f"{platform.machine()}, {__import__('os').cpu_count()} cpus",
        "requests_per_row": args.requests,
        "max_tokens": args.max_tokens,
        "batch_capacity": health["batch_capacity"],
        "admission": health["admission"],
        "rows": rows,
    }
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "load.json").write_text(json.dumps(result, indent=2) + "\n")
    adm = health["admission"]
    lines = [
        f"# /v1/select under load ({result['model']}, {result['machine']})",
        "",
        f"Engine batch {health['batch_capacity']} sequences; admission defaults: "
        f"{adm['max_concurrency']} requests at once, {adm['max_queue']} waiting. "
        f"{args.requests} requests per row, {args.max_tokens} tokens per order, no retries.",
        "",
        "| limits (running + waiting) | clients | answered | refused (429) | errors | p50 s | "
        "p95 s | answered/s | peak RSS GiB |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['limits']}: {r['max_concurrency']} + {r['max_queue']} | "
            f"{r['clients']} | {r['answered']} | {r['refused']} | {r['errors']} | "
            f"{r['latency_p50_s']} | {r['latency_p95_s']} | {r['answered_per_s']} | {r['peak_rss_gib']} |"
        )
    (out / "load.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
