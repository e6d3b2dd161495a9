"""The GRPO stage's M2FN preferences: scored once per pair, both orders consistent."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.pairs_fixture import make_pair_dataset


@pytest.fixture(scope="module")
def m2fn_ckpt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from creative4u.m2fn import M2FNConfig, TrainConfig
    from creative4u.m2fn.synthetic import make_dataset
    from creative4u.m2fn.train import train

    work = tmp_path_factory.mktemp("m2fn")
    ds = make_dataset(work / "ds", products=8, creatives=3, queries=1, cells=2, image_size=64)
    cfg = TrainConfig(data=str(ds), out=str(work / "ckpt"), max_steps=3, progress=False)
    train(M2FNConfig(ocr=False), cfg)
    return work / "ckpt"


def test_preferences_match_prefer_in_the_order_shown(
    tiny_model: Path, m2fn_ckpt: Path, tmp_path: Path
) -> None:
    from datasets import load_from_disk

    from creative4u.m2fn import load
    from creative4u.training import format_pairs
    from creative4u.vlm import load_processor
    from rl.train import with_m2fn_preferences

    pairs = load_from_disk(str(make_pair_dataset(tmp_path, products=4)))["train"].select(range(5))
    ds = format_pairs(pairs, load_processor(str(tiny_model)), swap_augmentation=True)
    out = with_m2fn_preferences(ds, str(m2fn_ckpt), batch_size=2)
    scorer = load(m2fn_ckpt)
    assert len(out) == 10 and sorted(out["swapped"]) == [False] * 5 + [True] * 5
    for ex in out:
        ctx = {"query": ex["query"], "title": ex["title"]}
        assert ex["m2fn_p_a"] == pytest.approx(scorer.prefer(*ex["images"], ctx), abs=1e-5)
    by_pair: dict[str, float] = {}
    for ex in out:
        by_pair.setdefault(ex["pair_id"], 0.0)
        by_pair[ex["pair_id"]] += ex["m2fn_p_a"]
    assert all(v == pytest.approx(1.0, abs=1e-6) for v in by_pair.values())  # the two orders
    assert len({round(p, 6) for p in out["m2fn_p_a"]}) > 2  # not a constant
