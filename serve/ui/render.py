"""What the page shows, as pure functions of an API response (so they are tested without a
browser): the verdict banner, the dimension table, the CTR bars, the ranking and its exports.

Everything the server sends is escaped before it becomes HTML: reasons are model output.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from html import escape
from typing import Any

import pandas as pd

VERDICT_WORDS = {"A>B": "A better", "A=B": "equal", "A<B": "B better"}
DECIDED_BY = {
    "answer_probabilities": "the model's probability of each answer, averaged over both orders",
    "probe_probabilities": "the answer probability read after the model's reasoning was cut off",
    "answers": "the model's answers (no probabilities were available)",
    "default": "a fixed rule (the model gave no usable answer): treat this as no decision",
}
DIMENSION_COLUMNS = ["Question", "Verdict", "Both orders", "Reason"]
FEATURE_COLUMNS = ["Measured feature", "A", "B", "Higher"]
TITLE_READABILITY = ("flesch_reading_ease", "flesch_kincaid_grade", "rix", "words")
RANK_COLUMNS = ["Rank", "Creative", "Score", "Expected wins", "Predicted CTR", "Why here"]


def percent(x: float | None, digits: int = 0) -> str:
    return "—" if x is None else f"{100 * x:.{digits}f} %"


# --------------------------------------------------------------------------------------------
# Compare
# --------------------------------------------------------------------------------------------


def agreement_text(agreed: bool | None) -> str:
    if agreed is True:
        return "Both orders agree: the model picked the same creative with A and B swapped."
    if agreed is False:
        return (
            "The two orders disagree: with A and B swapped the model picked the other creative, "
            "so this verdict leans on position and deserves a second look."
        )
    return "Order agreement unknown (only one order was judged, or one gave no answer)."


def verdict_banner(result: dict[str, Any], names: Sequence[str] = ("A", "B")) -> str:
    """The headline: who wins, how sure, whether both orders agree, and what to be careful of."""
    winner = result["winner"]
    name = names[0] if winner == "A" else names[1]
    agreed = result.get("order_swap_agreed")
    icon = {True: "✓", False: "⚠"}.get(agreed, "?")
    decided = DECIDED_BY.get(result.get("decided_by", ""), result.get("decided_by", ""))
    problems = result.get("problems") or []
    headline_tail = (
        ", by rule: the model gave no usable answer"
        if result.get("decided_by") == "default"
        else " wins"
    )
    caution = ""
    if problems:
        items = "".join(f"<li>{escape(p)}</li>" for p in problems)
        caution = (
            f"<details class='c4u-problems'><summary>{len(problems)} thing(s) to be careful of"
            f"</summary><ul>{items}</ul></details>"
        )
    return (
        f"<div class='c4u-banner' data-winner='{winner}'>"
        f"<div class='c4u-winner'><span class='c4u-badge'>WINNER</span> Creative {winner}"
        f"{'' if name == winner else f' <span class=c4u-name>({escape(name)})</span>'}"
        f"{headline_tail}</div>"
        f"<div class='c4u-facts'><span class='c4u-confidence'>Confidence "
        f"{percent(result.get('confidence'))}</span>"
        f"<span class='c4u-agreement' data-agreed='{str(agreed).lower()}'>{icon} "
        f"{escape(agreement_text(agreed))}</span></div>"
        f"<div class='c4u-decided'>Decided by {escape(decided)}.</div>"
        f"{caution}</div>"
    )


def dimension_rows(result: dict[str, Any]) -> pd.DataFrame:
    """One row per protocol question (Q3-Q9): question, verdict, order agreement, reason."""
    rows = []
    for d in result.get("dimensions") or []:
        verdict = d.get("verdict")
        shown = f"{verdict} ({VERDICT_WORDS[verdict]})" if verdict in VERDICT_WORDS else "—"
        if d.get("agreed") is True:
            both = "agree"
        elif d.get("agreed") is False:
            both = f"disagree (swapped: {d.get('swap_verdict')})"
        else:
            both = "—"
        rows.append(
            [
                f"{d['id']} {d['name']}: {d['question']}",
                shown,
                both,
                d.get("reason") or "(no reason given)",
            ]
        )
    return pd.DataFrame(rows, columns=DIMENSION_COLUMNS)


def _number(x: float) -> str:
    return f"{x:.3g}" if abs(x) < 1e4 else f"{x:.0f}"


def feature_rows(
    fa: dict[str, Any] | None, fb: dict[str, Any] | None, title: dict[str, float] | None = None
) -> pd.DataFrame:
    """The numbers behind a reason: each measured feature of A and of B (`features.measure`)
    and which one is higher; then the product title's readability, one title for both."""
    from creative4u.features import NUMERIC_FEATURES

    rows = []
    if fa and fb:
        for k in NUMERIC_FEATURES:
            a, b = float(fa[k]), float(fb[k])
            higher = (
                "same" if abs(a - b) <= 1e-9 * max(1.0, abs(a), abs(b)) else ("A" if a > b else "B")
            )
            rows.append([k.replace("_", " "), _number(a), _number(b), higher])
    for k in TITLE_READABILITY if title else ():
        v = _number(float(title[k]))  # type: ignore[index]
        rows.append([f"title {k.replace('_', ' ')}", v, v, "same (one title)"])
    return pd.DataFrame(rows, columns=FEATURE_COLUMNS)


def ctr_bars(ctrs: Sequence[tuple[str, float | None]], winner: str | None = None) -> str:
    """M2FN's predicted CTR per creative as horizontal bars (the longest fills the track)."""
    if all(c is None for _, c in ctrs):
        return (
            "<div class='c4u-ctr c4u-muted'>Predicted CTR (M2FN): not available. This server runs "
            "without a CTR model; start it with <code>--m2fn CKPT</code> to see one.</div>"
        )
    top = max(c for _, c in ctrs if c is not None) or 1.0
    bars = []
    for label, c in ctrs:
        width = 0 if c is None else max(2.0, 100 * c / top)
        cls = "c4u-bar c4u-bar-win" if label == winner else "c4u-bar"
        bars.append(
            f"<div class='c4u-ctr-row'><span class='c4u-ctr-label'>{escape(label)}</span>"
            f"<span class='c4u-track'><span class='{cls}' style='width:{width:.1f}%'></span></span>"
            f"<span class='c4u-ctr-value'>{percent(c, 2)}</span></div>"
        )
    return (
        "<div class='c4u-ctr'><div class='c4u-ctr-title'>Predicted CTR (M2FN)</div>"
        + "".join(bars)
        + "</div>"
    )


# --------------------------------------------------------------------------------------------
# Rank
# --------------------------------------------------------------------------------------------


def _placement(row: dict[str, Any]) -> str:
    """Why a creative sits where it does: its result against each neighbour, and the dimensions
    the model credited it (or its neighbour) with."""
    parts = []
    for d in row.get("decisive") or []:
        won, other, p = d.get("won"), d.get("against"), d.get("p_win")
        head = {True: "beat", False: "lost to", None: "tied with"}[won]
        better = [x for x in d.get("dimensions") or [] if x.get("verdict") == "A>B"]
        worse = [x for x in d.get("dimensions") or [] if x.get("verdict") == "A<B"]

        def names(xs: list[dict[str, Any]]) -> str:
            return ", ".join(
                x["name"] + (f" ({x['reason']})" if x.get("reason") else "") for x in xs
            )

        detail = []
        if better:
            detail.append(f"better on {names(better)}")
        if worse:
            detail.append(f"worse on {names(worse)}")
        prob = "" if p is None else f", P(win) {p:.2f}"
        parts.append(f"{head} {other}{prob}" + (f": {'; '.join(detail)}" if detail else ""))
    return " | ".join(parts) or "—"


def rank_rows(result: dict[str, Any]) -> pd.DataFrame:
    rows = [
        [
            r["rank"],
            r["id"],
            round(r["score"], 3) if r.get("score") is not None else None,
            round(r["expected_wins"], 2) if r.get("expected_wins") is not None else None,
            percent(r.get("ctr"), 2),
            _placement(r),
        ]
        for r in result.get("ranking") or []
    ]
    return pd.DataFrame(rows, columns=RANK_COLUMNS)


def rank_caption(row: dict[str, Any]) -> str:
    ctr = "" if row.get("ctr") is None else f" · CTR {percent(row['ctr'], 2)}"
    score = round(row["score"], 2) + 0.0  # + 0.0: no "-0.00"
    return f"#{row['rank']} {row['id']} · score {score:+.2f}{ctr}"


def rank_summary(result: dict[str, Any]) -> str:
    ranking = result.get("ranking") or []
    best = ranking[0]["id"] if ranking else "—"
    problems = result.get("problems") or []
    caution = "".join(f"<li>{escape(p)}</li>" for p in problems)
    return (
        f"<div class='c4u-banner'><div class='c4u-winner'><span class='c4u-badge'>BEST</span> "
        f"{escape(best)}</div>"
        f"<div class='c4u-decided'>{escape(result.get('method', ''))}. Scores are Bradley-Terry "
        "strengths: higher is better, differences matter, not the absolute value.</div>"
        + (
            f"<details class='c4u-problems'><summary>{len(problems)} thing(s) to be careful of"
            f"</summary><ul>{caution}</ul></details>"
            if problems
            else ""
        )
        + "</div>"
    )


def rank_csv(result: dict[str, Any]) -> str:
    out = io.StringIO()
    w = csv.writer(out)
    w.writerow(["rank", "creative", "score", "expected_wins", "ctr", "why_here"])
    for r in result.get("ranking") or []:
        w.writerow(
            [
                r["rank"],
                r["id"],
                r.get("score"),
                r.get("expected_wins"),
                r.get("ctr"),
                _placement(r),
            ]
        )
    return out.getvalue()


def rank_json(result: dict[str, Any]) -> str:
    return json.dumps(result, indent=2, ensure_ascii=False) + "\n"
