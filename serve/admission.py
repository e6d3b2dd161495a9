"""Bounded concurrency: a fixed number of requests run, a fixed number wait, the rest get 429.

An unbounded queue in front of an engine turns a traffic spike into minutes of latency for every
caller and, eventually, into memory exhaustion. Refusing early with 429 (and a Retry-After) lets
a load balancer or the client back off or go elsewhere.

The limits are sized from the engine unless set by hand (`admission_limits`): as many requests
run at once as fill the engine's batch (a `/v1/select` is two sequences, one per order), and a
request may wait behind `QUEUE_ROUNDS` full batches, which keeps the slowest admitted request
inside the request timeout when one batch takes under timeout / (QUEUE_ROUNDS + 1).
`bench/bench_load.py` measures what these defaults answer, refuse and cost at 8, 32 and 128
clients.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from serve.errors import APIError

SEQUENCES_PER_REQUEST = 2
"""Engine sequences one `/v1/select` keeps busy: both orders of the pair, run together."""

QUEUE_ROUNDS = 4
"""Full batches a waiting request may be queued behind before the API answers 429."""

DEFAULT_BATCH_CAPACITY = 64
"""Sequences assumed for an engine that does not say (an upstream URL without --max-num-seqs)."""


def admission_limits(
    batch_capacity: int | None,
    request_timeout_s: float,
    max_concurrency: int | None = None,
    max_queue: int | None = None,
    batch_seconds: float | None = None,
) -> tuple[int, int]:
    """(requests at once, requests waiting) for an engine that runs `batch_capacity` sequences.

    Explicit limits win. With `batch_seconds` (a measured time for one full batch) the queue is
    as deep as the request timeout allows, at most `QUEUE_ROUNDS` batches; without it,
    `QUEUE_ROUNDS` batches.
    """
    capacity = batch_capacity or DEFAULT_BATCH_CAPACITY
    concurrency = max_concurrency or max(1, capacity // SEQUENCES_PER_REQUEST)
    if max_queue is not None:
        return concurrency, max_queue
    rounds = QUEUE_ROUNDS
    if batch_seconds and batch_seconds > 0:
        rounds = max(0, min(QUEUE_ROUNDS, int(request_timeout_s // batch_seconds) - 1))
    return concurrency, concurrency * rounds


class Admission:
    def __init__(self, max_concurrency: int, max_queue: int):
        if max_concurrency < 1 or max_queue < 0:
            raise ValueError("max_concurrency must be >= 1 and max_queue >= 0")
        self.max_concurrency, self.max_queue = max_concurrency, max_queue
        self._sem = asyncio.Semaphore(max_concurrency)
        self.active = 0
        self.waiting = 0

    async def acquire(self) -> Callable[[], None]:
        """Take a slot (waiting if the queue has room) and return the function that frees it."""
        if self._sem.locked() and self.waiting >= self.max_queue:
            raise APIError(
                429,
                f"server busy: {self.active} requests running and {self.waiting} waiting "
                f"(limits {self.max_concurrency} and {self.max_queue}); retry later",
                code="server_busy",
                headers={"Retry-After": "1"},
            )
        self.waiting += 1
        try:
            await self._sem.acquire()
        finally:
            self.waiting -= 1
        self.active += 1
        released = False

        def release() -> None:
            nonlocal released
            if not released:
                released = True
                self.active -= 1
                self._sem.release()

        return release

    @asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        release = await self.acquire()
        try:
            yield
        finally:
            release()
