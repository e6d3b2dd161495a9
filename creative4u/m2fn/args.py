"""Command-line options generated from the config dataclasses, so that every recipe field can be
set from the command line (`--image_size 96` or `--image-size 96`, `--no-ocr` for a flag that is
on by default, `--widths 16 32 64`), and a YAML recipe (`--config`) sets several at once."""

from __future__ import annotations

import argparse
import dataclasses
import types
import typing
from pathlib import Path
from typing import Any

from creative4u.m2fn.config import M2FNConfig, TrainConfig


def add_dataclass_arguments(
    parser: argparse.ArgumentParser, cls: type, skip: tuple[str, ...] = ()
) -> None:
    group = parser.add_argument_group(cls.__name__)
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        if f.name in skip:
            continue
        names = [f"--{f.name}"] + ([f"--{f.name.replace('_', '-')}"] if "_" in f.name else [])
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()  # type: ignore[misc]
        help_text = f.metadata.get("help", "") + f" (default: {default})"
        kind = _base_type(hints[f.name])
        # defaults are resolved later (recipe, then command line), so argparse keeps None
        if kind is bool:
            group.add_argument(
                *names,
                dest=f.name,
                action=argparse.BooleanOptionalAction,
                default=None,
                help=help_text,
            )
        elif kind is list:
            group.add_argument(*names, dest=f.name, nargs="+", default=None, help=help_text)
        else:
            group.add_argument(*names, dest=f.name, type=kind, default=None, help=help_text)


def _base_type(hint: Any) -> type:
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        return _base_type(args[0])
    if typing.get_origin(hint) is list or hint is list:
        return list
    return hint if isinstance(hint, type) else str


def build(cls: type, args: argparse.Namespace, recipe: dict[str, Any] | None = None) -> Any:
    """An instance of `cls` from the recipe's values overridden by the options given."""
    hints = typing.get_type_hints(cls)
    values: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        v = getattr(args, f.name, None)
        if v is None and recipe and f.name in recipe:
            v = recipe[f.name]
        if v is None:
            continue
        if _base_type(hints[f.name]) is list:
            inner = typing.get_args(hints[f.name]) or (str,)
            v = [inner[0](x) for x in (v if isinstance(v, list) else [v])]
        values[f.name] = v
    return cls(**values)


def read_recipe(path: str | None) -> dict[str, Any]:
    if not path:
        return {}
    import yaml

    data = yaml.safe_load(Path(path).read_text()) or {}
    if not isinstance(data, dict):
        raise ValueError(f"{path}: a recipe is a mapping of field: value")
    known = {f.name for c in (M2FNConfig, TrainConfig) for f in dataclasses.fields(c)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ValueError(f"{path}: unknown field(s) {', '.join(unknown)}")
    return data


def add_run_arguments(parser: argparse.ArgumentParser, skip: tuple[str, ...] = ()) -> None:
    parser.add_argument("--config", default=None, help="YAML recipe of any fields below")
    add_dataclass_arguments(parser, TrainConfig, skip=skip)
    add_dataclass_arguments(parser, M2FNConfig)


def configs_from(args: argparse.Namespace) -> tuple[M2FNConfig, TrainConfig]:
    recipe = read_recipe(getattr(args, "config", None))
    train = build(TrainConfig, args, recipe)
    if not train.data or not train.out:
        raise ValueError("--data and --out are required")
    return build(M2FNConfig, args, recipe), train
