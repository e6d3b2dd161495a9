"""Uploads in, display copies out.

An upload is checked here, before anything is sent, so a corrupt file is reported next to the
input it came through, in words, and the server never sees it. What is sent is the file's own
bytes (the server resizes exactly as training did); what is shown is a copy on a shared canvas,
so the two creatives appear at equal size whatever their shapes.
"""

from __future__ import annotations

from pathlib import Path

from PIL import Image, ImageDraw, ImageFont, ImageOps

from creative4u.images import ImageError, load_image
from serve.config import Limits

WINNER_GREEN = (22, 140, 74)
CANVAS_WIDTH = 480
CANVAS_BG = (246, 246, 248)


class UploadProblem(ValueError):
    """An upload that cannot be used; the message is meant for the person who uploaded it."""


def read_upload(path: str | Path | None, what: str, limits: Limits | None = None) -> bytes:
    """The bytes of an uploaded creative, or an `UploadProblem` saying what is wrong with it."""
    limits = limits or Limits()
    if path is None or str(path) == "":
        raise UploadProblem(f"Add {what}: upload an image or paste one from the clipboard.")
    p = Path(path)
    try:
        data = p.read_bytes()
    except OSError as e:
        raise UploadProblem(f"{what} could not be read ({e.strerror or e}).") from e
    if len(data) > limits.max_image_bytes:
        raise UploadProblem(
            f"{what} is {len(data) / 2**20:.1f} MiB; the limit is "
            f"{limits.max_image_bytes / 2**20:.0f} MiB."
        )
    try:
        load_image(data, allow_paths=False, max_pixels=limits.max_image_pixels)
    except ImageError as e:
        raise UploadProblem(f"{what} is not a usable image: {e}.") from e
    return data


def canvas_size(images: list[Image.Image], width: int = CANVAS_WIDTH) -> tuple[int, int]:
    """One canvas for every image: as tall as the tallest aspect needs (within 1:2 .. 2:1)."""
    aspect = max(im.height / max(im.width, 1) for im in images)
    return width, int(width * min(max(aspect, 0.5), 2.0))


def letterbox(img: Image.Image, size: tuple[int, int]) -> Image.Image:
    """`img` scaled to fit `size` and centred on a neutral canvas of exactly that size."""
    fitted = ImageOps.contain(img.convert("RGB"), size, Image.Resampling.LANCZOS)
    out = Image.new("RGB", size, CANVAS_BG)
    out.paste(fitted, ((size[0] - fitted.width) // 2, (size[1] - fitted.height) // 2))
    return out


def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    try:
        return ImageFont.truetype("DejaVuSans-Bold.ttf", size)
    except OSError:
        return ImageFont.load_default(size)


def mark_winner(img: Image.Image, text: str = "WINNER") -> Image.Image:
    """A green frame and a ribbon on a display copy; the creative itself is never changed."""
    out = img.copy()
    d = ImageDraw.Draw(out)
    w, h = out.size
    border = max(6, w // 60)
    d.rectangle([0, 0, w - 1, h - 1], outline=WINNER_GREEN, width=border)
    f = _font(max(14, w // 22))
    left, top, right, bottom = d.textbbox((0, 0), text, font=f)
    pad = max(6, w // 80)
    tw, th = right - left + 2 * pad, bottom - top + 2 * pad
    box = (border, h - border - th, border + tw, h - border)  # bottom left: labels sit on top
    d.rectangle(box, fill=WINNER_GREEN)
    d.text((box[0] + pad - left, box[1] + pad - top), text, font=f, fill=(255, 255, 255))
    return out
