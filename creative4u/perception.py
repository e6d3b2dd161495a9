"""The perception tasks a base model is pretrained on, and how their answers are read and scored.

A pretrained VLM such as Qwen2.5-VL already sees colours, reads layouts and copies words from its
prompt before CoT-SFT teaches it the protocol. The from-scratch CPU models learn that here, from
CreativeSim creatives and nothing else: never clicks, CTRs, pair labels or dimension scores, so
which properties users prefer still comes only from CreativePair. The data stage writes the
examples with these functions and the pretraining stage scores its generations with the same
ones, as `creative4u.protocol` does for the selector.

Every task answers in fixed slots (`colour red; style cute; ...`), so a generation is scored slot
by slot against the creative's design factors: the model card reports each factor on its own.
"""

from __future__ import annotations

from typing import Any

from creative4u.protocol import user_interest_text

# The visible design factors, in the order a description lists them, with their values.
FACTORS: dict[str, tuple[str, ...]] = {
    "colour": (
        "red",
        "blue",
        "green",
        "yellow",
        "black",
        "white",
        "pink",
        "orange",
        "purple",
        "brown",
    ),
    "style": ("minimalist", "sporty", "cute", "luxury", "vintage"),
    "cue": ("none", "sale", "gift", "new"),
    "text": (),  # "none", "faint" or the legible elements, e.g. "selling point, price badge"
    "person": ("none", "prop", "model"),
    "layout": ("plain", "bordered", "picture-in-picture", "crowded"),
    "subject": ("small", "medium", "large"),
    "position": ("centred", "off-centre"),
    "crop": ("complete", "cropped"),
    "colours": ("harmonious", "clashing"),
    "background": ("plain", "cluttered"),
}
TEXT_ELEMENTS: tuple[str, ...] = ("selling point", "price badge", "call to action")

# The comparisons of the two-creative task, in order: (line name, how it is decided).
COMPARISONS: tuple[str, ...] = (
    "query",
    "title",
    "larger subject",
    "plainer background",
    "person",
    "more text",
)
SUBJECT_RANK = {"small": 0, "medium": 1, "large": 2}

TASKS: tuple[str, ...] = ("describe_one", "query_one", "title_one", "describe_two", "compare_two")

INSTRUCTIONS: dict[str, str] = {
    "describe_one": "Describe creative A.",
    "query_one": "Does A show what the query asks for?",
    "title_one": "Does A show the title's colour?",
    "describe_two": "Describe both creatives.",
    "compare_two": "Compare A and B.",
}


def query_kind(word: str) -> str:
    """Which factor a query word asks about: a colour, a style or a cue."""
    if word in FACTORS["colour"]:
        return "colour"
    if word in FACTORS["style"]:
        return "style"
    return "cue"


def describe(factors: dict[str, str]) -> str:
    """One creative's factors in slot form: `colour red; style cute; ...; background plain`."""
    return "; ".join(f"{k} {factors[k]}" for k in FACTORS)


def parse_slots(text: str) -> dict[str, str]:
    """`key value; key value` back into a dict (unknown or broken slots are skipped, never raise)."""
    out: dict[str, str] = {}
    for part in text.split(";"):
        part = part.strip()
        for key in sorted(FACTORS, key=len, reverse=True):
            if part.startswith(key + " "):
                out.setdefault(key, part[len(key) + 1 :].strip())
                break
    return out


def pair_text(a: str, b: str, sep: str = ", ", both: bool = False) -> str:
    """`A x, B y` (`sep` "; " where the values hold commas themselves): how the scene teacher's
    reasons name what two creatives show, each creative on its own even when they show the same
    (`A plain, B plain`). Writing `both x` for that case (`both=True`) asks a model to decide
    equality before it has named either value: SFT models trained on it almost never wrote
    `both`, wrote `A x, B x` instead, and missed 83 % of those verdicts (experiments/README.md)."""
    return f"both {a}" if both and a == b else f"A {a}{sep}B {b}"


def marked_pair(wanted: str, a: str, b: str, both: bool = False) -> str:
    """`A red yes, B blue no`: each shown value followed by whether it is the wanted one. The
    scene teacher's query and title reasons and `creative4u.matching`'s lines are both written with
    it, so the matching SFT starts with is in the words its rationales use (the lines keep
    `both red no` for two equal values, `both=True`, as the shipped base learnt them)."""

    def mark(v: str) -> str:
        return f"{v} {'yes' if v == wanted else 'no'}"

    return pair_text(mark(a), mark(b), both=both)


def _side(fa: dict[str, str], fb: dict[str, str], key: Any) -> str:
    """'A', 'B' or 'same' for a comparison whose score function is `key`."""
    a, b = key(fa), key(fb)
    return "A" if a > b else "B" if b > a else "same"


def wanted_head(name: str, word: str) -> str:
    """`query wants sporty` or `title says red`: how every task and the protocol name the word a
    creative is held against."""
    return f"query wants {word}" if name == "query" else f"title says {word}"


def question(head: str, wanted: str, shown: str) -> str:
    """The one-creative question's answer: `title says red; A shows blue; NO`."""
    return f"{head}; A shows {shown}; {'YES' if shown == wanted else 'NO'}"


def comparison(head: str, wanted: str, a: str, b: str) -> str:
    """A two-creative comparison line on the wanted word: `query wants red: A red, B blue - A`."""
    return f"{head}: A {a}, B {b} - " + _side({"v": a}, {"v": b}, lambda f: f["v"] == wanted)


def _text_count(f: dict[str, str]) -> int:
    return sum(e in f["text"] for e in TEXT_ELEMENTS)


def _plainness(f: dict[str, str]) -> int:
    return (f["background"] == "plain") + (f["colours"] == "harmonious")


def compare(fa: dict[str, str], fb: dict[str, str], query_word: str, title_colour: str) -> str:
    """The two-creative comparison lines, each `name: A x, B y - A|B|same`."""
    kind = query_kind(query_word)
    lines = [
        comparison(wanted_head("query", query_word), query_word, fa[kind], fb[kind]),
        comparison(wanted_head("title", title_colour), title_colour, fa["colour"], fb["colour"]),
        f"larger subject: A {fa['subject']}, B {fb['subject']} - "
        + _side(fa, fb, lambda f: SUBJECT_RANK[f["subject"]]),
        f"plainer background: A {fa['background']} {fa['colours']}, "
        f"B {fb['background']} {fb['colours']} - " + _side(fa, fb, _plainness),
        f"person: A {fa['person']}, B {fb['person']} - "
        + _side(fa, fb, lambda f: f["person"] == "model"),
        f"more text: A {_text_count(fa)}, B {_text_count(fb)} - " + _side(fa, fb, _text_count),
    ]
    return "\n".join(lines)


def target(
    task: str,
    factors: list[dict[str, str]],
    query: str = "",
    query_word: str = "",
    title: str = "",
    title_colour: str = "",
) -> str:
    """The answer a task's example is trained on."""
    fa = factors[0]
    if task == "describe_one":
        return "A: " + describe(fa)
    if task == "query_one":
        return question(wanted_head("query", query_word), query_word, fa[query_kind(query_word)])
    if task == "title_one":
        return question(wanted_head("title", title_colour), title_colour, fa["colour"])
    if task == "describe_two":
        return "A: " + describe(fa) + "\nB: " + describe(factors[1])
    if task == "compare_two":
        return compare(fa, factors[1], query_word, title_colour)
    raise ValueError(f"unknown perception task {task!r}; choose one of {', '.join(TASKS)}")


def messages(task: str, query: str = "", title: str = "") -> list[dict[str, Any]]:
    """The task's user turn. Two-creative tasks use the protocol's own layout (user interest, then
    `Creative A: <image> Creative B: <image>`), so that what is learnt there is what the selector's
    prompt shows."""
    image = {"type": "image"}
    ask = {"type": "text", "text": INSTRUCTIONS[task]}
    if task in ("describe_two", "compare_two"):
        head = user_interest_text(query, title) + "\nCreative A:"
        content = [{"type": "text", "text": head}, image, {"type": "text", "text": "Creative B:"}]
        content += [image, ask]
    else:
        head = {"query_one": f"Search query: {query}\n", "title_one": f"Product title: {title}\n"}
        content = [{"type": "text", "text": head.get(task, "") + "Creative A:"}, image, ask]
    return [{"role": "user", "content": content}]


def score(task: str, expected: str, generated: str) -> list[tuple[str, bool]]:
    """Each field of the expected answer and whether the generation got it right (a field the
    generation lacks is wrong). A field appears once per creative it describes.

    Fields: a factor (`colour`, `layout`, ...) for descriptions; `query word` / `title word` for
    copying a word from the prompt; `query shown` / `title shown` and `query answer` /
    `title answer` for the one-creative questions; `<name> comparison` for each comparison."""
    if task in ("describe_one", "describe_two"):
        want, got = _descriptions(expected), _descriptions(generated)
        return [
            (k, got.get(side, {}).get(k) == v)
            for side, slots in want.items()
            for k, v in slots.items()
        ]
    if task in ("query_one", "title_one"):
        w, g = [p.strip() for p in expected.split(";")], [p.strip() for p in generated.split(";")]
        g += [""] * (3 - len(g))
        name = "query" if task == "query_one" else "title"
        return [(f"{name} {f}", g[i] == w[i]) for i, f in enumerate(("word", "shown", "answer"))]
    if task == "compare_two":
        w, g = _comparison_lines(expected), _comparison_lines(generated)
        out: list[tuple[str, bool]] = []
        for name, (head, verdict) in w.items():
            got = g.get(name)
            if name in ("query", "title"):
                same_word = got is not None and got[0].split(":")[0] == head.split(":")[0]
                out.append((f"{name} word", same_word))
            out.append((f"{name} comparison", got is not None and got[1] == verdict))
        return out
    raise ValueError(f"unknown perception task {task!r}; choose one of {', '.join(TASKS)}")


def _descriptions(text: str) -> dict[str, dict[str, str]]:
    """{'A': slots, 'B': slots} from `A: ...` / `B: ...` lines."""
    out: dict[str, dict[str, str]] = {}
    for line in text.splitlines():
        line = line.strip()
        if line[:2] in ("A:", "B:"):
            out.setdefault(line[0], parse_slots(line[2:]))
    return out


def _comparison_lines(text: str) -> dict[str, tuple[str, str]]:
    """{comparison name: (line head, 'A'|'B'|'same')} from `head - verdict` lines."""
    out: dict[str, tuple[str, str]] = {}
    for line in text.splitlines():
        head, sep, verdict = line.strip().rpartition(" - ")
        if not sep:
            continue
        name = next((c for c in COMPARISONS if head.startswith(c)), None)
        if name:
            out.setdefault(name, (head, verdict.strip()))
    return out


def summarise(
    tasks: list[str], expected: list[str], generated: list[str]
) -> dict[str, dict[str, dict[str, float]]]:
    """Accuracy per task and field, and per field over all tasks: {'by_task': {task: {field:
    {'accuracy', 'n'}}}, 'by_field': {field: {...}}}. A factor a one-creative and a two-creative
    task both describe appears in each of them, so the card can tell whether perception carried
    into the protocol's two-image layout."""
    counts: dict[tuple[str, str], list[int]] = {}
    for task, want, got in zip(tasks, expected, generated, strict=True):
        for name, ok in score(task, want, got):
            for key in ((task, name), ("all", name)):
                c = counts.setdefault(key, [0, 0])
                c[0] += ok
                c[1] += 1
    by_task: dict[str, dict[str, dict[str, float]]] = {}
    for (task, name), (right, n) in sorted(counts.items()):
        by_task.setdefault(task, {})[name] = {"accuracy": round(right / n, 4), "n": n}
    return {
        "by_task": {t: v for t, v in by_task.items() if t != "all"},
        "by_field": by_task.get("all", {}),
    }


# Every answer that decides something follows one of these: the `YES`/`NO` of a one-creative
# question (`...; A shows red; YES`) and a comparison's `A`/`B`/`same` (`... - A`).
ANSWER_SEPARATORS: tuple[str, ...] = (";", " -")


def answer_token_weights(labels: Any, separator_ids: Any, weight: float) -> Any:
    """Per-position loss weights for (shifted) `labels`: `weight` on the first token after each
    answer separator, 1 elsewhere. In a description the token after `;` is the next slot's name,
    which the format fixes, so weighting it costs nothing once the format is learnt; the tokens
    that carry a decision are one in about twelve of a question's answer, and one in seven of a
    comparison line's."""
    import torch

    w = torch.ones_like(labels, dtype=torch.float32)
    if labels.shape[1] > 1:
        after = torch.isin(labels[:, :-1], separator_ids) & (labels[:, 1:] != -100)
        w[:, 1:][after] = weight
    return w


def answer_separator_ids(tokenizer: Any) -> Any:
    """The separators' last token ids in the model's own tokenizer."""
    import torch

    ids = [tokenizer(s, add_special_tokens=False)["input_ids"][-1] for s in ANSWER_SEPARATORS]
    return torch.tensor(ids)


def evaluate(
    model: Any, processor: Any, split: Any, max_examples: int = 600, batch_size: int = 32
) -> dict[str, Any]:
    """Greedy answers on (part of) a held-out corpus split, scored field by field."""
    from creative4u.generation import generate_texts

    rows = split.select(range(min(max_examples, len(split))))
    tasks = list(rows["task"])
    expected = [c[0]["content"] for c in rows["completion"]]
    prompts = [_drop_empty_text(p) for p in rows["prompt"]]
    generated = generate_texts(
        model, processor, prompts, list(rows["images"]), max_new_tokens=200, batch_size=batch_size
    )
    report = summarise(tasks, expected, generated)
    report["examples"] = [
        {"task": t, "expected": e, "generated": g}
        for t, e, g in list(zip(tasks, expected, generated, strict=True))[:12]
    ]
    report["n"] = len(rows)
    return report


def _drop_empty_text(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Stored messages carry `text: None` on image parts (one Arrow schema for all parts)."""
    return [
        {
            **m,
            "content": [{k: v for k, v in part.items() if v is not None} for part in m["content"]],
        }
        for m in messages
    ]
