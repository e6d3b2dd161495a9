"""Temperature calibration of the selector's confidence, fit once and stored with the model.

The selector's P(first creative wins) is the answer-token probability averaged over both orders;
a fine-tuned model's letter probabilities are typically far from frequencies (most answers sit
near 0 or 1). One temperature T maps it to sigmoid(logit(p) / T): it never changes a winner (the
map is monotone and fixes 0.5), so accuracy is untouched and only the confidence moves. T is fit
by maximum likelihood on the validation split's served decisions (`creative4u calibrate`) and
written as `calibration.json` next to the weights; every `Selector` that loads the model applies
it, so the API, the UI, the batch jobs and the evaluation report the same calibrated number.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

FILE = "calibration.json"
EPS = 1e-6


def _logit(p: float) -> float:
    p = min(max(float(p), EPS), 1.0 - EPS)
    return math.log(p / (1.0 - p))


@dataclass
class Calibration:
    temperature: float = 1.0
    fitted_on: dict[str, Any] = field(default_factory=dict)
    """Where T came from (dataset, split, pairs, log-loss before and after): the card's numbers."""

    def apply(self, p: float | None) -> float | None:
        if p is None:
            return None
        if self.temperature == 1.0:
            return float(p)
        return 1.0 / (1.0 + math.exp(-_logit(p) / self.temperature))

    def save(self, folder: str | Path) -> Path:
        path = Path(folder) / FILE
        path.write_text(json.dumps(asdict(self), indent=2) + "\n")
        return path

    @classmethod
    def for_model(cls, model: str, adapter: str | None = None) -> Calibration | None:
        """The calibration stored with a model (its adapter folder when it is one)."""
        return cls.load(model_folder(model, adapter))

    @classmethod
    def load(cls, folder: str | Path | None) -> Calibration | None:
        """The calibration stored in a model (or adapter) folder, or None when it has none."""
        if folder is None:
            return None
        path = Path(folder) / FILE
        if not path.is_file():
            return None
        raw = json.loads(path.read_text())
        t = float(raw.get("temperature", 1.0))
        if not math.isfinite(t) or t <= 0:
            raise ValueError(f"{path}: temperature must be a positive number, got {t}")
        return cls(temperature=t, fitted_on=raw.get("fitted_on", {}))


def model_folder(model: str, adapter: str | None = None) -> Path:
    """Where a model's calibration lives: the adapter folder of an adapter, else the model's."""
    from creative4u.vlm import resolve

    ref = resolve(model, adapter)
    return Path(ref.adapter or ref.base)


def calibrated(
    p_raw: float | None, decided_by: str, calibration: Calibration | None
) -> tuple[float | None, float]:
    """(P(A wins), confidence in the winner) of one decision, calibrated when a calibration is
    given; a decision made by rule (no usable probability) has confidence 0.5."""
    p = calibration.apply(p_raw) if calibration is not None else p_raw
    confidence = 0.5 if decided_by == "default" or p is None else max(p, 1.0 - p)
    return p, confidence


def log_loss(p_a: Sequence[float], a_won: Sequence[bool], temperature: float = 1.0) -> float:
    """Mean negative log-likelihood of the outcomes under sigmoid(logit(p) / T)."""
    total = 0.0
    for p, y in zip(p_a, a_won, strict=True):
        z = _logit(p) / temperature
        # log(1 + e^-|z|) form: stable for the large |z| a confident model produces
        total += max(z, 0.0) - z * float(y) + math.log1p(math.exp(-abs(z)))
    return total / max(len(p_a), 1)


def fit_temperature(
    p_a: Sequence[float], a_won: Sequence[bool], lo: float = 0.05, hi: float = 50.0
) -> float:
    """The T that minimises the log-loss (golden-section search on log T: the loss is unimodal
    in T for a fixed set of logits, and one parameter needs no optimiser library)."""
    if not p_a:
        raise ValueError("fit_temperature needs at least one decision")
    a, b = math.log(lo), math.log(hi)
    g = (math.sqrt(5) - 1) / 2
    c, d = b - g * (b - a), a + g * (b - a)
    fc, fd = log_loss(p_a, a_won, math.exp(c)), log_loss(p_a, a_won, math.exp(d))
    for _ in range(80):
        if fc < fd:
            b, d, fd = d, c, fc
            c = b - g * (b - a)
            fc = log_loss(p_a, a_won, math.exp(c))
        else:
            a, c, fc = c, d, fd
            d = a + g * (b - a)
            fd = log_loss(p_a, a_won, math.exp(d))
    return math.exp((a + b) / 2)


def fit(p_a: Sequence[float], a_won: Sequence[bool], **fitted_on: Any) -> Calibration:
    t = fit_temperature(p_a, a_won)
    info = {
        **fitted_on,
        "n": len(p_a),
        "log_loss_before": round(log_loss(p_a, a_won), 6),
        "log_loss_after": round(log_loss(p_a, a_won, t), 6),
    }
    return Calibration(temperature=round(t, 6), fitted_on=info)
