"""Word matching before SFT (creative4u/matching.py): text-only lines whose marks say whether each
shown value is the wanted one, read back independently here; it trains the language model and
leaves the vision tower and the tokenizer's padding side as they were."""

from __future__ import annotations

import random
import re
from collections import Counter
from pathlib import Path

import pytest
import torch

from creative4u.matching import FORMS, batch, heldout, line, train_matching
from creative4u.perception import FACTORS, score

LINE = re.compile(
    r"^Q(?P<q>[34]) (?:query|title) match: (?:query wants|title says) (?P<w>\S+): "
    r"(?:both (?P<both>\S+) (?P<mb>yes|no)|A (?P<a>\S+) (?P<ma>yes|no), B (?P<b>\S+) (?P<mb2>yes|no))"
    r" => (?P<v>A[<>=]B)$"
)


def test_lines_mark_the_wanted_word_and_the_verdict_follows() -> None:
    rng = random.Random(0)
    seen: Counter = Counter()
    vocab = {v for k in ("colour", "style", "cue") for v in FACTORS[k]}
    for _ in range(2000):
        text, spans = line(rng)
        m = LINE.match(text)
        assert m, text
        w = m["w"]
        if m["both"]:
            a = b = m["both"]
            ma = mb = m["mb"] == "yes"
        else:
            a, b, ma, mb = m["a"], m["b"], m["ma"] == "yes", m["mb2"] == "yes"
        assert {a, b, w} <= vocab and w != "none"
        assert ma == (a == w) and mb == (b == w), text
        assert m["v"] == ("A=B" if ma == mb else "A>B" if ma else "A<B"), text
        if m["q"] == "4":
            assert w in FACTORS["colour"]  # a title names the product's colour
        # the decision spans hold each mark and the verdict, and end the line
        assert [text[s:e].strip() for s, e in spans[:-1]] == (
            ["yes" if ma else "no"] if m["both"] else ["yes" if ma else "no", "yes" if mb else "no"]
        )
        assert text[spans[-1][0] :].strip() == m["v"] and spans[-1][1] == len(text)
        seen[m["v"], m["q"], bool(m["both"])] += 1
    # every verdict, both questions and both forms occur
    assert {v for v, _, _ in seen} == {"A>B", "A=B", "A<B"}
    assert {q for _, q, _ in seen} == {"3", "4"} and {f for _, _, f in seen} == {True, False}


QUESTION = re.compile(
    r"^(?P<h>query wants|title says) (?P<w>\S+); A shows (?P<a>\S+); (?P<v>YES|NO)$"
)
COMPARISON = re.compile(
    r"^(?P<h>query wants|title says) (?P<w>\S+): A (?P<a>\S+), B (?P<b>\S+) - (?P<v>A|B|same)$"
)


def test_question_and_comparison_lines_answer_by_word_equality() -> None:
    """The perception tasks' own forms: read back here, and scored by the perception scorer as
    the model card scores the base's answers."""
    rng = random.Random(3)
    seen: Counter = Counter()
    for _ in range(1500):
        text, spans = line(rng, "question")
        m = QUESTION.match(text)
        assert m, text
        assert m["v"] == ("YES" if m["a"] == m["w"] else "NO"), text
        assert len(spans) == 1 and text[spans[0][0] :].strip() == m["v"]
        assert all(ok for _, ok in score("title_one", text, text))
        seen["question", m["v"], m["h"]] += 1

        text, spans = line(rng, "comparison")
        m = COMPARISON.match(text)
        assert m, text
        ma, mb = m["a"] == m["w"], m["b"] == m["w"]
        assert m["v"] == ("same" if ma == mb else "A" if ma else "B"), text
        assert len(spans) == 1 and text[spans[0][0] :].strip() == m["v"]
        if m["h"] == "title says":
            assert m["w"] in FACTORS["colour"]
        seen["comparison", m["v"], m["h"]] += 1
    assert {v for f, v, _ in seen if f == "question"} == {"YES", "NO"}
    assert {v for f, v, _ in seen if f == "comparison"} == {"A", "B", "same"}
    assert {h for _, _, h in seen} == {"query wants", "title says"}
    with pytest.raises(ValueError, match="question"):
        line(rng, "riddle")


def test_product_lines_copy_the_titles_product_and_say_nothing_it_suits() -> None:
    from creative4u.lexicon import CATEGORIES

    nouns = {n for ns in CATEGORIES.values() for n in ns}
    rng = random.Random(5)
    seen = set()
    for _ in range(200):
        text, spans = line(rng, "product")
        ((start, end),) = spans
        query, title, q6 = text.split("\n")
        noun = text[start:end].strip()
        assert q6 == f"Q6 models and props: {noun}" and end == len(text)
        assert title.startswith("Product title: ") and title.endswith(" " + noun)
        assert query.startswith("Search query: ") and noun in query
        assert noun in nouns and "suits" not in text and "=>" not in text
        seen.add(noun)
    assert len(seen) > 10 and any(" " in n for n in seen)  # many products, some of two words


def test_batches_mix_the_forms_asked_for(tiny_model: Path) -> None:
    from creative4u.vlm import load_processor

    tok = load_processor(str(tiny_model)).tokenizer
    enc, _, _ = batch(tok, random.Random(2), 60, FORMS)
    texts = tok.batch_decode(enc["input_ids"], skip_special_tokens=True)
    kinds = Counter(
        "protocol"
        if t.startswith("Q")
        else "product"
        if t.startswith("Search query:")
        else "question"
        if "; A shows" in t
        else "comparison"
        for t in texts
    )
    assert set(kinds) == set(FORMS)
    enc, _, _ = batch(tok, random.Random(2), 20)  # the protocol's lines alone by default
    assert all(
        t.startswith("Q") for t in tok.batch_decode(enc["input_ids"], skip_special_tokens=True)
    )


def test_decision_tokens_are_found_in_the_tokenised_batch(tiny_model: Path) -> None:
    from creative4u.vlm import load_processor

    tok = load_processor(str(tiny_model)).tokenizer
    enc, labels, decisions = batch(tok, random.Random(1), 8)
    assert tok.padding_side == "left"  # the processor's own side is left as it was
    for i, starts in enumerate(decisions):
        ids = enc["input_ids"][i]
        assert enc["attention_mask"][i, 0] == 1  # right-padded: the line starts at 0
        text = tok.decode(ids[starts[0] :], skip_special_tokens=True).lstrip()
        assert text.startswith(("yes", "no"))
        assert tok.decode(ids[starts[-1] :], skip_special_tokens=True).strip()[:3] in (
            "A>B",
            "A=B",
            "A<B",
        )
    assert ((labels == -100) == (enc["attention_mask"] == 0)).all()  # all but the padding
    left = tok(["a", "a b c"], padding=True)["attention_mask"]
    assert left[0][0] == 0  # generation still pads on the left


def test_it_trains_the_language_model_only(tiny_model: Path) -> None:
    from creative4u.vlm import load

    model, processor = load(str(tiny_model), dtype=torch.float32)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    grads = {n: p.requires_grad for n, p in model.named_parameters()}
    score = heldout(model, processor.tokenizer, n=64)
    assert score == heldout(model, processor.tokenizer, n=64)  # a fixed held-out draw
    report = train_matching(
        model, processor.tokenizer, steps=3, batch_size=8, progress=False, forms=FORMS
    )
    assert report["steps"] == 3 and report["lines_seen"] == 24 and report["forms"] == list(FORMS)
    assert [c["step"] for c in report["curve"]] == [0, 3]
    # each form scored on its own held-out lines
    assert {"marks", "verdict", "question", "comparison"} <= set(report["heldout"])
    moved = {n for n, p in model.named_parameters() if not torch.equal(p, before[n])}
    assert moved and all("visual" not in n for n in moved)
    assert any("embed_tokens" in n or "layers" in n for n in moved)
    assert {n: p.requires_grad for n, p in model.named_parameters()} == grads
