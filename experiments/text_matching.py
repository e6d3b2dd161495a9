"""A base after text-only word matching (creative4u/matching.py), saved as a model folder: the
second arm of experiments/results/match_marks.json (the demo's SFT from it, with
`--model_name_or_path`). The shipped base now has the same matching as its pretraining's stage
three (and SFT can run it with its own `match_steps`); this script keeps the experiment's two
steps apart.

    python experiments/text_matching.py models/small-base runs/exp/base_match --steps 600
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from creative4u.matching import train_matching  # noqa: E402
from creative4u.vlm import load  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("base")
    ap.add_argument("out")
    ap.add_argument("--steps", type=int, default=600)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--lr", type=float, default=3e-4)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    torch.manual_seed(args.seed)
    model, processor = load(args.base, dtype=torch.float32)
    report = train_matching(model, processor.tokenizer, args.steps, args.batch, args.lr, args.seed)
    for point in report["curve"]:
        print(json.dumps(point))
    out = Path(args.out)
    model.save_pretrained(out)
    processor.save_pretrained(out)
    (out / "text_matching.json").write_text(
        json.dumps({"base": args.base, **vars(args), **report}, indent=1) + "\n"
    )


if __name__ == "__main__":
    main()
