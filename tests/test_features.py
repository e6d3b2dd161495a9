"""Interpretable creative features: each measurement responds to the thing it claims to measure.

Every test draws a pair of images that differ in one property and checks that the feature for
that property tells them apart in the right direction (and that the others stay put).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFilter, ImageFont

from creative4u.features import (
    NUMERIC_FEATURES,
    channel_extremes,
    colour_name,
    dominant_colour,
    measure,
    ocr_text,
    ocr_words,
    tesseract_available,
)
from creative4u.lexicon import COLOURS

SIZE = 224
PALE = (244, 240, 236)
FONT = "/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf"

needs_ocr = pytest.mark.skipif(not tesseract_available(), reason="tesseract is not installed")


def canvas(bg: tuple[int, int, int] = PALE, size: int = SIZE) -> Image.Image:
    return Image.new("RGB", (size, size), bg)


def with_square(
    img: Image.Image, frac: float, centre: tuple[float, float] = (0.5, 0.5), fill=(205, 35, 45)
) -> Image.Image:
    img = img.copy()
    w, h = img.size
    s = frac * w
    cx, cy = centre[0] * w, centre[1] * h
    ImageDraw.Draw(img).rectangle([cx - s / 2, cy - s / 2, cx + s / 2, cy + s / 2], fill=fill)
    return img


def with_text(img: Image.Image, lines: list[str], size: int = 26) -> Image.Image:
    img = img.copy()
    d = ImageDraw.Draw(img)
    font = ImageFont.truetype(FONT, size)
    for i, line in enumerate(lines):
        d.text((12, 12 + i * (size + 14)), line, font=font, fill=(15, 15, 15))
    return img


def test_colour_names_match_the_lexicon() -> None:
    for name, rgb in COLOURS.items():
        assert colour_name(rgb) == name
    assert colour_name((128, 128, 128)) == "grey"
    assert colour_name((250, 250, 250)) == "white"


def test_measure_is_json_and_deterministic() -> None:
    img = with_square(canvas(), 0.4)
    a, b = measure(img, ocr=False), measure(img, ocr=False)
    assert a == b
    assert json.loads(json.dumps(a)) == a
    for k in NUMERIC_FEATURES:
        assert isinstance(a[k], float) and np.isfinite(a[k]), k


def test_subject_size_position_cropping_and_colour() -> None:
    big = measure(with_square(canvas(), 0.6), ocr=False)
    small = measure(with_square(canvas(), 0.2), ocr=False)
    corner = measure(with_square(canvas(), 0.25, centre=(0.22, 0.25)), ocr=False)
    cropped = measure(with_square(canvas(), 0.4, centre=(0.95, 0.5)), ocr=False)
    assert big["subject_colour"] == small["subject_colour"] == "red"
    assert big["subject_area"] == pytest.approx(0.36, abs=0.03)
    assert small["subject_area"] == pytest.approx(0.04, abs=0.01)
    assert big["subject_offset"] < 0.03 and corner["subject_offset"] > 0.3
    assert cropped["subject_cropped"] == 1.0 and big["subject_cropped"] == 0.0
    blue = measure(with_square(canvas(), 0.4, fill=COLOURS["blue"]), ocr=False)
    assert blue["subject_colour"] == "blue"


def test_outlined_subject_is_named_by_what_it_encloses() -> None:
    img = canvas((250, 250, 250))
    ImageDraw.Draw(img).rectangle(
        [60, 60, 164, 164], fill=(248, 248, 248), outline=(40, 40, 40), width=4
    )
    f = measure(img, ocr=False)
    assert f["subject_colour"] == "white" and f["subject_area"] > 0.15


def test_frame_is_detected() -> None:
    plain = with_square(canvas(), 0.4)
    framed = plain.copy()
    d = ImageDraw.Draw(framed)
    d.rectangle([0, 0, SIZE - 1, SIZE - 1], outline=(250, 250, 250), width=8)
    d.rectangle([8, 8, SIZE - 9, SIZE - 9], outline=(40, 40, 40), width=3)
    assert measure(framed, ocr=False)["border"] == 1.0
    assert measure(plain, ocr=False)["border"] == 0.0


def test_clutter_and_colour_clash() -> None:
    rng = np.random.default_rng(0)
    calm = with_square(canvas(), 0.35)
    busy = calm.copy()
    d = ImageDraw.Draw(busy)
    for _ in range(40):
        x, y = (int(v) for v in rng.integers(0, SIZE - 12, 2))
        if abs(x - SIZE / 2) < 50 and abs(y - SIZE / 2) < 50:
            continue
        d.ellipse([x, y, x + 9, y + 9], fill=tuple(int(v) for v in rng.integers(0, 256, 3)))
    fc, fb = measure(calm, ocr=False), measure(busy, ocr=False)
    assert fb["clutter_colours"] >= 7 > fc["clutter_colours"]
    assert fb["edge_density"] > fc["edge_density"]
    clash = measure(with_square(canvas((20, 230, 240)), 0.35), ocr=False)  # cyan behind red
    assert clash["colour_clash"] == 1.0 and fc["colour_clash"] == 0.0
    assert clash["background_saturation"] > 0.5 > fc["background_saturation"]


def test_sharpness_contrast_and_colourfulness() -> None:
    img = with_square(canvas(), 0.4)
    blurred = img.filter(ImageFilter.GaussianBlur(4))
    grey = img.convert("L").convert("RGB")
    f, fb, fg = measure(img, ocr=False), measure(blurred, ocr=False), measure(grey, ocr=False)
    assert f["sharpness"] > 5 * fb["sharpness"]
    assert f["colourfulness"] > fg["colourfulness"] + 10
    flat = measure(canvas(), ocr=False)
    assert flat["contrast"] < 0.01 < f["contrast"]
    assert flat["subject_area"] == 0.0 and flat["subject_colour"] == ""


def test_person_and_props() -> None:
    base = with_square(canvas(), 0.3)
    person = base.copy()
    d = ImageDraw.Draw(person)
    d.ellipse([20, 30, 50, 62], fill=(224, 172, 105))  # a face
    d.rounded_rectangle([14, 62, 56, 130], radius=8, fill=(60, 60, 70))
    prop = base.copy()
    ImageDraw.Draw(prop).polygon(
        [(170, 150), (200, 150), (195, 190), (175, 190)], fill=(40, 140, 60)
    )
    fp, fo, f0 = measure(person, ocr=False), measure(prop, ocr=False), measure(base, ocr=False)
    assert fp["person"] == 1.0 and fo["person"] == 0.0 and f0["person"] == 0.0
    assert fo["objects"] >= 1 and f0["objects"] == 0


@needs_ocr
def test_ocr_reads_price_and_call_to_action() -> None:
    img = with_text(canvas((255, 255, 255), 448), ["SALE $49", "Buy now"], size=40)
    f = measure(img)
    words = {w.lower() for w in f["text"].split()}
    assert {"sale", "$49", "buy", "now"} <= words
    assert f["has_price"] == 1.0 and f["has_cta"] == 1.0 and f["has_offer"] == 1.0
    assert f["text_legible"] == 1.0 and f["text_area"] > 0.02
    plain = measure(with_square(canvas(size=448), 0.4))
    assert plain["text_words"] == 0 and plain["has_price"] == 0.0 and plain["text"] == ""
    boxes = ocr_words(img)
    assert all(0 <= b["x"] < 1 and 0 <= b["y"] < 1 and b["h"] > 0.05 for b in boxes)


@needs_ocr
def test_small_faint_text_is_not_legible() -> None:
    img = canvas((235, 235, 235), 448)
    ImageDraw.Draw(img).text(
        (40, 40), "Free shipping today", font=ImageFont.truetype(FONT, 13), fill=(160, 160, 160)
    )
    f = measure(img)
    assert f["text_legible"] < 0.5


@needs_ocr
def test_existing_helpers_keep_working(swatches) -> None:
    a, _ = swatches
    assert dominant_colour(a) in {"white", "grey"}
    img = with_text(canvas((255, 255, 255), 448), ["Order today"], size=40)
    assert "Order" in ocr_text(img)


@needs_ocr
def test_parallel_ocr_leaves_the_process_environment_alone(monkeypatch) -> None:
    """Reading image text on several threads must not set OMP_THREAD_LIMIT for this process: a
    limit below torch's thread count corrupts training numerics (see creative4u.threads)."""
    from creative4u.m2fn.image_features import FeatureCache, features_for

    monkeypatch.delenv("OMP_THREAD_LIMIT", raising=False)
    images = [with_text(canvas((255, 255, 255), 448), [f"SALE ${p}"], size=40) for p in (19, 49)]
    got = features_for(images, FeatureCache(None), ocr=True, workers=2)
    assert all("sale" in f["ocr"].lower() for f in got)
    assert "OMP_THREAD_LIMIT" not in os.environ


def test_training_threads_respect_an_omp_thread_limit() -> None:
    code = (
        "import torch; from creative4u.threads import respect_omp_thread_limit as r; "
        "b = torch.get_num_threads(); n = r(); print(b, n, torch.get_num_threads())"
    )
    env = {**os.environ, "OMP_NUM_THREADS": "2", "OMP_THREAD_LIMIT": "1"}
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    assert out.stdout.split() == ["2", "1", "1"], out.stderr
    env["OMP_THREAD_LIMIT"] = "8"
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    assert out.stdout.split() == ["2", "2", "2"], out.stderr


@pytest.mark.parametrize(
    "shape,dtype", [((37, 53, 3), np.uint8), ((5, 3), np.float32), ((2, 9, 11, 3), np.float64)]
)
def test_channel_extremes_are_numpys_reductions(shape, dtype):
    """The measuring code's fast per-pixel max and min must be exactly numpy's, ties and all."""
    rng = np.random.default_rng(0)
    a = rng.integers(0, 256, size=shape).astype(dtype)
    a[..., 1] = a[..., 0]  # ties between channels
    mx, mn = channel_extremes(a)
    assert mx.dtype == mn.dtype == a.dtype
    np.testing.assert_array_equal(mx, a.max(-1))
    np.testing.assert_array_equal(mn, a.min(-1))
