"""Score a model on CreativePair pairs during training (SFT's report, GRPO's checkpoint choice).

The model in memory answers through `TransformersEngine` and the same `AsyncSelector` the server
runs, so the accuracy a checkpoint is chosen by is that of the decision users would get (both
orders combined); the per-order figures come with it as diagnostics.
"""

from __future__ import annotations

import asyncio
from typing import Any

from creative4u.metrics import selection_summary


def selection_records(selector: Any, split: Any, chunk: int = 64) -> list[dict[str, Any]]:
    """Each pair of `split` through `selector` (both orders), as selection records with labels."""
    from creative4u.selection import outcome_record

    async def run() -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        for start in range(0, len(split), chunk):
            rows = split.select(range(start, min(start + chunk, len(split))))
            items = selector.pair_items(rows)
            outcomes = await selector.compare_many(items)
            out += [
                {**outcome_record(o), "pair": start + i, "label": r["label"]}
                for i, (o, r) in enumerate(zip(outcomes, rows, strict=True))
            ]
        return out

    return asyncio.run(run())


def model_selector(
    model: Any, processor: Any, max_new_tokens: int = 256, batch_size: int = 16
) -> Any:
    """The selector the server runs, answering with the model being trained (in memory)."""
    from creative4u.engines import TransformersEngine
    from creative4u.selection import AsyncSelector

    return AsyncSelector(
        TransformersEngine(model, processor, batch_size=batch_size),
        default_max_tokens=max_new_tokens,
    )


def validation_accuracy(
    model: Any,
    processor: Any,
    split: Any,
    max_pairs: int = 64,
    max_new_tokens: int = 256,
    batch_size: int = 16,
) -> dict[str, Any]:
    rows = split.select(range(min(max_pairs, len(split))))
    selector = model_selector(model, processor, max_new_tokens, batch_size)
    m = selection_summary(selection_records(selector, rows))
    return {k: v for k, v in m.items() if "reliability" not in k}
