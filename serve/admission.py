"""Bounded concurrency: a fixed number of requests run, a fixed number wait, the rest get 429.

An unbounded queue in front of an engine turns a traffic spike into minutes of latency for every
caller and, eventually, into memory exhaustion. Refusing early with 429 (and a Retry-After) lets
a load balancer or the client back off or go elsewhere.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from serve.errors import APIError


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
