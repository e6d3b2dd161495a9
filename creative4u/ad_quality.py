"""The ad-quality features of Zhou et al. that `creative4u.features` did not measure yet (seed 001):
texture (grey-level co-occurrence), photographic quality (Tenengrad sharpness, contrast and
exposure balance, JPEG quality and blockiness), colour (HSV of the whole image and of its inner
quadrant, the pleasure / arousal / dominance formulae, Itten colour contrasts), composition (the
rule of thirds) and text readability (Flesch, Flesch-Kincaid, Gunning fog, Coleman-Liau, LIX, RIX
and the low-level counts they are made of).

Each function takes what `features.measure` already has (the working RGB array, the grey image, a
text) and returns plain floats, so every number can be quoted by a reason and shown on the page.
"""

from __future__ import annotations

import io
import math
import re
from collections.abc import Mapping
from typing import Any

import numpy as np
from PIL import Image

GLCM_LEVELS = 16
"""Grey levels of the co-occurrence matrix (the image is quantised to these first)."""

LOSSLESS_QUALITY = 100.0
"""What `jpeg_quality` reports for an image that was never JPEG-compressed (PNG, WebP lossless)."""

# The IJG (libjpeg) standard luminance quantisation table, the reference JPEG quality is scaled
# from (ITU-T T.81, Annex K), in zig-zag-free row order as PIL reports it.
_IJG_LUMA = np.asarray(
    [
        16, 11, 10, 16, 24, 40, 51, 61,
        12, 12, 14, 19, 26, 58, 60, 55,
        14, 13, 16, 24, 40, 57, 69, 56,
        14, 17, 22, 29, 51, 87, 80, 62,
        18, 22, 37, 56, 68, 109, 103, 77,
        24, 35, 55, 64, 81, 104, 113, 92,
        49, 64, 78, 87, 103, 121, 120, 101,
        72, 92, 95, 98, 112, 100, 103, 99,
    ],
    dtype=np.float64,
)  # fmt: skip


# --------------------------------------------------------------------------------------------
# Texture
# --------------------------------------------------------------------------------------------


def glcm(gray: np.ndarray, levels: int = GLCM_LEVELS) -> np.ndarray:
    """The symmetric, normalised co-occurrence matrix of horizontal and vertical neighbours
    (distance 1) of `gray` (values 0-255) quantised to `levels` grey levels."""
    q = np.clip(
        (np.asarray(gray, dtype=np.float64) / 256.0 * levels).astype(np.int64), 0, levels - 1
    )
    m = np.zeros((levels, levels), dtype=np.float64)
    for a, b in ((q[:, :-1], q[:, 1:]), (q[:-1, :], q[1:, :])):
        np.add.at(m, (a.ravel(), b.ravel()), 1.0)
    m = m + m.T
    total = m.sum()
    return m / total if total else m


def texture_features(gray: np.ndarray) -> dict[str, float]:
    """Haralick's contrast, energy, homogeneity and entropy of the co-occurrence matrix.

    Contrast is divided by (levels - 1)^2 so it lies in [0, 1] (a one-pixel black-and-white
    checkerboard is 1, a flat image 0); energy is the angular second moment; entropy is in bits."""
    p = glcm(gray)
    n = p.shape[0]
    i, j = np.indices(p.shape)
    nz = p[p > 0]
    return {
        "glcm_contrast": float((p * (i - j) ** 2).sum() / (n - 1) ** 2),
        "glcm_energy": float((p**2).sum()),
        "glcm_homogeneity": float((p / (1.0 + (i - j) ** 2)).sum()),
        "glcm_entropy": float(-(nz * np.log2(nz)).sum()),
    }


# --------------------------------------------------------------------------------------------
# Photographic quality
# --------------------------------------------------------------------------------------------


def tenengrad(gray: np.ndarray) -> float:
    """Mean squared Sobel gradient magnitude of the grey image scaled to [0, 1] (Tenengrad)."""
    from scipy import ndimage

    g = np.asarray(gray, dtype=np.float64) / 255.0
    gx, gy = ndimage.sobel(g, axis=1), ndimage.sobel(g, axis=0)
    return float((gx**2 + gy**2).mean())


def contrast_balance(gray: np.ndarray) -> float:
    """Mean distance (0-1) between the grey image and its histogram-equalised version: 0 for an
    image whose contrast already spans the range evenly."""
    from PIL import ImageOps

    g = Image.fromarray(np.clip(gray, 0, 255).astype(np.uint8), "L")
    eq = np.asarray(ImageOps.equalize(g), dtype=np.float64)
    return float(np.abs(eq - np.asarray(g, dtype=np.float64)).mean() / 255.0)


def exposure_balance(gray: np.ndarray) -> float:
    """Skewness of the luminance distribution: above 0 under-exposed (mass in the shadows),
    below 0 over-exposed; 0 for a flat image."""
    g = np.asarray(gray, dtype=np.float64).ravel()
    sd = g.std()
    return float(((g - g.mean()) ** 3).mean() / sd**3) if sd > 1e-9 else 0.0


def jpeg_quality(quantization: Mapping[int, Any] | None) -> float:
    """The IJG quality (1-100) whose scaled standard luminance table is closest to the file's own
    (exact for libjpeg-made files, the usual estimate for others); `LOSSLESS_QUALITY` when the
    image carries no JPEG tables."""
    if not quantization or 0 not in quantization:
        return LOSSLESS_QUALITY
    table = np.asarray(list(quantization[0]), dtype=np.float64)[:64]
    best, best_err = LOSSLESS_QUALITY, math.inf
    for q in range(1, 101):
        scale = 5000.0 / q if q < 50 else 200.0 - 2.0 * q
        ref = np.clip(np.floor((_IJG_LUMA * scale + 50.0) / 100.0), 1, 255)
        err = float(np.abs(ref - table).sum())
        if err < best_err:
            best, best_err = float(q), err
    return best


def quantization_of(source: Any) -> dict[int, Any] | None:
    """The JPEG quantisation tables of an encoded image (bytes, a path or an opened PIL image);
    None when it is not a JPEG. Decoding to RGB drops them, so read them from the file."""
    if isinstance(source, Image.Image):
        return getattr(source, "quantization", None) or None
    try:
        with Image.open(io.BytesIO(source) if isinstance(source, bytes) else source) as im:
            return dict(im.quantization) if getattr(im, "quantization", None) else None
    except (OSError, ValueError):
        return None


def jpeg_blockiness(rgb: Image.Image, quality: int = 10) -> float:
    """Mean distance (0-1) between the image and itself recompressed at a low JPEG quality: small
    for an image already full of compression blocks, larger for a clean one."""
    buf = io.BytesIO()
    rgb.convert("RGB").save(buf, format="JPEG", quality=quality)
    again = np.asarray(Image.open(buf).convert("RGB"), dtype=np.float64)
    return float(np.abs(again - np.asarray(rgb.convert("RGB"), dtype=np.float64)).mean() / 255.0)


# --------------------------------------------------------------------------------------------
# Colour
# --------------------------------------------------------------------------------------------


def _hsv_array(a: np.ndarray) -> np.ndarray:
    return (
        np.asarray(Image.fromarray(a.astype(np.uint8), "RGB").convert("HSV"), dtype=np.float64)
        / 255.0
    )


def _hue_mean(h: np.ndarray, weight: np.ndarray) -> float:
    """Circular mean of hues in [0, 1), weighted by saturation (grey pixels have no hue)."""
    ang = 2.0 * np.pi * h
    s, c = (weight * np.sin(ang)).sum(), (weight * np.cos(ang)).sum()
    if abs(s) < 1e-9 and abs(c) < 1e-9:
        return 0.0
    return float((math.atan2(s, c) / (2.0 * np.pi)) % 1.0)


def colour_features(a: np.ndarray) -> dict[str, float]:
    """Mean hue, saturation and brightness (HSV) of the whole image and of its inner quadrant;
    pleasure, arousal and dominance from mean saturation S and brightness V (Valdez and
    Mehrabian: P = 0.69 V + 0.22 S, A = -0.31 V + 0.60 S, D = -0.76 V + 0.32 S); and Itten's
    colour contrasts, the standard deviation of the 12-bin hue, 5-bin saturation and 3-bin
    brightness histograms (pixel shares)."""
    hsv = _hsv_array(a)
    h, s, v = hsv[..., 0], hsv[..., 1], hsv[..., 2]
    rows, cols = h.shape
    inner = (slice(rows // 4, rows - rows // 4), slice(cols // 4, cols - cols // 4))
    sm, vm = float(s.mean()), float(v.mean())

    def hist_sd(x: np.ndarray, bins: int) -> float:
        counts = np.bincount(np.clip((x * bins).astype(int), 0, bins - 1).ravel(), minlength=bins)
        return float((counts / max(1, x.size)).std())

    return {
        "hue": _hue_mean(h, s),
        "hue_inner": _hue_mean(h[inner], s[inner]),
        "saturation_inner": float(s[inner].mean()),
        "brightness_inner": float(v[inner].mean()),
        "pleasure": 0.69 * vm + 0.22 * sm,
        "arousal": -0.31 * vm + 0.60 * sm,
        "dominance": -0.76 * vm + 0.32 * sm,
        "itten_hue_contrast": hist_sd(h, 12),
        "itten_saturation_contrast": hist_sd(s, 5),
        "itten_brightness_contrast": hist_sd(v, 3),
    }


# --------------------------------------------------------------------------------------------
# Composition
# --------------------------------------------------------------------------------------------


def saliency(a: np.ndarray) -> np.ndarray:
    """Colour-contrast saliency: each pixel's distance, after a light blur, from the background
    colour (the median of a thin border, where a creative's backdrop is), scaled to sum to 1.
    A flat image spreads it evenly."""
    from scipy import ndimage

    blurred = ndimage.gaussian_filter(np.asarray(a, dtype=np.float64), sigma=(1.0, 1.0, 0))
    rows, cols = blurred.shape[:2]
    k = max(1, round(0.04 * min(rows, cols)))
    border = np.concatenate(
        [
            blurred[:k].reshape(-1, 3),
            blurred[-k:].reshape(-1, 3),
            blurred[:, :k].reshape(-1, 3),
            blurred[:, -k:].reshape(-1, 3),
        ]
    )
    d = np.sqrt(((blurred - np.median(border, axis=0)) ** 2).sum(-1))
    total = d.sum()
    return d / total if total > 1e-9 else np.full(d.shape, 1.0 / d.size)


def composition_features(a: np.ndarray) -> dict[str, float]:
    """The rule of thirds: the share of saliency within 1/12 of the image of the four third lines,
    and the distance from the saliency centroid to the nearest of the four power points (the
    image taken as a unit square: 0 on a power point, 0.236 at the centre)."""
    sal = saliency(a)
    rows, cols = sal.shape
    y = (np.arange(rows) + 0.5) / rows
    x = (np.arange(cols) + 0.5) / cols
    band = 1.0 / 12.0
    near_x = (np.abs(x - 1 / 3) < band) | (np.abs(x - 2 / 3) < band)
    near_y = (np.abs(y - 1 / 3) < band) | (np.abs(y - 2 / 3) < band)
    on_lines = near_y[:, None] | near_x[None, :]
    cy, cx = float((sal.sum(1) * y).sum()), float((sal.sum(0) * x).sum())
    dist = min(math.hypot(cx - px, cy - py) for px in (1 / 3, 2 / 3) for py in (1 / 3, 2 / 3))
    return {"thirds_saliency": float(sal[on_lines].sum()), "thirds_distance": dist}


# --------------------------------------------------------------------------------------------
# Readability
# --------------------------------------------------------------------------------------------

_SENTENCE_END = re.compile(r"[.!?]+")
_WORD = re.compile(r"[A-Za-z][A-Za-z'-]*|\d[\d.,%]*")
_VOWELS = re.compile(r"[aeiouy]+")


def syllables(word: str) -> int:
    """Syllables of an English word: vowel groups, less a silent final e (at least one)."""
    w = word.lower().strip("'-")
    if not w or not w[0].isalpha():
        return 1 if w else 0
    n = len(_VOWELS.findall(w))
    if w.endswith("e") and not w.endswith(("le", "ee", "ye")) and n > 1:
        n -= 1
    return max(1, n)


def readability(text: str) -> dict[str, float]:
    """Flesch reading ease, Flesch-Kincaid grade, Gunning fog, Coleman-Liau, LIX
    (Laesbarhedsindex), RIX, and their low-level counts, of a title or an in-image text.

    An empty text reads as the easiest (reading ease 100, grade levels 0) so that "no text" never
    looks like "hard text"; a text without end punctuation is one sentence."""
    words = _WORD.findall(text or "")
    n = len(words)
    sentences = max(1, len([s for s in _SENTENCE_END.split(text or "") if _WORD.search(s)]))
    alpha = [w for w in words if w[0].isalpha()]
    syl = [syllables(w) for w in words]
    complex_words = sum(s >= 3 for s in syl)
    long_words = sum(len(w) > 6 for w in alpha)
    letters = sum(sum(ch.isalnum() for ch in w) for w in words)
    counts = {
        "words": float(n),
        "sentences": float(sentences if n else 0),
        "syllables_per_word": float(sum(syl) / n) if n else 0.0,
        "complex_words": float(complex_words / n) if n else 0.0,
        "long_words": float(long_words),
        "acronyms": float(sum(len(w) >= 2 and w.isupper() for w in alpha)),
        "capitalised": float(sum(w[0].isupper() for w in alpha)),
        "starts_with_number": float(bool(words) and words[0][0].isdigit()),
    }
    if not n:
        return {
            "flesch_reading_ease": 100.0,
            "flesch_kincaid_grade": 0.0,
            "gunning_fog": 0.0,
            "coleman_liau": 0.0,
            "lix": 0.0,
            "rix": 0.0,
            **counts,
        }
    wps, spw = n / sentences, sum(syl) / n
    return {
        "flesch_reading_ease": 206.835 - 1.015 * wps - 84.6 * spw,
        "flesch_kincaid_grade": 0.39 * wps + 11.8 * spw - 15.59,
        "gunning_fog": 0.4 * (wps + 100.0 * complex_words / n),
        "coleman_liau": 0.0588 * (100.0 * letters / n) - 0.296 * (100.0 * sentences / n) - 15.8,
        "lix": wps + 100.0 * long_words / n,
        "rix": long_words / sentences,
        **counts,
    }


# --------------------------------------------------------------------------------------------


def measure_quality(
    a: np.ndarray, gray: np.ndarray, text: str, quantization: Any = None
) -> dict[str, float]:
    """Every feature of this module for one creative: `a` the working RGB array and `gray` its
    luminance (as `features.measure` computes them), `text` the in-image text (OCR)."""
    read = readability(text)
    return {
        **texture_features(gray),
        "tenengrad": tenengrad(gray),
        "contrast_balance": contrast_balance(gray),
        "exposure_balance": exposure_balance(gray),
        "jpeg_quality": jpeg_quality(quantization),
        "jpeg_blockiness": jpeg_blockiness(Image.fromarray(a.astype(np.uint8), "RGB")),
        **colour_features(a),
        **composition_features(a),
        "text_flesch": read["flesch_reading_ease"],
        "text_grade": read["flesch_kincaid_grade"],
        "text_fog": read["gunning_fog"],
        "text_lix": read["lix"],
        "text_rix": read["rix"],
        "text_complex_words": read["complex_words"],
        "text_acronyms": read["acronyms"],
        "text_capitalised": read["capitalised"],
    }


QUALITY_FEATURES: tuple[str, ...] = (
    "glcm_contrast",
    "glcm_energy",
    "glcm_homogeneity",
    "glcm_entropy",
    "tenengrad",
    "contrast_balance",
    "exposure_balance",
    "jpeg_quality",
    "jpeg_blockiness",
    "saturation_inner",
    "brightness_inner",
    "pleasure",
    "arousal",
    "dominance",
    "itten_hue_contrast",
    "itten_saturation_contrast",
    "itten_brightness_contrast",
    "thirds_saliency",
    "thirds_distance",
    "text_flesch",
    "text_grade",
    "text_fog",
    "text_lix",
    "text_rix",
    "text_complex_words",
    "text_acronyms",
    "text_capitalised",
)
"""The numeric features `measure_quality` adds, in a fixed order (the feature baseline's columns).
The mean hues are measured and shown but left out here: a hue is an angle, and a difference of
angles is no linear evidence."""
