"""The Creative Evaluation Protocol: the one prompt, output grammar and parser every stage shares.

Data writes rationales with `render`, training rewards and evaluation read completions with
`parse`, serving turns generations into API responses with `parse`. Keeping all three in one
module is what guarantees that a rationale the data stage wrote is exactly what the parser, the
rewards and the API understand.

Output grammar (exactly)::

    <think>
    Q1 identical: NO
    Q2 indistinguishable: NO
    Q3 query match: <reason> => A>B
    ...
    Q9 background: <reason> => A<B
    </think>
    <answer>A</answer>

Each comparison gives its reason before its verdict, so that the verdict follows from what the
line has just said rather than the reason being written to fit a verdict already chosen: with
verdict-first lines the small base's query and title verdicts stayed at their majority class
whatever the images showed (experiments/README.md).

The parser is strict about what counts as well-formed and tolerant in what it still reads: it
never raises, and it reports every problem it saw in `Verdict.problems`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from typing import Any, Literal

Winner = Literal["A", "B"]
Comparison = Literal["A>B", "A=B", "A<B"]

COMPARISONS: tuple[str, ...] = ("A>B", "A=B", "A<B")
WINNERS: tuple[str, ...] = ("A", "B")


@dataclass(frozen=True)
class Question:
    """One protocol question: its id, the short name used in the output, the question text."""

    id: str
    name: str
    text: str
    kind: Literal["yesno", "compare"]


QUESTIONS: tuple[Question, ...] = (
    Question("Q1", "identical", "Are A and B the same image?", "yesno"),
    Question("Q2", "indistinguishable", "Are A and B too similar to judge?", "yesno"),
    Question("Q3", "query match", "Which matches the search query better?", "compare"),
    Question("Q4", "title match", "Which shows the product of the title better?", "compare"),
    Question(
        "Q5",
        "text in image",
        "Which has better text: selling point, price, call to action, legibility?",
        "compare",
    ),
    Question("Q6", "models and props", "Which uses models and props better?", "compare"),
    Question("Q7", "layout", "Which has the better layout?", "compare"),
    Question(
        "Q8",
        "product subject",
        "Which presents the product subject better: size, position, completeness?",
        "compare",
    ),
    Question(
        "Q9",
        "background",
        "Which has the better background: colour harmony, little clutter?",
        "compare",
    ),
)
QUESTION_BY_ID: dict[str, Question] = {q.id: q for q in QUESTIONS}
DIMENSION_IDS: tuple[str, ...] = tuple(q.id for q in QUESTIONS if q.kind == "compare")
FINAL_QUESTION = "Which creative will the user click more?"

_TAG_RE = re.compile(r"</?\s*(think|answer)\s*>", re.IGNORECASE)


@dataclass(frozen=True)
class DimensionVerdict:
    """The comparison on one dimension (Q3-Q9) and the reason given for it."""

    id: str
    verdict: Comparison
    reason: str

    @property
    def name(self) -> str:
        return QUESTION_BY_ID[self.id].name

    @property
    def question(self) -> str:
        return QUESTION_BY_ID[self.id].text


@dataclass
class Verdict:
    """What a completion says, and whether it said it in the protocol's exact form.

    `winner` is read whenever it can be, even from a broken frame (then `well_formed` is False and
    `problems` says why), so that evaluation can tell "wrong" from "unreadable".
    """

    winner: Winner | None = None
    identical: bool | None = None
    indistinguishable: bool | None = None
    dimensions: dict[str, DimensionVerdict] = field(default_factory=dict)
    well_formed: bool = False
    problems: list[str] = field(default_factory=list)

    @property
    def reason(self) -> str:
        """All problems in one line ('' when well-formed)."""
        return "; ".join(self.problems)

    def comparison(self, dim_id: str) -> Comparison | None:
        d = self.dimensions.get(dim_id)
        return d.verdict if d else None

    def swapped(self) -> Verdict:
        """The same judgement with A and B exchanged (verdicts flipped, letters in reasons swapped).

        Used for order-swap augmentation and for reading the second order of a pair.
        """
        dims = {
            k: DimensionVerdict(k, flip_comparison(d.verdict), swap_reason(d.reason))
            for k, d in self.dimensions.items()
        }
        winner = flip_letter(self.winner)
        return replace(self, winner=winner, dimensions=dims, problems=list(self.problems))

    def to_dict(self) -> dict[str, Any]:
        return {
            "winner": self.winner,
            "identical": self.identical,
            "indistinguishable": self.indistinguishable,
            "dimensions": [
                {
                    "id": d.id,
                    "name": d.name,
                    "question": d.question,
                    "verdict": d.verdict,
                    "reason": d.reason,
                }
                for d in (self.dimensions[k] for k in DIMENSION_IDS if k in self.dimensions)
            ],
            "well_formed": self.well_formed,
            "problems": list(self.problems),
        }


def flip_comparison(c: str | None) -> str | None:
    """A verdict seen from the other order: A>B <-> A<B, A=B (and None) unchanged."""
    return {"A>B": "A<B", "A<B": "A>B"}.get(c, c) if c else c


def flip_letter(label: str | None) -> str | None:
    """A winner seen from the other order: A <-> B (anything else becomes None)."""
    return {"A": "B", "B": "A"}.get(label or "")


_LETTER_RE = re.compile(r"\b([AB])\b")


def swap_letters(text: str) -> str:
    """Exchange the standalone creative letters A and B in a reason ("A shows ..." -> "B shows ...")."""
    return _LETTER_RE.sub(lambda m: "B" if m.group(1) == "A" else "A", text)


_B_FIRST_RE = re.compile(r"^(?P<head>.*?)\bB (?P<x>[^;]+?)(?P<sep>, |; )A (?P<y>.+)$")


def swap_reason(reason: str) -> str:
    """A reason for the exchanged pair: letters swapped, then "B x, A y" put back in A-first
    order ("A y, B x"), the order every teacher writes and the pretrained base reads."""
    text = swap_letters(reason)
    m = _B_FIRST_RE.match(text)
    if not m:
        return text
    return f"{m['head']}A {m['y']}{m['sep']}B {m['x']}"


def clean_reason(reason: str) -> str:
    """Make a free-text reason fit on one protocol line (no newlines, no protocol tags)."""
    reason = _TAG_RE.sub(" ", reason).replace(VERDICT_MARK, "->")
    return " ".join(reason.split())


# --------------------------------------------------------------------------------------------
# Prompt
# --------------------------------------------------------------------------------------------


def protocol_instructions() -> str:
    """The questions and the exact output format, as given to the model after the two images.

    Kept short on purpose: every prompt token is paid for in every training step and every
    request, and the output format already names each question.
    """
    yesno = " ".join(f"{q.id} {q.name}?" for q in QUESTIONS if q.kind == "yesno")
    compare = ", ".join(f"{q.id} {q.name}" for q in QUESTIONS if q.kind == "compare")
    return (
        f"Compare the creatives for this user, then answer: {FINAL_QUESTION}\n"
        f"{yesno} (YES or NO)\n"
        f"{compare}: reason => A>B, A=B or A<B\n"
        "Format: <think> one line per question </think><answer>A or B</answer>"
    )


def user_interest_text(query: str, title: str) -> str:
    return f"Search query: {query}\nProduct title: {title}"


def build_messages(
    query: str,
    title: str,
    image_a: Any = None,
    image_b: Any = None,
    *,
    style: Literal["hf", "openai"] = "hf",
) -> list[dict[str, Any]]:
    """The protocol prompt as one user turn of chat messages.

    style="hf": content parts `{"type": "image"}` (TRL's `messages` + `images` columns); when an
    image object is given it is attached as `{"type": "image", "image": obj}` so that
    transformers' `apply_chat_template` can load it. style="openai": `image_url` parts, the images
    given as URLs (data URLs for local images; `creative4u.images.to_data_url` makes them).
    """

    def image_part(img: Any) -> dict[str, Any]:
        if style == "openai":
            if img is None or not isinstance(img, str):
                raise ValueError(
                    "style='openai' needs each image as a URL string (data: or http(s):)"
                )
            return {"type": "image_url", "image_url": {"url": img}}
        return {"type": "image"} if img is None else {"type": "image", "image": img}

    content = [
        {"type": "text", "text": user_interest_text(query, title) + "\nCreative A:"},
        image_part(image_a),
        {"type": "text", "text": "Creative B:"},
        image_part(image_b),
        {"type": "text", "text": protocol_instructions()},
    ]
    return [{"role": "user", "content": content}]


# --------------------------------------------------------------------------------------------
# Render
# --------------------------------------------------------------------------------------------


def render(verdict: Verdict) -> str:
    """Write a verdict in the exact output grammar; the inverse of `parse` on well-formed text.

    Raises ValueError if the verdict cannot be written well-formed (no winner, a dimension
    missing, a reason that is empty after cleaning).
    """
    if verdict.winner not in WINNERS:
        raise ValueError(f"verdict has no winner (got {verdict.winner!r}); expected 'A' or 'B'")
    lines = ["<think>"]
    for q in QUESTIONS:
        if q.kind == "yesno":
            value = verdict.identical if q.id == "Q1" else verdict.indistinguishable
            lines.append(f"{q.id} {q.name}: {'YES' if value else 'NO'}")
            continue
        d = verdict.dimensions.get(q.id)
        if d is None:
            raise ValueError(f"verdict has no comparison for {q.id} ({q.name})")
        if d.verdict not in COMPARISONS:
            raise ValueError(
                f"{q.id}: verdict {d.verdict!r} is not one of {', '.join(COMPARISONS)}"
            )
        reason = clean_reason(d.reason)
        if not reason:
            raise ValueError(f"{q.id}: the reason is empty")
        lines.append(f"{q.id} {q.name}: {reason} {VERDICT_MARK} {d.verdict}")
    lines.append("</think>")
    lines.append(f"<answer>{verdict.winner}</answer>")
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------
# Parse
# --------------------------------------------------------------------------------------------

_ANSWER_RE = re.compile(r"<answer>\s*(.*?)\s*</answer>", re.DOTALL)
_OPEN_ANSWER_RE = re.compile(r"<answer>\s*([AB])\b")
_LOOSE_ANSWER_RE = re.compile(
    r"(?:^|\n)\s*(?:answer|winner)\s*[:=]?\s*\**\s*([AB])\b\W*$", re.IGNORECASE
)
_LINE_RE = re.compile(r"^(Q\d+)\s+([a-z ]+?)\s*:\s*(.*)$")
VERDICT_MARK = "=>"
_COMPARE_RE = re.compile(r"^(.*?)\s*=>\s*(\S+)$")
_VERDICT_FIRST_RE = re.compile(r"^(A[<>=]B)\s+-\s+(.+)$")


def _parse_line(line: str, v: Verdict, seen: list[str], problems: list[str]) -> None:
    m = _LINE_RE.match(line)
    if not m:
        problems.append(f"unexpected line in <think>: {line[:60]!r}")
        return
    qid, name, rest = m.group(1), m.group(2), m.group(3).strip()
    q = QUESTION_BY_ID.get(qid)
    if q is None:
        problems.append(f"unknown question {qid}")
        return
    if qid in seen:
        problems.append(f"{qid} answered twice")
        return
    seen.append(qid)
    if name != q.name:
        problems.append(f"{qid} is named {name!r}, expected {q.name!r}")
    if q.kind == "yesno":
        if rest not in ("YES", "NO"):
            problems.append(f"{qid}: {rest[:20]!r} is not YES or NO")
            return
        if qid == "Q1":
            v.identical = rest == "YES"
        else:
            v.indistinguishable = rest == "YES"
        return
    cm = _COMPARE_RE.match(rest)
    if not cm:
        old = _VERDICT_FIRST_RE.match(rest)
        if old:  # read, but not well-formed: the reason must come before the verdict
            problems.append(
                f"{qid}: verdict before its reason (expected 'reason => {old.group(1)}')"
            )
            v.dimensions[qid] = DimensionVerdict(qid, old.group(1), old.group(2).strip())  # type: ignore[arg-type]
            return
        problems.append(f"{qid}: no '{VERDICT_MARK} verdict' at the end of {rest[:40]!r}")
        return
    reason, token = cm.group(1).strip(), cm.group(2)
    if token not in COMPARISONS:
        problems.append(f"{qid}: verdict {token[:20]!r} is not one of {', '.join(COMPARISONS)}")
        return
    if not reason:
        problems.append(
            f"{qid}: no reason before the verdict (expected 'reason {VERDICT_MARK} {token}')"
        )
    v.dimensions[qid] = DimensionVerdict(qid, token, reason)  # type: ignore[arg-type]


def parse(text: str | None) -> Verdict:
    """Read a completion into a `Verdict`. Never raises; `problems` lists every deviation."""
    v = Verdict()
    problems: list[str] = []
    if text is None or not str(text).strip():
        v.problems = ["empty output"]
        return v
    text = str(text).strip()

    # --- the answer -----------------------------------------------------------------------
    answers = _ANSWER_RE.findall(text)
    answer_end = None
    if len(answers) > 1:
        problems.append(f"{len(answers)} <answer> blocks, expected one")
    if answers:
        values = {a.strip() for a in answers}
        bad = [a for a in values if a not in WINNERS]
        if bad:
            problems.append(f"answer {bad[0][:20]!r} is not A or B")
        good = [a for a in values if a in WINNERS]
        if len(good) == 1 and not bad:
            v.winner = good[0]  # type: ignore[assignment]
        elif len(good) > 1:
            problems.append("the answers disagree")
        answer_end = [m.end() for m in _ANSWER_RE.finditer(text)][-1]
    else:
        m = _OPEN_ANSWER_RE.search(text)
        if m:
            v.winner = m.group(1)  # type: ignore[assignment]
            problems.append("missing </answer>")
            answer_end = len(text)
        else:
            problems.append("missing <answer>")
            m = _LOOSE_ANSWER_RE.search(text)
            if m:
                v.winner = m.group(1).upper()  # type: ignore[assignment]
                problems.append("answer outside <answer> tags")
    if answer_end is not None and text[answer_end:].strip():
        problems.append("extra text after </answer>")

    # --- the reasoning --------------------------------------------------------------------
    think_start = text.find("<think>")
    if think_start < 0:
        problems.append("missing <think>")
    else:
        if text[:think_start].strip():
            problems.append("extra text before <think>")
        if text.count("<think>") > 1:
            problems.append("more than one <think>")
        body_start = think_start + len("<think>")
        close = text.find("</think>", body_start)
        first_answer = text.find("<answer>", body_start)
        if close < 0:
            problems.append("missing </think>")
            body_end = first_answer if first_answer >= 0 else len(text)
        else:
            body_end = close
            if first_answer >= 0 and first_answer < close:
                problems.append("<answer> inside <think>")
                body_end = first_answer
            between_end = first_answer if first_answer > close else len(text)
            if text[close + len("</think>") : between_end].strip():
                problems.append("extra text between </think> and <answer>")
        seen: list[str] = []
        for raw in text[body_start:body_end].splitlines():
            line = raw.strip()
            if line:
                _parse_line(line, v, seen, problems)
        expected = [q.id for q in QUESTIONS]
        missing = [q for q in expected if q not in seen]
        if missing:
            problems.append(f"missing {', '.join(missing)}")
        elif seen != expected:
            problems.append("questions out of order")

    v.problems = problems
    v.well_formed = not problems and v.winner is not None
    return v
