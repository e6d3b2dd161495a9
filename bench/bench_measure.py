"""Creative measuring (OCR, colour, texture, composition) in creatives per second: worker
processes against the thread pool the data build used before, and a rerun on the content cache,
side by side in one run on the same images.

    python bench/bench_measure.py                          # 96 CreativeSim creatives
    python bench/bench_measure.py --images-dir DIR --n 200

Writes bench/results/measure.json and bench/results/measure.md. Each pool starts from an empty
cache; the cached row rereads the process run's cache.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

RESULTS = Path(__file__).parent / "results"


def creatives(work: Path, n: int) -> list[Path]:
    import subprocess

    world = work / "world"
    products = max(2, -(-n // 6))
    subprocess.run(
        [sys.executable, "-m", "creative4u", "data", "simulate", str(world), "--products",
         str(products), "--creatives", "6", "--queries", "1", "--seed", "5"],
        check=True, stdout=subprocess.DEVNULL,
    )  # fmt: skip
    return sorted((world / "images").glob("*.png"))[:n]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images-dir", default=None)
    ap.add_argument("--n", type=int, default=96)
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    args = ap.parse_args()

    from data.featurize import measure_images

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        paths = (
            sorted(Path(args.images_dir).glob("*.png"))[: args.n]
            if args.images_dir
            else creatives(work, args.n)
        )
        images = {p.name: p for p in paths}
        rows = {}
        results = {}
        for name, pool, cache in (
            ("threads (before)", "thread", work / "cache_threads"),
            ("processes", "process", work / "cache_processes"),
            ("processes, cached", "process", work / "cache_processes"),
        ):
            t0 = time.perf_counter()
            results[name] = measure_images(
                images, workers=args.workers, progress=False, cache_dir=cache, pool=pool
            )
            rows[name] = len(images) / (time.perf_counter() - t0)
            print(f"{name:>20}: {rows[name]:7.2f} creatives/s", flush=True)
        same = results["threads (before)"] == results["processes"]
        ratios = {
            "processes / threads": rows["processes"] / rows["threads (before)"],
            "cached / processes": rows["processes, cached"] / rows["processes"],
        }
        for k, v in ratios.items():
            print(f"{k}: {v:.2f}x")
        print(f"identical features from both pools: {same}")
    out = {
        "n_images": len(images),
        "workers": args.workers,
        "creatives_per_second": rows,
        "ratios": ratios,
        "identical_features": same,
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform()},
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "measure.json").write_text(json.dumps(out, indent=2) + "\n")
    md = [
        "# Creative measuring: processes against threads",
        "",
        f"{len(images)} creatives, {args.workers} workers, one run.",
        "",
        "| pool | creatives/s |",
        "|---|---|",
        *[f"| {k} | {v:.2f} |" for k, v in rows.items()],
        "",
        *[f"- {k}: {v:.2f}x" for k, v in ratios.items()],
        f"- identical features from both pools: {same}",
    ]
    (RESULTS / "measure.md").write_text("\n".join(md) + "\n")


if __name__ == "__main__":
    main()
