"""Interpretable image features of ad creatives (the ad-quality literature's colour, texture,
composition and readability measures), shared by the rationale teacher, M2FN's auxiliary input,
the feature baseline and evaluation.
"""

from __future__ import annotations

import shutil
import subprocess
from functools import lru_cache

import numpy as np
from PIL import Image

# A ten-colour palette for the "dominant colour" context feature (M2FN's auxiliary input).
PALETTE: dict[str, tuple[int, int, int]] = {
    "black": (20, 20, 20),
    "white": (240, 240, 240),
    "grey": (128, 128, 128),
    "red": (200, 40, 40),
    "orange": (240, 140, 30),
    "yellow": (235, 210, 40),
    "green": (50, 150, 70),
    "blue": (40, 80, 200),
    "purple": (130, 60, 170),
    "brown": (130, 85, 50),
}
PALETTE_NAMES: tuple[str, ...] = tuple(PALETTE)


def dominant_colour(img: Image.Image, k: int = 4, seed: int = 0) -> str:
    """The palette name of the largest k-means colour cluster of the image."""
    from sklearn.cluster import KMeans

    small = np.asarray(img.convert("RGB").resize((48, 48)), dtype=np.float32).reshape(-1, 3)
    km = KMeans(n_clusters=k, n_init=2, random_state=seed).fit(small)
    counts = np.bincount(km.labels_, minlength=k)
    centre = km.cluster_centers_[int(counts.argmax())]
    pal = np.asarray(list(PALETTE.values()), dtype=np.float32)
    return PALETTE_NAMES[int(((pal - centre) ** 2).sum(1).argmin())]


@lru_cache(maxsize=1)
def tesseract_available() -> bool:
    return shutil.which("tesseract") is not None


def ocr_text(img: Image.Image, timeout: float = 30.0) -> str:
    """Text printed in the image, read by tesseract (upscaled: ad type is small)."""
    if not tesseract_available():
        raise RuntimeError(
            "tesseract is not installed (Debian: apt-get install tesseract-ocr tesseract-ocr-eng)"
        )
    import io

    rgb = img.convert("RGB")
    if max(rgb.size) < 1000:
        scale = 1000 / max(rgb.size)
        rgb = rgb.resize(
            (int(rgb.width * scale), int(rgb.height * scale)), Image.Resampling.LANCZOS
        )
    buf = io.BytesIO()
    rgb.save(buf, format="PNG")
    res = subprocess.run(
        ["tesseract", "stdin", "stdout", "--psm", "11", "-l", "eng"],
        input=buf.getvalue(),
        capture_output=True,
        timeout=timeout,
        check=False,
    )
    if res.returncode != 0:
        raise RuntimeError(f"tesseract failed: {res.stderr.decode(errors='replace')[:200]}")
    return " ".join(res.stdout.decode(errors="replace").split())
