"""M2FN checkpoints against the features baseline on the same CreativePair test pairs.

For each checkpoint: its pairwise accuracy on the demo's evaluation pairs (the first N of the
fixed shuffle `creative4u eval` uses) and on the whole test split, the features baseline's on the
same pairs, and the paired difference with a bootstrap 95 % interval (pairs resampled together).

    python experiments/m2fn_vs_features.py runs/demo/dataset runs/exp/m2fn_a runs/exp/m2fn_b
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("dataset")
    ap.add_argument("checkpoints", nargs="+")
    ap.add_argument("--eval-pairs", type=int, default=300)
    ap.add_argument("--out", default=None, help="append one JSON line per checkpoint here")
    args = ap.parse_args()

    import pandas as pd

    from creative4u.m2fn import load
    from creative4u.metrics import wilson_interval
    from eval.run import load_split

    fb = pd.read_parquet(
        Path(args.dataset) / "feature_baseline.parquet", columns=["pair_id", "p_a"]
    )
    p_feat = dict(fb.itertuples(index=False))
    sets = {
        f"eval{args.eval_pairs}": load_split(args.dataset, "test", args.eval_pairs),
        "test": load_split(args.dataset, "test", None),
    }
    rng = np.random.default_rng(0)
    for ckpt in args.checkpoints:
        scorer = load(ckpt)
        config = json.loads((Path(ckpt) / "config.json").read_text())
        rec = {"checkpoint": ckpt, "train_seconds": config.get("metrics", {}).get("train_seconds")}
        for name, split in sets.items():
            labels = np.array(split["label"])
            ids = split["pair_id"]
            p_m2fn = scorer.prefer_pairs([split])
            m = np.array([("A" if p_m2fn[i] >= 0.5 else "B") for i in ids]) == labels
            f = np.array([("A" if p_feat[i] >= 0.5 else "B") for i in ids]) == labels
            boot = [
                (m[idx].mean() - f[idx].mean())
                for idx in (rng.integers(0, len(m), len(m)) for _ in range(2000))
            ]
            rec[name] = {
                "n": int(len(m)),
                "m2fn": round(float(m.mean()), 4),
                "m2fn_ci": [round(x, 4) for x in wilson_interval(int(m.sum()), len(m))],
                "features": round(float(f.mean()), 4),
                "difference": round(float(m.mean() - f.mean()), 4),
                "difference_ci": [round(float(x), 4) for x in np.percentile(boot, [2.5, 97.5])],
            }
        print(json.dumps(rec), flush=True)
        if args.out:
            with open(args.out, "a") as fh:
                fh.write(json.dumps(rec) + "\n")


if __name__ == "__main__":
    main()
