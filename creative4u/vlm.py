"""Load any Qwen-VL family model the same way: a hub id, a local folder, or a base plus adapter.

Nothing here knows whether the folder came from `creative4u model init` or from the hub: the Auto
classes read the config, so Qwen2-VL, Qwen2.5-VL and Qwen3-VL checkpoints all load through one
path. A PEFT adapter folder (it holds `adapter_config.json`) is loaded on top of the base model it
names, unless a base is given explicitly.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class ModelRef:
    """What to load: the base model and, optionally, a LoRA adapter on it."""

    base: str
    adapter: str | None = None

    @property
    def name(self) -> str:
        return self.adapter or self.base


def is_adapter(path: str | Path) -> bool:
    return (Path(path) / "adapter_config.json").is_file()


def resolve(name_or_path: str, adapter: str | None = None) -> ModelRef:
    """Turn "a model", "an adapter folder" or "a base plus an adapter" into a `ModelRef`."""
    if adapter is None and is_adapter(name_or_path):
        cfg = json.loads((Path(name_or_path) / "adapter_config.json").read_text())
        base = cfg.get("base_model_name_or_path")
        if not base:
            raise ValueError(
                f"{name_or_path} is an adapter without base_model_name_or_path; pass the base model too"
            )
        return ModelRef(base=base, adapter=str(name_or_path))
    if adapter is not None and not is_adapter(adapter):
        raise ValueError(
            f"--adapter {adapter}: no adapter_config.json there (is it a full model folder?)"
        )
    return ModelRef(base=str(name_or_path), adapter=adapter)


def adapter_rank(adapter: str | Path) -> int:
    cfg = json.loads((Path(adapter) / "adapter_config.json").read_text())
    return int(cfg.get("r", 16))


def load_processor(name_or_path: str, **kwargs: Any):
    from transformers import AutoProcessor

    proc = AutoProcessor.from_pretrained(name_or_path, **kwargs)
    if getattr(proc, "tokenizer", None) is not None:
        proc.tokenizer.padding_side = "left"  # generation pads on the left
    return proc


def load(
    name_or_path: str,
    adapter: str | None = None,
    *,
    dtype: Any = "auto",
    device_map: Any = None,
    merge_adapter: bool = False,
    **kwargs: Any,
) -> tuple[Any, Any]:
    """(model, processor) for a Qwen-VL checkpoint, optionally with a PEFT adapter applied."""
    from transformers import AutoModelForImageTextToText

    ref = resolve(name_or_path, adapter)
    processor_src = (
        ref.adapter
        if ref.adapter and (Path(ref.adapter) / "processor_config.json").is_file()
        else ref.base
    )
    processor = load_processor(processor_src)
    model = AutoModelForImageTextToText.from_pretrained(
        ref.base, dtype=dtype, device_map=device_map, **kwargs
    )
    if ref.adapter:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, ref.adapter)
        if merge_adapter:
            model = model.merge_and_unload()
    model.eval()
    return model, processor


def model_stamp(name_or_path: str, adapter: str | None = None) -> list[Any]:
    """What identifies a checkpoint's weights cheaply: the `file_stamp` of each weight and config
    file, or the hub id itself. Results cached under one stamp (saved evaluation answers) are not
    reused after the folder is retrained."""
    from creative4u.paths import file_stamp

    out: list[Any] = []
    for src in (name_or_path, adapter):
        if src is None:
            continue
        p = Path(src)
        if not p.is_dir():
            out.append(str(src))
            continue
        for f in sorted(p.glob("*")):
            if f.is_file() and (f.suffix in (".safetensors", ".bin") or f.name == "config.json"):
                out.append(file_stamp(f))
    return out
