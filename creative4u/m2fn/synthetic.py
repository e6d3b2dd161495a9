"""A small synthetic dataset folder in the data stage's layout, for tests and benchmarks.

Creatives are drawn with PIL: a product shape in one of four colours on a plain background, small
or large, with or without a text band. The hidden CTR rewards the shape's colour matching the
colour the query asks for (image x context: only a model that fuses the two sees it), a large
product and a text band (image alone), and a high slot (context alone). The layout is the one
`creative4u data build` writes: images/, impressions.parquet, card.json and a CreativePair
DatasetDict with product-disjoint splits.
"""

from __future__ import annotations

import json
import math
import random
from pathlib import Path
from typing import Any

COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (205, 35, 45),
    "blue": (35, 85, 200),
    "green": (40, 150, 70),
    "yellow": (240, 200, 30),
}
NOUNS = ("mug", "lamp", "bag", "shoe")
CATEGORIES = ("home", "fashion")


def draw(colour: str, large: bool, band: bool, size: int, seed: int) -> Any:
    from PIL import Image, ImageDraw

    rng = random.Random(seed)
    bg = tuple(rng.randint(200, 250) for _ in range(3))
    img = Image.new("RGB", (size, size), bg)
    d = ImageDraw.Draw(img)
    r = size * (0.32 if large else 0.16)
    cx, cy = size / 2 + rng.uniform(-0.08, 0.08) * size, size * 0.45
    d.ellipse([cx - r, cy - r, cx + r, cy + r], fill=COLOURS[colour])
    if band:
        d.rectangle([0, int(size * 0.8), size, size], fill=(20, 20, 20))
        d.text((size * 0.1, size * 0.83), "SALE", fill=(255, 255, 255))
    return img


def true_logit(colour: str, large: bool, band: bool, query_colour: str, position: int) -> float:
    return -3.4 + 1.2 * (colour == query_colour) + 0.4 * large + 0.3 * band - 0.3 * (position - 1)


def make_dataset(
    out: str | Path,
    products: int = 12,
    creatives: int = 4,
    queries: int = 2,
    cells: int = 6,
    image_size: int = 64,
    seed: int = 0,
    pairs: bool = True,
) -> Path:
    """Write the folder and return its path."""
    import numpy as np
    import pandas as pd

    out = Path(out)
    (out / "images").mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    nrng = np.random.default_rng(seed)
    rows: list[dict[str, Any]] = []
    creative_info: dict[str, dict[str, Any]] = {}
    for p in range(products):
        pid = f"p{p:03d}"
        split = (
            ("train", "train", "train", "validation", "test")[p % 5] if products >= 5 else "train"
        )
        noun, cat = NOUNS[p % len(NOUNS)], CATEGORIES[p % len(CATEGORIES)]
        title_colour = rng.choice(sorted(COLOURS))
        title = f"Nova {title_colour} {noun}"
        for k in range(creatives):
            cid = f"{pid}_c{k}"
            colour = sorted(COLOURS)[(p + k) % len(COLOURS)]
            large, band = rng.random() < 0.5, rng.random() < 0.5
            name = f"{cid}.png"
            draw(colour, large, band, image_size, seed * 7919 + p * 31 + k).save(
                out / "images" / name
            )
            creative_info[cid] = {"colour": colour, "large": large, "band": band, "image": name}
            for q in range(queries):
                qc = sorted(COLOURS)[(p + q) % len(COLOURS)]
                query = f"{qc} {noun}"
                for _ in range(cells):
                    ctx = {
                        "gender": rng.choice(["female", "male"]),
                        "age": rng.choice(["18-24", "25-34", "35-49", "50+"]),
                        "month": rng.randint(1, 12),
                        "weekday": rng.randint(0, 6),
                        "hour": rng.randint(0, 23),
                        "position": rng.randint(1, 4),
                    }
                    lg = true_logit(colour, large, band, qc, ctx["position"])
                    imp = int(nrng.integers(300, 1500))
                    clk = int(nrng.binomial(imp, 1 / (1 + math.exp(-lg))))
                    rows.append(
                        {
                            "creative_id": cid,
                            "product_id": pid,
                            "image": name,
                            "query": query,
                            "title": title,
                            "description": f"{title_colour} {noun} by Nova, {cat}",
                            "category": cat,
                            **ctx,
                            "impressions": imp,
                            "clicks": clk,
                            "ctr": clk / imp,
                            "split": split,
                        }
                    )
    df = pd.DataFrame(rows)
    df.to_parquet(out / "impressions.parquet", index=False)
    (out / "card.json").write_text(json.dumps({"images_root": "images", "synthetic": True}))
    if pairs:
        _pairs(df, out)
    return out


def _pairs(df: Any, out: Path) -> None:
    """CreativePair rows: two creatives of a product under one query, labelled by logged CTR."""
    from datasets import Dataset, DatasetDict, Features, Image, Value

    agg = df.groupby(["product_id", "query", "creative_id", "image", "title", "category", "split"])[
        ["clicks", "impressions"]
    ].sum()
    agg = agg.reset_index()
    by_split: dict[str, list[dict[str, Any]]] = {s: [] for s in ("train", "validation", "test")}
    flip = random.Random(1)
    for (pid, query), g in agg.groupby(["product_id", "query"]):
        g = g.to_dict("records")
        for i in range(len(g)):
            for j in range(i + 1, len(g)):
                a, b = (g[i], g[j]) if flip.random() < 0.5 else (g[j], g[i])
                ca, cb = a["clicks"] / a["impressions"], b["clicks"] / b["impressions"]
                by_split[a["split"]].append(
                    {
                        "pair_id": f"{pid}:{query}:{a['creative_id']}:{b['creative_id']}",
                        "product_id": pid,
                        "query": query,
                        "title": a["title"],
                        "category": a["category"],
                        # bytes, not paths: the folder stands alone, as the data stage's does
                        "image_a": {"bytes": (out / "images" / a["image"]).read_bytes()},
                        "image_b": {"bytes": (out / "images" / b["image"]).read_bytes()},
                        "creative_a": a["creative_id"],
                        "creative_b": b["creative_id"],
                        "ctr_a": ca,
                        "ctr_b": cb,
                        "impressions_a": int(a["impressions"]),
                        "impressions_b": int(b["impressions"]),
                        "label": "A" if ca > cb else "B",
                        "label_confidence": 0.9,
                        "rationale": "",
                        "rationale_source": "synthetic",
                    }
                )
    features = Features(
        {
            "pair_id": Value("string"),
            "product_id": Value("string"),
            "query": Value("string"),
            "title": Value("string"),
            "category": Value("string"),
            "image_a": Image(),
            "image_b": Image(),
            "creative_a": Value("string"),
            "creative_b": Value("string"),
            "ctr_a": Value("float64"),
            "ctr_b": Value("float64"),
            "impressions_a": Value("int64"),
            "impressions_b": Value("int64"),
            "label": Value("string"),
            "label_confidence": Value("float64"),
            "rationale": Value("string"),
            "rationale_source": Value("string"),
        }
    )
    dd = DatasetDict({s: Dataset.from_list(r, features=features) for s, r in by_split.items() if r})
    dd.save_to_disk(str(out))
