"""M2FN (multi-step modality fusion network): the CTR model of ad images with auxiliary
information, trained on the click logs; its predictions are a baseline for the selector and an
auxiliary reward for GRPO.

    from creative4u.m2fn import load
    scorer = load("runs/m2fn")
    scorer.score([img1, img2], [{"query": "red dress", "title": "Nova red dress"}] * 2)
    scorer.prefer(img1, img2, {"query": "red dress"})   # P(CTR_1 > CTR_2)

Importing this package is cheap; torch loads with the first model.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from creative4u.m2fn.config import M2FNConfig, TrainConfig

if TYPE_CHECKING:
    from creative4u.m2fn.scorer import M2FNScorer

__all__ = ["M2FNConfig", "M2FNScorer", "TrainConfig", "load"]


def load(ckpt: Any, batch_size: int = 64) -> M2FNScorer:
    """The scorer of a checkpoint folder written by `creative4u m2fn train`."""
    from creative4u.m2fn.scorer import load as _load

    return _load(ckpt, batch_size=batch_size)


def __getattr__(name: str) -> Any:
    if name == "M2FNScorer":
        from creative4u.m2fn.scorer import M2FNScorer

        return M2FNScorer
    raise AttributeError(name)
