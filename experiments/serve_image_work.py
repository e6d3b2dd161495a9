"""How much of `/v1/select`'s distance from the bare engine is the creatives' image work, on the
real engine.

`bench/bench_serve.py` hands the bare engine creatives already decoded and fitted to the model's
pixels, outside its clock, while the API decodes and fits every creative it receives. On one
engine instance (compiled, the model in its worker process, as `creative4u serve` runs it), four
conditions run in every round, in an order rotated round by round:

  engine          - the engine called in process, creatives fitted before the clock (the bench's
                    baseline);
  engine + images - the same, but every pair starts from its two PNG data URLs and is decoded
                    and fitted inside the clock, in the API's image pool, as the API's `read` and
                    `prepare` stages do it (no HTTP);
  API fitted      - `/v1/select` with the creatives sent already at the model's size (decoding a
                    small PNG, the fit a no-op): the API without most of its image work;
  API             - `/v1/select` with the 320 x 320 creatives, as the bench sends them.

Each measurement gets new creatives (repeated ones would hit vLLM's prefix cache), 32 pairs in
flight, both orders, 64 tokens. The API's image pool is the served one (its threads
`creative4u.images.IMAGE_POOL_NICE` below the process).

`--image-nice N` runs another set instead: the engine, and the API with its image pool's threads
level with the process and N nice steps below it (a pool swapped in for the measurement).

    python experiments/serve_image_work.py --model models/small-base --rounds 16
    python experiments/serve_image_work.py --model models/small-base --rounds 12 --image-nice 10

Writes experiments/results/serve_image_work.json (or `--out`).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "bench")]

from bench_serve import (  # noqa: E402
    QUERY,
    TITLE,
    Pair,
    direct,
    event_loop_factory,
    make_pairs,
    median_interval,
    serving_engine,
    start_servers,
    stop_servers,
    through_api,
    write_bodies,
)

from creative4u import images  # noqa: E402
from creative4u.images import in_image_pool, load_image, to_data_url  # noqa: E402

CONDITIONS = ("engine", "engine + images", "API fitted", "API")


async def direct_from_png(
    engine: Any, selector: Any, pairs: list[Pair], max_tokens: int, concurrency: int
) -> dict[str, Any]:
    """The engine called in process on creatives that arrive as PNG data URLs: each pair's two
    creatives decoded, then fitted, in the image pool (the API's `read` and `prepare`), then its
    two orders submitted together."""
    from creative4u.protocol import build_messages
    from creative4u.selection import SelectOptions

    params = selector.params(SelectOptions(max_tokens=max_tokens))
    urls = [(to_data_url(a), to_data_url(b)) for a, b in pairs]
    sem = asyncio.Semaphore(concurrency)

    async def pair(a_url: str, b_url: str) -> list[Any]:
        async with sem:
            a, b = await asyncio.gather(*(in_image_pool(load_image, u) for u in (a_url, b_url)))
            a, b = await selector.prepare_all([a, b])
            chats = [build_messages(QUERY, TITLE, a, b), build_messages(QUERY, TITLE, b, a)]
            return await engine.complete_many(chats, params)

    t0 = time.perf_counter()
    await asyncio.gather(*(pair(a, b) for a, b in urls))
    seconds = time.perf_counter() - t0
    return {"seconds": seconds, "pairs_per_s": len(pairs) / seconds}


async def run(args: argparse.Namespace) -> dict[str, Any]:
    from serve.app import create_app

    engine, selector, cfg = await serving_engine(
        args.model, args.max_tokens, args.concurrency, args.pairs
    )
    servers, tasks, bases = await start_servers({"api": create_app(engine, cfg)})
    work = Path(tempfile.mkdtemp(prefix="serve_image_work_"))
    seeds = iter(range(1, 100_000))

    def fresh() -> list[Pair]:
        return make_pairs(args.pairs, args.seed * 100_000 + next(seeds))

    def bodies(pairs: list[Pair]) -> Path:
        return write_bodies(work / f"bodies_{next(seeds)}.jsonl", pairs, args.max_tokens)

    if args.image_nice is None:
        conditions, pools = CONDITIONS, {}
    else:  # the API with its image pool level with the process, and `image_nice` below it
        pools = {
            f"API, image pool at nice {n}": images.new_image_pool(n) for n in (0, args.image_nice)
        }
        conditions = ("engine", *pools)

    async def measure(name: str) -> dict[str, Any]:
        pairs = fresh()
        if name in pools:
            served_pool, images._POOL = images.image_pool(), pools[name]
            try:
                return await through_api(bases["api"], bodies(pairs), args.pairs, args.concurrency)
            finally:
                images._POOL = served_pool
        if name == "engine":
            return await direct(engine, selector, pairs, args.max_tokens, args.concurrency)
        if name == "engine + images":
            return await direct_from_png(engine, selector, pairs, args.max_tokens, args.concurrency)
        if name == "API fitted":
            pairs = [(selector.prepare(a), selector.prepare(b)) for a, b in pairs]
        return await through_api(bases["api"], bodies(pairs), args.pairs, args.concurrency)

    await direct(engine, selector, make_pairs(2, 10**9), args.max_tokens, None)  # warm-up
    for name in conditions[1:]:  # warm-up: every path once
        await measure(name)
    runs: dict[str, list[float]] = {c: [] for c in conditions}
    try:
        for r in range(args.rounds):
            k = r % len(conditions)
            order = conditions[k:] + conditions[:k]
            for name in order:
                runs[name].append((await measure(name))["pairs_per_s"])
            print(
                f"round {r + 1}: " + ", ".join(f"{c} {runs[c][-1]:.1f}" for c in conditions),
                flush=True,
            )
    finally:
        await stop_servers(servers, tasks)
        await engine.close()

    def ratios(num: str) -> dict[str, Any]:
        per_round = [n / e for n, e in zip(runs[num], runs["engine"], strict=True)]
        return {
            "per_round": [round(x, 3) for x in per_round],
            "median": statistics.median(per_round),
            "interval_95": median_interval(per_round),
        }

    return {
        "settings": vars(args),
        "pairs_per_s": {c: statistics.median(v) for c, v in runs.items()},
        "runs": runs,
        "over_engine": {c: ratios(c) for c in conditions[1:]},
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="models/small-base")
    p.add_argument("--pairs", type=int, default=128)
    p.add_argument("--max-tokens", type=int, default=64)
    p.add_argument("--concurrency", type=int, default=32)
    p.add_argument("--rounds", type=int, default=8)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--image-nice",
        type=int,
        default=None,
        help="instead of the four conditions: the engine, and the API with its image pool's "
        "threads level with the process and this many nice steps below it",
    )
    p.add_argument("--out", default=str(ROOT / "experiments/results/serve_image_work.json"))
    args = p.parse_args()
    os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")
    with asyncio.Runner(loop_factory=event_loop_factory("uvloop")) as runner:
        result = runner.run(run(args))
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(f"\n{'condition':<18}{'pairs/s':>9}{'/ engine':>10}  95 % interval of the median")
    for c in result["runs"]:
        line = f"{c:<18}{result['pairs_per_s'][c]:>9.2f}"
        if (o := result["over_engine"].get(c)) is not None:
            low, high = o["interval_95"]
            line += f"{o['median']:>10.2f}  [{low:.2f}, {high:.2f}]"
        print(line)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
