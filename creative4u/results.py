"""The typed results of a selection: one shape for the API, the UI, the CLI, batch jobs and eval.

`/v1/select` and `/v1/rank` return these models as JSON, the Python API returns them as objects,
and `creative4u eval` scores the same `Selection` the server would have sent for each pair.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

DecidedBy = Literal["answer_probabilities", "probe_probabilities", "answers", "default"]


class Dimension(BaseModel):
    """One protocol question (Q3-Q9) as the shown order answered it, in the request's labels."""

    id: str
    name: str
    question: str
    verdict: str | None = Field(description="A>B, A=B or A<B; None when the model gave none")
    reason: str | None
    swap_verdict: str | None = Field(description="the other order's verdict, mapped back")
    agreed: bool | None


class OrderOut(BaseModel):
    """One order's raw output, read back into the request's labels (A = first creative)."""

    order: Literal["AB", "BA"]
    winner: str | None
    p_a: float | None
    probability_source: Literal["answer", "probe"] | None
    well_formed: bool
    problems: list[str]
    finish_reason: str | None
    text: str


class CTR(BaseModel):
    a: float | None = None
    b: float | None = None


class Selection(BaseModel):
    """Two creatives -> which one users will click more, how sure, and why."""

    winner: Literal["A", "B"]
    confidence: float = Field(description="calibrated probability that the winner wins")
    p_a: float | None = Field(description="calibrated P(A wins), both orders combined")
    p_a_uncalibrated: float | None = Field(description="P(A wins) before the calibration")
    calibrated: bool = Field(description="whether a calibration stored with the model was applied")
    decided_by: DecidedBy
    order_swap_agreed: bool | None
    dimensions: list[Dimension]
    rationale: str | None
    well_formed: bool
    problems: list[str]
    ctr: CTR
    orders: list[OrderOut]
    model: str
    latency_ms: float


class DecisiveDimension(BaseModel):
    id: str
    name: str
    verdict: str | None
    reason: str | None


class Decisive(BaseModel):
    """A ranked creative's comparison with a neighbour in the ranking (when it was compared)."""

    against: str
    against_index: int
    won: bool | None
    p_win: float | None
    decided_by: DecidedBy
    order_swap_agreed: bool | None
    well_formed: bool
    dimensions: list[DecisiveDimension]


class RankEntry(BaseModel):
    rank: int
    id: str
    index: int
    score: float | None = Field(description="Bradley-Terry log-strength (mean 0)")
    expected_wins: float | None = Field(description="sum of its win probabilities")
    ctr: float | None
    decisive: list[Decisive]


class Comparison(BaseModel):
    a: str
    b: str
    winner: str
    p_a: float | None
    confidence: float | None
    decided_by: DecidedBy
    order_swap_agreed: bool | None
    well_formed: bool


class Ranking(BaseModel):
    """N creatives -> a total order from pairwise comparisons, with the comparisons behind it."""

    ranking: list[RankEntry]
    comparisons: list[Comparison]
    method: str
    pairs_compared: int
    pairs_possible: int
    generations: int = Field(description="model generations spent (two per pair in both orders)")
    well_formed: bool
    problems: list[str]
    model: str
    latency_ms: float
