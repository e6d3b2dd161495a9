"""A CoT-SFT loss that pays more for the decision than for the words around it.

The answer letter and the seven verdict signs (`A>B`, `A=B`, `A<B`) are 8 of about 175 completion
tokens, so under the plain token-mean loss the rationale's wording earns nearly all of the
gradient. This loss multiplies the answer letter's token loss by `answer_weight` and each verdict
sign's by `verdict_weight` (1 and 1 is the plain loss), keeping TRL's normalisation by the number
of completion tokens and its single forward pass (`creative4u.weighted_loss`).
"""

from __future__ import annotations

from typing import Any


def decision_token_weights(
    labels: Any, token_ids: dict[str, Any], answer_weight: float, verdict_weight: float
) -> Any:
    """Per-position weights for (already shifted) `labels`: `answer_weight` on the letter right
    after `<answer>`, `verdict_weight` on the sign between ` A` and `B` of a verdict, 1 elsewhere."""
    import torch

    w = torch.ones_like(labels, dtype=torch.float32)
    prefix = token_ids["answer_prefix"]
    k = len(prefix)
    if labels.shape[1] > k:
        after = torch.ones_like(labels[:, k:], dtype=torch.bool)
        for j, tid in enumerate(prefix):
            after &= labels[:, j : labels.shape[1] - k + j] == tid
        letter = torch.isin(labels[:, k:], token_ids["letters"])
        w[:, k:][after & letter] = answer_weight
    if labels.shape[1] > 2:
        sign = torch.isin(labels[:, 1:-1], token_ids["signs"])
        sign &= (labels[:, :-2] == token_ids["space_a"]) & (labels[:, 2:] == token_ids["letter_b"])
        w[:, 1:-1][sign] = verdict_weight
    return w


def protocol_token_ids(tokenizer: Any) -> dict[str, Any]:
    """The token ids the weights look for, from the model's own tokenizer (no special casing of
    one model: any tokenizer that splits the protocol's grammar into tokens works)."""
    import torch

    def ids(text: str) -> list[int]:
        return tokenizer(text, add_special_tokens=False)["input_ids"]

    return {
        "answer_prefix": ids("<answer>"),
        "letters": torch.tensor([ids("A")[-1], ids("B")[-1]]),
        "signs": torch.tensor([ids(s)[-1] for s in (">", "=", "<")]),
        "space_a": ids(" A")[-1],
        "letter_b": ids("B")[-1],
    }


def decision_weighted_trainer(
    trainer_cls: type, tokenizer: Any, answer_weight: float, verdict_weight: float
) -> type:
    """A subclass of TRL's `SFTTrainer` (passed in, so this module imports no trainer) whose
    token loss weighs the protocol's decision (`creative4u.weighted_loss`)."""
    from creative4u.weighted_loss import token_weighted_trainer

    token_ids = protocol_token_ids(tokenizer)
    return token_weighted_trainer(
        trainer_cls,
        lambda labels: decision_token_weights(labels, token_ids, answer_weight, verdict_weight),
    )
