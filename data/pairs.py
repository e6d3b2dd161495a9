"""Pairs of creatives: mined per product and query, labelled, split by product, ordered A/B.

Splits are by product so that no product in validation or test was seen in training (a model
must judge creatives of products it never saw). The A/B order is set after a seeded shuffle by
alternating which slot holds the winner, so every split is exactly balanced: a model that always
answers "A" scores 50 %, never more.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from creative4u.schema import SPLITS
from data.labelling import LabelRule, apply_rule

UNLABELLED = "unlabelled"


def split_products(
    products: list[str], val_frac: float, test_frac: float, seed: int
) -> dict[str, str]:
    """Product -> split, product-disjoint and seeded; every split gets at least one product when
    there are enough products and its fraction is positive."""
    if not (0 <= val_frac < 1 and 0 <= test_frac < 1 and val_frac + test_frac < 1):
        raise ValueError(
            f"--val-frac {val_frac} and --test-frac {test_frac} must be in [0, 1) and sum below 1"
        )
    order = sorted(set(products))
    rng = np.random.default_rng(seed)
    rng.shuffle(order)
    n = len(order)

    def size(frac: float) -> int:
        k = int(round(frac * n))
        return max(k, 1) if frac > 0 and n >= 3 else k

    n_test, n_val = size(test_frac), size(val_frac)
    out = {}
    for i, p in enumerate(order):
        out[p] = "test" if i < n_test else "validation" if i < n_test + n_val else "train"
    return out


def mine_pairs(cq: pd.DataFrame) -> pd.DataFrame:
    """Every unordered pair of distinct creatives of one product under one query, both shown.

    `cq` has one row per (product_id, query, creative_id). Columns of the result carry suffixes
    `_1` / `_2` with creative_1 < creative_2 (a canonical order, before any A/B assignment).
    """
    shown = cq[cq["impressions"] > 0]
    keys = ["product_id", "query", *(c for c in ("title", "category") if c in cq.columns)]
    m = shown.merge(shown, on=keys, suffixes=("_1", "_2"))
    m = m[m["creative_id_1"] < m["creative_id_2"]]
    return m.sort_values(["product_id", "query", "creative_id_1", "creative_id_2"]).reset_index(
        drop=True
    )


def label_pairs(pairs: pd.DataFrame, rule: LabelRule) -> pd.DataFrame:
    """Add `labelled`, `winner_is_1` and `p_1_gt_2` (posterior P(CTR_1 > CTR_2))."""
    labelled, first_wins, p = apply_rule(
        rule,
        pairs["clicks_1"].to_numpy(),
        pairs["impressions_1"].to_numpy(),
        pairs["clicks_2"].to_numpy(),
        pairs["impressions_2"].to_numpy(),
    )
    return pairs.assign(labelled=labelled, winner_is_1=first_wins, p_1_gt_2=p)


def _orient(df: pd.DataFrame, a_is_1: np.ndarray) -> pd.DataFrame:
    """Columns `*_a` / `*_b` from `*_1` / `*_2`, taking slot 1 as A where `a_is_1`."""
    out = pd.DataFrame(index=df.index)
    for c in ("creative_id", "image", "impressions", "clicks"):
        out[f"{c}_a"] = np.where(a_is_1, df[f"{c}_1"], df[f"{c}_2"])
        out[f"{c}_b"] = np.where(a_is_1, df[f"{c}_2"], df[f"{c}_1"])
    out["p_a_gt_b"] = np.where(a_is_1, df["p_1_gt_2"], 1.0 - df["p_1_gt_2"])
    return out


def assign(
    pairs: pd.DataFrame, splits: dict[str, str], seed: int, keep_unlabelled: bool
) -> pd.DataFrame:
    """The final pair table: split, A/B order, label, label confidence, pair id.

    Labelled pairs go to their product's split, shuffled (seeded) and oriented so that the winner
    alternates between slots: exactly balanced labels per split. Unlabelled pairs (with
    `keep_unlabelled`) are kept for training-split products only, so held-out products stay
    unseen by anything trained on them; their order is a seeded coin flip, their label is "" and
    their `label_confidence` is max(P(A > B), P(B > A)): how sure the posteriors are of either.
    """
    rng = np.random.default_rng(seed + 1)
    parts = []
    for split in SPLITS:
        sel = pairs[pairs["labelled"] & (pairs["product_id"].map(splits) == split)]
        sel = sel.iloc[rng.permutation(len(sel))].reset_index(drop=True)
        winner_in_a = (np.arange(len(sel)) % 2) == 0
        a_is_1 = np.where(winner_in_a, sel["winner_is_1"], ~sel["winner_is_1"].astype(bool))
        o = _orient(sel, a_is_1.astype(bool))
        o["label"] = np.where(winner_in_a, "A", "B")
        o["label_confidence"] = np.where(winner_in_a, o["p_a_gt_b"], 1.0 - o["p_a_gt_b"])
        o["split"] = split
        parts.append(pd.concat([sel[["product_id", "query", "title", *_extra(sel)]], o], axis=1))
    if keep_unlabelled:
        sel = pairs[~pairs["labelled"] & (pairs["product_id"].map(splits) == "train")]
        sel = sel.iloc[rng.permutation(len(sel))].reset_index(drop=True)
        a_is_1 = rng.random(len(sel)) < 0.5
        o = _orient(sel, a_is_1)
        o["label"] = ""
        o["label_confidence"] = np.maximum(o["p_a_gt_b"], 1.0 - o["p_a_gt_b"])
        o["split"] = UNLABELLED
        parts.append(pd.concat([sel[["product_id", "query", "title", *_extra(sel)]], o], axis=1))
    out = pd.concat(parts, ignore_index=True)
    out = out.rename(
        columns={
            "creative_id_a": "creative_a",
            "creative_id_b": "creative_b",
            "impressions_a": "impressions_a",
            "impressions_b": "impressions_b",
        }
    )
    out["ctr_a"] = out["clicks_a"] / out["impressions_a"]
    out["ctr_b"] = out["clicks_b"] / out["impressions_b"]
    out["pair_id"] = (
        out["product_id"] + "|" + out["query"] + "|" + out["creative_a"] + "|" + out["creative_b"]
    )
    return out


def _extra(df: pd.DataFrame) -> list[str]:
    return ["category"] if "category" in df.columns else []
