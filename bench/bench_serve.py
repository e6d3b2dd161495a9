"""Throughput of `/v1/select` against the engine called directly and against transformers `generate`.

The same pairs (both orders each, the same prompt, pixels and `max_tokens`) go through:
  1. the serving engine called in process (`creative4u.engines.LocalEngine.complete_many`),
     with as many pairs in flight as the API's clients keep, and with every pair at once;
  2. the API over HTTP (`serve.app.create_app` on uvicorn and uvloop, exactly what `creative4u
     serve` runs, in front of the same engine instance), its clients in a separate process
     (aiohttp; once more with httpx, whose own CPU on these two cores shows in its row), with
     M2FN's CTRs off and on;
  3. transformers `generate` (`creative4u.engines.TransformersEngine`, batched), in a fresh
     process (vLLM lowers the torch thread count of the process it runs in).
Ways 1 and 2 share one engine and alternate `--repeats` times, the engine at 32 in flight and
the API back to back in an order flipped every round, so their ratio in a round compares the
same engine at the same moment; each figure is the median of the repeats, with its range, and
the median of the rounds' ratios comes with a 95 % interval. Every
measurement gets creatives of its own (as a stream of real requests does): repeated ones would be
served from vLLM's prefix cache. The API runs with the answer probe off so that it does exactly
the generations the others do.

    python bench/bench_serve.py --model models/small-base --pairs 128 --max-tokens 64

Without --model a tiny random model is built in a temporary folder (a smoke run, not a measurement
of anything but overheads). Results go to bench/results/serve.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import platform
import random
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
import httpx
from PIL import Image, ImageDraw

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from creative4u.images import to_data_url  # noqa: E402

QUERY, TITLE = "red summer dress", "Nova elegant red summer dress"
Pair = tuple[Image.Image, Image.Image]


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


def request_bodies(pairs: list[Pair], max_tokens: int) -> list[bytes]:
    """The `/v1/select` bodies, written once (a client's own encoding is not the server's cost)."""
    return [
        json.dumps(
            {
                "creatives": [to_data_url(a), to_data_url(b)],
                "query": QUERY,
                "title": TITLE,
                "options": {"max_tokens": max_tokens},
            }
        ).encode()
        for a, b in pairs
    ]


# --------------------------------------------------------------------------------------------
# The clients of the API: a separate process, as real clients are
# --------------------------------------------------------------------------------------------


async def post_all(
    url: str, bodies: list[bytes], concurrency: int, client: str = "aiohttp"
) -> list[float]:
    """POST every body, `concurrency` at a time; the latencies, sorted.

    The clients share this machine's two cores with the server, so their own CPU is taken from
    the engine: aiohttp's C parser costs less of it than httpx (`--client httpx` compares)."""
    sem = asyncio.Semaphore(concurrency)
    latencies: list[float] = []
    headers = {"content-type": "application/json"}

    if client == "httpx":
        limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
        async with httpx.AsyncClient(timeout=1800, limits=limits) as http:

            async def one(body: bytes) -> None:
                async with sem:
                    t0 = time.perf_counter()
                    r = await http.post(url, content=body, headers=headers)
                    r.raise_for_status()
                    latencies.append(time.perf_counter() - t0)

            await asyncio.gather(*(one(b) for b in bodies))
        return sorted(latencies)

    connector = aiohttp.TCPConnector(limit=concurrency)
    timeout = aiohttp.ClientTimeout(total=1800)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:

        async def one_aio(body: bytes) -> None:
            async with sem:
                t0 = time.perf_counter()
                async with session.post(url, data=body, headers=headers) as r:
                    await r.read()
                    r.raise_for_status()
                latencies.append(time.perf_counter() - t0)

        await asyncio.gather(*(one_aio(b) for b in bodies))
    return sorted(latencies)


def client_main(url: str, bodies_file: str, concurrency: int, client: str) -> None:
    """One measurement's clients. The clock starts once the client library is imported (aiohttp's
    import takes about a quarter of a second on two cores, a time in which no request is in
    flight and which the engine called in process never pays)."""
    bodies = [line.encode() for line in Path(bodies_file).read_text().splitlines()]
    t0, cpu0 = time.perf_counter(), time.process_time()
    latencies = asyncio.run(post_all(url, bodies, concurrency, client))
    seconds, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    print(
        "RESULT " + json.dumps({"seconds": seconds, "cpu_s": cpu, "latencies": latencies}),
        flush=True,
    )


async def run_clients(
    url: str, bodies_file: Path, concurrency: int, client: str = "aiohttp"
) -> dict[str, Any]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        __file__,
        "--client",
        url,
        str(bodies_file),
        str(concurrency),
        client,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await proc.communicate()
    line = next((x for x in out.decode().splitlines() if x.startswith("RESULT ")), None)
    if proc.returncode != 0 or line is None:
        raise RuntimeError(f"the client process failed:\n{err.decode()[-2000:]}")
    return json.loads(line[len("RESULT ") :])


# --------------------------------------------------------------------------------------------
# Engine and API side by side, on one engine
# --------------------------------------------------------------------------------------------


async def direct(
    engine: Any, selector: Any, pairs: list[Pair], max_tokens: int, concurrency: int | None
) -> dict[str, Any]:
    """The engine called in process: `concurrency` pairs in flight (None: all at once), each
    pair's two orders submitted together, as `/v1/select` submits them."""
    from creative4u.protocol import build_messages
    from creative4u.selection import SelectOptions

    params = selector.params(SelectOptions(max_tokens=max_tokens))
    todo = []
    for a, b in pairs:
        a, b = selector.prepare(a), selector.prepare(b)
        todo.append([build_messages(QUERY, TITLE, a, b), build_messages(QUERY, TITLE, b, a)])
    sem = asyncio.Semaphore(concurrency or len(todo))

    async def pair(chats: list[Any]) -> list[Any]:
        async with sem:
            return await engine.complete_many(chats, params)

    t0, cpu0 = time.perf_counter(), time.process_time()
    done = await asyncio.gather(*(pair(c) for c in todo))
    seconds, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    return {
        "seconds": seconds,
        "pairs_per_s": len(pairs) / seconds,
        "generated_tokens": sum(c.completion_tokens for cs in done for c in cs),
        "frontend_cpu_ms_per_pair": 1000 * cpu / len(pairs),
    }


async def through_api(
    base: str, bodies_file: Path, n: int, concurrency: int, client: str = "aiohttp"
) -> dict[str, Any]:
    async with httpx.AsyncClient() as http:
        before = generation_tokens((await http.get(f"{base}/metrics")).text)
        cpu0 = time.process_time()
        r = await run_clients(f"{base}/v1/select", bodies_file, concurrency, client)
        cpu = time.process_time() - cpu0
        after = generation_tokens((await http.get(f"{base}/metrics")).text)
    lat = r["latencies"]
    return {
        "seconds": r["seconds"],
        "pairs_per_s": n / r["seconds"],
        "generated_tokens": int(after - before),
        "frontend_cpu_ms_per_pair": 1000 * cpu / n,
        "client_cpu_ms_per_pair": 1000 * r["cpu_s"] / n,
        "latency_p50_s": lat[len(lat) // 2],
        "latency_max_s": lat[-1],
    }


def median_interval(values: list[float], level: float = 0.95) -> tuple[float, float]:
    """A distribution-free interval for the median: the k-th smallest and k-th largest values,
    k the largest with P(Binomial(n, 1/2) < k) <= (1 - level) / 2. Too few values for `level`
    give their whole range (five rounds cover the median with 94 %, twelve give the 3rd to the
    10th value at 96 %)."""
    xs, n = sorted(values), len(values)
    k, tail = 0, 0.0
    while k < n and tail + math.comb(n, k) / 2**n <= (1 - level) / 2:
        tail += math.comb(n, k) / 2**n
        k += 1
    return (xs[0], xs[-1]) if k == 0 else (xs[k - 1], xs[n - k])


def summarise(runs: list[dict[str, Any]]) -> dict[str, Any]:
    rates = [r["pairs_per_s"] for r in runs]
    return {
        "pairs_per_s": statistics.median(rates),
        "pairs_per_s_min": min(rates),
        "pairs_per_s_max": max(rates),
        "seconds": statistics.median(r["seconds"] for r in runs),
        "frontend_cpu_ms_per_pair": statistics.median(r["frontend_cpu_ms_per_pair"] for r in runs),
        "generated_tokens": runs[-1]["generated_tokens"],
        "runs": runs,
    }


async def serving_engine(
    model: str,
    max_tokens: int,
    concurrency: int,
    n_pairs: int,
    eager: bool = False,
    worker_process: bool = True,
) -> tuple[Any, Any, Any]:
    """The engine, its selector and the API's config, built as `creative4u serve` builds them
    (compiled unless `eager`, the model in a worker process of its own unless not
    `worker_process`), with the probe off and room for every pair in the queue."""
    from creative4u.engines import LocalEngine
    from creative4u.selection import AsyncSelector
    from serve.config import Limits, ServeConfig

    engine = LocalEngine.from_model(
        model, max_model_len=2048, enforce_eager=eager, worker_process=worker_process
    )
    await engine.start()
    selector = AsyncSelector(engine, default_max_tokens=max_tokens, probe_answer=False)
    cfg = ServeConfig(
        default_max_tokens=max_tokens,
        max_concurrency=concurrency,
        max_queue=n_pairs + 8,
        probe_answer=False,
        limits=Limits(),
    )
    return engine, selector, cfg


async def start_servers(apps: dict[str, Any]) -> tuple[dict[str, Any], list[Any], dict[str, str]]:
    """Each app on uvicorn on a free local port: (servers, their tasks, base URLs), once all
    have started."""
    import uvicorn

    from serve.launch import free_port

    servers, tasks, bases = {}, [], {}
    for name, app in apps.items():
        port = free_port()
        config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning")
        servers[name] = uvicorn.Server(config)
        tasks.append(asyncio.create_task(servers[name].serve()))
        bases[name] = f"http://127.0.0.1:{port}"
    while not all(s.started for s in servers.values()):
        await asyncio.sleep(0.1)
    return servers, tasks, bases


async def stop_servers(servers: dict[str, Any], tasks: list[Any]) -> None:
    """Ask every server `start_servers` started to exit, and wait until they have."""
    for s in servers.values():
        s.should_exit = True
    await asyncio.gather(*tasks)


def write_bodies(path: Path, pairs: list[Pair], max_tokens: int) -> Path:
    """The `/v1/select` bodies of `pairs`, one per line, for a client process to read."""
    path.write_text("\n".join(b.decode() for b in request_bodies(pairs, max_tokens)) + "\n")
    return path


async def side_by_side(
    model: str,
    n_pairs: int,
    seed: int,
    max_tokens: int,
    concurrency: int,
    repeats: int,
    m2fn: str | None,
    work: Path,
    eager: bool = False,
    worker_process: bool = True,
) -> dict[str, Any]:
    from serve.app import create_app

    engine, selector, cfg = await serving_engine(
        model, max_tokens, concurrency, n_pairs, eager, worker_process
    )
    apps = {"api_select": create_app(engine, cfg)}
    if m2fn:
        from creative4u import m2fn as m2fn_pkg

        apps["api_select_m2fn"] = create_app(engine, cfg, ctr_scorer=m2fn_pkg.load(m2fn))
    servers, tasks, bases = await start_servers(apps)

    batches = iter(range(1, 10_000))

    def fresh(n: int) -> list[Pair]:
        return make_pairs(n, seed * 10_000 + next(batches))

    def bodies_file(pairs: list[Pair]) -> Path:
        return write_bodies(work / f"bodies_{next(batches)}.jsonl", pairs, max_tokens)

    await direct(engine, selector, fresh(2), max_tokens, None)  # warm-up, every path once
    for base in bases.values():
        await run_clients(f"{base}/v1/select", bodies_file(fresh(2)), 2)

    runs: dict[str, list[dict[str, Any]]] = {
        k: [] for k in ("engine_direct", "engine_all_at_once", *apps, "api_select_httpx_client")
    }

    async def engine_direct() -> dict[str, Any]:
        return await direct(engine, selector, fresh(n_pairs), max_tokens, concurrency)

    async def api_select() -> dict[str, Any]:
        return await through_api(
            bases["api_select"], bodies_file(fresh(n_pairs)), n_pairs, concurrency
        )

    try:
        for r in range(repeats):
            print(f"round {r + 1} of {repeats}", flush=True)
            # the two the ratio compares run back to back, in an order flipped every round, so
            # neither always meets the machine a measurement later than the other
            for name, measure in [("engine_direct", engine_direct), ("api_select", api_select)][
                :: 1 if r % 2 == 0 else -1
            ]:
                runs[name].append(await measure())
            runs["engine_all_at_once"].append(
                await direct(engine, selector, fresh(n_pairs), max_tokens, None)
            )
            runs["api_select_httpx_client"].append(
                await through_api(
                    bases["api_select"], bodies_file(fresh(n_pairs)), n_pairs, concurrency, "httpx"
                )
            )
            if "api_select_m2fn" in bases and r == 0:  # one round: it is OCR-bound (see README)
                runs["api_select_m2fn"].append(
                    await through_api(
                        bases["api_select_m2fn"], bodies_file(fresh(n_pairs)), n_pairs, concurrency
                    )
                )
            print(
                "  " + ", ".join(f"{k} {v[-1]['pairs_per_s']:.1f}" for k, v in runs.items() if v),
                flush=True,
            )
    finally:
        await stop_servers(servers, tasks)
        await engine.close()
    return {k: {**summarise(v), "concurrency": concurrency} for k, v in runs.items() if v}


def bench_transformers(
    model: str, pairs: list[Pair], max_tokens: int, batch_size: int
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
    t0, cpu0 = time.perf_counter(), time.process_time()
    outs = asyncio.run(engine.complete_many(chats, params))
    seconds, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    return {
        "seconds": seconds,
        "pairs_per_s": len(pairs) / seconds,
        "cpu_ms_per_pair": 1000 * cpu / len(pairs),
        "generations": len(outs),
        "generated_tokens": sum(o.completion_tokens for o in outs),
        "batch_size": batch_size,
    }


def transformers_in_fresh_process(
    model: str, n_pairs: int, seed: int, max_tokens: int, batch_size: int
) -> dict[str, Any]:
    import subprocess

    cmd = [sys.executable, __file__, "--transformers", model]
    cmd += [str(n_pairs), str(seed), str(max_tokens), str(batch_size)]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    line = next((x for x in proc.stdout.splitlines() if x.startswith("RESULT ")), None)
    if proc.returncode != 0 or line is None:
        raise RuntimeError(f"transformers run failed:\n{proc.stderr[-2000:]}")
    return json.loads(line[len("RESULT ") :])


def event_loop_factory(name: str) -> Any:
    """The event loop engine and API run on: `uvloop` is what `creative4u serve` gets (uvicorn's
    `loop="auto"` picks it when it is installed), `asyncio` the standard library's."""
    if name == "uvloop":
        import uvloop

        return uvloop.new_event_loop
    return None


def make_pairs(n: int, seed: int) -> list[Pair]:
    rng = random.Random(seed)
    return [(make_creative(rng), make_creative(rng)) for _ in range(n)]


# --------------------------------------------------------------------------------------------


def main() -> None:
    if len(sys.argv) == 6 and sys.argv[1] == "--client":
        client_main(sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5])
        return
    if len(sys.argv) == 7 and sys.argv[1] == "--transformers":
        model, n, seed, max_tokens, bs = sys.argv[2], *map(int, sys.argv[3:])
        result = bench_transformers(model, make_pairs(n, seed), max_tokens, bs)
        import torch

        result["torch_threads"] = torch.get_num_threads()
        print("RESULT " + json.dumps(result), flush=True)
        return
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default=None, help="model folder (default: build a tiny one)")
    p.add_argument("--pairs", type=int, default=128)
    p.add_argument("--max-tokens", type=int, default=64)
    p.add_argument(
        "--concurrency",
        type=int,
        default=32,
        help="concurrent /v1/select requests, and pairs in flight on the direct engine",
    )
    p.add_argument("--repeats", type=int, default=3, help="alternating rounds of engine and API")
    p.add_argument(
        "--batch-size",
        type=int,
        nargs="+",
        default=[16, 64],
        help="transformers generate batch sizes (the best one is compared)",
    )
    p.add_argument(
        "--m2fn",
        default="synthetic",
        help="M2FN checkpoint for the API-with-M2FN row ('synthetic': a one-step model built "
        "here, as bench_m2fn.py does; 'none': skip the row)",
    )
    p.add_argument(
        "--enforce-eager",
        action="store_true",
        help="run vLLM eagerly (default: compiled, as `creative4u serve` runs it)",
    )
    p.add_argument(
        "--model-in-engine-core",
        action="store_true",
        help="run the model inside vLLM's engine-core process, as short jobs do (default: a "
        "worker process of its own, as `creative4u serve` runs it; CPU only)",
    )
    p.add_argument(
        "--loop",
        choices=["uvloop", "asyncio"],
        default="uvloop",
        help="event loop of the engine and the API (uvloop: what `creative4u serve` runs)",
    )
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
    m2fn = None if args.m2fn == "none" else args.m2fn
    if m2fn == "synthetic":
        sys.path.insert(0, str(ROOT / "bench"))
        from bench_m2fn import synthetic_checkpoint

        m2fn = str(synthetic_checkpoint(tmp / "m2fn", 64, ocr=True)[0])
    c = args.concurrency
    print(f"{args.pairs} pairs, both orders, max_tokens {args.max_tokens}, {c} pairs at a time")
    with asyncio.Runner(loop_factory=event_loop_factory(args.loop)) as runner:
        results = runner.run(
            side_by_side(
                model,
                args.pairs,
                args.seed,
                args.max_tokens,
                c,
                args.repeats,
                m2fn,
                tmp,
                eager=args.enforce_eager,
                worker_process=not args.model_in_engine_core,
            )
        )
    for bs in args.batch_size:
        print(f"transformers generate, batch {bs} ...", flush=True)
        results[f"transformers_batch_{bs}"] = transformers_in_fresh_process(
            model, args.pairs, args.seed, args.max_tokens, bs
        )
    rate = {k: v["pairs_per_s"] for k, v in results.items()}
    best_tf = max((k for k in rate if k.startswith("transformers")), key=rate.get)
    ratios = {
        "api_over_engine": rate["api_select"] / rate["engine_direct"],
        "engine_over_transformers": rate["engine_direct"] / rate[best_tf],
        "engine_all_at_once_over_transformers": rate["engine_all_at_once"] / rate[best_tf],
        "api_over_transformers": rate["api_select"] / rate[best_tf],
        "api_httpx_client_over_engine": rate["api_select_httpx_client"] / rate["engine_direct"],
    }
    if "api_select_m2fn" in rate:
        ratios["api_m2fn_over_engine"] = rate["api_select_m2fn"] / rate["engine_direct"]
    # each round ran the engine and the API back to back: their ratio within a round compares the
    # same moment of the machine, so its spread says how much of a ratio is the machine's drift
    per_round = [
        api["pairs_per_s"] / eng["pairs_per_s"]
        for api, eng in zip(
            results["api_select"]["runs"], results["engine_direct"]["runs"], strict=True
        )
    ]
    ratios["api_over_engine_median_of_rounds"] = statistics.median(per_round)
    low, high = median_interval(per_round)
    print()
    print(f"{'way':<24} {'pairs/s':>9} {'range':>13} {'gen tokens':>11}")
    for k, v in results.items():
        span = (
            f"{v['pairs_per_s_min']:.1f}-{v['pairs_per_s_max']:.1f}"
            if "pairs_per_s_min" in v
            else ""
        )
        print(f"{k:<24} {v['pairs_per_s']:>9.2f} {span:>13} {v['generated_tokens']:>11}")
    print(f"\n(transformers compared: {best_tf})")
    for k, v in ratios.items():
        print(f"{k:<38} {v:.2f}x")
    print(f"api / engine in each round: {', '.join(f'{r:.2f}' for r in per_round)}")
    print(f"the median of rounds lies in [{low:.2f}, {high:.2f}] (95 %, order statistics)")

    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    record = {
        "model": model if args.model else "tiny (random weights, built for this run)",
        "pairs": args.pairs,
        "max_tokens": args.max_tokens,
        "concurrency": c,
        "repeats": args.repeats,
        "vllm_compiled": not args.enforce_eager,
        "model_in_engine_core": args.model_in_engine_core,
        "event_loop": args.loop,
        "client": "aiohttp (api_select_httpx_client: httpx), a separate process on this machine",
        "transformers_compared": best_tf,
        "results": results,
        "ratios": ratios,
        "api_over_engine_per_round": per_round,
        "api_over_engine_median_interval_95": [low, high],
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "python": platform.python_version(),
            "vllm_cpu_env": {k: v for k, v in os.environ.items() if k.startswith("VLLM_CPU")},
        },
        "note": "engine and API share one engine and alternate; ratios are measured side by side "
        "in one run; absolute numbers depend on the machine and on anything else running on it",
    }
    out.write_text(json.dumps(record, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
