"""The decision-weighted SFT loss finds the answer letter and the seven verdict signs."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from creative4u.protocol import DIMENSION_IDS, DimensionVerdict, Verdict, render
from creative4u.vlm import load_processor
from sft.loss import decision_token_weights, decision_weighted_trainer, protocol_token_ids
from tests.pairs_fixture import make_pair_dataset


@pytest.fixture(scope="module")
def pairs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_pair_dataset(tmp_path_factory.mktemp("pairs"), products=4)


def rationale() -> str:
    signs = ["A>B", "A=B", "A<B", "A>B", "A=B", "A<B", "A>B"]
    dims = {
        d: DimensionVerdict(d, s, f"A has a {d} reason, B does not")  # type: ignore[arg-type]
        for d, s in zip(DIMENSION_IDS, signs, strict=True)
    }
    return render(Verdict(winner="B", identical=False, indistinguishable=False, dimensions=dims))


def test_weights_sit_on_the_answer_and_the_verdict_signs(tiny_model: Path) -> None:
    tok = load_processor(str(tiny_model)).tokenizer
    text = rationale()
    labels = torch.tensor([tok(text, add_special_tokens=False)["input_ids"]])
    w = decision_token_weights(labels, protocol_token_ids(tok), 10.0, 3.0)
    pieces = [tok.decode([i]) for i in labels[0].tolist()]
    heavy = [pieces[i] for i in range(len(pieces)) if w[0, i] == 10.0]
    signs = [pieces[i] for i in range(len(pieces)) if w[0, i] == 3.0]
    assert heavy == ["B"]
    assert signs == [">", "=", "<", ">", "=", "<", ">"]
    assert int((w == 1.0).sum()) == len(pieces) - 8


def _trainer(tiny_model: Path, pairs: Path, tmp_path: Path, weights: tuple[float, float] | None):
    from datasets import load_from_disk
    from trl import SFTConfig, SFTTrainer

    from creative4u.training import format_pairs
    from creative4u.vlm import load

    model, proc = load(str(tiny_model), dtype=torch.float32)
    train = format_pairs(
        load_from_disk(str(pairs))["train"].select(range(2)), proc, swap_augmentation=False
    )
    cls = SFTTrainer
    if weights is not None:
        cls = decision_weighted_trainer(SFTTrainer, proc.tokenizer, *weights)
    args = SFTConfig(
        output_dir=str(tmp_path), use_cpu=True, report_to="none", max_length=None, bf16=False
    )
    return cls(model=model, args=args, train_dataset=train, processing_class=proc)


def test_weighted_trainer_loss_in_one_forward(
    tiny_model: Path, pairs: Path, tmp_path: Path
) -> None:
    """Unit weights give TRL's own loss; 10 and 3 give the weighted cross-entropy computed here
    from the full logits, token by token; and the model runs forward once per loss."""
    plain = _trainer(tiny_model, pairs, tmp_path / "p", None)
    batch = plain._prepare_inputs(next(iter(plain.get_train_dataloader())))
    model = plain.model.eval()
    with torch.no_grad():
        trl_loss = plain.compute_loss(model, dict(batch))
        unit = _trainer(tiny_model, pairs, tmp_path / "u", (1.0, 1.0))
        assert torch.allclose(unit.compute_loss(model, dict(batch)), trl_loss, atol=1e-5)

        weighted = _trainer(tiny_model, pairs, tmp_path / "w", (10.0, 3.0))
        calls = []
        hook = model.register_forward_hook(lambda *a: calls.append(1))
        got = weighted.compute_loss(model, dict(batch))
        hook.remove()
        assert len(calls) == 1

        logits = model(**{k: v for k, v in batch.items() if k != "labels"}).logits[:, :-1]
        target = batch["labels"][:, 1:]
        mask = target != -100
        ce = torch.nn.functional.cross_entropy(
            logits.float().transpose(1, 2), target.clamp(min=0), reduction="none"
        )
        w = decision_token_weights(
            target, protocol_token_ids(weighted.processing_class.tokenizer), 10.0, 3.0
        )
        want = (ce * w * mask).sum() / mask.sum()
    assert torch.allclose(got, want, rtol=1e-4), (got, want)
    assert got > trl_loss  # the heavy tokens cost more than the average token of an untrained model
