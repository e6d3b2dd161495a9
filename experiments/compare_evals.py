"""Test reports of several runs on the same pairs, side by side, each against the first with a
paired interval (served decision and one order alone).

    python experiments/compare_evals.py NAME=EVAL_DIR NAME=EVAL_DIR ... [--out results.json]

Each EVAL_DIR is what `creative4u eval --out` wrote (metrics.json, records.jsonl).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from creative4u.metrics import paired_difference, per_order_records  # noqa: E402

FIELDS = ("accuracy", "per_order_accuracy", "swap_agreement", "first_slot_rate")


def load(path: Path) -> tuple[dict, list[dict]]:
    metrics = json.loads((path / "metrics.json").read_text())
    records = [json.loads(line) for line in (path / "records.jsonl").read_text().splitlines()]
    return metrics, records


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("runs", nargs="+", help="NAME=EVAL_DIR, the first is the reference")
    ap.add_argument("--out")
    args = ap.parse_args()
    runs = dict(item.split("=", 1) for item in args.runs)
    loaded = {name: load(Path(path)) for name, path in runs.items()}
    ref_name, (_, ref) = next(iter(loaded.items()))
    result = {}
    print(f"{'run':<24}" + "".join(f"{f:>20}" for f in FIELDS) + f"{'faithful':>10}")
    for name, (m, rec) in loaded.items():
        row = {f: m.get(f) for f in FIELDS}
        row["accuracy_ci"] = m.get("accuracy_ci")
        row["per_order_accuracy_ci"] = m.get("per_order_accuracy_ci")
        row["faithfulness"] = m.get("faithfulness")
        row["faithfulness_per_dimension"] = m.get("faithfulness_per_dimension")
        row["well_formed_rate"] = m.get("well_formed_rate")
        if name != ref_name:
            row["served_minus_" + ref_name] = paired_difference(rec, ref)
            row["per_order_minus_" + ref_name] = paired_difference(
                per_order_records(rec), per_order_records(ref)
            )
        result[name] = row
        faith = row["faithfulness"]
        print(
            f"{name:<24}"
            + "".join(f"{row[f]:>20.3f}" if row[f] is not None else f"{'-':>20}" for f in FIELDS)
            + (f"{faith:>10.3f}" if isinstance(faith, float) else f"{'-':>10}")
        )
        if row["faithfulness_per_dimension"]:
            per_dim = row["faithfulness_per_dimension"].items()
            print("    faithfulness: " + ", ".join(f"{d} {v:.3f}" for d, v in per_dim))
        for key in ("served_minus_" + ref_name, "per_order_minus_" + ref_name):
            if key in row:
                d = row[key]
                print(
                    f"    {key}: {d['difference']:+.3f} [{d['ci_low']:+.3f}, {d['ci_high']:+.3f}]"
                )
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
