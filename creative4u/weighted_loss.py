"""TRL's SFT token loss with a weight per completion token, in TRL's single forward pass.

A decision is often one token among many: the selector's answer letter and verdict signs are 8 of
about 175 completion tokens, a perception answer's `YES`/`NO` one of a dozen. Under the plain
token-mean loss the wording around them earns nearly all of the gradient. The stages that train
on such text (SFT on the protocol, pretraining on perception) say which tokens decide; this
module multiplies those tokens' log-probabilities, keeping TRL's normalisation by the number of
completion tokens.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

# per-position weights for the shifted labels (`labels[:, 1:]`, what the fused head scores)
WeightsFn = Callable[[Any], Any]


class _WeighedLogProbs:
    """The model, with the per-token log-probabilities of its fused LM head multiplied by fixed
    weights: TRL's own loss (minus their sum over the token count) then becomes the weighted
    loss, and its entropy and accuracy metrics stay as they are."""

    def __init__(self, model: Any, weights: Any) -> None:
        self.model, self.weights = model, weights

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        out = self.model(*args, **kwargs)
        if kwargs.get("fused_lm_head"):
            out.log_probs = out.log_probs * self.weights.to(out.log_probs.device)
        return out


def token_weighted_trainer(trainer_cls: type, weights: WeightsFn) -> type:
    """A subclass of TRL's `SFTTrainer` (passed in, so this module imports no trainer) whose
    token loss is weighted by `weights(shifted labels)`.

    It keeps TRL's single forward through the fused LM head: a `compute_loss_func` would need the
    full logits, which TRL then builds in a second, gradient-free forward just for its metrics
    (about a quarter more time per step on CPU)."""

    class TokenWeightedSFTTrainer(trainer_cls):  # type: ignore[misc, valid-type]
        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            # the fused head scores labels[:, 1:], so the weights are those of the shifted labels
            return super().compute_loss(
                _WeighedLogProbs(model, weights(inputs["labels"][:, 1:])),
                inputs,
                return_outputs=return_outputs,
                num_items_in_batch=num_items_in_batch,
            )

    return TokenWeightedSFTTrainer
