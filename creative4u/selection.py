"""The one selection path: a pair in both orders on any engine -> one calibrated, typed verdict.

The API, the UI (through the API), the CLI and its batch jobs, the Python API, `creative4u eval`,
SFT validation and GRPO's checkpoint choice all call `AsyncSelector`, so what is measured is what
users get.

A VLM judging two images side by side has a position bias, so every pair is judged in both orders
(A,B) and (B,A) in one engine batch. The second order's verdict is mapped back with
`Verdict.swapped()`. Confidence is the model's own probability of the answer letter: P(A) from
order one and 1 - P(A) from order two, averaged. When the orders disagree, the response says so
and the winner rests on those probabilities; when the output is not well-formed, the response
says so too and never fills in reasons the model did not give.

When an output never reaches `<answer>` (an untrained or truncated model), the probability can
still be read by appending `</think><answer>` to what was generated ("probe"); that is labelled
as such. When no probability exists at all, a fixed rule decides (the first creative), with
confidence 0.5 and `decided_by: "default"`.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

import numpy as np
from PIL import Image

from creative4u.calibration import Calibration, calibrated
from creative4u.engines import Chat, Completion, Delta, Engine, GenParams
from creative4u.errors import APIError
from creative4u.generation import Generation, answer_probs_from_steps
from creative4u.images import fit_to_pixels, in_image_pool, processor_pixel_bounds
from creative4u.protocol import (
    DIMENSION_IDS,
    QUESTION_BY_ID,
    Verdict,
    build_messages,
    flip_comparison,
    render,
    swap_letters,
)
from creative4u.ranking import rank_plan
from creative4u.results import (
    CTR,
    Comparison,
    DecidedBy,
    Decisive,
    DecisiveDimension,
    Dimension,
    OrderOut,
    RankEntry,
    Ranking,
    Selection,
)

Order = Literal["AB", "BA"]
DEFAULT_BT_PRIOR = 0.5
TIE_EPS = 1e-9


@dataclass
class PairInput:
    """One pair to judge: two creatives (already fitted to the model) and the user interest."""

    image_a: Image.Image
    image_b: Image.Image
    query: str
    title: str


class CTRScorer(Protocol):
    """What serving needs from M2FN: predicted CTR per creative in its context."""

    def score(self, images: list[Image.Image], context: list[dict[str, Any]]) -> list[float]: ...


@dataclass
class SelectOptions:
    both_orders: bool = True
    max_tokens: int | None = None
    temperature: float = 0.0
    seed: int | None = None
    probe_answer: bool | None = None
    use_adapter: bool = True
    rank_method: str = "auto"
    """`/v1/rank`: "auto" (every pair up to 8 creatives, adaptive rounds above), "full" or
    "adaptive"."""


@dataclass
class OrderResult:
    """One order's generation, read back into the request's labels (A = first creative)."""

    order: Order
    generation: Generation
    verdict: Verdict
    """Parsed verdict, mapped back to the request's A/B when the order was (B,A)."""
    p_first: float | None
    """P(the request's first creative wins) read from this order, or None."""
    prob_source: Literal["answer", "probe"] | None = None

    @property
    def stance(self) -> str | None:
        """What this order picked: its parsed winner, else the side its probability favours."""
        if self.verdict.winner is not None:
            return self.verdict.winner
        if self.p_first is None or self.p_first == 0.5:
            return None
        return "A" if self.p_first > 0.5 else "B"

    def to_model(self) -> OrderOut:
        return OrderOut(
            order=self.order,
            winner=self.verdict.winner,
            p_a=_round(self.p_first),
            probability_source=self.prob_source,
            well_formed=self.generation.verdict.well_formed,
            problems=list(self.generation.verdict.problems),
            finish_reason=self.generation.extra.get("finish_reason"),
            text=self.generation.text,
        )


@dataclass
class PairOutcome:
    """The combined judgement of one pair."""

    winner: str
    p_a: float | None
    """P(A wins), calibrated when the selector has a calibration."""
    confidence: float
    decided_by: DecidedBy
    order_swap_agreed: bool | None
    orders: list[OrderResult]
    primary: OrderResult
    problems: list[str] = field(default_factory=list)
    p_a_uncalibrated: float | None = None
    calibrated: bool = False

    @property
    def well_formed(self) -> bool:
        return all(o.generation.verdict.well_formed for o in self.orders)

    @property
    def strength_a(self) -> float:
        """The first creative's share of this comparison, as Bradley-Terry counts it."""
        if self.p_a is not None:
            return self.p_a
        if self.decided_by == "answers":
            return 1.0 if self.winner == "A" else 0.0
        return 0.5

    def dimensions(self, perspective: str = "A") -> list[Dimension]:
        """Q3-Q9 from the primary order; `perspective="B"` relabels so A is the second creative."""
        others = [o for o in self.orders if o is not self.primary]
        rows = []
        for qid in DIMENSION_IDS:
            q = QUESTION_BY_ID[qid]
            d = self.primary.verdict.dimensions.get(qid)
            other = others[0].verdict.dimensions.get(qid) if others else None
            verdict = d.verdict if d else None
            reason = d.reason if d and d.reason else None
            swap = other.verdict if other else None
            if perspective == "B":
                verdict, swap = flip_comparison(verdict), flip_comparison(swap)
                reason = swap_letters(reason) if reason else None
            rows.append(
                Dimension(
                    id=qid,
                    name=q.name,
                    question=q.text,
                    verdict=verdict,
                    reason=reason,
                    swap_verdict=swap,
                    agreed=(verdict == swap) if verdict and swap else None,
                )
            )
        return rows

    def rationale(self) -> str | None:
        """The primary order's reasoning in the request's labels (None if there was no output)."""
        o = self.primary
        if o.order == "BA" and o.verdict.well_formed:
            return _think_body(render(o.verdict))
        body = _think_body(o.generation.text)
        if o.order == "BA" and body:
            return swap_letters(body)
        return body or None

    def problems_all(self) -> list[str]:
        out = []
        for o in self.orders:
            out += [f"order {o.order}: {p}" for p in o.generation.verdict.problems]
        return out + list(self.problems)


def _round(x: float | None, nd: int = 6) -> float | None:
    return None if x is None else round(float(x), nd)


def _think_body(text: str) -> str:
    start = text.find("<think>")
    body = text[start + len("<think>") :] if start >= 0 else text
    for end_tag in ("</think>", "<answer>"):
        cut = body.find(end_tag)
        if cut >= 0:
            body = body[:cut]
    return body.strip()


def read_order(order: Order, gen: Generation, prob_source: str | None) -> OrderResult:
    verdict = gen.verdict.swapped() if order == "BA" else gen.verdict
    p = gen.p_a
    p_first = None if p is None else (p if order == "AB" else 1.0 - p)
    return OrderResult(order, gen, verdict, p_first, prob_source if p is not None else None)  # type: ignore[arg-type]


def combine_orders(
    orders: Sequence[OrderResult], calibration: Calibration | None = None
) -> PairOutcome:
    """The one rule that turns one or two orders into winner, confidence and agreement; the
    calibration moves the confidence, never the winner."""
    if not orders:
        raise ValueError("combine_orders needs at least one order")
    problems: list[str] = []
    probs = [o.p_first for o in orders if o.p_first is not None]
    p_a = float(np.mean(probs)) if probs else None
    stances = [o.stance for o in orders]
    agreed = None
    if len(orders) > 1 and all(s is not None for s in stances):
        agreed = len(set(stances)) == 1
    decided_by: DecidedBy
    if p_a is not None and abs(p_a - 0.5) > TIE_EPS:
        winner = "A" if p_a > 0.5 else "B"
        used_probe = any(o.prob_source == "probe" for o in orders if o.p_first is not None)
        decided_by = "probe_probabilities" if used_probe else "answer_probabilities"
    elif stances and stances[0] is not None and len(set(stances)) == 1:
        winner, decided_by = stances[0], "answers"  # type: ignore[assignment]
    else:
        winner, decided_by = "A", "default"
    if agreed is False:
        picks = ", ".join(f"{o.order} picks {s}" for o, s in zip(orders, stances, strict=True))
        rest = (
            "; the winner rests on the answer-token probabilities"
            if decided_by.endswith("probabilities")
            else ""
        )
        problems.append(f"the orders disagree ({picks}){rest}")
    if decided_by == "probe_probabilities":
        problems.append(
            "an output never reached <answer>: P(A) was read by appending '</think><answer>' to it"
        )
    if decided_by == "default":
        why = (
            "the answer-token probabilities tie at 0.5 once both orders are averaged (a pure "
            "position preference)"
            if p_a is not None
            else "no order gave a usable answer or answer probability"
        )
        problems.append(f"{why}; by rule the first creative is returned with confidence 0.5")
    p_raw = p_a
    p_a, confidence = calibrated(p_raw, decided_by, calibration)
    primary = next((o for o in orders if o.stance == winner), orders[0])
    return PairOutcome(
        winner=winner,
        p_a=p_a,
        p_a_uncalibrated=p_raw,
        calibrated=calibration is not None,
        confidence=confidence,
        decided_by=decided_by,
        order_swap_agreed=agreed,
        orders=list(orders),
        primary=primary,
        problems=problems,
    )


def outcome_record(o: PairOutcome) -> dict[str, Any]:
    """A pair's outcome as a JSON record (eval's saved answers, validation): the decision with
    its uncalibrated P(A), and each order as the model saw it (its own A/B labels)."""
    return {
        "winner": o.winner,
        "p_a": o.p_a_uncalibrated,
        "decided_by": o.decided_by,
        "order_swap_agreed": o.order_swap_agreed,
        "well_formed": o.well_formed,
        "orders": [
            {
                "swapped": r.order == "BA",
                "winner": r.generation.verdict.winner,
                "well_formed": r.generation.verdict.well_formed,
                "p_a": r.generation.p_a,
                "dimensions": {d: v.verdict for d, v in r.generation.verdict.dimensions.items()},
                "text": r.generation.text,
            }
            for r in o.orders
        ],
    }


def needs_probe(c: Completion) -> str | None:
    """The text to continue for a probe, or None if the answer position was reached."""
    if c.generation().p_a is not None:
        return None
    text = c.text.rstrip()
    if "<answer>" in text:
        return None  # an answer slot was reached but held no letter probability: nothing to add
    suffix = "\n<answer>" if "</think>" in text else "\n</think>\n<answer>"
    return c.text + suffix


def first_step_probs(c: Completion) -> dict[str, float] | None:
    """P(A), P(B) at a probe's first generated token (its prompt already ends in `<answer>`)."""
    if not c.steps:
        return None
    return answer_probs_from_steps(["<answer>", *c.pieces], [None, *c.steps])


class AsyncSelector:
    """Pairs and rankings on any `Engine`, as coroutines (the server's event loop, eval's, the
    batch jobs'); `creative4u.Selector` is the blocking face of the same class for notebooks."""

    def __init__(
        self,
        engine: Engine,
        *,
        default_max_tokens: int = 256,
        probe_answer: bool = True,
        ctr_scorer: CTRScorer | None = None,
        metrics: Any = None,
        calibration: Calibration | None = None,
        model: str | None = None,
    ):
        self.engine = engine
        self.model = model or engine.model_name
        """The served model that answers (one of `engine.model_names`)."""
        self.default_max_tokens = default_max_tokens
        self.probe_answer = probe_answer
        self.ctr_scorer = ctr_scorer
        self.metrics = metrics
        self.calibration = calibration

    # ---- building blocks -------------------------------------------------------------------

    def prepare(self, img: Image.Image) -> Image.Image:
        """Resize to the model's pixel bounds, exactly as training and evaluation do."""
        min_px, max_px, factor = processor_pixel_bounds(self.engine.processor)
        return fit_to_pixels(img, min_px, max_px, factor)

    async def prepare_all(self, images: Sequence[Image.Image]) -> list[Image.Image]:
        """`prepare` for each creative, in the bounded image pool (never on the event loop)."""
        with self._stage("prepare"):
            return list(await asyncio.gather(*(in_image_pool(self.prepare, i) for i in images)))

    def _stage(self, name: str) -> Any:
        """Time a stage of the request in the server's metrics (a no-op without them)."""
        stage = getattr(self.metrics, "stage", None)
        return stage(name) if stage is not None else contextlib.nullcontext()

    def pair_items(self, rows: Any) -> list[PairInput]:
        """CreativePair rows (their stored images, query and title) as pairs to judge."""
        return [
            PairInput(
                self.prepare(r["image_a"]), self.prepare(r["image_b"]), r["query"], r["title"]
            )
            for r in rows
        ]

    def params(self, options: SelectOptions) -> GenParams:
        return GenParams(
            max_tokens=options.max_tokens or self.default_max_tokens,
            temperature=options.temperature,
            seed=options.seed,
            token_ids=self.engine.answer_token_ids,
            logprobs=True,
            top_logprobs=20,
            use_adapter=options.use_adapter,
            model=self.model,
        )

    def _count(self, comps: Sequence[Completion], purpose: str) -> None:
        if self.metrics is not None and comps:
            self.metrics.count_tokens(
                sum(c.prompt_tokens for c in comps),
                sum(c.completion_tokens for c in comps),
                purpose,
                n=len(comps),
            )

    async def _probe(
        self, chats: list[Chat], comps: list[Completion], options: SelectOptions
    ) -> list[Completion | None]:
        """Read P(A)/P(B) after `<answer>` for outputs that never got there (one short batch)."""
        probe = self.probe_answer if options.probe_answer is None else options.probe_answer
        conts = [needs_probe(c) if probe else None for c in comps]
        todo = [i for i, t in enumerate(conts) if t is not None]
        out: list[Completion | None] = [None] * len(comps)
        if not todo:
            return out
        params = self.params(options)
        params.max_tokens, params.temperature, params.stop = 1, 0.0, None
        try:
            with self._stage("probe"):
                probed = await self.engine.complete_many(
                    [chats[i] for i in todo], params, [conts[i] for i in todo]
                )
        except APIError as e:
            if e.status in (400, 501):  # the upstream cannot continue a turn: no probe
                return out
            raise
        self._count(probed, "probe")
        for i, c in zip(todo, probed, strict=True):
            out[i] = c
        return out

    @staticmethod
    def _chats(items: Sequence[PairInput], orders: Sequence[Order]) -> list[Chat]:
        chats: list[Chat] = []
        for it in items:
            for order in orders:
                x, y = (it.image_a, it.image_b) if order == "AB" else (it.image_b, it.image_a)
                chats.append(build_messages(it.query, it.title, x, y))
        return chats

    async def _outcomes(
        self,
        n_pairs: int,
        orders: Sequence[Order],
        chats: list[Chat],
        comps: list[Completion],
        options: SelectOptions,
    ) -> list[PairOutcome]:
        """Completions of `n_pairs` x `orders` -> probes where needed -> one outcome per pair."""
        probes = await self._probe(chats, comps, options)
        with self._stage("combine"):
            return self._combine(n_pairs, orders, comps, probes)

    def _combine(
        self,
        n_pairs: int,
        orders: Sequence[Order],
        comps: list[Completion],
        probes: list[Completion | None],
    ) -> list[PairOutcome]:
        outcomes = []
        k = 0
        for _ in range(n_pairs):
            results = []
            for order in orders:
                gen, src = comps[k].generation(), "answer"
                if gen.p_a is None and probes[k] is not None:
                    probe_probs = first_step_probs(probes[k])  # type: ignore[arg-type]
                    if probe_probs:
                        gen.answer_probs, src = probe_probs, "probe"
                results.append(read_order(order, gen, src))
                k += 1
            outcome = combine_orders(results, self.calibration)
            if self.metrics is not None:
                self.metrics.pairs.labels(
                    str(outcome.well_formed).lower(), str(outcome.order_swap_agreed).lower()
                ).inc()
            outcomes.append(outcome)
        return outcomes

    async def compare_many(
        self, items: Sequence[PairInput], options: SelectOptions | None = None
    ) -> list[PairOutcome]:
        """Judge every pair (both orders unless told otherwise), all in one engine batch."""
        options = options or SelectOptions()
        orders: list[Order] = ["AB", "BA"] if options.both_orders else ["AB"]
        chats = self._chats(items, orders)
        with self._stage("engine"):
            comps = await self.engine.complete_many(chats, self.params(options))
        self._count(comps, "select")
        return await self._outcomes(len(items), orders, chats, comps, options)

    async def compare(
        self,
        pairs: Sequence[tuple[Image.Image, Image.Image]],
        query: str,
        title: str,
        options: SelectOptions | None = None,
    ) -> list[PairOutcome]:
        """Pairs that share one user interest (a product's creatives)."""
        return await self.compare_many([PairInput(a, b, query, title) for a, b in pairs], options)

    async def predict_ctr(
        self, images: Sequence[Image.Image], query: str, title: str
    ) -> tuple[list[float | None], str | None]:
        """M2FN's predicted CTR per creative (None each when no scorer is loaded)."""
        if self.ctr_scorer is None:
            return [None] * len(images), None
        ctx = [{"query": query, "title": title} for _ in images]
        try:
            with self._stage("ctr"):
                ctr = await asyncio.to_thread(self.ctr_scorer.score, list(images), ctx)
            return [float(x) for x in ctr], None
        except Exception as e:  # a CTR failure must not hide the selection
            return [None] * len(images), f"M2FN scoring failed: {type(e).__name__}: {e}"

    # ---- the operations ----------------------------------------------------------------------

    def selection(
        self,
        outcome: PairOutcome,
        ctr: Sequence[float | None] = (None, None),
        extra_problems: Sequence[str] = (),
        seconds: float = 0.0,
    ) -> Selection:
        """A pair's outcome as the typed result every surface returns."""
        with self._stage("combine"):
            return self._selection(outcome, ctr, extra_problems, seconds)

    def _selection(
        self,
        outcome: PairOutcome,
        ctr: Sequence[float | None],
        extra_problems: Sequence[str],
        seconds: float,
    ) -> Selection:
        return Selection(
            winner=outcome.winner,  # type: ignore[arg-type]
            confidence=_round(outcome.confidence),  # type: ignore[arg-type]
            p_a=_round(outcome.p_a),
            p_a_uncalibrated=_round(outcome.p_a_uncalibrated),
            calibrated=outcome.calibrated,
            decided_by=outcome.decided_by,
            order_swap_agreed=outcome.order_swap_agreed,
            dimensions=outcome.dimensions(),
            rationale=outcome.rationale(),
            well_formed=outcome.well_formed,
            problems=outcome.problems_all() + list(extra_problems),
            ctr=CTR(a=ctr[0], b=ctr[1]),
            orders=[o.to_model() for o in outcome.orders],
            model=self.model,
            latency_ms=round(seconds * 1000, 1),
        )

    async def select(
        self,
        images: Sequence[Image.Image],
        query: str,
        title: str,
        options: SelectOptions | None = None,
    ) -> Selection:
        """Two creatives -> the `/v1/select` result."""
        if len(images) != 2:
            raise ValueError(f"select compares exactly 2 creatives, got {len(images)}")
        t0 = time.perf_counter()
        prepared = await self.prepare_all(images)
        (outcome,), (ctr, ctr_problem) = await asyncio.gather(
            self.compare([(prepared[0], prepared[1])], query, title, options),
            self.predict_ctr(images, query, title),
        )
        problems = [ctr_problem] if ctr_problem else []
        return self.selection(outcome, ctr, problems, time.perf_counter() - t0)

    async def select_stream(
        self,
        images: Sequence[Image.Image],
        query: str,
        title: str,
        options: SelectOptions | None = None,
    ) -> AsyncIterator[Delta | Selection]:
        """`select`, with the (A, B) order's text as it is generated: `Delta`s, then the
        `Selection`. The streamed order is one of the two the decision reads (no third
        generation), so a page can show the reasoning while the other order runs."""
        if len(images) != 2:
            raise ValueError(f"select compares exactly 2 creatives, got {len(images)}")
        options = options or SelectOptions()
        t0 = time.perf_counter()
        a, b = await self.prepare_all(images)
        item = PairInput(a, b, query, title)
        orders: list[Order] = ["AB", "BA"] if options.both_orders else ["AB"]
        chats = self._chats([item], orders)
        params = self.params(options)
        rest = asyncio.ensure_future(self.engine.complete_many(chats[1:], params))
        ctr_task = asyncio.ensure_future(self.predict_ctr(images, query, title))
        try:
            first = Completion("", None, 0, 0, pieces=[], sampled_logprobs=[], steps=[])
            async for d in self.engine.stream(chats[0], params):
                first.text += d.text
                first.pieces += d.pieces
                first.steps += d.steps  # type: ignore[operator]
                if d.finish_reason is not None:
                    first.finish_reason = d.finish_reason
                    first.prompt_tokens = d.prompt_tokens or 0
                    first.completion_tokens = d.completion_tokens or len(first.pieces)
                if d.text:
                    yield Delta(d.text)
            first.steps = first.steps or None
            comps = [first, *await rest]
        except BaseException:
            rest.cancel()
            ctr_task.cancel()
            raise
        self._count(comps, "select")
        (outcome,) = await self._outcomes(1, orders, chats, comps, options)
        ctr, ctr_problem = await ctr_task
        problems = [ctr_problem] if ctr_problem else []
        yield self.selection(outcome, ctr, problems, time.perf_counter() - t0)

    async def rank(
        self,
        images: Sequence[Image.Image],
        query: str,
        title: str,
        options: SelectOptions | None = None,
        ids: Sequence[str] | None = None,
        prior: float = DEFAULT_BT_PRIOR,
    ) -> Ranking:
        """N creatives -> pairwise comparisons (every pair, or adaptive rounds for large N),
        both orders, each round one engine batch -> Bradley-Terry -> a total order."""
        options = options or SelectOptions()
        n = len(images)
        if n < 2:
            raise ValueError(f"rank needs at least 2 creatives, got {n}")
        ids = list(ids) if ids is not None else [str(i) for i in range(n)]
        t0 = time.perf_counter()
        prepared = await self.prepare_all(images)
        by_pair: dict[tuple[int, int], PairOutcome] = {}

        async def judge(pairs: list[tuple[int, int]]) -> list[float]:
            """P(i beats j) for each (i, j); each pair is judged with the lower index first."""
            canon = [(min(i, j), max(i, j)) for i, j in pairs]
            outs = await self.compare(
                [(prepared[i], prepared[j]) for i, j in canon], query, title, options
            )
            by_pair.update(zip(canon, outs, strict=True))
            return [
                o.strength_a if i < j else 1.0 - o.strength_a
                for (i, j), o in zip(pairs, outs, strict=True)
            ]

        plan, (ctr, ctr_problem) = await asyncio.gather(
            rank_plan(n, judge, method=options.rank_method, prior=prior),
            self.predict_ctr(images, query, title),
        )
        scores, order = plan.scores, plan.order
        expected = np.zeros(n)
        for (i, j), o in by_pair.items():
            expected[i] += o.strength_a
            expected[j] += 1.0 - o.strength_a

        def decisive(i: int, j: int) -> Decisive | None:
            o = by_pair.get((min(i, j), max(i, j)))
            if o is None:
                return None
            first = i < j
            p_i = o.strength_a if first else 1.0 - o.strength_a
            won = None if o.decided_by == "default" else (o.winner == "A") == first
            return Decisive(
                against=ids[j],
                against_index=j,
                won=won,
                p_win=_round(p_i),
                decided_by=o.decided_by,
                order_swap_agreed=o.order_swap_agreed,
                well_formed=o.well_formed,
                dimensions=[
                    DecisiveDimension(id=d.id, name=d.name, verdict=d.verdict, reason=d.reason)
                    for d in o.dimensions("A" if first else "B")
                ],
            )

        ranking = []
        for pos, i in enumerate(order):
            neighbours = [order[p] for p in (pos - 1, pos + 1) if 0 <= p < n]
            ranking.append(
                RankEntry(
                    rank=pos + 1,
                    id=ids[i],
                    index=i,
                    score=_round(scores[i]),
                    expected_wins=_round(expected[i]),
                    ctr=ctr[i],
                    decisive=[d for j in neighbours if (d := decisive(i, j)) is not None],
                )
            )
        compared = sorted({(min(i, j), max(i, j)) for i, j, _ in plan.pairs})
        outcomes = [by_pair[c] for c in compared]
        comparisons = [
            Comparison(
                a=ids[i],
                b=ids[j],
                winner=ids[i] if o.winner == "A" else ids[j],
                p_a=_round(o.p_a),
                confidence=_round(o.confidence),
                decided_by=o.decided_by,
                order_swap_agreed=o.order_swap_agreed,
                well_formed=o.well_formed,
            )
            for (i, j), o in zip(compared, outcomes, strict=True)
        ]
        not_wf = sum(not o.well_formed for o in outcomes)
        disagree = sum(o.order_swap_agreed is False for o in outcomes)
        defaulted = sum(o.decided_by == "default" for o in outcomes)
        problems = []
        if not_wf:
            problems.append(f"{not_wf} of {len(outcomes)} comparisons were not well-formed")
        if disagree:
            problems.append(f"{disagree} of {len(outcomes)} comparisons disagreed between orders")
        if defaulted:
            problems.append(
                f"{defaulted} of {len(outcomes)} comparisons were ties decided by rule (no answer, "
                "or probabilities at 0.5 once both orders were averaged)"
            )
        if ctr_problem:
            problems.append(ctr_problem)
        possible = n * (n - 1) // 2
        how = (
            "every pair"
            if plan.method == "round_robin"
            else f"{plan.method}, {plan.rounds} rounds, {len(outcomes)} of {possible} pairs"
        )
        return Ranking(
            ranking=ranking,
            comparisons=comparisons,
            method=f"Bradley-Terry (MM) over {len(outcomes)} pairs ({how}), prior {prior}",
            pairs_compared=len(outcomes),
            pairs_possible=possible,
            generations=sum(len(o.orders) for o in outcomes),
            well_formed=not_wf == 0,
            problems=problems,
            model=self.model,
            latency_ms=round((time.perf_counter() - t0) * 1000, 1),
        )
