"""Property-based fuzz of every entry point with bad and unusual input (hypothesis, seeded).

The property, on the real server (`creative4u serve`, tiny model, loopback): every response is a
2xx or a 4xx whose JSON error names the problem, never a 5xx or a dropped connection, and
`/health` answers after each request. The same generator of images feeds the click-log ingestion
(`rows_in == kept + quarantined`, each quarantined row with a reason) and the image loader that
training uses (a usable image comes out fitted to the processor's bounds, anything else is an
`ImageError` naming the problem).

Examples per test: `CREATIVE4U_FUZZ_EXAMPLES` (default 30); derandomized, so a run is
repeatable. Inputs that once failed are kept as explicit `@example`s.
"""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from tests.conftest import UI_API_KEY
from tests.fuzz_inputs import (
    chat_bodies,
    encode,
    image_bytes,
    odd_text,
    png,
    select_bodies,
    valid_images,
)

pytestmark = pytest.mark.slow

EXAMPLES = int(os.environ.get("CREATIVE4U_FUZZ_EXAMPLES", "30"))
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,
    database=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def data_url(raw: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(raw).decode()


STRIP = data_url(png((12000, 20)))  # a valid PNG that once gave 500 (aspect ratio 600)
SQUARE = data_url(png((64, 64), (30, 60, 210)))


@pytest.fixture(scope="module")
def api(ui_server: str) -> httpx.Client:
    with httpx.Client(
        base_url=ui_server, headers={"Authorization": f"Bearer {UI_API_KEY}"}, timeout=300
    ) as client:
        yield client


def answered_cleanly(client: httpx.Client, r: httpx.Response) -> Any:
    """The fuzz property for one response; returns its JSON body when it has one."""
    assert r.status_code < 500, f"{r.status_code}: {r.text[:500]}"
    assert 200 <= r.status_code < 300 or 400 <= r.status_code < 500, r.status_code
    body = None
    if r.headers.get("content-type", "").startswith("application/json"):
        body = r.json()
    if r.status_code >= 400:
        err = (body or {}).get("error") or {}
        assert isinstance(err.get("message"), str) and err["message"].strip(), r.text[:500]
    health = client.get("/health")
    assert health.status_code == 200, health.text[:300]
    return body


@FUZZ
@given(body=select_bodies())
@example(body={"creatives": [STRIP, SQUARE], "query": "red dress", "title": "Nova red dress"})
@example(
    body={
        "creatives": [data_url(png((20, 12000))), data_url(png((1, 1)))],
        "query": "q",
        "title": "t",
    }
)
def test_select_never_fails_with_a_5xx(api: httpx.Client, body: Any) -> None:
    out = answered_cleanly(api, api.post("/v1/select", json=body))
    if out is not None and "winner" in out:
        assert out["winner"] in ("A", "B") and 0.5 <= out["confidence"] <= 1.0


@FUZZ
@given(body=select_bodies(n=None))
@example(body={"creatives": [STRIP, SQUARE, data_url(png((3000, 2)))], "query": "q", "title": "t"})
def test_rank_never_fails_with_a_5xx(api: httpx.Client, body: Any) -> None:
    out = answered_cleanly(api, api.post("/v1/rank", json=body))
    if out is not None and "ranking" in out:
        assert sorted(r["rank"] for r in out["ranking"]) == list(
            range(1, len(body["creatives"]) + 1)
        )


@FUZZ
@given(body=chat_bodies())
@example(
    body={
        "model": "creative4u",
        "max_tokens": 3,
        "messages": [
            {
                "role": "user",
                "content": [
                    {"type": "image_url", "image_url": {"url": STRIP}},
                    {"type": "text", "text": "which?"},
                ],
            }
        ],
    }
)
def test_chat_completions_never_fail_with_a_5xx(api: httpx.Client, body: Any) -> None:
    r = api.post("/v1/chat/completions", json=body)
    answered_cleanly(api, r)
    if r.status_code == 200 and r.headers.get("content-type", "").startswith("text/event-stream"):
        events = [ln[6:] for ln in r.text.splitlines() if ln.startswith("data: ")]
        assert events and events[-1] == "[DONE]", r.text[-300:]
        for e in events[:-1]:
            assert "error" not in json.loads(e), e


@FUZZ
@given(raw=st.binary(max_size=300), ctype=st.sampled_from(["application/json", "text/plain", ""]))
@example(raw=b'{"creatives": [', ctype="application/json")
@example(raw=b"\xff\xfe{}", ctype="application/json")
def test_raw_bodies_never_fail_with_a_5xx(api: httpx.Client, raw: bytes, ctype: str) -> None:
    for path in ("/v1/select", "/v1/rank", "/v1/chat/completions"):
        answered_cleanly(api, api.post(path, content=raw, headers={"content-type": ctype}))


# ---- the page's endpoints (gradio) ---------------------------------------------------------------


@pytest.fixture(scope="module")
def ui_client(ui_server: str):
    from gradio_client import Client

    return Client(f"{ui_server}/ui/", auth=("marketing", UI_API_KEY), verbose=False)


@settings(FUZZ, max_examples=max(4, EXAMPLES // 4))
@given(a=image_bytes, b=image_bytes, query=odd_text, title=odd_text)
@example(a=png((12000, 20)), b=png((64, 64)), query="red dress", title="Nova red dress")
def test_page_compare_reports_problems_in_words(
    ui_client, tmp_path_factory: pytest.TempPathFactory, a: bytes, b: bytes, query: str, title: str
) -> None:
    from gradio_client import handle_file

    from tests.test_ui_client import COMPARE, named

    folder = tmp_path_factory.mktemp("uploads")
    (folder / "a.png").write_bytes(a)
    (folder / "b.png").write_bytes(b)
    out = named(
        ui_client.predict(
            handle_file(str(folder / "a.png")),
            handle_file(str(folder / "b.png")),
            query,
            title,
            True,
            0,
            api_name="/compare",
        ),
        COMPARE,
    )
    problems = [out[k] for k in ("err_a", "err_b", "err_text") if out[k]]
    if out["raw"] is None:
        assert problems or out["status"], out
        assert all("Traceback" not in p for p in problems)
    else:
        assert out["raw"]["winner"] in ("A", "B") and not problems


# ---- the same images in a click log, and in training's loader -----------------------------------


@st.composite
def log_rows(draw: Any) -> tuple[list[dict[str, Any]], dict[str, bytes]]:
    """A click log of a few rows, some broken, over images some of which are broken too."""
    images = {f"im{i}.png": draw(image_bytes) for i in range(draw(st.integers(1, 4)))}
    names = [*images, "missing.png"]
    rows = []
    for i in range(draw(st.integers(1, 12))):
        imps = draw(st.one_of(st.integers(0, 500), st.integers(-5, -1), st.none()))
        clicks = draw(st.one_of(st.integers(0, 50), st.integers(-3, -1), st.none()))
        rows.append(
            {
                "creative_id": draw(st.sampled_from([f"c{i % 3}", "", None])),
                "product_id": draw(st.sampled_from(["p0", "p1", None])),
                "image": draw(st.sampled_from(names)),
                "impressions": None
                if imps is None
                else float(imps) + draw(st.sampled_from([0, 0.5])),
                "clicks": None if clicks is None else float(clicks),
                "query": draw(st.one_of(odd_text, st.none())),
                "title": draw(st.one_of(odd_text, st.none())),
            }
        )
    return rows, images


@FUZZ
@given(log=log_rows())
def test_click_log_rows_are_all_accounted_for(
    tmp_path_factory: pytest.TempPathFactory, log: tuple[list[dict[str, Any]], dict[str, bytes]]
) -> None:
    import duckdb
    import pandas as pd

    from data.ingest import REASONS, ingest

    rows, images = log
    root = tmp_path_factory.mktemp("log")
    (root / "images").mkdir()
    for name, raw in images.items():
        (root / "images" / name).write_bytes(raw)
    pd.DataFrame(rows).to_parquet(root / "logs.parquet", index=False)
    con = duckdb.connect()
    res = ingest(
        con,
        root / "logs.parquet",
        root / "images",
        root / "quarantine.parquet",
        root / "staging",
        progress=False,
    )
    q = pd.read_parquet(root / "quarantine.parquet")
    assert res.rows_in == len(rows) == res.rows_kept + res.rows_quarantined
    assert len(q) == res.rows_quarantined and set(q["reason"]) <= set(REASONS)
    kept = con.execute("SELECT image FROM valid").fetchall()
    assert len(kept) == res.rows_kept
    for (name,) in kept:  # every kept row's image loads and fits the model (training's loader)
        fitted_within_bounds(root / "images" / name)


def fitted_within_bounds(source: Any, bounds: tuple[int, int, int] = (12544, 12544, 28)) -> None:
    from creative4u.images import fit_to_pixels, load_image

    min_px, max_px, factor = bounds
    img = fit_to_pixels(load_image(source), min_px, max_px, factor)
    assert img.mode == "RGB" and img.width % factor == 0 and img.height % factor == 0
    assert img.width * img.height <= max_px


@FUZZ
@given(
    raw=image_bytes,
    bounds=st.sampled_from([(12544, 12544, 28), (3136, 12845056, 28), (3136, 1003520, 28)]),
)
@example(raw=png((12000, 20)), bounds=(12544, 12544, 28))
@example(raw=png((12000, 20)), bounds=(3136, 12845056, 28))
@example(raw=png((300, 2)), bounds=(12544, 12544, 28))
def test_training_loader_fits_or_names_the_problem(
    raw: bytes, bounds: tuple[int, int, int]
) -> None:
    from creative4u.images import ImageError

    try:
        fitted_within_bounds(raw, bounds)
    except ImageError as e:
        assert str(e).strip()


def test_processor_accepts_every_fitted_shape(tiny_model: Path) -> None:
    """The extreme shapes, fitted, go through the real Qwen-VL processor without an error."""
    from PIL import Image

    from creative4u.images import prepare_image
    from creative4u.vlm import load_processor
    from tests.fuzz_inputs import EXTREME_SIZES

    processor = load_processor(str(tiny_model))
    for size in EXTREME_SIZES:
        img = prepare_image(encode(Image.new("RGB", size, (10, 200, 30)), "PNG"), processor)
        out = processor.image_processor(images=[img], return_tensors="pt")
        assert out["pixel_values"].shape[0] > 0, size


@FUZZ
@given(raw=valid_images())
@example(raw=png((12000, 20)))  # once crashed the background measure (no inner ring)
def test_data_build_measures_any_valid_image(raw: bytes) -> None:
    """What `data build` measures for the features teacher and baseline, on any shape."""
    import math

    from creative4u.features import NUMERIC_FEATURES, measure
    from creative4u.images import load_image

    feats = measure(load_image(raw), ocr=False)
    assert all(math.isfinite(float(feats[k])) for k in NUMERIC_FEATURES)
