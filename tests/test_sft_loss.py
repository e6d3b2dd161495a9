"""The decision-weighted SFT loss finds the answer letter and the seven verdict signs."""

from __future__ import annotations

from pathlib import Path

import torch

from creative4u.protocol import DIMENSION_IDS, DimensionVerdict, Verdict, render
from creative4u.vlm import load_processor
from sft.loss import decision_token_weights, decision_weighted_loss, protocol_token_ids


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


def test_unit_weights_are_the_plain_token_loss(tiny_model: Path) -> None:
    tok = load_processor(str(tiny_model)).tokenizer
    ids = tok(rationale(), add_special_tokens=False)["input_ids"]
    labels = torch.tensor([[-100, -100, *ids]])
    torch.manual_seed(0)
    logits = torch.randn(1, labels.shape[1], len(tok) + 64)

    class Out:
        pass

    out = Out()
    out.logits = logits
    plain = torch.nn.functional.cross_entropy(
        logits[0, :-1], labels[0, 1:], ignore_index=-100, reduction="mean"
    )
    assert torch.allclose(decision_weighted_loss(tok, 1.0, 1.0)(out, labels), plain)
    assert (
        decision_weighted_loss(tok, 10.0, 3.0)(out, labels) > plain
    )  # random logits: every token costs
