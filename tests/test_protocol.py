"""The protocol's renderer and parser: round trips, and malformed text never raises."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from creative4u.protocol import (
    COMPARISONS,
    DIMENSION_IDS,
    QUESTIONS,
    DimensionVerdict,
    Verdict,
    build_messages,
    clean_reason,
    parse,
    render,
)

reason_text = (
    st.text(
        alphabet=st.characters(codec="utf-8", exclude_categories=("Cs", "Cc", "Zl", "Zp")),
        min_size=1,
        max_size=40,
    )
    .map(clean_reason)
    .filter(bool)
)


@st.composite
def verdicts(draw) -> Verdict:
    dims = {
        d: DimensionVerdict(d, draw(st.sampled_from(COMPARISONS)), draw(reason_text))
        for d in DIMENSION_IDS
    }
    return Verdict(
        winner=draw(st.sampled_from(["A", "B"])),
        identical=draw(st.booleans()),
        indistinguishable=draw(st.booleans()),
        dimensions=dims,
    )


@given(verdicts())
@settings(max_examples=300)
def test_render_parse_round_trip(v: Verdict) -> None:
    text = render(v)
    back = parse(text)
    assert back.well_formed, back.problems
    assert back.winner == v.winner
    assert back.identical == v.identical and back.indistinguishable == v.indistinguishable
    assert back.dimensions == v.dimensions
    assert render(back) == text


@given(verdicts())
@settings(max_examples=100)
def test_swap_twice_is_identity_and_flips(v: Verdict) -> None:
    s = v.swapped()
    assert s.winner != v.winner
    for d in DIMENSION_IDS:
        assert {v.comparison(d), s.comparison(d)} in ({"A>B", "A<B"}, {"A=B"})
    assert s.swapped().dimensions == v.dimensions
    assert parse(render(s)).well_formed


def _good() -> str:
    dims = {d: DimensionVerdict(d, "A>B", f"A is better on {d}") for d in DIMENSION_IDS}
    return render(Verdict(winner="A", identical=False, indistinguishable=False, dimensions=dims))


def test_good_text_has_exact_grammar() -> None:
    text = _good()
    lines = text.splitlines()
    assert lines[0] == "<think>" and lines[-2] == "</think>" and lines[-1] == "<answer>A</answer>"
    assert lines[1] == "Q1 identical: NO"
    assert lines[3] == "Q3 query match: A is better on Q3 => A>B"
    assert len(lines) == 12


MALFORMED = {
    "empty": ("", None, "empty output"),
    "whitespace": ("  \n ", None, "empty output"),
    "truncated mid-think": (_good()[:80], None, "missing <answer>"),
    "missing </think>": (_good().replace("</think>\n", ""), "A", "missing </think>"),
    "missing </answer>": (_good().replace("</answer>", ""), "A", "missing </answer>"),
    "wrong verdict token": (
        _good().replace("on Q5 => A>B", "on Q5 => A>>B"),
        "A",
        "Q5: verdict",
    ),
    "yes/no wrong": (
        _good().replace("Q1 identical: NO", "Q1 identical: maybe"),
        "A",
        "not YES or NO",
    ),
    "two answers": (_good() + "\n<answer>B</answer>", None, "2 <answer> blocks"),
    "two equal answers": (_good() + "\n<answer>A</answer>", "A", "2 <answer> blocks"),
    "answer outside tags": (
        _good().replace("<answer>A</answer>", "Answer: B"),
        "B",
        "answer outside <answer> tags",
    ),
    "extra text after": (_good() + "\nI hope this helps!", "A", "extra text after </answer>"),
    "extra text before": ("Sure! " + _good(), "A", "extra text before <think>"),
    "answer not A/B": (
        _good().replace("<answer>A</answer>", "<answer>C</answer>"),
        None,
        "not A or B",
    ),
    "missing line": (
        "\n".join(x for x in _good().splitlines() if not x.startswith("Q7")),
        "A",
        "missing Q7",
    ),
    "duplicated line": (
        _good().replace("Q9 background", "Q8 product subject: x => A=B\nQ9 background"),
        "A",
        "Q8 answered twice",
    ),
    "missing reason": (
        _good().replace("Q4 title match: A is better on Q4 => A>B", "Q4 title match: => A>B"),
        "A",
        "no reason",
    ),
    "renamed question": (_good().replace("Q6 models and props", "Q6 models"), "A", "is named"),
    "garbage line": (_good().replace("</think>", "blah blah\n</think>"), "A", "unexpected line"),
    "answer inside think": (
        _good().replace("</think>\n<answer>A</answer>", "<answer>A</answer>\n</think>"),
        "A",
        "inside <think>",
    ),
    "only answer": ("<answer>B</answer>", "B", "missing <think>"),
    "random bytes": ("\x00\x01<<<>>>", None, "missing <answer>"),
}


@pytest.mark.parametrize("name", sorted(MALFORMED))
def test_malformed_outputs_flagged_never_raise(name: str) -> None:
    text, winner, problem = MALFORMED[name]
    v = parse(text)
    assert not v.well_formed
    assert v.winner == winner
    assert any(problem in p for p in v.problems), v.problems
    assert v.reason


def test_none_is_empty() -> None:
    assert parse(None).problems == ["empty output"]


@given(st.text(max_size=400))
@settings(max_examples=300)
def test_parse_total_on_arbitrary_text(text: str) -> None:
    v = parse(text)
    assert v.well_formed in (True, False)
    assert v.well_formed == (not v.problems and v.winner is not None)


def test_render_refuses_incomplete_verdicts() -> None:
    with pytest.raises(ValueError, match="no winner"):
        render(Verdict(winner=None))
    with pytest.raises(ValueError, match="no comparison for Q3"):
        render(Verdict(winner="A"))


def test_messages_for_hf_and_openai() -> None:
    hf = build_messages("red dress", "Nova red dress")
    parts = hf[0]["content"]
    assert [p["type"] for p in parts] == ["text", "image", "text", "image", "text"]
    assert "red dress" in parts[0]["text"] and "Nova red dress" in parts[0]["text"]
    for q in QUESTIONS:
        assert f"{q.id} {q.name}" in parts[-1]["text"]
    oa = build_messages(
        "q", "t", "data:image/png;base64,AAAA", "data:image/png;base64,BBBB", style="openai"
    )
    urls = [p["image_url"]["url"] for p in oa[0]["content"] if p["type"] == "image_url"]
    assert urls == ["data:image/png;base64,AAAA", "data:image/png;base64,BBBB"]
    with pytest.raises(ValueError, match="URL"):
        build_messages("q", "t", style="openai")
