"""The GRPO stage's M2FN preferences: M2FN's P(A > B) on the stored images, in the order shown."""

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
    out = with_m2fn_preferences(ds, [pairs], str(m2fn_ckpt), batch_size=3)
    scorer = load(m2fn_ckpt)
    assert len(out) == 10 and sorted(out["swapped"]) == [False] * 5 + [True] * 5
    stored = {row["pair_id"]: row for row in pairs}
    for ex in out:
        row = stored[ex["pair_id"]]
        ctx = {"query": row["query"], "title": row["title"]}
        shown = (
            (row["image_b"], row["image_a"]) if ex["swapped"] else (row["image_a"], row["image_b"])
        )
        assert ex["m2fn_p_a"] == pytest.approx(scorer.prefer(*shown, ctx), abs=1e-5)
    by_pair: dict[str, float] = {}
    for ex in out:
        by_pair.setdefault(ex["pair_id"], 0.0)
        by_pair[ex["pair_id"]] += ex["m2fn_p_a"]
    assert all(v == pytest.approx(1.0, abs=1e-6) for v in by_pair.values())  # the two orders
    assert len({round(p, 6) for p in out["m2fn_p_a"]}) > 2  # not a constant


def test_preferences_need_the_source_pairs(
    tiny_model: Path, m2fn_ckpt: Path, tmp_path: Path
) -> None:
    from datasets import load_from_disk

    from creative4u.training import format_pairs
    from creative4u.vlm import load_processor
    from rl.train import with_m2fn_preferences

    pairs = load_from_disk(str(make_pair_dataset(tmp_path, products=4)))["train"]
    ds = format_pairs(
        pairs.select(range(4)), load_processor(str(tiny_model)), swap_augmentation=False
    )
    with pytest.raises(ValueError, match="no CreativePair row for 2 pair ids"):
        with_m2fn_preferences(ds, [pairs.select(range(2))], str(m2fn_ckpt))


def test_format_pairs_fits_each_distinct_image_once(tiny_model: Path, tmp_path: Path) -> None:
    """The memoised formatting gives exactly the images and completions of pair_example."""
    from datasets import load_from_disk

    from creative4u.training import format_pairs, pair_example
    from creative4u.vlm import load_processor

    proc = load_processor(str(tiny_model))
    pairs = load_from_disk(str(make_pair_dataset(tmp_path, products=4)))["train"]
    pairs = pairs.select(range(min(6, len(pairs))))
    ds = format_pairs(pairs, proc, swap_augmentation=True)
    stored = {row["pair_id"]: row for row in pairs}
    for ex in ds:
        ref = pair_example(stored[ex["pair_id"]], proc, swap=ex["swapped"])
        assert ex["completion"] == ref["completion"] and ex["label"] == ref["label"]
        for got, want in zip(ex["images"], ref["images"], strict=True):
            assert got.size == want.size and got.tobytes() == want.convert(got.mode).tobytes()


def test_reference_verdicts_follow_the_order_shown(tiny_model: Path, tmp_path: Path) -> None:
    """The `dimensions` reward's reference: the rationale's Q3-Q9 verdicts, mirrored for B first."""
    import re

    from datasets import load_from_disk

    from creative4u.training import format_pairs
    from creative4u.vlm import load_processor
    from rl.train import with_reference_verdicts

    pairs = load_from_disk(str(make_pair_dataset(tmp_path, products=4)))["train"].select(range(5))
    ds = format_pairs(
        pairs, load_processor(str(tiny_model)), swap_augmentation=True, with_completion=False
    )
    out = with_reference_verdicts(ds, [pairs])
    mirror = {"A>B": "A<B", "A<B": "A>B", "A=B": "A=B"}
    for row in pairs:
        # the verdict closing each Q3-Q9 line of the stored rationale, read independently
        lines = [ln for ln in row["rationale"].splitlines() if re.match(r"Q[3-9] ", ln)]
        stored = [re.search(r"(A[<>=]B)\s*$", ln).group(1) for ln in lines]  # type: ignore[union-attr]
        got = {
            ex["swapped"]: ex["reference_verdicts"].split()
            for ex in out
            if ex["pair_id"] == row["pair_id"]
        }
        assert got[False] == stored
        assert got[True] == [mirror[c] for c in stored]
    unknown = with_reference_verdicts(ds, [pairs.select(range(2))])
    assert sum(r == "" for r in unknown["reference_verdicts"]) == 6  # 3 pairs x 2 orders
