"""Rationale teachers: well-formed rationales that name the label, grounded in measurements; the
OpenAI teacher's rejection sampling, reply cache and fallback, against a mock transport and (slow)
a real vLLM server."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image, ImageDraw

from creative4u.features import measure
from creative4u.protocol import DIMENSION_IDS, flip_comparison, parse, swap_letters
from data.labelling import LabelRule
from data.teachers.features import dimension_scores, explain, rationale
from data.teachers.openai_teacher import OpenAITeacher, OpenAITeacherConfig

BASE = {
    "digest": "x",
    "thumb": [0] * 768,
    "text": "",
    "text_words": 0.0,
    "text_legible": 0.0,
    "has_price": 0.0,
    "has_cta": 0.0,
    "subject_colour": "red",
    "subject_area": 0.2,
    "subject_offset": 0.02,
    "subject_cropped": 0.0,
    "border": 0.0,
    "inset": 0.0,
    "blocks": 0.0,
    "objects": 0.0,
    "person": 0.0,
    "clutter_colours": 1.0,
    "colour_clash": 0.0,
    "background_colour": "white",
}


def feats(**kw) -> dict:
    f = dict(BASE, **kw)
    f["digest"] = json.dumps(sorted(kw.items()))
    f["thumb"] = [hash(f["digest"]) % 200] * 768
    return f


def random_features(rng: np.random.Generator) -> dict:
    colours = ["red", "blue", "green", "white", "black"]
    words = ["", "$49 Buy now", "Free shipping", "NEW", "30% off", "Shop now"]
    text = str(rng.choice(words))
    return feats(
        text=text,
        text_words=float(len(text.split())),
        text_legible=float(rng.random() < 0.6),
        has_price=float("$" in text),
        has_cta=float("Buy" in text or "Shop" in text),
        subject_colour=str(rng.choice(colours)),
        subject_area=float(rng.uniform(0.0, 0.5)),
        subject_offset=float(rng.uniform(0, 0.3)),
        subject_cropped=float(rng.random() < 0.2),
        border=float(rng.random() < 0.3),
        inset=float(rng.random() < 0.2),
        blocks=float(rng.integers(0, 5)),
        objects=float(rng.integers(0, 3)),
        person=float(rng.random() < 0.3),
        clutter_colours=float(rng.integers(0, 12)),
        colour_clash=float(rng.random() < 0.3),
        seed=float(rng.random()),
    )


QUERIES = ["red dress", "dress sale", "sporty dress", "new dress", "blue dress gift"]
TITLE = "Nova vintage red dress"


def test_every_rationale_is_well_formed_short_and_names_the_label() -> None:
    rng = np.random.default_rng(0)
    for i in range(200):
        fa, fb = random_features(rng), random_features(rng)
        label = "AB"[i % 2]
        text = rationale(fa, fb, QUERIES[i % len(QUERIES)], TITLE, label)
        v = parse(text)
        assert v.well_formed, v.reason
        assert v.winner == label
        assert v.identical is False
        for d in v.dimensions.values():
            assert 2 <= len(d.reason.split()) <= 12, d.reason


def test_verdicts_flip_when_the_creatives_swap() -> None:
    rng = np.random.default_rng(1)
    for i in range(100):
        fa, fb = random_features(rng), random_features(rng)
        q = QUERIES[i % len(QUERIES)]
        ab, ba = explain(fa, fb, q, TITLE, "A"), explain(fb, fa, q, TITLE, "B")
        for d in DIMENSION_IDS:
            assert ba.comparison(d) == flip_comparison(ab.comparison(d)), d
            # the same words with A and B exchanged (the clause order may differ)
            swapped = swap_letters(ab.dimensions[d].reason)
            assert _words(ba.dimensions[d].reason) == _words(swapped), d


def _words(reason: str) -> list[str]:
    return sorted(w for w in reason.replace(",", " ").split() if w not in ("has", "have"))


def test_reasons_are_grounded_in_the_measurements() -> None:
    text = feats(
        text="$49 Buy now",
        text_words=3.0,
        text_legible=1.0,
        has_price=1.0,
        has_cta=1.0,
        person=1.0,
        border=1.0,
        subject_area=0.4,
    )
    bare = feats(
        subject_colour="blue",
        subject_area=0.05,
        subject_offset=0.3,
        subject_cropped=1.0,
        blocks=4.0,
        clutter_colours=9.0,
        colour_clash=1.0,
        background_colour="green",
    )
    v = explain(text, bare, "red dress", TITLE, "A")
    assert v.comparison("Q3") == "A>B" and "red" in v.dimensions["Q3"].reason
    assert v.comparison("Q4") == "A>B" and "blue" in v.dimensions["Q4"].reason
    assert v.comparison("Q5") == "A>B"
    assert "price" in v.dimensions["Q5"].reason and "no text" in v.dimensions["Q5"].reason
    assert v.comparison("Q6") == "A>B" and "person" in v.dimensions["Q6"].reason
    assert v.comparison("Q7") == "A>B" and "crowded" in v.dimensions["Q7"].reason
    assert v.comparison("Q8") == "A>B" and "cropped" in v.dimensions["Q8"].reason
    assert v.comparison("Q9") == "A>B" and "clutter" in v.dimensions["Q9"].reason
    scores = dimension_scores(text, bare, "red dress", TITLE)
    assert all(a > b for a, b in scores.values())
    # the answer is the label even when every measurement favours the other creative
    assert parse(rationale(text, bare, "red dress", TITLE, "B")).winner == "B"
    # query words in printed text count for Q3
    sale = feats(text="30% off", text_words=2.0, has_offer=1.0)
    assert explain(sale, feats(), "dress sale", TITLE, "A").comparison("Q3") == "A>B"
    assert explain(feats(), feats(), "sporty dress", TITLE, "A").comparison("Q3") == "A=B"


def test_identical_images_say_so() -> None:
    img = Image.new("RGB", (96, 96), (240, 240, 240))
    ImageDraw.Draw(img).rectangle([30, 30, 70, 70], fill=(35, 85, 200))
    fa = measure(img, ocr=False)
    fb = measure(img.copy(), ocr=False)
    v = parse(rationale(fa, fb, "blue mug", "Nova blue mug", "B"))
    assert v.well_formed and v.identical and v.indistinguishable and v.winner == "B"
    assert {v.comparison(d) for d in DIMENSION_IDS} == {"A=B"}
    other = img.copy()
    ImageDraw.Draw(other).rectangle([0, 0, 95, 20], fill=(200, 30, 30))
    v2 = parse(rationale(fa, measure(other, ocr=False), "blue mug", "Nova blue mug", "A"))
    assert not v2.identical and not v2.indistinguishable


def test_rationale_needs_a_label() -> None:
    with pytest.raises(ValueError, match="label"):
        rationale(feats(), feats(), "q", "t", "")


# ---- the OpenAI teacher -------------------------------------------------------------------------

GOOD = (
    "<think>\nQ1 identical: NO\nQ2 indistinguishable: NO\n"
    + "\n".join(
        f"Q{i} {n}: A looks better => A>B"
        for i, n in zip(
            range(3, 10),
            ["query match", "title match", "text in image", "models and props", "layout",
             "product subject", "background"],
            strict=True,
        )
    )
    + "\n</think>\n<answer>{}</answer>"
)  # fmt: skip


def _images(tmp_path: Path) -> tuple[Path, Path]:
    a, b = tmp_path / "a.png", tmp_path / "b.png"
    Image.new("RGB", (64, 64), (200, 30, 30)).save(a)
    Image.new("RGB", (64, 64), (30, 30, 200)).save(b)
    return a, b


def mock_client(replies: list[str], seen: list[dict]):
    """A real OpenAI client whose HTTP transport answers with canned completions."""
    from openai import OpenAI

    def handler(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        seen.append(body)
        text = replies[min(len(seen) - 1, len(replies) - 1)]
        return httpx.Response(
            200,
            json={
                "id": f"c{len(seen)}",
                "object": "chat.completion",
                "created": 0,
                "model": body["model"],
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": text},
                        "finish_reason": "stop",
                    }
                ],
            },
        )

    return OpenAI(
        base_url="http://teacher.test/v1",
        api_key="x",
        http_client=httpx.Client(transport=httpx.MockTransport(handler)),
    )


def test_rejection_sampling_cache_and_resume(tmp_path: Path) -> None:
    a, b = _images(tmp_path)
    cfg = OpenAITeacherConfig(url="http://teacher.test/v1", model="m", cache_dir=tmp_path / "c")
    seen: list[dict] = []
    replies = ["no protocol here", GOOD.format("B"), GOOD.format("A")]
    t = OpenAITeacher(cfg, client=mock_client(replies, seen))
    text = t.teach("p1", "red dress", TITLE, a, b, "A")
    assert text is not None and parse(text).winner == "A" and parse(text).well_formed
    assert len(seen) == 3  # malformed, wrong winner, accepted
    assert seen[0]["temperature"] == 0.0 and all(s["temperature"] > 0 for s in seen[1:])
    assert len({s["seed"] for s in seen}) == 3
    content = seen[0]["messages"][0]["content"]
    assert sum(p["type"] == "image_url" for p in content) == 2
    assert content[1]["image_url"]["url"].startswith("data:image/png;base64,")
    assert t.stats.accepted_on_try == {2: 1} and len(t.cache) == 3

    # a rerun reads every reply from the cache and asks nothing
    seen2: list[dict] = []
    t2 = OpenAITeacher(cfg, client=mock_client(["unused"], seen2))
    assert t2.teach("p1", "red dress", TITLE, a, b, "A") == text
    assert seen2 == [] and t2.stats.requests == 0 and t2.stats.cache_hits == 3
    # another pair, another model or another prompt is another key
    t2.teach("p2", "red dress", TITLE, a, b, "A")
    assert len(seen2) >= 1


def test_fallback_after_all_tries(tmp_path: Path) -> None:
    a, b = _images(tmp_path)
    cfg = OpenAITeacherConfig(
        url="http://teacher.test/v1", model="m", cache_dir=tmp_path / "c", tries=3, workers=2
    )
    seen: list[dict] = []
    t = OpenAITeacher(cfg, client=mock_client([GOOD.format("B")], seen))
    rows = [
        {"pair_id": "p1", "query": "q", "title": "t", "image_a": "a", "image_b": "b", "label": "A"},
        {"pair_id": "p2", "query": "q", "title": "t", "image_a": "b", "image_b": "a", "label": "B"},
        {"pair_id": "p3", "query": "q", "title": "t", "image_a": "a", "image_b": "b", "label": ""},
    ]
    paths = {"a": a, "b": b}
    texts, sources = t.run(
        rows, paths.__getitem__, ["fallback 1", "fallback 2", ""], progress=False
    )
    assert texts[0] == "fallback 1" and "fallback" in sources[0] and "openai:m" in sources[0]
    assert sources[1] == "openai:m" and parse(texts[1]).winner == "B"
    assert (texts[2], sources[2]) == ("", "")
    assert len(seen) == 3 + 1 and t.stats.fallbacks == 1 and t.stats.accepted == 1


def test_request_errors_are_not_cached(tmp_path: Path) -> None:
    from openai import OpenAI

    a, b = _images(tmp_path)
    calls = []

    def down(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        return httpx.Response(500, json={"error": {"message": "down"}})

    client = OpenAI(
        base_url="http://teacher.test/v1",
        api_key="x",
        max_retries=0,
        http_client=httpx.Client(transport=httpx.MockTransport(down)),
    )
    cfg = OpenAITeacherConfig(url="http://x/v1", model="m", cache_dir=tmp_path / "c", tries=2)
    t = OpenAITeacher(cfg, client=client)
    assert t.teach("p1", "q", "t", a, b, "A") is None
    assert len(calls) == 2 and t.stats.errors == 2 and len(t.cache) == 0


# ---- a real OpenAI-compatible server -------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def vllm_server(tiny_model: Path, tmp_path_factory: pytest.TempPathFactory):
    port = _free_port()
    log = tmp_path_factory.mktemp("vllm") / "server.log"
    env = {**os.environ, "VLLM_CPU_KVCACHE_SPACE": "1", "TOKENIZERS_PARALLELISM": "false"}
    with open(log, "w") as fh:
        proc = subprocess.Popen(
            [sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model", str(tiny_model),
             "--served-model-name", "tiny", "--max-model-len", "2048",
             "--limit-mm-per-prompt", '{"image": 2}', "--enforce-eager", "--port", str(port)],
            stdout=fh, stderr=subprocess.STDOUT, env=env,
        )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 600
        while time.time() < deadline:
            if proc.poll() is not None:
                pytest.fail(f"vLLM server exited:\n{log.read_text()[-3000:]}")
            try:
                if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(2)
        else:
            pytest.fail(f"vLLM server did not start:\n{log.read_text()[-3000:]}")
        yield f"{url}/v1"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()


@pytest.mark.slow
def test_openai_teacher_against_vllm(vllm_server: str, tmp_path: Path) -> None:
    """A random-weights model never writes the protocol: requests are made and cached, every pair
    falls back to the features teacher, and a rerun makes no request at all."""
    from tests.test_data_build import make_world, run_build

    world = make_world(tmp_path / "w", products=3, creatives=3, queries=1, seed=1)
    requests: list[str] = []
    kw = dict(
        teacher="openai",
        teacher_url=vllm_server,
        teacher_model="tiny",
        teacher_tries=2,
        teacher_max_tokens=12,
        teacher_cache=str(tmp_path / "cache"),
        teacher_workers=2,
        val_frac=0.0,
        test_frac=0.0,
        rule=LabelRule(min_impressions=0, min_gap=0.0),
    )
    card = run_build(world, tmp_path / "ds", **kw)
    stats = card["teacher"]["stats"]
    pairs = card["pairs"]["labelled"]
    assert pairs > 0
    assert stats["requests"] == 2 * pairs and stats["errors"] == 0
    assert stats["fallbacks"] == pairs and stats["accepted"] == 0
    assert len(list((tmp_path / "cache").glob("*/*.json"))) == 2 * pairs
    reply = json.loads(next((tmp_path / "cache").glob("*/*.json")).read_text())
    assert reply["model"] == "tiny" and isinstance(reply["text"], str)
    src = card["rationale_sources"]
    assert list(src) == ["features (fallback: openai:tiny failed 2 tries)"]
    from datasets import load_from_disk

    train = load_from_disk(str(tmp_path / "ds"))["train"]
    for r in train.select_columns(["rationale", "label"]):
        assert parse(r["rationale"]).winner == r["label"]

    # rerun: every reply comes from the cache, counted on the real client's HTTP hook too
    from openai import OpenAI

    client = OpenAI(
        base_url=vllm_server,
        api_key="EMPTY",
        http_client=httpx.Client(event_hooks={"request": [lambda r: requests.append(str(r.url))]}),
    )
    t = OpenAITeacher(
        OpenAITeacherConfig(
            url=vllm_server, model="tiny", cache_dir=tmp_path / "cache", tries=2, max_tokens=12
        ),
        client=client,
    )
    rows = [
        {**r, "image_a": f"{r['creative_a']}.png", "image_b": f"{r['creative_b']}.png"}
        for r in train.remove_columns(["image_a", "image_b"]).to_list()
    ]
    images = world["images"]
    texts, sources = t.run(
        rows, lambda k: images / k, [r["rationale"] for r in rows], progress=False
    )
    assert requests == [] and t.stats.requests == 0 and t.stats.cache_hits == 2 * len(rows)
    assert sources == [t.fallback_source] * len(rows)
    card2 = run_build(world, tmp_path / "ds2", **kw)
    assert card2["teacher"]["stats"]["requests"] == 0
    assert card2["teacher"]["stats"]["cache_hits"] == 2 * pairs
