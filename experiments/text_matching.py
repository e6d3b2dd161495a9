"""A base after text-only word matching (creative4u/matching.py), saved as a model folder: the
second arm of experiments/results/match_marks.json (the demo's SFT from it, with
`--model_name_or_path`), and the probe of experiments/results/matching_forms.json (the lines in
every form the base decides equality in, with corpus examples rehearsed as pretraining's stage
three does). The shipped base has the protocol's lines as its pretraining's stage three (and SFT
can run them with its own `match_steps`); this script keeps the experiments' steps apart.

    python experiments/text_matching.py models/small-base runs/exp/base_match --steps 600
    python experiments/text_matching.py models/small-base runs/exp/forms --steps 300 \
        --forms protocol question comparison --rehearsal 16
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from types import SimpleNamespace

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from creative4u.matching import FORMS, train_matching  # noqa: E402
from creative4u.vlm import load  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("base")
    ap.add_argument("out")
    ap.add_argument("--steps", type=int, default=600)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--lr", type=float, default=3e-4)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--forms", nargs="+", default=["protocol"], choices=FORMS)
    ap.add_argument(
        "--rehearsal", type=int, default=0, help="corpus examples rehearsed per step (0: none)"
    )
    ap.add_argument("--corpus", default="runs/pretrain/corpus", help="for --rehearsal")
    args = ap.parse_args()
    torch.manual_seed(args.seed)
    model, processor = load(args.base, dtype=torch.float32)
    rehearsal = None
    if args.rehearsal:
        from datasets import load_from_disk

        from pretrain.train import corpus_batches

        rehearsal = corpus_batches(
            load_from_disk(args.corpus)["train"],
            processor,
            args.rehearsal,
            SimpleNamespace(max_length=None, seed=args.seed),
        )
    report = train_matching(
        model,
        processor.tokenizer,
        args.steps,
        args.batch,
        args.lr,
        args.seed,
        rehearsal=rehearsal,
        forms=tuple(args.forms),
    )
    for point in report["curve"]:
        print(json.dumps(point), flush=True)
    out = Path(args.out)
    model.save_pretrained(out)
    processor.save_pretrained(out)
    (out / "text_matching.json").write_text(
        json.dumps({"base": args.base, **vars(args), **report}, indent=1) + "\n"
    )


if __name__ == "__main__":
    main()
