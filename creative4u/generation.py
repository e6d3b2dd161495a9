"""Generate protocol answers for creative pairs, with vLLM or with transformers, from one prompt path.

Both backends take the same `PairRequest`s, render them with the model's own chat template and
feed the same prepared pixels, so the only thing that differs between them is the engine. Each
result carries the probability the model gave to "A" and to "B" at the answer position, which is
what serving reports as confidence and evaluation calibrates.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from creative4u.images import prepare_image
from creative4u.protocol import Verdict, build_messages, parse
from creative4u.vlm import ModelRef, adapter_rank, resolve


@dataclass
class PairRequest:
    """One pair in one order: the user interest and the two creatives (any image input)."""

    query: str
    title: str
    image_a: Any
    image_b: Any


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


def pair_inputs(
    processor: Any, req: PairRequest, *, allow_paths: bool = True
) -> tuple[str, list[Any]]:
    """(prompt text, [image A, image B]) exactly as every backend feeds them to the model."""
    images = [
        prepare_image(img, processor, allow_paths=allow_paths) for img in (req.image_a, req.image_b)
    ]
    return prompt_text(processor, build_messages(req.query, req.title)), images


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


class TransformersGenerator:
    """Batched generation with transformers `generate` (training-time evaluation, benchmarks)."""

    def __init__(self, model: Any, processor: Any, batch_size: int = 16):
        self.model, self.processor, self.batch_size = model, processor, batch_size
        tok = processor.tokenizer
        self._answer_ids = {k: tok.convert_tokens_to_ids(tok.tokenize(k))[-1] for k in ("A", "B")}

    @classmethod
    def from_pretrained(
        cls, name_or_path: str, adapter: str | None = None, **kwargs: Any
    ) -> TransformersGenerator:
        from creative4u.vlm import load

        model, processor = load(name_or_path, adapter, **kwargs)
        return cls(model, processor)

    def generate(
        self,
        requests: Sequence[PairRequest],
        max_new_tokens: int = 256,
        temperature: float = 0.0,
        allow_paths: bool = True,
    ) -> list[Generation]:
        import torch

        out: list[Generation] = []
        tok = self.processor.tokenizer
        for start in range(0, len(requests), self.batch_size):
            chunk = requests[start : start + self.batch_size]
            prepared = [pair_inputs(self.processor, r, allow_paths=allow_paths) for r in chunk]
            batch = self.processor(
                text=[p for p, _ in prepared],
                images=[img for _, imgs in prepared for img in imgs],
                padding=True,
                return_tensors="pt",
            ).to(self.model.device)
            gen_kwargs: dict[str, Any] = dict(
                max_new_tokens=max_new_tokens,
                return_dict_in_generate=True,
                output_scores=True,
                pad_token_id=tok.pad_token_id,
                eos_token_id=tok.eos_token_id,
            )
            if temperature > 0:
                gen_kwargs.update(do_sample=True, temperature=temperature, top_k=0, top_p=1.0)
            else:
                gen_kwargs.update(do_sample=False)
            with torch.inference_mode():
                res = self.model.generate(**batch, **gen_kwargs)
            prompt_len = batch["input_ids"].shape[1]
            seqs = res.sequences[:, prompt_len:]
            logprobs = torch.stack(res.scores, dim=1).float().log_softmax(-1)  # (B, T, V)
            for i in range(len(chunk)):
                ids = seqs[i].tolist()
                n = len(ids)
                while n and ids[n - 1] == tok.pad_token_id:
                    n -= 1
                pieces = [tok.decode([t], skip_special_tokens=False) for t in ids[:n]]
                steps = [
                    {k: float(logprobs[i, j, tid]) for k, tid in self._answer_ids.items()}
                    for j in range(n)
                ]
                text = tok.decode(ids[:n], skip_special_tokens=True)
                out.append(
                    Generation(
                        text=text,
                        verdict=parse(text),
                        answer_probs=answer_probs_from_steps(pieces, steps),
                        num_prompt_tokens=int(batch["attention_mask"][i].sum()),
                        num_generated_tokens=n,
                    )
                )
        return out


def default_engine_kwargs(
    ref: ModelRef, max_model_len: int = 4096, **overrides: Any
) -> dict[str, Any]:
    """vLLM engine arguments for a pair-comparison workload (two images per prompt)."""
    kwargs: dict[str, Any] = dict(
        model=ref.base,
        limit_mm_per_prompt={"image": 2},
        max_model_len=max_model_len,
        enforce_eager=True,
        seed=0,
    )
    if ref.adapter:
        kwargs.update(
            enable_lora=True, max_lora_rank=max(8, adapter_rank(ref.adapter)), max_loras=1
        )
    kwargs.update(overrides)
    return kwargs


def ensure_cpu_env() -> None:
    """vLLM on CPU needs a KV-cache budget; 1 GiB is plenty for pair comparisons with small models."""
    os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")


class VLLMGenerator:
    """Offline batched generation with vLLM (the same engine the API serves with)."""

    def __init__(self, name_or_path: str, adapter: str | None = None, **engine_kwargs: Any):
        ensure_cpu_env()
        from vllm import LLM

        from creative4u.vlm import load_processor

        self.ref = resolve(name_or_path, adapter)
        self.processor = load_processor(self.ref.base)
        self.llm = LLM(**default_engine_kwargs(self.ref, **engine_kwargs))
        self._lora = None
        if self.ref.adapter:
            from vllm.lora.request import LoRARequest

            self._lora = LoRARequest("adapter", 1, self.ref.adapter)

    def generate(
        self,
        requests: Sequence[PairRequest],
        max_new_tokens: int = 256,
        temperature: float = 0.0,
        allow_paths: bool = True,
        seed: int | None = None,
        use_adapter: bool = True,
    ) -> list[Generation]:
        """Generate for each request; `use_adapter=False` answers with the bare base model."""
        from vllm import SamplingParams

        inputs = []
        for r in requests:
            prompt, images = pair_inputs(self.processor, r, allow_paths=allow_paths)
            inputs.append({"prompt": prompt, "multi_modal_data": {"image": images}})
        params = SamplingParams(
            max_tokens=max_new_tokens, temperature=temperature, logprobs=20, seed=seed
        )
        lora = self._lora if use_adapter else None
        outs = self.llm.generate(inputs, params, lora_request=lora, use_tqdm=False)
        results = []
        for o in outs:
            c = o.outputs[0]
            pieces, steps = [], []
            for tid, lp in zip(c.token_ids, c.logprobs or [], strict=False):
                pieces.append(
                    lp[tid].decoded_token if tid in lp and lp[tid].decoded_token is not None else ""
                )
                steps.append({(v.decoded_token or ""): v.logprob for v in lp.values()})
            results.append(
                Generation(
                    text=c.text,
                    verdict=parse(c.text),
                    answer_probs=answer_probs_from_steps(pieces, steps),
                    num_prompt_tokens=len(o.prompt_token_ids or []),
                    num_generated_tokens=len(c.token_ids),
                )
            )
        return results


def generate_texts(
    model: Any,
    processor: Any,
    conversations: Sequence[list[dict[str, Any]]],
    images: Sequence[list[Any]],
    max_new_tokens: int = 128,
    batch_size: int = 32,
) -> list[str]:
    """Greedy answers to any chat prompts with images already fitted to the model (the
    perception tasks' evaluation; pairs go through `TransformersGenerator`, which also reads the
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
