"""GRPO on the pairs the starting policy gets wrong: which pairs count as hard, and the stage's
mining, filtering and resuming."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rl.train import HARD_PAIRS, wrong_in_an_order


def order(swapped: bool, winner: str | None, well_formed: bool = True) -> dict:
    return {"swapped": swapped, "winner": winner, "well_formed": well_formed}


def test_a_pair_is_hard_when_either_order_errs_in_its_own_labels() -> None:
    records = [
        # label A: the swapped order shows A second, so its right answer is "B"
        {"pair": 0, "label": "A", "orders": [order(False, "A"), order(True, "B")]},
        {"pair": 1, "label": "A", "orders": [order(False, "A"), order(True, "A")]},
        {"pair": 2, "label": "B", "orders": [order(False, "A"), order(True, "A")]},
        {"pair": 3, "label": "B", "orders": [order(False, "B"), order(True, "A", False)]},
        {"pair": 4, "label": "B", "orders": [order(False, "B"), order(True, "A")]},
    ]
    ids = ["p0", "p1", "p2", "p3", "p4"]
    assert wrong_in_an_order(records, ids) == ["p1", "p2", "p3"]


@pytest.mark.slow
def test_grpo_trains_on_the_mined_pairs_and_a_resumed_run_keeps_them(
    tiny_model: Path, tmp_path: Path
) -> None:
    from datasets import load_from_disk

    from tests.pairs_fixture import make_pair_dataset
    from tests.test_training import stage

    pairs = make_pair_dataset(tmp_path / "pairs", products=8)
    train_ids = set(load_from_disk(str(pairs))["train"]["pair_id"])
    grpo = tmp_path / "grpo"
    # more pairs asked for than training uses: only the pairs GRPO trains on are answered
    limit = ("--hard_pairs", "10", "--max_train_pairs", "4")
    stage("rl", "grpo", tiny_model, pairs, grpo, *limit)
    mined = json.loads((grpo / HARD_PAIRS).read_text())
    assert len(train_ids) > 10 and mined["scored_pairs"] == 4
    assert set(mined["hard_pair_ids"]) <= train_ids and mined["hard_pair_ids"]
    card = json.loads((grpo / "creative4u_run.json").read_text())
    assert card["hard_pairs"] == mined

    # resumed (2 more steps): the same pairs, not mined again
    stage("rl", "grpo", tiny_model, pairs, grpo, *limit, "--max_steps", "4")
    assert json.loads((grpo / HARD_PAIRS).read_text()) == mined
    assert json.loads((grpo / "creative4u_run.json").read_text())["global_step"] == 4
