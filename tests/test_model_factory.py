"""The offline model factory: a from-scratch Qwen2.5-VL that transformers, PEFT and vLLM all run."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from creative4u.engines import GenParams, TransformersEngine
from creative4u.generation import Generation
from creative4u.images import prepare_image
from creative4u.model_factory import PRESETS, mrope_section
from creative4u.protocol import build_messages
from creative4u.vlm import is_adapter, load, resolve

SCRIPT = Path(__file__).parent / "scripts" / "vllm_generate.py"
LORA_TARGETS = r".*language_model.*\.(q_proj|k_proj|v_proj|o_proj)"


def test_presets_fit_vllm_cpu_attention() -> None:
    for p in PRESETS.values():
        assert p.hidden_size // p.num_heads >= 32
        assert p.vision_hidden_size // p.vision_heads >= 32
        assert sum(mrope_section(p.hidden_size // p.num_heads)) == p.hidden_size // p.num_heads // 2


def test_folder_is_a_normal_hf_model(tiny_model: Path) -> None:
    cfg = json.loads((tiny_model / "config.json").read_text())
    assert cfg["model_type"] == "qwen2_5_vl"
    assert cfg["architectures"] == ["Qwen2_5_VLForConditionalGeneration"]
    model, proc = load(str(tiny_model))
    tok = proc.tokenizer
    assert tok.convert_tokens_to_ids("<|image_pad|>") == cfg["image_token_id"]
    assert len(tok) <= cfg["text_config"]["vocab_size"]
    # byte-level: any text round-trips, including text the tokenizer never saw
    s = "Prix spécial 49,99 € — ünïcødé ✓"
    assert tok.decode(tok(s)["input_ids"]) == s
    # the answer letter is its own token after "<answer>", so its probability can be read
    assert tok.tokenize("<answer>A</answer>")[3] == "A"


def test_seed_makes_builds_deterministic(tmp_path: Path) -> None:
    from creative4u.model_factory import build

    a = build(tmp_path / "a", "tiny", seed=3)
    b = build(tmp_path / "b", "tiny", seed=3)
    c = build(tmp_path / "c", "tiny", seed=4)
    ma, mb, mc = (load(str(p))[0] for p in (a, b, c))
    wa, wb, wc = (m.lm_head.weight for m in (ma, mb, mc))
    assert torch.equal(wa, wb) and not torch.equal(wa, wc)
    assert (a / "tokenizer.json").read_text() == (b / "tokenizer.json").read_text()


def test_cli_init_refuses_to_overwrite(tmp_path: Path) -> None:
    from creative4u.cli import main

    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "keep.txt").write_text("mine")
    assert main(["model", "init", str(tmp_path / "x"), "--preset", "tiny"]) == 2
    assert (tmp_path / "x" / "keep.txt").read_text() == "mine"
    assert (
        main(["model", "init", str(tmp_path / "y"), "--preset", "tiny", "--image-size", "50"]) == 2
    )


@pytest.mark.slow
def test_transformers_vllm_and_lora_generate(tiny_model: Path, swatches, tmp_path: Path) -> None:
    """One model, three engines: transformers, vLLM, and a PEFT LoRA adapter served by vLLM."""
    from peft import LoraConfig, get_peft_model

    paths = []
    for name, img in zip("ab", swatches, strict=True):
        paths.append(tmp_path / f"{name}.png")
        img.save(paths[-1])
    query, title = "red dress", "Nova elegant red dress"

    model, proc = load(str(tiny_model))
    prepared = [prepare_image(p, proc) for p in paths]

    def hf(m) -> Generation:
        engine = TransformersEngine(m, proc)
        params = GenParams(max_tokens=16, token_ids=engine.answer_token_ids, logprobs=True)
        chat = build_messages(query, title, *prepared)
        return asyncio.run(engine.complete(chat, params)).generation()

    hf_base = hf(model)
    assert hf_base.num_generated_tokens > 0
    prompt_ids = proc(
        text=[
            proc.apply_chat_template(
                build_messages(query, title),
                tokenize=False,
                add_generation_prompt=True,
            )
        ],
        images=prepared,
        return_tensors="pt",
    )["input_ids"][0]
    expected_image_tokens = sum((im.width // 28) * (im.height // 28) for im in prepared)
    assert int((prompt_ids == model.config.image_token_id).sum()) == expected_image_tokens
    assert hf_base.num_prompt_tokens == len(prompt_ids)

    # a LoRA adapter on the language model only, with non-zero B so that it changes the output
    torch.manual_seed(1)
    peft_model = get_peft_model(model, LoraConfig(r=8, lora_alpha=16, target_modules=LORA_TARGETS))
    for n, p in peft_model.named_parameters():
        if "lora_B" in n:
            p.data.normal_(0, 0.5)
    adapter = tmp_path / "adapter"
    peft_model.save_pretrained(adapter)
    from safetensors import safe_open

    with safe_open(adapter / "adapter_model.safetensors", "pt") as f:
        keys = list(f.keys())
    assert (
        keys and all("language_model" in k for k in keys) and not any("visual" in k for k in keys)
    )
    assert is_adapter(adapter) and resolve(str(adapter)).base == str(tiny_model)
    hf_lora = hf(peft_model)
    assert hf_lora.text != hf_base.text

    out = tmp_path / "vllm.json"
    subprocess.run(
        [
            sys.executable,
            str(SCRIPT),
            str(tiny_model),
            str(adapter),
            str(paths[0]),
            str(paths[1]),
            str(out),
        ],
        check=True,
        timeout=600,
    )
    res = json.loads(out.read_text())
    vb, va = res["base"][0], res["adapter"][0]
    # vLLM sees the same prompt and pixels ...
    assert vb["prompt_tokens"] == hf_base.num_prompt_tokens
    assert vb["generated_tokens"] > 0 and va["generated_tokens"] > 0
    # ... and, greedy, starts the same continuation as transformers (random weights, float noise
    # may split them later), with and without the adapter
    assert vb["text"][:3] == hf_base.text[:3]
    assert va["text"][:3] == hf_lora.text[:3]
    assert va["text"] != vb["text"]
