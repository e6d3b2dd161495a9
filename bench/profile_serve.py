"""Where the milliseconds of `/v1/select` go: one request, then a burst, on a real server.

The server (`creative4u serve`, in-process vLLM) times each stage of a selection request in its
own metrics (`creative4u_stage_seconds{stage}`: read, prepare, engine, probe, ctr, combine,
serialize); this script reads them before and after each phase. It also reads the CPU seconds
each process of the server's group spent (the API process, which also runs vLLM's input
processing; vLLM's scheduler; its model worker), and times the API's per-creative CPU work in
this process on the same creatives (base64, PNG decoding, resizing, the processor vLLM runs on
each image, JSON), so the table says which of them can matter next to the engine.

    python bench/profile_serve.py --model models/small-base --requests 64 --concurrency 32

Results go to bench/results/serve_profile.{json,md}.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import io
import json
import os
import random
import re
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from bench_serve import (  # noqa: E402
    make_creative,
    post_all,
    request_bodies,
    transformers_in_fresh_process,
)

from creative4u.images import to_data_url  # noqa: E402

STAGE_RE = re.compile(r'^creative4u_stage_seconds_(sum|count)\{stage="(\w+)"\} (\S+)$', re.M)
CLK_TCK = os.sysconf("SC_CLK_TCK")


def stages(metrics_text: str) -> dict[str, dict[str, float]]:
    out: dict[str, dict[str, float]] = {}
    for kind, stage, value in STAGE_RE.findall(metrics_text):
        out.setdefault(stage, {})[kind] = float(value)
    return out


def stage_delta(before: dict, after: dict) -> dict[str, dict[str, float]]:
    out = {}
    for stage, v in after.items():
        b = before.get(stage, {})
        n = v.get("count", 0) - b.get("count", 0)
        s = v.get("sum", 0) - b.get("sum", 0)
        if n:
            out[stage] = {"count": n, "total_s": s, "mean_ms": 1000 * s / n}
    return out


def group_cpu(pgid: int) -> dict[int, dict[str, Any]]:
    """CPU seconds (user + system) of every live process in the group, by pid."""
    out = {}
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()[:80]
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        if int(fields[2]) != pgid:  # field 5 of stat: the process group
            continue
        comm = stat[stat.index("(") + 1 : stat.rindex(")")]
        cpu = (int(fields[11]) + int(fields[12])) / CLK_TCK
        out[int(pid)] = {"name": comm, "cmd": cmd, "cpu_s": cpu}
    return out


def role(pid: int, info: dict[str, Any], main_pid: int) -> str:
    if pid == main_pid:
        return "API process (HTTP, images, vLLM input processing, output handling)"
    name = (info["name"] + " " + info["cmd"]).lower()
    if "enginecore" in name or "engine_core" in name:
        return "vLLM scheduler (EngineCore)"
    if "worker" in name:
        return "vLLM model worker"
    return f"other ({info['name']})"


def cpu_delta(before: dict, after: dict, main_pid: int) -> dict[str, float]:
    out: dict[str, float] = {}
    for pid, info in after.items():
        d = info["cpu_s"] - before.get(pid, {}).get("cpu_s", 0.0)
        r = role(pid, info, main_pid)
        out[r] = out.get(r, 0.0) + d
    return out


def per_creative_costs(model: str, creatives: list[Any], reps: int = 3) -> dict[str, float]:
    """Milliseconds per creative of the API's own CPU work, timed here on the same creatives."""
    from creative4u.images import fit_to_pixels, load_image, processor_pixel_bounds
    from creative4u.vlm import load_processor

    processor = load_processor(model)
    lo, hi, factor = processor_pixel_bounds(processor)
    urls = [to_data_url(c) for c in creatives]
    raw = [base64.b64decode(u.split(",", 1)[1]) for u in urls]
    decoded = [load_image(b, allow_paths=False) for b in raw]
    fitted = [fit_to_pixels(d, lo, hi, factor) for d in decoded]

    def timed(fn: Any, items: list[Any]) -> float:
        best = float("inf")
        for _ in range(reps):
            t0 = time.perf_counter()
            for x in items:
                fn(x)
            best = min(best, time.perf_counter() - t0)
        return 1000 * best / len(items)

    return {
        "base64 decode": timed(lambda u: base64.b64decode(u.split(",", 1)[1]), urls),
        "PNG decode + RGB": timed(lambda b: load_image(b, allow_paths=False), raw),
        "fit to the model's pixels": timed(lambda d: fit_to_pixels(d, lo, hi, factor), decoded),
        "image processor (what vLLM runs per image)": timed(
            lambda f: processor.image_processor(images=[f], return_tensors="pt"), fitted
        ),
        "PNG encode (a URL engine's data URL)": timed(
            lambda f: f.save(io.BytesIO(), format="PNG"), fitted
        ),
    }


def three_x_budget(burst: dict[str, Any], tf: dict[str, Any]) -> list[str]:
    """What `3x transformers` asks of the engine, in CPU time per pair on these cores.

    vLLM binds its model worker to one core, so that process alone caps the engine at 1000 /
    (its CPU ms per pair) pairs/s, whatever the scheduler and the API do on the other core."""
    target = 3 * tf["pairs_per_s"]
    cpu = {k: 1000 * v / burst["requests"] for k, v in burst["cpu_s"].items()}
    worker = cpu.get("vLLM model worker", 0.0)
    total = sum(cpu.values())
    lines = [
        "",
        "## What 3x transformers would take",
        "",
        f"transformers `generate` (a fresh process, {burst['requests']} pairs of the same kind "
        f"in batches of {tf['batch_size']} sequences): {tf['pairs_per_s']:.2f} pairs/s, "
        f"{tf.get('cpu_ms_per_pair', float('nan')):.1f} ms of CPU per pair on "
        f"{tf.get('torch_threads', '?')} threads. 3x that is {target:.1f} pairs/s: at most "
        f"{1000 / target:.1f} ms of CPU per pair on each core.",
        "",
        "| | CPU ms per pair | pairs/s it allows |",
        "|---|---|---|",
        f"| vLLM model worker (one core) | {worker:.1f} | {1000 / worker if worker else 0:.1f} |",
        f"| the whole server (two cores) | {total:.1f} | {2000 / total if total else 0:.1f} |",
        f"| 3x transformers | {1000 / target:.1f} per core | {target:.1f} |",
        "",
        f"The burst ran at {burst['pairs_per_s']:.2f} pairs/s. The worker's CPU includes its wait "
        "for the scheduler's next step (vLLM's processes poll their shared-memory queues while "
        "busy), so its column is an upper bound of the model's own work.",
    ]
    return lines


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default=str(ROOT / "models" / "small-base"))
    p.add_argument("--requests", type=int, default=64)
    p.add_argument("--concurrency", type=int, default=32)
    p.add_argument("--max-tokens", type=int, default=64)
    p.add_argument("--probe", action="store_true", help="leave the answer probe on")
    p.add_argument("--m2fn", default=None, help="an M2FN checkpoint to serve CTRs from")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=str(ROOT / "bench" / "results" / "serve_profile.json"))
    args = p.parse_args()

    from serve.launch import ServerProcess, free_port, serve_command

    rng = random.Random(args.seed)
    # Every request has creatives of its own (repeated ones would hit vLLM's prefix cache).
    pairs = [(make_creative(rng), make_creative(rng)) for _ in range(args.requests + 3)]
    bodies = request_bodies(pairs, args.max_tokens)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    extra = [
        "--max-tokens",
        str(args.max_tokens),
        "--max-model-len",
        "2048",
        "--max-concurrency",
        str(args.concurrency),
        "--max-queue",
        str(args.requests + 8),
        "--log-level",
        "warning",
    ]
    if not args.probe:
        extra.append("--no-probe")
    if args.m2fn:
        extra += ["--m2fn", args.m2fn]
    log_dir = Path(tempfile.mkdtemp(prefix="profile_serve_"))
    server = ServerProcess(
        serve_command(args.model, port, *extra),
        f"{base}/health",
        log_dir / "server.log",
        env={"VLLM_CPU_KVCACHE_SPACE": "1"},
        cwd=ROOT,
    )
    record: dict[str, Any] = {
        "model": args.model,
        "max_tokens": args.max_tokens,
        "probe": args.probe,
        "m2fn": bool(args.m2fn),
    }
    with server:
        assert server.proc is not None
        pgid = server.proc.pid
        url = f"{base}/v1/select"
        asyncio.run(post_all(url, bodies[-2:], 2))  # warm-up
        phases = {
            "one request": (bodies[:1], 1),
            "burst": (bodies[1 : args.requests + 1], args.concurrency),
        }
        for name, (batch, conc) in phases.items():
            m0, c0 = stages(httpx.get(f"{base}/metrics").text), group_cpu(pgid)
            t0 = time.perf_counter()
            lat = asyncio.run(post_all(url, batch, conc))
            wall = time.perf_counter() - t0
            m1, c1 = stages(httpx.get(f"{base}/metrics").text), group_cpu(pgid)
            record[name] = {
                "requests": len(batch),
                "concurrency": conc,
                "wall_s": wall,
                "pairs_per_s": len(batch) / wall,
                "latency_p50_ms": 1000 * lat[len(lat) // 2],
                "stages": stage_delta(m0, m1),
                "cpu_s": cpu_delta(c0, c1, pgid),
            }
    creatives = [c for pair in pairs[:16] for c in pair]
    record["per_creative_ms"] = per_creative_costs(args.model, creatives)
    # the same number of pairs of the same kind through transformers, server stopped
    record["transformers"] = transformers_in_fresh_process(
        args.model, args.requests, args.seed, args.max_tokens, 64
    )

    lines = [
        "# Where `/v1/select`'s time goes",
        "",
        f"Written by `python bench/profile_serve.py`: {args.model}, {args.max_tokens} tokens, "
        f"probe {'on' if args.probe else 'off'}, M2FN {'on' if args.m2fn else 'off'}; "
        "stage times are the server's own (`creative4u_stage_seconds`).",
        "",
    ]
    for name in phases:
        r = record[name]
        lines += [
            f"## {name}: {r['requests']} requests, {r['concurrency']} at a time",
            "",
            f"{r['wall_s']:.2f} s, {r['pairs_per_s']:.2f} pairs/s, "
            f"median latency {r['latency_p50_ms']:.0f} ms",
            "",
            "| stage | calls | mean ms | total s | share of request time |",
            "|---|---|---|---|---|",
        ]
        total = sum(v["total_s"] for v in r["stages"].values()) or 1.0
        for stage, v in sorted(r["stages"].items(), key=lambda kv: -kv[1]["total_s"]):
            lines.append(
                f"| {stage} | {v['count']:.0f} | {v['mean_ms']:.2f} | {v['total_s']:.3f} | "
                f"{100 * v['total_s'] / total:.1f} % |"
            )
        lines += ["", "| process | CPU s | CPU ms per pair |", "|---|---|---|"]
        for proc, s in sorted(r["cpu_s"].items(), key=lambda kv: -kv[1]):
            lines.append(f"| {proc} | {s:.2f} | {1000 * s / r['requests']:.1f} |")
        lines.append("")
    lines += [
        "## The API's CPU work per creative (timed in one process, best of 3)",
        "",
        "| step | ms per creative |",
        "|---|---|",
    ]
    lines += [f"| {k} | {v:.2f} |" for k, v in record["per_creative_ms"].items()]
    lines += three_x_budget(record["burst"], record["transformers"])
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(record, indent=2))
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
