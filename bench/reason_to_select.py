"""Does GRPO pay off? SFT, then GRPO with and without the M2FN reward, against the honest
control (SFT continued for the same training time), all evaluated on the same test pairs in both
orders, each accuracy with its 95 % interval and each difference with a paired interval.

    python bench/reason_to_select.py --dataset runs/demo/dataset --m2fn runs/demo/m2fn \
        --model models/small-base --out bench/runs/rts [--sft-seconds 600 --grpo-seconds 600]

Writes OUT/results.json and bench/results/reason_to_select.json, and prints the table. Run it on
an otherwise idle machine: every stage is limited by wall-clock time.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from creative4u.metrics import paired_difference  # noqa: E402


def sh(cmd: list[str]) -> None:
    print("+", " ".join(cmd), flush=True)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    subprocess.run(cmd, check=True, cwd=ROOT, env=env)


def stage(module: str, recipe: str, *args: str) -> None:
    sh([sys.executable, "-m", module, "--config", recipe, *args])


def evaluate(model: Path, args: argparse.Namespace) -> dict:
    out = model / "eval"
    if not (out / "metrics.json").exists():
        cmd = [
            sys.executable,
            "-m",
            "creative4u",
            "eval",
            "--model",
            str(model),
            "--dataset",
            args.dataset,
        ]
        cmd += [
            "--split",
            "test",
            "--out",
            str(out),
            "--baselines",
            "chance,oracle,m2fn",
            "--m2fn",
            args.m2fn,
        ]
        if args.eval_pairs:
            cmd += ["--max-pairs", str(args.eval_pairs)]
        sh(cmd)
    m = json.loads((out / "metrics.json").read_text())
    m["records"] = [json.loads(line) for line in (out / "records.jsonl").read_text().splitlines()]
    return m


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--dataset", required=True)
    p.add_argument("--m2fn", required=True)
    p.add_argument("--model", required=True, help="the from-scratch base (creative4u model init)")
    p.add_argument("--out", default="bench/runs/reason_to_select")
    p.add_argument("--sft-recipe", default="recipes/small/sft.yaml")
    p.add_argument("--grpo-recipe", default="recipes/small/grpo.yaml")
    p.add_argument("--sft-seconds", type=float, default=600)
    p.add_argument("--grpo-seconds", type=float, default=600)
    p.add_argument(
        "--continue-lr", type=float, default=2e-4, help="learning rate of the continued-SFT control"
    )
    p.add_argument("--eval-pairs", type=int, default=None)
    p.add_argument(
        "--sft-policy",
        default=None,
        help="an SFT policy already trained on --dataset (e.g. the demo's runs/demo/sft): copied "
        "in as the SFT arm instead of training one",
    )
    p.add_argument(
        "--hard-pairs",
        type=int,
        default=0,
        help="GRPO trains on the pairs its starting policy gets wrong among this many (rl.train "
        "hard_pairs); the control then also gets the seconds GRPO spent finding them",
    )
    args = p.parse_args()
    out = Path(args.out)
    runs = {
        "sft": out / "sft",
        "grpo_m2fn": out / "grpo_m2fn",
        "grpo_no_m2fn": out / "grpo_no_m2fn",
        "sft_continued": out / "sft_continued",
    }
    common = ["--dataset_path", args.dataset]
    if args.sft_policy and not runs["sft"].exists():
        shutil.copytree(args.sft_policy, runs["sft"], ignore=shutil.ignore_patterns("checkpoint-*"))
    if not (runs["sft"] / "creative4u_run.json").exists():
        stage(
            "sft",
            args.sft_recipe,
            *common,
            "--model_name_or_path",
            args.model,
            "--output_dir",
            str(runs["sft"]),
            "--max_steps",
            "100000",
            "--max_train_seconds",
            str(args.sft_seconds),
        )
    sft_steps = json.loads((runs["sft"] / "creative4u_run.json").read_text())["global_step"]
    grpo = [
        *common,
        "--model_name_or_path",
        str(runs["sft"]),
        "--m2fn_checkpoint",
        args.m2fn,
        "--max_steps",
        "100000",
        "--max_train_seconds",
        str(args.grpo_seconds),
        "--hard_pairs",
        str(args.hard_pairs),
    ]
    if not (runs["grpo_m2fn"] / "creative4u_run.json").exists():
        stage("rl", args.grpo_recipe, *grpo, "--output_dir", str(runs["grpo_m2fn"]))
    if not (runs["grpo_no_m2fn"] / "creative4u_run.json").exists():
        stage(
            "rl",
            args.grpo_recipe,
            *grpo,
            "--output_dir",
            str(runs["grpo_no_m2fn"]),
            "--reward_funcs",
            "format",
            "correct",
            "consistency",
            "--reward_weights",
            "0.2",
            "1.0",
            "0.2",
        )
    # equal time: GRPO's training seconds plus what it spent finding its hard pairs
    mined = json.loads((runs["grpo_m2fn"] / "creative4u_run.json").read_text()).get("hard_pairs")
    control_seconds = args.grpo_seconds + (mined["seconds"] if mined else 0.0)
    if not (runs["sft_continued"] / "creative4u_run.json").exists():
        stage(
            "sft",
            args.sft_recipe,
            *common,
            "--model_name_or_path",
            str(runs["sft"]),
            "--output_dir",
            str(runs["sft_continued"]),
            "--max_steps",
            "100000",
            "--max_train_seconds",
            str(control_seconds),
            "--learning_rate",
            str(args.continue_lr),
            "--warmup_steps",
            "0",
            "--match_steps",
            "0",  # the SFT policy already had its word matching: the control is more SFT only
        )

    metrics = {name: evaluate(path, args) for name, path in runs.items()}
    table = {}
    for name, m in metrics.items():
        card = json.loads((runs[name] / "creative4u_run.json").read_text())
        table[name] = {
            k: m.get(k)
            for k in (
                "accuracy",
                "accuracy_ci",
                "well_formed_rate",
                "first_slot_rate",
                "swap_agreement",
                "faithfulness",
                "ece",
                "n_pairs",
            )
        } | {"train_seconds": card.get("train_seconds"), "steps": card.get("global_step")}
    diffs = {
        "grpo_m2fn - sft": paired_difference(
            metrics["grpo_m2fn"]["records"], metrics["sft"]["records"]
        ),
        "grpo_m2fn - sft_continued": paired_difference(
            metrics["grpo_m2fn"]["records"], metrics["sft_continued"]["records"]
        ),
        "grpo_no_m2fn - sft_continued": paired_difference(
            metrics["grpo_no_m2fn"]["records"], metrics["sft_continued"]["records"]
        ),
        "grpo_m2fn - grpo_no_m2fn": paired_difference(
            metrics["grpo_m2fn"]["records"], metrics["grpo_no_m2fn"]["records"]
        ),
    }
    result = {
        "runs": table,
        "differences": diffs,
        "baselines": metrics["sft"]["baselines"],
        "sft_steps": sft_steps,
        "control_seconds": control_seconds,
        "settings": vars(args),
    }
    (out / "results.json").write_text(json.dumps(result, indent=2) + "\n")
    (ROOT / "bench" / "results").mkdir(parents=True, exist_ok=True)
    (ROOT / "bench" / "results" / "reason_to_select.json").write_text(
        json.dumps(result, indent=2) + "\n"
    )
    print(
        f"\n{'run':16s} {'accuracy':>9s} {'95% CI':>16s} {'well-formed':>12s} {'first slot':>11s} {'swap agree':>11s} {'faithful':>9s}"
    )
    for name, r in table.items():
        lo, hi = r["accuracy_ci"]
        print(
            f"{name:16s} {r['accuracy']:9.3f} [{lo:.3f}, {hi:.3f}] {r['well_formed_rate']:12.3f} {r['first_slot_rate'] or 0:11.3f} {r['swap_agreement'] or 0:11.3f} {r['faithfulness'] or 0:9.3f}"
        )
    for k, v in result["baselines"].items():
        print(f"baseline {k:8s} {v:9.3f}")
    for k, d in diffs.items():
        print(f"{k:30s} {d['difference']:+.3f} [{d['ci_low']:+.3f}, {d['ci_high']:+.3f}]")


if __name__ == "__main__":
    main()
