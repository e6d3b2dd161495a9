"""The selection API: `create_app(engine, config)` builds the whole FastAPI application.

The factory takes the engine (and, optionally, an M2FN CTR scorer and a URL fetcher) from the
caller, so the same app runs in front of an in-process vLLM engine, an OpenAI-compatible URL, or
a test double, with nothing else changed.
"""

from __future__ import annotations

import asyncio
import gc
import hmac
import json
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, Literal

from fastapi import FastAPI
from fastapi.responses import Response, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from creative4u.calibration import Calibration
from creative4u.engines import Engine, GenParams
from creative4u.images import in_image_pool
from creative4u.results import Ranking, Selection
from creative4u.selection import AsyncSelector, CTRScorer, SelectOptions
from serve.admission import DEFAULT_BATCH_CAPACITY, Admission, admission_limits
from serve.config import ServeConfig
from serve.errors import APIError, install_error_handlers
from serve.fetch import URLFetcher
from serve.inputs import load_creative
from serve.metrics import Metrics
from serve.openai_api import (
    ChatRequest,
    completion_body,
    read_messages,
    sse_chunks,
    sse_event,
)

# --------------------------------------------------------------------------------------------
# Request bodies of our own endpoints (unknown fields are refused: a typo must not go unnoticed)
# --------------------------------------------------------------------------------------------

logger = logging.getLogger("creative4u.serve")


class CreativeIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    image: str = Field(description="data URL, base64, or an allow-listed http(s) URL")
    id: str | None = Field(None, max_length=200)


class OptionsIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    both_orders: bool = True
    max_tokens: int | None = Field(None, ge=1)
    temperature: float = Field(0.0, ge=0, le=2)
    seed: int | None = None
    probe_answer: bool | None = None
    rank_method: Literal["auto", "full", "adaptive"] = Field(
        "auto",
        description="/v1/rank: every pair up to 8 creatives and adaptive rounds above (auto), "
        "or always one of them",
    )


class SelectIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    creatives: list[str | CreativeIn]
    query: str
    title: str
    model: str | None = Field(None, description="a served model (/v1/models); default: the first")
    options: OptionsIn = Field(default_factory=OptionsIn)
    stream: bool = Field(
        False,
        description="/v1/select: server-sent events, the (A, B) order's text as it is generated "
        "(`delta` events), then the selection (`selection`), then [DONE]",
    )


class RankIn(SelectIn):
    pass


# --------------------------------------------------------------------------------------------
# The gate in front of every request: auth, body size, metrics
# --------------------------------------------------------------------------------------------


class Gate:
    """Pure ASGI middleware: refuse before reading a body (wrong key, declared size too large),
    stop a body that grows past the limit while it streams in, and count every response."""

    def __init__(self, app: Any, config: ServeConfig, metrics: Metrics):
        self.app, self.config, self.metrics = app, config, metrics

    async def _refuse(self, send: Any, err: APIError) -> None:
        body = json.dumps(err.body()).encode()
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
        ]
        if err.status == 401:
            headers.append((b"www-authenticate", b"Bearer"))
        await send({"type": "http.response.start", "status": err.status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    def _auth_error(self, scope: dict[str, Any]) -> APIError | None:
        key = self.config.api_key
        if not key or not scope["path"].startswith("/v1/"):
            return None
        header = ""
        for name, value in scope.get("headers", []):
            if name == b"authorization":
                header = value.decode("latin-1")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return APIError(
                401,
                "missing API key: send the header 'Authorization: Bearer <key>'",
                code="missing_api_key",
            )
        if not hmac.compare_digest(token.strip().encode(), key.encode()):
            return APIError(401, "invalid API key", code="invalid_api_key")
        return None

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        t0 = time.perf_counter()
        status = {"code": 500}

        async def counting_send(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            await send(message)

        try:
            err = self._auth_error(scope)
            limit = self.config.limits.max_body_bytes
            if err is None:
                for name, value in scope.get("headers", []):
                    if name == b"content-length" and value.isdigit() and int(value) > limit:
                        err = _body_too_large(int(value), limit)
            if err is not None:
                await self._refuse(counting_send, err)
                return
            seen = 0

            async def limited_receive() -> dict[str, Any]:
                nonlocal seen
                message = await receive()
                if message["type"] == "http.request":
                    seen += len(message.get("body", b""))
                    if seen > limit:
                        e = _body_too_large(seen, limit)
                        raise StarletteHTTPException(413, e.message)
                return message

            await self.app(scope, limited_receive, counting_send)
        finally:
            self.metrics.observe(scope["path"], status["code"], time.perf_counter() - t0)


def _body_too_large(size: int, limit: int) -> APIError:
    return APIError(
        413,
        f"request body is {size} bytes or more, more than the limit of {limit}",
        code="payload_too_large",
    )


# --------------------------------------------------------------------------------------------
# The app
# --------------------------------------------------------------------------------------------


def create_app(
    engine: Engine,
    config: ServeConfig | None = None,
    *,
    ctr_scorer: CTRScorer | None = None,
    fetcher: URLFetcher | None = None,
    calibration: Calibration | None = None,
    calibrations: dict[str, Calibration | None] | None = None,
) -> FastAPI:
    """The API around `engine`. `ctr_scorer` fills `ctr` (M2FN, or a test double);
    `calibration` is the one stored with the model (`creative4u calibrate`), `calibrations` those
    of the engine's other served adapters, by name."""
    cfg = config or ServeConfig()
    limits = cfg.limits
    metrics = Metrics()
    if fetcher is None and cfg.allow_url_hosts:
        fetcher = URLFetcher(cfg.allow_url_hosts, limits.max_image_bytes, cfg.url_timeout_s)
    admission: Admission | None = None
    calibrations = {engine.model_name: calibration, **(calibrations or {})}
    selectors = {
        name: AsyncSelector(
            engine,
            default_max_tokens=cfg.default_max_tokens,
            probe_answer=cfg.probe_answer,
            ctr_scorer=ctr_scorer,
            metrics=metrics,
            calibration=calibrations.get(name),
            model=name,
        )
        for name in engine.model_names
    }
    selector = selectors[engine.model_name]

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        nonlocal admission
        await engine.start()
        admission = Admission(
            *admission_limits(
                engine.batch_capacity, cfg.request_timeout_s, cfg.max_concurrency, cfg.max_queue
            )
        )
        logger.info(
            "admission: %d requests at once, %d waiting (engine batch %s sequences)",
            admission.max_concurrency,
            admission.max_queue,
            engine.batch_capacity or f"unknown, assumed {DEFAULT_BATCH_CAPACITY}",
        )
        metrics.bind(
            lambda: admission.active if admission else 0,
            lambda: admission.waiting if admission else 0,
            lambda: engine.in_flight,
        )
        # Everything alive now (torch, vLLM, the page's modules: millions of objects) lives as
        # long as the server. Left in the collector's generations, each full collection walks
        # all of it, and the engine's output decoding triggers collections all the time: under a
        # burst that was half of the event loop's busy time (bench/profile_serve.py).
        gc.collect()
        gc.freeze()
        try:
            yield
        finally:
            await engine.close()
            if fetcher is not None:
                await fetcher.aclose()

    app = FastAPI(
        title="creative4u selection API",
        description="Which creative will users click more, and why: OpenAI-compatible chat, "
        "plus pair selection and ranking with per-dimension reasons.",
        lifespan=lifespan,
    )
    install_error_handlers(app)
    app.add_middleware(Gate, config=cfg, metrics=metrics)
    app.state.engine, app.state.selector, app.state.metrics = engine, selector, metrics

    async def load(value: Any, param: str):
        img = await load_creative(value, param, limits, fetcher)
        return await in_image_pool(selector.prepare, img)

    def check_text(name: str, value: str) -> None:
        if len(value) > limits.max_text_chars:
            raise APIError(
                400,
                f"{name} is {len(value)} characters, more than the limit of {limits.max_text_chars}",
                param=name,
                code="text_too_long",
            )

    def check_max_tokens(value: int | None, param: str) -> None:
        if value is not None and value > limits.max_tokens:
            raise APIError(
                400, f"{param} is {value}, more than the limit of {limits.max_tokens}", param=param
            )

    def check_model(name: str) -> AsyncSelector:
        if name not in selectors:
            raise APIError(
                404,
                f"model {name!r} is not served here; this server serves "
                + ", ".join(repr(n) for n in engine.model_names),
                param="model",
                code="model_not_found",
            )
        return selectors[name]

    async def guarded(coro_fn: Any) -> Any:
        """Run under an admission slot and the request timeout."""
        assert admission is not None
        async with admission.slot():
            try:
                async with asyncio.timeout(cfg.request_timeout_s):
                    return await coro_fn()
            except TimeoutError as e:
                raise APIError(
                    504, f"request took longer than {cfg.request_timeout_s:g}s", code="timeout"
                ) from e

    async def creatives_in(body: SelectIn) -> tuple[list[Any], list[str]]:
        refs = []
        ids = []
        for i, c in enumerate(body.creatives):
            if isinstance(c, CreativeIn):
                refs.append((c.image, f"creatives[{i}].image"))
                ids.append(c.id if c.id is not None else str(i))
            else:
                refs.append((c, f"creatives[{i}]"))
                ids.append(str(i))
        if len(set(ids)) != len(ids):
            raise APIError(400, "creative ids must be unique", param="creatives")
        with metrics.stage("read"):
            images = await asyncio.gather(*(load_creative(v, p, limits, fetcher) for v, p in refs))
        return list(images), ids

    def json_response(result: BaseModel) -> Response:
        """The result written once (FastAPI would validate the returned model against
        `response_model` again before writing it); `response_model` still documents it."""
        with metrics.stage("serialize"):
            body = result.model_dump_json()
        return Response(body, media_type="application/json")

    def options_of(body: SelectIn) -> SelectOptions:
        check_max_tokens(body.options.max_tokens, "options.max_tokens")
        return SelectOptions(**body.options.model_dump())

    def streamed(events: AsyncIterator[bytes], release: Any) -> StreamingResponse:
        async def guarded_events() -> AsyncIterator[bytes]:
            try:
                async with asyncio.timeout(cfg.request_timeout_s):
                    async for chunk in events:
                        yield chunk
            except TimeoutError:
                yield sse_event({"error": {"message": "request timed out", "code": "timeout"}})
            except APIError as e:
                yield sse_event(e.body())
            finally:
                release()

        return StreamingResponse(
            guarded_events(),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache"},
        )

    # ---- service endpoints ------------------------------------------------------------------

    @app.get("/health")
    async def health() -> dict[str, Any]:
        await engine.check_health()
        limits = (
            {"max_concurrency": admission.max_concurrency, "max_queue": admission.max_queue}
            if admission
            else {}
        )
        return {
            "status": "ok",
            "model": engine.model_name,
            "engine": engine.kind,
            "batch_capacity": engine.batch_capacity,
            "admission": limits,
        }

    @app.get("/metrics")
    async def prometheus() -> Response:
        return Response(metrics.render(), media_type=metrics.content_type)

    @app.get("/v1/models")
    async def models() -> dict[str, Any]:
        return {
            "object": "list",
            "data": [
                {
                    "id": name,
                    "object": "model",
                    "created": engine.started_at,
                    "owned_by": "creative4u",
                }
                for name in engine.model_names
            ],
        }

    # ---- OpenAI-compatible chat -------------------------------------------------------------

    @app.post("/v1/chat/completions", response_model=None)
    async def chat_completions(body: ChatRequest) -> Any:
        check_model(body.model)
        if (body.n or 1) != 1:
            raise APIError(400, "only n=1 is supported", param="n")
        check_max_tokens(body.max_tokens, "max_tokens")
        check_max_tokens(body.max_completion_tokens, "max_completion_tokens")
        top_n = body.top_logprobs or 0
        params = GenParams(
            max_tokens=body.max_completion_tokens or body.max_tokens or cfg.default_max_tokens,
            temperature=1.0 if body.temperature is None else body.temperature,
            top_p=1.0 if body.top_p is None else body.top_p,
            seed=body.seed,
            stop=[body.stop] if isinstance(body.stop, str) else body.stop,
            logprobs=bool(body.logprobs),
            top_logprobs=top_n,
            token_ids=body.logprob_token_ids if body.logprobs else None,
            model=body.model,
        )
        if body.logprob_token_ids and not body.logprobs:
            raise APIError(400, "logprob_token_ids needs logprobs=true", param="logprob_token_ids")

        if not body.stream:

            async def run() -> dict[str, Any]:
                chat = await read_messages(body.messages, limits, load)
                c = await engine.complete(chat, params)
                metrics.count_tokens(c.prompt_tokens, c.completion_tokens, "chat")
                return completion_body(
                    c,
                    body.model,
                    logprobs=bool(body.logprobs),
                    top_n=top_n,
                    return_all=bool(body.logprob_token_ids),
                )

            return await guarded(run)

        if body.logprobs:
            raise APIError(400, "logprobs are not supported with stream=true", param="logprobs")
        assert admission is not None
        release = await admission.acquire()
        try:
            async with asyncio.timeout(cfg.request_timeout_s):
                chat = await read_messages(body.messages, limits, load)
        except BaseException as e:
            release()
            if isinstance(e, TimeoutError):
                raise APIError(504, "request timed out while reading images", code="timeout") from e
            raise
        include_usage = bool((body.stream_options or {}).get("include_usage"))

        return streamed(
            sse_chunks(
                engine.stream(chat, params),
                body.model,
                include_usage,
                on_usage=lambda p, g: metrics.count_tokens(p, g, "chat"),
            ),
            release,
        )

    # ---- selection ----------------------------------------------------------------------------

    @app.post("/v1/select", response_model=Selection)
    async def select(body: SelectIn) -> Any:
        if len(body.creatives) != 2:
            raise APIError(
                400,
                f"/v1/select compares exactly 2 creatives, got {len(body.creatives)}; use /v1/rank "
                "to order more",
                param="creatives",
                code="wrong_number_of_creatives",
            )
        check_text("query", body.query)
        check_text("title", body.title)
        options = options_of(body)
        chosen = check_model(body.model or engine.model_name)

        if not body.stream:

            async def run() -> Response:
                images, _ = await creatives_in(body)
                return json_response(await chosen.select(images, body.query, body.title, options))

            return await guarded(run)

        assert admission is not None
        release = await admission.acquire()
        try:
            async with asyncio.timeout(cfg.request_timeout_s):
                images, _ = await creatives_in(body)
        except BaseException as e:
            release()
            if isinstance(e, TimeoutError):
                raise APIError(504, "request timed out while reading images", code="timeout") from e
            raise

        async def events() -> AsyncIterator[bytes]:
            async for item in chosen.select_stream(images, body.query, body.title, options):
                if isinstance(item, Selection):
                    yield sse_event({"type": "selection", "selection": item.model_dump()})
                else:
                    yield sse_event({"type": "delta", "order": "AB", "text": item.text})
            yield b"data: [DONE]\n\n"

        return streamed(events(), release)

    @app.post("/v1/rank", response_model=Ranking)
    async def rank(body: RankIn) -> Any:
        n = len(body.creatives)
        if not 2 <= n <= limits.max_creatives:
            raise APIError(
                400,
                f"/v1/rank orders 2 to {limits.max_creatives} creatives, got {n}",
                param="creatives",
                code="wrong_number_of_creatives",
            )
        check_text("query", body.query)
        check_text("title", body.title)
        if body.stream:
            raise APIError(400, "stream is only supported by /v1/select", param="stream")
        options = options_of(body)
        chosen = check_model(body.model or engine.model_name)

        async def run() -> Response:
            images, ids = await creatives_in(body)
            return json_response(
                await chosen.rank(images, body.query, body.title, options, ids=ids)
            )

        return await guarded(run)

    return app
