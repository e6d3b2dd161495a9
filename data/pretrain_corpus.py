"""`creative4u data pretrain-corpus OUT --model M`: the perception corpus a base model is pretrained on.

CreativeSim worlds whose seeds (and so products) are disjoint from the demo's are drawn and
rendered exactly as `data simulate` renders them, then fitted to the model's pixel bounds as every
later stage fits them. Each example is one of the perception tasks of `creative4u.perception`
(describe one creative; does it show the query's or the title's word; describe two creatives in
the protocol's layout; compare them). Nothing here samples clicks or reads the click model:
`data.sim.clicks` is never imported, and the examples carry design factors only, never CTRs, pair
labels or dimension scores. Which properties users prefer is left to CreativePair.

Writes a `DatasetDict` with `train` (the training worlds) and `heldout` (a world never trained
on), plus `corpus.json` saying what was drawn.
"""

from __future__ import annotations

import argparse
import json
import random
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from creative4u.paths import ensure_writable_dir
from data.sim.scene import visible_factors

# Task mix: two-creative tasks dominate, because the selector's prompt shows two creatives.
DEFAULT_MIX = {
    "describe_one": 0.15,
    "query_one": 0.1,
    "title_one": 0.1,
    "describe_two": 0.3,
    "compare_two": 0.35,
}


@dataclass
class CorpusConfig:
    train_seeds: list[int] = field(default_factory=lambda: [101, 102, 103])
    heldout_seed: int = 201
    products: int = 600  # per training world
    heldout_products: int = 100
    train_examples: int = 100_000
    heldout_examples: int = 1_000
    image_size: int = 448  # rendered size, as `data simulate` renders
    mix: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_MIX))
    seed: int = 0


def _world(seed: int, products: int, image_size: int, bounds: tuple[int, int, int], desc: str):
    """[(product, [(creative id, factors, png bytes)], [query])] of one world, rendered and fitted."""
    from tqdm.auto import tqdm

    from creative4u.images import fit_to_pixels, to_png_bytes
    from data.sim.config import SimConfig
    from data.sim.render import render
    from data.sim.world import make_creatives, make_products, make_queries

    cfg = SimConfig(products=products, seed=seed, image_size=image_size)
    rng = random.Random(seed)
    world = []
    for p in tqdm(make_products(cfg, rng), desc=desc, unit="product", mininterval=2.0):
        creatives = make_creatives(p, cfg, rng)
        queries = make_queries(p, creatives, cfg, rng)
        rendered = [
            (
                f"w{seed}_{c.creative_id}",
                visible_factors(c),
                to_png_bytes(fit_to_pixels(render(c, p, image_size), *bounds)),
            )
            for c in creatives
        ]
        world.append((p, rendered, queries))
    return world


def _examples(world: list, n: int, mix: dict[str, float], seed: int, split: str):
    """`n` examples drawn from `world` by the task mix (a generator, for `Dataset.from_generator`)."""
    from creative4u.perception import FACTORS, messages, target

    rng = random.Random(seed)
    tasks, weights = zip(*sorted(mix.items()), strict=True)
    words = [*FACTORS["colour"], *FACTORS["style"], "sale", "gift", "new"]
    for i in range(n):
        task = rng.choices(tasks, weights)[0]
        p, creatives, queries = world[rng.randrange(len(world))]
        picked = rng.sample(creatives, 2 if task.endswith("_two") else 1)
        q = rng.choice(queries)
        query, query_word = q.text, q.word
        title, title_colour = p.title, p.colour
        if task == "query_one" and rng.random() < 0.3:  # a query the product was not searched by
            query_word = rng.choice(words)
            query = f"{query_word} {p.noun}"
        if task == "title_one" and rng.random() < 0.3:  # another product's title
            title_colour = rng.choice(FACTORS["colour"])
            title = f"{p.brand} {title_colour} {p.noun}"
        factors = [f for _, f, _ in picked]
        yield {
            "example_id": f"{split}-{i:06d}",
            "task": task,
            "prompt": messages(task, query, title),
            "completion": [
                {
                    "role": "assistant",
                    "content": target(task, factors, query, query_word, title, title_colour),
                }
            ],
            "images": [{"bytes": png, "path": None} for _, _, png in picked],
            "creative_ids": [cid for cid, _, _ in picked],
            "factors": json.dumps(factors),
            "query": query,
            "query_word": query_word,
            "title": title,
            "title_colour": title_colour,
        }


def build_corpus(
    out: str | Path, cfg: CorpusConfig, bounds: tuple[int, int, int], progress: bool = True
) -> dict[str, Any]:
    """Render the worlds, draw the examples, save the DatasetDict; returns `corpus.json`'s content."""
    from datasets import Dataset as HFDataset
    from datasets import DatasetDict, Features, Image, Sequence, Value

    if cfg.heldout_seed in cfg.train_seeds:
        raise ValueError(f"held-out seed {cfg.heldout_seed} is also a training seed")
    if not cfg.mix or any(t not in DEFAULT_MIX for t in cfg.mix):
        raise ValueError(f"task mix {cfg.mix} names unknown tasks; known: {', '.join(DEFAULT_MIX)}")
    t0 = time.time()
    out = Path(out)
    train_world = [
        entry
        for s in cfg.train_seeds
        for entry in _world(s, cfg.products, cfg.image_size, bounds, f"rendering world {s}")
    ]
    held_world = _world(
        cfg.heldout_seed, cfg.heldout_products, cfg.image_size, bounds, "rendering held-out world"
    )
    text = Value("string")
    message = [{"role": text, "content": [{"type": text, "text": text}]}]
    features = Features(
        {
            "example_id": text,
            "task": text,
            "prompt": message,
            "completion": [{"role": text, "content": text}],
            "images": Sequence(Image()),
            "creative_ids": Sequence(text),
            "factors": text,
            "query": text,
            "query_word": text,
            "title": text,
            "title_colour": text,
        }
    )

    def split(world: list, n: int, seed: int, name: str) -> HFDataset:
        return HFDataset.from_generator(
            _examples,
            # a tuple: datasets would shard a list-valued argument into one generator per item
            gen_kwargs={"world": tuple(world), "n": n, "mix": cfg.mix, "seed": seed, "split": name},
            features=features,
            keep_in_memory=False,
        )

    ds = DatasetDict(
        {
            "train": split(train_world, cfg.train_examples, cfg.seed, "train"),
            "heldout": split(held_world, cfg.heldout_examples, cfg.seed + 1, "heldout"),
        }
    )
    ds.save_to_disk(str(out))
    info = {
        "config": asdict(cfg),
        "pixel_bounds": list(bounds),
        "creatives": {
            "train": sum(len(c) for _, c, _ in train_world),
            "heldout": sum(len(c) for _, c, _ in held_world),
        },
        "tasks": {name: dict(sorted(Counter(ds[name]["task"]).items())) for name in ds},
        "seconds": round(time.time() - t0, 1),
    }
    (out / "corpus.json").write_text(json.dumps(info, indent=2) + "\n")
    return info


def add_arguments(p: argparse.ArgumentParser) -> None:
    d = CorpusConfig()
    p.add_argument("out", help="output folder")
    p.add_argument(
        "--model", required=True, help="the model whose pixel bounds images are fitted to"
    )
    p.add_argument("--train-seeds", type=int, nargs="+", default=d.train_seeds)
    p.add_argument("--heldout-seed", type=int, default=d.heldout_seed)
    p.add_argument("--products", type=int, default=d.products, help="products per training world")
    p.add_argument("--heldout-products", type=int, default=d.heldout_products)
    p.add_argument("--train-examples", type=int, default=d.train_examples)
    p.add_argument("--heldout-examples", type=int, default=d.heldout_examples)
    p.add_argument("--seed", type=int, default=d.seed, help="seed of the example draw")
    p.add_argument("--force", action="store_true", help="overwrite a non-empty OUT")


def run(args: argparse.Namespace) -> int:
    from creative4u.images import processor_pixel_bounds
    from creative4u.vlm import load_processor

    out = ensure_writable_dir(args.out, args.force)
    cfg = CorpusConfig(
        train_seeds=args.train_seeds,
        heldout_seed=args.heldout_seed,
        products=args.products,
        heldout_products=args.heldout_products,
        train_examples=args.train_examples,
        heldout_examples=args.heldout_examples,
        seed=args.seed,
    )
    info = build_corpus(out, cfg, processor_pixel_bounds(load_processor(args.model)))
    print(
        f"pretraining corpus in {out}: {cfg.train_examples:,} train examples from "
        f"{info['creatives']['train']:,} creatives, {cfg.heldout_examples:,} held-out from "
        f"{info['creatives']['heldout']:,} ({info['seconds']:.0f}s)"
    )
    return 0
