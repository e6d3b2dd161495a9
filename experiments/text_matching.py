"""Does the small base lack word matching? Continued training of a base on text-only lines that
mark each shown value against the wanted one, then the demo's SFT on top (match_marks.sh).

SFT with reasons first and match marks (`experiments/match_marks.patch`) names both creatives'
colours right 96 % of the time, and its verdict follows its marks on every line, but the marks
themselves follow the slot (`A orange no, B orange yes`), not the words: the one step the model
never learns in SFT's budget is whether two words are the same. This script trains exactly that
step on text alone (no image, no click, no label: random words of the perception vocabulary)

    Q3 query match: query wants sporty: A cute no, B sporty yes => A<B
    Q4 title match: title says red: both red yes => A=B

and reports held-out accuracy (teacher-forced) of the marks and verdicts as it goes.

    python experiments/text_matching.py models/small-base runs/exp/base_match --steps 600
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from creative4u.perception import FACTORS  # noqa: E402
from creative4u.vlm import load  # noqa: E402

KINDS = ("colour", "style", "cue")


def line(rng: random.Random) -> tuple[str, list[int]]:
    """A line, and the character offsets where each decision starts (each mark, the verdict)."""
    kind = rng.choice(KINDS)
    values = [v for v in FACTORS[kind] if v != "none"]
    wanted = rng.choice(values)
    others = [v for v in FACTORS[kind] if v != wanted]

    def shown() -> str:
        return wanted if rng.random() < 0.45 else rng.choice(others)

    a, b = shown(), shown()
    if kind == "colour" and rng.random() < 0.5:
        text = f"Q4 title match: title says {wanted}:"
    else:
        text = f"Q3 query match: query wants {wanted}:"
    starts: list[int] = []

    def add(value: str) -> None:
        nonlocal text
        text += f" {value}"
        starts.append(len(text))
        text += f" {'yes' if value == wanted else 'no'}"

    if a == b:
        text += " both"
        add(a)
    else:
        text += " A"
        add(a)
        text += ", B"
        add(b)
    ma, mb = a == wanted, b == wanted
    text += " =>"
    starts.append(len(text))
    text += " " + ("A=B" if ma == mb else ("A>B" if ma else "A<B"))
    return text, starts


def batch(tok, rng: random.Random, n: int):
    lines = [line(rng) for _ in range(n)]
    enc = tok([t for t, _ in lines], return_tensors="pt", padding=True, return_offsets_mapping=True)
    offsets = enc.pop("offset_mapping")
    labels = enc["input_ids"].clone()
    labels[enc["attention_mask"] == 0] = -100
    decisions = []  # per line: the token indices that begin a decision
    for i, (_, starts) in enumerate(lines):
        spans = offsets[i].tolist()
        decisions.append([next(j for j, (s, e) in enumerate(spans) if e > c) for c in starts])
    return enc, labels, decisions


@torch.no_grad()
def heldout(model, tok, seed: int = 12345, n: int = 512) -> dict[str, float]:
    """Greedy next-token accuracy, teacher-forced, on held-out lines: every mark's first token
    right, and the verdict's tokens right."""
    rng = random.Random(seed)
    marks_ok = verdict_ok = 0
    for _ in range(n // 64):
        enc, _, decisions = batch(tok, rng, 64)
        pred = model(**enc).logits.argmax(-1)
        ids, mask = enc["input_ids"], enc["attention_mask"]
        for i, starts in enumerate(decisions):
            marks_ok += all(pred[i, j - 1] == ids[i, j] for j in starts[:-1])
            last = int(mask[i].sum())
            verdict_ok += all(pred[i, j - 1] == ids[i, j] for j in range(starts[-1], last))
    total = (n // 64) * 64
    return {"marks": marks_ok / total, "verdict": verdict_ok / total}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("base")
    ap.add_argument("out")
    ap.add_argument("--steps", type=int, default=600)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--lr", type=float, default=3e-4)
    ap.add_argument("--eval-every", type=int, default=100)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    torch.manual_seed(args.seed)
    model, processor = load(args.base, dtype=torch.float32)
    tok = processor.tokenizer
    tok.padding_side = "right"
    for name, p in model.named_parameters():
        p.requires_grad = "visual" not in name
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=args.lr, weight_decay=0.0)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / 50) * max(0.0, 1 - s / args.steps)
    )
    rng = random.Random(args.seed)
    model.eval()
    curve = [{"step": 0, **heldout(model, tok), "seconds": 0.0}]
    print(json.dumps(curve[-1]), flush=True)
    start = time.time()
    for step in range(1, args.steps + 1):
        model.train()
        enc, labels, _ = batch(tok, rng, args.batch)
        loss = model(**enc, labels=labels).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        sched.step()
        opt.zero_grad()
        if step % args.eval_every == 0 or step == args.steps:
            model.eval()
            point = {
                "step": step,
                "loss": round(loss.item(), 4),
                **heldout(model, tok),
                "seconds": round(time.time() - start, 1),
            }
            curve.append(point)
            print(json.dumps(point), flush=True)
    out = Path(args.out)
    model.save_pretrained(out)
    tok.padding_side = "left"
    processor.save_pretrained(out)
    (out / "text_matching.json").write_text(
        json.dumps({"base": args.base, **vars(args), "curve": curve}, indent=1) + "\n"
    )


if __name__ == "__main__":
    main()
