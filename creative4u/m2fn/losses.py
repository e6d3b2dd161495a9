"""The paper's two losses and the log-normal CTR distributions the KLD mode needs.

Eq. 2, impression-weighted MSE: a cell shown 5,000 times measures its CTR far better than one
shown 50 times, so its error counts for more. Eq. 3, KLD between a target CTR distribution and the
softmax over CTR buckets: click logs give one CTR per cell, not a histogram of ratings as in AVA,
so the target is a log-normal around the observed CTR, discretised into the buckets, with the
width binomial sampling gives a CTR measured on that many impressions.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch.nn import functional as F


def weighted_mse(pred: torch.Tensor, target: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """L = 1/N sum_n w_n (y^_n - y_n)^2 (eq. 2)."""
    return (weight * (pred - target) ** 2).mean()


def kld_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """L = 1/N sum_n sum_k p_k log(p_k / q_k), q = softmax(logits) (eq. 3); 0 log 0 = 0."""
    log_q = F.log_softmax(logits, dim=1)
    log_p = torch.log(target.clamp_min(1e-12))
    return (torch.where(target > 0, target * (log_p - log_q), 0.0)).sum(dim=1).mean()


def smoothed_ctr(clicks: np.ndarray, impressions: np.ndarray) -> np.ndarray:
    """CTR with half a click added, so a cell without clicks still has a log."""
    return (np.asarray(clicks, np.float64) + 0.5) / (np.asarray(impressions, np.float64) + 1.0)


def binomial_log_sigma(
    ctr: np.ndarray, impressions: np.ndarray, floor: float = 0.05, cap: float = 2.0
) -> np.ndarray:
    """Standard deviation of log(CTR) measured on n impressions (delta method):
    sqrt((1 - p) / (n p)), bounded so that huge cells keep some width and tiny ones some shape."""
    p = np.clip(np.asarray(ctr, np.float64), 1e-9, 1 - 1e-9)
    n = np.maximum(np.asarray(impressions, np.float64), 1.0)
    return np.clip(np.sqrt((1 - p) / (n * p)), floor, cap)


def ctr_edges(
    ctr: np.ndarray, buckets: int, weights: np.ndarray | None = None, q: float = 0.02
) -> np.ndarray:
    """`buckets - 1` inner edges, log-spaced between the q and 1-q quantiles of the CTRs (the two
    outer buckets are open: (0, e_1] and (e_last, inf))."""
    c = np.asarray(ctr, np.float64)
    keep = c > 0
    c = c[keep]
    if c.size == 0:
        c = np.array([1e-3])
    lo, hi = np.quantile(c, q), np.quantile(c, 1 - q)
    if weights is not None:
        lo, hi = _weighted_quantile(c, np.asarray(weights)[keep], [q, 1 - q])
    lo = max(lo, 1e-6)
    hi = max(hi, lo * 1.5)
    return np.exp(np.linspace(math.log(lo), math.log(hi), buckets - 1))


def bucket_centres(edges: np.ndarray) -> np.ndarray:
    """The CTR a bucket stands for: the geometric middle of its edges, one log step beyond the
    last edge for the two open buckets."""
    e = np.log(np.asarray(edges, np.float64))
    step = (e[-1] - e[0]) / max(len(e) - 1, 1) if len(e) > 1 else math.log(2.0)
    mids = (e[:-1] + e[1:]) / 2
    return np.exp(np.concatenate([[e[0] - step / 2], mids, [e[-1] + step / 2]]))


def lognormal_buckets(ctr: np.ndarray, sigma: np.ndarray | float, edges: np.ndarray) -> np.ndarray:
    """(N, K) probability mass of LogNormal(log ctr, sigma) in each bucket; rows sum to 1."""
    from scipy.stats import norm

    mu = np.log(np.clip(np.asarray(ctr, np.float64), 1e-12, None))[:, None]
    s = np.broadcast_to(np.asarray(sigma, np.float64), mu.shape[:1])[:, None]
    cdf = norm.cdf((np.log(np.asarray(edges, np.float64))[None, :] - mu) / s)
    cdf = np.concatenate([np.zeros_like(mu), cdf, np.ones_like(mu)], axis=1)
    return np.diff(cdf, axis=1).astype(np.float32)


def _weighted_quantile(x: np.ndarray, w: np.ndarray, qs: list[float]) -> list[float]:
    order = np.argsort(x)
    x, w = x[order], np.asarray(w, np.float64)[order]
    cw = np.cumsum(w)
    if cw[-1] <= 0:
        return [float(np.quantile(x, q)) for q in qs]
    cw /= cw[-1]
    return [float(x[min(np.searchsorted(cw, q), len(x) - 1)]) for q in qs]
