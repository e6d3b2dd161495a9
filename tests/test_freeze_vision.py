"""`freeze_vision`: full fine-tuning of the language model on a pretrained base, vision kept."""

from __future__ import annotations

from pathlib import Path

from creative4u.training import ModelArguments, load_for_training


def test_freeze_vision_trains_the_language_model_only(tiny_model: Path) -> None:
    model, _ = load_for_training(
        ModelArguments(model_name_or_path=str(tiny_model), freeze_vision=True)
    )
    frozen = {n for n, p in model.named_parameters() if not p.requires_grad}
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert frozen and all(".visual." in f"model.{n}" for n in frozen)
    assert any("merger" in n for n in frozen)  # the connector is the base's too
    assert trainable and all("language_model" in n or "lm_head" in n for n in trainable)

    default, _ = load_for_training(ModelArguments(model_name_or_path=str(tiny_model)))
    assert all(p.requires_grad for p in default.parameters())
