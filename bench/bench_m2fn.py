"""M2FN scoring throughput on CPU: creatives per second of `score`, batched against one at a time,
for creatives whose colour / OCR are cached (seen in training) and for new ones (read now).

    python bench/bench_m2fn.py                       # a default-architecture model on synthetic creatives
    python bench/bench_m2fn.py --ckpt runs/m2fn --images-dir DIR

Writes bench/results/m2fn.json. The ratios (batched / one by one, cached / new) are measured side
by side in one run; absolute numbers depend on what else the machine is doing.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

RESULTS = Path(__file__).parent / "results" / "m2fn.json"


def synthetic_checkpoint(work: Path, size: int, ocr: bool) -> tuple[Path, list[Path]]:
    """A default-architecture checkpoint after one training step (scoring cost does not depend on
    how well the weights are trained) and the creatives it was made from."""
    from creative4u.m2fn import M2FNConfig, TrainConfig
    from creative4u.m2fn.synthetic import make_dataset
    from creative4u.m2fn.train import train

    ds = make_dataset(work / "ds", products=16, creatives=4, queries=1, cells=2, image_size=size)
    cfg = TrainConfig(data=str(ds), out=str(work / "ckpt"), max_steps=1, progress=False)
    train(M2FNConfig(ocr=ocr), cfg)
    return work / "ckpt", sorted((ds / "images").glob("*.png"))


def rate(n: int, fn) -> float:
    t0 = time.perf_counter()
    fn()
    return n / (time.perf_counter() - t0)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ckpt", default=None, help="M2FN checkpoint (default: build a synthetic one)")
    ap.add_argument("--images-dir", default=None, help="creatives to score (with --ckpt)")
    ap.add_argument("--n", type=int, default=64, help="creatives per measurement")
    ap.add_argument("--image-size", type=int, default=224, help="synthetic creatives' side")
    ap.add_argument("--no-ocr", action="store_true", help="synthetic model without OCR")
    ap.add_argument("--out", default=str(RESULTS))
    args = ap.parse_args()

    import torch
    from datasets import disable_progress_bars

    from creative4u.m2fn import load
    from creative4u.m2fn.image_features import FeatureCache

    disable_progress_bars()
    with tempfile.TemporaryDirectory() as tmp:
        if args.ckpt:
            ckpt = Path(args.ckpt)
            images = sorted(p for p in Path(args.images_dir).iterdir() if p.is_file())
        else:
            ckpt, images = synthetic_checkpoint(Path(tmp), args.image_size, not args.no_ocr)
        images = (images * (args.n // max(len(images), 1) + 1))[: args.n]
        context = [{"query": "red mug", "title": "Nova red mug", "position": 1}] * len(images)
        scorer = load(ckpt)
        scorer.cache = FeatureCache()  # start cold: the first pass reads colour and OCR
        new = rate(
            len(set(images)), lambda: scorer.score(sorted(set(images)), context[: len(set(images))])
        )
        batched = rate(len(images), lambda: scorer.score(images, context))
        single = rate(len(images), lambda: [scorer.score([im], context[:1]) for im in images])
        pairs = list(zip(images[0::2], images[1::2], context[0::2], strict=False))
        prefer_many = rate(len(pairs), lambda: scorer.prefer_many(pairs))
        prefer_one = rate(len(pairs), lambda: [scorer.prefer(a, b, c) for a, b, c in pairs])
        config = json.loads((ckpt / "config.json").read_text())["model"]

    result = {
        "creatives_per_s": {
            "score_batched_cached_features": round(batched, 1),
            "score_one_at_a_time_cached_features": round(single, 1),
            "score_new_creatives_reading_colour_and_ocr": round(new, 2),
        },
        "pairs_per_s": {
            "prefer_many": round(prefer_many, 1),
            "prefer_one_at_a_time": round(prefer_one, 1),
        },
        "ratios": {
            "batched_over_one_at_a_time": round(batched / single, 2),
            "cached_over_new": round(batched / new, 1),
        },
        "n": len(images),
        "model": {k: config[k] for k in ("backbone", "image_size", "widths", "ocr", "loss")},
        "cpu": {
            "cores": os.cpu_count(),
            "torch_threads": torch.get_num_threads(),
            "machine": platform.machine(),
        },
        "note": "shared machine: compare the ratios, not the absolute rates",
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
