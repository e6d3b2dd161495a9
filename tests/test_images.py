"""The one image loader: unusual valid images become RGB, bad input gets a clear ImageError."""

from __future__ import annotations

import asyncio
import base64
import io
import os
import threading

import numpy as np
import pytest
from PIL import Image

from creative4u import images
from creative4u.images import ImageError, fit_to_pixels, load_image, prepare_image, to_data_url


def _bytes(img: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt, **kw)
    return buf.getvalue()


def _valid_inputs() -> dict[str, bytes]:
    rgb = Image.new("RGB", (64, 48), (200, 30, 40))
    rgba = Image.new(
        "RGBA", (64, 48), (0, 0, 255, 0)
    )  # fully transparent blue: white after compositing
    g16 = Image.fromarray((np.ones((48, 64)) * 65535).astype(np.uint16))
    frames = [Image.new("RGB", (32, 32), c) for c in [(255, 0, 0), (0, 255, 0)]]
    gif = io.BytesIO()
    frames[0].save(gif, format="GIF", save_all=True, append_images=frames[1:], duration=50, loop=0)
    return {
        "png": _bytes(rgb, "PNG"),
        "cmyk_jpeg": _bytes(rgb.convert("CMYK"), "JPEG"),
        "png_alpha": _bytes(rgba, "PNG"),
        "png_16bit": _bytes(g16, "PNG"),
        "webp": _bytes(rgb, "WEBP"),
        "bmp": _bytes(rgb, "BMP"),
        "palette": _bytes(rgb.convert("P"), "PNG"),
        "animated_gif": gif.getvalue(),
    }


@pytest.mark.parametrize("name", sorted(_valid_inputs()))
def test_unusual_valid_images_become_rgb(name: str) -> None:
    img = load_image(_valid_inputs()[name])
    assert img.mode == "RGB"
    px = img.getpixel((5, 5))
    if name == "png_alpha":
        assert px == (255, 255, 255)
    elif name == "png_16bit":
        assert px == (255, 255, 255)
    elif name == "animated_gif":
        assert px[0] > 200 and px[1] < 50  # first frame (red)
    else:
        assert px[0] > 150 and px[1] < 80  # red survives the conversion


def test_data_url_bytes_path_and_pil_agree(tmp_path) -> None:
    raw = _valid_inputs()["png"]
    path = tmp_path / "a.png"
    path.write_bytes(raw)
    url = "data:image/png;base64," + base64.b64encode(raw).decode()
    imgs = [load_image(raw), load_image(url), load_image(path), load_image(Image.open(path))]
    arrays = [np.asarray(i) for i in imgs]
    assert all((a == arrays[0]).all() for a in arrays)
    assert np.asarray(load_image(to_data_url(path))).tolist() == arrays[0].tolist()


BAD = {
    "zero bytes": (b"", "empty"),
    "not an image": (b"hello, world" * 10, "not an image"),
    "truncated png": (_valid_inputs()["png"][:60], "corrupt or truncated"),
    "bad base64": ("data:image/png;base64,@@@@", "invalid base64"),
    "not image mime": ("data:text/plain;base64,aGVsbG8=", "expected image"),
    "missing file": ("/nonexistent/creative.png", "not found"),
}


@pytest.mark.parametrize("name", sorted(BAD))
def test_bad_inputs_raise_clear_errors(name: str) -> None:
    src, msg = BAD[name]
    with pytest.raises(ImageError, match=msg):
        load_image(src)


def test_paths_refused_when_not_allowed(tmp_path) -> None:
    p = tmp_path / "a.png"
    p.write_bytes(_valid_inputs()["png"])
    with pytest.raises(ImageError, match="local file paths"):
        load_image(str(p), allow_paths=False)


def test_decompression_bomb_refused() -> None:
    big = _bytes(Image.new("1", (20000, 20000)), "PNG")  # a few kB compressed, 400 M pixels decoded
    assert len(big) < 200_000
    with pytest.raises(ImageError, match="pixels"):
        load_image(big)


def test_resize_follows_smart_resize_bounds() -> None:
    img = Image.new("RGB", (300, 200))
    out = fit_to_pixels(img, 112 * 112, 112 * 112, 28)
    assert out.width % 28 == 0 and out.height % 28 == 0
    assert out.width * out.height <= 112 * 112


@pytest.mark.parametrize("size", [(200, 300), (320, 240), (448, 448), (1000, 250), (60, 40)])
def test_prepare_image_matches_processor(tiny_model, size) -> None:
    """Prepared pixels are already at the processor's size: its own resize is then a no-op."""
    from creative4u.vlm import load_processor

    proc = load_processor(str(tiny_model))
    img = prepare_image(Image.new("RGB", size, (10, 20, 30)), proc)
    out = proc.image_processor(images=[img], return_tensors="pt")
    h, w = (int(x) for x in out["image_grid_thw"][0][1:])
    assert (h * 14, w * 14) == (img.height, img.width)


def _exif_rotated_jpeg() -> bytes:
    """A 40x20 JPEG, left half red, whose EXIF says 'rotate 90 degrees clockwise to view'."""
    img = Image.new("RGB", (40, 20), (0, 0, 255))
    img.paste((255, 0, 0), (0, 0, 20, 20))
    exif = Image.Exif()
    exif[0x0112] = 6
    return _bytes(img, "JPEG", exif=exif, quality=95)


def test_exif_orientation_applied_and_callers_image_untouched() -> None:
    raw = _exif_rotated_jpeg()
    decoded = load_image(raw)
    assert decoded.size == (20, 40)  # turned upright
    r, g, b = decoded.getpixel((10, 5))
    assert r > 200 and b < 60  # the red half is now on top
    opened = Image.open(io.BytesIO(raw))
    from_pil = load_image(opened)
    assert np.array_equal(np.asarray(from_pil), np.asarray(decoded))
    assert opened.size == (40, 20)  # the caller's image is not rotated in place
    rgb = Image.new("RGB", (8, 8), (1, 2, 3))
    out = load_image(rgb)
    out.putpixel((0, 0), (9, 9, 9))
    assert rgb.getpixel((0, 0)) == (1, 2, 3)  # nor shared with the result


@pytest.mark.skipif(not hasattr(os, "setpriority"), reason="per-thread nice is a Unix feature")
def test_image_pool_threads_run_below_the_process() -> None:
    """The server's image work yields the cores to vLLM's scheduler and worker: the pool's
    threads run IMAGE_POOL_NICE steps below the thread that asked for the pool, which keeps its
    own priority."""

    def nice() -> int:
        return os.getpriority(os.PRIO_PROCESS, threading.get_native_id())

    here = nice()
    in_pool = asyncio.run(images.in_image_pool(nice))
    assert images.IMAGE_POOL_NICE > 0
    assert in_pool == min(19, here + images.IMAGE_POOL_NICE)
    assert nice() == here
