"""How hard a simulated world is: the three numbers every `data simulate` reports.

- oracle accuracy: labelled pairs whose winner by true CTR equals the label sampled from clicks;
- best single design factor: the label predicted from one factor alone (ties count half); the
  same is reported per protocol dimension, and for the design oracle (all design scores, none
  of the hidden noise: the ceiling for a model that only sees the creatives);
- query flips: pairs labelled under several queries whose winner changes between them;
- the interpretable-feature baseline: a logistic regression on design-factor differences, fit on
  half of the products and measured on the other half (what a simple model that sees every factor
  but no interaction between them reaches).
"""

from __future__ import annotations

from collections.abc import Callable

import pandas as pd


def creative4u_labelled_pairs(
    agg: pd.DataFrame, min_impressions: int = 1000, min_gap: float = 0.6
) -> pd.DataFrame:
    """Pairs (same product, same query) that pass the Creative4U rule, winner first.

    `agg` has one row per (creative_id, query) with product_id, impressions, clicks.
    """
    agg = agg.assign(ctr=agg["clicks"] / agg["impressions"].clip(lower=1))
    agg = agg[agg["impressions"] > min_impressions]
    m = agg.merge(agg, on=["product_id", "query"], suffixes=("_a", "_b"))
    m = m[m["creative_id_a"] < m["creative_id_b"]]
    hi = m[["ctr_a", "ctr_b"]].max(axis=1)
    lo = m[["ctr_a", "ctr_b"]].min(axis=1)
    m = m[(lo > 0) & (hi / lo.where(lo > 0) - 1 > min_gap) | ((lo == 0) & (hi > 0))]
    winner_is_a = m["ctr_a"] > m["ctr_b"]
    return pd.DataFrame(
        {
            "product_id": m["product_id"].to_numpy(),
            "query": m["query"].to_numpy(),
            "winner": m["creative_id_a"].where(winner_is_a, m["creative_id_b"]).to_numpy(),
            "loser": m["creative_id_b"].where(winner_is_a, m["creative_id_a"]).to_numpy(),
        }
    )


def single_feature_accuracy(
    pairs: pd.DataFrame, features: Callable[[str, str], dict[str, float]]
) -> dict[str, float]:
    """Accuracy of predicting each label from one feature alone (the creative with the larger
    value wins, or the smaller, whichever suits the feature; ties count half)."""
    n = len(pairs)
    hits: dict[str, float] = {}
    for w, lo, q in pairs[["winner", "loser", "query"]].itertuples(index=False):
        fw, fl = features(w, q), features(lo, q)
        for k in fw:
            hits[k] = hits.get(k, 0.0) + (1.0 if fw[k] > fl[k] else 0.5 if fw[k] == fl[k] else 0.0)
    acc = {k: max(v / n, 1 - v / n) for k, v in hits.items()}
    return dict(sorted(acc.items(), key=lambda kv: -kv[1]))


def factor_baseline_accuracy(
    pairs: pd.DataFrame, factors: Callable[[str, str], dict[str, float]], seed: int = 0
) -> dict[str, float] | None:
    """Held-out accuracy of a logistic regression on factor differences (winner minus loser).

    Products are split in two halves (the model never sees a test product); training rows are used
    in both orders with no intercept, so the baseline cannot prefer a slot. None when a half has
    no pairs.
    """
    import numpy as np

    from data.baseline import fit_pair_logistic

    products = sorted(pairs["product_id"].unique())
    order = np.random.default_rng(seed).permutation(len(products))
    test_products = {products[i] for i in order[: len(products) // 2]}
    is_test = pairs["product_id"].isin(test_products).to_numpy()
    if is_test.all() or not is_test.any():
        return None
    rows = list(pairs[["winner", "loser", "query"]].itertuples(index=False))
    names = list(factors(rows[0][0], rows[0][2]))
    diff = np.asarray(
        [[factors(w, q)[k] - factors(lo, q)[k] for k in names] for w, lo, q in rows], float
    )
    # Present each pair in a random order, as a labelled dataset would.
    sign = np.where(np.random.default_rng(seed + 1).random(len(rows)) < 0.5, 1.0, -1.0)
    x, y = diff * sign[:, None], (sign > 0).astype(int)
    p_a = fit_pair_logistic(x[~is_test], y[~is_test], seed)
    acc = float(((p_a(x[is_test]) >= 0.5) == (y[is_test] == 1)).mean())
    return {"accuracy": acc, "n_test": int(is_test.sum()), "n_train": int((~is_test).sum())}


def world_stats(
    pairs: pd.DataFrame,
    true_ctr: dict[tuple[str, str], float],
    factors: Callable[[str, str], dict[str, float]],
    dimensions: Callable[[str, str], dict[str, float]],
    design_logit: Callable[[str, str], float],
) -> dict:
    """The difficulty numbers for labelled `pairs` (winner, loser, query)."""
    n = len(pairs)
    if n == 0:
        return {"labelled_pairs": 0}
    rows = list(pairs[["winner", "loser", "query"]].itertuples(index=False))
    oracle = sum(true_ctr[(w, q)] > true_ctr[(lo, q)] for w, lo, q in rows)
    design = sum(design_logit(w, q) > design_logit(lo, q) for w, lo, q in rows)
    factor_acc = single_feature_accuracy(pairs, factors)
    best = next(iter(factor_acc))

    key = pairs.apply(lambda r: tuple(sorted((r["winner"], r["loser"]))), axis=1)
    by_pair = pairs.assign(key=key).groupby("key")
    multi = [g for _, g in by_pair if g["query"].nunique() > 1]
    flips = sum(g["winner"].nunique() > 1 for g in multi)
    return {
        "labelled_pairs": n,
        "oracle_accuracy": oracle / n,
        "design_oracle_accuracy": design / n,
        "best_single_factor": best,
        "best_single_factor_accuracy": factor_acc[best],
        "factor_accuracy": factor_acc,
        "dimension_accuracy": single_feature_accuracy(pairs, dimensions),
        "feature_baseline": factor_baseline_accuracy(pairs, factors),
        "pairs_under_several_queries": len(multi),
        "query_flip_rate": (flips / len(multi)) if multi else 0.0,
    }
