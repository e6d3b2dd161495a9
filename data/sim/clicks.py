"""The hidden click model and the click-log sampler.

For a creative c shown for query q in context x:

    logit CTR(c, q, x) = base + sum_d w_d * score_d(c, q)       design and user interest
                         - position_decay * (position - 1)        slot
                         + hour, weekday and audience effects     context
                         + young_style_boost [age 18-24, style cute|sporty]   creative x audience
                         + e_c + e_{c,x}                          what no image shows

The true CTR of (c, q) is that CTR averaged over a fixed sample of contexts (the same for every
creative); the log is sampled cell by cell from the same context distribution, impressions from
a lognormal, clicks from a binomial.

The product category enters in one place only: the people dimension (Q6) scores a person wearing
or holding the product 1.0 in apparel, shoes, bags and beauty and 0.3 elsewhere (a prop 0.5
everywhere, `world.dimension_scores`). So a category prior (HCCM's category tensor in M2FN) can
find that interaction, a person being worth more in four categories, and nothing else: there is
no per-category base rate and no category effect on colour, text, layout, subject or background.
"""

from __future__ import annotations

import math

import numpy as np

from data.sim.config import SimConfig

GENDERS = ("female", "male")
AGES = ("18-24", "25-34", "35-49", "50+")
HOUR_EFFECT = {h: 0.15 * math.sin((h - 14) / 24 * 2 * math.pi) for h in range(24)}
WEEKDAY_EFFECT = {d: (0.08 if d >= 5 else 0.0) for d in range(7)}
AGE_EFFECT = {"18-24": 0.1, "25-34": 0.05, "35-49": 0.0, "50+": -0.1}


def sample_contexts(n: int, rng: np.random.Generator) -> list[dict]:
    return [
        {
            "gender": GENDERS[int(rng.integers(2))],
            "age": AGES[int(rng.integers(4))],
            "month": int(rng.integers(1, 13)),
            "weekday": int(rng.integers(7)),
            "hour": int(rng.integers(24)),
            "position": int(rng.integers(1, 6)),
        }
        for _ in range(n)
    ]


def design_logit(scores: dict[str, float], cfg: SimConfig) -> float:
    return cfg.base_logit + sum(cfg.weights[d] * scores[d] for d in cfg.weights)


def context_logit(ctx: dict, style: str, cfg: SimConfig) -> float:
    young = cfg.young_style_boost if ctx["age"] == "18-24" and style in ("cute", "sporty") else 0.0
    return (
        -cfg.position_decay * (ctx["position"] - 1)
        + HOUR_EFFECT[ctx["hour"]]
        + WEEKDAY_EFFECT[ctx["weekday"]]
        + AGE_EFFECT[ctx["age"]]
        + young
    )


def sigmoid(x: float | np.ndarray) -> float | np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def true_ctr(logit: float, style: str, contexts: list[dict], cfg: SimConfig) -> float:
    """Expected CTR over the fixed context sample (the cell noise averages out in expectation,
    so it is left out here)."""
    offs = np.array([context_logit(x, style, cfg) for x in contexts])
    return float(sigmoid(logit + offs).mean())


def sample_cells(
    logit: float, style: str, cfg: SimConfig, rng: np.random.Generator
) -> list[tuple[dict, int, int]]:
    """(context, impressions, clicks) cells of one creative under one query."""
    total = float(
        np.exp(np.log(cfg.impressions_median) + cfg.impressions_spread * rng.standard_normal())
    )
    n = cfg.cells_per_creative_query
    shares = rng.dirichlet(np.full(n, 2.0))
    cells = []
    for ctx, share in zip(sample_contexts(n, rng), shares, strict=True):
        imp = int(rng.poisson(total * share))
        p = float(
            sigmoid(logit + context_logit(ctx, style, cfg) + cfg.cell_noise * rng.standard_normal())
        )
        cells.append((ctx, imp, int(rng.binomial(imp, p)) if imp else 0))
    return cells
