"""A CoT-SFT loss that pays more for the decision than for the words around it.

The answer letter and the seven verdict signs (`A>B`, `A=B`, `A<B`) are 8 of about 175 completion
tokens, so under the plain token-mean loss the rationale's wording earns nearly all of the
gradient. This loss multiplies the answer letter's token loss by `answer_weight` and each verdict
sign's by `verdict_weight` (1 and 1 is the plain loss), keeping TRL's normalisation by the number
of completion tokens.
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


def decision_weighted_loss(tokenizer: Any, answer_weight: float, verdict_weight: float):
    """A `compute_loss_func` for the trainer: weighted token cross-entropy over the completion."""
    import torch
    import torch.nn.functional as F

    token_ids = protocol_token_ids(tokenizer)

    def loss(outputs: Any, labels: Any, num_items_in_batch: Any = None) -> Any:
        logits = outputs.logits[:, :-1].float()
        target = labels[:, 1:]
        mask = target != -100
        per_token = (
            F.cross_entropy(logits.transpose(1, 2), target.clamp(min=0), reduction="none") * mask
        )
        weights = decision_token_weights(target, token_ids, answer_weight, verdict_weight)
        n = mask.sum() if num_items_in_batch is None else num_items_in_batch
        return (per_token * weights).sum() / torch.as_tensor(n).clamp(min=1)

    return loss
