"""`creative4u data simulate OUT`: build a CreativeSim world (creatives, click log, truth).

Writes OUT/images/*.png, OUT/logs.parquet (the click-log contract), OUT/truth.parquet (true CTR
and per-dimension scores per creative and query, for evaluation only), OUT/world.json (the
parameters and the difficulty numbers) and OUT/README.md. Deterministic under `--seed`.
"""

from __future__ import annotations

import argparse
import json
import random
import time
from pathlib import Path

from creative4u.paths import ensure_writable_dir
from data.sim.config import SimConfig


def add_arguments(p: argparse.ArgumentParser) -> None:
    d = SimConfig()
    p.add_argument("out", help="output folder")
    p.add_argument(
        "--products", type=int, default=d.products, help=f"products (default {d.products})"
    )
    p.add_argument(
        "--creatives",
        type=int,
        default=d.creatives,
        help=f"creatives per product (default {d.creatives})",
    )
    p.add_argument(
        "--queries", type=int, default=d.queries, help=f"queries per product (default {d.queries})"
    )
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument(
        "--image-size",
        type=int,
        default=d.image_size,
        help=f"rendered size in px (default {d.image_size})",
    )
    p.add_argument("--force", action="store_true", help="overwrite a non-empty OUT")


def simulate(cfg: SimConfig, out: str | Path, progress: bool = True, images: bool = True) -> dict:
    """Build the world into `out` and return its difficulty report (`images=False` skips the
    rendering, for tuning the click model)."""
    import numpy as np
    import pandas as pd
    from tqdm import tqdm

    from data.sim.clicks import design_logit, sample_cells, sample_contexts, true_ctr
    from data.sim.render import render
    from data.sim.stats import creative4u_labelled_pairs, world_stats
    from data.sim.world import (
        design_factors,
        dimension_scores,
        make_creatives,
        make_products,
        make_queries,
    )

    out = Path(out)
    (out / "images").mkdir(parents=True, exist_ok=True)
    rng = random.Random(cfg.seed)
    nrng = np.random.default_rng(cfg.seed)
    contexts = sample_contexts(cfg.context_draws, np.random.default_rng(cfg.seed + 1))

    products = make_products(cfg, rng)
    world = []
    for p in products:
        creatives = make_creatives(p, cfg, rng)
        world.append((p, creatives, make_queries(p, creatives, cfg, rng)))

    log_rows, truth_rows, creative_rows = [], [], []
    factor_index: dict[tuple[str, str], dict[str, float]] = {}
    score_index: dict[tuple[str, str], tuple[dict[str, float], float]] = {}
    for p, creatives, queries in tqdm(
        world, desc="rendering and sampling", disable=not progress, unit="product"
    ):
        for c in creatives:
            image_name = f"{c.creative_id}.png"
            if images:
                render(c, p, cfg.image_size).save(out / "images" / image_name, optimize=False)
            creative_rows.append({**c.to_dict(), "category": p.category, "title": p.title})
            hidden = cfg.creative_noise * float(nrng.standard_normal())
            for q in queries:
                scores = dimension_scores(c, p, q)
                logit = design_logit(scores, cfg) + hidden
                factor_index[(c.creative_id, q.text)] = design_factors(c, p, q)
                score_index[(c.creative_id, q.text)] = (scores, design_logit(scores, cfg))
                truth_rows.append(
                    {
                        "creative_id": c.creative_id,
                        "product_id": p.product_id,
                        "query": q.text,
                        "query_kind": q.kind,
                        "true_ctr": true_ctr(logit, c.style, contexts, cfg),
                        **scores,
                    }
                )
                for ctx, imp, clk in sample_cells(logit, c.style, cfg, nrng):
                    log_rows.append(
                        {
                            "creative_id": c.creative_id,
                            "product_id": p.product_id,
                            "image": image_name,
                            "impressions": imp,
                            "clicks": clk,
                            "query": q.text,
                            "title": p.title,
                            "description": p.description,
                            "category": p.category,
                            **ctx,
                        }
                    )

    logs = pd.DataFrame(log_rows)
    truth = pd.DataFrame(truth_rows)
    logs.to_parquet(out / "logs.parquet", index=False)
    truth.to_parquet(out / "truth.parquet", index=False)
    pd.DataFrame(creative_rows).to_parquet(out / "creatives.parquet", index=False)

    agg = logs.groupby(["creative_id", "product_id", "query"], as_index=False)[
        ["impressions", "clicks"]
    ].sum()
    pairs = creative4u_labelled_pairs(agg)
    ctr = {(r.creative_id, r.query): r.true_ctr for r in truth.itertuples()}
    stats = world_stats(
        pairs,
        ctr,
        factors=lambda cid, q: factor_index[(cid, q)],
        dimensions=lambda cid, q: score_index[(cid, q)][0],
        design_logit=lambda cid, q: score_index[(cid, q)][1],
    )
    report = {
        "config": cfg.to_dict(),
        "products": len(products),
        "creatives": len(creative_rows),
        "log_rows": len(logs),
        "impressions": int(logs["impressions"].sum()),
        "clicks": int(logs["clicks"].sum()),
        **stats,
    }
    (out / "world.json").write_text(json.dumps(report, indent=2) + "\n")
    (out / "README.md").write_text(world_card(report))
    return report


def world_card(r: dict) -> str:
    cfg = r["config"]
    lines = [
        "# CreativeSim world",
        "",
        f"{r['products']} products x {cfg['creatives']} creatives, {cfg['queries']} queries per product, "
        f"seed {cfg['seed']}; {r['log_rows']:,} log rows, {r['impressions']:,} impressions, {r['clicks']:,} clicks.",
        "",
        "## Difficulty (Creative4U rule: CTR gap > 60 %, > 1,000 impressions each)",
        "",
        "| measure | value |",
        "|---|---|",
        f"| labelled pairs | {r.get('labelled_pairs', 0)} |",
        f"| oracle accuracy (true CTR vs sampled label) | {r.get('oracle_accuracy', 0):.3f} |",
        f"| design oracle (all design scores, no hidden noise) | {r.get('design_oracle_accuracy', 0):.3f} |",
        f"| best single design factor ({r.get('best_single_factor', '-')}) | {r.get('best_single_factor_accuracy', 0):.3f} |",
        f"| interpretable-feature baseline (logistic regression on design-factor differences, held-out products) | {(r.get('feature_baseline') or {}).get('accuracy', float('nan')):.3f} |",
        f"| winner flips between queries ({r.get('pairs_under_several_queries', 0)} pairs under several queries) | {r.get('query_flip_rate', 0):.3f} |",
        "",
        "## Click model",
        "",
        "logit CTR = base + sum_d w_d * score_d(creative, query) - position_decay * (position - 1) "
        "+ hour/weekday/age effects + young-audience style boost + hidden creative and cell noise.",
        "",
        "| parameter | value |",
        "|---|---|",
    ]
    for k, v in cfg.items():
        lines.append(f"| {k} | {v} |")
    lines += ["", "## Single-factor accuracy", "", "| factor | accuracy |", "|---|---|"]
    for k, v in r.get("factor_accuracy", {}).items():
        lines.append(f"| {k} | {v:.3f} |")
    lines += ["", "## Single-dimension accuracy (one protocol dimension's true score alone)", ""]
    lines += ["| dimension | accuracy |", "|---|---|"]
    for k, v in r.get("dimension_accuracy", {}).items():
        lines.append(f"| {k} | {v:.3f} |")
    return "\n".join(lines) + "\n"


def run(args: argparse.Namespace) -> int:
    out = ensure_writable_dir(args.out, args.force)
    cfg = SimConfig(
        products=args.products,
        creatives=args.creatives,
        queries=args.queries,
        seed=args.seed,
        image_size=args.image_size,
    )
    if not 1 <= cfg.queries <= 9:
        raise ValueError("--queries must be between 1 and 9 (three kinds, three intent words)")
    if cfg.creatives < 2:
        raise ValueError("--creatives must be at least 2 (pairs compare creatives of one product)")
    t0 = time.time()
    r = simulate(cfg, out)
    print(f"world written to {out} in {time.time() - t0:.0f}s")
    print(f"  labelled pairs:                 {r.get('labelled_pairs', 0)}")
    print(f"  oracle accuracy:                {r.get('oracle_accuracy', 0):.3f}")
    print(f"  design oracle accuracy:         {r.get('design_oracle_accuracy', 0):.3f}")
    print(
        f"  best single factor:             {r.get('best_single_factor_accuracy', 0):.3f} ({r.get('best_single_factor', '-')})"
    )
    print(f"  winner flips between queries:   {r.get('query_flip_rate', 0):.3f}")
    if r.get("feature_baseline"):
        print(f"  feature baseline (held out):    {r['feature_baseline']['accuracy']:.3f}")
    return 0
