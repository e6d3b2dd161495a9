"""What every engine shares about generation: the prompt text, the reading of a generation
(`Generation`: parsed verdict plus the probability the model gave to "A" and to "B" at the answer
position), vLLM's engine arguments, and greedy generation on a model in the middle of training.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from creative4u.protocol import Verdict
from creative4u.vlm import ModelRef, adapter_rank


@dataclass
class Generation:
    text: str
    verdict: Verdict
    answer_probs: dict[str, float] | None = None
    num_prompt_tokens: int = 0
    num_generated_tokens: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def p_a(self) -> float | None:
        """P(answer = A), normalised over {A, B}; None when the answer position was not reached."""
        if not self.answer_probs:
            return None
        a, b = self.answer_probs.get("A", 0.0), self.answer_probs.get("B", 0.0)
        return a / (a + b) if a + b > 0 else None


def prompt_text(processor: Any, messages: list[dict[str, Any]]) -> str:
    return processor.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)


def answer_probs_from_steps(
    pieces: Sequence[str], step_logprobs: Sequence[dict[str, float] | None]
) -> dict[str, float] | None:
    """Find the step right after the text "<answer>" and read P("A") and P("B") there.

    `pieces[i]` is the text of generated token i; `step_logprobs[i]` maps candidate token texts at
    step i to log-probabilities.
    """
    text = ""
    for piece, lps in zip(pieces, step_logprobs, strict=False):
        if text.rstrip().endswith("<answer>") and lps:
            probs: dict[str, float] = {}
            for tok, lp in lps.items():
                key = tok.strip()
                if key in ("A", "B") and lp is not None and not math.isnan(lp):
                    probs[key] = probs.get(key, 0.0) + math.exp(lp)
            return probs or None
        text += piece
    return None


def default_engine_kwargs(
    ref: ModelRef, max_model_len: int = 4096, **overrides: Any
) -> dict[str, Any]:
    """vLLM engine arguments for a pair-comparison workload (two images per prompt).

    On CPU the engine runs eagerly: the jobs that build one here (eval, calibrate, batch
    selection, the Python API) are short, and compiling costs more start-up than it saves
    (`creative4u serve` compiles: it runs for long). On GPUs vLLM's defaults stand."""
    from vllm.platforms import current_platform

    kwargs: dict[str, Any] = dict(
        model=ref.base,
        limit_mm_per_prompt={"image": 2},
        max_model_len=max_model_len,
        seed=0,
    )
    if current_platform.is_cpu():
        kwargs["enforce_eager"] = True
    if ref.adapter:
        kwargs.update(
            enable_lora=True, max_lora_rank=max(8, adapter_rank(ref.adapter)), max_loras=1
        )
    kwargs.update(overrides)
    return kwargs


def ensure_cpu_env(worker_process: bool = False) -> None:
    """vLLM's environment on CPU, set before an engine starts. GPUs keep vLLM's defaults.

    A KV-cache budget (a value already set is kept): 1 GiB is plenty for pair comparisons with
    small models. And where the model runs: vLLM on CPU gives it a worker process of its own,
    bound to one core, whose scheduler polls the queue between the two on the other. Short jobs
    (eval, calibrate, batch selection, the Python API) run the model inside the engine-core
    process instead (`worker_process=False`): on two cores that engine started 25 s sooner and
    answered 1.25x the pairs a second. A server keeps the worker process: through `/v1/select`
    it answered as many pairs either way, the API's own work then competing with the model's
    threads (`bench/bench_engine_settings.py`, `bench/bench_serve.py --model-in-engine-core`)."""
    from vllm.platforms import current_platform

    if not current_platform.is_cpu():
        return
    os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")
    # read by vLLM's CPU platform when the engine's config is built (in this process)
    os.environ["VLLM_ENABLE_V1_MULTIPROCESSING"] = "1" if worker_process else "0"


def generate_texts(
    model: Any,
    processor: Any,
    conversations: Sequence[list[dict[str, Any]]],
    images: Sequence[list[Any]],
    max_new_tokens: int = 128,
    batch_size: int = 32,
) -> list[str]:
    """Greedy answers to any chat prompts with images already fitted to the model (the
    perception tasks' evaluation; pairs go through `creative4u.selection`, which also reads the
    answer letter's probability)."""
    import torch

    tok = processor.tokenizer
    out: list[str] = []
    with generating(model):
        for start in range(0, len(conversations), batch_size):
            convs = conversations[start : start + batch_size]
            batch = processor(
                text=[prompt_text(processor, c) for c in convs],
                images=[img for imgs in images[start : start + batch_size] for img in imgs],
                padding=True,
                return_tensors="pt",
            ).to(model.device)
            with torch.inference_mode():
                seqs = model.generate(
                    **batch,
                    max_new_tokens=max_new_tokens,
                    do_sample=False,
                    pad_token_id=tok.pad_token_id,
                    eos_token_id=tok.eos_token_id,
                )
            prompt_len = batch["input_ids"].shape[1]
            out += tok.batch_decode(seqs[:, prompt_len:], skip_special_tokens=True)
    return out


@contextmanager
def generating(model: Any) -> Iterator[None]:
    """Generate with a model in the middle of training: eval mode and the KV cache on inside,
    the training state put back after (trainers turn the cache off)."""
    was_training, use_cache = model.training, getattr(model.config, "use_cache", True)
    model.eval()
    model.config.use_cache = True
    try:
        yield
    finally:
        model.config.use_cache = use_cache
        if was_training:
            model.train()
