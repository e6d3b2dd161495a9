"""How far the served decision could go if the verdicts were right: the dataset's rationale
ceiling (a logistic regression on the train rationales' Q3-Q9 verdicts) applied to a model's own
verdicts in each order, then with one dimension's verdicts replaced by the simulator's truth, then
with all of them. Both orders are averaged, as serving does.

    python experiments/verdict_headroom.py REPORT_DIR DATASET [--out results.json]

REPORT_DIR is what `creative4u eval --out` wrote (its records carry `truth_dimensions`); DATASET the
CreativePair folder whose train rationales fit the rule.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from creative4u.metrics import wilson_interval  # noqa: E402
from creative4u.protocol import DIMENSION_IDS, flip_comparison, parse  # noqa: E402
from data.baseline import VERDICT_SIGN, fit_pair_logistic, verdict_matrix  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("report")
    ap.add_argument("dataset")
    ap.add_argument("--out")
    args = ap.parse_args()
    from datasets import load_from_disk

    train = load_from_disk(args.dataset)["train"]
    rows = [(t, lab) for t, lab in zip(train["rationale"], train["label"], strict=True) if lab]
    rule = fit_pair_logistic(
        verdict_matrix([t for t, _ in rows]), np.array([lab == "A" for _, lab in rows], int), 0
    )
    records = [
        json.loads(x) for x in (Path(args.report) / "records.jsonl").read_text().splitlines()
    ]
    variants = {"own verdicts": set(), **{f"{d} true": {d} for d in DIMENSION_IDS}}
    variants["all true"] = set(DIMENSION_IDS)
    hits = dict.fromkeys(["model's answer", *variants], 0)
    for r in records:
        hits["model's answer"] += r["winner"] == r["label"]
        orders = [(o, parse(o["text"])) for o in r["orders"]]
        for name, true_dims in variants.items():
            p_first = []
            for o, v in orders:
                if not v.well_formed:
                    continue
                signs = []
                for d in DIMENSION_IDS:
                    t = r["truth_dimensions"][d]
                    t = flip_comparison(t) if o["swapped"] else t
                    signs.append(VERDICT_SIGN[t if d in true_dims else v.comparison(d) or "A=B"])
                p = float(rule(np.array([signs]))[0])
                p_first.append(1 - p if o["swapped"] else p)
            winner = "A" if p_first and np.mean(p_first) > 0.5 else "B"
            hits[name] += winner == r["label"]
    n = len(records)
    out = {k: {"accuracy": h / n, "ci95": list(wilson_interval(h, n))} for k, h in hits.items()}
    for k, v in out.items():
        lo, hi = v["ci95"]
        print(f"{k:<16} {v['accuracy']:.3f} [{lo:.3f}, {hi:.3f}]")
    if args.out:
        Path(args.out).write_text(json.dumps({"n_pairs": n, "decisions": out}, indent=2) + "\n")


if __name__ == "__main__":
    main()
