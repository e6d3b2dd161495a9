"""The interpretable-feature baseline: how far do measured features alone get on this dataset?

A logistic regression on feature differences (A minus B), fit on train and measured on test. It
tells the reader of the dataset card what a model has to beat to be worth its pixels, and which
measured features carry the label. Training rows are used in both orders (difference and label
flipped) with no intercept, so the baseline cannot prefer a slot.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
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


def fit_pair_logistic(x: np.ndarray, y: np.ndarray, seed: int = 0) -> Any:
    """A logistic regression on pair differences (A minus B) that cannot prefer a slot: every
    training pair in both orders (difference and label flipped), no intercept, features scaled
    to unit RMS. Returns a fitted function from difference rows to P(A wins), with the fitted
    coefficients (on the scaled features) as its `coef` attribute."""
    from sklearn.linear_model import LogisticRegression

    x2, y2 = np.vstack([x, -x]), np.concatenate([y, 1 - y])
    scale = np.sqrt((x2**2).mean(axis=0))
    scale[scale == 0] = 1.0
    model = LogisticRegression(fit_intercept=False, C=1.0, max_iter=2000, random_state=seed)
    model.fit(x2 / scale, y2)

    def p_a(rows: np.ndarray) -> np.ndarray:
        return model.predict_proba(np.asarray(rows, dtype=np.float64) / scale)[:, 1]

    p_a.coef = model.coef_[0]  # type: ignore[attr-defined]
    return p_a


def feature_baseline(
    pairs: pd.DataFrame, features: Mapping[str, Mapping[str, Any]], seed: int = 0
) -> tuple[dict[str, Any] | None, pd.DataFrame]:
    """Test accuracy (with a 95 % interval) and the strongest coefficients, or None when train or
    test has no labelled pairs; and P(A wins) for every labelled validation and test pair
    (`pair_id`, `split`, `p_a`), so that evaluation can score the baseline on exactly the pairs
    it evaluates."""
    empty = pd.DataFrame({"pair_id": [], "split": [], "p_a": []})
    labelled = pairs[pairs["label"] != ""]
    train = labelled[labelled["split"] == "train"]
    test = labelled[labelled["split"] == "test"]
    if len(train) < 2 or len(test) == 0:
        return None, empty
    y = (train["label"] == "A").to_numpy().astype(int)
    p_a = fit_pair_logistic(pair_matrix(train, features), y, seed)
    held = labelled[labelled["split"].isin(["validation", "test"])]
    preds = pd.DataFrame(
        {
            "pair_id": held["pair_id"].to_numpy(),
            "split": held["split"].to_numpy(),
            "p_a": p_a(pair_matrix(held, features)),
        }
    )
    on_test = preds[preds["split"] == "test"]
    coef = dict(zip(PAIR_FEATURES, p_a.coef.tolist(), strict=True))
    top = dict(sorted(coef.items(), key=lambda kv: -abs(kv[1]))[:8])
    summary = _test_summary(on_test["p_a"].to_numpy(), test, len(train))
    summary["top_coefficients"] = top
    return summary, preds


def _test_summary(p_a: np.ndarray, test: pd.DataFrame, n_train: int) -> dict[str, Any]:
    """Accuracy of P(A wins) on the labelled test pairs, with its 95 % interval and the sizes."""
    hits = int(((p_a >= 0.5) == (test["label"].to_numpy() == "A")).sum())
    lo, hi = wilson_interval(hits, len(test))
    return {"accuracy": hits / len(test), "ci95": [lo, hi], "n_test": len(test), "n_train": n_train}


VERDICT_SIGN: dict[str, float] = {"A>B": 1.0, "A=B": 0.0, "A<B": -1.0}


def verdict_matrix(rationales: Sequence[str]) -> np.ndarray:
    """The rationales' Q3-Q9 verdicts as rows of +1 (A>B), 0 (A=B or missing), -1 (A<B)."""
    from creative4u.protocol import DIMENSION_IDS, parse

    rows = []
    for text in rationales:
        v = parse(text)
        rows.append([VERDICT_SIGN.get(v.comparison(d) or "A=B", 0.0) for d in DIMENSION_IDS])
    return np.asarray(rows, dtype=np.float64).reshape(len(rows), len(DIMENSION_IDS))


def rationale_ceiling(pairs: pd.DataFrame, seed: int = 0) -> dict[str, Any] | None:
    """How far a perfect imitator of the rationales can get: a logistic regression on their
    Q3-Q9 verdicts alone, fit on the train labels, measured on test (None without labelled train
    and test pairs).

    A CoT-SFT model learns to write these verdicts and to decide from them, so a teacher whose
    verdicts predict the label at, say, 74 % caps an imitating model near there, however long it
    trains: a target above this figure needs a better teacher, not more SFT."""
    from creative4u.protocol import DIMENSION_IDS

    labelled = pairs[pairs["label"] != ""]
    train = labelled[labelled["split"] == "train"]
    test = labelled[labelled["split"] == "test"]
    if len(train) < 2 or len(test) == 0:
        return None
    y = (train["label"] == "A").to_numpy().astype(int)
    p_a = fit_pair_logistic(verdict_matrix(train["rationale"].tolist()), y, seed)
    summary = _test_summary(p_a(verdict_matrix(test["rationale"].tolist())), test, len(train))
    summary["coefficients"] = dict(zip(DIMENSION_IDS, p_a.coef.round(3).tolist(), strict=True))
    return summary
