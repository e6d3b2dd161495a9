"""Hypothesis strategies for bad and unusual input, shared by every fuzz test.

One generator feeds the API, the click-log ingestion and the training image loader, so a shape
that breaks one path is tried on all of them. Images are small by default (a fuzz example must
be cheap) with the extreme shapes that have broken something kept as explicit draws.
"""

from __future__ import annotations

import base64
import io
from typing import Any

from hypothesis import strategies as st
from PIL import Image

MODES = ("RGB", "RGBA", "L", "LA", "P", "1", "CMYK", "I;16", "I", "F", "YCbCr")
FORMATS = ("PNG", "JPEG", "GIF", "WEBP", "BMP", "TIFF", "ICO")
MIME = {
    "PNG": "image/png",
    "JPEG": "image/jpeg",
    "GIF": "image/gif",
    "WEBP": "image/webp",
    "BMP": "image/bmp",
    "TIFF": "image/tiff",
    "ICO": "image/x-icon",
}

EXTREME_SIZES = [(12000, 20), (20, 12000), (1, 1), (1, 4000), (4000, 1), (3000, 2), (2, 300)]
"""Shapes past failures or the processor's bounds point at (the 12000 x 20 PNG gave a 500)."""


def encode(img: Image.Image, fmt: str) -> bytes:
    """`img` saved as `fmt`, converted to a mode the format can store when it cannot."""
    buf = io.BytesIO()
    if img.mode == "I" and fmt in ("PNG", "ICO"):
        img = img.convert("I;16")  # Pillow stops writing 32-bit integer PNGs
    try:
        img.save(buf, format=fmt)
    except (OSError, ValueError, KeyError, TypeError):
        buf = io.BytesIO()
        img.convert("RGBA" if fmt in ("PNG", "WEBP", "TIFF", "ICO") else "RGB").save(buf, fmt)
    return buf.getvalue()


def png(size: tuple[int, int], colour: tuple[int, int, int] = (200, 40, 50)) -> bytes:
    return encode(Image.new("RGB", size, colour), "PNG")


sizes = st.one_of(
    st.tuples(st.integers(1, 96), st.integers(1, 96)),
    st.tuples(st.integers(1, 700), st.integers(1, 700)),
    st.sampled_from(EXTREME_SIZES),
)


@st.composite
def valid_images(draw: Any) -> bytes:
    """An image any decoder reads: random size, mode, format and content."""
    w, h = draw(sizes)
    mode = draw(st.sampled_from(MODES))
    colour = draw(st.integers(0, 255))
    img = Image.new("L", (w, h), colour)
    if w * h <= 4096 and draw(st.booleans()):
        img.putdata(draw(st.lists(st.integers(0, 255), min_size=w * h, max_size=w * h)))
    try:
        img = img.convert(mode)
    except ValueError:
        img = img.convert("RGB")
    fmt = draw(st.sampled_from(FORMATS))
    if fmt == "ICO" and max(w, h) > 256:
        fmt = "PNG"
    return encode(img, fmt)


@st.composite
def broken_images(draw: Any) -> bytes:
    """What a creative looks like after a bad upload: truncated, bit-flipped, or not an image."""
    kind = draw(st.sampled_from(["truncated", "flipped", "garbage", "header_only", "empty"]))
    if kind == "garbage":
        return draw(st.binary(min_size=1, max_size=512))
    if kind == "empty":
        return b""
    raw = draw(valid_images())
    if kind == "header_only":
        return raw[:16]
    if kind == "truncated":
        return raw[: draw(st.integers(0, max(0, len(raw) - 1)))]
    pos = draw(st.integers(0, len(raw) - 1))
    return raw[:pos] + bytes([raw[pos] ^ 0xFF]) + raw[pos + 1 :]


image_bytes = st.one_of(valid_images(), valid_images(), broken_images())
"""Two parts valid images to one part broken ones."""

odd_text = st.one_of(
    st.text(max_size=40),
    st.text(alphabet=st.characters(codec="utf-8"), min_size=900, max_size=1100),
    st.sampled_from(["", " ", "\x00", "\u202e", "红色连衣裙", "🙂" * 50, "a\r\nb", "\\u0000"]),
)
"""Queries and titles: any Unicode, control characters, right-to-left marks, over-long text."""

json_junk = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(),
        st.floats(allow_nan=False, allow_infinity=False),
        st.text(max_size=10),
    ),
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=6,
)
"""Any JSON value, for fields that should have been something else."""


@st.composite
def creative_values(draw: Any) -> Any:
    """A creative as a request may carry it: well or badly encoded bytes, or a wrong JSON type."""
    kind = draw(
        st.sampled_from(
            ["data_url", "data_url", "base64", "urlsafe", "wrong_mime", "no_base64", "junk", "text"]
        )
    )
    if kind == "junk":
        return draw(json_junk)
    if kind == "text":
        return draw(st.text(max_size=64))
    raw = draw(image_bytes)
    b64 = base64.b64encode(raw).decode()
    if kind == "base64":
        return b64
    if kind == "urlsafe":
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")
    if kind == "wrong_mime":
        return "data:text/plain;base64," + b64
    if kind == "no_base64":
        return "data:image/png," + b64
    return "data:image/png;base64," + b64


@st.composite
def select_bodies(draw: Any, n: int | None = 2) -> Any:
    """A `/v1/select` (n = 2) or `/v1/rank` (n = None: 0-5 creatives) body, sometimes malformed."""
    if draw(st.integers(0, 9)) == 0:
        return draw(json_junk)  # not even an object of the right shape
    count = n if n is not None else draw(st.integers(0, 5))
    if draw(st.integers(0, 9)) == 0:
        count = draw(st.integers(0, 4))
    body: dict[str, Any] = {"creatives": [draw(creative_values()) for _ in range(count)]}
    for field in ("query", "title"):
        if draw(st.integers(0, 9)):
            body[field] = draw(st.one_of(odd_text, odd_text, json_junk))
    if draw(st.booleans()):
        body["options"] = draw(
            st.one_of(
                st.fixed_dictionaries(
                    {},
                    optional={
                        "max_tokens": st.one_of(st.integers(-2, 6), json_junk),
                        "temperature": st.one_of(st.floats(-1, 3), json_junk),
                        "both_orders": st.one_of(st.booleans(), json_junk),
                        "seed": st.one_of(st.integers(-1, 2**40), json_junk),
                    },
                ),
                json_junk,
            )
        )
    if draw(st.integers(0, 4)) == 0:
        body[draw(st.text(min_size=1, max_size=8))] = draw(json_junk)
    return body


@st.composite
def chat_bodies(draw: Any) -> Any:
    """A `/v1/chat/completions` body: messages with text and image parts, sometimes malformed."""
    if draw(st.integers(0, 9)) == 0:
        return draw(json_junk)
    parts: list[Any] = []
    for _ in range(draw(st.integers(0, 3))):
        kind = draw(st.sampled_from(["text", "image", "image", "junk"]))
        if kind == "text":
            parts.append({"type": "text", "text": draw(st.one_of(odd_text, json_junk))})
        elif kind == "image":
            parts.append({"type": "image_url", "image_url": {"url": draw(creative_values())}})
        else:
            parts.append(draw(json_junk))
    content: Any = parts if draw(st.integers(0, 4)) else draw(st.one_of(odd_text, json_junk))
    role = draw(st.sampled_from(["user", "user", "system", "assistant", "tool", "", 3]))
    body: dict[str, Any] = {
        "model": draw(st.sampled_from(["creative4u", "creative4u", "other", ""])),
        "messages": [{"role": role, "content": content}],
        "max_tokens": draw(st.one_of(st.integers(1, 6), st.integers(-3, 0), json_junk)),
    }
    if draw(st.booleans()):
        body["stream"] = draw(st.one_of(st.booleans(), json_junk))
    for key in ("temperature", "logprobs", "top_logprobs", "n", "stop"):
        if draw(st.integers(0, 5)) == 0:
            body[key] = draw(json_junk)
    return body
