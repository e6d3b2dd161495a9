"""The scene teacher (`data build --teacher scene`): rationales from a CreativeSim world's scene
record, their verdicts the world's true per-dimension comparisons, their reasons what each image
shows. Expectations are read independently from the world's own parquet files."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pandas as pd
import pytest
from datasets import load_from_disk

from creative4u.lexicon import CATEGORIES
from creative4u.protocol import DIMENSION_IDS, parse
from creative4u.schema import SPLITS
from data.build import BuildConfig, build
from data.sim.world import PERSON_CATEGORIES
from data.teachers.scene import product_noun, query_word


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from data.sim.config import SimConfig
    from data.simulate import simulate

    root = tmp_path_factory.mktemp("scene-world")
    simulate(SimConfig(products=8, creatives=3, queries=3, seed=5, image_size=224), root, False)
    return root


def _build(world: Path, out: Path, **kw) -> dict:
    cfg = BuildConfig(
        logs=str(world / "logs.parquet"),
        images=str(world / "images"),
        out=str(out),
        val_frac=0.25,
        test_frac=0.25,
        ocr=False,
        progress=False,
        teacher="scene",
        **kw,
    )
    return build(cfg)


def test_verdicts_are_the_true_comparisons_and_reasons_name_the_scene(
    world: Path, tmp_path: Path
) -> None:
    card = _build(world, tmp_path / "ds")
    assert card["teacher"]["name"] == "scene"
    scene = pd.read_parquet(world / "creatives.parquet").set_index("creative_id")
    dd = load_from_disk(str(tmp_path / "ds"))
    rows = [r for s in SPLITS for r in dd[s]]
    assert rows and all(r["rationale_source"] == "scene" for r in rows)
    layouts = {"pip": "picture-in-picture"}
    for r in rows:
        v = parse(r["rationale"])
        assert v.well_formed and v.winner == r["label"], v.problems
        truth = json.loads(r["truth"])["dimensions"]
        assert {d: v.comparison(d) for d in DIMENSION_IDS} == truth
        a, b = scene.loc[r["creative_a"]], scene.loc[r["creative_b"]]
        la, lb = (layouts.get(x, x) for x in (a["layout"], b["layout"]))
        q7 = v.dimensions["Q7"].reason
        assert q7 == f"A {la}, B {lb}"  # each creative named, even when both show the same
        q4 = v.dimensions["Q4"].reason
        assert a["shown_colour"] in q4 and b["shown_colour"] in q4
        word = query_word(r["query"])
        assert word is not None and v.dimensions["Q3"].reason.startswith(f"query wants {word}")
        # each shown colour is marked against the title's: `A red yes, B blue no`, `A red no,
        # B red no`
        colour = next(w for w in r["title"].split() if w in set(scene["shown_colour"]))
        ya, yb = (x["shown_colour"] == colour for x in (a, b))
        mark = {True: "yes", False: "no"}
        want = f"A {a['shown_colour']} {mark[ya]}, B {b['shown_colour']} {mark[yb]}"
        assert q4 == f"title says {colour}: {want}"
        assert v.comparison("Q4") == ("A=B" if ya == yb else "A>B" if ya else "A<B")
        other = v.swapped().dimensions["Q4"].reason  # the other order names A first too
        assert other == (
            f"title says {colour}: A {b['shown_colour']} {mark[yb]}, "
            f"B {a['shown_colour']} {mark[ya]}"
        )
        # Q6 names what the product suits before who is shown: a person helps apparel, shoes,
        # bags and beauty more than a prop, and other products less (the world's Q6 score)
        q6 = v.dimensions["Q6"].reason
        noun = next(n for n in CATEGORIES[r["category"]] if r["title"].endswith(" " + n))
        suits = "model" if r["category"] in PERSON_CATEGORIES else "prop"
        assert q6 == f"{noun} suits a {suits}: A {a['person']}, B {b['person']}", q6
        if {a["person"], b["person"]} == {"model", "prop"}:
            model_first = a["person"] == "model"
            assert v.comparison("Q6") == ("A>B" if model_first == (suits == "model") else "A<B")


def test_teacher_needs_a_scene_record_and_truth(world: Path, tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"scene record .*nowhere\.parquet"):
        _build(world, tmp_path / "a", scene=str(tmp_path / "nowhere.parquet"))
    bare = tmp_path / "bare"
    bare.mkdir()
    shutil.copy(world / "logs.parquet", bare / "logs.parquet")  # no truth, no scene beside it
    with pytest.raises(ValueError, match="truth table"):
        build(
            BuildConfig(
                logs=str(bare / "logs.parquet"),
                images=str(world / "images"),
                out=str(tmp_path / "b"),
                ocr=False,
                progress=False,
                teacher="scene",
            )
        )


def test_cli_accepts_the_scene_teacher(world: Path, tmp_path: Path) -> None:
    from creative4u.cli import main

    out = tmp_path / "cli"
    rc = main(
        ["data", "build", "--logs", str(world / "logs.parquet"), "--images", str(world / "images")]
        + ["--out", str(out), "--teacher", "scene", "--no-ocr"]
    )
    assert rc in (0, None)
    readme = (out / "README.md").read_text()
    assert re.search(r"rationale teacher: scene", readme)


@pytest.mark.parametrize(
    "query,word",
    [
        ("red jacket", "red"),
        ("jacket sale", "sale"),
        ("new jacket", "new"),
        ("sporty bag", "sporty"),
    ],
)
def test_query_word(query: str, word: str) -> None:
    assert query_word(query) == word
    assert query_word("jacket") is None


@pytest.mark.parametrize(
    "title,noun",
    [
        ("Nova cute red tote bag", "tote bag"),
        ("Lumi orange water bottle", "water bottle"),
        ("Kiro vintage black boots", "boots"),
        ("Acme widget", None),
        ("bag of tricks", None),  # a product's name ends the title
    ],
)
def test_product_noun(title: str, noun: str | None) -> None:
    assert product_noun(title) == noun


def test_rationales_fit_what_training_and_serving_generate(world: Path, tmp_path: Path) -> None:
    """A rationale cut short is malformed: GRPO's completions and every generation the selector
    serves must have room for the longest the teacher writes (with the small base's tokenizer,
    which the demo trains)."""
    import yaml

    from creative4u.vlm import load_processor
    from serve.config import ServeConfig

    _build(world, tmp_path / "ds")
    dd = load_from_disk(str(tmp_path / "ds"))
    tok = load_processor(
        str(Path(__file__).resolve().parents[1] / "models" / "small-base")
    ).tokenizer
    longest = max(
        len(tok(r["rationale"])["input_ids"]) + 1  # the end-of-turn token
        for s in SPLITS
        for r in dd[s]
        if r["rationale"]
    )
    grpo = yaml.safe_load(Path("recipes/small/grpo.yaml").read_text())
    assert longest <= grpo["max_completion_length"], longest
    assert longest <= ServeConfig().default_max_tokens, longest
