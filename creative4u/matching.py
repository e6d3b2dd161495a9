"""Word matching on text alone: the one step a from-scratch base cannot take in CoT-SFT's budget.

A base that names both creatives' colours right (96 % of lines) still could not say whether a
named colour is the one the query or the title asks for: after CoT-SFT its marks followed the
slot (`A orange no, B orange yes`), not the words, and its query and title verdicts were no
better than their majority class. Whether two words are the same is what any pretrained language
model knows; a from-scratch one has to be taught it. `train_matching` trains the language model
on lines of random words of the perception vocabulary, each shown value marked against the
wanted one, and the comparison that follows from the marks:

    Q3 query match: query wants sporty: A cute no, B sporty yes => A<B
    Q4 title match: title says red: both red yes => A=B

and, with `forms`, in the perception tasks' own wording too (`title says red; A shows blue; NO`,
`query wants red: A red, B blue - A`): 300 such steps on the shipped base moved its two-creative
query comparison 0.77 -> 0.86 but not its one-creative questions (experiments/README.md).

No image, click, label or dimension score is involved: the words are drawn at random, so it
teaches equality, never which creative users prefer. The small base's pretraining runs it as
its stage three (`match_steps` in recipes/small/pretrain.yaml), so the shipped base knows
equality as a Qwen base does; SFT can run it first for a from-scratch base that has not had it
(its own `match_steps`; the Qwen and small SFT recipes leave it at 0). Measured on the demo's world, the demo's SFT from the shipped base without and with 600 steps
of it first: 67.3 % [61.8, 72.4] and 86.0 % [81.6, 89.5] on 300 test pairs
(experiments/README.md).
"""

from __future__ import annotations

import random
import re
import time
from collections.abc import Callable
from typing import Any

import torch

from creative4u.lexicon import BRANDS, COLOURS, INTENTS, STYLES, product_title
from creative4u.perception import FACTORS, comparison, marked_pair, question, wanted_head
from creative4u.protocol import user_interest_text

KINDS = ("colour", "style", "cue")
# The forms a decision on word equality takes: the protocol's marked comparison (what CoT-SFT
# writes), and the perception tasks' own question and comparison line (what the base answers);
# and one copy: the product the title names, written on the protocol's Q6 line.
FORMS = ("protocol", "question", "comparison", "product")
EVAL_SEED = 12345  # held-out lines: another draw than any training seed uses
_MARK = re.compile(r" (?:yes|no)\b")  # no factor value is `yes` or `no` (`none` is not `no`)


def line(rng: random.Random, form: str = "protocol") -> tuple[str, list[tuple[int, int]]]:
    """A line of `form`, and the character spans of its decisions (each mark, then the verdict;
    the question and the comparison line have the verdict only)."""
    if form not in FORMS:
        raise ValueError(f"unknown word-matching form {form!r}; choose from {', '.join(FORMS)}")
    if form == "product":
        return product_line(rng)
    kind = rng.choice(KINDS)
    wanted = rng.choice([v for v in FACTORS[kind] if v != "none"])
    others = [v for v in FACTORS[kind] if v != wanted]

    def shown() -> str:
        return wanted if rng.random() < 0.45 else rng.choice(others)

    a, b = shown(), shown()
    name = "title" if kind == "colour" and rng.random() < 0.5 else "query"
    head = wanted_head(name, wanted)
    if form == "question":
        text = question(head, wanted, a)
        return text, [(text.rindex(" "), len(text))]
    if form == "comparison":
        text = comparison(head, wanted, a, b)
        return text, [(text.rindex(" "), len(text))]
    head = f"Q4 title match: {head}: " if name == "title" else f"Q3 query match: {head}: "
    ma, mb = a == wanted, b == wanted
    verdict = "A=B" if ma == mb else ("A>B" if ma else "A<B")
    # `both red yes` for equal values: the wording the shipped base's stage three learnt
    text = f"{head}{marked_pair(wanted, a, b, both=True)} => {verdict}"
    # each span starts at the space before its decision (the token that carries it)
    spans = [(m.start(), m.end()) for m in _MARK.finditer(text, len(head))]
    spans.append((len(text) - len(verdict) - 1, len(text)))
    return text, spans


def product_line(rng: random.Random) -> tuple[str, list[tuple[int, int]]]:
    """The user's interest as the protocol's prompt writes it, then the Q6 line up to the
    product the title names (`Q6 models and props: water bottle`), its span the
    decision: copying a noun from the prompt, which a CoT-SFT policy of the shipped base did on 9 %
    of its Q6 lines (experiments/README.md). What the product suits is not written: which of a
    person or a prop users prefer comes from CreativePair only."""
    _, noun, colour, _ = product_title(rng)
    title = f"{rng.choice(BRANDS)} {colour} {noun}"
    query = rng.choice(
        [
            f"{rng.choice(sorted(COLOURS))} {noun}",
            f"{rng.choice(STYLES)} {noun}",
            f"{noun} {rng.choice(INTENTS)}",
        ]
    )
    head = f"{user_interest_text(query, title)}\nQ6 models and props: "
    text = head + noun
    return text, [(len(head) - 1, len(text))]


def batch(
    tokenizer: Any, rng: random.Random, n: int, forms: tuple[str, ...] = ("protocol",)
) -> tuple[Any, Any, list[list[int]]]:
    """Tokenised lines (right-padded; each of a form drawn from `forms`), their labels (every
    token; padding left out), and per line the token indices that begin a decision."""
    lines = [line(rng, forms[0] if len(forms) == 1 else rng.choice(forms)) for _ in range(n)]
    side = tokenizer.padding_side
    tokenizer.padding_side = "right"  # the processor's own side (left, for generation) is kept
    try:
        enc = tokenizer(
            [t for t, _ in lines], return_tensors="pt", padding=True, return_offsets_mapping=True
        )
    finally:
        tokenizer.padding_side = side
    offsets = enc.pop("offset_mapping")
    labels = enc["input_ids"].clone()
    labels[enc["attention_mask"] == 0] = -100
    decisions = []
    for i, (_, spans) in enumerate(lines):
        tokens = offsets[i].tolist()
        decisions.append(
            [next(j for j, (_, end) in enumerate(tokens) if end > start) for start, _ in spans]
        )
    return enc, labels, decisions


def heldout(
    model: Any, tokenizer: Any, n: int = 512, forms: tuple[str, ...] = ("protocol",)
) -> dict[str, float]:
    """Teacher-forced greedy accuracy on `n` held-out lines of each form, per line: every mark's
    first token right (`marks`, the protocol's lines) and every token of the verdict right
    (`verdict` for the protocol's lines, the form's name for the others)."""
    out: dict[str, float] = {}
    for form in forms:
        rng = random.Random(EVAL_SEED + FORMS.index(form))
        marks = verdicts = total = 0
        with torch.no_grad():
            while total < n:
                enc, _, decisions = batch(tokenizer, rng, min(64, n - total), (form,))
                pred = model(**enc).logits.argmax(-1)
                ids, mask = enc["input_ids"], enc["attention_mask"]
                for i, starts in enumerate(decisions):
                    marks += all(pred[i, j - 1] == ids[i, j] for j in starts[:-1])
                    end = int(mask[i].sum())
                    verdicts += all(pred[i, j - 1] == ids[i, j] for j in range(starts[-1], end))
                total += len(decisions)
        if form == "protocol":
            out.update(marks=marks / total, verdict=verdicts / total)
        else:
            out[form] = verdicts / total
    return {**out, "n": n}


def train_matching(
    model: Any,
    tokenizer: Any,
    steps: int,
    batch_size: int = 64,
    learning_rate: float = 3e-4,
    seed: int = 0,
    eval_every: int = 100,
    progress: bool = True,
    rehearsal: Callable[[], dict[str, Any]] | None = None,
    forms: tuple[str, ...] = ("protocol",),
) -> dict[str, Any]:
    """Train the language model (the vision tower is left as it is) on `steps` batches of lines
    of `forms` (FORMS); returns the stage's report with its held-out curve.

    `rehearsal`, when given, returns a collated batch (with labels) of what the model was trained
    on before; its loss is added at every step, so that lines of bare words do not overwrite what
    the model already writes: 300 steps of lines alone took the shipped base's two-creative
    comparisons from 0.79-0.99 to 0.00-0.08 on its held-out world (the format was lost, not the
    seeing: CoT-SFT relearnt it)."""
    from tqdm.auto import tqdm

    before = {n: p.requires_grad for n, p in model.named_parameters()}
    for n, p in model.named_parameters():
        p.requires_grad = "visual" not in n
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=learning_rate, weight_decay=0.0)
    warmup = max(1, steps // 12)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / warmup) * max(0.0, 1 - s / steps)
    )
    rng = random.Random(seed)
    model.eval()
    forms = tuple(forms)
    curve = [{"step": 0, **heldout(model, tokenizer, forms=forms)}]
    t0 = time.time()
    for step in tqdm(range(1, steps + 1), desc="word matching", disable=not progress):
        model.train()
        enc, labels, _ = batch(tokenizer, rng, batch_size, forms)
        loss = model(**enc, labels=labels).loss
        loss.backward()
        if rehearsal is not None:
            model(**rehearsal()).loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        sched.step()
        opt.zero_grad()
        if step % eval_every == 0 or step == steps:
            model.eval()
            curve.append(
                {
                    "step": step,
                    "loss": round(loss.item(), 4),
                    **heldout(model, tokenizer, forms=forms),
                }
            )
    seconds = time.time() - t0
    model.eval()
    for n, p in model.named_parameters():
        p.requires_grad = before[n]
    return {
        "steps": steps,
        "lines_seen": steps * batch_size,
        "learning_rate": learning_rate,
        "rehearsal": rehearsal is not None,
        "forms": list(forms),
        "seconds": round(seconds, 1),
        "heldout": curve[-1],
        "curve": curve,
    }
