"""Labelling rules: when does a CTR difference between two creatives count as a label?

Two rules, chosen by name:

- `creative4u` (the paper's): both creatives have more than `min_impressions` impressions and the
  relative CTR gap max/min - 1 exceeds `min_gap` (a zero CTR against a positive one is an
  infinite gap);
- `bayes`: P(CTR_A > CTR_B) under independent Beta(1 + clicks, 1 + non-clicks) posteriors reaches
  `threshold` (or stays below 1 - threshold, which makes B the winner). The same impression floor
  applies: with a flat prior, a creative that was hardly shown would otherwise "win" against any
  creative with a low measured CTR.

Both rules give `label_confidence` as the posterior probability that the label is right, so the
two rules' labels can be compared on one scale.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # numpy is imported where it is used: the CLI builds its parser without it
    import numpy as np

RULES: tuple[str, ...] = ("creative4u", "bayes")


@dataclass(frozen=True)
class LabelRule:
    name: str = "creative4u"
    min_impressions: int = 1000
    min_gap: float = 0.6
    threshold: float = 0.95

    def __post_init__(self) -> None:
        if self.name not in RULES:
            raise ValueError(f"unknown labelling rule {self.name!r}; choose one of {RULES}")
        if not 0.5 < self.threshold < 1.0:
            raise ValueError(f"--bayes-threshold must be in (0.5, 1), got {self.threshold}")
        if self.min_gap < 0:
            raise ValueError(f"--min-gap must be >= 0, got {self.min_gap}")
        if self.min_impressions < 0:
            raise ValueError(f"--min-impressions must be >= 0, got {self.min_impressions}")

    def describe(self) -> str:
        if self.name == "creative4u":
            return (
                f"Creative4U rule: relative CTR gap max/min - 1 > {self.min_gap:g} and "
                f"> {self.min_impressions:,} impressions each"
            )
        return (
            f"Bayesian rule: P(CTR_winner > CTR_loser) >= {self.threshold:g} under "
            f"Beta(1 + clicks, 1 + non-clicks) posteriors, > {self.min_impressions:,} impressions each"
        )

    def params(self) -> dict:
        if self.name == "creative4u":
            return {"min_impressions": self.min_impressions, "min_gap": self.min_gap}
        return {"min_impressions": self.min_impressions, "threshold": self.threshold}


@lru_cache(maxsize=1)
def _gauss_legendre(n: int = 96) -> tuple[np.ndarray, np.ndarray]:
    import numpy as np

    return np.polynomial.legendre.leggauss(n)


def prob_greater(
    clicks_a: np.ndarray, imps_a: np.ndarray, clicks_b: np.ndarray, imps_b: np.ndarray
) -> np.ndarray:
    """P(CTR_A > CTR_B) for independent Beta(1 + clicks, 1 + impressions - clicks) posteriors.

    Gauss-Legendre quadrature, vectorised over pairs: integrate over the narrower posterior's
    support the other one's CDF, which is smooth on that scale, so 96 nodes are accurate to well
    below 1e-6 even for posteriors far apart.
    """
    import numpy as np
    from scipy.stats import beta

    nodes, weights = _gauss_legendre()
    a1 = 1.0 + np.asarray(clicks_a, dtype=np.float64)
    b1 = 1.0 + np.asarray(imps_a, dtype=np.float64) - np.asarray(clicks_a, dtype=np.float64)
    a2 = 1.0 + np.asarray(clicks_b, dtype=np.float64)
    b2 = 1.0 + np.asarray(imps_b, dtype=np.float64) - np.asarray(clicks_b, dtype=np.float64)
    if a1.size == 0:
        return np.zeros(0)

    def sd(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        n = a + b
        return np.sqrt(a * b / (n * n * (n + 1)))

    swap = sd(a1, b1) > sd(a2, b2)  # integrate over the narrower one: X = A unless B is narrower
    xa, xb = np.where(swap, a2, a1), np.where(swap, b2, b1)
    ya, yb = np.where(swap, a1, a2), np.where(swap, b1, b2)
    # the narrower posterior's support up to 1e-13 in each tail (quantiles, not standard
    # deviations: a zero-click posterior is exponential-like and its tail is long)
    lo = beta.ppf(1e-13, xa, xb)[:, None]
    hi = beta.isf(1e-13, xa, xb)[:, None]
    x = lo + (hi - lo) * (nodes[None, :] + 1) / 2
    w = (hi - lo) * weights[None, :] / 2
    fx = beta.pdf(x, xa[:, None], xb[:, None])
    fy_cdf = beta.cdf(x, ya[:, None], yb[:, None])
    p_x_gt_y = np.clip((w * fx * fy_cdf).sum(axis=1), 0.0, 1.0)
    # P(A > B) = P(X > Y) when X is A, else 1 - P(X > Y)
    return np.where(swap, 1.0 - p_x_gt_y, p_x_gt_y)


def apply_rule(
    rule: LabelRule,
    clicks_a: np.ndarray,
    imps_a: np.ndarray,
    clicks_b: np.ndarray,
    imps_b: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(labelled, a_wins, p_a_gt_b) per pair: whether the rule labels it, whether A is the winner
    (meaningful only where labelled), and the posterior P(CTR_A > CTR_B)."""
    import numpy as np

    ca, ia = np.asarray(clicks_a, np.float64), np.asarray(imps_a, np.float64)
    cb, ib = np.asarray(clicks_b, np.float64), np.asarray(imps_b, np.float64)
    p = prob_greater(ca, ia, cb, ib)
    enough = (ia > rule.min_impressions) & (ib > rule.min_impressions) & (ia > 0) & (ib > 0)
    if rule.name == "creative4u":
        with np.errstate(divide="ignore", invalid="ignore"):
            ctr_a, ctr_b = ca / ia, cb / ib
        hi, lo = np.maximum(ctr_a, ctr_b), np.minimum(ctr_a, ctr_b)
        with np.errstate(divide="ignore", invalid="ignore"):
            gap = np.where(
                lo > 0, hi / np.where(lo > 0, lo, 1.0) - 1.0, np.where(hi > 0, np.inf, 0.0)
            )
        labelled = enough & (gap > rule.min_gap)
        a_wins = ctr_a > ctr_b
    else:
        labelled = enough & ((p >= rule.threshold) | (p <= 1.0 - rule.threshold))
        a_wins = p >= 0.5
    return labelled, a_wins, p
