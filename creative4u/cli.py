"""The `creative4u` command: one console script, one subcommand per job.

The core library owns `model` (and `m2fn` once it lands); the stages (data, eval, serve, demo)
plug their subcommands in through the `creative4u.commands` entry-point group, so the core never
imports a stage. A command whose stage is not installed says so instead of failing obscurely.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from importlib import import_module
from importlib.metadata import entry_points

# Every command the product offers, in the order `--help` lists them.
COMMANDS: dict[str, str] = {
    "model": "build and check from-scratch Qwen2.5-VL models",
    "data": "simulate a world, build CreativePair from click logs",
    "m2fn": "train, evaluate and ablate the M2FN CTR model",
    "eval": "evaluate a selector on a CreativePair split and write a report",
    "calibrate": "fit the selector's confidence on the validation split, stored with the model",
    "serve": "serve the selection API and the comparison UI",
    "select": "compare two creatives: winner, confidence, reasons",
    "rank": "rank several creatives by pairwise comparison",
    "ui": "the comparison page, on its own, against a running selection API",
    "demo": "the whole pipeline on the default world, end to end",
}

Register = Callable[[argparse.ArgumentParser], None]


def _registrars() -> dict[str, Callable[[], Register]]:
    """Name -> a loader of its registrar: the core's own, then those installed stages declare."""

    def core(module: str) -> Callable[[], Register]:
        return lambda: import_module(module).register

    found: dict[str, Callable[[], Register]] = {
        "model": core("creative4u.model_cli"),
        "m2fn": core("creative4u.m2fn.cli"),
    }
    for ep in entry_points(group="creative4u.commands"):
        found.setdefault(ep.name, ep.load)
    return found


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="creative4u",
        description="Explainable ad-creative selection: which creative will users click more, and why.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    registrars = _registrars()
    for name, help_text in COMMANDS.items():
        register = None
        if name in registrars:
            try:
                register = registrars[name]()
            except ModuleNotFoundError as e:
                if not _is_own_module(e.name):
                    raise  # a missing third-party dependency is a real error, not "not installed"
        if register is None:
            p = sub.add_parser(name, help=f"{help_text} (not installed)", description=help_text)
            p.set_defaults(func=_missing(name))
        else:
            register(sub.add_parser(name, help=help_text, description=help_text))
    return parser


def _is_own_module(name: str | None) -> bool:
    top = (name or "").split(".")[0]
    return top in {"creative4u", "data", "sft", "rl", "serve", "eval", "demo"}


def _missing(name: str) -> Callable[[argparse.Namespace], int]:
    def run(_: argparse.Namespace) -> int:
        print(
            f"creative4u {name}: this command's stage is not installed in this environment.",
            file=sys.stderr,
        )
        return 2

    return run


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    # A command that forwards fields to a recipe (`model pretrain --max_steps 10`) sets
    # `forwards_unknown`; every other command still refuses what it does not know.
    args, unknown = parser.parse_known_args(argv)
    if unknown and not getattr(args, "forwards_unknown", False):
        parser.error(f"unrecognized arguments: {' '.join(unknown)}")
    if getattr(args, "forwards_unknown", False):
        args.overrides = [*getattr(args, "overrides", []), *unknown]
    func = getattr(args, "func", None)
    if func is None:
        # a group without a subcommand: show its help
        parser.parse_args([*(argv if argv is not None else sys.argv[1:]), "--help"])
        return 2
    try:
        return int(func(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except (ValueError, FileNotFoundError) as e:
        print(f"creative4u {args.command}: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
