"""Throughput of the data and training stages on this machine: `data build` rows per second, M2FN
training samples per second, SFT and GRPO samples per second for the tiny and small models.

    python bench/bench_train.py [--products 12 --sft-steps 10 --grpo-steps 4]

Each stage runs as users run it (the same entry points and recipes, a few steps, checkpoints and
validation off) on a small CreativeSim world built first; throughput is taken over the stage's own
training loop (`train_seconds` of its run card), so model loading is not counted. GRPO starts from
the freshly built model, whose completions run to `--grpo-completion-length` tokens: the slowest
case. Writes bench/results/train.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results" / "train.json"


def sh(cmd: list[str]) -> float:
    """Run a command from the repository root; return its wall time in seconds."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    t0 = time.perf_counter()
    res = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
    if res.returncode != 0:
        raise SystemExit(f"failed: {' '.join(cmd)}\n{res.stderr[-3000:]}")
    return time.perf_counter() - t0


def stage_rate(
    module: str, recipe: str, model: Path, data: Path, out: Path, extra: list[str]
) -> dict:
    """Samples per second of a training stage's loop, from its run card."""
    import yaml

    sh(
        [
            sys.executable,
            "-m",
            module,
            "--config",
            recipe,
            "--model_name_or_path",
            str(model),
            "--dataset_path",
            str(data),
            "--output_dir",
            str(out),
            "--save_strategy",
            "no",
            "--max_eval_pairs",
            "0",
            *extra,
        ]
    )
    card = json.loads((out / "creative4u_run.json").read_text())
    cfg = yaml.safe_load(Path(ROOT / recipe).read_text())
    batch = cfg["per_device_train_batch_size"] * cfg.get("gradient_accumulation_steps", 1)
    samples = card["global_step"] * batch
    return {
        "recipe": recipe,
        "steps": card["global_step"],
        "samples": samples,
        "seconds": card["train_seconds"],
        "samples_per_s": round(samples / card["train_seconds"], 2),
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--products", type=int, default=12, help="products in the benchmark world")
    ap.add_argument("--sft-steps", type=int, default=10)
    ap.add_argument("--grpo-steps", type=int, default=4)
    ap.add_argument("--grpo-completion-length", type=int, default=64)
    ap.add_argument("--m2fn-steps", type=int, default=40)
    ap.add_argument("--presets", nargs="+", default=["tiny", "small"], choices=["tiny", "small"])
    ap.add_argument("--out", default=str(RESULTS))
    args = ap.parse_args()

    c4u = [sys.executable, "-m", "creative4u"]
    result: dict = {"machine": {"cpus": os.cpu_count(), "platform": platform.platform()}}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        world, ds = work / "world", work / "dataset"
        sh([*c4u, "data", "simulate", str(world), "--products", str(args.products)])
        rows = _log_rows(world / "logs.parquet")
        creatives = len(list((world / "images").glob("*.png")))
        t = sh(
            [*c4u, "data", "build", "--logs", str(world / "logs.parquet")]
            + ["--images", str(world / "images"), "--out", str(ds), "--keep-unlabelled"]
        )
        result["data_build"] = {
            "rows": rows,
            "creatives": creatives,
            "seconds": round(t, 1),
            "rows_per_s": round(rows / t, 1),
            "creatives_per_s": round(creatives / t, 2),
        }
        print(f"data build: {rows} log rows, {creatives} creatives in {t:.1f}s", flush=True)

        m2fn = work / "m2fn"
        sh(
            [*c4u, "m2fn", "train", "--data", str(ds), "--out", str(m2fn)]
            + ["--max-steps", str(args.m2fn_steps)]
        )
        metrics = json.loads((m2fn / "metrics.json").read_text())
        batch = json.loads((m2fn / "config.json").read_text())["train"]["batch_size"]
        result["m2fn_train"] = {
            "steps": metrics["steps"],
            "seconds": metrics["train_seconds"],
            "samples_per_s": round(metrics["steps"] * batch / metrics["train_seconds"], 1),
        }
        print(f"m2fn train: {result['m2fn_train']}", flush=True)

        for preset in args.presets:
            model = work / f"model-{preset}"
            sh([*c4u, "model", "init", str(model), "--preset", preset])
            sft = stage_rate(
                "sft",
                f"recipes/{preset}/sft.yaml",
                model,
                ds,
                work / f"sft-{preset}",
                ["--max_steps", str(args.sft_steps)],
            )
            grpo = stage_rate(
                "rl",
                f"recipes/{preset}/grpo.yaml",
                model,
                ds,
                work / f"grpo-{preset}",
                ["--max_steps", str(args.grpo_steps), "--m2fn_checkpoint", str(m2fn)]
                + ["--max_completion_length", str(args.grpo_completion_length)],
            )
            result[f"sft_{preset}"], result[f"grpo_{preset}"] = sft, grpo
            print(
                f"{preset}: SFT {sft['samples_per_s']} samples/s, GRPO {grpo['samples_per_s']} completions/s",
                flush=True,
            )

    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {out}")
    return 0


def _log_rows(path: Path) -> int:
    import pyarrow.parquet as pq

    return pq.ParquetFile(path).metadata.num_rows


if __name__ == "__main__":
    raise SystemExit(main())
