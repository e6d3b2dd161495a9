"""The OpenAI-compatible chat surface: request shape, message reading, responses and SSE chunks.

Any OpenAI client can run a selection with a normal chat request holding the two creatives as
`image_url` parts (the prompt `creative4u.protocol.build_messages(..., style="openai")` builds).
Images are read by the same checked loader as `/v1/select`: data URLs, base64, and http(s) URLs
only for allow-listed hosts; never local paths.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from PIL import Image
from pydantic import BaseModel, ConfigDict, Field

from creative4u.engines import Chat, Completion, Delta
from serve.config import Limits
from serve.errors import APIError

ROLES = ("system", "user", "assistant")


class ChatRequest(BaseModel):
    """The fields of OpenAI's chat completion request this server honours; others are ignored."""

    model_config = ConfigDict(extra="allow")

    model: str
    messages: list[dict[str, Any]] = Field(min_length=1)
    max_tokens: int | None = Field(None, ge=1)
    max_completion_tokens: int | None = Field(None, ge=1)
    temperature: float | None = Field(None, ge=0, le=2)
    top_p: float | None = Field(None, gt=0, le=1)
    seed: int | None = None
    n: int | None = Field(1, ge=1)
    stop: str | list[str] | None = None
    stream: bool | None = False
    stream_options: dict[str, Any] | None = None
    logprobs: bool | None = False
    top_logprobs: int | None = Field(None, ge=0, le=20)
    logprob_token_ids: list[int] | None = Field(None, max_length=128)


LoadImage = Callable[[Any, str], Awaitable[Image.Image]]


async def read_messages(messages: list[dict[str, Any]], limits: Limits, load: LoadImage) -> Chat:
    """OpenAI messages -> HF chat with checked, resized images; every problem names its field."""
    chat: Chat = []
    n_chars = 0
    image_refs: list[tuple[Any, str]] = []
    for i, msg in enumerate(messages):
        where = f"messages[{i}]"
        if not isinstance(msg, dict):
            raise APIError(400, "a message must be an object", param=where)
        role = msg.get("role")
        if role not in ROLES:
            raise APIError(
                400,
                f"role {role!r} is not supported (use {', '.join(ROLES)})",
                param=f"{where}.role",
            )
        content = msg.get("content")
        if isinstance(content, str):
            n_chars += len(content)
            chat.append({"role": role, "content": content})
            continue
        if not isinstance(content, list):
            raise APIError(
                400, "content must be a string or a list of parts", param=f"{where}.content"
            )
        parts: list[dict[str, Any]] = []
        for j, part in enumerate(content):
            pwhere = f"{where}.content[{j}]"
            ptype = part.get("type") if isinstance(part, dict) else None
            if ptype == "text":
                text = part.get("text")
                if not isinstance(text, str):
                    raise APIError(400, "a text part needs a string 'text'", param=f"{pwhere}.text")
                n_chars += len(text)
                parts.append({"type": "text", "text": text})
            elif ptype == "image_url":
                if role != "user":
                    raise APIError(400, "images are accepted in user messages only", param=pwhere)
                ref = part.get("image_url")
                url = ref.get("url") if isinstance(ref, dict) else ref
                if not isinstance(url, str):
                    raise APIError(
                        400, "an image_url part needs a string url", param=f"{pwhere}.image_url.url"
                    )
                image_refs.append((url, f"{pwhere}.image_url.url"))
                parts.append({"type": "image", "image": len(image_refs) - 1})
            else:
                raise APIError(
                    400,
                    f"content part type {ptype!r} is not supported (use 'text' or 'image_url')",
                    param=f"{pwhere}.type",
                )
        chat.append({"role": role, "content": parts})
    if n_chars > limits.max_prompt_chars:
        raise APIError(
            400,
            f"messages hold {n_chars} characters of text, more than the limit of {limits.max_prompt_chars}",
            param="messages",
            code="prompt_too_long",
        )
    if len(image_refs) > limits.max_images_per_prompt:
        raise APIError(
            400,
            f"{len(image_refs)} images in one request; this server accepts at most "
            f"{limits.max_images_per_prompt}",
            param="messages",
            code="too_many_images",
        )
    if chat[-1]["role"] == "assistant":
        raise APIError(400, "the last message must not be the assistant's", param="messages")
    import asyncio

    images = await asyncio.gather(*(load(url, param) for url, param in image_refs))
    for msg in chat:
        if isinstance(msg["content"], list):
            for part in msg["content"]:
                if part["type"] == "image":
                    part["image"] = images[part["image"]]
    return chat


def new_id() -> str:
    return "chatcmpl-" + uuid.uuid4().hex


def logprobs_body(c: Completion, top_n: int, return_all: bool) -> dict[str, Any]:
    content = []
    for k, piece in enumerate(c.pieces):
        step = (c.steps or [])[k] if c.steps and k < len(c.steps) else {}
        tops = sorted(step.items(), key=lambda kv: -kv[1])
        if not return_all:
            tops = tops[:top_n]
        content.append(
            {
                "token": piece,
                "logprob": max(c.sampled_logprobs[k], -9999.0)
                if c.sampled_logprobs[k] is not None
                else -9999.0,
                "bytes": list(piece.encode("utf-8", errors="replace")),
                "top_logprobs": [
                    {
                        "token": t,
                        "logprob": max(lp, -9999.0),
                        "bytes": list(t.encode("utf-8", errors="replace")),
                    }
                    for t, lp in tops
                ],
            }
        )
    return {"content": content}


def completion_body(
    c: Completion, model: str, *, logprobs: bool = False, top_n: int = 0, return_all: bool = False
) -> dict[str, Any]:
    return {
        "id": new_id(),
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": c.text},
                "logprobs": logprobs_body(c, top_n, return_all) if logprobs else None,
                "finish_reason": c.finish_reason or "stop",
            }
        ],
        "usage": {
            "prompt_tokens": c.prompt_tokens,
            "completion_tokens": c.completion_tokens,
            "total_tokens": c.prompt_tokens + c.completion_tokens,
        },
    }


def sse_event(obj: dict[str, Any]) -> bytes:
    return f"data: {json.dumps(obj, separators=(',', ':'))}\n\n".encode()


async def sse_chunks(
    deltas: AsyncIterator[Delta],
    model: str,
    include_usage: bool,
    on_usage: Callable[[int, int], None] | None = None,
) -> AsyncIterator[bytes]:
    """OpenAI `chat.completion.chunk` events, then `data: [DONE]`; errors become an error event."""
    cid, created = new_id(), int(time.time())

    def chunk(delta: dict[str, Any], finish: str | None) -> dict[str, Any]:
        return {
            "id": cid,
            "object": "chat.completion.chunk",
            "created": created,
            "model": model,
            "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
        }

    yield sse_event(chunk({"role": "assistant", "content": ""}, None))
    try:
        async for d in deltas:
            if d.finish_reason is not None:
                if d.text:
                    yield sse_event(chunk({"content": d.text}, None))
                yield sse_event(chunk({}, d.finish_reason))
                pt, ct = d.prompt_tokens or 0, d.completion_tokens or 0
                if on_usage is not None:
                    on_usage(pt, ct)
                if include_usage:
                    yield sse_event(
                        {
                            "id": cid,
                            "object": "chat.completion.chunk",
                            "created": created,
                            "model": model,
                            "choices": [],
                            "usage": {
                                "prompt_tokens": pt,
                                "completion_tokens": ct,
                                "total_tokens": pt + ct,
                            },
                        }
                    )
            elif d.text:
                yield sse_event(chunk({"content": d.text}, None))
    except APIError as e:
        yield sse_event(e.body())
    except TimeoutError:
        yield sse_event(APIError(504, "request timed out while streaming", code="timeout").body())
    yield b"data: [DONE]\n\n"
