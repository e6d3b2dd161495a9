"""Stage one of pretraining: the vision tower learns the design factors directly.

Measured on the `small` model: trained through the language model (describe and compare tasks),
the model had learnt colour and text after 500 steps of 32 examples but not style, cue, person,
layout or subject size (0.24-0.43); the same tower with one linear head per factor on its merged
tokens reached 0.89-0.99 on those in 300 steps of 64 images. The
language model's gradient reaches the tower too weakly to build features from nothing, so the
tower is trained first on its own, as Qwen2.5-VL's vision encoder was before the VLM stage. The
heads are thrown away; the tower and its merger (whose output is what the language model reads)
are kept.
"""

from __future__ import annotations

import json
import logging
import math
import time
from typing import Any

from creative4u.perception import FACTORS

logger = logging.getLogger("creative4u.pretrain")


def distinct_creatives(split: Any) -> list[tuple[Any, dict[str, str]]]:
    """(image, factors) once per creative of a corpus split."""
    import io

    from datasets import Image, Sequence
    from PIL import Image as PILImage

    # read undecoded: a creative appears in many examples, and is decoded once
    cols = split.select_columns(["creative_ids", "images", "factors"])
    cols = cols.cast_column("images", Sequence(Image(decode=False)))
    seen: dict[str, tuple[bytes, dict[str, str]]] = {}
    for ids, images, factors in zip(
        cols["creative_ids"], cols["images"], cols["factors"], strict=True
    ):
        for cid, img, f in zip(ids, images, json.loads(factors), strict=True):
            if cid not in seen:
                seen[cid] = (img["bytes"], f)
    return [(PILImage.open(io.BytesIO(b)).convert("RGB"), f) for b, f in seen.values()]


def pretrain_vision(
    model: Any,
    processor: Any,
    train_split: Any,
    heldout_split: Any,
    steps: int,
    batch_size: int = 64,
    learning_rate: float = 1e-3,
    seed: int = 0,
) -> dict[str, Any]:
    """Train `model`'s vision tower with linear factor heads for `steps` steps (warm-up, cosine
    decay); return the held-out accuracy per factor, the steps and the seconds."""
    import torch
    import torch.nn.functional as F
    from tqdm.auto import tqdm

    visual = model.model.visual
    train, held = distinct_creatives(train_split), distinct_creatives(heldout_split)
    values = {k: sorted({f[k] for _, f in train + held}) for k in FACTORS}

    def encode(items: list) -> tuple[Any, Any, dict[str, Any]]:
        b = processor.image_processor(images=[img for img, _ in items], return_tensors="pt")
        y = {k: torch.tensor([values[k].index(f[k]) for _, f in items]) for k in FACTORS}
        return b["pixel_values"], b["image_grid_thw"], y

    def features(px: Any, grid: Any) -> Any:
        tokens = visual(px, grid_thw=grid).pooler_output  # merged tokens, language-model width
        return tokens.reshape(grid.shape[0], -1)

    first = encode(train[:1])
    width = features(first[0], first[1]).shape[1]
    heads = torch.nn.ModuleDict({k: torch.nn.Linear(width, len(v)) for k, v in values.items()})
    trainable = [p for p in visual.parameters()]
    was = [p.requires_grad for p in trainable]
    for p in trainable:
        p.requires_grad_(True)
    params = [*trainable, *heads.parameters()]
    opt = torch.optim.AdamW(params, lr=learning_rate, weight_decay=0.01)
    warmup = max(1, steps // 20)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt,
        lambda s: (
            (s + 1) / warmup
            if s < warmup
            else 0.5 * (1 + math.cos(math.pi * (s - warmup) / max(1, steps - warmup)))
        ),
    )
    gen = torch.Generator().manual_seed(seed)
    visual.train()
    t0 = time.time()
    bar = tqdm(range(steps), desc="vision stage", unit="step", mininterval=5.0)
    for _ in bar:
        idx = torch.randint(len(train), (batch_size,), generator=gen).tolist()
        px, grid, y = encode([train[i] for i in idx])
        z = features(px, grid)
        loss = sum(F.cross_entropy(heads[k](z), y[k]) for k in FACTORS)
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        sched.step()
        bar.set_postfix(loss=f"{loss.item():.3f}", refresh=False)
    seconds = time.time() - t0
    for p, w in zip(trainable, was, strict=True):
        p.requires_grad_(w)

    visual.eval()
    right = {k: 0 for k in FACTORS}
    with torch.no_grad():
        for start in range(0, len(held), 128):
            px, grid, y = encode(held[start : start + 128])
            z = features(px, grid)
            for k in FACTORS:
                right[k] += int((heads[k](z).argmax(-1) == y[k]).sum())
    visual.train()
    report = {
        "steps": steps,
        "images_seen": steps * batch_size,
        "train_creatives": len(train),
        "seconds": round(seconds, 1),
        "heldout_creatives": len(held),
        "heldout_accuracy": {k: round(right[k] / max(1, len(held)), 4) for k in FACTORS},
    }
    logger.info("vision stage: %s", json.dumps(report))
    return report
