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
    assert m["accuracy"] == pytest.approx(
        0.5
    )  # right exactly when the label is A: one order of each pair
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
