"""Throughput of `/v1/select` against the engine called directly and against transformers `generate`.

The same pairs (both orders each, the same prompt, pixels and `max_tokens`) go through:
  1. the serving engine called in process (`creative4u.engines.LocalEngine.complete_many`),
  2. the API over HTTP (`creative4u serve` in a subprocess, concurrent `/v1/select` requests),
  3. transformers `generate` (`creative4u.engines.TransformersEngine`, batched).
The three run one after the other in one run, so the ratios compare like with like on the same
machine at the same time. The API runs with the answer probe off so that it does exactly the
generations the other two do.

    python bench/bench_serve.py --model models/small-base --pairs 64 --max-tokens 64 [--concurrency 32]

Without --model a tiny random model is built in a temporary folder (a smoke run, not a measurement
of anything but overheads). Results go to bench/results/serve.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import re
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
from PIL import Image, ImageDraw

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from creative4u.images import to_data_url  # noqa: E402

QUERY, TITLE = "red summer dress", "Nova elegant red summer dress"


def make_creative(rng: random.Random, size: tuple[int, int] = (320, 320)) -> Image.Image:
    """A distinct synthetic creative: background, product block, a badge."""
    bg = tuple(rng.randrange(256) for _ in range(3))
    img = Image.new("RGB", size, bg)
    d = ImageDraw.Draw(img)
    w, h = size
    x0, y0 = rng.randrange(w // 3), rng.randrange(h // 3)
    d.rectangle(
        [x0, y0, x0 + w // 2, y0 + h // 2], fill=tuple(rng.randrange(256) for _ in range(3))
    )
    d.ellipse([w - 90, 10, w - 10, 90], fill=(rng.randrange(256), 30, 30))
    return img


def generation_tokens(metrics_text: str) -> float:
    m = re.search(r"^creative4u_generation_tokens_total (\S+)$", metrics_text, re.MULTILINE)
    return float(m.group(1)) if m else 0.0


# --------------------------------------------------------------------------------------------
# The three ways
# --------------------------------------------------------------------------------------------


async def bench_engine(
    model: str, pairs: list[tuple[Image.Image, Image.Image]], max_tokens: int
) -> dict[str, Any]:
    from creative4u.engines import LocalEngine
    from creative4u.protocol import build_messages
    from creative4u.selection import AsyncSelector, SelectOptions

    engine = LocalEngine.from_model(model, max_model_len=2048)
    await engine.start()
    try:
        selector = AsyncSelector(engine, default_max_tokens=max_tokens, probe_answer=False)
        params = selector.params(SelectOptions(max_tokens=max_tokens))

        def chats(ps: list[tuple[Image.Image, Image.Image]]) -> list[Any]:
            out = []
            for a, b in ps:
                a, b = selector.prepare(a), selector.prepare(b)
                out += [build_messages(QUERY, TITLE, a, b), build_messages(QUERY, TITLE, b, a)]
            return out

        await engine.complete_many(chats(pairs[:2]), params)  # warm-up
        todo = chats(pairs)
        t0 = time.perf_counter()
        comps = await engine.complete_many(todo, params)
        seconds = time.perf_counter() - t0
        return {
            "seconds": seconds,
            "pairs_per_s": len(pairs) / seconds,
            "generations": len(comps),
            "generated_tokens": sum(c.completion_tokens for c in comps),
        }
    finally:
        await engine.close()


async def _post_all(url: str, bodies: list[dict[str, Any]], concurrency: int) -> list[float]:
    sem = asyncio.Semaphore(concurrency)
    latencies: list[float] = []
    async with httpx.AsyncClient(timeout=1800) as client:

        async def one(body: dict[str, Any]) -> None:
            async with sem:
                t0 = time.perf_counter()
                r = await client.post(url, json=body)
                r.raise_for_status()
                latencies.append(time.perf_counter() - t0)

        await asyncio.gather(*(one(b) for b in bodies))
    return latencies


def bench_api(
    model: str,
    pairs: list[tuple[Image.Image, Image.Image]],
    max_tokens: int,
    concurrency: int,
    log_dir: Path,
) -> dict[str, Any]:
    from serve.launch import ServerProcess, free_port, serve_command

    port = free_port()
    base = f"http://127.0.0.1:{port}"
    args = serve_command(
        model,
        port,
        "--max-tokens",
        str(max_tokens),
        "--max-model-len",
        "2048",
        "--max-concurrency",
        str(concurrency),
        "--max-queue",
        str(len(pairs) + 8),
        "--no-probe",
        "--log-level",
        "warning",
    )
    bodies = [
        {
            "creatives": [to_data_url(a), to_data_url(b)],
            "query": QUERY,
            "title": TITLE,
            "options": {"max_tokens": max_tokens},
        }
        for a, b in pairs
    ]
    with ServerProcess(
        args,
        f"{base}/health",
        log_dir / "bench_serve_api.log",
        env={"VLLM_CPU_KVCACHE_SPACE": "1"},
        cwd=ROOT,
    ):
        asyncio.run(_post_all(f"{base}/v1/select", bodies[:2], concurrency))  # warm-up
        before = generation_tokens(httpx.get(f"{base}/metrics").text)
        t0 = time.perf_counter()
        latencies = asyncio.run(_post_all(f"{base}/v1/select", bodies, concurrency))
        seconds = time.perf_counter() - t0
        after = generation_tokens(httpx.get(f"{base}/metrics").text)
    latencies.sort()
    return {
        "seconds": seconds,
        "pairs_per_s": len(pairs) / seconds,
        "generations": 2 * len(pairs),
        "generated_tokens": int(after - before),
        "concurrency": concurrency,
        "latency_p50_s": latencies[len(latencies) // 2],
        "latency_max_s": latencies[-1],
    }


def bench_transformers(
    model: str, pairs: list[tuple[Image.Image, Image.Image]], max_tokens: int, batch_size: int
) -> dict[str, Any]:
    from creative4u.engines import TransformersEngine
    from creative4u.protocol import build_messages
    from creative4u.selection import AsyncSelector, SelectOptions

    engine = TransformersEngine.from_model(model, batch_size=batch_size)
    selector = AsyncSelector(engine, default_max_tokens=max_tokens, probe_answer=False)
    params = selector.params(SelectOptions(max_tokens=max_tokens))
    chats = []
    for a, b in pairs:
        a, b = selector.prepare(a), selector.prepare(b)
        chats += [build_messages(QUERY, TITLE, a, b), build_messages(QUERY, TITLE, b, a)]
    asyncio.run(engine.complete_many(chats[:4], params))  # warm-up
    t0 = time.perf_counter()
    outs = asyncio.run(engine.complete_many(chats, params))
    seconds = time.perf_counter() - t0
    return {
        "seconds": seconds,
        "pairs_per_s": len(pairs) / seconds,
        "generations": len(outs),
        "generated_tokens": sum(o.completion_tokens for o in outs),
        "batch_size": batch_size,
    }


# --------------------------------------------------------------------------------------------


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default=None, help="model folder (default: build a tiny one)")
    p.add_argument("--pairs", type=int, default=32)
    p.add_argument("--max-tokens", type=int, default=64)
    p.add_argument(
        "--concurrency",
        type=int,
        default=32,
        help="concurrent /v1/select requests (the server's limit is set to match)",
    )
    p.add_argument("--batch-size", type=int, default=16, help="transformers generate batch")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=str(ROOT / "bench" / "results" / "serve.json"))
    args = p.parse_args()

    os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")
    tmp = Path(tempfile.mkdtemp(prefix="bench_serve_"))
    model = args.model
    if model is None:
        from creative4u.model_factory import build

        model = str(build(tmp / "tiny", preset="tiny", seed=0))
        print(f"built a tiny random model in {model} (smoke run)")
    rng = random.Random(args.seed)
    pairs = [(make_creative(rng), make_creative(rng)) for _ in range(args.pairs)]

    results: dict[str, Any] = {}
    print(f"{args.pairs} pairs, both orders, max_tokens {args.max_tokens}")
    print("engine (direct) ...", flush=True)
    results["engine_direct"] = asyncio.run(bench_engine(model, pairs, args.max_tokens))
    print("API /v1/select ...", flush=True)
    results["api_select"] = bench_api(model, pairs, args.max_tokens, args.concurrency, tmp)
    print("transformers generate ...", flush=True)
    results["transformers"] = bench_transformers(model, pairs, args.max_tokens, args.batch_size)

    e, a, t = (results[k]["pairs_per_s"] for k in ("engine_direct", "api_select", "transformers"))
    ratios = {
        "api_over_engine": a / e,
        "api_over_transformers": a / t,
        "engine_over_transformers": e / t,
    }
    print()
    print(f"{'way':<22} {'pairs/s':>9} {'seconds':>9} {'gen tokens':>11}")
    for k, v in results.items():
        print(f"{k:<22} {v['pairs_per_s']:>9.2f} {v['seconds']:>9.2f} {v['generated_tokens']:>11}")
    print()
    print(f"API / engine direct:        {ratios['api_over_engine']:.2f}x")
    print(f"API / transformers:         {ratios['api_over_transformers']:.2f}x")
    print(f"engine direct / transformers: {ratios['engine_over_transformers']:.2f}x")

    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    record = {
        "model": model if args.model else "tiny (random weights, built for this run)",
        "pairs": args.pairs,
        "max_tokens": args.max_tokens,
        "results": results,
        "ratios": ratios,
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "python": platform.python_version(),
        },
        "note": "ratios are measured side by side in one run; absolute numbers depend on the machine "
        "and on anything else running on it",
    }
    out.write_text(json.dumps(record, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
