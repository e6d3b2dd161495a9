"""Training under two processes (DDP over gloo on CPU, `recipes/accelerate/multi_cpu.yaml`)
against one process with the same global batch, and resuming a full fine-tune where it stopped.

Two ranks with half the batch each see the same examples per step as one process with the whole
batch, and `average_tokens_across_devices` makes their loss the same token mean, so the weights
may differ only by the order of float sums: far less than what training changed."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest

from creative4u.vlm import load
from tests.pairs_fixture import make_pair_dataset
from tests.test_training import run

pytestmark = pytest.mark.slow

TWO_CPUS = [
    "-m",
    "accelerate.commands.launch",
    "--config_file",
    "recipes/accelerate/multi_cpu.yaml",
]


@pytest.fixture(scope="module")
def pairs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_pair_dataset(tmp_path_factory.mktemp("pairs"), products=8)


def train(
    module: str, recipe: str, model: Path, pairs: Path, out: Path, *extra: str, ranks: int = 1
) -> str:
    """A tiny recipe run with one process, or `ranks`=2 processes at half the batch per rank."""
    args = ["--config", f"recipes/tiny/{recipe}.yaml", "--model_name_or_path", str(model)]
    args += ["--dataset_path", str(pairs), "--output_dir", str(out), *extra]
    if ranks == 1:
        return run([sys.executable, "-m", module, *args])
    assert ranks == 2
    return run(
        [sys.executable, *TWO_CPUS, "-m", module, *args, "--per_device_train_batch_size", "2"]
    )


def weights(folder: Path) -> dict:
    from safetensors.torch import load_file

    return load_file(str(folder / "model.safetensors"))


def distance(a: dict, b: dict) -> float:
    assert a.keys() == b.keys()
    return float(sum(((a[k] - b[k]).double() ** 2).sum() for k in a) ** 0.5)


def test_sft_on_two_processes_equals_one(tiny_model: Path, pairs: Path, tmp_path: Path) -> None:
    one, two = tmp_path / "one", tmp_path / "two"
    train("sft", "sft", tiny_model, pairs, one)
    log = train("sft", "sft", tiny_model, pairs, two, ranks=2)

    assert log.count("training on ") == 1, "INFO lines come from the main process only"
    card = json.loads((two / "creative4u_run.json").read_text())
    assert card["global_step"] == 4
    load(str(two))  # the checkpoint loads as a model
    start, w1, w2 = weights(tiny_model), weights(one), weights(two)
    moved = distance(w1, start)
    assert moved > 0.1  # training changed the weights
    assert distance(w1, w2) < 1e-2 * moved  # measured: 7e-4 of the change


def test_grpo_on_two_processes_keeps_one_best(
    tiny_model: Path, pairs: Path, tmp_path: Path
) -> None:
    one, two = tmp_path / "one", tmp_path / "two"
    train("rl", "grpo", tiny_model, pairs, one)
    log = train("rl", "grpo", tiny_model, pairs, two, ranks=2)

    # each validation is scored (greedy, the same weights: the same numbers as one process),
    # logged once, and the best is written once with one curve
    assert log.count("validation at step 0:") == 1 and log.count("validation at step 2:") == 1
    best = json.loads((two / "best" / "creative4u_best.json").read_text())
    assert [c["step"] for c in best["curve"]] == [0, 2]
    single = json.loads((one / "best" / "creative4u_best.json").read_text())
    assert best["curve"] == single["curve"]
    card = json.loads((two / "creative4u_run.json").read_text())
    assert card["global_step"] == 2 and card["best_step"] == best["best_step"]
    assert sorted(p.name for p in two.iterdir() if p.name.startswith("best")) == ["best"]
    load(str(two))  # the shipped policy loads
    kept = weights(two / "best")
    assert distance(weights(two), kept) == 0.0  # what ships is the best kept


def test_resumed_sft_goes_on_from_the_checkpoint_weights(
    tiny_model: Path, pairs: Path, tmp_path: Path
) -> None:
    """A run stopped at step 2 and resumed ends with the weights of a run never stopped: the
    checkpoint's weights are loaded, not only its optimizer (transformers writes checkpoints with
    renamed keys that its trainer alone would not match, and would go on from the base)."""
    whole, resumed = tmp_path / "whole", tmp_path / "resumed"
    train("sft", "sft", tiny_model, pairs, whole, "--save_total_limit", "2")
    resumed.mkdir()
    shutil.copytree(whole / "checkpoint-2", resumed / "checkpoint-2")
    log = train("sft", "sft", tiny_model, pairs, resumed)
    assert "resuming from" in log and "checkpoint-2" in log
    start, w_whole, w_resumed = weights(tiny_model), weights(whole), weights(resumed)
    assert distance(w_whole, w_resumed) < 1e-4 * distance(w_whole, start)  # measured: equal


class RecordingTrainer:
    """A test double of the trainer's save API: DeepSpeed cannot run on this CPU machine, so what
    is checked is the call ZeRO-3 depends on. `Trainer.save_model` gathers partitioned weights
    with a collective every rank must join, and writes on the main process only."""

    def __init__(self, rank: int) -> None:
        self.rank, self.saved_to = rank, []

    def save_model(self, output_dir: str) -> None:
        self.saved_to.append(output_dir)
        if self.rank == 0:
            Path(output_dir).mkdir(parents=True, exist_ok=True)
            (Path(output_dir) / "model.safetensors").write_text("gathered")


class NoSaveModel:
    def save_pretrained(self, *args, **kwargs) -> None:
        raise AssertionError("with a trainer, the best is saved through trainer.save_model")


def test_every_rank_saves_the_best_through_the_trainer(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each improvement on validation is saved through `trainer.save_model` on every rank (a rank
    that skipped it would leave ZeRO-3's gather waiting forever), never with the model's own
    `save_pretrained` (under ZeRO-3: empty partitions); only the main process writes files."""
    import creative4u.validation as validation
    from rl.train import BestOnValidation

    scores = iter([0.5, 0.25, 0.75] * 2)
    monkeypatch.setattr(
        validation,
        "validation_accuracy",
        lambda *a, **k: {"accuracy": next(scores), "well_formed_rate": 1.0},
    )

    class Processor:
        def save_pretrained(self, out) -> None:
            (Path(out) / "processor_config.json").write_text("{}")

    for rank in (0, 1):
        out = tmp_path / f"rank{rank}" / "best"
        best = BestOnValidation(Processor(), None, out, every=1, max_pairs=4, max_new_tokens=8)
        best.trainer = RecordingTrainer(rank)
        for step in range(3):
            best.score(NoSaveModel(), step, is_main=rank == 0)
        assert best.trainer.saved_to == [str(out)] * 2  # steps 0 and 2 improved, 1 did not
        assert best.best_step == 2
        if rank == 0:
            state = json.loads((out / BestOnValidation.STATE).read_text())
            assert state["best"] == [0.75, 1.0] and [c["step"] for c in state["curve"]] == [0, 1, 2]
            assert (out / "model.safetensors").is_file()
        else:
            assert not out.exists()  # nothing written by a non-main rank
