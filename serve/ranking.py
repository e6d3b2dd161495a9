"""Bradley-Terry over soft pairwise outcomes: N creatives -> one strength each -> a total order.

Each comparison contributes the probability that one creative beats the other (both orders
already averaged), so a confident comparison counts more than a coin flip. A weak prior (every
creative wins and loses `prior` games against a virtual opponent of strength 1) keeps the fit
finite when one creative wins everything and makes it well defined for any comparison graph.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np


def bradley_terry(
    wins: Sequence[Sequence[float]] | np.ndarray,
    prior: float = 0.5,
    max_iter: int = 10_000,
    tol: float = 1e-10,
) -> np.ndarray:
    """Log-strengths (mean 0) from a matrix of (fractional) wins, `wins[i][j]` = i's wins over j.

    Uses Hunter's MM algorithm (each step cannot decrease the likelihood), which needs no step
    size and no scipy.
    """
    w = np.asarray(wins, dtype=float)
    n = w.shape[0]
    if w.shape != (n, n):
        raise ValueError(f"wins must be a square matrix, got shape {w.shape}")
    if n == 0:
        return np.zeros(0)
    if prior <= 0:
        raise ValueError("prior must be > 0 (it keeps the fit finite)")
    np.fill_diagonal(w, 0.0)
    games = w + w.T
    won = w.sum(axis=1) + prior
    p = np.ones(n)
    for _ in range(max_iter):
        denom = (games / (p[:, None] + p[None, :])).sum(axis=1) + 2 * prior / (p + 1.0)
        new = won / denom
        if np.max(np.abs(np.log(new) - np.log(p))) < tol:
            p = new
            break
        p = new
    scores = np.log(p)
    return scores - scores.mean()


def total_order(scores: Sequence[float], tiebreak: Sequence[float] | None = None) -> list[int]:
    """Indices from best to worst; ties go to the higher tiebreak, then to the earlier index."""
    tb = list(tiebreak) if tiebreak is not None else [0.0] * len(scores)

    def key(i: int) -> tuple[float, float, int]:
        s = scores[i]
        return (-round(float(s), 9) if math.isfinite(s) else math.inf, -tb[i], i)

    return sorted(range(len(scores)), key=key)
