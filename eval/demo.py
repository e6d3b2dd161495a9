"""`creative4u demo`: the product's main job, end to end, on its embedded defaults.

Simulate the default world, build CreativePair, train M2FN, CoT-SFT of the shipped perception-
pretrained `small` base (`models/small-base`, rebuilt by `creative4u model pretrain`), GRPO with
the M2FN reward, calibrate its confidence on validation, evaluate against the baselines, then
show one explained selection and print the command that serves the selector. Each step runs the same command a user would run (so
the demo exercises the real entry points), shows its progress and time, and is skipped on a rerun
when its inputs have not changed (a step's key hashes its command and the keys of the steps it
reads from, and the bytes of the files it names as inputs, such as the base's weights).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shlex
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class Step:
    name: str
    title: str
    cmd: list[str]
    output: Path
    after: list[str] = field(default_factory=list)
    inputs: list[Path] = field(default_factory=list)  # files whose bytes are part of the key
    owns: Path | None = None
    """A folder only this step writes (a trainer's output): emptied before the step runs under
    a new key, so a changed recipe never resumes a stale checkpoint; kept when the same step
    was interrupted, so it resumes."""


# The pretrained base every demo starts from: it ships with the project, so nobody pretrains.
BASE = Path("models/small-base")


def register(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--out", default="runs/demo", help="where everything goes (default: runs/demo)"
    )
    parser.add_argument("--force", action="store_true", help="redo every step, even finished ones")
    parser.add_argument(
        "--eval-pairs", type=int, default=300, help="test pairs evaluated (default: 300)"
    )
    parser.set_defaults(func=run)


def steps(out: Path, eval_pairs: int) -> list[Step]:
    py = [sys.executable]
    launch = [
        *py,
        "-m",
        "accelerate.commands.launch",
        "--config_file",
        "recipes/accelerate/cpu.yaml",
    ]
    world, ds, m2fn, model = out / "world", out / "dataset", out / "m2fn", BASE
    sft, grpo, report = out / "sft", out / "grpo", out / "report"
    c4u = [*py, "-m", "creative4u"]
    return [
        Step(
            "world",
            "simulate the CreativeSim world",
            [*c4u, "data", "simulate", str(world), "--force"],
            world / "world.json",
        ),
        Step(
            "dataset",
            "build CreativePair with scene-teacher rationales",
            [
                *c4u,
                "data",
                "build",
                "--logs",
                str(world / "logs.parquet"),
                "--images",
                str(world / "images"),
                "--out",
                str(ds),
                "--teacher",
                "scene",
                "--keep-unlabelled",
                "--force",
            ],
            ds / "card.json",
            ["world"],
        ),
        Step(
            "m2fn",
            "train M2FN on the impression table (the base's vision tower as its fixed network)",
            [
                *c4u,
                "m2fn",
                "train",
                "--config",
                "recipes/small/m2fn.yaml",
                "--vision_tower",
                str(model),
                "--data",
                str(ds),
                "--out",
                str(m2fn),
            ],
            m2fn / "config.json",
            ["dataset"],
            [model / "model.safetensors"],
            owns=m2fn,
        ),
        Step(
            "sft",
            "CoT-SFT of the shipped pretrained base",
            [
                *launch,
                "-m",
                "sft",
                "--config",
                "recipes/small/sft.yaml",
                "--model_name_or_path",
                str(model),
                "--dataset_path",
                str(ds),
                "--output_dir",
                str(sft),
            ],
            sft / "creative4u_run.json",
            ["dataset"],
            [model / "model.safetensors"],
            owns=sft,
        ),
        Step(
            "grpo",
            "GRPO with format, correctness, M2FN and consistency rewards",
            [
                *launch,
                "-m",
                "rl",
                "--config",
                "recipes/small/grpo.yaml",
                "--model_name_or_path",
                str(sft),
                "--dataset_path",
                str(ds),
                "--m2fn_checkpoint",
                str(m2fn),
                "--output_dir",
                str(grpo),
            ],
            grpo / "creative4u_run.json",
            ["sft", "m2fn"],
            owns=grpo,
        ),
        Step(
            "calibrate",
            "calibrate the selector's confidence on the validation split",
            [
                *c4u,
                "calibrate",
                "--model",
                str(grpo),
                "--dataset",
                str(ds),
                "--max-pairs",
                "200",
            ],
            grpo / "calibration.json",
            ["grpo"],
        ),
        Step(
            "report",
            "evaluate against the baselines",
            [
                *c4u,
                "eval",
                "--model",
                str(grpo),
                "--dataset",
                str(ds),
                "--split",
                "test",
                "--out",
                str(report),
                "--m2fn",
                str(m2fn),
                "--base-model",
                str(model),
                "--max-pairs",
                str(eval_pairs),
            ],
            report / "metrics.json",
            ["calibrate"],
        ),
    ]


def export_example(dataset: Path, out: Path, split: str = "test", index: int = 0) -> dict:
    """Write one CreativePair row's creatives as PNG files (what a user would have on disk) and
    return their paths with the row's query, title and click label."""
    from datasets import load_from_disk

    from creative4u.images import load_image

    row = load_from_disk(str(dataset))[split][index]
    out.mkdir(parents=True, exist_ok=True)
    paths = {}
    for side in ("a", "b"):
        paths[side] = out / f"creative_{side}.png"
        load_image(row[f"image_{side}"]).save(paths[side])
    return {**paths, "query": row["query"], "title": row["title"], "label": row["label"]}


def select_command(example: dict, model: Path, m2fn: Path | None = None) -> list[str]:
    """`creative4u select` on an exported example, the command the demo runs and prints (with
    M2FN's predicted CTRs next to the verdict when a checkpoint is given)."""
    return [
        sys.executable,
        "-m",
        "creative4u",
        "select",
        str(example["a"]),
        str(example["b"]),
        "--query",
        example["query"],
        "--title",
        example["title"],
        "--model",
        str(model),
        *(["--m2fn", str(m2fn)] if m2fn else []),
    ]


def step_key(step: Step, keys: dict[str, str]) -> str:
    h = hashlib.sha256(json.dumps([step.cmd[1:], [keys[a] for a in step.after]]).encode())
    for path in [*(Path(a) for a in step.cmd if a.endswith(".yaml")), *step.inputs]:
        h.update(path.read_bytes())
    return h.hexdigest()[:16]


def run(args: argparse.Namespace) -> int:
    out = Path(args.out)
    if not (BASE / "model.safetensors").is_file():
        print(
            f"creative4u demo: the pretrained base {BASE} is missing; it ships with the project "
            "(run from the repository root), or rebuild it with "
            "`creative4u model pretrain --config recipes/small/pretrain.yaml`",
            file=sys.stderr,
        )
        return 2
    state_dir = out / ".steps"
    state_dir.mkdir(parents=True, exist_ok=True)
    keys: dict[str, str] = {}
    plan = steps(out, args.eval_pairs)
    t_all = time.time()
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(Path.cwd()), os.environ.get("PYTHONPATH", "")]),
    }
    for i, step in enumerate(plan, 1):
        key = keys[step.name] = step_key(step, keys)
        marker = state_dir / f"{step.name}.json"
        done = (
            marker.exists()
            and json.loads(marker.read_text()).get("key") == key
            and step.output.exists()
        )
        head = f"[{i}/{len(plan)}] {step.title}"
        if done and not args.force:
            print(f"{head}: done earlier, reused ({step.output})", flush=True)
            continue
        print(f"{head} ...", flush=True)
        started = state_dir / f"{step.name}.started"
        if step.owns is not None and step.owns.exists():
            same = started.exists() and started.read_text().strip() == key
            if args.force or not same:  # another recipe or input: never resume its checkpoints
                shutil.rmtree(step.owns)
        started.write_text(key + "\n")
        t0 = time.time()
        res = subprocess.run(step.cmd, env=env)
        if res.returncode != 0:
            print(
                f"{head}: failed (exit {res.returncode}); command:\n  {' '.join(step.cmd)}",
                file=sys.stderr,
            )
            return res.returncode
        marker.write_text(json.dumps({"key": key, "seconds": round(time.time() - t0, 1)}) + "\n")
        print(f"{head}: {time.time() - t0:.0f}s", flush=True)
    metrics = json.loads((out / "report" / "metrics.json").read_text())
    print(f"\nall steps in {time.time() - t_all:.0f}s; report: {out / 'report' / 'report.md'}")
    print(
        f"selector accuracy {metrics['accuracy']:.3f} on {metrics['n_pairs']} test pairs; baselines:"
    )
    for k, v in metrics["baselines"].items():
        print(f"  {k:10s} {v:.3f}")
    example = export_example(out / "dataset", out / "example")
    cmd = select_command(example, out / "grpo", out / "m2fn")
    print(
        f"\none explained selection: a test pair for {example['query']!r} "
        f"(users clicked {example['label']} more)"
    )
    print("  creative4u " + shlex.join(cmd[3:]), flush=True)
    res = subprocess.run(cmd, env=env)
    if res.returncode != 0:
        print(f"one explained selection: failed (exit {res.returncode})", file=sys.stderr)
        return res.returncode
    print("\nserve the selector with its UI:")
    print(
        f"  creative4u serve --model {out / 'grpo'} --m2fn {out / 'm2fn'}   # then open http://127.0.0.1:8000/ui"
    )
    return 0
