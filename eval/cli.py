"""`creative4u eval`: score a selector on a CreativePair split and write a report."""

from __future__ import annotations

import argparse


def register(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--model", required=True, help="model folder or hub id (or an adapter folder)"
    )
    parser.add_argument("--adapter", default=None, help="LoRA adapter on --model")
    parser.add_argument("--dataset", required=True, help="CreativePair dataset folder")
    parser.add_argument("--split", default="test")
    parser.add_argument(
        "--out", required=True, help="report folder (report.md, metrics.json, plots)"
    )
    parser.add_argument(
        "--engine",
        choices=["vllm", "transformers"],
        default="vllm",
        help="generation engine (default: vllm, as served)",
    )
    parser.add_argument(
        "--max-pairs", type=int, default=None, help="evaluate at most this many pairs"
    )
    parser.add_argument("--max-new-tokens", type=int, default=256)
    parser.add_argument(
        "--base-model", default=None, help="also score this untrained model as a baseline"
    )
    parser.add_argument(
        "--m2fn", default=None, help="M2FN checkpoint: its pairwise preference as a baseline"
    )
    parser.add_argument(
        "--baselines",
        default="chance,oracle,features,m2fn,base",
        help="comma-separated (default: all that apply)",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from eval.run import EvalConfig, evaluate

    cfg = EvalConfig(
        model=args.model,
        adapter=args.adapter,
        dataset=args.dataset,
        split=args.split,
        out=args.out,
        engine=args.engine,
        max_pairs=args.max_pairs,
        max_new_tokens=args.max_new_tokens,
        base_model=args.base_model,
        m2fn=args.m2fn,
        baselines=[b for b in args.baselines.split(",") if b],
    )
    m = evaluate(cfg)
    print(
        f"accuracy {m['accuracy']:.3f} [{m['accuracy_ci'][0]:.3f}, {m['accuracy_ci'][1]:.3f}] on {m['n_pairs']} pairs"
    )
    print(
        f"well-formed {m['well_formed_rate']:.3f}  swap agreement {m['swap_agreement']}  first slot {m['first_slot_rate']}"
    )
    for k, v in m["baselines"].items():
        print(f"  baseline {k}: {v:.3f}")
    print(f"report: {args.out}/report.md")
    return 0
