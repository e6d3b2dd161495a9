"""The dataset card's rationale ceiling: what a perfect imitator of the rationales' verdicts scores."""

from __future__ import annotations

import random

import pandas as pd
import pytest

from creative4u.protocol import DIMENSION_IDS, DimensionVerdict, Verdict, render
from data.baseline import rationale_ceiling, verdict_matrix


def _rationale(verdicts: dict[str, str], winner: str) -> str:
    dims = {d: DimensionVerdict(d, v, "reason") for d, v in verdicts.items()}  # type: ignore[arg-type]
    return render(
        Verdict(winner=winner, identical=False, indistinguishable=False, dimensions=dims)  # type: ignore[arg-type]
    )


def _pairs(n: int, informative: bool, seed: int = 0) -> pd.DataFrame:
    """Pairs whose label follows Q3's verdict (informative) or is a coin flip (not)."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        verdicts = {d: rng.choice(["A>B", "A=B", "A<B"]) for d in DIMENSION_IDS}
        verdicts["Q3"] = rng.choice(["A>B", "A<B"])
        if informative:
            label = "A" if verdicts["Q3"] == "A>B" else "B"
        else:
            label = rng.choice("AB")
        split = "train" if i < n * 0.7 else "test"
        rows.append({"label": label, "split": split, "rationale": _rationale(verdicts, label)})
    return pd.DataFrame(rows)


def test_verdict_matrix_reads_signs() -> None:
    text = _rationale({d: "A=B" for d in DIMENSION_IDS} | {"Q3": "A>B", "Q9": "A<B"}, "A")
    m = verdict_matrix([text, "not a rationale"])
    assert m.shape == (2, len(DIMENSION_IDS))
    assert m[0].tolist() == [1.0, 0, 0, 0, 0, 0, -1.0]
    assert m[1].tolist() == [0.0] * len(DIMENSION_IDS)  # unreadable: no evidence, never raises


def test_ceiling_is_high_when_verdicts_decide_the_label() -> None:
    c = rationale_ceiling(_pairs(400, informative=True))
    assert c is not None
    assert c["accuracy"] == pytest.approx(1.0)
    assert c["n_test"] == 120 and c["n_train"] == 280
    # the deciding dimension carries the weight
    assert max(c["coefficients"], key=lambda d: abs(c["coefficients"][d])) == "Q3"


def test_ceiling_is_chance_when_verdicts_say_nothing() -> None:
    c = rationale_ceiling(_pairs(2000, informative=False))
    assert c is not None
    assert 0.4 < c["accuracy"] < 0.6
    assert c["ci95"][0] < 0.5 < c["ci95"][1]


def test_no_ceiling_without_labelled_test_pairs() -> None:
    p = _pairs(50, informative=True)
    assert rationale_ceiling(p[p["split"] == "train"]) is None
