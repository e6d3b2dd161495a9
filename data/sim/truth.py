"""The simulator's ground truth, as stored in `truth.parquet` and compared per pair.

`truth.parquet` has one row per (creative_id, query): `product_id`, `true_ctr` (the click model's
CTR averaged over the context distribution) and one score column per protocol dimension, `Q3`
... `Q9` (higher is better; `Q3` depends on the query, the others only on the creative). Two
creatives compare on a dimension by their scores; scores within `TIE_EPS` are a tie.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from creative4u.protocol import DIMENSION_IDS

TIE_EPS = 0.05


def compare_dimensions(
    a: Mapping[str, Any], b: Mapping[str, Any], eps: float = TIE_EPS
) -> dict[str, str]:
    """{"Q3": "A>B" | "A=B" | "A<B", ...} from two truth rows (A first)."""
    out = {}
    for d in DIMENSION_IDS:
        diff = float(a[d]) - float(b[d])
        out[d] = "A=B" if abs(diff) < eps else ("A>B" if diff > 0 else "A<B")
    return out


def truth_record(a: Mapping[str, Any], b: Mapping[str, Any]) -> dict[str, Any]:
    """The `truth` column's content for a pair (A first): winner by true CTR and per-dimension verdicts."""
    return {
        "winner": "A" if float(a["true_ctr"]) >= float(b["true_ctr"]) else "B",
        "true_ctr_a": float(a["true_ctr"]),
        "true_ctr_b": float(b["true_ctr"]),
        "dimensions": compare_dimensions(a, b),
    }
