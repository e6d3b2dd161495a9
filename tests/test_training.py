"""SFT (full and LoRA) and GRPO run from the tiny recipes; what they write loads in vLLM."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from creative4u.protocol import parse
from creative4u.training import format_pairs
from creative4u.vlm import is_adapter, load, load_processor
from tests.pairs_fixture import make_pair_dataset

ROOT = Path(__file__).resolve().parent.parent
VLLM_SCRIPT = ROOT / "tests" / "scripts" / "vllm_generate.py"
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def pairs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_pair_dataset(tmp_path_factory.mktemp("pairs"), products=8)


def stage(
    module: str, recipe: str, model: Path, pairs: Path, out: Path, *extra: str, launch: bool = False
) -> str:
    """Run a training stage from its tiny recipe, as users do (optionally via accelerate launch)."""
    launcher = (
        ["-m", "accelerate.commands.launch", "--config_file", "recipes/accelerate/cpu.yaml"]
        if launch
        else []
    )
    args = ["--config", f"recipes/tiny/{recipe}.yaml", "--model_name_or_path", str(model)]
    args += ["--dataset_path", str(pairs), "--output_dir", str(out), *extra]
    return run([sys.executable, *launcher, "-m", module, *args])


def vllm_generate(model: Path, adapter: Path | None, pairs: Path, tmp_path: Path) -> dict:
    images = pairs.parent / "world" / "images"
    out = tmp_path / "vllm.json"
    cmd = [sys.executable, str(VLLM_SCRIPT), str(model), *([str(adapter)] if adapter else [])]
    run([*cmd, str(images / "p0000_c0.png"), str(images / "p0000_c1.png"), str(out)])
    return json.loads(out.read_text())


def run(args: list[str], cwd: Path = ROOT) -> str:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    res = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=900)
    assert res.returncode == 0, res.stderr[-3000:]
    return res.stdout + res.stderr


def test_swap_augmentation_mirrors_pairs(tiny_model: Path, pairs: Path) -> None:
    from datasets import load_from_disk

    split = load_from_disk(str(pairs))["train"].select(range(6))
    ds = format_pairs(split, load_processor(str(tiny_model)), swap_augmentation=True)
    assert len(ds) == 12
    for pid in split["pair_id"]:
        rows = [r for r in ds if r["pair_id"] == pid]
        assert sorted(r["swapped"] for r in rows) == [False, True]
        fwd, rev = sorted(rows, key=lambda r: r["swapped"])
        assert fwd["label"] != rev["label"]
        vf, vr = parse(fwd["completion"][0]["content"]), parse(rev["completion"][0]["content"])
        assert vf.well_formed and vr.well_formed
        assert vf.winner == fwd["label"] and vr.winner == rev["label"]
        assert vf.swapped().dimensions == vr.dimensions
        assert fwd["images"][0].tobytes() == rev["images"][1].tobytes()


def test_loss_only_on_the_completion(tiny_model: Path, pairs: Path) -> None:
    from datasets import load_from_disk
    from trl.trainer.sft_trainer import DataCollatorForVisionLanguageModeling

    proc = load_processor(str(tiny_model))
    ex = format_pairs(
        load_from_disk(str(pairs))["train"].select(range(1)), proc, swap_augmentation=False
    )[0]
    n_completion = len(proc.tokenizer(ex["completion"][0]["content"])["input_ids"])
    batch = DataCollatorForVisionLanguageModeling(proc, completion_only_loss=True)([ex])
    n_labelled = int((batch["labels"] != -100).sum())
    assert n_completion <= n_labelled <= n_completion + 2  # + the end-of-turn tokens


def test_sft_full_learns_resumes_and_loads_in_vllm(
    tiny_model: Path, pairs: Path, tmp_path: Path
) -> None:
    out = tmp_path / "sft"
    stage(
        "sft", "sft", tiny_model, pairs, out, "--max_steps", "30", "--save_steps", "10", launch=True
    )
    card = json.loads((out / "creative4u_run.json").read_text())
    assert card["stage"] == "sft" and card["finetune"] == "full" and card["global_step"] == 30
    matching = card["word_matching"]  # the recipe's text-only word matching ran first
    assert matching["steps"] == 3 and [c["step"] for c in matching["curve"]] == [0, 3]
    state = json.loads((out / "checkpoint-30" / "trainer_state.json").read_text())
    losses = [h["loss"] for h in state["log_history"] if "loss" in h]
    assert losses[-1] < losses[0] * 0.8, losses  # it learns the protocol's text
    assert not is_adapter(out) and (out / "model.safetensors").is_file()
    load(str(out))

    # an interrupted run resumes from its last checkpoint instead of starting over
    log = stage("sft", "sft", tiny_model, pairs, out, "--max_steps", "34")
    assert "resuming from" in log and "checkpoint-30" in log
    resumed = json.loads((out / "creative4u_run.json").read_text())
    assert resumed["global_step"] == 34 and "word matching" not in log  # the checkpoint holds it
    assert resumed["word_matching"] == matching

    # the full checkpoint loads in vLLM as a model
    assert vllm_generate(out, None, pairs, tmp_path)["base"][0]["generated_tokens"] > 0


def test_sft_lora_then_grpo_and_adapter_loads_in_vllm(
    tiny_model: Path, pairs: Path, tmp_path: Path
) -> None:
    sft = tmp_path / "sft_lora"
    stage(
        "sft",
        "sft",
        tiny_model,
        pairs,
        sft,
        "--finetune",
        "lora",
        "--lora_r",
        "8",
        "--lora_alpha",
        "16",
    )
    assert is_adapter(sft)
    assert json.loads((sft / "adapter_config.json").read_text())["base_model_name_or_path"] == str(
        tiny_model
    )
    from safetensors import safe_open

    with safe_open(str(sft / "adapter_model.safetensors"), "pt") as f:
        keys = list(f.keys())
    assert keys and all("language_model" in k for k in keys)

    # GRPO continues the LoRA adapter on its base
    grpo = tmp_path / "grpo"
    stage("rl", "grpo", tiny_model, pairs, grpo, "--adapter_path", str(sft), "--finetune", "lora")
    card = json.loads((grpo / "creative4u_run.json").read_text())
    assert card["stage"] == "grpo" and card["global_step"] == 2
    assert [c["step"] for c in card["validation_curve"]] == [0, 2]
    assert card["best_step"] in (0, 2)
    assert is_adapter(grpo)

    # the adapter loads in vLLM with enable_lora
    assert vllm_generate(tiny_model, grpo, pairs, tmp_path)["adapter"][0]["generated_tokens"] > 0


def test_grpo_full_from_sft(tiny_model: Path, pairs: Path, tmp_path: Path) -> None:
    sft, grpo = tmp_path / "sft", tmp_path / "grpo"
    stage("sft", "sft", tiny_model, pairs, sft)
    stage("rl", "grpo", sft, pairs, grpo)
    card = json.loads((grpo / "creative4u_run.json").read_text())
    assert card["finetune"] == "full" and card["rewards"] == {
        "format": 0.2,
        "correct": 1.0,
        "consistency": 0.2,
    }
    load(str(grpo))


def test_resumed_grpo_keeps_its_best_policy(tiny_model: Path, pairs: Path, tmp_path: Path) -> None:
    """A GRPO run stopped after its first validations and resumed goes on from the best policy it
    had: the curve before the stop is kept, the shipped policy is the best of the whole curve, and
    when that best came before the stop its weights are the ones kept then."""
    import torch
    from safetensors.torch import load_file

    grpo = tmp_path / "grpo"
    stage("rl", "grpo", tiny_model, pairs, grpo)  # 2 steps, validations at 0 and 2
    first = json.loads((grpo / "best" / "creative4u_best.json").read_text())
    weights = load_file(str(grpo / "best" / "model.safetensors"))
    assert [c["step"] for c in first["curve"]] == [0, 2]
    assert any(p.name.startswith("checkpoint-") for p in grpo.iterdir())

    stage("rl", "grpo", tiny_model, pairs, grpo, "--max_steps", "4")  # resumes from step 2
    card = json.loads((grpo / "creative4u_run.json").read_text())
    curve = card["validation_curve"]
    assert [c["step"] for c in curve] == [0, 2, 4]
    assert curve[:2] == first["curve"]
    keys = [(c["accuracy"], c["well_formed_rate"]) for c in curve]
    assert card["best_step"] == curve[keys.index(max(keys))]["step"]
    if card["best_step"] <= 2:
        again = load_file(str(grpo / "best" / "model.safetensors"))
        assert again.keys() == weights.keys()
        assert all(torch.equal(again[k], weights[k]) for k in weights)
