"""The scene teacher: rationales from what the simulator drew, for CreativeSim worlds.

Creative4U's rationales come from a strong VLM that looks at a labelled pair and explains the
winner; on GPUs `--teacher openai` is that. No such model runs on this project's CPU path, and
the `features` teacher, which measures pixels with OCR and colour statistics, agrees with the
true per-dimension comparison on only about two thirds of the verdicts, so a model that imitates
it learns verdicts that barely predict the label (the dataset card's "rationale ceiling"). The
scene teacher stands in for the strong annotator: it reads each creative's scene record (the
world's `creatives.parquet`: colour, style, cue, text, person, layout, subject, background) and
the world's per-dimension scores (`truth.parquet`), so every verdict is the true comparison and
every reason names what the two images show, in the words the pretrained base describes
creatives with (`data.sim.scene`). Like every teacher it explains the label; it never picks it.

It needs a simulated world: a click log with no scene record gets a clear error, and the
`features` teacher remains the offline choice there.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from creative4u.perception import FACTORS, marked_pair, pair_text, query_kind
from creative4u.protocol import DIMENSION_IDS, DimensionVerdict, Verdict, parse, render

SOURCE = "scene"
SCENE_FILE = "creatives.parquet"
QUERY_WORDS = frozenset(FACTORS["colour"] + FACTORS["style"] + FACTORS["cue"]) - {"none"}


def load_scene(path: str | Path) -> dict[str, dict[str, str]]:
    """creative id -> its visible factors, from a world's `creatives.parquet`."""
    import pandas as pd

    from data.sim.scene import factors_from_record

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"--teacher scene needs the world's scene record {path} (written by `creative4u data "
            "simulate`); for a click log without one use --teacher features or openai"
        )
    return {
        str(r["creative_id"]): factors_from_record(r)
        for r in pd.read_parquet(path).to_dict("records")
    }


def query_word(query: str) -> str | None:
    """The query word a creative can show (a colour, a style or a cue), or None."""
    return next((w for w in query.lower().split() if w in QUERY_WORDS), None)


def _product_suits() -> dict[str, str]:
    """Every product noun of the lexicon, longest first (`tote bag` before `bag`), with what it
    suits: a model for the categories where a person helps more than a prop, a prop otherwise."""
    from creative4u.lexicon import CATEGORIES
    from data.sim.world import PERSON_CATEGORIES

    suits = {
        noun: "model" if category in PERSON_CATEGORIES else "prop"
        for category, nouns in CATEGORIES.items()
        for noun in nouns
    }
    return dict(sorted(suits.items(), key=lambda kv: len(kv[0]), reverse=True))


PRODUCT_SUITS = _product_suits()


def product_noun(title: str) -> str | None:
    """The product a CreativeSim title names (its last words: `Nova cute red tote bag` -> `tote
    bag`), or None for a title that ends in no product of the lexicon."""
    words = title.lower().split()
    return next((n for n in PRODUCT_SUITS if words[-len(n.split()) :] == n.split()), None)


def people_reason(fa: Mapping[str, str], fb: Mapping[str, str], title: str) -> str:
    """Q6's reason: who or what each creative shows beside the product, after what the product
    suits (`dress suits a model: A model, B prop`). Whether a person helps more than a prop depends
    on the product (worn or carried, or not), which the title names; without it the verdict could
    not follow from the reason."""
    shown = pair_text(fa["person"], fb["person"])
    noun = product_noun(title)
    return shown if noun is None else f"{noun} suits a {PRODUCT_SUITS[noun]}: {shown}"


def reasons(fa: Mapping[str, str], fb: Mapping[str, str], query: str, title: str) -> dict[str, str]:
    """One short reason per dimension, naming what each creative shows."""
    word = query_word(query)
    if word is None:
        q3 = "the query names nothing an image shows"
    else:
        kind = query_kind(word)
        q3 = f"query wants {word}: {marked_pair(word, fa[kind], fb[kind])}"
    colour = next((w for w in title.lower().split() if w in FACTORS["colour"]), None)
    q4 = pair_text(fa["colour"], fb["colour"])
    if colour:
        q4 = f"title says {colour}: {marked_pair(colour, fa['colour'], fb['colour'])}"
    return {
        "Q3": q3,
        "Q4": q4,
        "Q5": "text " + pair_text(fa["text"], fb["text"], "; "),
        "Q6": people_reason(fa, fb, title),
        "Q7": pair_text(fa["layout"], fb["layout"]),
        "Q8": pair_text(
            f"{fa['subject']} {fa['position']} {fa['crop']}",
            f"{fb['subject']} {fb['position']} {fb['crop']}",
        ),
        "Q9": pair_text(
            f"{fa['background']} {fa['colours']}",
            f"{fb['background']} {fb['colours']}",
        ),
    }


def explain(
    fa: Mapping[str, str],
    fb: Mapping[str, str],
    query: str,
    title: str,
    dimensions: Mapping[str, str],
    label: str,
) -> Verdict:
    """The verdict for a pair whose winner is `label`, with the true per-dimension comparisons."""
    missing = [d for d in DIMENSION_IDS if d not in dimensions]
    if missing:
        raise ValueError(f"the pair's truth lacks dimension(s) {', '.join(missing)}")
    why = reasons(fa, fb, query, title)
    dims = {d: DimensionVerdict(d, dimensions[d], why[d]) for d in DIMENSION_IDS}  # type: ignore[arg-type]
    same = dict(fa) == dict(fb)
    return Verdict(winner=label, identical=False, indistinguishable=same, dimensions=dims)  # type: ignore[arg-type]


def rationales(
    rows: Iterable[Mapping[str, Any]], scene: Mapping[str, Mapping[str, str]], truth: Iterable[str]
) -> list[str]:
    """Rationales for rows with `creative_a`, `creative_b`, `query`, `title`, `label`, given each
    row's `truth` JSON; "" for unlabelled rows. A labelled row without a scene record or truth is
    an error that names the pair: the teacher never writes a rationale it cannot ground."""
    out = []
    for r, t in zip(rows, truth, strict=True):
        if not r["label"]:
            out.append("")
            continue
        ca, cb = str(r["creative_a"]), str(r["creative_b"])
        lost = [c for c in (ca, cb) if c not in scene]
        if lost or not t:
            what = f"no scene record for {', '.join(lost)}" if lost else "no truth row"
            raise ValueError(f"scene teacher: pair {r.get('pair_id', (ca, cb))}: {what}")
        dims = json.loads(t)["dimensions"]
        text = render(explain(scene[ca], scene[cb], r["query"], r["title"], dims, r["label"]))
        v = parse(text)
        if not v.well_formed or v.winner != r["label"]:  # pragma: no cover - a bug in this module
            raise AssertionError(f"scene rationale does not parse back: {v.reason}\n{text}")
        out.append(text)
    return out
