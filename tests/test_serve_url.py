"""The API in `--engine URL` mode in front of a real vLLM OpenAI server (the scale-out path).

The upstream is vLLM's own OpenAI server with the tiny model; the API forwards to it with the
`openai` SDK. Chat answers must be what the upstream says, and /v1/select and /v1/rank must work
unchanged (answer-letter probabilities through vLLM's `logprob_token_ids`).
"""

from __future__ import annotations

import base64
import io
from pathlib import Path

import httpx
import pytest
from PIL import Image

from creative4u.images import prepare_image, to_data_url
from creative4u.protocol import DIMENSION_IDS, build_messages
from creative4u.vlm import load_processor
from serve.launch import ServerProcess, free_port, serve_command, vllm_openai_command

pytestmark = pytest.mark.slow
KEY = "url-engine-key"
ROOT = Path(__file__).resolve().parents[1]


def png(rgb: tuple[int, int, int], size: tuple[int, int] = (140, 100)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, rgb).save(buf, format="PNG")
    return buf.getvalue()


RAW = [png((210, 30, 40)), png((30, 60, 210)), png((40, 180, 60))]
URLS = ["data:image/png;base64," + base64.b64encode(r).decode() for r in RAW]


@pytest.fixture(scope="module")
def upstream(tiny_model: Path, tmp_path_factory: pytest.TempPathFactory):
    port = free_port()
    log = tmp_path_factory.mktemp("upstream") / "vllm.log"
    proc = ServerProcess(
        vllm_openai_command(tiny_model, port),
        f"http://127.0.0.1:{port}/v1/models",
        log,
        env={"VLLM_CPU_KVCACHE_SPACE": "1"},
        cwd=ROOT,
    )
    with proc:
        yield f"http://127.0.0.1:{port}"


@pytest.fixture(scope="module")
def api(upstream: str, tiny_model: Path, tmp_path_factory: pytest.TempPathFactory):
    port = free_port()
    args = serve_command(
        tiny_model,
        port,
        "--engine",
        upstream,
        "--api-key",
        KEY,
        "--max-tokens",
        "16",
        "--log-level",
        "warning",
    )
    log = tmp_path_factory.mktemp("api") / "api.log"
    with ServerProcess(args, f"http://127.0.0.1:{port}/health", log, cwd=ROOT) as proc:
        yield f"http://127.0.0.1:{port}"
        assert proc.alive, proc.log_tail()


def test_chat_through_the_api_is_what_the_upstream_says(
    api: str, upstream: str, tiny_model: Path
) -> None:
    import openai

    ours = openai.OpenAI(base_url=f"{api}/v1", api_key=KEY, max_retries=0, timeout=300)
    theirs = openai.OpenAI(base_url=f"{upstream}/v1", api_key="EMPTY", max_retries=0, timeout=300)
    assert [m.id for m in ours.models.list()] == ["creative4u"]
    # The API hands the upstream the images it prepared (model pixel bounds, PNG): do the same.
    proc = load_processor(str(tiny_model))
    prepared = [to_data_url(prepare_image(u, proc)) for u in URLS[:2]]
    kw = dict(max_tokens=12, temperature=0.0, seed=0)
    via_api = ours.chat.completions.create(
        model="creative4u",
        messages=build_messages("red dress", "Nova", *URLS[:2], style="openai"),
        **kw,
    )
    direct = theirs.chat.completions.create(
        model=str(tiny_model),
        messages=build_messages("red dress", "Nova", *prepared, style="openai"),
        **kw,
    )
    assert via_api.choices[0].message.content == direct.choices[0].message.content
    assert via_api.usage.prompt_tokens == direct.usage.prompt_tokens
    streamed = "".join(
        c.choices[0].delta.content or ""
        for c in ours.chat.completions.create(
            model="creative4u",
            messages=build_messages("red dress", "Nova", *URLS[:2], style="openai"),
            stream=True,
            **kw,
        )
        if c.choices
    )
    assert streamed == via_api.choices[0].message.content


def test_select_and_rank_through_the_url_engine(api: str) -> None:
    with httpx.Client(base_url=api, headers={"Authorization": f"Bearer {KEY}"}, timeout=300) as c:
        assert c.get("/health").json()["engine"] == "url"
        r = c.post(
            "/v1/select", json={"creatives": URLS[:2], "query": "red dress", "title": "Nova"}
        )
        assert r.status_code == 200, r.text
        j = r.json()
        assert j["winner"] in ("A", "B") and [d["id"] for d in j["dimensions"]] == list(
            DIMENSION_IDS
        )
        assert all(o["p_a"] is not None for o in j["orders"])  # letter probabilities came through
        r = c.post("/v1/rank", json={"creatives": URLS, "query": "red dress", "title": "Nova"})
        assert r.status_code == 200, r.text
        assert sorted(row["index"] for row in r.json()["ranking"]) == [0, 1, 2]
        bad = c.post(
            "/v1/select",
            json={"creatives": [URLS[0], "file:///etc/passwd"], "query": "q", "title": "t"},
        )
        assert bad.status_code == 400 and bad.json()["error"]["param"] == "creatives[1]"
