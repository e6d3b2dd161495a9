"""Where `/v1/select` loses to the bare engine on two cores, and whether pinning pays.

vLLM's CPU worker binds its OpenMP threads to one core and reserves the other for the engine's
scheduler, but nothing keeps the rest of the server (the API process: HTTP, images, vLLM's input
processing and output handling) or the scheduler itself off the worker's core. This runs, on one
engine instance and alternating within each round (the order flipped every round):

  free    - as `creative4u serve` runs today: only the worker is bound;
  pin     - (`--lever pin`, the default) every thread of this process and of vLLM's scheduler
            process, and the client process, bound to the cores the worker does not use;
  nice    - (`--lever nice --nice N`) every thread of vLLM's scheduler process at nice N;

and under each, the engine called in process and `/v1/select` over HTTP, 32 pairs in flight, new
creatives for every measurement (`bench/bench_serve.py`'s pairs, bodies and clients). It also
samples, every 5 ms, how many sequences are in the engine and how many requests hold an admission
slot, so a gap between the two paths can be split into "fewer sequences in the engine" and "each
engine step slower".

    python experiments/serve_core_pinning.py --model models/small-base --rounds 5

Writes experiments/results/serve_core_pinning.json (serve_scheduler_priority.json with --lever nice).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "bench")]

from bench_serve import (  # noqa: E402
    direct,
    event_loop_factory,
    make_pairs,
    serving_engine,
    start_servers,
    stop_servers,
    through_api,
    write_bodies,
)


def for_each_thread(procs: Any, keep: Any, act: Any) -> None:
    """`act(thread_id)` on every thread of the processes in `procs` whose name `keep` accepts;
    a process or thread that exits meanwhile is skipped."""
    import psutil

    for proc in procs:
        try:
            if not keep(proc.name()):
                continue
            for t in proc.threads():
                try:
                    act(t.id)
                except OSError:  # a thread that has just exited
                    pass
        except psutil.Error:
            pass


def pin(cpus: set[int]) -> None:
    """Bind every thread of this process and of its children, except vLLM's model worker (which
    keeps its own binding), to `cpus`. A child started later inherits the caller's binding."""
    import psutil

    me = psutil.Process()
    for_each_thread(
        [me, *me.children(recursive=True)],
        lambda name: "Worker" not in name,
        lambda tid: os.sched_setaffinity(tid, cpus),
    )


def renice_scheduler(value: int) -> None:
    """Give every thread of vLLM's scheduler process (EngineCore) the nice value `value`: below 0
    it wins the core it shares with the API process and the clients whenever it is runnable."""
    import psutil

    for_each_thread(
        psutil.Process().children(recursive=True),
        lambda name: "EngineCore" in name,
        lambda tid: os.setpriority(os.PRIO_PROCESS, tid, value),
    )


def worker_cpus() -> set[int]:
    import psutil

    for proc in psutil.Process().children(recursive=True):
        if "Worker" in proc.name():
            return os.sched_getaffinity(proc.pid)
    raise RuntimeError("vLLM's model worker process was not found")


def gauge(g: Any) -> float:
    return next(iter(g.collect())).samples[0].value


async def occupied(coro: Any, engine: Any, metrics: Any) -> dict[str, Any]:
    """Run `coro`, sampling the engine's sequences in flight and the admitted requests; the
    means are taken from the first to the last sample with a sequence in flight (the client's
    process start-up is not counted)."""
    samples: list[tuple[int, float]] = []
    done = asyncio.Event()

    async def sample() -> None:
        while not done.is_set():
            samples.append((engine.in_flight, gauge(metrics.requests_running)))
            await asyncio.sleep(0.005)

    task = asyncio.create_task(sample())
    result = await coro
    done.set()
    await task
    busy = [i for i, s in enumerate(samples) if s[0] > 0]
    window = samples[busy[0] : busy[-1] + 1] if busy else samples
    n = max(1, len(window))
    result["sequences_in_engine"] = sum(s[0] for s in window) / n
    result["requests_admitted"] = sum(s[1] for s in window) / n
    return result


async def measure(
    model: str,
    n_pairs: int,
    max_tokens: int,
    conc: int,
    rounds: int,
    work: Path,
    lever: str = "pin",
    nice: int = -10,
):
    from serve.app import create_app

    engine, selector, cfg = await serving_engine(model, max_tokens, conc, n_pairs)
    app = create_app(engine, cfg)
    servers, tasks, bases = await start_servers({"api": app})
    url = bases["api"]
    everything = os.sched_getaffinity(0)
    front = everything - worker_cpus()
    if not front:
        raise RuntimeError("the worker uses every core: nothing to pin the front end to")
    seeds = iter(range(1, 10_000))

    def bodies(n: int) -> Path:
        return write_bodies(
            work / f"bodies_{next(seeds)}.jsonl", make_pairs(n, next(seeds)), max_tokens
        )

    await direct(engine, selector, make_pairs(2, 0), max_tokens, None)  # warm-up
    await through_api(url, bodies(2), 2, 2)
    runs: dict[str, list[dict[str, Any]]] = {
        f"{path}_{mode}": [] for mode in ("free", lever) for path in ("engine", "api")
    }

    def apply(mode: str) -> None:
        if lever == "pin":
            pin(front if mode == "pin" else everything)
        else:
            renice_scheduler(nice if mode == "nice" else 0)

    try:
        for r in range(rounds):
            for mode in ("free", lever) if r % 2 == 0 else (lever, "free"):
                apply(mode)
                pairs = make_pairs(n_pairs, 1000 + next(seeds))
                runs[f"engine_{mode}"].append(
                    await occupied(
                        direct(engine, selector, pairs, max_tokens, conc), engine, app.state.metrics
                    )
                )
                api_bodies = bodies(n_pairs)
                runs[f"api_{mode}"].append(
                    await occupied(
                        through_api(url, api_bodies, n_pairs, conc), engine, app.state.metrics
                    )
                )
            apply("free")
            print(
                f"round {r + 1}: "
                + ", ".join(f"{k} {v[-1]['pairs_per_s']:.1f}" for k, v in runs.items()),
                flush=True,
            )
    finally:
        apply("free")
        await stop_servers(servers, tasks)
        await engine.close()
    return runs, sorted(front), sorted(everything - front)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="models/small-base")
    p.add_argument("--pairs", type=int, default=128)
    p.add_argument("--max-tokens", type=int, default=64)
    p.add_argument("--concurrency", type=int, default=32)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument(
        "--lever",
        choices=("pin", "nice"),
        default="pin",
        help="pin: bind the front end off the worker's core; nice: raise vLLM's scheduler's "
        "priority (needs root or CAP_SYS_NICE)",
    )
    p.add_argument(
        "--nice", type=int, default=-10, help="the scheduler's nice value (--lever nice)"
    )
    p.add_argument("--out", default=None)
    args = p.parse_args()
    if args.out is None:
        name = "serve_core_pinning" if args.lever == "pin" else "serve_scheduler_priority"
        args.out = str(ROOT / f"experiments/results/{name}.json")
    os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")
    work = Path(tempfile.mkdtemp(prefix="serve_pinning_"))
    with asyncio.Runner(loop_factory=event_loop_factory("uvloop")) as runner:
        runs, front, worker = runner.run(
            measure(
                args.model,
                args.pairs,
                args.max_tokens,
                args.concurrency,
                args.rounds,
                work,
                args.lever,
                args.nice,
            )
        )
    med = {
        k: {
            f: statistics.median(r[f] for r in v)
            for f in ("pairs_per_s", "sequences_in_engine", "requests_admitted")
        }
        for k, v in runs.items()
    }
    ratios = {
        mode: [
            a["pairs_per_s"] / e["pairs_per_s"]
            for a, e in zip(runs[f"api_{mode}"], runs[f"engine_{mode}"], strict=True)
        ]
        for mode in ("free", args.lever)
    }
    print(f"\nworker on cores {worker}; pinned front end on {front}")
    print(f"{'run':<14} {'pairs/s':>8} {'seqs in engine':>15} {'admitted':>9}")
    for k, v in med.items():
        print(
            f"{k:<14} {v['pairs_per_s']:>8.2f} {v['sequences_in_engine']:>15.1f} "
            f"{v['requests_admitted']:>9.1f}"
        )
    for mode, rs in ratios.items():
        print(
            f"api / engine, {mode}: median {statistics.median(rs):.2f} "
            f"(rounds {', '.join(f'{x:.2f}' for x in rs)})"
        )
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    record = {
        "model": args.model,
        "pairs": args.pairs,
        "max_tokens": args.max_tokens,
        "concurrency": args.concurrency,
        "rounds": args.rounds,
        "worker_cpus": worker,
        "lever": args.lever,
        "scheduler_nice": args.nice if args.lever == "nice" else None,
        "pinned_front_end_cpus": front,
        "medians": med,
        "api_over_engine_per_round": ratios,
        "runs": runs,
    }
    out.write_text(json.dumps(record, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
