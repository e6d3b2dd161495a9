"""Measure every creative once: the teacher, the baseline and the card all read this one cache.

Pairs share creatives (a creative of a product with six creatives is in five pairs per query), so
features are measured per image, never per pair. The colour, texture and composition measures
are Python and numpy work that holds the GIL; OCR runs tesseract as a subprocess, which releases
it. A thread pool is the default; `pool="process"` measures in worker processes instead (each
reads its image from disk, so nothing large crosses between them). `bench/bench_measure.py`
compares the two.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from collections.abc import Mapping
from concurrent.futures import Executor, ProcessPoolExecutor, ThreadPoolExecutor
from functools import partial
from pathlib import Path
from typing import Any

import pandas as pd

from creative4u.features import NUMERIC_FEATURES

POOLS = ("thread", "process")


def _measure_one(path: Path, ocr: bool) -> dict[str, Any]:
    from creative4u.ad_quality import quantization_of
    from creative4u.features import measure
    from creative4u.images import load_image

    return measure(load_image(path), ocr=ocr, quantization=quantization_of(path))


def _cached_measure(path: Path, ocr: bool, cache_dir: Path | None) -> dict[str, Any]:
    """Measure an image, or read its features from `cache_dir` (keyed by the file's content, the
    feature version and the OCR switch, so a rebuild with another rule re-reads nothing)."""
    if cache_dir is None:
        return _measure_one(path, ocr)
    from creative4u.features import FEATURES_VERSION

    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    entry = cache_dir / f"{digest}-v{FEATURES_VERSION}{'' if ocr else '-no-ocr'}.json"
    if entry.is_file():
        try:
            return json.loads(entry.read_text())
        except json.JSONDecodeError:
            pass
    feats = _measure_one(path, ocr)
    tmp = entry.with_suffix(f".tmp{os.getpid()}.{threading.get_ident()}")
    tmp.write_text(json.dumps(feats))
    os.replace(tmp, entry)
    return feats


def measure_images(
    images: Mapping[str, Path],
    workers: int | None = None,
    ocr: bool = True,
    progress: bool = True,
    cache_dir: Path | None = None,
    pool: str = "thread",
) -> dict[str, dict[str, Any]]:
    """image key -> features for every image, in a deterministic key order. `workers` defaults
    to the machine's cores; `pool` is "thread" or "process"."""
    from tqdm import tqdm

    if pool not in POOLS:
        raise ValueError(f"pool must be one of {POOLS}, got {pool!r}")
    if cache_dir is not None:
        cache_dir = Path(cache_dir)
        cache_dir.mkdir(parents=True, exist_ok=True)
    keys = sorted(images)
    workers = max(1, workers or os.cpu_count() or 1)
    work = partial(_cached_measure, ocr=ocr, cache_dir=cache_dir)
    executor: Executor
    if pool == "process" and workers > 1 and len(keys) > 1:
        import multiprocessing

        # spawn: the parent may hold threads (tqdm's monitor, torch's pools) that fork would copy
        executor = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"))
    else:
        executor = ThreadPoolExecutor(max_workers=workers)
    with executor:
        results = list(
            tqdm(
                executor.map(work, [images[k] for k in keys], chunksize=4),  # threads ignore it
                total=len(keys),
                desc="measuring creatives",
                unit="img",
                disable=not progress,
            )
        )
    return dict(zip(keys, results, strict=True))


def features_table(features: Mapping[str, Mapping[str, Any]]) -> pd.DataFrame:
    """One row per image: the numeric features and the named ones (text, colours), no thumbnails."""
    rows = []
    for key in sorted(features):
        f = features[key]
        rows.append(
            {
                "image": key,
                **{k: float(f[k]) for k in NUMERIC_FEATURES},
                "text": f["text"],
                "colours": f["colours"],
                "subject_colour": f["subject_colour"],
                "background_colour": f["background_colour"],
            }
        )
    return pd.DataFrame(rows)
