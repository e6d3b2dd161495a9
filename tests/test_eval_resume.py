"""An evaluation killed half-way resumes: the pairs it judged are kept, only the rest are
judged, and the report equals an uninterrupted run's (tiny model, transformers engine)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import eval.run as eval_run
from eval.run import EvalConfig, evaluate
from tests.pairs_fixture import make_pair_dataset


class Killed(Exception):
    """Stands in for the process being stopped between two chunks of answers."""


class Counting:
    """The real engine, counting the pairs it is asked to judge (two generations each, probes
    not counted), optionally dying after `die_after` of them."""

    def __init__(self, inner, counter: dict[str, int], die_after: int | None = None):
        self.inner, self.counter, self.die_after = inner, counter, die_after

    def __getattr__(self, name):
        return getattr(self.inner, name)

    async def complete_many(self, chats, params, continue_texts=None):
        if continue_texts is None:
            if self.die_after is not None and self.counter["pairs"] >= self.die_after:
                raise Killed
            self.counter["pairs"] += len(chats) // 2
        return await self.inner.complete_many(chats, params, continue_texts)


@pytest.fixture(scope="module")
def pairs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_pair_dataset(tmp_path_factory.mktemp("resume_pairs"), products=8)


def config(model: Path, pairs: Path, out: Path) -> EvalConfig:
    return EvalConfig(
        model=str(model),
        dataset=str(pairs),
        out=str(out),
        split="train",
        engine="transformers",
        max_pairs=10,
        max_new_tokens=6,
        baselines=["chance"],
        chunk=4,
        progress=False,
    )


def test_killed_eval_resumes_with_the_answers_it_had(
    tiny_model: Path, pairs: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = eval_run.engines.make_engine
    counter = {"pairs": 0}
    die_after: list[int | None] = [8]
    monkeypatch.setattr(
        eval_run.engines,
        "make_engine",
        lambda *a, **k: Counting(real(*a, **k), counter, die_after[0]),
    )
    out = tmp_path / "report"
    with pytest.raises(Killed):
        evaluate(config(tiny_model, pairs, out))
    assert counter["pairs"] == 8  # two chunks of four were judged and saved
    saved = (out / "answers.jsonl").read_text().splitlines()
    assert len(saved) == 1 + 8

    die_after[0] = None
    counter["pairs"] = 0
    resumed = evaluate(config(tiny_model, pairs, out))
    assert counter["pairs"] == 10 - 8, "pairs saved before the kill were judged again"

    counter["pairs"] = 0
    whole = evaluate(config(tiny_model, pairs, tmp_path / "whole"))
    assert counter["pairs"] == 10
    for key in ("accuracy", "well_formed_rate", "first_slot_rate", "swap_agreement", "ece"):
        assert resumed[key] == whole[key], key

    def texts(d: Path) -> list[list[str]]:
        return [
            [o["text"] for o in json.loads(x)["orders"]]
            for x in (d / "records.jsonl").read_text().splitlines()
        ]

    assert texts(out) == texts(tmp_path / "whole")

    # another model (or a retrained one) never reuses those answers
    counter["pairs"] = 0
    cfg = config(tiny_model, pairs, out)
    cfg.max_new_tokens = 5
    evaluate(cfg)
    assert counter["pairs"] == 10
