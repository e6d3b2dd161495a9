"""GRPO reward functions, one per concern, registered by name and weighted in the recipe.

Each takes TRL's `completions` (conversational: a list of assistant messages per completion) and
the dataset columns as keyword arguments, and returns one float per completion (or None where the
reward does not apply, which TRL ignores). Malformed completions get 0 and never raise.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from creative4u.protocol import DIMENSION_IDS, Verdict, parse

RewardFunc = Callable[..., list[float | None]]
REWARDS: dict[str, RewardFunc] = {}


def register(name: str) -> Callable[[RewardFunc], RewardFunc]:
    def deco(fn: RewardFunc) -> RewardFunc:
        fn.__name__ = name  # TRL logs rewards under the function's name
        REWARDS[name] = fn
        return fn

    return deco


def get_rewards(names: Sequence[str], **options: Any) -> list[RewardFunc]:
    """Reward functions for the recipe's `reward_funcs`; options (e.g. `format_partial_credit`)
    are bound to the functions that take them."""
    unknown = [n for n in names if n not in REWARDS]
    if unknown:
        raise ValueError(f"unknown reward(s) {unknown}; registered: {sorted(REWARDS)}")
    out = []
    for n in names:
        fn = REWARDS[n]
        accepted = {k: v for k, v in options.items() if k in fn.__code__.co_varnames}
        if accepted:
            bound = _bind(fn, accepted)
            out.append(bound)
        else:
            out.append(fn)
    return out


def _bind(fn: RewardFunc, fixed: dict[str, Any]) -> RewardFunc:
    def bound(completions, **kwargs):
        return fn(completions, **{**kwargs, **fixed})

    bound.__name__ = fn.__name__
    return bound


def completion_text(completion: Any) -> str:
    """Text of one completion, conversational ([{"role", "content"}]) or plain."""
    if isinstance(completion, str):
        return completion
    if isinstance(completion, list) and completion:
        content = completion[-1].get("content", "") if isinstance(completion[-1], dict) else ""
        if isinstance(content, list):
            return "".join(p.get("text", "") for p in content if isinstance(p, dict))
        return content or ""
    return ""


def verdicts(completions: Sequence[Any]) -> list[Verdict]:
    return [parse(completion_text(c)) for c in completions]


@register("format")
def format_reward(completions, format_partial_credit: float = 0.0, **_: Any) -> list[float | None]:
    """1 for the exact protocol grammar; optionally partial credit for a readable answer in a
    broken frame (helps a policy that has drifted find its way back)."""
    return [
        1.0 if v.well_formed else (format_partial_credit if v.winner else 0.0)
        for v in verdicts(completions)
    ]


@register("correct")
def correct_reward(completions, label: Sequence[str] | None = None, **_: Any) -> list[float | None]:
    """1 when a well-formed answer names the labelled winner; None on unlabelled pairs."""
    labels = list(label) if label is not None else [""] * len(completions)
    out: list[float | None] = []
    for v, lab in zip(verdicts(completions), labels, strict=True):
        if lab not in ("A", "B"):
            out.append(None)
        else:
            out.append(1.0 if v.well_formed and v.winner == lab else 0.0)
    return out


@register("m2fn")
def m2fn_reward(
    completions, m2fn_p_a: Sequence[float] | None = None, **_: Any
) -> list[float | None]:
    """M2FN's probability that the chosen creative is the more clicked one (the paper's CTR model
    as an auxiliary signal); None where no M2FN preference was computed."""
    probs = list(m2fn_p_a) if m2fn_p_a is not None else [None] * len(completions)
    out: list[float | None] = []
    for v, p in zip(verdicts(completions), probs, strict=True):
        if p is None or p != p:  # None or NaN
            out.append(None)
        elif not v.well_formed:
            out.append(0.0)
        else:
            out.append(float(p) if v.winner == "A" else 1.0 - float(p))
    return out


@register("consistency")
def consistency_reward(completions, **_: Any) -> list[float | None]:
    """Share of the decided dimensions (Q3-Q9 not A=B) that favour the chosen creative: an answer
    should follow from the verdicts written above it. 0.5 when every dimension is a tie."""
    out: list[float | None] = []
    for v in verdicts(completions):
        if not v.well_formed:
            out.append(0.0)
            continue
        favour = {"A": "A>B", "B": "A<B"}[v.winner]  # type: ignore[index]
        against = {"A": "A<B", "B": "A>B"}[v.winner]  # type: ignore[index]
        pro = sum(v.comparison(d) == favour for d in DIMENSION_IDS)
        con = sum(v.comparison(d) == against for d in DIMENSION_IDS)
        out.append(pro / (pro + con) if pro + con else 0.5)
    return out


@register("dimensions")
def dimensions_reward(
    completions, reference_verdicts: Sequence[str] | None = None, **_: Any
) -> list[float | None]:
    """Share of the protocol's dimension verdicts (Q3-Q9) that agree with the pair's CreativePair
    rationale, read in the order shown: a dense signal for what the policy saw in each creative,
    where `correct` only scores the last letter. None where the pair has no rationale."""
    refs = list(reference_verdicts) if reference_verdicts is not None else [""] * len(completions)
    out: list[float | None] = []
    for v, ref in zip(verdicts(completions), refs, strict=True):
        wanted = ref.split() if ref else []
        if len(wanted) != len(DIMENSION_IDS):
            out.append(None)
        elif not v.well_formed:
            out.append(0.0)
        else:
            hits = sum(v.comparison(d) == w for d, w in zip(DIMENSION_IDS, wanted, strict=True))
            out.append(hits / len(DIMENSION_IDS))
    return out
