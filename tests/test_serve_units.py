"""Serving logic without an engine: both-orders combination, Bradley-Terry, limits, auth, URL
guard, and the whole app driven through a scripted test-double engine (fast, no vLLM)."""

from __future__ import annotations

import asyncio
import base64
import io
import math
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
from PIL import Image

from creative4u.engines import Completion, Delta, Engine, GenParams, split_images
from creative4u.generation import Generation
from creative4u.protocol import DIMENSION_IDS, DimensionVerdict, Verdict, parse, render
from creative4u.ranking import bradley_terry, total_order
from creative4u.selection import combine_orders, read_order
from serve.admission import Admission
from serve.config import Limits, ServeConfig
from serve.errors import APIError
from serve.fetch import URLFetcher, address_refusal, host_allowed

# --------------------------------------------------------------------------------------------
# Test doubles
# --------------------------------------------------------------------------------------------

STUB_PROCESSOR = SimpleNamespace(
    image_processor=SimpleNamespace(
        min_pixels=56 * 56, max_pixels=56 * 56, patch_size=14, merge_size=2
    ),
    tokenizer=None,
)


def redness(img: Image.Image) -> float:
    arr = np.asarray(img.convert("RGB"), dtype=float)
    return float(arr[..., 0].mean() - arr[..., 2].mean()) / 255.0


def protocol_text(winner: str) -> str:
    dims = {
        q: DimensionVerdict(q, "A>B" if winner == "A" else "A<B", f"{winner} looks better on {q}")
        for q in DIMENSION_IDS
    }
    return render(Verdict(winner=winner, identical=False, indistinguishable=False, dimensions=dims))


def scripted_completion(text: str, p_a: float | None) -> Completion:
    """Character pieces, with P(A)/P(B) at the step right after '<answer>' (as vLLM reports it)."""
    pieces = list(text)
    steps: list[dict[str, float]] = [{} for _ in pieces]
    if p_a is not None:
        at = text.find("<answer>")
        if at >= 0:
            k = at + len("<answer>")
            steps[k] = {"A": math.log(p_a), "B": math.log(1 - p_a)}
    return Completion(text, "stop", 50, len(pieces), pieces, [0.0] * len(pieces), steps)


class ScriptedEngine(Engine):
    """Test double: answers the protocol from image redness (the redder creative wins).

    mode="redder": consistent judge; mode="first": always picks the first slot (position bias);
    mode="garbage": never reaches <answer>, but a probe continuation gets probabilities.
    """

    kind = "test-double"

    def __init__(self, mode: str = "redder", delay_s: float = 0.0):
        super().__init__(STUB_PROCESSOR, "creative4u")
        self.mode, self.delay_s = mode, delay_s
        self.calls: list[int] = []

    @property
    def answer_token_ids(self) -> list[int]:
        return [40, 41]

    async def complete(
        self, chat, params: GenParams, *, continue_text: str | None = None
    ) -> Completion:
        _, images = split_images(chat)
        self.calls.append(len(images))
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        if len(images) == 2:
            gap = redness(images[0]) - redness(images[1])
            p_a = 1 / (1 + math.exp(-8 * gap))
        else:
            p_a = 0.5
        if continue_text is not None:  # a probe: one step, the letters' probabilities
            return Completion(
                "A",
                "length",
                60,
                1,
                ["A"],
                [math.log(max(p_a, 1e-9))],
                [{"A": math.log(max(p_a, 1e-9)), "B": math.log(max(1 - p_a, 1e-9))}],
            )
        if self.mode == "garbage":
            return scripted_completion("zzz zzz zzz", None)
        if self.mode == "first":
            return scripted_completion(protocol_text("A"), 0.7)
        p_a = min(max(p_a, 0.01), 0.99)
        return scripted_completion(protocol_text("A" if p_a >= 0.5 else "B"), p_a)

    async def stream(self, chat, params: GenParams):
        text = protocol_text("A")
        for i in range(0, len(text), 40):
            yield Delta(text[i : i + 40])
        yield Delta("", finish_reason="stop", prompt_tokens=50, completion_tokens=len(text))


class FakeCTRScorer:
    """Test double for M2FN: CTR grows with redness."""

    def __init__(self) -> None:
        self.contexts: list[dict[str, Any]] = []

    def score(self, images: list[Image.Image], context: list[dict[str, Any]]) -> list[float]:
        self.contexts += context
        return [0.01 + 0.02 * max(redness(i), 0.0) for i in images]


def swatch(rgb: tuple[int, int, int], size: tuple[int, int] = (80, 60), fmt: str = "PNG") -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, rgb).save(buf, format=fmt)
    return buf.getvalue()


def data_url(raw: bytes, mime: str = "image/png") -> str:
    return f"data:{mime};base64," + base64.b64encode(raw).decode()


RED, PINK, GREY, BLUE = (220, 20, 20), (220, 120, 140), (128, 128, 128), (20, 20, 220)

# --------------------------------------------------------------------------------------------
# Pure logic
# --------------------------------------------------------------------------------------------


def _gen(text: str, p_a: float | None) -> Generation:
    probs = None if p_a is None else {"A": p_a, "B": 1 - p_a}
    return Generation(text=text, verdict=parse(text), answer_probs=probs)


def test_both_orders_agree_and_confidence_averages_the_two_probabilities() -> None:
    ab = read_order("AB", _gen(protocol_text("A"), 0.8), "answer")
    ba = read_order("BA", _gen(protocol_text("B"), 0.3), "answer")  # slot B there = our A
    out = combine_orders([ab, ba])
    assert out.winner == "A" and out.order_swap_agreed is True and out.well_formed
    assert out.p_a == pytest.approx(0.75) and out.confidence == pytest.approx(0.75)
    assert out.decided_by == "answer_probabilities"
    # the second order's verdicts are mapped back: its "A<B" on Q3 means our A won Q3
    assert ba.verdict.dimensions["Q3"].verdict == "A>B"
    rows = out.dimensions()
    assert all(r.verdict == "A>B" and r.agreed for r in rows)


def test_disagreement_is_reported_and_the_probabilities_decide() -> None:
    ab = read_order("AB", _gen(protocol_text("A"), 0.6), "answer")
    ba = read_order("BA", _gen(protocol_text("A"), 0.7), "answer")  # picks the first slot again
    out = combine_orders([ab, ba])
    assert out.order_swap_agreed is False
    assert out.p_a == pytest.approx(0.45) and out.winner == "B"
    assert out.confidence == pytest.approx(0.55)
    assert any("disagree" in p for p in out.problems)
    assert out.primary.order == "BA"  # the reasons shown are those of the order that picked B


def test_no_answer_anywhere_falls_back_to_the_rule_and_says_so() -> None:
    out = combine_orders(
        [read_order("AB", _gen("zzz", None), None), read_order("BA", _gen("", None), None)]
    )
    assert out.winner == "A" and out.confidence == 0.5 and out.decided_by == "default"
    assert out.order_swap_agreed is None and not out.well_formed
    assert all(r.verdict is None and r.reason is None for r in out.dimensions())
    assert any("by rule" in p for p in out.problems)


def test_bradley_terry_is_finite_ordered_and_total() -> None:
    assert np.allclose(bradley_terry(np.full((3, 3), 0.5)), 0.0)
    sweep = np.triu(np.ones((4, 4)), 1)  # 0 beats everyone, 1 beats 2 and 3, ...
    s = bradley_terry(sweep)
    assert np.all(np.isfinite(s)) and list(np.argsort(-s)) == [0, 1, 2, 3]
    rng = np.random.default_rng(0)
    true = np.array([1.5, -0.5, 0.7, -1.7])
    p = 1 / (1 + np.exp(-(true[:, None] - true[None, :])))
    noisy = np.clip(p + rng.normal(0, 0.02, p.shape), 0, 1)
    wins = np.triu(noisy, 1) + np.tril(1 - noisy.T, -1)
    assert list(np.argsort(-bradley_terry(wins))) == list(np.argsort(-true))
    assert total_order([0.0, 0.0, 0.0]) == [0, 1, 2]
    assert total_order([0.0, 0.0, 1.0], tiebreak=[0, 1, 0]) == [2, 1, 0]


def test_admission_refuses_beyond_the_queue() -> None:
    async def main() -> None:
        adm = Admission(max_concurrency=1, max_queue=1)
        release = await adm.acquire()
        waiter = asyncio.create_task(adm.acquire())
        await asyncio.sleep(0)
        assert adm.waiting == 1
        with pytest.raises(APIError) as e:
            await adm.acquire()
        assert e.value.status == 429
        release()
        (await waiter)()
        assert adm.active == 0

    asyncio.run(main())


@pytest.mark.parametrize(
    "ip,why",
    [
        ("127.0.0.1", "loopback"),
        ("10.1.2.3", "private"),
        ("192.168.0.10", "private"),
        ("169.254.169.254", "link-local"),
        ("::1", "loopback"),
        ("fe80::1", "link-local"),
        ("::ffff:10.0.0.1", "private"),
        ("0.0.0.0", "private"),
        ("93.184.216.34", None),
    ],
)
def test_address_refusal(ip: str, why: str | None) -> None:
    got = address_refusal(ip)
    assert (got is None) == (why is None)
    if why:
        assert got in (why, "unspecified", "reserved", "private")


def test_host_allow_list() -> None:
    allow = ["cdn.example.com", ".img.example.org"]
    assert host_allowed("CDN.example.com", allow)
    assert host_allowed("a.img.example.org", allow) and host_allowed("img.example.org", allow)
    assert not host_allowed("example.com", allow) and not host_allowed(
        "evil-cdn.example.com", allow
    )


def test_fetcher_refuses_private_addresses_after_dns() -> None:
    async def resolver(host: str, port: int) -> list[str]:
        return ["10.0.0.7"]  # an allowed name that resolves inward

    async def main() -> None:
        f = URLFetcher(["cdn.example.com"], max_bytes=1000, resolver=resolver)
        try:
            with pytest.raises(APIError) as e:
                await f.fetch("http://cdn.example.com/a.png", "creatives[0]")
            assert e.value.status == 400 and "private" in e.value.message
            with pytest.raises(APIError) as e:
                await f.fetch("http://other.example.com/a.png", "creatives[0]")
            assert "allow-list" in e.value.message
        finally:
            await f.aclose()

    asyncio.run(main())


# --------------------------------------------------------------------------------------------
# The app, through a test-double engine
# --------------------------------------------------------------------------------------------

KEY = "test-key-123"


def make_client(engine: Engine | None = None, scorer: Any = None, **cfg: Any):
    from fastapi.testclient import TestClient

    from serve.app import create_app

    limits = Limits(max_image_bytes=200_000, max_body_bytes=1_000_000, max_image_pixels=4_000_000)
    config = ServeConfig(api_key=KEY, limits=limits, **cfg)
    app = create_app(engine or ScriptedEngine(), config, ctr_scorer=scorer)
    client = TestClient(app, headers={"Authorization": f"Bearer {KEY}"})
    return client


def test_select_schema_ctr_double_and_auth() -> None:
    scorer = FakeCTRScorer()
    with make_client(scorer=scorer) as c:
        body = {
            "creatives": [data_url(swatch(BLUE)), data_url(swatch(RED))],
            "query": "red dress",
            "title": "Nova red dress",
        }
        r = c.post("/v1/select", json=body)
        assert r.status_code == 200, r.text
        j = r.json()
        assert j["winner"] == "B" and j["order_swap_agreed"] is True and j["well_formed"]
        assert 0.5 < j["confidence"] <= 1 and j["decided_by"] == "answer_probabilities"
        assert [d["id"] for d in j["dimensions"]] == list(DIMENSION_IDS)
        assert all({"id", "question", "verdict", "reason"} <= set(d) for d in j["dimensions"])
        assert j["ctr"]["b"] > j["ctr"]["a"] and scorer.contexts[0]["query"] == "red dress"
        assert j["model"] == "creative4u" and j["latency_ms"] >= 0 and len(j["orders"]) == 2

        for headers, code in (
            ({}, "missing_api_key"),
            ({"Authorization": "Bearer nope"}, "invalid_api_key"),
        ):
            r = c.post("/v1/select", json=body, headers={"Authorization": ""} | headers)
            assert r.status_code == 401 and r.json()["error"]["code"] == code
        assert c.get("/health", headers={"Authorization": ""}).status_code == 200


def test_the_server_freezes_what_lives_as_long_as_it() -> None:
    """Start-up objects go to the collector's permanent generation (a full collection no longer
    walks them) once the engine has started; a request's garbage is still collected."""
    import gc

    gc.unfreeze()
    with make_client() as c:
        assert gc.get_freeze_count() > 0
        frozen = gc.get_freeze_count()
        body = {
            "creatives": [data_url(swatch(BLUE)), data_url(swatch(RED))],
            "query": "q",
            "title": "t",
        }
        assert c.post("/v1/select", json=body).status_code == 200
        assert gc.get_freeze_count() <= frozen  # requests freeze nothing; start-up did
    gc.unfreeze()


def test_select_without_m2fn_has_null_ctr_and_position_bias_is_reported() -> None:
    with make_client(ScriptedEngine("first")) as c:
        r = c.post(
            "/v1/select",
            json={
                "creatives": [data_url(swatch(RED)), data_url(swatch(BLUE))],
                "query": "q",
                "title": "t",
            },
        )
        j = r.json()
        assert j["ctr"] == {"a": None, "b": None}
        assert j["order_swap_agreed"] is False and any("disagree" in p for p in j["problems"])


def test_untrained_output_is_reported_honestly_with_and_without_the_probe() -> None:
    engine = ScriptedEngine("garbage")
    with make_client(engine) as c:
        body = {
            "creatives": [data_url(swatch(RED)), data_url(swatch(BLUE))],
            "query": "q",
            "title": "t",
        }
        j = c.post("/v1/select", json=body).json()
        assert not j["well_formed"] and j["decided_by"] == "probe_probabilities"
        assert j["winner"] == "A" and all(d["reason"] is None for d in j["dimensions"])
        j = c.post("/v1/select", json=body | {"options": {"probe_answer": False}}).json()
        assert j["decided_by"] == "default" and j["confidence"] == 0.5
        assert any("missing <answer>" in p for p in j["problems"])


def test_rank_gives_a_total_order_with_decisive_reasons() -> None:
    with make_client(scorer=FakeCTRScorer()) as c:
        colours = [GREY, RED, BLUE, PINK]
        r = c.post(
            "/v1/rank",
            json={
                "creatives": [
                    {"id": f"c{i}", "image": data_url(swatch(col))} for i, col in enumerate(colours)
                ],
                "query": "red",
                "title": "t",
            },
        )
        assert r.status_code == 200, r.text
        j = r.json()
        assert [row["id"] for row in j["ranking"]] == ["c1", "c3", "c0", "c2"]
        assert [row["rank"] for row in j["ranking"]] == [1, 2, 3, 4]
        assert len(j["comparisons"]) == 6 and all(row["ctr"] > 0 for row in j["ranking"])
        top = j["ranking"][0]
        assert top["decisive"][0]["won"] and top["decisive"][0]["against"] == "c3"
        assert top["decisive"][0]["dimensions"][0]["verdict"] == "A>B"  # A = the ranked creative


def test_chat_completions_through_the_openai_sdk() -> None:
    import openai

    from creative4u.protocol import build_messages

    with make_client() as c:
        client = openai.OpenAI(base_url="http://testserver/v1", api_key=KEY, http_client=c)
        msgs = build_messages(
            "q", "t", data_url(swatch(RED)), data_url(swatch(BLUE)), style="openai"
        )
        out = client.chat.completions.create(model="creative4u", messages=msgs, max_tokens=16)
        assert parse(out.choices[0].message.content).well_formed and out.usage.prompt_tokens == 50
        text = "".join(
            ch.choices[0].delta.content or ""
            for ch in client.chat.completions.create(model="creative4u", messages=msgs, stream=True)
            if ch.choices
        )
        assert parse(text).winner == "A"
        with pytest.raises(openai.NotFoundError):
            client.chat.completions.create(model="gpt-4o", messages=msgs)
        with pytest.raises(openai.BadRequestError) as e:
            client.chat.completions.create(
                model="creative4u",
                messages=build_messages("q", "t", "/etc/passwd", "x", style="openai"),
            )
        assert "file paths" in str(e.value)
        assert [m.id for m in client.models.list()] == ["creative4u"]


@pytest.mark.parametrize(
    "body,status,param,words",
    [
        (
            {"creatives": [data_url(swatch(RED))] * 3, "query": "q", "title": "t"},
            400,
            "creatives",
            "exactly 2",
        ),
        ({"creatives": [data_url(swatch(RED))] * 2, "title": "t"}, 400, "query", "missing"),
        (
            {"creatives": ["", data_url(swatch(RED))], "query": "q", "title": "t"},
            400,
            "creatives[0]",
            "empty",
        ),
        (
            {
                "creatives": ["file:///etc/passwd", data_url(swatch(RED))],
                "query": "q",
                "title": "t",
            },
            400,
            "creatives[0]",
            "file",
        ),
        (
            {
                "creatives": [data_url(swatch(RED)), "http://10.0.0.1/a.png"],
                "query": "q",
                "title": "t",
            },
            400,
            "creatives[1]",
            "not fetched",
        ),
        (
            {
                "creatives": [data_url(b"x" * 300_000), data_url(swatch(RED))],
                "query": "q",
                "title": "t",
            },
            413,
            "creatives[0]",
            "limit",
        ),
        (
            {"creatives": [data_url(swatch(RED))] * 2, "query": "q" * 5000, "title": "t"},
            400,
            "query",
            "limit",
        ),
        (
            {"creatives": [data_url(swatch(RED))] * 2, "query": "q", "title": "t", "option": {}},
            400,
            "option",
            "Extra",
        ),
        (
            {
                "creatives": [data_url(swatch(RED))] * 2,
                "query": "q",
                "title": "t",
                "options": {"max_tokens": 10**6},
            },
            400,
            "options.max_tokens",
            "limit",
        ),
    ],
)
def test_bad_select_requests_name_the_field(
    body: dict, status: int, param: str, words: str
) -> None:
    with make_client() as c:
        r = c.post("/v1/select", json=body)
        assert r.status_code == status, r.text
        err = r.json()["error"]
        assert err["param"] == param and words.lower() in err["message"].lower(), err
        assert set(err) == {"message", "type", "param", "code"}


def test_oversized_body_and_bad_json_are_refused_before_work() -> None:
    with make_client() as c:
        r = c.post(
            "/v1/select",
            content=b"{" + b" " * 1_100_000 + b"}",
            headers={"Content-Type": "application/json"},
        )
        assert r.status_code == 413 and "body" in r.json()["error"]["message"]
        r = c.post("/v1/select", content=b"{not json", headers={"Content-Type": "application/json"})
        assert r.status_code == 400 and "JSON" in r.json()["error"]["message"]
        metrics = c.get("/metrics").text
        assert 'creative4u_requests_total{endpoint="/v1/select",status="413"} 1.0' in metrics


def test_slow_requests_time_out_with_504_and_the_server_goes_on() -> None:
    body = {
        "creatives": [data_url(swatch(RED)), data_url(swatch(BLUE))],
        "query": "q",
        "title": "t",
    }
    with make_client(ScriptedEngine(delay_s=2.0), request_timeout_s=0.2) as c:
        r = c.post("/v1/select", json=body)
        assert r.status_code == 504 and r.json()["error"]["type"] == "timeout_error"
        c.app.state.engine.delay_s = 0.0
        assert c.post("/v1/select", json=body).status_code == 200


def test_admission_is_sized_from_the_engine() -> None:
    from serve.admission import DEFAULT_BATCH_CAPACITY, QUEUE_ROUNDS, admission_limits

    # a select is two sequences: a batch of 64 holds 32 requests; 4 batches may wait
    assert admission_limits(64, 300.0) == (32, 32 * QUEUE_ROUNDS)
    assert admission_limits(256, 300.0) == (128, 128 * QUEUE_ROUNDS)
    assert admission_limits(1, 300.0) == (1, QUEUE_ROUNDS)  # never zero slots
    assert admission_limits(None, 300.0)[0] == DEFAULT_BATCH_CAPACITY // 2
    # a measured batch time shortens the queue to what the timeout allows
    assert admission_limits(64, 300.0, batch_seconds=100.0) == (32, 64)
    assert admission_limits(64, 300.0, batch_seconds=400.0) == (32, 0)
    # explicit limits win
    assert admission_limits(64, 300.0, max_concurrency=3, max_queue=5) == (3, 5)


def test_serve_flags_reach_the_vllm_engine_arguments(tiny_model) -> None:
    """GPU serving settings go from `creative4u serve` flags to vLLM; a server compiles unless
    told `--enforce-eager`; the jobs that build an engine of their own run eagerly on CPU."""
    from creative4u.cli import build_parser
    from creative4u.engines import LocalEngine
    from serve.server import engine_from_args

    parser = build_parser()
    plain = engine_from_args(parser.parse_args(["serve", "--model", str(tiny_model)]))
    assert plain.engine_kwargs["enforce_eager"] is False
    assert "tensor_parallel_size" not in plain.engine_kwargs
    eager = engine_from_args(
        parser.parse_args(["serve", "--model", str(tiny_model), "--enforce-eager"])
    )
    assert eager.engine_kwargs["enforce_eager"] is True
    with pytest.raises(SystemExit):  # one or the other
        parser.parse_args(["serve", "--model", "m", "--enforce-eager", "--compiled"])
    from vllm.platforms import current_platform

    job = LocalEngine.from_model(str(tiny_model)).engine_kwargs
    assert job.get("enforce_eager", False) is current_platform.is_cpu()
    gpu = engine_from_args(
        parser.parse_args(
            ["serve", "--model", str(tiny_model), "--tensor-parallel-size", "2"]
            + ["--gpu-memory-utilization", "0.5", "--compiled", "--max-num-seqs", "8"]
        )
    )
    kw = gpu.engine_kwargs
    assert (kw["tensor_parallel_size"], kw["gpu_memory_utilization"]) == (2, 0.5)
    assert kw["enforce_eager"] is False and kw["max_num_seqs"] == 8 and gpu.batch_capacity == 8
