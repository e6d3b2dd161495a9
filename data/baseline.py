"""The interpretable-feature baseline: how far do measured features alone get on this dataset?

A logistic regression on feature differences (A minus B), fit on train and measured on test. It
tells the reader of the dataset card what a model has to beat to be worth its pixels, and which
measured features carry the label. Training rows are used in both orders (difference and label
flipped) with no intercept, so the baseline cannot prefer a slot.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from creative4u.features import NUMERIC_FEATURES
from creative4u.metrics import wilson_interval
from data.teachers.features import dimension_scores

PAIR_FEATURES: tuple[str, ...] = (
    *NUMERIC_FEATURES,
    *(f"score_{d}" for d in ("Q3", "Q4", "Q5", "Q6", "Q7", "Q8", "Q9")),
)


def pair_matrix(pairs: pd.DataFrame, features: Mapping[str, Mapping[str, Any]]) -> np.ndarray:
    """Feature differences A - B per pair: raw measurements and the teacher's dimension scores."""
    rows = []
    for r in pairs.itertuples(index=False):
        fa, fb = features[r.image_a], features[r.image_b]
        raw = [float(fa[k]) - float(fb[k]) for k in NUMERIC_FEATURES]
        dims = dimension_scores(fa, fb, r.query, r.title)
        rows.append(raw + [a - b for a, b in dims.values()])
    return np.asarray(rows, dtype=np.float64).reshape(len(rows), len(PAIR_FEATURES))


def feature_baseline(
    pairs: pd.DataFrame, features: Mapping[str, Mapping[str, Any]], seed: int = 0
) -> dict[str, Any] | None:
    """Test accuracy (with a 95 % interval) and the strongest coefficients, or None when train or
    test has no labelled pairs."""
    from sklearn.linear_model import LogisticRegression

    train = pairs[(pairs["split"] == "train") & (pairs["label"] != "")]
    test = pairs[(pairs["split"] == "test") & (pairs["label"] != "")]
    if len(train) < 2 or len(test) == 0:
        return None
    x = pair_matrix(train, features)
    y = (train["label"] == "A").to_numpy().astype(int)
    x2, y2 = np.vstack([x, -x]), np.concatenate([y, 1 - y])
    scale = np.sqrt((x2**2).mean(axis=0))
    scale[scale == 0] = 1.0
    model = LogisticRegression(fit_intercept=False, C=1.0, max_iter=2000, random_state=seed)
    model.fit(x2 / scale, y2)
    xt = pair_matrix(test, features) / scale
    pred = model.predict(xt)
    hits = int((pred == (test["label"] == "A").to_numpy().astype(int)).sum())
    lo, hi = wilson_interval(hits, len(test))
    coef = dict(zip(PAIR_FEATURES, model.coef_[0].tolist(), strict=True))
    top = dict(sorted(coef.items(), key=lambda kv: -abs(kv[1]))[:8])
    return {
        "accuracy": hits / len(test),
        "ci95": [lo, hi],
        "n_test": len(test),
        "n_train": len(train),
        "top_coefficients": top,
    }
