"""Each GRPO reward on hand-made completions; malformed ones get 0 and never raise."""

from __future__ import annotations

import math

import pytest

from creative4u.protocol import DIMENSION_IDS, DimensionVerdict, Verdict, render
from rl.rewards import REWARDS, get_rewards


def text(winner: str, verdicts: dict[str, str] | None = None) -> str:
    verdicts = verdicts or {}
    dims = {d: DimensionVerdict(d, verdicts.get(d, "A=B"), "reason") for d in DIMENSION_IDS}  # type: ignore[arg-type]
    return render(Verdict(winner=winner, identical=False, indistinguishable=False, dimensions=dims))  # type: ignore[arg-type]


def conv(t: str) -> list[dict]:
    return [{"role": "assistant", "content": t}]


GOOD_A = text("A", {"Q3": "A>B", "Q5": "A>B", "Q8": "A<B"})
GOOD_B = text("B", {"Q3": "A<B"})
BROKEN_A = GOOD_A.replace("</think>", "")  # readable answer, broken frame
MALFORMED = [
    "",
    "garbage",
    "<answer>C</answer>",
    "<think>\nQ1 identical: NO",
    GOOD_A + "\n<answer>B</answer>",
]


def test_registry_has_every_concern() -> None:
    assert {"format", "correct", "m2fn", "consistency", "dimensions"} <= set(REWARDS)
    with pytest.raises(ValueError, match="unknown reward"):
        get_rewards(["format", "nope"])


def test_format() -> None:
    fmt = REWARDS["format"]
    assert fmt([conv(GOOD_A), conv(BROKEN_A), conv("")]) == [1.0, 0.0, 0.0]
    graded = get_rewards(["format"], format_partial_credit=0.25)[0]
    assert graded([conv(GOOD_A), conv(BROKEN_A), conv("")]) == [1.0, 0.25, 0.0]
    assert graded.__name__ == "format"


def test_correct() -> None:
    r = REWARDS["correct"](
        [conv(GOOD_A), conv(GOOD_B), conv(GOOD_A), conv(BROKEN_A), conv(GOOD_A)],
        label=["A", "A", "B", "A", ""],
    )
    assert r == [1.0, 0.0, 0.0, 0.0, None]


def test_m2fn() -> None:
    r = REWARDS["m2fn"](
        [conv(GOOD_A), conv(GOOD_B), conv(BROKEN_A), conv(GOOD_A)], m2fn_p_a=[0.8, 0.8, 0.8, None]
    )
    assert (
        r[0] == pytest.approx(0.8) and r[1] == pytest.approx(0.2) and r[2] == 0.0 and r[3] is None
    )
    assert REWARDS["m2fn"]([conv(GOOD_A)], m2fn_p_a=[math.nan]) == [None]


def test_consistency() -> None:
    r = REWARDS["consistency"](
        [conv(GOOD_A), conv(GOOD_B), conv(text("A")), conv(text("B", {"Q3": "A>B", "Q4": "A>B"}))]
    )
    assert r[0] == pytest.approx(2 / 3)  # two dimensions for A, one against
    assert r[1] == 1.0 and r[2] == 0.5 and r[3] == 0.0


def test_dimensions() -> None:
    ref = "A>B A=B A=B A=B A<B A=B A=B"  # Q3..Q9 of the pair's rationale, in the order shown
    r = REWARDS["dimensions"](
        [conv(GOOD_A), conv(text("B", {"Q3": "A>B", "Q7": "A<B"})), conv(BROKEN_A), conv(GOOD_A)],
        reference_verdicts=[ref, ref, ref, ""],
    )
    # GOOD_A: Q3, Q4, Q6, Q9 agree; Q5 (A>B), Q7 (A=B), Q8 (A<B) do not
    assert r[0] == pytest.approx(4 / 7)
    assert r[1] == 1.0  # every verdict agrees, whatever the answer letter
    assert r[2] == 0.0 and r[3] is None
    assert REWARDS["dimensions"]([conv(GOOD_A)], reference_verdicts=["A>B A=B"]) == [None]


@pytest.mark.parametrize("bad", MALFORMED)
def test_malformed_gets_zero_and_never_raises(bad: str) -> None:
    for name, fn in REWARDS.items():
        out = fn(
            [conv(bad), bad, None],
            label=["A", "A", "A"],
            m2fn_p_a=[0.9, 0.9, 0.9],
            reference_verdicts=["A>B A=B A=B A=B A=B A=B A<B"] * 3,
        )
        assert out == [0.0, 0.0, 0.0], name
