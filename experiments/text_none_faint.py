"""Why `text` stays under 90 % on the shipped base: which values it confuses, and whether the
vision tower's merged tokens (what the language model reads) or the pixels themselves tell a
creative without text from one with faint text.

1. the base's greedy descriptions of the held-out world (describe_one and describe_two), the
   text value it wrote against the true one, counted by pair of values;
2. among the held-out creatives whose text is `none` or `faint`, a logistic regression on the
   tower's merged tokens, trained on the training worlds' creatives (plain and class-balanced);
3. the same question asked of the pixels: a small CNN trained from scratch on the 112 x 112
   images for `--cnn-seconds` (0: skipped), class-weighted.

    python experiments/text_none_faint.py models/small-base runs/pretrain/corpus \
        --out experiments/results/text_none_faint.json
"""

from __future__ import annotations

import argparse
import collections
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def confusion(model, processor, heldout) -> dict[str, int]:
    from creative4u.generation import generate_texts
    from creative4u.perception import _descriptions, _drop_empty_text

    rows = heldout.filter(lambda r: r["task"] in ("describe_one", "describe_two"))
    expected = [c[0]["content"] for c in rows["completion"]]
    generated = generate_texts(
        model,
        processor,
        [_drop_empty_text(p) for p in rows["prompt"]],
        list(rows["images"]),
        max_new_tokens=200,
        batch_size=32,
    )
    counts: collections.Counter = collections.Counter()
    for e, g in zip(expected, generated, strict=True):
        want, got = _descriptions(e), _descriptions(g)
        for side, slots in want.items():
            w, h = slots["text"], got.get(side, {}).get("text")
            counts["right" if w == h else f"{w} -> {h}"] += 1
    return dict(counts.most_common())


def main() -> None:
    import numpy as np
    import torch
    from datasets import load_from_disk
    from sklearn.linear_model import LogisticRegression

    from creative4u.vlm import load
    from pretrain.vision import distinct_creatives

    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("corpus")
    ap.add_argument("--cnn-seconds", type=float, default=300)
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    torch.manual_seed(0)
    model, processor = load(args.model, dtype=torch.float32)
    corpus = load_from_disk(args.corpus)
    report: dict = {
        "model": args.model,
        "confusion": confusion(model, processor, corpus["heldout"]),
    }

    def pick(split):
        return [x for x in distinct_creatives(corpus[split]) if x[1]["text"] in ("none", "faint")]

    train, held = pick("train"), pick("heldout")
    ytr = np.array([f["text"] == "none" for _, f in train])
    yhe = np.array([f["text"] == "none" for _, f in held])
    visual = model.model.visual.eval()

    def tokens(items):
        out = []
        with torch.no_grad():
            for s in range(0, len(items), 128):
                b = processor.image_processor(
                    images=[i for i, _ in items[s : s + 128]], return_tensors="pt"
                )
                z = visual(b["pixel_values"], grid_thw=b["image_grid_thw"]).pooler_output
                out.append(z.reshape(b["image_grid_thw"].shape[0], -1).numpy())
        return np.concatenate(out)

    xtr, xhe = tokens(train), tokens(held)
    report["creatives"] = {
        "train": len(train),
        "heldout": len(held),
        "heldout_none_share": float(yhe.mean()),
    }
    report["tower_probe"] = {}
    for weight in (None, "balanced"):
        pred = LogisticRegression(max_iter=2000, class_weight=weight).fit(xtr, ytr).predict(xhe)
        report["tower_probe"][str(weight)] = {
            "accuracy": float((pred == yhe).mean()),
            "none_recall": float(pred[yhe].mean()),
            "faint_recall": float((~pred[~yhe]).mean()),
        }
    if args.cnn_seconds:
        report["pixel_cnn"] = pixel_cnn(train, held, ytr, yhe, args.cnn_seconds)
    print(json.dumps(report, indent=1))
    if args.out:
        Path(args.out).write_text(json.dumps(report, indent=1) + "\n")


def pixel_cnn(train, held, ytr, yhe, seconds: float) -> list[dict]:
    import numpy as np
    import torch

    def images(items):
        arr = np.stack([np.asarray(i.convert("RGB"), dtype=np.float32) / 255 for i, _ in items])
        return torch.tensor(arr).permute(0, 3, 1, 2)

    xtr, xhe = images(train), images(held)
    ytr_t, yhe_t = torch.tensor(ytr).long(), torch.tensor(yhe).long()
    net = torch.nn.Sequential(
        torch.nn.Conv2d(3, 32, 3, padding=1),
        torch.nn.ReLU(),
        torch.nn.MaxPool2d(2),
        torch.nn.Conv2d(32, 64, 3, padding=1),
        torch.nn.ReLU(),
        torch.nn.MaxPool2d(2),
        torch.nn.Conv2d(64, 64, 3, padding=1),
        torch.nn.ReLU(),
        torch.nn.AdaptiveMaxPool2d(1),
        torch.nn.Flatten(),
        torch.nn.Linear(64, 2),
    )
    opt = torch.optim.Adam(net.parameters(), 2e-3)
    weight = torch.tensor([1.0, float((1 - ytr.mean()) / ytr.mean())])
    curve, t0, step = [], time.time(), 0
    while time.time() - t0 < seconds:
        idx = torch.randint(len(xtr), (64,))
        loss = torch.nn.functional.cross_entropy(net(xtr[idx]), ytr_t[idx], weight=weight)
        opt.zero_grad()
        loss.backward()
        opt.step()
        step += 1
        if step % 50 == 0:
            with torch.no_grad():
                pred = net(xhe).argmax(-1)
            curve.append(
                {
                    "step": step,
                    "seconds": round(time.time() - t0),
                    "accuracy": float((pred == yhe_t).float().mean()),
                    "none_recall": float(pred[yhe_t == 1].float().mean()),
                    "faint_recall": float((pred[yhe_t == 0] == 0).float().mean()),
                }
            )
            print(json.dumps(curve[-1]), flush=True)
    return curve


if __name__ == "__main__":
    main()
