"""The paper's metrics (SPRC: Spearman, LCC: Pearson, between predicted and logged CTR of the
test cells) and the product's (accuracy of `prefer` on CreativePair's labelled pairs)."""

from __future__ import annotations

import math
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


def labelled_pairs(split: Any, limit: int | None = None, seed: int = 0) -> list[dict[str, Any]]:
    """The pairs with a label (at most `limit`, a seeded sample)."""
    keep = [i for i, lab in enumerate(split["label"]) if lab in ("A", "B")]
    if limit is not None and len(keep) > limit:
        keep = sorted(np.random.default_rng(seed).choice(keep, size=limit, replace=False).tolist())
    return [split[i] for i in keep]


def pair_context(row: dict[str, Any]) -> dict[str, Any]:
    """What a pair row knows of the context (the rest is encoded as the training average)."""
    return {k: row[k] for k in ("query", "title", "category") if row.get(k) is not None}


def pair_ctrs(scorer: M2FNScorer, rows: list[dict[str, Any]]) -> np.ndarray:
    """(n, 2) predicted CTRs of creatives A and B of each pair."""
    images = [r[k] for r in rows for k in ("image_a", "image_b")]
    ctx = [pair_context(r) for r in rows for _ in (0, 1)]
    return np.asarray(scorer.score(images, ctx)).reshape(-1, 2)


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


def pair_accuracy(scorer: M2FNScorer, split: Any, limit: int | None = None) -> dict[str, Any]:
    """Share of labelled pairs where `prefer` >= 0.5 picks the label, and the mean log-loss."""
    rows = labelled_pairs(split, limit)
    if not rows:
        return {"pair_accuracy": None, "n_pairs": 0}
    ctrs = pair_ctrs(scorer, rows)
    d = scorer.prefer_scale * (logit(ctrs[:, 0]) - logit(ctrs[:, 1]))
    y = np.array([r["label"] == "A" for r in rows])
    # ties (identical predictions) count as half right: no side was chosen
    correct = np.where(d == 0, 0.5, (d > 0) == y)
    log_loss = np.logaddexp(0.0, -np.where(y, 1.0, -1.0) * d).mean()
    return {
        "pair_accuracy": float(correct.mean()),
        "pair_log_loss": float(log_loss),
        "n_pairs": len(rows),
    }
