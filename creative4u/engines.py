"""Engine backends: one interface, three implementations, so no caller knows where tokens come from.

- `LocalEngine`: vLLM's async engine in this process (continuous batching; a LoRA adapter is
  served under the API's model name). The server, `creative4u eval`, the batch jobs and the
  Python API run on it.
- `OpenAIEngine`: any OpenAI-compatible server at a URL (for example a fleet of `vllm serve`
  replicas behind a load balancer), called with the `openai` SDK. Serving scales out by pointing
  the same API at a bigger URL.
- `TransformersEngine`: transformers `generate` on a model already in memory, which is what
  training-time validation needs (the model being trained) and what runs where vLLM cannot.

Each turns its backend's output into one `Completion` (text, tokens, per-step log-probabilities);
`Completion.generation()` is the one reading of the answer letter's probability from it.

All take the same `Chat` (Hugging Face style messages whose image parts hold images already
loaded and resized with `creative4u.images`), so the pixels and the prompt the model sees are the
same whichever backend runs it, and the same as training and evaluation.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from PIL import Image

from creative4u.errors import APIError
from creative4u.generation import Generation, answer_probs_from_steps, prompt_text
from creative4u.images import to_data_url
from creative4u.protocol import parse

Chat = list[dict[str, Any]]
"""Chat messages in Hugging Face form; image parts are `{"type": "image", "image": PIL.Image}`."""


@dataclass
class GenParams:
    max_tokens: int = 256
    temperature: float = 0.0
    top_p: float = 1.0
    seed: int | None = None
    stop: list[str] | None = None
    logprobs: bool = False
    """Return each step's log-probabilities (sampled token plus `top_logprobs` or `token_ids`)."""
    top_logprobs: int = 0
    token_ids: list[int] | None = None
    """Token ids whose log-probabilities are returned at every step (the answer letters)."""
    use_adapter: bool = True
    """False answers with the bare base model under a LoRA adapter (the "before fine-tuning"
    baseline); an OpenAI-compatible upstream serves what it serves and ignores this."""
    model: str | None = None
    """Which served model answers (one of `Engine.model_names`); None is the default one."""


@dataclass
class Completion:
    """One finished generation, with per-step log-probabilities when they were asked for."""

    text: str
    finish_reason: str | None
    prompt_tokens: int
    completion_tokens: int
    pieces: list[str] = field(default_factory=list)
    """Text of each generated token (only when logprobs were asked for)."""
    sampled_logprobs: list[float | None] = field(default_factory=list)
    steps: list[dict[str, float]] | None = None
    """Per generated token: candidate token text -> log-probability."""

    def generation(self) -> Generation:
        """The protocol reading of this completion: parsed verdict and P(A), P(B) at the answer."""
        probs = answer_probs_from_steps(self.pieces, self.steps) if self.steps else None
        return Generation(
            text=self.text,
            verdict=parse(self.text),
            answer_probs=probs,
            num_prompt_tokens=self.prompt_tokens,
            num_generated_tokens=self.completion_tokens,
            extra={"finish_reason": self.finish_reason},
        )


@dataclass
class Delta:
    """A piece of a streamed completion; the last one carries the finish reason and usage."""

    text: str
    finish_reason: str | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    pieces: list[str] = field(default_factory=list)
    """The new tokens' texts and per-step log-probabilities, when they were asked for."""
    steps: list[dict[str, float]] = field(default_factory=list)


def split_images(chat: Chat) -> tuple[Chat, list[Image.Image]]:
    """Messages with bare image placeholders (what chat templates render) and the images in order."""
    images: list[Image.Image] = []
    out: Chat = []
    for msg in chat:
        content = msg.get("content")
        if isinstance(content, list):
            parts = []
            for part in content:
                if part.get("type") == "image":
                    images.append(part["image"])
                    parts.append({"type": "image"})
                else:
                    parts.append(part)
            msg = {**msg, "content": parts}
        out.append(msg)
    return out, images


def label_token_ids(tokenizer: Any) -> list[int]:
    """Ids of the answer letters "A" and "B" (read at the position after `<answer>`)."""
    return [tokenizer.convert_tokens_to_ids(tokenizer.tokenize(k))[-1] for k in ("A", "B")]


class Engine(ABC):
    """Generates text for chats. `complete_many` submits together so the engine batches them."""

    kind: str = "engine"

    def __init__(self, processor: Any, model_name: str):
        self.processor = processor
        self.model_name = model_name
        self.adapters: dict[str, str] = {}
        """More served models: name -> LoRA adapter folder on the same base (a request picks one
        with `GenParams.model`); `model_name` stays the default."""
        self.in_flight = 0
        self.started_at = int(time.time())
        self.batch_capacity: int | None = None
        """Sequences the engine runs in one batch (None when it cannot tell); admission control
        sizes its limits from it."""

    @property
    def model_names(self) -> list[str]:
        """Every name this engine answers to, the default first."""
        return [self.model_name, *self.adapters]

    @property
    def answer_token_ids(self) -> list[int] | None:
        tok = getattr(self.processor, "tokenizer", None)
        return label_token_ids(tok) if tok is not None else None

    async def start(self) -> None:  # noqa: B027 - optional hook
        """Bring the engine up (load weights, connect); called once before serving."""

    async def close(self) -> None:  # noqa: B027 - optional hook
        """Free the engine."""

    async def check_health(self) -> None:  # noqa: B027 - optional hook
        """Raise if the engine cannot serve."""

    @abstractmethod
    async def complete(
        self, chat: Chat, params: GenParams, *, continue_text: str | None = None
    ) -> Completion:
        """Generate one completion; `continue_text` continues an assistant turn already begun."""

    @abstractmethod
    def stream(self, chat: Chat, params: GenParams) -> AsyncIterator[Delta]:
        """Generate one completion piece by piece."""

    async def complete_many(
        self,
        chats: Sequence[Chat],
        params: GenParams,
        continue_texts: Sequence[str | None] | None = None,
    ) -> list[Completion]:
        conts = list(continue_texts) if continue_texts is not None else [None] * len(chats)
        shared = self.batch_context()
        tasks = [
            asyncio.ensure_future(self.complete(c, params, continue_text=t, **shared))
            for c, t in zip(chats, conts, strict=True)
        ]
        try:
            return list(await asyncio.gather(*tasks))
        except BaseException:
            for t in tasks:
                t.cancel()
            raise

    def batch_context(self) -> dict[str, Any]:
        """Keyword arguments shared by the completions of one batch (none by default)."""
        return {}


# --------------------------------------------------------------------------------------------
# In-process vLLM
# --------------------------------------------------------------------------------------------


class LocalEngine(Engine):
    """vLLM's `AsyncLLM` in this process. Build it under a `__main__` guard: vLLM spawns workers."""

    kind = "local"

    def __init__(
        self,
        ref: Any,
        processor: Any,
        model_name: str,
        engine_kwargs: dict[str, Any],
        adapters: dict[str, str] | None = None,
        worker_process: bool = False,
    ):
        super().__init__(processor, model_name)
        self.ref = ref
        self.engine_kwargs = engine_kwargs
        self.worker_process = worker_process
        self.adapters = dict(adapters or {})
        self._llm: Any = None
        self._loras: dict[str, Any] = {}
        self._pieces: dict[int, str] = {}
        self.batch_capacity = engine_kwargs.get("max_num_seqs")

    @classmethod
    def from_model(
        cls,
        model: str,
        adapter: str | None = None,
        *,
        served_model_name: str = "creative4u",
        max_model_len: int = 4096,
        adapters: dict[str, str] | None = None,
        worker_process: bool = False,
        **engine_overrides: Any,
    ) -> LocalEngine:
        """`adapters` serves more LoRA adapters of the same base, each under its own name.
        `worker_process` keeps vLLM's CPU default of a model worker process of its own (what a
        server runs); short jobs run the model in the engine-core process
        (`creative4u.generation.ensure_cpu_env`). It changes nothing on GPUs."""
        from creative4u.generation import default_engine_kwargs
        from creative4u.vlm import adapter_rank, load_processor, resolve

        ref = resolve(model, adapter)
        adapters = dict(adapters or {})
        for name, path in adapters.items():
            if name == served_model_name:
                raise ValueError(f"adapter name {name!r} is the served model's own name")
            other = resolve(path)
            if other.adapter is None or other.base != ref.base:
                raise ValueError(
                    f"adapter {name}={path} must be a LoRA adapter of {ref.base} "
                    f"(its base is {other.base})"
                )
        processor = load_processor(ref.base)
        kwargs = default_engine_kwargs(ref, max_model_len=max_model_len, **engine_overrides)
        if adapters:
            paths = [*([ref.adapter] if ref.adapter else []), *adapters.values()]
            kwargs.update(
                enable_lora=True,
                max_loras=len(paths),
                max_lora_rank=max(8, *(adapter_rank(a) for a in paths)),
            )
        return cls(ref, processor, served_model_name, kwargs, adapters, worker_process)

    def _lora_for(self, params: GenParams) -> Any:
        if not params.use_adapter:
            return None
        name = params.model or self.model_name
        if name not in self._loras and name != self.model_name:
            raise APIError(
                404,
                f"model {name!r} is not served here; this server serves "
                + ", ".join(repr(n) for n in self.model_names),
                param="model",
                code="model_not_found",
            )
        return self._loras.get(name)

    async def start(self) -> None:
        """Start vLLM (once: an app built around an engine already started leaves it be)."""
        if self._llm is not None:
            return
        from creative4u.generation import ensure_cpu_env

        ensure_cpu_env(self.worker_process)
        from vllm.engine.arg_utils import AsyncEngineArgs
        from vllm.v1.engine.async_llm import AsyncLLM

        args = AsyncEngineArgs(**{"disable_log_stats": True, **self.engine_kwargs})
        self._llm = AsyncLLM.from_engine_args(args)
        self.batch_capacity = int(self._llm.vllm_config.scheduler_config.max_num_seqs)
        from vllm.lora.request import LoRARequest

        named = {**({self.model_name: self.ref.adapter} if self.ref.adapter else {})}
        named.update(self.adapters)
        self._loras = {
            name: LoRARequest(name, i, path) for i, (name, path) in enumerate(named.items(), 1)
        }

    async def close(self) -> None:
        if self._llm is not None:
            llm, self._llm = self._llm, None
            # Stop the output handler first: vLLM's shutdown stops the engine process and only
            # then cancels it, so it would log the engine's exit as an EngineDeadError.
            handler = getattr(llm, "output_handler", None)
            if handler is not None and not handler.done():
                handler.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await handler
            await asyncio.to_thread(llm.shutdown)

    async def check_health(self) -> None:
        if self._llm is None:
            raise APIError(503, "engine is not running", code="engine_unavailable")
        try:
            await self._llm.check_health()
        except Exception as e:
            raise APIError(503, f"engine is unhealthy: {e}", code="engine_unavailable") from e

    def _inputs(self, chat: Chat, continue_text: str | None) -> dict[str, Any]:
        messages, images = split_images(chat)
        prompt = prompt_text(self.processor, messages) + (continue_text or "")
        inputs: dict[str, Any] = {"prompt": prompt}
        if images:
            inputs["multi_modal_data"] = {"image": images}
        return inputs

    def _sampling(self, params: GenParams, delta: bool) -> Any:
        """`delta` streams text as it is generated. A finished completion is read from its
        token ids instead (`_text`): vLLM would otherwise detokenize every step, and every
        log-probability candidate of every step, in this process, which on a small model costs
        more than a fifth of the throughput (bench/results/engine_settings.md)."""
        from vllm import SamplingParams
        from vllm.sampling_params import RequestOutputKind

        want = params.logprobs or bool(params.token_ids)
        return SamplingParams(
            detokenize=delta or bool(params.stop),  # stop strings need the text as it grows
            max_tokens=params.max_tokens,
            temperature=params.temperature,
            top_p=params.top_p,
            seed=params.seed,
            stop=params.stop or None,
            logprobs=(params.top_logprobs if want and not params.token_ids else None),
            logprob_token_ids=params.token_ids or None,
            output_kind=RequestOutputKind.DELTA if delta else RequestOutputKind.FINAL_ONLY,
        )

    async def _run(
        self, inputs: dict[str, Any], sampling: Any, params: GenParams
    ) -> AsyncIterator[Any]:
        from vllm.exceptions import VLLMClientError
        from vllm.v1.engine.exceptions import EngineDeadError

        if self._llm is None:
            raise APIError(503, "engine is not running", code="engine_unavailable")
        lora = self._lora_for(params)
        self.in_flight += 1
        try:
            async for out in self._llm.generate(
                inputs,
                sampling,
                uuid.uuid4().hex,
                lora_request=lora,
            ):
                yield out
        except EngineDeadError as e:
            raise APIError(503, "engine died; see the server log", code="engine_unavailable") from e
        except (VLLMClientError, ValueError) as e:
            raise APIError(400, f"the engine refused the request: {e}", param="messages") from e
        finally:
            self.in_flight -= 1

    def _piece(self, token_id: int) -> str:
        """A token's text as vLLM shows it in log-probabilities, remembered per id."""
        piece = self._pieces.get(token_id)
        if piece is None:
            from vllm.tokenizers.detokenizer_utils import convert_ids_list_to_tokens

            piece = convert_ids_list_to_tokens(self._llm.tokenizer, [token_id])[0]
            self._pieces[token_id] = piece
        return piece

    def _logprobs(self, c: Any) -> tuple[list[str], list[float | None], list[dict[str, float]]]:
        """vLLM's per-token log-probabilities -> (token texts, sampled log-prob, candidates)."""
        pieces: list[str] = []
        sampled: list[float | None] = []
        steps: list[dict[str, float]] = []

        def text(tid: int, lp: Any) -> str:
            return lp.decoded_token if lp.decoded_token is not None else self._piece(tid)

        for tid, lp in zip(c.token_ids, c.logprobs or [], strict=False):
            own = lp.get(tid)
            pieces.append(text(tid, own) if own is not None else "")
            sampled.append(own.logprob if own is not None else None)
            steps.append({text(k, v): v.logprob for k, v in lp.items()})
        return pieces, sampled, steps

    def _text(self, c: Any) -> str:
        """The completion's text: vLLM's own when it detokenized, else decoded once here
        (special tokens skipped, as vLLM's detokenizer skips them)."""
        if c.text or not c.token_ids:
            return c.text
        return self._llm.tokenizer.decode(list(c.token_ids), skip_special_tokens=True)

    async def complete(
        self, chat: Chat, params: GenParams, *, continue_text: str | None = None
    ) -> Completion:
        final = None
        async for out in self._run(
            self._inputs(chat, continue_text), self._sampling(params, False), params
        ):
            final = out
        if final is None:
            raise APIError(500, "the engine returned no output")
        c = final.outputs[0]
        pieces, sampled, steps = self._logprobs(c)
        return Completion(
            text=self._text(c),
            finish_reason=c.finish_reason,
            prompt_tokens=len(final.prompt_token_ids or []),
            completion_tokens=len(c.token_ids),
            pieces=pieces,
            sampled_logprobs=sampled,
            steps=steps if c.logprobs else None,
        )

    async def stream(self, chat: Chat, params: GenParams) -> AsyncIterator[Delta]:
        n_generated = 0
        async for out in self._run(self._inputs(chat, None), self._sampling(params, True), params):
            c = out.outputs[0]
            n_generated += len(c.token_ids)
            pieces, _, steps = self._logprobs(c)
            if out.finished:
                yield Delta(
                    c.text,
                    finish_reason=c.finish_reason or "stop",
                    prompt_tokens=len(out.prompt_token_ids or []),
                    completion_tokens=n_generated,
                    pieces=pieces,
                    steps=steps,
                )
            elif c.text or pieces:
                yield Delta(c.text, pieces=pieces, steps=steps)


# --------------------------------------------------------------------------------------------
# Any OpenAI-compatible server
# --------------------------------------------------------------------------------------------


def openai_base_url(url: str) -> str:
    """`http://host:8000` and `http://host:8000/v1/` both become `http://host:8000/v1`."""
    parts = urlsplit(url.rstrip("/"))
    path = parts.path if parts.path.endswith("/v1") else parts.path + "/v1"
    return urlunsplit((parts.scheme, parts.netloc, path, "", ""))


def openai_messages(chat: Chat, cache: dict[int, str] | None = None) -> list[dict[str, Any]]:
    """HF-style chat -> OpenAI chat messages, each image as a PNG data URL (encoded once)."""
    cache = {} if cache is None else cache
    out = []
    for msg in chat:
        content = msg.get("content")
        if isinstance(content, list):
            parts = []
            for part in content:
                if part.get("type") == "image":
                    img = part["image"]
                    if id(img) not in cache:
                        cache[id(img)] = to_data_url(img)
                    parts.append({"type": "image_url", "image_url": {"url": cache[id(img)]}})
                elif part.get("type") == "text":
                    parts.append({"type": "text", "text": part.get("text", "")})
            content = parts
        out.append({"role": msg["role"], "content": content})
    return out


class OpenAIEngine(Engine):
    """Forwards to an OpenAI-compatible server; the API in front of it stays the same."""

    kind = "url"

    def __init__(
        self,
        base_url: str,
        processor: Any,
        model_name: str,
        *,
        upstream_model: str | None = None,
        api_key: str | None = None,
        timeout_s: float = 300.0,
        batch_capacity: int | None = None,
    ):
        super().__init__(processor, model_name)
        self.batch_capacity = batch_capacity  # the upstream's max_num_seqs, when the operator says
        self.base_url = openai_base_url(base_url)
        self.upstream_model = upstream_model
        self.api_key = api_key
        self.timeout_s = timeout_s
        self._client: Any = None
        self._label_ids_supported = True
        self._continue_supported = True

    @classmethod
    def from_model(
        cls,
        base_url: str,
        model: str,
        *,
        served_model_name: str = "creative4u",
        upstream_model: str | None = None,
        api_key: str | None = None,
        timeout_s: float = 300.0,
        batch_capacity: int | None = None,
    ) -> OpenAIEngine:
        """`model` is the same folder or hub id the upstream serves: its processor sizes the images."""
        from creative4u.vlm import load_processor, resolve

        ref = resolve(model)
        return cls(
            base_url,
            load_processor(ref.base),
            served_model_name,
            upstream_model=upstream_model,
            api_key=api_key,
            timeout_s=timeout_s,
            batch_capacity=batch_capacity,
        )

    async def start(self) -> None:
        from openai import AsyncOpenAI

        self._client = AsyncOpenAI(
            base_url=self.base_url,
            api_key=self.api_key or "EMPTY",
            timeout=self.timeout_s,
            max_retries=0,
        )
        if self.upstream_model is None:
            ids = [m.id async for m in self._client.models.list()]
            if not ids:
                raise RuntimeError(f"{self.base_url} serves no models")
            self.upstream_model = ids[0]

    async def close(self) -> None:
        if self._client is not None:
            await self._client.close()
            self._client = None

    async def check_health(self) -> None:
        if self._client is None:
            raise APIError(503, "upstream client is not started", code="engine_unavailable")
        try:
            await self._client.with_options(timeout=5.0).models.list()
        except Exception as e:
            raise APIError(
                503, f"upstream {self.base_url} is unreachable: {e}", code="engine_unavailable"
            ) from e

    def _kwargs(
        self, chat: Chat, params: GenParams, cache: dict[int, str] | None
    ) -> dict[str, Any]:
        kwargs: dict[str, Any] = dict(
            model=self.upstream_model,
            messages=openai_messages(chat, cache),
            max_tokens=params.max_tokens,
            temperature=params.temperature,
            top_p=params.top_p,
        )
        if params.seed is not None:
            kwargs["seed"] = params.seed
        if params.stop:
            kwargs["stop"] = params.stop
        extra: dict[str, Any] = {}
        if params.logprobs or params.token_ids:
            kwargs["logprobs"] = True
            kwargs["top_logprobs"] = max(params.top_logprobs, 0) if not params.token_ids else 20
            if params.token_ids and self._label_ids_supported:
                extra["logprob_token_ids"] = list(params.token_ids)  # vLLM: exact P(A), P(B)
        if extra:
            kwargs["extra_body"] = extra
        return kwargs

    async def _create(self, kwargs: dict[str, Any]) -> Any:
        import openai

        if self._client is None:
            raise APIError(503, "upstream client is not started", code="engine_unavailable")
        self.in_flight += 1
        try:
            return await self._client.chat.completions.create(**kwargs)
        except openai.BadRequestError as e:
            extra = kwargs.get("extra_body") or {}
            if "logprob_token_ids" in extra and "logprob_token_ids" in str(e):
                # Not a vLLM upstream: fall back to top-k log-probabilities from now on.
                self._label_ids_supported = False
                extra.pop("logprob_token_ids")
                return await self._create(kwargs)
            raise APIError(
                400, f"upstream refused the request: {_upstream_message(e)}", param="messages"
            ) from e
        except openai.RateLimitError as e:
            raise APIError(429, "upstream is busy; retry later", code="upstream_busy") from e
        except openai.APITimeoutError as e:
            raise APIError(504, "upstream timed out", code="upstream_timeout") from e
        except openai.APIConnectionError as e:
            raise APIError(
                503, f"upstream {self.base_url} is unreachable", code="engine_unavailable"
            ) from e
        except openai.APIStatusError as e:
            raise APIError(502, f"upstream error {e.status_code}: {_upstream_message(e)}") from e
        finally:
            self.in_flight -= 1

    async def complete(
        self,
        chat: Chat,
        params: GenParams,
        *,
        continue_text: str | None = None,
        cache: dict[int, str] | None = None,
    ) -> Completion:
        kwargs = self._kwargs(chat, params, cache)
        if continue_text is not None:
            if not self._continue_supported:
                raise APIError(
                    501, "upstream cannot continue an assistant turn", code="unsupported"
                )
            kwargs["messages"].append({"role": "assistant", "content": continue_text})
            kwargs.setdefault("extra_body", {}).update(
                continue_final_message=True, add_generation_prompt=False
            )
        try:
            resp = await self._create(kwargs)
        except APIError as e:
            if continue_text is not None and e.status == 400:
                self._continue_supported = False
                raise APIError(
                    501, "upstream cannot continue an assistant turn", code="unsupported"
                ) from e
            raise
        choice = resp.choices[0]
        pieces, sampled, steps = _openai_logprobs(choice)
        usage = resp.usage
        return Completion(
            text=choice.message.content or "",
            finish_reason=choice.finish_reason,
            prompt_tokens=usage.prompt_tokens if usage else 0,
            completion_tokens=usage.completion_tokens if usage else len(pieces),
            pieces=pieces,
            sampled_logprobs=sampled,
            steps=steps or None,
        )

    def batch_context(self) -> dict[str, Any]:
        return {"cache": {}}  # each distinct image is encoded once for all its pairs

    async def stream(self, chat: Chat, params: GenParams) -> AsyncIterator[Delta]:
        kwargs = self._kwargs(chat, params, None)
        kwargs.update(stream=True, stream_options={"include_usage": True})
        stream = await self._create(kwargs)
        self.in_flight += 1
        finish: str | None = None
        usage = None
        try:
            async for chunk in stream:
                if chunk.usage is not None:
                    usage = chunk.usage
                for choice in chunk.choices:
                    text = (choice.delta.content if choice.delta else None) or ""
                    if choice.finish_reason:
                        finish = choice.finish_reason
                    pieces, _, steps = _openai_logprobs(choice)
                    if text or pieces:
                        yield Delta(text, pieces=pieces, steps=steps)
        finally:
            self.in_flight -= 1
            await stream.close()
        yield Delta(
            "",
            finish_reason=finish or "stop",
            prompt_tokens=usage.prompt_tokens if usage else None,
            completion_tokens=usage.completion_tokens if usage else None,
        )


def _openai_logprobs(choice: Any) -> tuple[list[str], list[float | None], list[dict[str, float]]]:
    """An OpenAI choice's (or stream chunk's) log-probabilities -> (texts, sampled, candidates)."""
    content = getattr(choice.logprobs, "content", None) if choice.logprobs else None
    pieces: list[str] = []
    sampled: list[float | None] = []
    steps: list[dict[str, float]] = []
    for item in content or []:
        pieces.append(item.token)
        sampled.append(item.logprob)
        step = {t.token: t.logprob for t in (item.top_logprobs or [])}
        step.setdefault(item.token, item.logprob)
        steps.append(step)
    return pieces, sampled, steps


def _upstream_message(e: Any) -> str:
    body = getattr(e, "body", None)
    if isinstance(body, dict):
        err = body.get("error", body)
        if isinstance(err, dict) and err.get("message"):
            return str(err["message"])
        if body.get("message"):
            return str(body["message"])
    return str(e)


# --------------------------------------------------------------------------------------------
# transformers, on a model in memory
# --------------------------------------------------------------------------------------------


class TransformersEngine(Engine):
    """transformers `generate` on a loaded model (the one being trained, or any checkpoint).

    It has no continuous batching: `complete_many` runs the chats in fixed batches of
    `batch_size`, off the event loop, which is what validation during training needs.
    """

    kind = "transformers"

    def __init__(
        self, model: Any, processor: Any, model_name: str = "creative4u", batch_size: int = 16
    ):
        super().__init__(processor, model_name)
        self.model = model
        self.batch_size = batch_size
        self.batch_capacity = batch_size

    @classmethod
    def from_model(
        cls,
        model: str,
        adapter: str | None = None,
        *,
        served_model_name: str = "creative4u",
        batch_size: int = 16,
    ) -> TransformersEngine:
        from creative4u.vlm import load

        loaded, processor = load(model, adapter)
        return cls(loaded, processor, served_model_name, batch_size)

    async def complete(
        self, chat: Chat, params: GenParams, *, continue_text: str | None = None
    ) -> Completion:
        return (await self.complete_many([chat], params, [continue_text]))[0]

    async def complete_many(
        self,
        chats: Sequence[Chat],
        params: GenParams,
        continue_texts: Sequence[str | None] | None = None,
    ) -> list[Completion]:
        conts = list(continue_texts) if continue_texts is not None else [None] * len(chats)
        self.in_flight += len(chats)
        try:
            return await asyncio.to_thread(self.generate, list(chats), params, conts)
        finally:
            self.in_flight -= len(chats)

    async def stream(self, chat: Chat, params: GenParams) -> AsyncIterator[Delta]:
        """The finished completion as one piece (generate has no incremental output here)."""
        c = await self.complete(chat, params)
        yield Delta(
            c.text,
            finish_reason=c.finish_reason,
            prompt_tokens=c.prompt_tokens,
            completion_tokens=c.completion_tokens,
            pieces=c.pieces,
            steps=c.steps or [],
        )

    def generate(
        self, chats: list[Chat], params: GenParams, conts: list[str | None]
    ) -> list[Completion]:
        import contextlib

        import torch

        from creative4u.generation import generating

        tok = self.processor.tokenizer
        bare = (
            self.model.disable_adapter()
            if not params.use_adapter and hasattr(self.model, "disable_adapter")
            else contextlib.nullcontext()
        )
        out: list[Completion] = []
        with torch.inference_mode(), generating(self.model), bare:
            for start in range(0, len(chats), self.batch_size):
                out += self._batch(
                    chats[start : start + self.batch_size],
                    conts[start : start + self.batch_size],
                    params,
                    tok,
                )
        return out

    def _batch(
        self, chats: list[Chat], conts: list[str | None], params: GenParams, tok: Any
    ) -> list[Completion]:
        import torch

        prompts, images = [], []
        for chat, cont in zip(chats, conts, strict=True):
            messages, imgs = split_images(chat)
            prompts.append(prompt_text(self.processor, messages) + (cont or ""))
            images += imgs
        batch = self.processor(
            text=prompts, images=images or None, padding=True, return_tensors="pt"
        ).to(self.model.device)
        kwargs: dict[str, Any] = dict(
            max_new_tokens=params.max_tokens,
            return_dict_in_generate=True,
            output_scores=bool(params.logprobs or params.token_ids),
            pad_token_id=tok.pad_token_id,
            eos_token_id=tok.eos_token_id,
        )
        if params.temperature > 0:
            kwargs.update(
                do_sample=True, temperature=params.temperature, top_k=0, top_p=params.top_p
            )
        else:
            kwargs.update(do_sample=False)
        if params.seed is not None:
            torch.manual_seed(params.seed)
        res = self.model.generate(**batch, **kwargs)
        prompt_len = batch["input_ids"].shape[1]
        seqs = res.sequences[:, prompt_len:]
        logprobs = (
            torch.stack(res.scores, dim=1).float().log_softmax(-1)
            if kwargs["output_scores"]
            else None
        )
        out = []
        for i in range(len(chats)):
            ids = seqs[i].tolist()
            n = len(ids)
            while n and ids[n - 1] == tok.pad_token_id:
                n -= 1
            finish = "stop" if n < len(ids) or (n and ids[n - 1] == tok.eos_token_id) else "length"
            if n and ids[n - 1] == tok.eos_token_id:
                n -= 1  # the end-of-turn token is not text, as vLLM reports it
            pieces = [tok.decode([t], skip_special_tokens=False) for t in ids[:n]]
            steps = None
            sampled: list[float | None] = []
            if logprobs is not None:
                steps = []
                for j in range(n):
                    row = logprobs[i, j]
                    if params.token_ids:
                        cand = list(params.token_ids)
                    else:
                        cand = row.topk(max(params.top_logprobs, 1)).indices.tolist()
                    step = {tok.decode([t]): float(row[t]) for t in cand}
                    step.setdefault(pieces[j], float(row[ids[j]]))
                    steps.append(step)
                    sampled.append(float(row[ids[j]]))
            out.append(
                Completion(
                    text=tok.decode(ids[:n], skip_special_tokens=True),
                    finish_reason=finish,
                    prompt_tokens=int(batch["attention_mask"][i].sum()),
                    completion_tokens=n,
                    pieces=pieces,
                    sampled_logprobs=sampled,
                    steps=steps,
                )
            )
        return out


def make_engine(kind: str, model: str, adapter: str | None = None, **kwargs: Any) -> Engine:
    """ "vllm" (in process), "transformers", or the URL of an OpenAI-compatible server."""
    if kind in ("vllm", "local"):
        return LocalEngine.from_model(model, adapter, **kwargs)
    if kind == "transformers":
        return TransformersEngine.from_model(model, adapter, **kwargs)
    if kind.startswith(("http://", "https://")):
        if adapter:
            raise ValueError("with a URL engine the upstream serves the adapter; drop adapter")
        return OpenAIEngine.from_model(kind, model, **kwargs)
    raise ValueError(f"engine must be 'vllm', 'transformers' or an http(s) URL, got {kind!r}")
