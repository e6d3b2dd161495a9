"""`creative4u model pretrain`: the whole pretraining from one recipe, in one command.

Builds what the recipe names and is missing (the from-scratch model with `model init`, the
perception corpus with `data pretrain-corpus`), then runs the training stage under `accelerate
launch`, each as the command a user would type, so the steps stay the documented ones. An
interrupted run resumes from its last checkpoint when the command is run again.
"""

from __future__ import annotations

import argparse
import os
import shlex
import subprocess
import sys
from pathlib import Path


def register(parser: argparse.ArgumentParser) -> None:
    """pretrain a from-scratch base on perception tasks (CreativeSim creatives, no clicks)"""
    parser.add_argument(
        "--config", default="recipes/small/pretrain.yaml", help="pretrain recipe (YAML)"
    )
    parser.add_argument(
        "--accelerate-config",
        default="recipes/accelerate/cpu.yaml",
        help="accelerate config (default: one CPU process)",
    )
    parser.epilog = (
        "Any other --field value pair overrides that recipe field, e.g. --max_steps 100 "
        "--output_dir runs/x."
    )
    parser.set_defaults(func=run, forwards_unknown=True, overrides=[])


def commands(config: str, accelerate_config: str, overrides: list[str]) -> list[list[str]]:
    """The commands this recipe needs, in order (steps whose output exists are left out)."""
    from trl import SFTConfig, TrlParser

    from creative4u.training import ModelArguments
    from pretrain.train import PretrainScriptArguments

    if not Path(config).is_file():
        raise FileNotFoundError(f"recipe {config} not found")
    parser = TrlParser((PretrainScriptArguments, SFTConfig, ModelArguments))
    script, _, model = parser.parse_args_and_config(["--config", config, *overrides])
    py, cmds = sys.executable, []
    if not Path(model.model_name_or_path).exists():
        cmds.append(
            [py, "-m", "creative4u", "model", "init", model.model_name_or_path]
            + ["--preset", script.init_preset]
        )
    if not (Path(script.corpus_path) / "corpus.json").exists():
        cmds.append(
            [py, "-m", "creative4u", "data", "pretrain-corpus", script.corpus_path, "--force"]
            + ["--model", model.model_name_or_path, "--train-seeds"]
            + [str(s) for s in script.train_seeds]
            + ["--heldout-seed", str(script.heldout_seed), "--products", str(script.products)]
            + ["--heldout-products", str(script.heldout_products)]
            + ["--train-examples", str(script.train_examples)]
            + ["--heldout-examples", str(script.heldout_examples)]
        )
    launch = [py, "-m", "accelerate.commands.launch", "--config_file", accelerate_config]
    cmds.append([*launch, "-m", "pretrain", "--config", config, *overrides])
    return cmds


def run(args: argparse.Namespace) -> int:
    overrides = [a for a in args.overrides if a != "--"]
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(Path.cwd()), os.environ.get("PYTHONPATH", "")]),
    }
    for cmd in commands(args.config, args.accelerate_config, overrides):
        print("+ " + shlex.join(cmd), flush=True)
        res = subprocess.run(cmd, env=env)
        if res.returncode != 0:
            print(
                f"creative4u model pretrain: step failed (exit {res.returncode})", file=sys.stderr
            )
            return res.returncode
    return 0
