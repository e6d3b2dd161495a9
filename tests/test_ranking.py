"""Ranking N creatives: the Bradley-Terry fit, the round robin, Swiss rounds and their dispatch.

The comparators here are synthetic (true strengths, a judge with or without noise), so the
tests check what the schemes do, not what a model says. Thresholds come from
experiments/rank_simulation.py and are quoted where they are used.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Coroutine
from itertools import combinations
from typing import Any

import numpy as np
import pytest

from creative4u.ranking import (
    Compare,
    RankPlan,
    adaptive,
    bradley_terry,
    default_rounds,
    kendall_tau,
    rank_plan,
    round_robin,
    total_order,
)


class Judge:
    """A comparator over true strengths that records every batch it is sent.

    noise None: P = 1 when i is truly stronger, else 0. Otherwise P = sigmoid(s_i - s_j + e_ij)
    with e_ij ~ N(0, noise) fixed per pair; noise 1.71 makes a judge about 72 % accurate on
    random pairs of N(0, 1) strengths (the simulation's main judge).
    """

    def __init__(self, strengths: np.ndarray, noise: float | None = None, seed: int = 0) -> None:
        s = np.asarray(strengths, dtype=float)
        n = len(s)
        if noise is None:
            self.p = (s[:, None] > s[None, :]).astype(float)
        else:
            e = np.triu(np.random.default_rng(seed).normal(0.0, noise, (n, n)), 1)
            self.p = 1.0 / (1.0 + np.exp(-(s[:, None] - s[None, :] + e - e.T)))
        self.n = n
        self.truth = total_order(list(s))
        self.calls: list[list[tuple[int, int]]] = []

    async def __call__(self, pairs: list[tuple[int, int]]) -> list[float]:
        self.calls.append(list(pairs))
        return [float(self.p[i, j]) for i, j in pairs]


def strengths(n: int, seed: int) -> np.ndarray:
    return np.random.default_rng([seed, n]).normal(size=n)


def run(plan: Coroutine[Any, Any, RankPlan]) -> RankPlan:
    result = asyncio.run(plan)
    assert isinstance(result, RankPlan)
    return result


def check_calls(judge: Judge, plan: RankPlan) -> None:
    """Every batch valid, no pair twice, one batch per round, `pairs` what the judge said; in a
    Swiss round each creative meets at most one opponent."""
    seen: set[tuple[int, int]] = set()
    for batch in judge.calls:
        assert batch, "an empty batch wastes an engine round"
        in_batch: set[int] = set()
        for i, j in batch:
            assert 0 <= i < j < judge.n
            assert (i, j) not in seen, f"pair {(i, j)} compared twice"
            seen.add((i, j))
            in_batch |= {i, j}
        if plan.method == "swiss":
            assert len(in_batch) == 2 * len(batch), "a creative met two opponents in one round"
    assert plan.rounds == len(judge.calls)
    assert [(i, j) for i, j, _ in plan.pairs] == [pair for b in judge.calls for pair in b]
    assert all(p == judge.p[i, j] for i, j, p in plan.pairs)
    assert abs(float(np.mean(plan.scores))) < 1e-9
    assert sorted(plan.order) == list(range(judge.n))


# --- Bradley-Terry and the order ------------------------------------------------------------


def test_bradley_terry_recovers_a_noiseless_order() -> None:
    truth = [3, 0, 5, 1, 4, 2]  # best to worst
    rank = {c: k for k, c in enumerate(truth)}
    wins = np.array([[1.0 if rank[i] < rank[j] else 0.0 for j in range(6)] for i in range(6)])
    scores = bradley_terry(wins)
    assert total_order(list(scores)) == truth
    assert abs(scores.mean()) < 1e-12
    assert np.all(np.diff(scores[truth]) < 0)  # strictly decreasing: no ties left


def test_bradley_terry_prior_keeps_an_unbeaten_creative_finite() -> None:
    scores = bradley_terry([[0, 1, 1], [0, 0, 1], [0, 0, 0]])
    assert np.all(np.isfinite(scores))
    with pytest.raises(ValueError, match="prior"):
        bradley_terry([[0, 1], [0, 0]], prior=0.0)


def test_total_order_breaks_ties_by_tiebreak_then_index() -> None:
    assert total_order([0.0, 1.0, 0.0, 0.0], tiebreak=[0.0, 0.0, 2.0, 0.0]) == [1, 2, 0, 3]


def test_kendall_tau() -> None:
    order = [4, 2, 0, 3, 1]
    assert kendall_tau(order, order) == 1.0
    assert kendall_tau(order, order[::-1]) == -1.0
    assert kendall_tau([0, 1, 2], [1, 0, 2]) == pytest.approx(1 / 3)  # 2 concordant, 1 not
    with pytest.raises(ValueError):
        kendall_tau([0, 1, 2], [0, 1, 3])


# --- round robin ------------------------------------------------------------------------------


@pytest.mark.parametrize("n", [2, 5, 9])
def test_round_robin_compares_every_pair_once_in_one_call(n: int) -> None:
    judge = Judge(strengths(n, 0))
    plan = run(round_robin(n, judge))
    assert len(judge.calls) == 1 and plan.rounds == 1 and plan.method == "round_robin"
    assert sorted(judge.calls[0]) == list(combinations(range(n), 2))
    assert len(plan.pairs) == n * (n - 1) // 2
    assert plan.order == judge.truth  # a noiseless judge over all pairs: exact


def test_a_bad_comparator_fails_loudly() -> None:
    async def short(pairs: list[tuple[int, int]]) -> list[float]:
        return [0.5] * (len(pairs) - 1)

    async def out_of_range(pairs: list[tuple[int, int]]) -> list[float]:
        return [1.5] * len(pairs)

    for bad in (short, out_of_range):
        with pytest.raises(ValueError, match="compare returned"):
            run(round_robin(4, bad))


# --- adaptive (Swiss) -------------------------------------------------------------------------


@pytest.mark.parametrize("n", [16, 32])
def test_adaptive_is_cheaper_than_the_round_robin(n: int) -> None:
    judge = Judge(strengths(n, 1))
    plan = run(adaptive(n, judge))
    check_calls(judge, plan)
    assert plan.method == "swiss"
    assert plan.rounds == default_rounds(n) == math.ceil(math.log2(n)) + 2
    assert len(plan.pairs) <= plan.rounds * (n // 2)
    assert len(plan.pairs) < n * (n - 1) // 2 / 2  # 48 of 120, 112 of 496 at most


@pytest.mark.parametrize("n", [2, 3, 5, 7, 15, 33, 64])
def test_adaptive_valid_rounds_for_any_n(n: int) -> None:
    judge = Judge(strengths(n, 2))
    plan = run(adaptive(n, judge))
    check_calls(judge, plan)
    assert len(plan.pairs) <= n * (n - 1) // 2
    # every round pairs everyone but the bye (a full pairing of unplayed pairs exists here)
    assert [len(b) for b in judge.calls] == [n // 2] * plan.rounds


@pytest.mark.parametrize("n", [2, 3, 4])
def test_adaptive_on_tiny_n_stops_once_every_pair_is_played(n: int) -> None:
    judge = Judge(strengths(n, 3))
    plan = run(adaptive(n, judge, rounds=10))
    check_calls(judge, plan)
    assert sorted((i, j) for i, j, _ in plan.pairs) == list(combinations(range(n), 2))
    assert plan.order == judge.truth
    assert plan.rounds == {2: 1, 3: 3, 4: 3}[n]  # n = 3: one pair and a bye per round


@pytest.mark.parametrize("n", [5, 7, 9])
def test_adaptive_run_long_is_a_full_round_robin_with_rotating_byes(n: int) -> None:
    # n rounds of (n - 1) / 2 pairs is every pair once, each creative sitting out exactly once:
    # greedy neighbour pairing strands creatives long before that (n = 5: rounds of 1 pair).
    judge = Judge(strengths(n, 4))
    plan = run(adaptive(n, judge, rounds=n))
    check_calls(judge, plan)
    assert len(plan.pairs) == n * (n - 1) // 2 and plan.rounds == n
    byes = [c for b in judge.calls for c in set(range(n)) - {x for pair in b for x in pair}]
    assert sorted(byes) == list(range(n))
    assert plan.order == judge.truth


def test_adaptive_rejects_zero_rounds_and_one_creative() -> None:
    judge = Judge(strengths(4, 0))
    with pytest.raises(ValueError, match="round"):
        run(adaptive(4, judge, rounds=0))
    with pytest.raises(ValueError, match="at least 2"):
        run(adaptive(1, judge))


@pytest.mark.parametrize("n", [16, 32])
def test_adaptive_nearly_sorts_with_a_noiseless_judge(n: int) -> None:
    # experiments/rank_simulation.py (50 seeds): mean tau 0.937 (n = 16) and 0.928 (n = 32), best
    # creative first in every seed; random pairings of the same budget: tau 0.857 / 0.831, best
    # first in 54 % / 34 %, so these bounds need the adaptive pairing. Over 200 seeds the worst
    # single seed was 0.85 / 0.89; these 10 seeds: mean 0.928 / 0.928, worst 0.883 / 0.899.
    taus = []
    for seed in range(10):
        judge = Judge(strengths(n, seed))
        plan = run(adaptive(n, judge))
        taus.append(kendall_tau(plan.order, judge.truth))
        assert plan.order[0] == judge.truth[0]
    assert min(taus) >= 0.8
    assert float(np.mean(taus)) >= 0.9


@pytest.mark.parametrize(("n", "margin"), [(16, 0.2), (32, 0.25)])
def test_adaptive_tau_near_round_robin_with_a_noisy_judge(n: int, margin: float) -> None:
    # experiments/rank_simulation.py, 72 %-accurate judge, 200 seeds: round robin tau 0.719 /
    # 0.802, Swiss 0.576 / 0.606, a gap of 0.14 / 0.20; over 200 seeds drawn as here, the gap's
    # 20-seed means ranged 0.08-0.17 / 0.16-0.22 (these 20 seeds: 0.128 / 0.187). One Swiss
    # round (random pairs only) scores 0.30, far outside the margin.
    rr, sw = [], []
    for seed in range(20):
        judge = Judge(strengths(n, seed), noise=1.71, seed=seed)
        rr.append(kendall_tau(run(round_robin(n, judge)).order, judge.truth))
        judge.calls.clear()
        plan = run(adaptive(n, judge))
        check_calls(judge, plan)
        sw.append(kendall_tau(plan.order, judge.truth))
    assert float(np.mean(rr)) - float(np.mean(sw)) <= margin
    assert float(np.mean(sw)) >= 0.45


# --- rank_plan --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("n", "method", "expected"),
    [
        (8, "auto", "round_robin"),
        (9, "auto", "swiss"),
        (12, "full", "round_robin"),
        (12, "round_robin", "round_robin"),
        (4, "adaptive", "swiss"),
    ],
)
def test_rank_plan_dispatch(n: int, method: str, expected: str) -> None:
    judge = Judge(strengths(n, 5))
    plan = run(rank_plan(n, judge, method=method))
    assert plan.method == expected
    check_calls(judge, plan)


def test_rank_plan_full_below_moves_the_switch() -> None:
    judge: Compare = Judge(strengths(6, 0))
    assert run(rank_plan(6, judge, full_below=5)).method == "swiss"
    assert run(rank_plan(6, judge, full_below=6)).method == "round_robin"


def test_rank_plan_rejects_an_unknown_method() -> None:
    with pytest.raises(ValueError, match="auto.*full.*round_robin.*adaptive"):
        run(rank_plan(4, Judge(strengths(4, 0)), method="swiss"))
