"""Selection metrics on hand-made records."""

from __future__ import annotations

import pytest

from creative4u.metrics import (
    faithfulness,
    grouped_accuracy,
    reliability,
    summarise,
    wilson_interval,
)


def rec(pair: int, swapped: bool, label: str, winner: str | None, **kw) -> dict:
    return {
        "pair": pair,
        "swapped": swapped,
        "label": label,
        "winner": winner,
        "well_formed": winner is not None,
        "p_a": None,
        **kw,
    }


def test_summarise_counts_swap_agreement_and_first_slot() -> None:
    records = [
        rec(0, False, "A", "A"),
        rec(0, True, "B", "B"),  # consistent and right
        rec(1, False, "B", "A"),
        rec(1, True, "A", "A"),  # always A: disagrees with itself
        rec(2, False, "A", None),
        rec(2, True, "B", "B"),  # one unreadable
    ]
    m = summarise(records)
    assert m["accuracy"] == pytest.approx(4 / 6)
    assert m["well_formed_rate"] == pytest.approx(5 / 6)
    assert m["swap_agreement"] == pytest.approx(1 / 3)
    assert m["first_slot_rate"] == pytest.approx(3 / 5)
    lo, hi = m["accuracy_ci"]
    assert lo < 4 / 6 < hi


def test_wilson_interval_bounds() -> None:
    assert wilson_interval(0, 0) == (0.0, 1.0)
    lo, hi = wilson_interval(50, 100)
    assert lo == pytest.approx(0.404, abs=1e-3) and hi == pytest.approx(0.596, abs=1e-3)
    assert wilson_interval(10, 10)[1] == 1.0


def test_reliability_perfect_and_overconfident() -> None:
    perfect = reliability([0.75] * 4, [True, True, True, False])
    assert perfect["ece"] == pytest.approx(0.0)
    over = reliability([1.0] * 4, [True, False, True, False])
    assert over["ece"] == pytest.approx(0.5)
    assert reliability([None, None], [True, False])["ece"] is None


def test_faithfulness_and_groups() -> None:
    records = [
        rec(
            0,
            False,
            "A",
            "A",
            truth_dimensions={"Q3": "A>B", "Q4": "A=B"},
            dimensions={"Q3": "A>B", "Q4": "A<B"},
            category="shoes",
        ),
        rec(
            1,
            False,
            "B",
            "A",
            truth_dimensions={"Q3": "A<B"},
            dimensions={"Q3": "A<B"},
            category="bags",
        ),
        rec(2, False, "B", None, truth_dimensions={"Q3": "A<B"}, dimensions={}, category="bags"),
    ]
    f = faithfulness(records)
    assert f["overall"] == pytest.approx(2 / 3)
    assert f["per_dimension"] == {"Q3": 1.0, "Q4": 0.0}
    assert faithfulness([rec(0, False, "A", "A")]) is None
    g = grouped_accuracy(records, "category")
    assert g["shoes"] == {"n": 1, "accuracy": 1.0} and g["bags"]["accuracy"] == 0.0


def test_paired_difference() -> None:
    from creative4u.metrics import paired_difference

    a = [
        rec(i, s, "A" if not s else "B", "A" if not s else "B")
        for i in range(10)
        for s in (False, True)
    ]
    b = [
        rec(i, s, "A" if not s else "B", "A") for i in range(10) for s in (False, True)
    ]  # always A
    d = paired_difference(a, b)
    assert d["difference"] == pytest.approx(0.5) and d["n_pairs"] == 10
    assert d["ci_low"] == pytest.approx(0.5) and d["ci_high"] == pytest.approx(
        0.5
    )  # every pair differs the same way
    same = paired_difference(a, a)
    assert same["difference"] == 0.0
    with pytest.raises(ValueError, match="same answers"):
        paired_difference(a, list(reversed(b)))


def test_paired_difference_counts_each_selection_once() -> None:
    """Selection records (one per pair, both orders decided together) are paired by pair."""
    from creative4u.metrics import paired_difference

    labels = ["A", "B", "A", "B"]
    a = [{"pair": i, "winner": lab, "label": lab} for i, lab in enumerate(labels)]
    b = [{"pair": i, "winner": "A", "label": lab} for i, lab in enumerate(labels)]
    d = paired_difference(a, b)
    assert d["n_pairs"] == 4 and d["difference"] == pytest.approx(0.5)
    assert d["ci_low"] < 0.5 < d["ci_high"]
    with pytest.raises(ValueError):
        paired_difference(a, list(reversed(b)))
