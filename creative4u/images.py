"""One image loader for training, evaluation and serving, so every stage sees the same pixels.

Any accepted input (a file path, raw bytes, a data URL, or a PIL image) becomes an RGB image.
Unusual but valid images are converted, not refused: CMYK JPEG, alpha (composited on white),
16-bit greyscale, palette images, animated GIF/WebP (first frame). Decompression bombs and
corrupt files raise `ImageError` with a message that says what is wrong.

The admission rule, the same on every path (API, CLI, data build, training, evaluation, UI):
- decoded size above the pixel limit (`max_pixels`): refused with `ImageError` (a 4xx on the API,
  a quarantine reason in a click log);
- any other shape is fitted by `fit_to_pixels`: a banner or strip more elongated than the model's
  pixel budget allows (`aspect_bound`) is padded on white to that aspect ratio first, a tiny image
  is scaled up, a large one down. Without the padding `smart_resize` raises on ratios above 200
  and, below that, gives a strip more visual tokens than the processor's budget.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import io
import math
import mimetypes
import os
import re
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

DEFAULT_MAX_PIXELS = 40_000_000
"""Refuse decoded images larger than this many pixels (a 20000x20000 PNG is a bomb, not an ad)."""

_DATA_URL_RE = re.compile(
    r"^data:(?P<mime>[\w/+.-]*)?(?P<params>(;[\w=.-]+)*)?,(?P<data>.*)$", re.DOTALL
)


class ImageError(ValueError):
    """An input that is not a usable image; the message names the problem."""


def decode_data_url(url: str) -> bytes:
    m = _DATA_URL_RE.match(url)
    if not m:
        raise ImageError("malformed data URL (expected data:image/...;base64,...)")
    mime = (m.group("mime") or "").lower()
    if mime and not mime.startswith("image/"):
        raise ImageError(f"data URL has media type {mime!r}, expected image/*")
    if ";base64" not in (m.group("params") or ""):
        raise ImageError("data URL is not base64-encoded")
    try:
        return base64.b64decode(m.group("data"), validate=True)
    except (binascii.Error, ValueError) as e:
        raise ImageError(f"data URL holds invalid base64: {e}") from e


T = TypeVar("T")
_POOL: ThreadPoolExecutor | None = None

IMAGE_POOL_NICE = int(os.environ.get("CREATIVE4U_IMAGE_POOL_NICE", "10"))
"""How much lower than the process the image pool's threads run (Unix nice increments; 0 keeps
them level). On a busy server vLLM's scheduler and model worker then get the cores first, and
a creative is decoded in the time they leave: through `/v1/select` 2-3 % more pairs a second on
two cores, paired round by round (experiments/README.md, "What the image work costs the real
engine, and the image pool's priority")."""


def lower_thread_priority(increment: int) -> None:
    """Raise the calling thread's nice value by `increment` (capped at 19). Linux sets priority
    per thread; elsewhere, or where it is refused, the thread keeps its priority."""
    if increment <= 0:
        return
    try:
        tid = threading.get_native_id()
        os.setpriority(
            os.PRIO_PROCESS, tid, min(19, os.getpriority(os.PRIO_PROCESS, tid) + increment)
        )
    except (AttributeError, OSError):
        pass


def new_image_pool(nice: int = IMAGE_POOL_NICE) -> ThreadPoolExecutor:
    """A pool for CPU image work: one thread per core, each `nice` steps below the process."""
    return ThreadPoolExecutor(
        max_workers=max(1, len(os.sched_getaffinity(0))),
        thread_name_prefix="creative4u-img",
        initializer=lower_thread_priority,
        initargs=(nice,),
    )


def image_pool() -> ThreadPoolExecutor:
    """The process's one bounded pool for CPU image work (decoding, resizing): one thread per
    core, so a burst of requests queues here instead of starving the event loop (and the
    engine's input processing, which runs on it) with dozens of decoding threads. Its threads
    run `IMAGE_POOL_NICE` below the process."""
    global _POOL
    if _POOL is None:
        _POOL = new_image_pool()
    return _POOL


async def in_image_pool(fn: Callable[..., T], *args: Any) -> T:
    """`fn(*args)` on `image_pool()`, awaited from the event loop."""
    return await asyncio.get_running_loop().run_in_executor(image_pool(), fn, *args)


def to_rgb(img: Image.Image, *, owned: bool = False) -> Image.Image:
    """Convert any PIL image mode to RGB the way every stage does it.

    The caller's image is never modified (an RGB one is returned as a copy), unless `owned`
    says the caller just decoded it and hands it over: then it is rotated in place and returned
    as is, which spares a serving request two full copies of every creative.
    """
    if getattr(img, "is_animated", False):
        img.seek(0)
    if owned:
        ImageOps.exif_transpose(img, in_place=True)
    else:
        rotated = ImageOps.exif_transpose(img)
        if rotated is not None and rotated is not img:
            img, owned = rotated, True
    mode = img.mode
    if mode == "RGB":
        return img if owned else img.copy()
    if mode in ("I;16", "I;16B", "I;16L", "I"):
        arr = np.asarray(img, dtype=np.float64)
        hi = 65535.0 if mode.startswith("I;16") or arr.max() > 255 else 255.0
        arr = np.clip(arr / hi * 255.0, 0, 255).astype(np.uint8)
        return Image.fromarray(arr, "L").convert("RGB")
    if mode == "F":
        arr = np.asarray(img, dtype=np.float64)
        arr = np.clip(arr, 0, 255).astype(np.uint8)
        return Image.fromarray(arr, "L").convert("RGB")
    if mode == "P" and "transparency" in img.info:
        img = img.convert("RGBA")
    if mode in ("RGBA", "LA", "PA") or img.mode == "RGBA":
        rgba = img.convert("RGBA")
        bg = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(bg, rgba).convert("RGB")
    return img.convert("RGB")


def load_image(
    source: Any,
    *,
    allow_paths: bool = True,
    max_pixels: int = DEFAULT_MAX_PIXELS,
) -> Image.Image:
    """Open `source` (path, bytes, data URL, PIL image) as an RGB image.

    Serving passes `allow_paths=False`: a request must never make the server read its own files.
    """
    if isinstance(source, Image.Image):
        return to_rgb(source)
    if isinstance(source, dict) and ("bytes" in source or "path" in source):  # datasets.Image
        source = source.get("bytes") or source.get("path")
    if isinstance(source, (bytes, bytearray, memoryview)):
        data = bytes(source)
    elif isinstance(source, str) and source.startswith("data:"):
        data = decode_data_url(source)
    elif isinstance(source, (str, Path)):
        if not allow_paths:
            raise ImageError("local file paths are not accepted here; send a data URL")
        path = Path(source)
        if not path.is_file():
            raise ImageError(f"image file not found: {path}")
        data = path.read_bytes()
    else:
        raise ImageError(f"unsupported image input of type {type(source).__name__}")
    if not data:
        raise ImageError("image is empty (0 bytes)")
    try:
        with Image.open(io.BytesIO(data)) as probe:
            w, h = probe.size
            if w * h > max_pixels:
                raise ImageError(
                    f"image is {w}x{h} = {w * h} pixels, more than the limit of {max_pixels}"
                )
        img = Image.open(io.BytesIO(data))
        img.load()
        return to_rgb(img, owned=True)
    except ImageError:
        raise
    except UnidentifiedImageError as e:
        raise ImageError("not an image (unrecognised format)") from e
    except Image.DecompressionBombError as e:
        raise ImageError(f"image refused as a decompression bomb: {e}") from e
    except (OSError, SyntaxError, ValueError) as e:
        raise ImageError(f"corrupt or truncated image: {e}") from e


MAX_ASPECT_RATIO = 200
"""`smart_resize` (qwen-vl-utils and transformers alike) refuses images more elongated than this."""

PAD_COLOUR = (255, 255, 255)
"""What an elongated creative is padded with: white, as transparent pixels are composited."""


def aspect_bound(max_pixels: int, factor: int = 28) -> float:
    """The most elongated shape `smart_resize` can fit within `max_pixels`: its short side one
    `factor` wide and its long side `max_pixels / factor` long (capped at `MAX_ASPECT_RATIO`).
    Beyond it the resize either raises or spends more visual tokens than the budget."""
    return max(1.0, min(float(MAX_ASPECT_RATIO), max_pixels / factor**2))


def pad_to_aspect(img: Image.Image, max_ratio: float, max_long_side: int) -> Image.Image:
    """`img` centred on a white canvas just wide enough that long / short <= `max_ratio`.

    A long side beyond `max_long_side` (the longest side the fitted image can have) is scaled down
    first, so a 40000 x 1 strip never becomes a 40000 x 200 canvas in memory.
    """
    w, h = img.size
    if max(w, h) <= max_ratio * min(w, h):
        return img
    long_side = max(w, h)
    if long_side > max_long_side:
        scale = max_long_side / long_side
        w, h = max(1, round(w * scale)), max(1, round(h * scale))
        img = img.resize((w, h), Image.Resampling.BICUBIC)
    size = (w, math.ceil(w / max_ratio)) if w >= h else (math.ceil(h / max_ratio), h)
    canvas = Image.new("RGB", size, PAD_COLOUR)
    canvas.paste(img.convert("RGB"), ((size[0] - w) // 2, (size[1] - h) // 2))
    return canvas


def fit_to_pixels(
    img: Image.Image, min_pixels: int, max_pixels: int, factor: int = 28
) -> Image.Image:
    """Resize to qwen-vl-utils' `smart_resize` bounds (sides multiples of `factor`), padding an
    elongated image to `aspect_bound` first (the module's admission rule).

    Applying it before the processor makes the pixels the model sees independent of which code
    path (TRL, transformers, vLLM) fed it, and no shape can make the processor raise.
    """
    from qwen_vl_utils import smart_resize

    bound = aspect_bound(max_pixels, factor)
    img = pad_to_aspect(img, bound, max_long_side=max(factor, math.isqrt(int(max_pixels * bound))))
    h, w = smart_resize(
        img.height, img.width, factor=factor, min_pixels=min_pixels, max_pixels=max_pixels
    )
    if h * w > max_pixels:  # scaling up to `min_pixels` rounds up past the budget: round down
        h, w = smart_resize(h, w, factor=factor, min_pixels=min_pixels, max_pixels=max_pixels)
    if (w, h) == img.size:
        return img
    return img.resize((w, h), Image.Resampling.BICUBIC)


def processor_pixel_bounds(processor: Any) -> tuple[int, int, int]:
    """(min_pixels, max_pixels, factor) of a Qwen-VL processor's image processor."""
    ip = getattr(processor, "image_processor", processor)
    size = getattr(ip, "size", None) or {}
    min_px = getattr(ip, "min_pixels", None) or size.get("shortest_edge") or 56 * 56
    max_px = getattr(ip, "max_pixels", None) or size.get("longest_edge") or 28 * 28 * 1280
    factor = int(getattr(ip, "patch_size", 14)) * int(getattr(ip, "merge_size", 2))
    return int(min_px), int(max_px), factor


def prepare_image(source: Any, processor: Any, **load_kwargs: Any) -> Image.Image:
    """Load and resize an image exactly as the model behind `processor` will see it."""
    min_px, max_px, factor = processor_pixel_bounds(processor)
    return fit_to_pixels(load_image(source, **load_kwargs), min_px, max_px, factor)


def stored_image_key(value: dict[str, Any]) -> str:
    """Identity of an undecoded datasets.Image value: its bytes, or its path when it has none."""
    if value.get("bytes"):
        return "sha1:" + hashlib.sha1(value["bytes"]).hexdigest()
    return "path:" + str(value.get("path"))


def to_png_bytes(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def to_data_url(source: Any, name: str | None = None) -> str:
    """A data URL for any image input: the one builder every client and engine uses.

    A PIL image is sent as PNG. Bytes and image files are sent as they are, typed from `name`
    (or the file's own name), so the server checks and decodes exactly what the user has, and a
    broken upload is reported by the server, not mangled on the way. Anything else `load_image`
    accepts (a datasets image, a data URL) is decoded and sent as PNG.
    """
    if isinstance(source, Image.Image):
        data, name = to_png_bytes(source), "image.png"
    elif isinstance(source, (bytes, bytearray)):
        data = bytes(source)
    elif isinstance(source, (str, Path)) and not str(source).startswith("data:"):
        path = Path(source)
        if not path.is_file():
            raise FileNotFoundError(f"image file not found: {path}")
        data, name = path.read_bytes(), name or path.name
    else:
        data, name = to_png_bytes(load_image(source)), "image.png"
    mime = mimetypes.guess_type(name or "image.png")[0] or ""
    if not mime.startswith("image/"):
        mime = "image/png"
    return f"data:{mime};base64," + base64.b64encode(data).decode("ascii")


def image_tokens(img: Image.Image, factor: int = 28) -> int:
    """Visual tokens a Qwen-VL model spends on an image already fitted to its bounds."""
    return math.ceil(img.width / factor) * math.ceil(img.height / factor)
