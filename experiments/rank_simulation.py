"""How many comparisons does ranking N creatives need? Swiss rounds against the full round robin.

Synthetic: each seed draws true log-strengths s ~ N(0, 1) for n creatives and a judge that
answers P(i beats j) = sigmoid(s_i - s_j + e_ij), with e_ij ~ N(0, noise) fixed per pair (asked
twice, the judge says the same thing, like an engine at temperature 0). The noise levels are set
so the judge picks the truly better creative of a random pair about 65 %, 72 % and 80 % of the
time, the range the project's selectors reach; the measured accuracy is printed.

For each n (8, 16, 32) and seed it runs `round_robin` and `adaptive` from creative4u.ranking,
and, as a non-adaptive control with the same budget, random pairings (never repeating a pair)
fitted with the same Bradley-Terry. tau is Kendall's tau-a against the true order and against
the round robin's order, averaged over the seeds.

The rounds sweep runs `adaptive` once with the most rounds and refits on each prefix of its
batches: adaptive is deterministic and round r's pairing depends only on rounds before it, so
the prefix is exactly what `adaptive(rounds=r)` returns (checked on the first seed of each n).

    .venv/bin/python experiments/rank_simulation.py [--seeds 200]
"""

from __future__ import annotations

import argparse
import asyncio
import math
import random
import sys
import time
from itertools import combinations
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from creative4u.ranking import (  # noqa: E402
    Compare,
    adaptive,
    bradley_terry,
    default_rounds,
    kendall_tau,
    round_robin,
    total_order,
)

NS = (8, 16, 32)
# Logit noise sd -> judge accuracy on random pairs, with d = s_i - s_j ~ N(0, 2):
# P(correct) = 1/2 + arcsin(sqrt(2 / (2 + sd^2))) / pi: 2.78 -> 65 %, 1.71 -> 72 %, 1.03 -> 80 %.
JUDGES = {"65%": 2.78, "72%": 1.71, "80%": 1.03}
MAIN_JUDGE = "72%"
EXTRA = (-1, 0, 1, 2, 3, 4)  # rounds = ceil(log2 n) + extra


def judge(s: np.ndarray, noise: float, rng: np.random.Generator) -> tuple[Compare, np.ndarray]:
    """An async comparator over true strengths `s` and its P matrix (P[i, j] = P(i beats j))."""
    n = len(s)
    e = np.triu(rng.normal(0.0, noise, (n, n)), 1)
    e = e - e.T
    p = 1.0 / (1.0 + np.exp(-(s[:, None] - s[None, :] + e)))

    async def compare(pairs: list[tuple[int, int]]) -> list[float]:
        return [float(p[i, j]) for i, j in pairs]

    return compare, p


def fit_order(n: int, made: list[tuple[int, int, float]]) -> list[int]:
    """Same fit as creative4u.ranking: BT with prior 0.5, tiebreak expected wins."""
    wins = np.zeros((n, n))
    for i, j, q in made:
        wins[i, j] += q
        wins[j, i] += 1.0 - q
    return total_order(list(bradley_terry(wins, prior=0.5)), list(wins.sum(axis=1)))


def random_rounds(
    n: int, rounds: int, p: np.ndarray, rng: random.Random
) -> tuple[list[list[int]], list[int]]:
    """Control: each round a random matching of unplayed pairs; orders and counts per round."""
    played: set[tuple[int, int]] = set()
    made: list[tuple[int, int, float]] = []
    orders, counts = [], []
    for _ in range(rounds):
        waiting = list(range(n))
        rng.shuffle(waiting)
        while len(waiting) > 1:
            a = waiting.pop()
            for k, b in enumerate(waiting):
                key = (min(a, b), max(a, b))
                if key not in played:
                    waiting.pop(k)
                    played.add(key)
                    made.append((*key, float(p[key])))
                    break
        orders.append(fit_order(n, made))
        counts.append(len(made))
    return orders, counts


def swiss_prefixes(n: int, compare: Compare, rounds: int) -> tuple[list[list[int]], list[int]]:
    """Orders and cumulative comparison counts after each round of one adaptive run."""
    batches: list[list[tuple[int, int]]] = []

    async def recording(pairs: list[tuple[int, int]]) -> list[float]:
        batches.append(list(pairs))
        return await compare(pairs)

    plan = asyncio.run(adaptive(n, recording, rounds=rounds))
    lookup = {(i, j): q for i, j, q in plan.pairs}
    orders, counts, made = [], [], []
    for batch in batches:
        made += [(i, j, lookup[(i, j)]) for i, j in batch]
        orders.append(fit_order(n, made))
        counts.append(len(made))
    assert orders[-1] == plan.order
    return orders, counts


def main(seeds: int) -> None:
    t0 = time.perf_counter()
    # tables[judge][n][variant] -> list of (comparisons, rounds, tau truth, tau full)
    tables: dict[str, dict[int, dict[str, list[tuple[float, float, float, float]]]]] = {}
    acc: dict[str, list[float]] = {}
    for jname, noise in JUDGES.items():
        tables[jname] = {}
        acc[jname] = []
        for n in NS:
            base = math.ceil(math.log2(n))
            most = base + max(EXTRA)
            rows: dict[str, list[tuple[float, float, float, float]]] = {}
            for seed in range(seeds):
                rng = np.random.default_rng([seed, n])
                s = rng.normal(size=n)
                compare, p = judge(s, noise, rng)
                truth = total_order(list(s))
                upper = list(combinations(range(n), 2))
                acc[jname].append(np.mean([(p[i, j] > 0.5) == (s[i] > s[j]) for i, j in upper]))
                full = asyncio.run(round_robin(n, compare))
                rows.setdefault("round_robin", []).append(
                    (len(full.pairs), 1, kendall_tau(full.order, truth), 1.0)
                )
                orders, counts = swiss_prefixes(n, compare, most)
                ctrl, ctrl_counts = random_rounds(n, most, p, random.Random(seed))
                for extra in EXTRA:
                    r = min(base + extra, len(orders))
                    o = orders[r - 1]
                    rows.setdefault(f"swiss {base + extra}", []).append(
                        (counts[r - 1], r, kendall_tau(o, truth), kendall_tau(o, full.order))
                    )
                    rc = min(base + extra, len(ctrl))
                    o = ctrl[rc - 1]
                    rows.setdefault(f"random {base + extra}", []).append(
                        (ctrl_counts[rc - 1], rc, kendall_tau(o, truth), kendall_tau(o, full.order))
                    )
                if seed == 0:  # the prefix shortcut is what adaptive(rounds=r) returns
                    for r in (1, base, base + 2):
                        assert asyncio.run(adaptive(n, compare, rounds=r)).order == orders[r - 1]
            tables[jname][n] = rows

    def mean(xs: list[tuple[float, ...]], k: int) -> float:
        return float(np.mean([x[k] for x in xs]))

    print(f"{seeds} seeds per cell; judge accuracy on all pairs, measured:")
    print("  " + ", ".join(f"{j}: {np.mean(a):.3f}" for j, a in acc.items()))
    print()
    print(f"Default adaptive (default_rounds = ceil(log2 n) + 2), judge {MAIN_JUDGE}:")
    print(f"{'n':>3} {'method':<12} {'comparisons':>11} {'rounds':>6} {'tau truth':>9} {'tau full':>8}")
    for n in NS:
        d = default_rounds(n)
        for name in ("round_robin", f"swiss {d}", f"random {d}"):
            xs = tables[MAIN_JUDGE][n][name]
            print(
                f"{n:>3} {name.split()[0]:<12} {mean(xs, 0):>11.1f} {mean(xs, 1):>6.1f} "
                f"{mean(xs, 2):>9.3f} {mean(xs, 3):>8.3f}"
            )
    print()
    print("Rounds sweep: tau vs truth (swiss / random control), comparisons; round robin last")
    for jname in JUDGES:
        print(f"judge {jname}")
        for n in NS:
            base = math.ceil(math.log2(n))
            cells = []
            for extra in EXTRA:
                sw = tables[jname][n][f"swiss {base + extra}"]
                rd = tables[jname][n][f"random {base + extra}"]
                cells.append(f"R={base + extra}: {mean(sw, 2):.3f}/{mean(rd, 2):.3f} ({mean(sw, 0):.0f})")
            rr = tables[jname][n]["round_robin"]
            print(f"  n={n:<3} " + "  ".join(cells) + f"  full: {mean(rr, 2):.3f} ({n * (n - 1) // 2})")
    print(f"\n{time.perf_counter() - t0:.1f} s")


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=200)
    main(ap.parse_args().seeds)
