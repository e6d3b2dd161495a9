"""The offline rationale teacher: compare two creatives on measured features, dimension by dimension.

Every reason quotes a measurement (a colour the subject has, the words OCR read, a frame, the
subject's size and position, the number of background colours), so a rationale can be checked
against the pixels, and every verdict follows from the same numbers as its reason. The answer is
always the label: the teacher explains the measured differences, it does not pick the winner.
Reasons stay short (about 6-12 words), because every token is paid for in every training step.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from creative4u.features import COLOUR_NAMES, CTA_WORDS, OFFER_WORDS
from creative4u.protocol import DIMENSION_IDS, DimensionVerdict, Verdict, parse, render

SOURCE = "features"
TIE = 0.05
CLUTTER_COLOURS = 7  # small background elements in this many colours read as clutter
# query words a creative answers with in-image text other than the word itself
INTENT_SYNONYMS: dict[str, tuple[str, ...]] = {
    "sale": ("%", "sale", "off", "discount", "deal"),
    "cheap": ("%", "sale", "off", "$"),
    "discount": ("%", "sale", "off", "discount"),
    "gift": ("gift",),
    "new": ("new",),
}
_STOP = frozenset("a an the for of and with in on to by my your".split())
_TOKEN_RE = re.compile(r"[a-z0-9$%]+")


def _tokens(text: str) -> list[str]:
    return _TOKEN_RE.findall(str(text).lower())


@dataclass(frozen=True)
class Side:
    """One dimension's measurement for one creative: a score (higher is better) and a phrase."""

    score: float
    phrase: str


def _join(items: list[str]) -> str:
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + " and " + items[-1]


# ---- per-dimension measurements -----------------------------------------------------------


def query_words(query: str, title: str) -> list[str]:
    """The query words that can tell two creatives of one product apart: those the title does not
    already say (every creative shows the titled product), or all of them if none is left."""
    words = [w for w in _tokens(query) if w not in _STOP and len(w) > 1]
    in_title = set(_tokens(title))
    return [w for w in words if w not in in_title] or words


def query_side(f: Mapping[str, Any], query: str, title: str = "") -> tuple[Side, list[str]]:
    """Q3: which query words the creative shows: as its subject's colour or as printed text."""
    words = query_words(query, title)
    text = " ".join(_tokens(f.get("text", "")))
    shown = []
    for w in words:
        if w in COLOUR_NAMES:
            if f.get("subject_colour") == w:
                shown.append(w)
        elif w in INTENT_SYNONYMS:
            if any(s in text for s in INTENT_SYNONYMS[w]):
                shown.append(w)
        elif len(w) > 2 and w in text.split():
            shown.append(w)
    return Side(len(shown) / max(1, len(words)), _join(shown)), words


def title_side(f: Mapping[str, Any], title: str) -> Side:
    """Q4: does the creative show the product as titled (its colour, its words in the image)."""
    words = [w for w in _tokens(title) if w not in _STOP]
    colours = [w for w in words if w in COLOUR_NAMES]
    subject = f.get("subject_colour") or ""
    text = set(_tokens(f.get("text", "")))
    printed = [w for w in words if len(w) > 2 and w not in colours and w in text]
    score = 0.0
    if colours:
        score += 1.0 if subject in colours else 0.0
    score += 0.25 * min(2, len(printed))
    phrase = f"{subject} product" if subject else "no clear product"
    return Side(score, phrase)


def text_side(f: Mapping[str, Any]) -> Side:
    """Q5: selling text, price, call to action, and whether they are legible."""
    if not f.get("text_words"):
        return Side(0.0, "no text")
    parts = []
    if f.get("has_price"):
        parts.append("price")
    if f.get("has_cta"):
        parts.append("CTA")  # call to action, short: reasons stay within a dozen words
    words = set(_tokens(f.get("text", "")))
    if words - CTA_WORDS - OFFER_WORDS - {w for w in words if any(ch.isdigit() for ch in w)}:
        parts.append("selling point")
    legible = float(f.get("text_legible", 0.0)) >= 0.5
    if not parts:
        return Side(0.05, "unclear text")
    score = len(parts) / 3 * (1.0 if legible else 0.25)
    # two elements at most in the phrase: a reason stays within about a dozen words
    return Side(score, (_join(parts[:2]) if legible else f"faint {parts[0]}"))


def people_side(f: Mapping[str, Any]) -> Side:
    """Q6: a person (skin-toned face or hands) beats a prop beats nothing."""
    if f.get("person"):
        return Side(1.0, "a person")
    if f.get("objects"):
        return Side(0.5, "a prop")
    return Side(0.0, "no model or prop")


def layout_side(f: Mapping[str, Any]) -> Side:
    """Q7: a clean frame or an inset detail view help; overlapping blocks crowd the layout."""
    if f.get("blocks", 0) >= 3:
        return Side(0.0, "crowded layout")
    if f.get("inset"):
        return Side(1.0, "inset detail view")
    if f.get("border"):
        return Side(0.8, "clean border")
    return Side(0.4, "plain layout")


def subject_side(f: Mapping[str, Any]) -> Side:
    """Q8: the product subject's size, centring and completeness."""
    area = float(f.get("subject_area", 0.0))
    if area <= 0:
        return Side(0.0, "no clear subject")
    size, size_score = (
        ("large", 1.0) if area >= 0.28 else ("medium", 0.6) if area >= 0.12 else ("small", 0.2)
    )
    centred = float(f.get("subject_offset", 1.0)) < 0.12
    cropped = bool(f.get("subject_cropped"))
    score = size_score * (1.0 if centred else 0.75) * (0.4 if cropped else 1.0)
    words = [size, "centred" if centred else "off-centre"]
    if cropped:
        words.append("cropped")
    return Side(score, " ".join(words) + " subject")


def background_side(f: Mapping[str, Any]) -> Side:
    """Q9: colour harmony with the subject and little clutter."""
    clash = bool(f.get("colour_clash"))
    clutter = float(f.get("clutter_colours", 0.0)) >= CLUTTER_COLOURS
    score = (0.0 if clash else 0.5) + (0.0 if clutter else 0.5)
    if clash and clutter:
        phrase = "clashing, cluttered background"
    elif clash:
        phrase = f"clashing {f.get('background_colour') or 'saturated'} background"
    elif clutter:
        phrase = "cluttered background"
    else:
        phrase = "calm harmonious background"
    return Side(score, phrase)


# ---- comparison ---------------------------------------------------------------------------


def _verdict(a: Side, b: Side) -> str:
    d = a.score - b.score
    return "A=B" if abs(d) < TIE else ("A>B" if d > 0 else "A<B")


def _compare(a: Side, b: Side, verb: str = "has") -> tuple[str, str]:
    v = _verdict(a, b)
    if a.phrase == b.phrase:
        return v, f"both {_plural(verb)} {a.phrase}"
    return v, f"A {verb} {a.phrase}, B {b.phrase}"


def _plural(verb: str) -> str:
    return {"has": "have", "is": "are", "shows": "show"}.get(verb, verb)


def _query_reason(
    fa: Mapping[str, Any], fb: Mapping[str, Any], query: str, title: str
) -> tuple[str, str]:
    a, words = query_side(fa, query, title)
    b, _ = query_side(fb, query, title)
    v = _verdict(a, b)
    if not words:
        return "A=B", "the query names nothing visible"
    if a.phrase and b.phrase:
        reason = (
            f"both show {a.phrase}" if a.phrase == b.phrase else f"A shows {a.phrase}, B {b.phrase}"
        )
    elif a.phrase or b.phrase:
        who, what = ("A", a.phrase) if a.phrase else ("B", b.phrase)
        other = "B" if who == "A" else "A"
        reason = f"{who} shows {what} from the query, {other} does not"
    else:
        colour = next((w for w in words if w in COLOUR_NAMES), None)
        if colour:
            sa, sb = fa.get("subject_colour") or "unclear", fb.get("subject_colour") or "unclear"
            reason = f"neither is {colour}: A {sa}, B {sb}"
        else:
            reason = f"neither shows {_join(words[:2])}"
    return v, reason


def _title_reason(fa: Mapping[str, Any], fb: Mapping[str, Any], title: str) -> tuple[str, str]:
    a, b = title_side(fa, title), title_side(fb, title)
    v = _verdict(a, b)
    colours = [w for w in _tokens(title) if w in COLOUR_NAMES]
    if colours and a.phrase != b.phrase:
        return v, f"title says {colours[0]}: A {a.phrase}, B {b.phrase}"
    if colours:
        return v, f"title says {colours[0]}: both show {a.phrase}"
    return _compare(a, b, "shows")


def similarity(fa: Mapping[str, Any], fb: Mapping[str, Any]) -> tuple[bool, bool]:
    """(identical, indistinguishable) from the pixel digests and 16x16 thumbnails."""
    identical = bool(fa.get("digest")) and fa.get("digest") == fb.get("digest")
    ta, tb = np.asarray(fa.get("thumb", []), float), np.asarray(fb.get("thumb", []), float)
    close = ta.shape == tb.shape and ta.size > 0 and float(np.abs(ta - tb).mean()) < 3.0
    return identical, identical or close


def dimension_scores(
    fa: Mapping[str, Any], fb: Mapping[str, Any], query: str, title: str
) -> dict[str, tuple[float, float]]:
    """(score A, score B) per dimension: the numbers behind the verdicts (and the baseline)."""
    return {
        "Q3": (query_side(fa, query, title)[0].score, query_side(fb, query, title)[0].score),
        "Q4": (title_side(fa, title).score, title_side(fb, title).score),
        "Q5": (text_side(fa).score, text_side(fb).score),
        "Q6": (people_side(fa).score, people_side(fb).score),
        "Q7": (layout_side(fa).score, layout_side(fb).score),
        "Q8": (subject_side(fa).score, subject_side(fb).score),
        "Q9": (background_side(fa).score, background_side(fb).score),
    }


def explain(
    fa: Mapping[str, Any], fb: Mapping[str, Any], query: str, title: str, label: str
) -> Verdict:
    """The features teacher's verdict for a pair whose winner is `label`."""
    identical, indistinguishable = similarity(fa, fb)
    reasons = {
        "Q3": _query_reason(fa, fb, query, title),
        "Q4": _title_reason(fa, fb, title),
        "Q5": _compare(text_side(fa), text_side(fb)),
        "Q6": _compare(people_side(fa), people_side(fb), "shows"),
        "Q7": _compare(layout_side(fa), layout_side(fb)),
        "Q8": _compare(subject_side(fa), subject_side(fb)),
        "Q9": _compare(background_side(fa), background_side(fb)),
    }
    if identical:
        reasons = {d: ("A=B", "the images are identical") for d in DIMENSION_IDS}
    dims = {d: DimensionVerdict(d, v, r) for d, (v, r) in reasons.items()}  # type: ignore[arg-type]
    return Verdict(
        winner=label,  # type: ignore[arg-type]
        identical=identical,
        indistinguishable=indistinguishable,
        dimensions=dims,
    )


def rationale(
    fa: Mapping[str, Any], fb: Mapping[str, Any], query: str, title: str, label: str
) -> str:
    """Protocol-format rationale ending with `label`; checked to parse back well-formed."""
    if label not in ("A", "B"):
        raise ValueError(f"a rationale needs label 'A' or 'B', got {label!r}")
    text = render(explain(fa, fb, query, title, label))
    v = parse(text)
    if not v.well_formed or v.winner != label:  # pragma: no cover - a bug in this module
        raise AssertionError(f"features rationale does not parse back: {v.reason}\n{text}")
    return text


def rationales(
    rows: Iterable[Mapping[str, Any]], features: Mapping[str, Mapping[str, Any]]
) -> list[str]:
    """Rationales for rows with `image_a`, `image_b` (keys into `features`), `query`, `title`,
    `label`; "" for unlabelled rows (no winner to explain)."""
    out = []
    for r in rows:
        if not r["label"]:
            out.append("")
            continue
        out.append(
            rationale(
                features[r["image_a"]], features[r["image_b"]], r["query"], r["title"], r["label"]
            )
        )
    return out
