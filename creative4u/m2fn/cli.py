"""`creative4u m2fn`: train, evaluate and ablate the M2FN CTR model.

Options come from the config dataclasses (`creative4u.m2fn.config`); this module imports nothing
heavy, so `creative4u --help` stays fast.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def register(parser: argparse.ArgumentParser) -> None:
    from creative4u.m2fn.args import add_run_arguments

    sub = parser.add_subparsers(dest="m2fn_command", metavar="SUBCOMMAND")

    p = sub.add_parser(
        "train",
        help="train on a dataset folder's impression table, evaluate, write a checkpoint",
        description="Train M2FN on DATA/impressions.parquet (images under card.json's images_root "
        "or --images), select the best epoch on validation SPRC, report test SPRC / LCC and "
        "pairwise accuracy on the CreativePair test split, and write OUT (model.safetensors, "
        "config.json). Run it again after an interruption to resume. Multi-device: "
        "`accelerate launch -m creative4u.m2fn.train` with the same options.",
    )
    add_run_arguments(p)
    p.set_defaults(func=run_train)

    p = sub.add_parser(
        "ablate",
        help="train table 4's and HCCM's configurations over seeds; write ablation.md/.json/.png",
        description="Train the eight module configurations of the paper's table 4 (image only, "
        "concatenation, ..., all four modules) and five HCCM rows (category attention, category "
        "map, hybrid CNN, all three on the full model and on concatenation) on the same cells, "
        "once per seed, into OUT/<name>/seed<k>/, and write OUT/ablation.json, OUT/ablation.md "
        "(mean ± standard deviation over the seeds) and OUT/ablation.png. Module switches given "
        "here are ignored; the other fields apply to every configuration. Run it again after an "
        "interruption to continue.",
    )
    p.add_argument(
        "--seeds",
        type=int,
        nargs="+",
        default=None,
        help="training seeds, each a full set of runs (default: 0 1 2)",
    )
    add_run_arguments(p, skip=("seed",))
    p.set_defaults(func=run_ablate)

    p = sub.add_parser(
        "score",
        help="predicted CTR of images in a context (JSON lines)",
        description="Print one JSON line per image: its predicted CTR in the given context.",
    )
    p.add_argument("checkpoint", help="M2FN checkpoint folder")
    p.add_argument("images", nargs="+", help="image files")
    p.add_argument("--context", default="{}", help='JSON object, e.g. {"query": "red dress"}')
    p.set_defaults(func=run_score)


def run_train(args: argparse.Namespace) -> int:
    import logging

    from creative4u.m2fn.args import configs_from
    from creative4u.m2fn.train import print_metrics, train

    model_cfg, cfg = configs_from(args)
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    metrics = train(model_cfg, cfg)
    if metrics:
        print_metrics(metrics, cfg.out)
    return 0


def run_ablate(args: argparse.Namespace) -> int:
    from creative4u.m2fn.ablate import DEFAULT_SEEDS, ablate
    from creative4u.m2fn.args import configs_from

    model_cfg, cfg = configs_from(args)
    ablate(model_cfg, cfg, tuple(args.seeds) if args.seeds else DEFAULT_SEEDS)
    print(Path(cfg.out, "ablation.md").read_text())
    return 0


def run_score(args: argparse.Namespace) -> int:
    from creative4u.m2fn import load

    context = json.loads(args.context)
    if not isinstance(context, dict):
        raise ValueError("--context must be a JSON object")
    scorer = load(args.checkpoint)
    for path, ctr in zip(args.images, scorer.score(args.images, context), strict=True):
        print(json.dumps({"image": path, "ctr": ctr}))
    return 0
