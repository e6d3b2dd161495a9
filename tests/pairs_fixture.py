"""A small CreativePair dataset for training and evaluation tests, made from a CreativeSim world.

Rationales are written from the simulator's true per-dimension comparisons, so tests of the
trainers do not depend on the rationale teachers (which have their own tests).
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import pandas as pd

from creative4u.protocol import DIMENSION_IDS, DimensionVerdict, Verdict, render
from creative4u.schema import pair_features
from data.sim.config import SimConfig
from data.sim.truth import truth_record
from data.simulate import simulate

WORDS = {"A>B": "A is better", "A=B": "both are alike", "A<B": "B is better"}


def make_pair_dataset(out: Path, products: int = 8, seed: int = 0) -> Path:
    from datasets import Dataset, DatasetDict

    world = out / "world"
    simulate(
        SimConfig(products=products, creatives=4, queries=2, seed=seed, image_size=224),
        world,
        progress=False,
    )
    truth = pd.read_parquet(world / "truth.parquet").set_index(["creative_id", "query"])
    logs = pd.read_parquet(world / "logs.parquet")
    meta = logs.groupby(["creative_id", "query"]).agg(
        product_id=("product_id", "first"),
        title=("title", "first"),
        image=("image", "first"),
        impressions=("impressions", "sum"),
        clicks=("clicks", "sum"),
    )
    rng = random.Random(seed)
    rows: dict[str, list[dict]] = {"train": [], "validation": [], "test": []}
    pids = sorted(meta["product_id"].unique())
    split_of = {
        p: ("train" if i % 4 < 2 else "validation" if i % 4 == 2 else "test")
        for i, p in enumerate(pids)
    }
    for (pid, query), g in meta.reset_index().groupby(["product_id", "query"]):
        recs = g.to_dict("records")
        for i in range(len(recs)):
            for j in range(i + 1, len(recs)):
                a, b = recs[i], recs[j]
                if rng.random() < 0.5:
                    a, b = b, a
                ta, tb = truth.loc[(a["creative_id"], query)], truth.loc[(b["creative_id"], query)]
                tr = truth_record(ta, tb)
                dims = {
                    d: DimensionVerdict(d, tr["dimensions"][d], WORDS[tr["dimensions"][d]])
                    for d in DIMENSION_IDS
                }
                label = tr["winner"]
                rationale = render(
                    Verdict(winner=label, identical=False, indistinguishable=False, dimensions=dims)
                )
                rows[split_of[pid]].append(
                    {
                        "pair_id": f"{pid}|{query}|{a['creative_id']}|{b['creative_id']}",
                        "product_id": pid,
                        "query": query,
                        "title": a["title"],
                        "image_a": str(world / "images" / a["image"]),
                        "image_b": str(world / "images" / b["image"]),
                        "creative_a": a["creative_id"],
                        "creative_b": b["creative_id"],
                        "ctr_a": a["clicks"] / a["impressions"],
                        "ctr_b": b["clicks"] / b["impressions"],
                        "impressions_a": int(a["impressions"]),
                        "impressions_b": int(b["impressions"]),
                        "label": label,
                        "label_confidence": 1.0,
                        "rationale": rationale,
                        "rationale_source": "truth",
                        "truth": json.dumps(tr),
                    }
                )
    columns = list(next(iter(r for r in rows.values() if r))[0])
    feats = pair_features(columns)
    dd = DatasetDict({k: Dataset.from_list(v, features=feats) for k, v in rows.items()})
    path = out / "dataset"
    dd.save_to_disk(str(path))
    return path
