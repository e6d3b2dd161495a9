"""The time budget under two processes (gloo on CPU): every rank stops at the main process's
step, even when the ranks' own clocks disagree about whether the budget is spent."""

from __future__ import annotations

import time
from pathlib import Path

import torch.multiprocessing as mp


def _rank(rank: int, init: str, out: str) -> None:
    import torch.distributed as dist
    from transformers import TrainerControl, TrainerState, TrainingArguments

    from creative4u.training import time_budget_callback

    dist.init_process_group("gloo", init_method=init, rank=rank, world_size=2)
    try:
        cb = time_budget_callback(10.0)
        args = TrainingArguments(output_dir=out, report_to=[])
        state, stops = TrainerState(), []
        cb.on_train_begin(args, state, TrainerControl())
        # rank 1's clock says the budget is spent long ago; rank 0's says at step 3
        cb.start = time.time() - (100.0 if rank == 1 else 0.0)
        for step in range(5):
            if step == 3 and rank == 0:
                cb.start -= 100.0
            control = TrainerControl()
            cb.on_step_end(args, state, control)
            stops.append(control.should_training_stop)
            dist.barrier()  # a collective per step, as training has
        Path(out, f"rank{rank}.txt").write_text(",".join(str(int(s)) for s in stops))
    finally:
        dist.destroy_process_group()


def test_every_rank_stops_where_the_main_process_does(tmp_path: Path) -> None:
    init = f"file://{tmp_path / 'store'}"
    mp.spawn(_rank, args=(init, str(tmp_path)), nprocs=2, join=True)
    r0, r1 = ((tmp_path / f"rank{r}.txt").read_text() for r in (0, 1))
    assert r0 == r1 == "0,0,0,1,1"


def _validating_rank(rank: int, init: str, out: str) -> None:
    import json

    import torch.distributed as dist

    import creative4u.validation as validation
    from rl.train import BestOnValidation

    dist.init_process_group("gloo", init_method=init, rank=rank, world_size=2)
    try:
        # the ranks' scores disagree at every step: rank 1 would keep steps 0 and 1, rank 0 keeps
        # steps 0 and 2; every rank must save where the main process's scores say
        scores = iter([0.5, 0.25, 0.75] if rank == 0 else [0.5, 0.75, 0.25])
        validation.validation_accuracy = lambda *a, **k: {
            "accuracy": next(scores),
            "well_formed_rate": 1.0,
        }

        class Saves:
            def __init__(self) -> None:
                self.steps: list[int] = []

            def save_model(self, output_dir: str) -> None:
                self.steps.append(best.curve[-1]["step"])
                dist.barrier()  # the gather every rank must join

        class Processor:
            def save_pretrained(self, out) -> None:
                Path(out).mkdir(parents=True, exist_ok=True)

        best = BestOnValidation(Processor(), None, Path(out) / "best", 1, 4, 8)
        best.trainer = Saves()
        for step in range(3):
            best.score(None, step, is_main=rank == 0)
        Path(out, f"saves{rank}.json").write_text(json.dumps([best.trainer.steps, best.best_step]))
    finally:
        dist.destroy_process_group()


def test_the_best_policy_is_the_main_process_choice_on_every_rank(tmp_path: Path) -> None:
    import json

    init = f"file://{tmp_path / 'store'}"
    mp.spawn(_validating_rank, args=(init, str(tmp_path)), nprocs=2, join=True)
    r0, r1 = (json.loads((tmp_path / f"saves{r}.json").read_text()) for r in (0, 1))
    assert r0 == r1 == [[0, 2], 2]
