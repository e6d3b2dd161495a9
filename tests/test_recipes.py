"""Every recipe parses into its dataclasses and names what the code understands."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from trl import GRPOConfig, SFTConfig, TrlParser

from creative4u.training import ModelArguments
from rl.rewards import REWARDS
from rl.train import GRPOScriptArguments
from sft.train import SFTScriptArguments

RECIPES = Path(__file__).resolve().parent.parent / "recipes"
GPU = {"qwen2.5-vl-3b", "qwen2.5-vl-7b"}


def parse(kind: str, path: Path):
    types = (
        (SFTScriptArguments, SFTConfig, ModelArguments)
        if kind == "sft"
        else (GRPOScriptArguments, GRPOConfig, ModelArguments)
    )
    extra = (
        ["--bf16", "false", "--use_cpu", "true"] if path.parent.name in GPU else []
    )  # GPU recipes, parsed on a CPU
    return TrlParser(types).parse_args_and_config(args=["--config", str(path), *extra])


@pytest.mark.parametrize("path", sorted(RECIPES.glob("*/sft.yaml")), ids=lambda p: p.parent.name)
def test_sft_recipes(path: Path) -> None:
    script, train, model = parse("sft", path)
    assert model.finetune == ("lora" if path.parent.name in GPU else "full")
    assert train.max_length is None  # image tokens are never cut
    assert train.lr_scheduler_type.value in ("cosine", "linear") and train.warmup_steps
    assert script.swap_augmentation


@pytest.mark.parametrize("path", sorted(RECIPES.glob("*/grpo.yaml")), ids=lambda p: p.parent.name)
def test_grpo_recipes(path: Path) -> None:
    script, train, model = parse("grpo", path)
    assert set(script.reward_funcs) <= set(REWARDS)
    assert len(train.reward_weights) == len(script.reward_funcs)
    assert train.beta > 0  # a KL anchor: without it the policy collapsed
    if "m2fn" in script.reward_funcs:
        assert script.m2fn_checkpoint
    if path.parent.name in GPU:
        assert model.adapter_path and model.finetune == "lora" and train.use_vllm


@pytest.mark.parametrize(
    "path", sorted((RECIPES / "accelerate").glob("*.yaml")), ids=lambda p: p.stem
)
def test_accelerate_configs(path: Path) -> None:
    cfg = yaml.safe_load(path.read_text())
    assert cfg["distributed_type"] in ("NO", "MULTI_GPU", "DEEPSPEED")
    if cfg["distributed_type"] == "DEEPSPEED":
        assert cfg["deepspeed_config"]["zero_stage"] in (2, 3)
        # what launches it comes with the GPU install, pinned in the lock
        import tomllib

        root = RECIPES.parent
        gpu = tomllib.loads((root / "pyproject.toml").read_text())["project"][
            "optional-dependencies"
        ]["gpu"]
        assert any(d.startswith("deepspeed") for d in gpu)
        lock = tomllib.loads((root / "uv.lock").read_text())
        assert any(pkg["name"] == "deepspeed" for pkg in lock["package"])


@pytest.mark.parametrize(
    "path", sorted(RECIPES.glob("*/pretrain.yaml")), ids=lambda p: p.parent.name
)
def test_pretrain_recipes(path: Path) -> None:
    from pretrain.train import PretrainScriptArguments

    types = (PretrainScriptArguments, SFTConfig, ModelArguments)
    script, train, model = TrlParser(types).parse_args_and_config(args=["--config", str(path)])
    assert model.finetune == "full"  # a from-scratch base has nothing for LoRA to keep
    assert train.max_length is None and train.save_steps  # resumable, image tokens never cut
    assert script.heldout_seed not in script.train_seeds and 0 not in script.train_seeds


@pytest.mark.parametrize("path", sorted(RECIPES.glob("*/m2fn.yaml")), ids=lambda p: p.parent.name)
def test_m2fn_recipes(path: Path) -> None:
    """An M2FN recipe builds its configs, and a vision tower is the one its selector starts from
    (so the CTR model sees with the same pretrained eyes)."""
    import dataclasses

    from creative4u.m2fn.args import read_recipe
    from creative4u.m2fn.config import M2FNConfig, TrainConfig

    recipe = read_recipe(str(path))
    names = {f.name for f in dataclasses.fields(M2FNConfig)}
    model = M2FNConfig(**{k: v for k, v in recipe.items() if k in names})
    TrainConfig(**{k: v for k, v in recipe.items() if k not in names})
    if model.backbone == "vlm":
        sft = yaml.safe_load((path.parent / "sft.yaml").read_text())
        assert model.vision_tower == sft["model_name_or_path"]
