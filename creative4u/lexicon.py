"""The words of the ad world: product kinds, colours, styles, intents, selling points.

The simulator draws products, queries and in-image text from these lists, and the offline model
factory trains its tokenizer on text made from them, so that a from-scratch model spends few
tokens on the phrases it will actually read and write. Real data brings its own words; a
byte-level tokenizer still encodes anything.
"""

from __future__ import annotations

import random

# (category, [product nouns])
CATEGORIES: dict[str, list[str]] = {
    "apparel": ["dress", "t-shirt", "hoodie", "jacket", "skirt", "sweater"],
    "shoes": ["sneakers", "boots", "sandals", "loafers", "heels"],
    "bags": ["backpack", "handbag", "tote bag", "wallet"],
    "home": ["mug", "lamp", "cushion", "vase", "blanket"],
    "beauty": ["lipstick", "perfume", "face cream", "nail polish"],
    "electronics": ["headphones", "phone case", "speaker", "smartwatch"],
    "sports": ["yoga mat", "water bottle", "dumbbell", "tennis racket"],
}

# colour word -> RGB used to paint the product
COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (205, 35, 45),
    "blue": (35, 85, 200),
    "green": (40, 150, 70),
    "yellow": (240, 200, 30),
    "black": (25, 25, 25),
    "white": (245, 245, 240),
    "pink": (235, 120, 170),
    "orange": (240, 130, 30),
    "purple": (130, 60, 170),
    "brown": (130, 80, 45),
}

STYLES: list[str] = ["vintage", "minimalist", "sporty", "elegant", "cute", "luxury", "casual"]
INTENTS: list[str] = ["cheap", "sale", "gift", "new", "premium", "for kids", "for women", "for men"]
BRANDS: list[str] = ["Nova", "Lumi", "Peak", "Aster", "Kiro", "Vela", "Orbit", "Mira"]

SELLING_POINTS: list[str] = [
    "Free shipping",
    "Waterproof",
    "Best seller",
    "New arrival",
    "Soft and light",
    "Limited edition",
    "2-year warranty",
    "Eco friendly",
]
CALLS_TO_ACTION: list[str] = ["Buy now", "Shop now", "Order today", "Get yours", "Add to cart"]
PROPS: list[str] = ["plant", "coffee cup", "books", "sunglasses", "flowers"]

DIMENSION_WORDS: list[str] = [
    "matches the query",
    "shows the colour",
    "shows the style",
    "the product of the title",
    "readable text",
    "selling point",
    "price badge",
    "call to action",
    "no text",
    "illegible text",
    "a model wears the product",
    "a prop",
    "no model",
    "clean border",
    "picture-in-picture",
    "crowded layout",
    "centred",
    "large",
    "small",
    "cropped",
    "complete",
    "front view",
    "side view",
    "harmonious colours",
    "clashing colours",
    "cluttered background",
    "plain background",
    "both",
    "neither",
    "better",
    "worse",
    "similar",
]


def product_title(rng: random.Random) -> tuple[str, str, str, str]:
    """(category, noun, colour, title) for a random product."""
    category = rng.choice(sorted(CATEGORIES))
    noun = rng.choice(CATEGORIES[category])
    colour = rng.choice(sorted(COLOURS))
    style = rng.choice(STYLES)
    brand = rng.choice(BRANDS)
    return category, noun, colour, f"{brand} {style} {colour} {noun}"


def tokenizer_corpus(n: int = 3000, seed: int = 0) -> list[str]:
    """Ad text for training a tokenizer: queries, titles, in-image text and rationale phrases."""
    rng = random.Random(seed)
    lines: list[str] = []
    for _ in range(n):
        category, noun, colour, title = product_title(rng)
        q_colour = rng.choice(sorted(COLOURS))
        q_style = rng.choice(STYLES)
        intent = rng.choice(INTENTS)
        lines.append(title)
        lines.append(
            rng.choice(
                [
                    f"{q_colour} {noun}",
                    f"{q_style} {noun}",
                    f"{noun} {intent}",
                    f"{q_colour} {q_style} {noun}",
                ]
            )
        )
        lines.append(
            f"{rng.choice(SELLING_POINTS)} {rng.choice(CALLS_TO_ACTION)} ${rng.randint(5, 399)}.{rng.choice(['00', '99', '49'])}"
        )
        a, b = rng.sample(DIMENSION_WORDS, 2)
        lines.append(f"A {a}, B {b} ({category}, {colour}, {rng.choice(PROPS)})")
    return lines
