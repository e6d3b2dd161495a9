"""Per-image inputs of M2FN: the pixels at the model's size, and the two auxiliary fields an image
yields by itself (dominant palette colour, OCR text).

Colour and OCR cost tens to hundreds of milliseconds per image while an image appears in dozens
of impression cells, so they are computed once per distinct image and kept in a JSON cache keyed
by the image's pixels: training, the ablation's eight runs and later scoring of the same
creatives all reuse them.

The OCR text is tesseract's reading as `creative4u.features.measure` does it (its `text`: the
confident words of `ocr_words`), so the reading the data stage already stored per creative in
`features.parquet` stands in for it at training time, and scoring a new image reads it the same
way.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
import warnings
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from creative4u.images import ImageError, load_image

CACHE_VERSION = 2  # bump when what a cached field means changes
THUMB = 16  # side of the thumbnail that recognises a resized copy of a known creative
# a resized copy differs from the original's thumbnail by a few levels per cell; another creative
# (even one that differs only in a price tag) differs by far more in some cell
NEAR_MEAN, NEAR_MAX = 4.0, 16.0


def open_image(source: Any, name: str | None = None) -> Image.Image:
    """`load_image`, with the failing file named in the error (a corrupt creative among
    thousands must be findable)."""
    try:
        return load_image(source)
    except ImageError as e:
        label = name or (str(source) if isinstance(source, (str, os.PathLike)) else None)
        if label and label not in str(e):
            raise ImageError(f"{label}: {e}") from e
        raise


def image_key(img: Image.Image) -> str:
    """A key that follows the pixels, not the container: the same creative read from a PNG file or
    decoded from a datasets.Image column hits the same cache entry."""
    h = hashlib.sha1(f"{img.width}x{img.height}".encode())
    h.update(img.tobytes())
    return h.hexdigest()


def to_array(img: Image.Image, size: int) -> np.ndarray:
    """(3, size, size) uint8: the square the backbone sees (creatives are near-square; a plain
    resize keeps every pixel of the layout in view)."""
    small = img.resize((size, size), Image.Resampling.BILINEAR, reducing_gap=2.0)
    return np.ascontiguousarray(np.asarray(small, dtype=np.uint8).transpose(2, 0, 1))


def read_text(img: Image.Image) -> str:
    """The text printed in the image: what `features.measure` reports as `text`."""
    from creative4u.features import ocr_words

    return " ".join(w["text"] for w in ocr_words(img))


def thumbnail(img: Image.Image) -> list[int]:
    return np.asarray(img.resize((THUMB, THUMB), Image.Resampling.BOX)).ravel().tolist()


def compute_features(img: Image.Image, need: frozenset[str]) -> dict[str, Any]:
    """The requested fields ("colour", "ocr", "thumb") of one image."""
    from creative4u.features import dominant_colour

    out: dict[str, Any] = {}
    if "colour" in need:
        out["colour"] = dominant_colour(img)
    if "ocr" in need:
        out["ocr"] = read_text(img)
    if "thumb" in need:
        out["thumb"] = thumbnail(img)
    return out


class FeatureCache:
    """image key -> {"colour": palette name, "ocr": text}; either field may be absent (not yet
    computed). Thread-safe; saved atomically."""

    def __init__(self, path: str | Path | None = None):
        self.path = Path(path) if path else None
        self.entries: dict[str, dict[str, Any]] = {}
        self._lock = threading.Lock()
        self._dirty = False
        self._thumbs: tuple[list[str], np.ndarray] | None = None
        if self.path and self.path.is_file():
            data = json.loads(self.path.read_text())
            if isinstance(data, dict) and data.get("version") == CACHE_VERSION:
                self.entries = data["entries"]

    def get(self, key: str) -> dict[str, Any]:
        return self.entries.get(key, {})

    def add(self, key: str, fields: dict[str, Any]) -> None:
        with self._lock:
            self.entries[key] = {**self.entries.get(key, {}), **fields}
            self._dirty = True
            self._thumbs = None

    def near(self, thumb: Sequence[int]) -> dict[str, Any]:
        """The entry of a known image this thumbnail is a resized copy of ({} if none): the
        selector's stages hand M2FN creatives resized to their model's pixel budget, whose text
        and colour are those of the original, read at full resolution."""
        with self._lock:
            if getattr(self, "_thumbs", None) is None:
                keys = [k for k, v in self.entries.items() if "thumb" in v]
                mat = np.asarray([self.entries[k]["thumb"] for k in keys], np.float32)
                self._thumbs = (keys, mat.reshape(len(keys), -1) if keys else mat)
            keys, mat = self._thumbs
        if not keys:
            return {}
        diff = np.abs(mat - np.asarray(thumb, np.float32)[None, :])
        i = int(diff.mean(1).argmin())
        if diff[i].mean() <= NEAR_MEAN and diff[i].max() <= NEAR_MAX:
            return self.entries[keys[i]]
        return {}

    def save(self, path: str | Path | None = None) -> None:
        target = Path(path) if path else self.path
        if target is None or (not self._dirty and target == self.path and target.exists()):
            return
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_suffix(target.suffix + f".tmp{os.getpid()}")
        with self._lock:
            tmp.write_text(json.dumps({"version": CACHE_VERSION, "entries": self.entries}))
        tmp.replace(target)
        if target == self.path:
            self._dirty = False


def check_ocr_available(ocr: bool) -> None:
    from creative4u.features import tesseract_available

    if ocr and not tesseract_available():
        raise ValueError(
            "M2FN reads image text with tesseract, which is not installed "
            "(Debian: apt-get install tesseract-ocr tesseract-ocr-eng), or turn OCR off (--no-ocr)"
        )


def features_for(
    images: Sequence[Image.Image | Callable[[], Image.Image]],
    cache: FeatureCache,
    *,
    ocr: bool,
    keys: Sequence[str] | None = None,
    workers: int = 2,
    progress: bool = False,
    near_duplicates: bool = False,
    compute: Callable[[Image.Image, frozenset[str]], dict[str, Any]] = compute_features,
) -> list[dict[str, Any]]:
    """Colour and OCR of each image, from the cache where present; missing fields computed in
    `workers` threads (tesseract runs as a subprocess and k-means releases the GIL, so threads
    are enough). An image may be given as a function that opens it, so that thousands of
    full-size creatives need not be held in memory at once. With `near_duplicates`, an image
    that is a resized copy of a cached one takes that one's fields."""
    if keys is None:
        keys = [image_key(im() if callable(im) else im) for im in images]
    wanted = {"colour", "thumb"} | ({"ocr"} if ocr else set())
    todo: dict[str, tuple[Any, frozenset[str]]] = {}
    for k, im in zip(keys, images, strict=True):
        need = frozenset(wanted - set(cache.get(k)))
        if need and near_duplicates and not callable(im):
            thumb = thumbnail(im)
            twin = cache.near(thumb)
            cache.add(k, {"thumb": thumb, **{f: twin[f] for f in need if f in twin}})
            need = frozenset(wanted - set(cache.get(k)))
        if need:
            todo.setdefault(k, (im, need))
    if todo:
        check_ocr_available(any("ocr" in need for _, need in todo.values()))

        def one(item: tuple[str, tuple[Any, frozenset[str]]]) -> None:
            k, (im, need) = item
            cache.add(k, compute(im() if callable(im) else im, need))

        items = list(todo.items())
        with warnings.catch_warnings():
            # flat creatives have fewer distinct colours than k-means clusters: expected
            warnings.filterwarnings("ignore", message="Number of distinct clusters")
            if workers > 1 and len(items) > 1:
                # parallel over images (each tesseract call runs on one thread)
                with ThreadPoolExecutor(workers) as pool:
                    _drain(pool.map(one, items), len(items), progress)
            else:
                _drain(map(one, items), len(items), progress)
    out = []
    for k in keys:
        f = cache.get(k)
        out.append({"colour": f.get("colour"), "ocr": f.get("ocr", "") if ocr else ""})
    return out


def _drain(it: Any, total: int, progress: bool) -> None:
    from tqdm.auto import tqdm

    for _ in tqdm(it, total=total, desc="image features (colour, OCR)", disable=not progress):
        pass
