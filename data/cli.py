"""`creative4u data`: simulate a world, build CreativePair from click logs."""

from __future__ import annotations

import argparse


def register(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="data_command", metavar="SUBCOMMAND")

    from data import simulate

    p = sub.add_parser(
        "simulate",
        help="build a CreativeSim world: creatives, click log, truth",
        description="Render CreativeSim creatives and sample a click log from its hidden click model; "
        "write OUT/images, OUT/logs.parquet, OUT/truth.parquet, OUT/world.json and OUT/README.md, "
        "and report how hard the world is.",
    )
    simulate.add_arguments(p)
    p.set_defaults(func=simulate.run)

    from data import build

    p = sub.add_parser(
        "build",
        help="build a CreativePair dataset from click logs and creative images",
        description="Validate a click log (bad rows quarantined with a reason), aggregate CTR per "
        "creative and query, mine and label same-product pairs, split by product, write a "
        "rationale per pair, and save the dataset with its impression table and card.",
    )
    build.add_arguments(p)
    p.set_defaults(func=build.run)

    from data import warehouse

    p = sub.add_parser(
        "warehouse-sql",
        help="the SQL that pre-aggregates a click log in any warehouse, for data build",
        description="Print the standard-SQL aggregation of a click log into CTR cells (one row per "
        "creative and context cell, impressions and clicks summed), which `data build --logs` "
        "reads as it reads a raw log, and the count of the rows it leaves out.",
    )
    warehouse.add_arguments(p)
    p.set_defaults(func=warehouse.run)

    from data import pretrain_corpus

    p = sub.add_parser(
        "pretrain-corpus",
        help="the perception corpus a from-scratch base is pretrained on (no clicks)",
        description="Render CreativeSim worlds disjoint from the demo's, fitted to a model's pixel "
        "bounds, and write perception examples (describe one or two creatives, copy the query's "
        "or the title's word, compare two creatives) with a held-out world. Never samples clicks.",
    )
    pretrain_corpus.add_arguments(p)
    p.set_defaults(func=pretrain_corpus.run)
