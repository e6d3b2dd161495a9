"""The perception tasks' grammar: answers are written from design factors and scored field by field."""

from __future__ import annotations

from pathlib import Path

import pytest

from creative4u.perception import (
    FACTORS,
    TASKS,
    compare,
    describe,
    messages,
    parse_slots,
    score,
    summarise,
    target,
)

A = {
    "colour": "red",
    "style": "cute",
    "cue": "sale",
    "text": "selling point, price badge",
    "person": "model",
    "layout": "picture-in-picture",
    "subject": "large",
    "position": "centred",
    "crop": "complete",
    "colours": "harmonious",
    "background": "plain",
}
B = {
    **A,
    "colour": "blue",
    "style": "luxury",
    "text": "none",
    "person": "none",
    "subject": "small",
    "background": "cluttered",
}


def test_description_round_trips_every_factor() -> None:
    assert parse_slots(describe(A)) == A
    assert parse_slots(describe(B))["text"] == "none"


def test_comparison_names_the_side_that_has_more() -> None:
    lines = compare(A, B, "luxury", "red").splitlines()
    assert lines[0] == "query wants luxury: A cute, B luxury - B"
    assert lines[1] == "title says red: A red, B blue - A"
    assert lines[2] == "larger subject: A large, B small - A"
    assert lines[3].endswith(" - A")  # plain beats cluttered at equal harmony
    assert lines[4] == "person: A model, B none - A"
    assert lines[5] == "more text: A 2, B 0 - A"
    assert compare(A, A, "red", "red").splitlines()[2].endswith(" - same")


@pytest.mark.parametrize("task", TASKS)
def test_scoring_a_perfect_answer_and_a_wrong_one(task: str) -> None:
    want = target(task, [A, B], "luxury dress", "luxury", "Nova red dress", "red")
    right = score(task, want, want)
    assert right and all(ok for _, ok in right)
    for bad in ("", "garbage; with; semicolons", "A: colour\nB:", ";;;;;;"):
        wrong = score(task, want, bad)
        assert [n for n, _ in wrong] == [n for n, _ in right]
        assert not any(ok for _, ok in wrong)


def test_one_wrong_factor_costs_only_that_field() -> None:
    want = target("describe_two", [A, B])
    got = want.replace("B: colour blue", "B: colour green")
    fields = score("describe_two", want, got)
    assert [n for n, ok in fields if not ok] == ["colour"]
    assert len(fields) == 2 * len(FACTORS)


def test_copying_the_query_word_is_scored_apart_from_the_answer() -> None:
    want = target("query_one", [A], query_word="luxury")
    assert want == "query wants luxury; A shows cute; NO"
    got = dict(score("query_one", want, "query wants luxury; A shows vintage; NO"))
    assert got == {"query word": True, "query shown": False, "query answer": True}


def test_summarise_counts_fields_per_task_and_overall() -> None:
    t1 = target("title_one", [A], title_colour="red")
    t2 = target("title_one", [B], title_colour="red")
    report = summarise(["title_one", "title_one"], [t1, t2], [t1, t1])
    assert report["by_field"]["title word"] == {"accuracy": 1.0, "n": 2}
    assert report["by_field"]["title shown"] == {"accuracy": 0.5, "n": 2}
    assert report["by_task"]["title_one"]["title answer"]["accuracy"] == 0.5


def test_two_creative_tasks_use_the_protocol_layout() -> None:
    from creative4u.protocol import build_messages

    mine = messages("compare_two", "red dress", "Nova red dress")[0]["content"]
    protocol = build_messages("red dress", "Nova red dress")[0]["content"]
    assert mine[:4] == protocol[:4]  # interest, Creative A, image, Creative B, image
    assert [p["type"] for p in messages("describe_one")[0]["content"]] == ["text", "image", "text"]
    with pytest.raises(ValueError, match="unknown perception task"):
        target("rank_all", [A])


def test_answer_weights_sit_on_each_decision_of_a_question_and_a_comparison(
    tiny_model: Path,
) -> None:
    """The weighted pretraining loss finds every YES/NO and every comparison verdict, in the
    model's own tokenizer, and leaves the prompt and padding (label -100) at 1."""
    import torch

    from creative4u.perception import answer_separator_ids, answer_token_weights
    from creative4u.vlm import load_processor

    tok = load_processor(str(tiny_model)).tokenizer
    texts = [
        target("title_one", [A], title="Nova red shirt", title_colour="red"),
        target("title_one", [A], title="Nova blue shirt", title_colour="blue"),
        compare(A, B, "red", "green"),  # neither shows green: the title line is `same`
    ]
    ids = [tok(t, add_special_tokens=False)["input_ids"] for t in texts]
    labels = torch.full((len(ids), max(map(len, ids)) + 3), -100)
    for row, seq in enumerate(ids):  # one masked prompt position first, padding after
        labels[row, 1 : 1 + len(seq)] = torch.tensor(seq)
    w = answer_token_weights(labels, answer_separator_ids(tok), 5.0)
    assert w[labels == -100].eq(1.0).all()

    def heavy_words(row: int) -> list[str]:
        """Each weighted token's word (the token and those that continue it)."""
        toks = labels[row].tolist()
        out = []
        for i in (w[row] == 5.0).nonzero().flatten().tolist():
            j = i + 1
            while j < len(toks) and toks[j] != -100:
                if tok.decode([toks[j]]).startswith((" ", ";", ",", "\n")):
                    break
                j += 1
            out.append(tok.decode(toks[i:j]).strip())
        return out

    # `title says red; A shows red; YES`: the slot after the first `;` is the format's `A`
    assert heavy_words(0) == ["A", "YES"]
    assert heavy_words(1) == ["A", "NO"]
    verdicts = [line.rpartition(" - ")[2] for line in texts[2].splitlines()]
    assert heavy_words(2) == verdicts
    assert {"A", "same"} <= set(verdicts)
