"""The evaluation harness on a real model that always answers A, through vLLM."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from creative4u.protocol import DIMENSION_IDS, DimensionVerdict, Verdict, render
from tests.pairs_fixture import make_pair_dataset

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.slow

ALWAYS_A = render(
    Verdict(
        winner="A",
        identical=False,
        indistinguishable=False,
        dimensions={d: DimensionVerdict(d, "A>B", "A is better") for d in DIMENSION_IDS},
    )
)


@pytest.fixture(scope="module")
def always_a(tiny_model: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A tiny model fine-tuned until it writes the same A-verdict for every pair."""
    from datasets import load_from_disk

    tmp = tmp_path_factory.mktemp("always_a")
    pairs = make_pair_dataset(tmp, products=8)
    dd = load_from_disk(str(pairs))
    constant = dd.map(lambda r: {"label": "A", "rationale": ALWAYS_A})
    constant.save_to_disk(str(tmp / "constant"))
    out = tmp / "model"
    args = ["--config", "recipes/tiny/sft.yaml", "--model_name_or_path", str(tiny_model)]
    args += [
        "--dataset_path",
        str(tmp / "constant"),
        "--output_dir",
        str(out),
        "--max_steps",
        "120",
    ]
    args += ["--swap_augmentation", "false", "--learning_rate", "3e-3", "--max_eval_pairs", "0"]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    res = subprocess.run(
        [sys.executable, "-m", "sft", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert res.returncode == 0, res.stderr[-2000:]
    return out, pairs


def test_always_a_model_is_all_first_slot_and_never_agrees(
    always_a: tuple[Path, Path], tmp_path: Path
) -> None:
    model, pairs = always_a
    report = tmp_path / "report"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    # the dataset's feature-baseline predictions: right on the first 3 test pairs, wrong after
    from datasets import load_from_disk

    test = load_from_disk(str(pairs))["test"]
    right = [i < 3 for i in range(len(test))]
    p_a = [float((lab == "A") == ok) for lab, ok in zip(test["label"], right, strict=True)]
    pd.DataFrame({"pair_id": test["pair_id"], "split": "test", "p_a": p_a}).to_parquet(
        pairs / "feature_baseline.parquet"
    )
    res = subprocess.run(
        [
            sys.executable,
            "-m",
            "creative4u",
            "eval",
            "--model",
            str(model),
            "--dataset",
            str(pairs),
            "--split",
            "test",
            "--out",
            str(report),
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert res.returncode == 0, res.stderr[-3000:]
    m = json.loads((report / "metrics.json").read_text())
    for key in (
        "accuracy",
        "accuracy_ci",
        "well_formed_rate",
        "swap_agreement",
        "first_slot_rate",
        "ece",
        "faithfulness",
        "n_pairs",
        "baselines",
    ):
        assert key in m
    assert m["engine"] == "vllm"
    assert m["well_formed_rate"] == 1.0
    assert m["first_slot_rate"] == 1.0
    assert m["swap_agreement"] == 0.0
    # each order alone is right exactly when its label is A: one order of each pair
    assert m["per_order_accuracy"] == pytest.approx(0.5)
    # the served decision: the orders always disagree, so it rests on the probabilities
    records = [json.loads(x) for x in (report / "records.jsonl").read_text().splitlines()]
    assert len(records) == m["n_pairs"] == m["n"] and m["n_answers"] == 2 * m["n"]
    assert all(r["order_swap_agreed"] is False for r in records)
    assert sum(m["decided_by"].values()) == m["n"]
    assert m["accuracy"] == pytest.approx(
        sum(r["winner"] == r["label"] for r in records) / len(records)
    )
    assert m["baselines"]["chance"] == 0.5 and "oracle" in m["baselines"]
    assert m["baselines"]["features"] == pytest.approx(3 / len(test))
    assert m["faithfulness"] is not None and 0.0 <= m["faithfulness"] <= 1.0
    text = (report / "report.md").read_text()
    assert (
        "first-slot rate" in text and "100.0 %" in text and (report / "reliability.png").is_file()
    )


def test_demo_exports_an_example_for_select(tmp_path: Path) -> None:
    """The demo's last step: a test pair written as PNG files, and the `select` command on them."""
    from PIL import Image

    from eval.demo import export_example, select_command
    from tests.pairs_fixture import make_pair_dataset

    ds = make_pair_dataset(tmp_path, products=4)
    ex = export_example(ds, tmp_path / "example")
    from datasets import load_from_disk

    row = load_from_disk(str(ds))["test"][0]
    assert (ex["query"], ex["title"], ex["label"]) == (row["query"], row["title"], row["label"])
    for side in ("a", "b"):
        with Image.open(ex[side]) as im:
            assert im.mode == "RGB" and im.size[0] > 0
    cmd = select_command(ex, tmp_path / "grpo", tmp_path / "m2fn")
    assert cmd[3:6] == ["select", str(ex["a"]), str(ex["b"])]
    assert cmd[cmd.index("--m2fn") + 1] == str(tmp_path / "m2fn")
    assert cmd[cmd.index("--query") + 1] == row["query"]
    from creative4u.cli import build_parser

    parsed = build_parser().parse_args(cmd[3:])  # the command `select` really accepts
    assert parsed.m2fn == str(tmp_path / "m2fn") and parsed.model == str(tmp_path / "grpo")


def test_demo_step_keys_follow_their_inputs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A rerun reuses a step only while its command, its recipe, its input files and the steps it
    reads from are unchanged: editing the SFT recipe or the base's weights invalidates SFT, GRPO,
    the calibration and the report, not the data steps."""
    import shutil

    import eval.demo as demo
    from eval.demo import step_key, steps

    root = Path(__file__).resolve().parents[1]
    monkeypatch.chdir(root)  # the demo's recipe paths are relative to the repository
    base = tmp_path / "base"
    base.mkdir()
    (base / "model.safetensors").write_bytes(b"weights v1")
    monkeypatch.setattr(demo, "BASE", base)

    def keys(plan) -> dict[str, str]:
        out: dict[str, str] = {}
        for step in plan:
            out[step.name] = step_key(step, out)
        return out

    recipes = tmp_path / "recipes" / "small"
    shutil.copytree(root / "recipes", tmp_path / "recipes")

    def plan():
        out = []
        for step in steps(tmp_path / "demo", 300):
            step.cmd = [str(tmp_path / a) if a.endswith(".yaml") else a for a in step.cmd]
            out.append(step)
        return out

    before = keys(plan())
    assert keys(plan()) == before  # deterministic
    (recipes / "sft.yaml").write_text((recipes / "sft.yaml").read_text() + "\n# edited\n")
    after = keys(plan())
    changed = {name for name in before if before[name] != after[name]}
    assert changed == {"sft", "grpo", "calibrate", "report"}
    (recipes / "m2fn.yaml").write_text((recipes / "m2fn.yaml").read_text() + "\n# edited\n")
    m2fn_edited = keys(plan())
    assert {name for name in after if after[name] != m2fn_edited[name]} == {
        "m2fn",
        "grpo",
        "calibrate",
        "report",
    }
    after = m2fn_edited
    (base / "model.safetensors").write_bytes(b"weights v2")  # M2FN sees through its tower
    again = keys(plan())
    assert {name for name in after if after[name] != again[name]} == {
        "m2fn",
        "sft",
        "grpo",
        "calibrate",
        "report",
    }
    assert (
        keys([*steps(tmp_path / "demo", 100)])["report"]
        != keys(steps(tmp_path / "demo", 300))["report"]
    )


def test_demo_rerun_skips_finished_steps(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`creative4u demo` on an output folder whose steps all finished runs no step again."""
    import argparse
    import json
    import subprocess

    import eval.demo as demo

    out = tmp_path / "demo"
    ran: list[str] = []

    def fake_run(cmd, env=None):  # stands in for the stages: records them, writes their outputs
        step = next((s for s in demo.steps(out, 300) if s.cmd == cmd), None)
        ran.append(step.name if step else "select")
        if step is None:
            return subprocess.CompletedProcess(cmd, 0)
        step.output.parent.mkdir(parents=True, exist_ok=True)
        metrics = {"accuracy": 0.5, "n_pairs": 2, "baselines": {"chance": 0.5}}
        step.output.write_text(json.dumps(metrics))
        return subprocess.CompletedProcess(cmd, 0)

    monkeypatch.setattr(demo.subprocess, "run", fake_run)
    monkeypatch.setattr(
        demo,
        "export_example",
        lambda *a, **k: {"a": "a.png", "b": "b.png", "query": "q", "title": "t", "label": "A"},
    )
    args = argparse.Namespace(out=str(out), force=False, eval_pairs=300)
    assert demo.run(args) == 0
    first = [s.name for s in demo.steps(out, 300)]
    assert ran[: len(first)] == first
    ran.clear()
    assert demo.run(args) == 0
    assert [r for r in ran if r in first] == []  # every step reused
    (out / "sft" / "creative4u_run.json").unlink()  # a lost output is redone
    (out / "sft" / "checkpoint-7").mkdir()  # ... resuming what the same step left
    ran.clear()
    assert demo.run(args) == 0
    assert [r for r in ran if r in first] == ["sft"]
    assert (out / "sft" / "checkpoint-7").is_dir()
    # under another key (a changed recipe or base) the step starts clean: no stale checkpoint
    (out / "sft" / "creative4u_run.json").unlink()
    (out / ".steps" / "sft.started").write_text("another-key\n")
    assert demo.run(args) == 0
    assert not (out / "sft" / "checkpoint-7").exists()

    def failing_select(cmd, env=None):
        return subprocess.CompletedProcess(
            cmd, 0 if cmd in [s.cmd for s in demo.steps(out, 300)] else 2
        )

    monkeypatch.setattr(demo.subprocess, "run", failing_select)
    assert demo.run(args) == 2  # a failed last step fails the demo
