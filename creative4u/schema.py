"""Column contracts shared by the stages: the click log, the impression table, CreativePair.

Kept in the core so that the data stage that writes these tables and the stages that read them
(M2FN, training, evaluation, serving) agree by construction.
"""

from __future__ import annotations

# ---- click log (input): one row per impression cell ---------------------------------------
LOG_REQUIRED: dict[str, str] = {
    "creative_id": "string",
    "product_id": "string",
    "image": "string",  # path relative to the image root
    "impressions": "int",  # >= 0
    "clicks": "int",  # 0 <= clicks <= impressions
}
LOG_CONTEXT: tuple[str, ...] = (
    "query",  # the user-interest signal: a high-frequency search query
    "title",
    "description",
    "category",
    "gender",
    "age",
    "month",
    "weekday",
    "hour",
    "position",
)

# ---- impression table (data build -> M2FN): logs summed per creative x context ------------
# Columns: creative_id, product_id, image, every LOG_CONTEXT column present in the log,
# impressions, clicks, ctr (= clicks / impressions, M2FN's eq. 1), split (train/validation/test,
# the same product-disjoint split as CreativePair).
IMPRESSION_KEYS: tuple[str, ...] = ("creative_id", "product_id", "image", *LOG_CONTEXT)
SPLITS: tuple[str, ...] = ("train", "validation", "test")

# ---- CreativePair (dataset) ----------------------------------------------------------------
PAIR_COLUMNS: tuple[str, ...] = (
    "pair_id",
    "product_id",
    "query",
    "title",
    "image_a",  # datasets.Image
    "image_b",  # datasets.Image
    "creative_a",
    "creative_b",
    "ctr_a",
    "ctr_b",
    "impressions_a",
    "impressions_b",
    "label",  # "A" | "B" ("" in the unlabelled split)
    "label_confidence",  # in [0.5, 1]: P(label is right) under the labelling rule
    "rationale",  # protocol-format text (creative4u.protocol.render)
    "rationale_source",  # "features" | "openai:<model>" | ...
)
# Simulated data also carries `truth`: a JSON string {"winner": "A"|"B", "true_ctr_a": float,
# "true_ctr_b": float, "dimensions": {"Q3": "A>B", ..., "Q9": "A=B"}} (evaluation only), and
# `category` when the log has it.
TRUTH_COLUMN = "truth"


def pair_features(columns: list[str] | tuple[str, ...]):
    """The `datasets.Features` of a CreativePair split with these columns (images as
    `datasets.Image`, counts and rates numeric, everything else text)."""
    from datasets import Features, Image, Value

    kinds = {
        "image_a": Image(),
        "image_b": Image(),
        "ctr_a": Value("float64"),
        "ctr_b": Value("float64"),
        "impressions_a": Value("int64"),
        "impressions_b": Value("int64"),
        "label_confidence": Value("float64"),
    }
    return Features({c: kinds.get(c, Value("string")) for c in columns})
