"""An M2FN checkpoint folder: `model.safetensors` (weights) + `config.json` (architecture, the
fitted auxiliary encoder, the pairwise calibration), and `image_features.json` (colour and OCR of
the images it was trained on, so that scoring those creatives again skips tesseract)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from creative4u.m2fn.aux import AuxEncoder
from creative4u.m2fn.config import M2FNConfig

FORMAT = "creative4u-m2fn"
VERSION = 1
CONFIG = "config.json"
WEIGHTS = "model.safetensors"
FEATURES = "image_features.json"
METRICS = "metrics.json"


def save_model(
    out: str | Path, model: Any, cfg: M2FNConfig, encoder: AuxEncoder, **extra: Any
) -> Path:
    """Write weights and config; `extra` (e.g. prefer_scale, train settings) goes into config."""
    from safetensors.torch import save_file

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(out / WEIGHTS), metadata={"format": FORMAT})
    write_config(
        out,
        {
            "format": FORMAT,
            "version": VERSION,
            "model": cfg.to_dict(),
            "aux_encoder": encoder.to_dict(),
            "aux_dim": encoder.dim,
            **extra,
        },
    )
    return out


def write_config(out: str | Path, config: dict[str, Any]) -> None:
    path = Path(out) / CONFIG
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(config, indent=2) + "\n")
    tmp.replace(path)


def read_config(ckpt: str | Path) -> dict[str, Any]:
    path = Path(ckpt) / CONFIG
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: not an M2FN checkpoint folder")
    config = json.loads(path.read_text())
    if config.get("format") != FORMAT:
        raise ValueError(
            f"{path} is not an M2FN checkpoint config (format {config.get('format')!r})"
        )
    return config


def load_model(ckpt: str | Path) -> tuple[Any, M2FNConfig, AuxEncoder, dict[str, Any]]:
    """(model in eval mode, its config, its auxiliary encoder, the whole config dict)."""
    from safetensors.torch import load_file

    from creative4u.m2fn.model import M2FN

    config = read_config(ckpt)
    cfg = M2FNConfig.from_dict(config["model"])
    encoder = AuxEncoder.from_dict(config["aux_encoder"])
    model = M2FN.for_encoder(cfg, encoder)
    model.load_state_dict(load_file(str(Path(ckpt) / WEIGHTS)))
    model.eval()
    return model, cfg, encoder, config
