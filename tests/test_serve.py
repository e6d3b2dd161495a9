"""The real server on loopback with the tiny model: OpenAI SDK chat (plain and streaming),
/v1/select, /v1/rank, bad inputs, unusual images, metrics, and the select/rank CLI.

One server process is shared by the module (engine start takes a minute on two cores); it serves
the tiny model with a LoRA adapter, as the Qwen recipes deploy, under the name 'creative4u'. The tiny
model has random weights, so its outputs are not well-formed protocol text: the tests check the
API's contract and its honesty about that, not the quality of the answers.
"""

from __future__ import annotations

import base64
import io
import json
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image

from creative4u.protocol import DIMENSION_IDS, build_messages
from serve.launch import ServerProcess, free_port, serve_command

pytestmark = pytest.mark.slow
KEY = "serve-test-key"
ROOT = Path(__file__).resolve().parents[1]


# --------------------------------------------------------------------------------------------
# Inputs
# --------------------------------------------------------------------------------------------


def encode(img: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt, **kw)
    return buf.getvalue()


def data_url(raw: bytes, mime: str = "image/png") -> str:
    return f"data:{mime};base64," + base64.b64encode(raw).decode()


def creative(rgb: tuple[int, int, int], size: tuple[int, int] = (120, 90)) -> bytes:
    img = Image.new("RGB", size, rgb)
    img.paste((255, 255, 255), (10, 10, 40, 40))
    return encode(img, "PNG")


def png_bomb(width: int = 20000, height: int = 20000) -> bytes:
    """A valid 1-bit PNG of width x height zeros: a few kB on the wire, 400 Mpx decoded."""

    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))

    comp = zlib.compressobj(9)
    row = b"\x00" * (1 + (width + 7) // 8)
    idat = b"".join(comp.compress(row) for _ in range(height)) + comp.flush()
    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def unusual_images() -> dict[str, tuple[bytes, str]]:
    rgb = Image.new("RGB", (96, 72), (200, 40, 50))
    frames = [Image.new("RGB", (48, 48), c) for c in ((255, 0, 0), (0, 255, 0))]
    gif = io.BytesIO()
    frames[0].save(gif, format="GIF", save_all=True, append_images=frames[1:], duration=50, loop=0)
    g16 = Image.fromarray((np.arange(96 * 72).reshape(72, 96) * 9).astype(np.uint16))
    return {
        "cmyk_jpeg": (encode(rgb.convert("CMYK"), "JPEG"), "image/jpeg"),
        "png_alpha": (encode(Image.new("RGBA", (96, 72), (0, 0, 255, 90)), "PNG"), "image/png"),
        "png_16bit": (encode(g16, "PNG"), "image/png"),
        "webp": (encode(rgb, "WEBP"), "image/webp"),
        "bmp": (encode(rgb, "BMP"), "image/bmp"),
        "animated_gif": (gif.getvalue(), "image/gif"),
        # shapes the processor cannot take as they are: fitted (padded, scaled), not refused
        "strip_12000x20": (
            encode(Image.new("RGB", (12000, 20), (200, 40, 50)), "PNG"),
            "image/png",
        ),
        "tower_2x300": (encode(Image.new("RGB", (2, 300), (200, 40, 50)), "PNG"), "image/png"),
        "one_pixel": (encode(Image.new("RGB", (1, 1), (200, 40, 50)), "PNG"), "image/png"),
    }


RED, BLUE, GREEN, GREY = (210, 30, 40), (30, 60, 210), (40, 180, 60), (128, 128, 128)
GOOD = [data_url(creative(RED)), data_url(creative(BLUE))]


# --------------------------------------------------------------------------------------------
# The shared server
# --------------------------------------------------------------------------------------------


def make_adapter(tiny_model: Path, out: Path, seed: int) -> Path:
    """A LoRA adapter with non-zero B (so vLLM's LoRA path really changes the computation)."""
    import torch
    from peft import LoraConfig, get_peft_model

    from creative4u.vlm import load

    model, _ = load(str(tiny_model))
    torch.manual_seed(seed)
    lora = LoraConfig(r=8, lora_alpha=16, target_modules=r".*language_model.*\.(q_proj|v_proj)")
    peft_model = get_peft_model(model, lora)
    for name, param in peft_model.named_parameters():
        if "lora_B" in name:
            param.data.normal_(0, 0.5)
    peft_model.save_pretrained(out)
    return out


@pytest.fixture(scope="module")
def adapter(tiny_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_adapter(tiny_model, tmp_path_factory.mktemp("lora") / "adapter", seed=1)


@pytest.fixture(scope="module")
def other_adapter(tiny_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_adapter(tiny_model, tmp_path_factory.mktemp("lora") / "other", seed=2)


@pytest.fixture(scope="module")
def server(
    tiny_model: Path, adapter: Path, other_adapter: Path, tmp_path_factory: pytest.TempPathFactory
):
    """The tiny model with a LoRA adapter, served under the name 'creative4u', and a second
    adapter of the same base served as 'other'."""
    port = free_port()
    args = serve_command(
        tiny_model,
        port,
        "--adapter",
        str(adapter),
        "--lora-modules",
        f"other={other_adapter}",
        "--api-key",
        KEY,
        "--max-tokens",
        "24",
        "--max-model-len",
        "2048",
        "--max-num-seqs",
        "16",
        "--max-image-bytes",
        "2MiB",
        "--max-body-bytes",
        "8MiB",
        "--allow-url-host",
        "localhost",
        "--log-level",
        "warning",
    )
    log = tmp_path_factory.mktemp("serve") / "server.log"
    proc = ServerProcess(
        args, f"http://127.0.0.1:{port}/health", log, env={"VLLM_CPU_KVCACHE_SPACE": "1"}, cwd=ROOT
    )
    with proc:
        yield f"http://127.0.0.1:{port}"
        assert proc.alive, f"the server died during the tests:\n{proc.log_tail()}"


@pytest.fixture(scope="module")
def http(server: str):
    with httpx.Client(
        base_url=server, headers={"Authorization": f"Bearer {KEY}"}, timeout=300
    ) as c:
        yield c


@pytest.fixture(scope="module")
def oai(server: str):
    import openai

    return openai.OpenAI(base_url=f"{server}/v1", api_key=KEY, max_retries=0, timeout=300)


# --------------------------------------------------------------------------------------------
# OpenAI compatibility
# --------------------------------------------------------------------------------------------


def test_models_and_health(http: httpx.Client, oai) -> None:
    assert [m.id for m in oai.models.list()] == ["creative4u", "other"]
    health = http.get("/health", headers={"Authorization": ""}).json()
    assert health["status"] == "ok"
    # vLLM batches 16 sequences (--max-num-seqs): 8 selects at once, 4 batches' worth waiting
    assert health["batch_capacity"] == 16
    assert health["admission"] == {"max_concurrency": 8, "max_queue": 32}


def test_chat_completion_plain_and_streaming(oai) -> None:
    msgs = build_messages("red dress", "Nova red dress", *GOOD, style="openai")
    kw = dict(model="creative4u", messages=msgs, max_tokens=12, temperature=0.0, seed=0)
    out = oai.chat.completions.create(**kw)
    choice = out.choices[0]
    assert isinstance(choice.message.content, str) and choice.finish_reason in ("stop", "length")
    assert out.usage.prompt_tokens > 50 and 0 < out.usage.completion_tokens <= 12

    chunks = list(
        oai.chat.completions.create(**kw, stream=True, stream_options={"include_usage": True})
    )
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == choice.message.content  # greedy: streaming gives the same text
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == choice.finish_reason
    assert chunks[-1].usage.completion_tokens == out.usage.completion_tokens

    lp = oai.chat.completions.create(**kw, logprobs=True, top_logprobs=3)
    assert len(lp.choices[0].logprobs.content) == lp.usage.completion_tokens


# --------------------------------------------------------------------------------------------
# Selection
# --------------------------------------------------------------------------------------------


def test_select_schema(http: httpx.Client) -> None:
    r = http.post(
        "/v1/select", json={"creatives": GOOD, "query": "red dress", "title": "Nova red dress"}
    )
    assert r.status_code == 200, r.text
    j = r.json()
    assert j["winner"] in ("A", "B") and 0.5 <= j["confidence"] <= 1.0
    assert j["order_swap_agreed"] in (True, False, None)
    assert [d["id"] for d in j["dimensions"]] == list(DIMENSION_IDS)
    for d in j["dimensions"]:
        assert {"id", "question", "verdict", "reason"} <= set(d)
    assert j["ctr"] == {"a": None, "b": None}  # no --m2fn
    assert j["model"] == "creative4u" and j["latency_ms"] > 0
    assert isinstance(j["rationale"], (str, type(None)))
    # both orders ran and are shown; random weights: not well-formed, and the response says so
    assert [o["order"] for o in j["orders"]] == ["AB", "BA"]
    assert j["well_formed"] is False and j["problems"]
    assert all(d["reason"] is None for d in j["dimensions"]) or j["well_formed"]
    # the answer letter's probability is read from the engine in both orders (probe if needed)
    assert all(o["p_a"] is not None for o in j["orders"]) and j["p_a"] is not None


def test_rank_four_gives_a_total_order(http: httpx.Client) -> None:
    ids = ["red", "blue", "green", "grey"]
    body = {
        "creatives": [
            {"id": i, "image": data_url(creative(c))}
            for i, c in zip(ids, (RED, BLUE, GREEN, GREY), strict=True)
        ],
        "query": "red dress",
        "title": "Nova red dress",
    }
    r = http.post("/v1/rank", json=body)
    assert r.status_code == 200, r.text
    j = r.json()
    assert [row["rank"] for row in j["ranking"]] == [1, 2, 3, 4]
    assert sorted(row["id"] for row in j["ranking"]) == sorted(ids)
    scores = [row["score"] for row in j["ranking"]]
    assert scores == sorted(scores, reverse=True)
    assert len(j["comparisons"]) == 6
    for row in j["ranking"]:
        assert row["ctr"] is None and 1 <= len(row["decisive"]) <= 2
        assert all(len(d["dimensions"]) == len(DIMENSION_IDS) for d in row["decisive"])


# --------------------------------------------------------------------------------------------
# Bad inputs: every one a 4xx naming the field, and the server keeps answering
# --------------------------------------------------------------------------------------------


def _select(a: str, b: str = GOOD[1]) -> dict:
    return {"creatives": [a, b], "query": "q", "title": "t"}


BAD_INPUTS = {
    "truncated_png": (
        "/v1/select",
        _select(data_url(creative(RED)[:60])),
        400,
        "creatives[0]",
        "truncated",
    ),
    "zero_bytes": ("/v1/select", _select("data:image/png;base64,"), 400, "creatives[0]", "empty"),
    "not_an_image": (
        "/v1/select",
        _select(data_url(b"hello, I am text")),
        400,
        "creatives[0]",
        "not an image",
    ),
    "20000x20000_png": ("/v1/select", _select(data_url(png_bomb())), 400, "creatives[0]", "pixels"),
    "three_creatives": (
        "/v1/select",
        {"creatives": GOOD + GOOD[:1], "query": "q", "title": "t"},
        400,
        "creatives",
        "exactly 2",
    ),
    "missing_creatives": ("/v1/select", {"query": "q", "title": "t"}, 400, "creatives", "missing"),
    "missing_title": ("/v1/select", {"creatives": GOOD, "query": "q"}, 400, "title", "missing"),
    "huge_base64": (
        "/v1/select",
        _select(base64.b64encode(b"\0" * 3_000_000).decode()),
        413,
        "creatives[0]",
        "limit",
    ),
    "body_over_limit": ("/v1/select", _select("A" * 9_000_000), 413, None, "body"),
    "file_url": ("/v1/select", _select("file:///etc/passwd"), 400, "creatives[0]", "file"),
    "local_path": ("/v1/select", _select("/etc/passwd"), 400, "creatives[0]", "path"),
    "private_address_url": (
        "/v1/select",
        _select("http://localhost:9/a.png"),
        400,
        "creatives[0]",
        "loopback",
    ),
    "host_not_allowed": (
        "/v1/select",
        _select("http://10.0.0.1/a.png"),
        400,
        "creatives[0]",
        "allow-list",
    ),
    "rank_one_creative": (
        "/v1/rank",
        {"creatives": GOOD[:1], "query": "q", "title": "t"},
        400,
        "creatives",
        "2 to 16",
    ),
    "chat_three_images": (
        "/v1/chat/completions",
        {
            "model": "creative4u",
            "messages": [
                {
                    "role": "user",
                    "content": [
                        {"type": "image_url", "image_url": {"url": u}} for u in GOOD + GOOD[:1]
                    ],
                }
            ],
        },
        400,
        "messages",
        "at most 2",
    ),
    "chat_unknown_model": (
        "/v1/chat/completions",
        {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]},
        404,
        "model",
        "not served",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_INPUTS))
def test_bad_input_is_a_clear_4xx(http: httpx.Client, case: str) -> None:
    path, body, status, param, words = BAD_INPUTS[case]
    r = http.post(path, json=body)
    assert r.status_code == status, r.text[:500]
    err = r.json()["error"]
    assert err["param"] == param and words in err["message"].lower(), err
    assert http.get("/v1/models").status_code == 200  # still answering


@pytest.mark.parametrize(
    "header", ["", "Bearer wrong-key", "Basic " + base64.b64encode(b"a:b").decode()]
)
def test_wrong_api_key_is_401(http: httpx.Client, header: str) -> None:
    r = http.post("/v1/select", json=_select(GOOD[0]), headers={"Authorization": header})
    assert r.status_code == 401 and "API key" in r.json()["error"]["message"]


def test_server_still_selects_after_bad_inputs(http: httpx.Client) -> None:
    r = http.post("/v1/select", json=_select(GOOD[0]) | {"options": {"max_tokens": 4}})
    assert r.status_code == 200 and r.json()["winner"] in ("A", "B")


@pytest.mark.parametrize("name", sorted(unusual_images()))
def test_unusual_but_valid_images_are_accepted(http: httpx.Client, name: str) -> None:
    raw, mime = unusual_images()[name]
    for value in (data_url(raw, mime), base64.b64encode(raw).decode()):  # data URL and bare base64
        body = _select(value) | {"options": {"max_tokens": 4, "both_orders": False}}
        r = http.post("/v1/select", json=body)
        assert r.status_code == 200, r.text[:500]


def test_metrics_count_requests_tokens_and_engine(http: httpx.Client) -> None:
    text = http.get("/metrics").text
    assert 'creative4u_requests_total{endpoint="/v1/select",status="200"}' in text
    assert 'creative4u_requests_total{endpoint="/v1/select",status="400"}' in text
    assert "creative4u_request_latency_seconds_bucket" in text
    assert "creative4u_engine_in_flight 0.0" in text and "creative4u_requests_waiting 0.0" in text
    tokens = [
        line for line in text.splitlines() if line.startswith("creative4u_generation_tokens_total")
    ]
    assert tokens and float(tokens[0].split()[-1]) > 0


def test_metrics_time_each_stage_of_a_selection(http: httpx.Client) -> None:
    """The profile's source: every stage of /v1/select is timed once more per request, and the
    engine's share is the largest (the tiny model still needs its generations)."""
    import re

    def stages() -> dict[str, tuple[float, float]]:
        text = http.get("/metrics").text
        found = re.findall(
            r'^creative4u_stage_seconds_(sum|count)\{stage="(\w+)"\} (\S+)$', text, re.M
        )
        out: dict[str, list[float]] = {}
        for kind, stage, value in found:
            out.setdefault(stage, [0.0, 0.0])[0 if kind == "count" else 1] = float(value)
        return {k: (v[0], v[1]) for k, v in out.items()}

    before = stages()
    r = http.post("/v1/select", json={"creatives": GOOD, "query": "q", "title": "t"})
    assert r.status_code == 200, r.text
    after = stages()
    grew = {k for k, (n, _) in after.items() if n > before.get(k, (0.0, 0.0))[0]}
    assert {"read", "prepare", "engine", "combine", "serialize"} <= grew
    spent = {k: after[k][1] - before.get(k, (0.0, 0.0))[1] for k in grew}
    assert max(spent, key=spent.get) == "engine" and all(v >= 0 for v in spent.values())


# --------------------------------------------------------------------------------------------
# The CLI clients
# --------------------------------------------------------------------------------------------


def _cli(*args: str, timeout: int = 600) -> subprocess.CompletedProcess[str]:
    env = {"VLLM_CPU_KVCACHE_SPACE": "1", "CREATIVE4U_API_KEY": KEY}
    import os

    return subprocess.run(
        [sys.executable, "-m", "creative4u", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
        env={**os.environ, **env},
    )


@pytest.fixture(scope="module")
def image_files(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    d = tmp_path_factory.mktemp("creatives")
    paths = []
    for name, c, fmt in (
        ("red.png", RED, "PNG"),
        ("blue.jpg", BLUE, "JPEG"),
        ("green.webp", GREEN, "WEBP"),
    ):
        Image.new("RGB", (150, 100), c).save(d / name, format=fmt)
        paths.append(str(d / name))
    return paths


def test_cli_select_and_rank_against_the_server(server: str, image_files: list[str]) -> None:
    a, b, c = image_files
    res = _cli(
        "select",
        a,
        b,
        "--query",
        "red dress",
        "--title",
        "Nova",
        "--server",
        server,
        "--max-tokens",
        "8",
    )
    assert res.returncode == 0, res.stderr
    assert "winner:" in res.stdout and "Q3" in res.stdout and "well-formed: no" in res.stdout
    res = _cli("select", a, b, "--server", server, "--max-tokens", "8", "--json")
    assert json.loads(res.stdout)["winner"] in ("A", "B")
    res = _cli("rank", a, b, c, "--server", server, "--max-tokens", "8", "--json")
    assert res.returncode == 0, res.stderr
    assert sorted(r["id"] for r in json.loads(res.stdout)["ranking"]) == sorted(image_files)
    res = _cli("select", a, b, "--server", server, "--api-key", "wrong")
    assert res.returncode != 0 and "401" in res.stderr


def test_cli_select_in_process_matches_the_server(
    tiny_model: Path, adapter: Path, http: httpx.Client, image_files: list[str]
) -> None:
    """`--model` runs the same Selector on an in-process engine: same model, same answer."""
    a, b, _ = image_files
    res = _cli(
        "select",
        a,
        b,
        "--query",
        "q",
        "--title",
        "t",
        "--model",
        str(tiny_model),
        "--adapter",
        str(adapter),
        "--max-tokens",
        "8",
        "--json",
    )
    assert res.returncode == 0, res.stderr[-3000:]
    local = json.loads(res.stdout)
    body = {
        "creatives": [data_url(Path(p).read_bytes()) for p in (a, b)],
        "query": "q",
        "title": "t",
        "options": {"max_tokens": 8},
    }
    remote = http.post("/v1/select", json=body).json()
    assert local["winner"] == remote["winner"] and local["decided_by"] == remote["decided_by"]
    for lo, ro in zip(local["orders"], remote["orders"], strict=True):
        assert lo["text"] == ro["text"]
        assert lo["p_a"] == pytest.approx(ro["p_a"], abs=1e-3)


# --------------------------------------------------------------------------------------------
# One selection path: eval scores what the server serves; the page's stream is one of its orders
# --------------------------------------------------------------------------------------------


def test_eval_scores_the_decisions_the_server_returns(
    tiny_model: Path, adapter: Path, http: httpx.Client, tmp_path: Path
) -> None:
    """`creative4u eval` and `/v1/select` on the same pairs: the same winners, the same
    accuracy, the same P(A) (the served decision is what the report measures)."""
    from datasets import load_from_disk

    from creative4u.images import to_data_url
    from tests.pairs_fixture import make_pair_dataset

    ds = make_pair_dataset(tmp_path, products=4)
    report = tmp_path / "report"
    res = _cli(
        "eval",
        "--model",
        str(tiny_model),
        "--adapter",
        str(adapter),
        "--dataset",
        str(ds),
        "--out",
        str(report),
        "--max-new-tokens",
        "24",
        "--baselines",
        "chance",
    )
    assert res.returncode == 0, res.stderr[-3000:]
    m = json.loads((report / "metrics.json").read_text())
    records = [json.loads(x) for x in (report / "records.jsonl").read_text().splitlines()]
    test = load_from_disk(str(ds))["test"]
    assert len(records) == len(test) == m["n_pairs"]
    served = []
    for row, rec in zip(test, records, strict=True):
        body = {
            "creatives": [to_data_url(row["image_a"]), to_data_url(row["image_b"])],
            "query": row["query"],
            "title": row["title"],
        }
        r = http.post("/v1/select", json=body)
        assert r.status_code == 200, r.text
        served.append(r.json())
        assert rec["pair_id"] == row["pair_id"]
        assert served[-1]["winner"] == rec["winner"], rec["pair_id"]
        assert served[-1]["p_a_uncalibrated"] == pytest.approx(rec["p_a"], abs=1e-3)
    accuracy = sum(s["winner"] == row["label"] for s, row in zip(served, test, strict=True))
    assert m["accuracy"] == pytest.approx(accuracy / len(test))


def test_streamed_select_is_one_of_the_two_orders(http: httpx.Client) -> None:
    """`stream: true` sends the (A, B) order's text as it is generated, then the selection
    whose AB order is exactly that text; generations are counted once."""
    body = {"creatives": GOOD, "query": "red dress", "title": "Nova red dress"}
    plain = http.post("/v1/select", json=body).json()
    events = []
    with http.stream("POST", "/v1/select", json={**body, "stream": True}) as r:
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/event-stream")
        for line in r.iter_lines():
            if line.startswith("data:"):
                events.append(line[5:].strip())
    assert events[-1] == "[DONE]"
    parsed = [json.loads(e) for e in events[:-1]]
    deltas = [e["text"] for e in parsed if e["type"] == "delta"]
    (selection,) = [e["selection"] for e in parsed if e["type"] == "selection"]
    assert deltas and parsed[-1]["type"] == "selection"
    ab = next(o for o in selection["orders"] if o["order"] == "AB")
    assert "".join(deltas) == ab["text"]
    # greedy: the streamed selection is the plain one
    assert selection["winner"] == plain["winner"]
    assert [o["text"] for o in selection["orders"]] == [o["text"] for o in plain["orders"]]
    assert selection["p_a"] == pytest.approx(plain["p_a"], abs=1e-3)
    bad = http.post("/v1/rank", json={**body, "stream": True})
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "stream"


def test_two_adapters_answer_by_name(http: httpx.Client, oai) -> None:
    """Each served adapter answers under its own name, in chat and in /v1/select; an unknown
    name is a 404 that lists what is served."""
    msgs = build_messages("red dress", "Nova red dress", *GOOD, style="openai")
    kw = dict(messages=msgs, max_tokens=12, temperature=0.0, seed=0)
    first = oai.chat.completions.create(model="creative4u", **kw)
    other = oai.chat.completions.create(model="other", **kw)
    assert first.model == "creative4u" and other.model == "other"
    assert first.choices[0].message.content != other.choices[0].message.content
    body = {"creatives": GOOD, "query": "red dress", "title": "Nova red dress"}
    a = http.post("/v1/select", json=body).json()
    b = http.post("/v1/select", json={**body, "model": "other"}).json()
    assert a["model"] == "creative4u" and b["model"] == "other"
    assert [o["text"] for o in a["orders"]] != [o["text"] for o in b["orders"]]
    missing = http.post("/v1/select", json={**body, "model": "nope"})
    assert missing.status_code == 404
    err = missing.json()["error"]
    assert err["param"] == "model" and "'other'" in err["message"]


# --------------------------------------------------------------------------------------------
# No behaviour change: the served answers on a fixed set, against those recorded before the
# serving path was reworked for speed (tests/data/select_golden.json), and recorded again when
# the protocol's prompt changed (comparison lines reason first: the same texts, P(A) moved by
# up to 1.5e-3); a change to the prompt or the model must re-record it, a change to serving not
# --------------------------------------------------------------------------------------------

GOLDEN = ROOT / "tests" / "data" / "select_golden.json"
GOLDEN_COLOURS = [(200, 30, 30), (30, 30, 200), (30, 160, 60), (120, 120, 120), (240, 200, 20)]


def _golden_requests() -> list[tuple[str, dict]]:
    urls = [data_url(creative(c, size=(100 + 20 * i, 90))) for i, c in enumerate(GOLDEN_COLOURS)]
    out = []
    for i in range(len(urls) - 1):
        body = {
            "creatives": [urls[i], urls[i + 1]],
            "query": ["red dress", "blue shoes", "summer bag", "grey coat"][i],
            "title": "Nova summer collection",
            "options": {"max_tokens": 12},
        }
        out.append(("/v1/select", body))
    rank = {
        "creatives": [{"image": u, "id": f"c{i}"} for i, u in enumerate(urls[:4])],
        "query": "red dress",
        "title": "Nova red dress",
        "options": {"max_tokens": 8},
    }
    out.append(("/v1/rank", rank))
    return out


# The served model is random and answers within 0.02 of a coin, in bfloat16: its probabilities
# move in steps of 2**-13 with the CPU's kernels, by up to 3.7e-4 with the same code (measured:
# AVX-512 with bf16 instructions, AVX-512 without, AVX2 forced by ATEN_CPU_CAPABILITY). Floats
# are compared to 1e-3, and a decision whose probability is that close to 0.5 is a tie either
# way (it must still follow its own probability); texts, verdicts, structure and every other
# field must be identical.
NUMERIC_TOL = 1e-3
DECISION_KEYS = {"winner", "won", "decided_by"}


def _near_tie(d: dict) -> bool:
    p = d.get("p_a", d.get("p_win"))
    return isinstance(p, float) and abs(p - 0.5) <= NUMERIC_TOL


# The problems that only say how a decision was reached (and so move with a near tie).
DECISION_PROBLEMS = (
    "by rule the first creative",
    "an output never reached",
    "ties decided by rule",
)


def _undecided(problems: list[str]) -> list[str]:
    return [
        p.removesuffix("; the winner rests on the answer-token probabilities")
        for p in problems
        if not any(d in p for d in DECISION_PROBLEMS)
    ]


def _decision_follows_probability(d: dict) -> bool:
    """A near tie may go either way, but the way it goes must follow the answer's own P(A)."""
    if d.get("winner") in ("A", "B") and str(d.get("decided_by")).endswith("probabilities"):
        return (d["winner"] == "A") == (d["p_a_uncalibrated"] > 0.5)
    return True


def _same(got: object, want: object, path: str = "") -> list[str]:
    """Differences between two served JSON values, blind only to the kernels' rounding."""
    if isinstance(want, dict) and isinstance(got, dict):
        diffs = [f"{path}: keys {sorted(set(got) ^ set(want))}"] if set(got) != set(want) else []
        tie = _near_tie(want) or _near_tie(got)
        if any(_near_tie(c) for c in want.get("comparisons", []) + got.get("comparisons", [])):
            tie = True
        if tie and not _decision_follows_probability(got):
            diffs.append(f"{path}: decision {got.get('winner')!r} does not follow its probability")
        for k in want:
            if k not in got or k == "latency_ms" or (tie and k in DECISION_KEYS):
                continue
            if tie and k == "problems":
                diffs += _same(_undecided(got[k]), _undecided(want[k]), f"{path}.{k}")
                continue
            if k == "ranking":
                diffs += _same_ranking(got[k], want[k], f"{path}.{k}")
            else:
                diffs += _same(got[k], want[k], f"{path}.{k}")
        return diffs
    if isinstance(want, list) and isinstance(got, list):
        if len(got) != len(want):
            return [f"{path}: {len(got)} items, want {len(want)}"]
        return [
            d
            for i, (g, w) in enumerate(zip(got, want, strict=True))
            for d in _same(g, w, f"{path}[{i}]")
        ]
    if isinstance(want, float) and isinstance(got, (int, float)) and not isinstance(got, bool):
        return [] if abs(got - want) <= NUMERIC_TOL else [f"{path}: {got} != {want}"]
    return [] if got == want else [f"{path}: {got!r} != {want!r}"]


def _same_ranking(got: list[dict], want: list[dict], path: str) -> list[str]:
    """A ranking's entries matched by id: scores within the tolerance may swap places, and an
    entry's decisive comparisons (against its neighbours) then change with them."""
    diffs = (
        []
        if [g["score"] for g in got] == sorted((g["score"] for g in got), reverse=True)
        else [f"{path}: not ordered by score"]
    )
    if sorted(g["id"] for g in got) != sorted(w["id"] for w in want):
        return diffs + [f"{path}: ids {[g['id'] for g in got]} != {[w['id'] for w in want]}"]
    reordered = [g["id"] for g in got] != [w["id"] for w in want]
    by_id = {g["id"]: g for g in got}
    for w in want:
        g, here = by_id[w["id"]], f"{path}[{w['id']}]"
        if reordered:
            others = [s for s in want if abs(s["score"] - w["score"]) <= NUMERIC_TOL]
            if len(others) < 2:
                diffs.append(f"{here}: moved from rank {w['rank']} to {g['rank']}")
        keep = {k: v for k, v in w.items() if not (reordered and k in {"rank", "decisive"})}
        diffs += _same({k: g.get(k) for k in keep}, keep, here)
    return diffs


def test_served_answers_match_those_recorded_before_the_speed_work(http: httpx.Client) -> None:
    """One request at a time (the engine batch holds exactly that request's orders), so the
    generations are the same computation as when the file was recorded."""
    import os

    answers = []
    for path, body in _golden_requests():
        r = http.post(path, json=body)
        assert r.status_code == 200, r.text
        answers.append(r.json())
    if os.environ.get("CREATIVE4U_RECORD_GOLDEN") == "1":
        GOLDEN.parent.mkdir(parents=True, exist_ok=True)
        GOLDEN.write_text(json.dumps(answers, indent=1) + "\n")
        pytest.skip(f"recorded {GOLDEN}")
    want = json.loads(GOLDEN.read_text())
    diffs = _same(answers, want)
    assert not diffs, "served answers changed:\n" + "\n".join(diffs[:20])
