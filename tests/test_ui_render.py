"""What the page shows, from API responses alone (no server, no browser): the verdict banner,
the dimension table, the CTR bars, the ranking and its exports, and the upload checks."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest
from PIL import Image

from serve.ui import render
from serve.ui.api import APIProblem
from serve.ui.images import UploadProblem, canvas_size, letterbox, mark_winner, read_upload

SELECT = {
    "winner": "B",
    "confidence": 0.8123,
    "p_a": 0.1877,
    "decided_by": "answer_probabilities",
    "order_swap_agreed": True,
    "dimensions": [
        {
            "id": "Q3",
            "name": "query match",
            "question": "Which matches the search query better?",
            "verdict": "A<B",
            "reason": "B shows the <brown> hoodie",
            "swap_verdict": "A<B",
            "agreed": True,
        },
        {
            "id": "Q4",
            "name": "title match",
            "question": "Which shows the product of the title better?",
            "verdict": None,
            "reason": None,
            "swap_verdict": None,
            "agreed": None,
        },
    ],
    "rationale": "Q3 query match: B shows the brown hoodie => A<B",
    "well_formed": True,
    "problems": [],
    "ctr": {"a": 0.021, "b": 0.042},
}

RANK = {
    "ranking": [
        {
            "rank": 1,
            "id": "green.png",
            "index": 2,
            "score": 0.7,
            "expected_wins": 2.0,
            "ctr": 0.05,
            "decisive": [
                {
                    "against": "red.png",
                    "against_index": 0,
                    "won": True,
                    "p_win": 0.71,
                    "dimensions": [
                        {"id": "Q9", "name": "background", "verdict": "A>B", "reason": "calm"},
                        {"id": "Q7", "name": "layout", "verdict": "A<B", "reason": None},
                    ],
                }
            ],
        },
        {
            "rank": 2,
            "id": "red.png",
            "index": 0,
            "score": -0.7,
            "expected_wins": 1.0,
            "ctr": None,
            "decisive": [
                {
                    "against": "green.png",
                    "against_index": 2,
                    "won": False,
                    "p_win": 0.29,
                    "dimensions": [],
                }
            ],
        },
    ],
    "method": "Bradley-Terry (MM) over 1 pairs, prior 0.5",
    "problems": ["1 of 1 comparisons were not well-formed"],
}


def test_banner_names_winner_confidence_and_agreement_and_escapes() -> None:
    html = render.verdict_banner(SELECT | {"problems": ["<script>x</script>"]})
    assert "Creative B" in html and "wins" in html and "81 %" in html
    assert "Both orders agree" in html
    assert "<script>" not in html and "&lt;script&gt;" in html
    disagree = render.verdict_banner(SELECT | {"order_swap_agreed": False})
    assert "disagree" in disagree
    by_rule = render.verdict_banner(SELECT | {"decided_by": "default", "confidence": 0.5})
    assert "by rule" in by_rule and "wins" not in by_rule


def test_dimension_table_has_question_verdict_reason() -> None:
    df = render.dimension_rows(SELECT)
    assert list(df.columns) == render.DIMENSION_COLUMNS
    assert df.iloc[0]["Verdict"] == "A<B (B better)" and df.iloc[0]["Both orders"] == "agree"
    assert "Which matches" in df.iloc[0]["Question"] and "hoodie" in df.iloc[0]["Reason"]
    assert df.iloc[1]["Verdict"] == "—" and df.iloc[1]["Reason"] == "(no reason given)"
    assert render.dimension_rows({}).empty


def test_ctr_bars_scale_to_the_largest_and_say_when_missing() -> None:
    html = render.ctr_bars([("A", 0.021), ("B", 0.042)], winner="B")
    assert "width:50.0%" in html and "width:100.0%" in html and "c4u-bar-win" in html
    assert "2.10 %" in html and "4.20 %" in html
    assert "not available" in render.ctr_bars([("A", None), ("B", None)])


def test_rank_table_reasons_and_exports() -> None:
    df = render.rank_rows(RANK)
    assert list(df["Creative"]) == ["green.png", "red.png"]
    why = df.iloc[0]["Why here"]
    assert (
        "beat red.png" in why and "better on background (calm)" in why and "worse on layout" in why
    )
    assert df.iloc[1]["Predicted CTR"] == "—" and "lost to green.png" in df.iloc[1]["Why here"]
    rows = list(csv.DictReader(io.StringIO(render.rank_csv(RANK))))
    assert [r["creative"] for r in rows] == ["green.png", "red.png"] and rows[0]["rank"] == "1"
    assert json.loads(render.rank_json(RANK)) == RANK
    assert "BEST" in render.rank_summary(RANK) and "not well-formed" in render.rank_summary(RANK)
    assert render.rank_caption(RANK["ranking"][0]).startswith("#1 green.png · score +0.70")


def test_uploads_are_checked_before_sending(tmp_path: Path) -> None:
    good = tmp_path / "good.png"
    Image.new("RGB", (64, 48), (200, 30, 40)).save(good)
    assert read_upload(good, "Creative A") == good.read_bytes()
    cut = tmp_path / "cut.png"
    cut.write_bytes(good.read_bytes()[:60])
    text = tmp_path / "notes.png"
    text.write_text("hello")
    for path, words in ((cut, "corrupt or truncated"), (text, "not an image"), (None, "Add")):
        with pytest.raises(UploadProblem, match=words):
            read_upload(path, "Creative B")


def test_display_copies_share_one_canvas() -> None:
    tall, wide = Image.new("RGB", (100, 300)), Image.new("RGB", (400, 100))
    size = canvas_size([tall, wide])
    assert size == (480, 960)  # the tallest aspect (3:1) is capped at 2:1
    assert letterbox(tall, size).size == letterbox(wide, size).size == size
    marked = mark_winner(letterbox(wide, size))
    assert marked.size == size and marked.getpixel((2, 2)) != (246, 246, 248)


def test_api_problem_points_at_the_creative() -> None:
    assert APIProblem("x", param="creatives[1].image").creative_index() == 1
    assert APIProblem("x", param="creatives[0]").creative_index() == 0
    assert APIProblem("x", param="query").creative_index() is None


def test_feature_table_shows_both_creatives_and_which_is_higher() -> None:
    from creative4u.ad_quality import readability
    from creative4u.features import NUMERIC_FEATURES

    fa = {k: 1.0 for k in NUMERIC_FEATURES} | {"saturation": 0.8, "glcm_contrast": 0.1}
    fb = {k: 1.0 for k in NUMERIC_FEATURES} | {"saturation": 0.2, "glcm_contrast": 0.4}
    df = render.feature_rows(fa, fb, readability("Nova red dress"))
    rows = {r["Measured feature"]: r for _, r in df.iterrows()}
    assert list(df.columns) == render.FEATURE_COLUMNS
    assert rows["saturation"]["Higher"] == "A" and rows["glcm contrast"]["Higher"] == "B"
    assert rows["brightness"]["Higher"] == "same" and rows["saturation"]["A"] == "0.8"
    assert len(df) == len(NUMERIC_FEATURES) + len(render.TITLE_READABILITY)
    assert rows["title words"]["A"] == rows["title words"]["B"] == "3"
    assert render.feature_rows(None, None).empty
