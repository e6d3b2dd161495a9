"""Turn a creative as a request carries it (data URL, base64, allowed URL) into a checked image.

The server never reads its own files for a request (`allow_paths=False`), refuses oversized
input before decoding it, and lets `creative4u.images` refuse decompression bombs and convert
unusual but valid images, so the API accepts exactly what training and evaluation accept.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import re
from typing import Any

from PIL import Image

from creative4u.images import ImageError, decode_data_url, in_image_pool, load_image
from serve.config import Limits
from serve.errors import APIError
from serve.fetch import URLFetcher

_SCHEME_RE = re.compile(r"^([a-zA-Z][a-zA-Z0-9+.-]*):")
_WINDOWS_PATH_RE = re.compile(r"^[a-zA-Z]:[\\/]")
_BASE64_ALPHABET_RE = re.compile(r"^[A-Za-z0-9+/=_-]+$")


IMAGE_SIGNATURES = (
    b"\x89PNG",
    b"\xff\xd8\xff",
    b"GIF8",
    b"RIFF",
    b"BM",
    b"II*\x00",
    b"MM\x00*",
    b"\x00\x00\x01\x00",
)
"""Leading bytes of PNG, JPEG, GIF, WebP, BMP, TIFF and ICO files."""


def _path_error(param: str) -> APIError:
    return APIError(
        400,
        "local file paths and file:// URLs are never read by the server; send the image as a "
        "data URL or base64",
        param=param,
        code="path_not_allowed",
    )


def _base64_bytes(value: str) -> bytes | None:
    """Bare base64 (standard or URL-safe, padding optional) -> bytes; None if it is not base64."""
    compact = "".join(value.split())
    if not _BASE64_ALPHABET_RE.match(compact):
        return None
    padded = compact + "=" * (-len(compact) % 4)
    try:
        if "-" in compact or "_" in compact:
            return base64.urlsafe_b64decode(padded)
        return base64.b64decode(padded, validate=True)
    except (binascii.Error, ValueError):
        return None


def encoded_limit(max_bytes: int) -> int:
    """Longest base64 text that can decode to at most `max_bytes` (plus slack for a data: prefix)."""
    return (max_bytes + 2) // 3 * 4 + 256


async def image_bytes(value: str, param: str, limits: Limits, fetcher: URLFetcher | None) -> bytes:
    """The encoded image a request refers to, or a 4xx naming `param` and the problem."""
    if not isinstance(value, str):
        raise APIError(400, "a creative must be a string (data URL or base64)", param=param)
    value = value.strip()
    if not value:
        raise APIError(400, "creative is empty", param=param)
    if len(value) > encoded_limit(limits.max_image_bytes):
        raise APIError(
            413,
            f"creative is {len(value)} characters of encoded data: more than an image within the "
            f"limit of {limits.max_image_bytes} bytes can take",
            param=param,
            code="image_too_large",
        )
    scheme_m = _SCHEME_RE.match(value)
    scheme = scheme_m.group(1).lower() if scheme_m else ""
    if scheme == "data":
        try:
            data = decode_data_url(value)
        except ImageError as e:
            raise APIError(400, str(e), param=param, code="invalid_image") from e
    elif scheme in ("http", "https"):
        if fetcher is None:
            raise APIError(
                400,
                "image URLs are not fetched by this server (URL fetching is off); send the image "
                "as a data URL or base64",
                param=param,
                code="url_fetching_disabled",
            )
        data = await fetcher.fetch(value, param)
    elif scheme == "file" or _WINDOWS_PATH_RE.match(value):
        raise _path_error(param)
    elif scheme and len(scheme) > 1 and "://" in value[: len(scheme) + 3]:
        raise APIError(400, f"URL scheme {scheme!r} is not supported", param=param)
    else:
        data = _base64_bytes(value)
        # Base64 may start with "/" (every JPEG does: "/9j/"), so a path-like string is only
        # called a path when it does not decode to something with an image signature.
        if value.startswith(("/", "./", "../", "~", "\\")) and not (
            data and data.startswith(IMAGE_SIGNATURES)
        ):
            raise _path_error(param)
        if data is None:
            raise APIError(
                400,
                "creative is neither a data URL, an http(s) URL nor valid base64",
                param=param,
                code="invalid_image",
            )
    if len(data) > limits.max_image_bytes:
        raise APIError(
            413,
            f"image is {len(data)} bytes, more than the limit of {limits.max_image_bytes}",
            param=param,
            code="image_too_large",
        )
    if not data:
        raise APIError(400, "image is empty (0 bytes)", param=param, code="invalid_image")
    return data


def decode_image(data: bytes, param: str, limits: Limits) -> Image.Image:
    try:
        return load_image(data, allow_paths=False, max_pixels=limits.max_image_pixels)
    except ImageError as e:
        raise APIError(400, str(e), param=param, code="invalid_image") from e


async def load_creative(
    value: Any, param: str, limits: Limits, fetcher: URLFetcher | None
) -> Image.Image:
    """Bytes -> RGB image; decoding runs in the bounded image pool, so a large image never stalls
    the event loop."""
    data = await image_bytes(value, param, limits, fetcher)
    return await in_image_pool(decode_image, data, param, limits)


async def load_creatives(
    values: list[Any], param: str, limits: Limits, fetcher: URLFetcher | None
) -> list[Image.Image]:
    return list(
        await asyncio.gather(
            *(load_creative(v, f"{param}[{i}]", limits, fetcher) for i, v in enumerate(values))
        )
    )
