"""CreativeSim's products, queries and creatives, and how good each creative is on each dimension.

Every creative is a random draw of design factors, one group per protocol dimension, drawn
independently so that no dimension is a proxy for another. `dimension_scores` maps the factors
(and, for Q3, the query) to a score in [0, 1] per dimension: that score is what the hidden click
model pays for, and what the "true per-dimension comparison" of a pair is made of.
"""

from __future__ import annotations

import random
from dataclasses import asdict, dataclass

from creative4u.lexicon import BRANDS, CALLS_TO_ACTION, CATEGORIES, COLOURS, SELLING_POINTS
from data.sim.config import SimConfig

# Style treatments a creative can have, and the query word that asks for each.
STYLES: tuple[str, ...] = ("minimalist", "sporty", "cute", "luxury", "vintage")
# Intent cues a creative can carry, and the query word that asks for each.
INTENTS: dict[str, str] = {"sale": "discount burst", "gift": "gift ribbon", "new": "NEW tag"}
LAYOUTS: dict[str, float] = {"plain": 0.4, "bordered": 0.8, "pip": 1.0, "crowded": 0.0}
SIZES: dict[str, float] = {"small": 0.0, "medium": 0.6, "large": 1.0}
# Categories where a person wearing or holding the product helps more than a prop.
PERSON_CATEGORIES = {"apparel", "shoes", "bags", "beauty"}


@dataclass
class Product:
    product_id: str
    category: str
    noun: str
    colour: str  # the title's colour
    brand: str
    title: str
    description: str


@dataclass
class Creative:
    creative_id: str
    product_id: str
    # Q4 (and Q3 for colour queries)
    shown_colour: str
    # Q3 cues
    style: str
    intent: str | None
    # Q5
    selling_point: str | None
    price: str | None
    cta: str | None
    legible: bool
    # Q6
    person: str  # "none" | "prop" | "model"
    # Q7
    layout: str
    # Q8
    size: str
    centred: bool
    cropped: bool
    # Q9
    clash: bool
    clutter: bool
    # render-only randomness
    bg_hue_seed: int

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class Query:
    product_id: str
    kind: str  # "colour" | "style" | "intent"
    word: str
    text: str


def make_products(cfg: SimConfig, rng: random.Random) -> list[Product]:
    products = []
    cats = sorted(CATEGORIES)
    for i in range(cfg.products):
        cat = cats[i % len(cats)]
        noun = rng.choice(CATEGORIES[cat])
        colour = rng.choice(sorted(COLOURS))
        brand = rng.choice(BRANDS)
        title = f"{brand} {colour} {noun}"
        desc = f"{colour} {noun} by {brand}, {cat}"
        products.append(Product(f"p{i:04d}", cat, noun, colour, brand, title, desc))
    return products


def make_creatives(p: Product, cfg: SimConfig, rng: random.Random) -> list[Creative]:
    out = []
    others = [c for c in sorted(COLOURS) if c != p.colour]
    alt = rng.sample(others, 2)  # the product comes in a couple of other colours too
    for k in range(cfg.creatives):
        has_text = rng.random()
        out.append(
            Creative(
                creative_id=f"{p.product_id}_c{k}",
                product_id=p.product_id,
                shown_colour=p.colour if rng.random() < cfg.p_title_colour else rng.choice(alt),
                style=rng.choice(STYLES),
                intent=rng.choice([None, *INTENTS]),
                selling_point=rng.choice(SELLING_POINTS) if rng.random() < 0.5 else None,
                price=f"${rng.randint(9, 199)}" if rng.random() < 0.5 else None,
                cta=rng.choice(CALLS_TO_ACTION) if has_text < 0.5 else None,
                legible=rng.random() < cfg.p_legible,
                person=rng.choice(["none", "prop", "model"]),
                layout=rng.choice(list(LAYOUTS)),
                size=rng.choice(list(SIZES)),
                centred=rng.random() < 0.6,
                cropped=rng.random() < 0.25,
                clash=rng.random() < cfg.p_clash,
                clutter=rng.random() < cfg.p_clutter,
                bg_hue_seed=rng.randrange(1 << 30),
            )
        )
    return out


def make_queries(
    p: Product, creatives: list[Creative], cfg: SimConfig, rng: random.Random
) -> list[Query]:
    """Queries that some but not all of the product's creatives answer, so they discriminate."""
    kinds = ["colour", "style", "intent"]
    queries: list[Query] = []
    used: set[str] = set()
    for i in range(cfg.queries):
        kind = kinds[i % 3]
        if kind == "colour":
            pool = sorted({c.shown_colour for c in creatives} - used)
            word = rng.choice(pool or sorted(set(COLOURS) - used))
            text = f"{word} {p.noun}"
        elif kind == "style":
            pool = sorted({c.style for c in creatives} - used)
            word = rng.choice(pool or sorted(set(STYLES) - used))
            text = f"{word} {p.noun}"
        else:
            pool = sorted({c.intent for c in creatives if c.intent} - used)
            word = rng.choice(pool or sorted(set(INTENTS) - used))
            text = f"{p.noun} {word}" if word != "new" else f"new {p.noun}"
        used.add(word)
        queries.append(Query(p.product_id, kind, word, text))
    return queries


def query_match(c: Creative, q: Query) -> float:
    if q.kind == "colour":
        return 1.0 if c.shown_colour == q.word else 0.0
    if q.kind == "style":
        return 1.0 if c.style == q.word else 0.0
    return 1.0 if c.intent == q.word else 0.0


def dimension_scores(c: Creative, p: Product, q: Query) -> dict[str, float]:
    """Scores in [0, 1] per protocol dimension (higher is better), the click model's inputs."""
    n_text = sum(x is not None for x in (c.selling_point, c.price, c.cta))
    text = (n_text / 3.0) * (1.0 if c.legible else 0.25)
    if c.person == "none":
        person = 0.0
    elif c.person == "prop":
        person = 0.5
    else:
        person = 1.0 if p.category in PERSON_CATEGORIES else 0.3
    subject = SIZES[c.size] * (1.0 if c.centred else 0.75) * (0.4 if c.cropped else 1.0)
    background = (0.0 if c.clash else 0.5) + (0.0 if c.clutter else 0.5)
    return {
        "Q3": query_match(c, q),
        "Q4": 1.0 if c.shown_colour == p.colour else 0.0,
        "Q5": round(text, 4),
        "Q6": person,
        "Q7": LAYOUTS[c.layout],
        "Q8": round(subject, 4),
        "Q9": background,
    }


# Raw design factors, each a number for a creative (and query), used to show that no single
# factor alone predicts the label.
def design_factors(c: Creative, p: Product, q: Query) -> dict[str, float]:
    return {
        # the query-match dimension is made of three factors, each live for its kind of query
        "query_colour_match": query_match(c, q) if q.kind == "colour" else 0.0,
        "query_style_match": query_match(c, q) if q.kind == "style" else 0.0,
        "query_intent_match": query_match(c, q) if q.kind == "intent" else 0.0,
        "title_colour": float(c.shown_colour == p.colour),
        "selling_point": float(c.selling_point is not None),
        "price": float(c.price is not None),
        "cta": float(c.cta is not None),
        "legible": float(c.legible),
        "model": float(c.person == "model"),
        "prop": float(c.person == "prop"),
        "layout_pip": float(c.layout == "pip"),
        "layout_bordered": float(c.layout == "bordered"),
        "layout_crowded": -float(c.layout == "crowded"),
        "subject_size": SIZES[c.size],
        "centred": float(c.centred),
        "complete": float(not c.cropped),
        "harmony": float(not c.clash),
        "uncluttered": float(not c.clutter),
    }
