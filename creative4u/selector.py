"""`Selector`: the blocking Python API, for notebooks and scripts.

    from creative4u import Selector
    with Selector.from_pretrained("runs/demo/grpo") as sel:
        s = sel.compare("a.png", "b.png", query="red dress", title="Nova red dress")
        print(s.winner, s.confidence, s.rationale)
        r = sel.rank(["a.png", "b.png", "c.png"], query="red dress", title="Nova red dress")

It is `AsyncSelector` (the server's, eval's and the batch jobs' selector) run on an event loop
of its own in a background thread, so it works the same in a plain script and inside Jupyter,
whose own loop is already running. The engine is the in-process vLLM by default; images are
any input `creative4u.images.load_image` accepts (path, bytes, PIL image, data URL).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine, Sequence
from typing import Any, TypeVar

from creative4u.results import Ranking, Selection
from creative4u.selection import AsyncSelector, PairInput, SelectOptions

T = TypeVar("T")


class Selector:
    def __init__(self, selector: AsyncSelector):
        self.selector = selector
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="creative4u-selector", daemon=True
        )
        self._thread.start()
        self._run(selector.engine.start())

    @classmethod
    def from_pretrained(
        cls,
        model: str,
        adapter: str | None = None,
        *,
        engine: str = "vllm",
        m2fn: str | None = None,
        calibration: bool = True,
        max_tokens: int = 256,
        **engine_kwargs: Any,
    ) -> Selector:
        """A model folder or hub id (or an adapter folder) on `engine` ("vllm", "transformers",
        or the URL of an OpenAI-compatible server that serves `model`), with M2FN's CTRs when
        `m2fn` is given and the calibration stored with the model unless `calibration=False`."""
        from creative4u.calibration import Calibration
        from creative4u.engines import make_engine

        eng = make_engine(engine, model, adapter, **engine_kwargs)
        cal = Calibration.for_model(model, adapter) if calibration else None
        scorer = None
        if m2fn:
            from creative4u import m2fn as m2fn_lib

            scorer = m2fn_lib.load(m2fn)
        return cls(
            AsyncSelector(eng, default_max_tokens=max_tokens, ctr_scorer=scorer, calibration=cal)
        )

    def _run(self, coro: Coroutine[Any, Any, T]) -> T:
        if self._loop.is_closed():
            raise RuntimeError("this Selector is closed")
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result()

    @staticmethod
    def _image(source: Any) -> Any:
        from creative4u.images import load_image

        return load_image(source)

    def compare(
        self, a: Any, b: Any, *, query: str = "", title: str = "", **options: Any
    ) -> Selection:
        """Which of two creatives users will click more, how sure, and why."""
        images = [self._image(a), self._image(b)]
        return self._run(self.selector.select(images, query, title, SelectOptions(**options)))

    def compare_many(self, pairs: Sequence[dict[str, Any]], **options: Any) -> list[Selection]:
        """Many pairs (`{"a", "b", "query", "title"}` each) in one engine batch."""
        prep = self.selector.prepare
        items = [
            PairInput(
                prep(self._image(p["a"])),
                prep(self._image(p["b"])),
                p.get("query", ""),
                p.get("title", ""),
            )
            for p in pairs
        ]
        outcomes = self._run(self.selector.compare_many(items, SelectOptions(**options)))
        return [self.selector.selection(o) for o in outcomes]

    def rank(
        self,
        images: Sequence[Any],
        *,
        query: str = "",
        title: str = "",
        ids: Sequence[str] | None = None,
        **options: Any,
    ) -> Ranking:
        """Creatives from best to worst (`rank_method="auto"|"full"|"adaptive"`)."""
        loaded = [self._image(i) for i in images]
        return self._run(
            self.selector.rank(loaded, query, title, SelectOptions(**options), ids=ids)
        )

    def close(self) -> None:
        if self._loop.is_closed():
            return
        try:
            self._run(self.selector.engine.close())
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=30)
            self._loop.close()

    def __enter__(self) -> Selector:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
