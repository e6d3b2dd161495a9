"""Score every `checkpoint-N` of a training run on validation pairs in both orders.

The same greedy transformers path and metrics as SFT's own validation (`creative4u.validation`),
one JSON line per checkpoint, so a learning curve can be read off a single run.

    python experiments/score_checkpoints.py RUN_DIR DATASET [--max-pairs 128] [--out FILE]
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("run")
    ap.add_argument("dataset")
    ap.add_argument("--split", default="validation")
    ap.add_argument("--max-pairs", type=int, default=128)
    ap.add_argument("--out", default=None)
    args = ap.parse_args()

    from datasets import load_from_disk

    from creative4u.threads import respect_omp_thread_limit
    from creative4u.validation import validation_accuracy
    from creative4u.vlm import load

    respect_omp_thread_limit()
    split = load_from_disk(args.dataset)[args.split]
    ckpts = sorted(
        (p for p in Path(args.run).glob("checkpoint-*") if p.is_dir()),
        key=lambda p: int(re.sub(r"\D", "", p.name)),
    )
    out = Path(args.out or Path(args.run) / "curve.jsonl")
    with out.open("a") as fh:
        for ckpt in ckpts:
            model, processor = load(str(ckpt), dtype="float32")
            metrics = validation_accuracy(model, processor, split, max_pairs=args.max_pairs)
            row = {"checkpoint": ckpt.name, "step": int(ckpt.name.split("-")[-1]), **metrics}
            print(json.dumps(row), flush=True)
            fh.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    main()
