"""Pair-selection metrics shared by training-time validation and the evaluation stage.

A record is one pair seen in one order: the label in that order, the parsed winner, whether the
text was well-formed, and P(A). Records of the same pair in both orders give swap agreement.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from creative4u.protocol import flip_comparison, flip_letter


def wilson_interval(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """95 % Wilson score interval of a proportion (well-behaved near 0 and 1)."""
    if n == 0:
        return (0.0, 1.0)
    p = k / n
    den = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / den
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / den
    return (max(0.0, centre - half), min(1.0, centre + half))


def per_order_records(pairs: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Selection records (one per pair, with its `orders`, `label` and optional
    `truth_dimensions` in the A-first labels) -> one record per order in that order's labels:
    the diagnostics (first-slot rate, swap agreement, faithfulness) are per order."""
    out = []
    for i, r in enumerate(pairs):
        truth = r.get("truth_dimensions")
        for o in r["orders"]:
            sw = o["swapped"]
            out.append(
                {
                    **o,
                    "pair": r.get("pair", i),
                    "label": flip_letter(r["label"]) if sw else r["label"],
                    "truth_dimensions": (
                        {d: flip_comparison(v) for d, v in truth.items()} if sw else truth
                    )
                    if truth
                    else None,
                }
            )
    return out


def selection_summary(pairs: Sequence[dict[str, Any]], calibration: Any = None) -> dict[str, Any]:
    """The served decision's accuracy (one per pair, both orders combined) and calibration error,
    then the per-order diagnostics under `per_order_*` and the usual order-level names."""
    from creative4u.calibration import calibrated

    n = len(pairs)
    if n == 0:
        return {"n": 0}
    correct = [r["winner"] == r["label"] for r in pairs]
    k = sum(correct)
    orders = per_order_records(pairs)
    diag = summarise(orders)
    raw = [calibrated(r["p_a"], r["decided_by"], None)[1] for r in pairs]
    cal = [calibrated(r["p_a"], r["decided_by"], calibration)[1] for r in pairs]
    before, after = reliability(raw, correct), reliability(cal, correct)
    return {
        "n": n,
        "accuracy": k / n,
        "accuracy_ci": list(wilson_interval(k, n)),
        "well_formed_rate": diag["well_formed_rate"],
        "first_slot_rate": diag["first_slot_rate"],
        "swap_agreement": diag["swap_agreement"],
        "per_order_accuracy": diag["accuracy"],
        "per_order_accuracy_ci": diag["accuracy_ci"],
        "n_answers": diag["n"],
        "decided_by": {d: sum(r["decided_by"] == d for r in pairs) for d in DECIDERS},
        "calibrated": calibration is not None,
        "ece": after["ece"],
        "reliability": after["bins"],
        "ece_uncalibrated": before["ece"],
        "reliability_uncalibrated": before["bins"],
        "mean_confidence": sum(cal) / n,
    }


DECIDERS = ("answer_probabilities", "probe_probabilities", "answers", "default")


def summarise(records: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """accuracy (+ 95 % interval), well-formed rate, first-slot rate, order-swap agreement."""
    n = len(records)
    if n == 0:
        return {"n": 0}
    correct = sum(r["winner"] == r["label"] for r in records)
    answered = [r for r in records if r["winner"] in ("A", "B")]
    first = sum(r["winner"] == "A" for r in answered)
    by_pair: dict[Any, dict[bool, str | None]] = {}
    for r in records:
        by_pair.setdefault(r["pair"], {})[r["swapped"]] = r["winner"]
    both = [v for v in by_pair.values() if False in v and True in v]
    agree = sum(
        v[False] in ("A", "B") and v[True] in ("A", "B") and v[False] != v[True] for v in both
    )  # the same creative chosen in both orders means opposite letters
    lo, hi = wilson_interval(correct, n)
    return {
        "n": n,
        "accuracy": correct / n,
        "accuracy_ci": [lo, hi],
        "well_formed_rate": sum(bool(r["well_formed"]) for r in records) / n,
        "first_slot_rate": first / len(answered) if answered else None,
        "swap_agreement": agree / len(both) if both else None,
    }


def reliability(
    confidences: Sequence[float], correct: Sequence[bool], bins: int = 10
) -> dict[str, Any]:
    """Expected calibration error and the reliability diagram's bins for the confidence in the
    chosen answer (in [0.5, 1] for a two-way choice)."""
    pairs = [(c, k) for c, k in zip(confidences, correct, strict=True) if c is not None]
    if not pairs:
        return {"ece": None, "bins": []}
    edges = [0.5 + 0.5 * i / bins for i in range(bins + 1)]
    out, ece, n = [], 0.0, len(pairs)
    for lo, hi in zip(edges[:-1], edges[1:], strict=True):
        inside = [(c, k) for c, k in pairs if lo <= c < hi or (hi == 1.0 and c == 1.0)]
        if not inside:
            continue
        conf = sum(c for c, _ in inside) / len(inside)
        acc = sum(k for _, k in inside) / len(inside)
        ece += len(inside) / n * abs(conf - acc)
        out.append({"lo": lo, "hi": hi, "n": len(inside), "confidence": conf, "accuracy": acc})
    return {"ece": ece, "bins": out}


def grouped_accuracy(records: Sequence[dict[str, Any]], key: str) -> dict[str, dict[str, float]]:
    """Accuracy (and count) per value of `key` in the records."""
    groups: dict[str, list[bool]] = {}
    for r in records:
        groups.setdefault(str(r.get(key)), []).append(r["winner"] == r["label"])
    return {k: {"n": len(v), "accuracy": sum(v) / len(v)} for k, v in sorted(groups.items())}


def faithfulness(records: Sequence[dict[str, Any]]) -> dict[str, Any] | None:
    """Per-dimension agreement of the model's Q3-Q9 verdicts with the true comparisons, over
    well-formed answers to pairs that carry truth (both in the order shown)."""
    per_dim: dict[str, list[bool]] = {}
    for r in records:
        truth, dims = r.get("truth_dimensions"), r.get("dimensions")
        if not truth or not dims or not r["well_formed"]:
            continue
        for d, verdict in dims.items():
            if d in truth:
                per_dim.setdefault(d, []).append(verdict == truth[d])
    if not per_dim:
        return None
    allv = [x for v in per_dim.values() for x in v]
    return {
        "overall": sum(allv) / len(allv),
        "per_dimension": {d: sum(v) / len(v) for d, v in sorted(per_dim.items())},
    }


def paired_difference(
    a: Sequence[dict[str, Any]], b: Sequence[dict[str, Any]], z: float = 1.96
) -> dict[str, float]:
    """Accuracy of `a` minus accuracy of `b` on the same answers, with a 95 % interval that
    treats each pair as one unit: a selection record (both orders decided together) or the two
    per-order records of a pair, which are not independent."""
    per_pair: dict[Any, list[float]] = {}
    for ra, rb in zip(a, b, strict=True):
        if (ra["pair"], ra.get("swapped")) != (rb["pair"], rb.get("swapped")):
            raise ValueError("paired_difference needs the same answers in the same order")
        per_pair.setdefault(ra["pair"], []).append(
            float(ra["winner"] == ra["label"]) - float(rb["winner"] == rb["label"])
        )
    d = [sum(v) / len(v) for v in per_pair.values()]
    n = len(d)
    mean = sum(d) / n
    var = sum((x - mean) ** 2 for x in d) / (n - 1) if n > 1 else 0.0
    half = z * math.sqrt(var / n)
    return {"difference": mean, "ci_low": mean - half, "ci_high": mean + half, "n_pairs": n}
