"""Can the `small` model's vision tower, from random weights, learn CreativeSim's design factors
quickly when trained on them directly (linear heads on its 16 merged tokens, no language model)?

    python experiments/vision_probe.py MODEL CORPUS [--seconds 150] [--lr 1e-3]

Prints held-out accuracy per factor every few hundred steps. A probe, not a stage.
"""

from __future__ import annotations

import argparse
import json
import time

import torch
import torch.nn.functional as F


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("corpus")
    ap.add_argument("--seconds", type=float, default=150)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--batch", type=int, default=64)
    args = ap.parse_args()

    from datasets import load_from_disk
    from transformers import AutoModelForImageTextToText

    from creative4u.perception import FACTORS
    from creative4u.vlm import load_processor

    torch.manual_seed(0)
    model = AutoModelForImageTextToText.from_pretrained(args.model, dtype=torch.float32)
    proc = load_processor(args.model)
    ds = load_from_disk(args.corpus)

    def creatives(split, limit):
        seen, out = set(), []
        for row in split.select(range(min(limit, len(split)))):
            for cid, img, f in zip(
                row["creative_ids"], row["images"], json.loads(row["factors"]), strict=True
            ):
                if cid not in seen:
                    seen.add(cid)
                    out.append((img, f))
        return out

    train, held = creatives(ds["train"], 20000), creatives(ds["heldout"], 1000)
    values = {k: sorted({f[k] for _, f in train + held}) for k in FACTORS}
    print(
        len(train), "train creatives", len(held), "held-out", {k: len(v) for k, v in values.items()}
    )

    def encode(items):
        batch = proc.image_processor(images=[i for i, _ in items], return_tensors="pt")
        y = {k: torch.tensor([values[k].index(f[k]) for _, f in items]) for k in FACTORS}
        return batch["pixel_values"], batch["image_grid_thw"], y

    visual = model.model.visual
    hidden = model.config.text_config.hidden_size
    heads = torch.nn.ModuleDict(
        {k: torch.nn.Linear(16 * hidden, len(v)) for k, v in values.items()}
    )
    params = list(visual.parameters()) + list(heads.parameters())
    opt = torch.optim.AdamW(params, lr=args.lr, weight_decay=0.01)

    def forward(px, grid):
        feats = visual(px, grid_thw=grid).pooler_output  # (n * 16, hidden)
        return feats.reshape(grid.shape[0], -1)

    hpx, hgrid, hy = encode(held[:600])

    def evaluate():
        visual.eval()
        with torch.no_grad():
            z = forward(hpx, hgrid)
            acc = {k: float((heads[k](z).argmax(-1) == hy[k]).float().mean()) for k in FACTORS}
        visual.train()
        return acc

    t0, step = time.time(), 0
    g = torch.Generator().manual_seed(0)
    while time.time() - t0 < args.seconds:
        idx = torch.randint(len(train), (args.batch,), generator=g).tolist()
        px, grid, y = encode([train[i] for i in idx])
        z = forward(px, grid)
        loss = sum(F.cross_entropy(heads[k](z), y[k]) for k in FACTORS)
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        step += 1
        if step % 100 == 0:
            acc = evaluate()
            print(
                f"step {step} ({time.time() - t0:.0f}s, {step * args.batch / (time.time() - t0):.0f} img/s) "
                f"loss {loss.item():.3f} " + " ".join(f"{k}={v:.2f}" for k, v in acc.items()),
                flush=True,
            )


if __name__ == "__main__":
    main()
