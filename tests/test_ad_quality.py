"""The ad-quality features on hand-made inputs whose answers are known in advance: a checkerboard's
co-occurrence contrast, a JPEG's quality from its own tables, a sentence's Flesch score worked out
by hand, a dot on a power point, white's pleasure-arousal-dominance."""

from __future__ import annotations

import io
import math

import numpy as np
import pytest
from PIL import Image, ImageDraw

from creative4u.ad_quality import (
    LOSSLESS_QUALITY,
    QUALITY_FEATURES,
    colour_features,
    composition_features,
    contrast_balance,
    exposure_balance,
    jpeg_blockiness,
    jpeg_quality,
    quantization_of,
    readability,
    syllables,
    tenengrad,
    texture_features,
)
from creative4u.features import NUMERIC_FEATURES, measure


def checkerboard(n: int = 64) -> np.ndarray:
    return ((np.indices((n, n)).sum(0) % 2) * 255).astype(np.float64)


def photo(seed: int = 0, size: int = 96) -> Image.Image:
    """Smooth gradients with a few shapes: something JPEG has to work to compress."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:size, 0:size] / size
    a = np.stack([200 * x + 30, 180 * y + 40, 120 * (1 - x * y) + 60], -1)
    a += rng.normal(0, 6, a.shape)
    img = Image.fromarray(np.clip(a, 0, 255).astype(np.uint8), "RGB")
    ImageDraw.Draw(img).ellipse([20, 20, 60, 70], fill=(220, 40, 40))
    return img


def encoded(img: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt, **kw)
    return buf.getvalue()


def test_glcm_of_a_checkerboard_and_a_flat_image() -> None:
    board = texture_features(checkerboard())
    # every neighbour pair is (black, white): the largest contrast there is, one cell of the
    # matrix pair, homogeneity 1 / (1 + 15^2)
    assert board["glcm_contrast"] == pytest.approx(1.0)
    assert board["glcm_homogeneity"] == pytest.approx(1 / (1 + 15**2))
    assert board["glcm_energy"] == pytest.approx(0.5) and board["glcm_entropy"] == pytest.approx(
        1.0
    )
    flat = texture_features(np.full((32, 32), 128.0))
    assert flat["glcm_contrast"] == 0.0 and flat["glcm_homogeneity"] == pytest.approx(1.0)
    assert flat["glcm_energy"] == pytest.approx(1.0) and flat["glcm_entropy"] == 0.0


@pytest.mark.parametrize("quality", [15, 35, 60, 80, 95])
def test_jpeg_quality_is_read_back_from_the_files_tables(quality: int) -> None:
    data = encoded(photo(), "JPEG", quality=quality)
    assert jpeg_quality(quantization_of(data)) == quality
    # the same through an opened image, and a lossless file has none
    assert jpeg_quality(quantization_of(Image.open(io.BytesIO(data)))) == quality
    assert quantization_of(encoded(photo(), "PNG")) is None
    assert jpeg_quality(None) == LOSSLESS_QUALITY


def test_a_recompressed_image_is_blockier_than_its_clean_original() -> None:
    clean = photo()
    blocky = Image.open(io.BytesIO(encoded(clean, "JPEG", quality=10))).convert("RGB")
    # already at quality 10: recompressing it at 10 changes it less than the clean one
    assert jpeg_blockiness(blocky) < jpeg_blockiness(clean)


def test_sharpness_contrast_and_exposure() -> None:
    from scipy import ndimage

    flat = np.full((40, 40), 100.0)
    edge = np.zeros((40, 40))
    edge[:, 20:] = 255.0  # one sharp black-to-white edge, then the same edge blurred
    blurred = ndimage.gaussian_filter(edge, 3.0)
    assert tenengrad(flat) == 0.0 < tenengrad(blurred) < tenengrad(edge)
    # an image already spread evenly over the range barely moves when equalised
    ramp = np.tile(np.linspace(0, 255, 256), (16, 1))
    squeezed = 100 + ramp / 10  # the same ramp within 100-125
    assert contrast_balance(ramp) < 0.02 < contrast_balance(squeezed)
    dark = np.zeros((30, 30))
    dark[:3, :3] = 255  # mostly shadow, a few highlights: skewed right
    assert exposure_balance(dark) > 2 and exposure_balance(255 - dark) < -2
    assert exposure_balance(flat) == 0.0


def test_pleasure_arousal_dominance_and_itten_contrast() -> None:
    white = colour_features(np.full((20, 20, 3), 255.0))
    assert (white["pleasure"], white["arousal"], white["dominance"]) == pytest.approx(
        (0.69, -0.31, -0.76)
    )
    red = colour_features(np.tile(np.asarray([255.0, 0, 0]), (20, 20, 1)))
    assert red["pleasure"] == pytest.approx(0.69 + 0.22)  # S = V = 1
    assert red["hue"] == pytest.approx(0.0) or red["hue"] == pytest.approx(1.0)
    # one colour fills one bin: the histograms are as uneven as they get; half and half less so
    two = np.zeros((20, 20, 3))
    two[:, :10] = (255, 0, 0)
    two[:, 10:] = (0, 0, 255)
    assert red["itten_hue_contrast"] > colour_features(two)["itten_hue_contrast"]
    # the inner quadrant is measured on its own
    framed = np.full((40, 40, 3), 255.0)
    framed[10:30, 10:30] = (0, 0, 0)
    f = colour_features(framed)
    assert f["brightness_inner"] == pytest.approx(0.0) and f["brightness_inner"] < 0.5


def test_rule_of_thirds_finds_a_subject_on_a_power_point() -> None:
    def dot(cx: float, cy: float) -> np.ndarray:
        img = Image.new("RGB", (120, 120), (255, 255, 255))
        ImageDraw.Draw(img).ellipse(
            [cx * 120 - 6, cy * 120 - 6, cx * 120 + 6, cy * 120 + 6], fill=0
        )
        return np.asarray(img, dtype=np.float64)

    on = composition_features(dot(1 / 3, 1 / 3))
    centre = composition_features(dot(0.5, 0.5))
    assert on["thirds_distance"] < 0.02
    assert centre["thirds_distance"] == pytest.approx(math.hypot(1 / 6, 1 / 6), abs=0.01)
    assert on["thirds_saliency"] > 0.8 > 0.2 > centre["thirds_saliency"]


def test_readability_of_texts_worked_out_by_hand() -> None:
    r = readability("The cat sat on the mat.")
    # 6 words, 1 sentence, 6 syllables: 206.835 - 1.015 * 6 - 84.6 * 1
    assert r["flesch_reading_ease"] == pytest.approx(116.145)
    assert r["flesch_kincaid_grade"] == pytest.approx(0.39 * 6 + 11.8 - 15.59)
    assert (r["words"], r["sentences"], r["long_words"], r["rix"]) == (6, 1, 0, 0)
    hard = readability("Unquestionably extraordinary opportunities. Buy NOW at 50% OFF!")
    assert hard["sentences"] == 2 and hard["long_words"] == 3 and hard["rix"] == 1.5
    assert hard["acronyms"] == 2 and hard["capitalised"] == 4
    assert hard["flesch_reading_ease"] < r["flesch_reading_ease"]
    assert hard["gunning_fog"] > r["gunning_fog"] and hard["lix"] > r["lix"]
    assert readability("10 most hated gadgets")["starts_with_number"] == 1.0
    empty = readability("")
    assert empty["flesch_reading_ease"] == 100.0 and empty["words"] == 0.0
    assert [syllables(w) for w in ("cat", "table", "make", "beautiful", "a")] == [1, 2, 1, 3, 1]


def test_measure_carries_every_quality_feature_and_reads_a_jpegs_quality() -> None:
    data = encoded(photo(1), "JPEG", quality=40)
    feats = measure(Image.open(io.BytesIO(data)), ocr=False)
    assert set(QUALITY_FEATURES) <= set(NUMERIC_FEATURES) <= set(feats)
    assert all(isinstance(feats[k], float) and math.isfinite(feats[k]) for k in QUALITY_FEATURES)
    assert feats["jpeg_quality"] == 40.0
    decoded = Image.open(io.BytesIO(data)).convert("RGB")  # the tables are gone after decoding
    assert measure(decoded, ocr=False)["jpeg_quality"] == LOSSLESS_QUALITY
    assert measure(decoded, ocr=False, quantization=quantization_of(data))["jpeg_quality"] == 40.0
