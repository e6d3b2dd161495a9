"""The time budget: a resumed run spends what is left of it, and a cosine or linear learning rate
decays over it when it ends before the step budget."""

from __future__ import annotations

import math
import time
from pathlib import Path

import pytest
import torch
from transformers import Trainer, TrainerControl, TrainerState, TrainingArguments

from creative4u.training import budget_scheduled, time_budget_callback


class _Linear(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.w = torch.nn.Linear(2, 1)

    def forward(self, x, labels=None):  # pragma: no cover - never run, only optimised
        return {"loss": ((self.w(x) - labels) ** 2).mean()}


def _scheduler(tmp_path: Path, kind: str, seconds: float | None, warmup: int = 0):
    budget = time_budget_callback(seconds)
    args = TrainingArguments(
        output_dir=str(tmp_path),
        max_steps=100,
        learning_rate=1.0,
        lr_scheduler_type=kind,
        warmup_steps=warmup,
        use_cpu=True,
        report_to=[],
    )
    trainer = budget_scheduled(Trainer, budget)(model=_Linear(), args=args)
    trainer.create_optimizer_and_scheduler(num_training_steps=100)
    return budget, trainer


def _lr(trainer) -> float:
    return trainer.optimizer.param_groups[0]["lr"]


@pytest.mark.parametrize("kind", ["cosine", "linear"])
def test_learning_rate_follows_the_clock_when_it_runs_out_first(tmp_path: Path, kind: str) -> None:
    budget, trainer = _scheduler(tmp_path, kind, seconds=60.0)
    trainer.optimizer.step()
    budget.progress = 0.5  # half the time spent after one step of 100
    trainer.lr_scheduler.step()
    assert _lr(trainer) == pytest.approx(0.5)  # cosine and linear both halve at mid-way
    budget.progress = 0.75
    trainer.lr_scheduler.step()
    want = 0.5 * (1 + math.cos(math.pi * 0.75)) if kind == "cosine" else 0.25
    assert _lr(trainer) == pytest.approx(want)
    budget.progress = 1.0
    trainer.lr_scheduler.step()
    assert _lr(trainer) == pytest.approx(0.0, abs=1e-12)


def test_steps_still_end_the_schedule_and_warm_up_stays_in_steps(tmp_path: Path) -> None:
    budget, trainer = _scheduler(tmp_path, "cosine", seconds=1e9, warmup=10)
    for _ in range(5):
        trainer.optimizer.step()
        trainer.lr_scheduler.step()
    assert _lr(trainer) == pytest.approx(0.5)  # step 5 of a 10-step warm-up
    for _ in range(50):
        trainer.optimizer.step()
        trainer.lr_scheduler.step()
    # the clock has hardly moved: step 55 of 100 is half-way down the step schedule
    assert _lr(trainer) == pytest.approx(0.5 * (1 + math.cos(math.pi * 45 / 90)))


def test_without_a_time_budget_the_trainer_keeps_its_own_schedule(tmp_path: Path) -> None:
    budget, trainer = _scheduler(tmp_path, "cosine", seconds=None)
    trainer.optimizer.step()
    budget.progress = 0.9  # ignored: there is no budget to follow
    trainer.lr_scheduler.step()
    assert _lr(trainer) == pytest.approx(0.5 * (1 + math.cos(math.pi / 100)))


def test_a_resumed_run_spends_what_is_left_of_the_budget(tmp_path: Path) -> None:
    args = TrainingArguments(output_dir=str(tmp_path), report_to=[])
    first = time_budget_callback(10.0)
    state = TrainerState()
    first.on_train_begin(args, state, TrainerControl())
    first.start = time.time() - 6.0  # six seconds of training, then a checkpoint
    state.global_step = 5
    (tmp_path / "checkpoint-5").mkdir()
    first.on_save(args, state, TrainerControl())

    resumed = time_budget_callback(10.0)
    resumed.on_train_begin(args, state, TrainerControl())  # state at the checkpoint's step
    assert resumed.before == pytest.approx(6.0, abs=0.1)
    resumed.start = time.time() - 3.0
    control = TrainerControl()
    resumed.on_step_end(args, state, control)
    assert not control.should_training_stop and resumed.progress == pytest.approx(0.9, abs=0.02)
    resumed.start -= 1.5  # 10.5 s in all
    resumed.on_step_end(args, state, control)
    assert control.should_training_stop and resumed.progress == 1.0

    fresh = time_budget_callback(10.0)  # a fresh run in the same folder starts from zero
    fresh.on_train_begin(args, TrainerState(), TrainerControl())
    assert fresh.before == 0.0
