"""What `/v1/select` costs in CPU besides the engine: the API in front of an engine that answers
at once.

`bench/bench_serve.py` finds the API a few percent slower than the engine it serves, on two cores
the engine needs whole. This takes the engine out: an `InstantEngine` returns one well-formed
protocol answer (with the answer letter's probabilities) without generating anything, so the
server's CPU per request is the API's own (HTTP, JSON, reading and fitting the creatives,
combining the two orders, writing the result), measured with `bench_serve.py`'s clients in a
process of their own. Conditions, alternated every round:

  raw      - 320 x 320 creatives, as `bench_serve.py` sends them (decoded and fitted by the API);
  fitted   - the same creatives already at the model's size (the fit is then a no-op and the
             PNGs are a tenth as large): the API's cost without the image work;
  pool 1   - raw, with the image pool at one thread instead of one per core;
  inline   - raw, with the image work run on the event loop itself (no pool hand-offs).

It also times decoding the creatives' PNGs with Pillow (what the API uses) and with OpenCV.

    python experiments/api_cpu_instant_engine.py --model models/small-base --rounds 3

Writes experiments/results/api_cpu_instant_engine.json.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "bench")]

from bench_serve import make_pairs, run_clients, start_servers, stop_servers, write_bodies  # noqa: E402

from creative4u.engines import Completion, Engine  # noqa: E402
from creative4u.protocol import DIMENSION_IDS, DimensionVerdict, Verdict, render  # noqa: E402

CONDITIONS = ("raw", "fitted", "pool 1", "inline")


class InstantEngine(Engine):
    """Answers every chat at once with the same verdict (A wins, P(A) 0.7 at the answer)."""

    kind = "instant"

    def __init__(self, processor: Any):
        super().__init__(processor, "creative4u")
        dims = {q: DimensionVerdict(q, "A>B", f"A looks better on {q}") for q in DIMENSION_IDS}
        self.text = render(
            Verdict(winner="A", identical=False, indistinguishable=False, dimensions=dims)
        )

    async def complete(self, chat: Any, params: Any, *, continue_text: str | None = None):
        pieces = list(self.text)
        steps: list[dict[str, float]] = [{} for _ in pieces]
        steps[self.text.index("<answer>") + len("<answer>")] = {"A": -0.357, "B": -1.204}
        return Completion(self.text, "stop", 50, len(pieces), pieces, [0.0] * len(pieces), steps)

    async def stream(self, chat: Any, params: Any):  # pragma: no cover - not served here
        raise NotImplementedError


def use_image_work(condition: str, pool_threads: int) -> None:
    """Point the API's image hand-offs at the condition's pool (or at the event loop)."""
    import creative4u.images as images
    import creative4u.selection as selection
    import serve.inputs as inputs

    if condition == "inline":

        async def run_here(fn: Any, *args: Any) -> Any:
            return fn(*args)

        hand_off = run_here
    else:
        threads = 1 if condition == "pool 1" else pool_threads
        if images._POOL is not None:
            images._POOL.shutdown()  # idle by now: the last condition's requests have answered
        images._POOL = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="img")
        hand_off = images.in_image_pool
    inputs.in_image_pool = selection.in_image_pool = hand_off


def decode_times(pngs: list[bytes]) -> dict[str, float]:
    """ms per creative, best of three passes, Pillow (as `load_image`: open, load) and OpenCV."""
    import numpy as np
    from PIL import Image

    def pillow(data: bytes) -> Any:
        img = Image.open(io.BytesIO(data))
        img.load()
        return img

    ways = {"pillow": pillow}
    try:
        import cv2

        ways["opencv"] = lambda data: cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    except ImportError:
        pass
    out = {}
    for name, fn in ways.items():
        best = float("inf")
        for _ in range(3):
            t0 = time.perf_counter()
            for data in pngs:
                fn(data)
            best = min(best, time.perf_counter() - t0)
        out[name] = 1000 * best / len(pngs)
    return out


async def measure(model: str, n: int, concurrency: int, rounds: int) -> dict[str, Any]:
    from transformers import AutoProcessor

    from creative4u.images import fit_to_pixels, processor_pixel_bounds, to_png_bytes
    from serve.app import create_app
    from serve.config import Limits, ServeConfig

    processor = AutoProcessor.from_pretrained(model)
    bounds = processor_pixel_bounds(processor)
    cfg = ServeConfig(
        default_max_tokens=64,
        max_concurrency=concurrency,
        max_queue=n + 8,
        probe_answer=False,
        limits=Limits(),
    )
    servers, tasks, bases = await start_servers({"api": create_app(InstantEngine(processor), cfg)})
    url = f"{bases['api']}/v1/select"
    work = Path(tempfile.mkdtemp(prefix="api_cpu_"))
    pairs = make_pairs(n, 5)
    fitted = [(fit_to_pixels(a, *bounds), fit_to_pixels(b, *bounds)) for a, b in pairs]
    bodies = {
        "raw": write_bodies(work / "raw.jsonl", pairs, 64),
        "fitted": write_bodies(work / "fitted.jsonl", fitted, 64),
    }
    pool_threads = max(1, len(os.sched_getaffinity(0)))
    runs: dict[str, list[dict[str, float]]] = {c: [] for c in CONDITIONS}
    try:
        use_image_work("raw", pool_threads)
        await run_clients(url, bodies["raw"], concurrency)  # warm-up
        for r in range(rounds):
            for condition in CONDITIONS if r % 2 == 0 else CONDITIONS[::-1]:
                use_image_work(condition, pool_threads)
                cpu0 = time.process_time()
                res = await run_clients(url, bodies.get(condition, bodies["raw"]), concurrency)
                cpu = time.process_time() - cpu0
                runs[condition].append(
                    {
                        "requests_per_s": n / res["seconds"],
                        "server_cpu_ms_per_request": 1000 * cpu / n,
                        "client_cpu_ms_per_request": 1000 * res["cpu_s"] / n,
                    }
                )
                print(
                    f"round {r + 1} {condition:<7} {n / res['seconds']:6.0f} requests/s, "
                    f"server CPU {1000 * cpu / n:.2f} ms a request",
                    flush=True,
                )
    finally:
        await stop_servers(servers, tasks)
    pngs = [to_png_bytes(img) for pair in pairs[:64] for img in pair]
    return {
        "fitted_size": list(fitted[0][0].size),
        "runs": runs,
        "median_server_cpu_ms_per_request": {
            c: statistics.median(x["server_cpu_ms_per_request"] for x in v) for c, v in runs.items()
        },
        "png_decode_ms_per_creative": decode_times(pngs),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default=str(ROOT / "models" / "small-base"))
    p.add_argument("--requests", type=int, default=1000)
    p.add_argument("--concurrency", type=int, default=32)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument(
        "--out", default=str(ROOT / "experiments" / "results" / "api_cpu_instant_engine.json")
    )
    args = p.parse_args()

    import uvloop

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:  # as `creative4u serve`
        record = runner.run(measure(args.model, args.requests, args.concurrency, args.rounds))
    record.update(requests=args.requests, concurrency=args.concurrency, rounds=args.rounds)
    print(json.dumps(record["median_server_cpu_ms_per_request"], indent=2))
    print("PNG decoding, ms a creative:", record["png_decode_ms_per_creative"])
    Path(args.out).write_text(json.dumps(record, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
