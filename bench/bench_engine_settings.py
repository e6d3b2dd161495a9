"""vLLM's CPU settings, measured: the same pairs through the in-process engine under each setting.

vLLM on CPU binds its model worker to the cores of one NUMA node and keeps one core back for its
scheduler process ("reserved_cpus" in its log). On a 2-core machine that leaves the model one
thread; short jobs run the model inside the engine-core process instead, on both cores
(`creative4u.generation.ensure_cpu_env`), and the worker-process rows measure vLLM's default.
This script runs the engine-direct measurement of `bench_serve.py` (same pairs, both
orders, same `max_tokens`, every pair at once; `--repeats` timed rounds on new creatives each,
median) once per setting, each in a fresh process (the settings are read when the engine starts),
and writes which one is fastest here.

    python bench/bench_engine_settings.py --model models/small-base --pairs 128 --max-tokens 64

Results go to bench/results/engine_settings.{json,md}.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

SETTINGS: dict[str, dict[str, Any]] = {
    "eager, as short jobs run it (the model in vLLM's engine-core process)": {
        "env": {},
        "engine": {},
    },
    "the model in a worker process of its own (vLLM's CPU default, what a server runs)": {
        "env": {},
        "engine": {"worker_process": True},
    },
    "worker process on all cores": {
        "env": {"VLLM_CPU_OMP_THREADS_BIND": "all"},
        "engine": {"worker_process": True},
    },
    "worker process, no binding": {
        "env": {"VLLM_CPU_OMP_THREADS_BIND": "nobind"},
        "engine": {"worker_process": True},
    },
    "8192 batched tokens": {"env": {}, "engine": {"max_num_batched_tokens": 8192}},
    "8192 batched tokens, 256 sequences": {
        "env": {},
        "engine": {"max_num_batched_tokens": 8192, "max_num_seqs": 256},
    },
    "compiled (torch.compile)": {"env": {}, "engine": {"enforce_eager": False}},
    "compiled, worker process (as `creative4u serve` runs it)": {
        "env": {},
        "engine": {"enforce_eager": False, "worker_process": True},
    },
    "no answer log-probabilities": {"env": {}, "engine": {}, "answer_logprobs": False},
}
"""`"all"` is expanded to this machine's CPU list (e.g. "0-1") when the run starts."""


def one(
    model: str, pairs: int, max_tokens: int, setting: dict[str, Any], seed: int, repeats: int
) -> None:
    from bench_serve import direct, make_creative

    from creative4u.engines import LocalEngine
    from creative4u.selection import AsyncSelector

    rng = random.Random(seed)
    # New creatives for every round: repeated ones would be served from vLLM's prefix cache.
    rounds = [
        [(make_creative(rng), make_creative(rng)) for _ in range(pairs)] for _ in range(repeats)
    ]
    warm = [(make_creative(rng), make_creative(rng)) for _ in range(2)]

    async def run() -> dict[str, Any]:
        engine = LocalEngine.from_model(model, max_model_len=2048, **setting["engine"])
        await engine.start()
        try:
            selector = AsyncSelector(engine, default_max_tokens=max_tokens, probe_answer=False)
            if not setting.get("answer_logprobs", True):
                plain = selector.params

                def params(options: Any) -> Any:
                    p = plain(options)
                    p.logprobs, p.token_ids = False, None
                    return p

                selector.params = params  # type: ignore[method-assign]
            await direct(engine, selector, warm, max_tokens, None)  # warm-up
            runs = [await direct(engine, selector, items, max_tokens, None) for items in rounds]
            rates = sorted(r["pairs_per_s"] for r in runs)
            return {"pairs_per_s": rates[len(rates) // 2], "rates": rates}
        finally:
            await engine.close()

    t0 = time.perf_counter()
    result = asyncio.run(run())
    result["wall_with_start_s"] = time.perf_counter() - t0
    print("RESULT " + json.dumps(result), flush=True)


def cpu_list() -> str:
    cpus = sorted(os.sched_getaffinity(0))
    return ",".join(str(c) for c in cpus)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default=str(ROOT / "models" / "small-base"))
    p.add_argument("--pairs", type=int, default=128)
    p.add_argument("--max-tokens", type=int, default=64)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--repeats", type=int, default=3, help="timed rounds per setting (median)")
    p.add_argument("--only", nargs="*", help="names of settings to run (default: all)")
    p.add_argument("--one", help=argparse.SUPPRESS)
    p.add_argument("--out", default=str(ROOT / "bench" / "results" / "engine_settings.json"))
    args = p.parse_args()
    if args.one is not None:
        one(args.model, args.pairs, args.max_tokens, json.loads(args.one), args.seed, args.repeats)
        return

    rows = []
    for name, setting in SETTINGS.items():
        if args.only and name not in args.only:
            continue
        env = {**os.environ, "VLLM_CPU_KVCACHE_SPACE": "1"}
        for k, v in setting["env"].items():
            env[k] = cpu_list() if v == "all" else v
        cmd = [
            sys.executable,
            __file__,
            "--model",
            args.model,
            "--pairs",
            str(args.pairs),
            "--max-tokens",
            str(args.max_tokens),
            "--seed",
            str(args.seed),
            "--repeats",
            str(args.repeats),
            "--one",
            json.dumps(setting),
        ]
        print(f"{name} ...", flush=True)
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, cwd=ROOT)
        line = next((x for x in proc.stdout.splitlines() if x.startswith("RESULT ")), None)
        if proc.returncode != 0 or line is None:
            tail = (proc.stderr or proc.stdout)[-2000:]
            raise SystemExit(f"setting {name!r} failed (exit {proc.returncode}):\n{tail}")
        result = json.loads(line[len("RESULT ") :])
        shown = {k: (cpu_list() if v == "all" else v) for k, v in setting["env"].items()}
        rows.append(
            {
                "setting": name,
                "env": shown,
                "engine": setting["engine"],
                "answer_logprobs": setting.get("answer_logprobs", True),
                **result,
            }
        )
        rates = ", ".join(f"{x:.1f}" for x in result["rates"])
        print(f"  {result['pairs_per_s']:.2f} pairs/s (rounds: {rates})", flush=True)

    base = rows[0]["pairs_per_s"] if rows else 1.0
    lines = [
        "# vLLM CPU settings on this machine",
        "",
        f"Written by `python bench/bench_engine_settings.py`: {args.pairs} pairs x 2 orders, "
        f"{args.max_tokens} tokens, engine called in process, one fresh process per setting, "
        f"{args.repeats} rounds of new creatives each. Every row runs eagerly (`enforce_eager`, "
        "the CPU default of short jobs) except the compiled ones.",
        "",
        "| setting | env | engine args | pairs/s (median) | rounds | x first row |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        env = " ".join(f"{k}={v}" for k, v in r["env"].items()) or "-"
        eng = " ".join(f"{k}={v}" for k, v in r["engine"].items()) or "-"
        if not r["answer_logprobs"]:
            eng += " (no log-probabilities requested)"
        lines.append(
            f"| {r['setting']} | {env} | {eng} | {r['pairs_per_s']:.2f} | "
            f"{', '.join(f'{x:.1f}' for x in r['rates'])} | {r['pairs_per_s'] / base:.2f} |"
        )
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(
        json.dumps({"pairs": args.pairs, "max_tokens": args.max_tokens, "rows": rows}, indent=2)
    )
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
