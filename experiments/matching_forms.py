"""Word matching in every form the base decides on equality, on top of a base: the probe before
pretraining's stage three learnt the perception tasks' own question and comparison line.

The shipped base's stage three taught equality in the protocol's marked lines only
(`A red yes, B blue no => A>B`); on its held-out world it still answered NO to every
one-creative question (`title says red; A shows red; NO`), and its query and title comparisons
lagged the rest. This continues a base with text-only lines of the forms asked for
(`creative4u.matching.FORMS`), 16 corpus examples rehearsed per step as stage three does, and
saves it; `experiments/perception_compare.py` then scores it against the base.

    python experiments/matching_forms.py models/small-base runs/exp/forms --steps 300
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
from pretrain.train import corpus_batches  # noqa: E402


def main() -> None:
    from datasets import load_from_disk

    ap = argparse.ArgumentParser()
    ap.add_argument("base")
    ap.add_argument("out")
    ap.add_argument("--corpus", default="runs/pretrain/corpus")
    ap.add_argument("--forms", nargs="+", default=list(FORMS), choices=FORMS)
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--rehearsal", type=int, default=16)
    ap.add_argument("--lr", type=float, default=3e-4)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    torch.manual_seed(args.seed)
    model, processor = load(args.base, dtype=torch.float32)
    corpus = load_from_disk(args.corpus)
    rehearsal = corpus_batches(
        corpus["train"], processor, args.rehearsal, SimpleNamespace(max_length=None, seed=args.seed)
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
    (out / "matching_forms.json").write_text(
        json.dumps({"base": args.base, **vars(args), **report}, indent=1) + "\n"
    )


if __name__ == "__main__":
    main()
