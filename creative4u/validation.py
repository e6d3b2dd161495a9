"""Score a model on CreativePair pairs during training (SFT's report, GRPO's checkpoint choice).

Greedy generation with transformers on the in-memory model, each pair in both orders, metrics
from `creative4u.metrics`: the same numbers the evaluation stage reports, on fewer pairs.
"""

from __future__ import annotations

from typing import Any

from creative4u.generation import PairRequest, TransformersGenerator, generating
from creative4u.metrics import order_records, summarise


def validation_accuracy(
    model: Any,
    processor: Any,
    split: Any,
    max_pairs: int = 64,
    max_new_tokens: int = 256,
    batch_size: int = 16,
) -> dict[str, float]:
    import torch

    rows = split.select(range(min(max_pairs, len(split))))
    reqs, labels = [], []
    for row in rows:
        for swap in (False, True):
            a, b = (row["image_b"], row["image_a"]) if swap else (row["image_a"], row["image_b"])
            reqs.append(PairRequest(row["query"], row["title"], a, b))
            labels.append((row["label"], swap))
    with generating(model), torch.inference_mode():
        gens = TransformersGenerator(model, processor, batch_size=batch_size).generate(
            reqs, max_new_tokens=max_new_tokens
        )
    return summarise(order_records(gens, labels))
