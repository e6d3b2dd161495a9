"""The paper's metrics (SPRC: Spearman, LCC: Pearson, between predicted and logged CTR of the
test cells) and the product's (accuracy of `prefer` on CreativePair's labelled pairs)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from creative4u.m2fn.scorer import M2FNScorer, logit


def correlations(pred: np.ndarray, ctr: np.ndarray) -> dict[str, float | None]:
    from scipy.stats import pearsonr, spearmanr

    pred, ctr = np.asarray(pred, np.float64), np.asarray(ctr, np.float64)
    if len(pred) < 3 or np.ptp(pred) == 0 or np.ptp(ctr) == 0:
        return {"sprc": None, "lcc": None}
    return {
        "sprc": float(spearmanr(pred, ctr).statistic),
        "lcc": float(pearsonr(pred, ctr).statistic),
    }


def predict(
    model: Any, pixels: np.ndarray, image_index: np.ndarray, aux: np.ndarray, batch_size: int = 256
) -> np.ndarray:
    """Predicted CTR of cells given as (image index, auxiliary vector)."""
    import torch

    was_training = model.training
    model.eval()
    out = []
    with torch.inference_mode():
        for i in range(0, len(image_index), batch_size):
            idx = image_index[i : i + batch_size]
            px = torch.from_numpy(pixels[idx])
            a = torch.from_numpy(aux[i : i + batch_size])
            out.append(model.ctr(model(px, a)).numpy())
    model.train(was_training)
    return np.concatenate(out) if out else np.zeros(0)


def cell_metrics(rows: Any, pred: np.ndarray) -> dict[str, Any]:
    """SPRC / LCC over cells, and over (creative, query) groups: predictions averaged by
    impressions against the pooled CTR, where one cell's handful of clicks is less noisy."""
    out: dict[str, Any] = {"n_cells": int(len(pred)), **correlations(pred, rows["ctr"].to_numpy())}
    keys = [k for k in ("creative_id", "query") if k in rows.columns]
    if keys and len(pred):
        g = rows.assign(_p=pred * rows["impressions"]).groupby(keys, sort=False)
        agg = g[["_p", "clicks", "impressions"]].sum()
        grouped = correlations(agg["_p"] / agg["impressions"], agg["clicks"] / agg["impressions"])
        out |= {"n_groups": int(len(agg)), **{f"{k}_grouped": v for k, v in grouped.items()}}
    return out


def labelled_indices(split: Any, limit: int | None = None, seed: int = 0) -> list[int]:
    """Rows with a label (at most `limit`, a seeded sample), read without decoding images."""
    keep = [i for i, lab in enumerate(split["label"]) if lab in ("A", "B")]
    if limit is not None and len(keep) > limit:
        keep = sorted(np.random.default_rng(seed).choice(keep, size=limit, replace=False).tolist())
    return keep


def pair_context(row: dict[str, Any]) -> dict[str, Any]:
    """What a pair row knows of the context (the rest is encoded as the training average)."""
    return {k: row[k] for k in ("query", "title", "category") if row.get(k) is not None}


@dataclass
class PairSet:
    """Labelled pairs ready for the network: each distinct image decoded once, its pixels and
    auxiliary vectors computed once, so that the ablation's eight models score them cheaply."""

    pixels: np.ndarray  # (n_images, 3, S, S) uint8
    index: np.ndarray  # (n_pairs, 2) rows of `pixels` for A and B
    aux: np.ndarray  # (n_pairs, 2, dim)
    labels: list[str]

    def __len__(self) -> int:
        return len(self.labels)


def pair_set(
    split: Any,
    encoder: Any,
    cfg: Any,
    cache: Any,
    limit: int | None = None,
    seed: int = 0,
    workers: int = 1,
) -> PairSet:
    """The PairSet of a CreativePair split (`cfg`: the model config, for image size and OCR)."""
    import hashlib

    from datasets import Image as ImageFeature

    from creative4u.m2fn.image_features import features_for, image_key, open_image
    from creative4u.m2fn.image_features import to_array as image_array

    keep = labelled_indices(split, limit, seed)
    raw = split.select(keep)
    for col in ("image_a", "image_b"):
        raw = raw.cast_column(col, ImageFeature(decode=False))
    slot: dict[str, int] = {}
    arrays, images, index, contexts, labels = [], [], [], [], []
    for r in raw:
        pair = []
        for col in ("image_a", "image_b"):
            blob = r[col].get("bytes") or Path(r[col]["path"]).read_bytes()
            digest = hashlib.sha1(blob).hexdigest()
            if digest not in slot:
                img = open_image(blob, name=f"{r['pair_id']} {col}")
                slot[digest] = len(arrays)
                arrays.append(image_array(img, cfg.image_size))
                images.append(img)
            pair.append(slot[digest])
        index.append(pair)
        contexts.append(pair_context(r))
        labels.append(r["label"])
    feats = features_for(
        images, cache, ocr=cfg.ocr, keys=[image_key(im) for im in images], workers=workers
    )
    rows = [
        {**ctx, "colour": feats[i]["colour"], "ocr": feats[i]["ocr"] or ""}
        for ctx, pair in zip(contexts, index, strict=True)
        for i in pair
    ]
    dim = encoder.dim
    aux = encoder.encode(rows).reshape(len(index), 2, dim) if rows else np.zeros((0, 2, dim))
    pixels = np.stack(arrays) if arrays else np.zeros((0, 3, cfg.image_size, cfg.image_size))
    return PairSet(
        pixels.astype(np.uint8),
        np.asarray(index, np.int64).reshape(-1, 2),
        aux.astype(np.float32),
        labels,
    )


def pair_set_ctrs(model: Any, ps: PairSet) -> np.ndarray:
    """(n, 2) predicted CTRs of A and B."""
    if not len(ps):
        return np.zeros((0, 2))
    flat_index = ps.index.reshape(-1)
    flat_aux = ps.aux.reshape(-1, ps.aux.shape[-1])
    return predict(model, ps.pixels, flat_index, flat_aux).reshape(-1, 2)


def fit_prefer_scale(ctrs: np.ndarray, labels: list[str]) -> float:
    """The Bradley-Terry scale that makes P(A > B) best calibrated on these pairs (maximum
    likelihood, one parameter, no intercept: swapping A and B must flip the probability)."""
    from scipy.optimize import minimize_scalar

    if len(labels) < 5:
        return 1.0
    d = logit(ctrs[:, 0]) - logit(ctrs[:, 1])
    y = np.where(np.asarray(labels) == "A", 1.0, -1.0)

    def nll(k: float) -> float:
        return float(np.logaddexp(0.0, -y * k * d).sum())

    res = minimize_scalar(nll, bounds=(0.0, 50.0), method="bounded")
    return float(res.x) if math.isfinite(res.x) else 1.0


def pair_metrics(ctrs: np.ndarray, labels: list[str], scale: float) -> dict[str, Any]:
    """Share of pairs where P(A > B) >= 0.5 picks the label, and the mean log-loss."""
    if not len(labels):
        return {"pair_accuracy": None, "n_pairs": 0}
    d = scale * (logit(ctrs[:, 0]) - logit(ctrs[:, 1]))
    y = np.array([lab == "A" for lab in labels])
    # ties (identical predictions) count as half right: no side was chosen
    correct = np.where(d == 0, 0.5, (d > 0) == y)
    log_loss = np.logaddexp(0.0, -np.where(y, 1.0, -1.0) * d).mean()
    return {
        "pair_accuracy": float(correct.mean()),
        "pair_log_loss": float(log_loss),
        "n_pairs": len(labels),
    }


def pair_accuracy(scorer: M2FNScorer, split: Any, limit: int | None = None) -> dict[str, Any]:
    """`pair_metrics` of a scorer on a CreativePair split, through the public `score` path."""
    rows = [split[i] for i in labelled_indices(split, limit)]
    images = [r[k] for r in rows for k in ("image_a", "image_b")]
    ctx = [pair_context(r) for r in rows for _ in (0, 1)]
    ctrs = np.asarray(scorer.score(images, ctx)).reshape(-1, 2)
    return pair_metrics(ctrs, [r["label"] for r in rows], scorer.prefer_scale)
