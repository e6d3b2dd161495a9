"""A pretrained VLM's vision tower as M2FN's fixed image network (HCCM's fixed CNN).

The M2FN paper starts from an ImageNet VGG-19 and HCCM keeps the shallow layers of a pretrained
CNN fixed. This project's pretrained image network is the vision tower of the Qwen2.5-VL base the
selector starts from: the shipped small base on CPU (pretrained on CreativeSim worlds disjoint
from the demo's, never on clicks), `Qwen/Qwen2.5-VL-7B-Instruct` on GPUs. Only the tower's weights
are read (a 7B checkpoint's language model is never loaded), and they are not part of M2FN's
state: an M2FN checkpoint names the VLM it used, as an adapter names its base.

The tower is fixed, so its output for an image never changes: it is remembered per distinct
input, and a training run that sees each creative in many cells computes it once per creative.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections import OrderedDict
from pathlib import Path

import torch
from torch import nn

TOWER_PREFIXES = ("model.visual.", "visual.")  # transformers 5 layout, then 4.x checkpoints
MEMO_BYTES = 1 << 30  # at most this much remembered tower output


def resolve(name_or_path: str) -> Path:
    """A local folder, or a hub id already in the local cache (nothing is downloaded here)."""
    p = Path(name_or_path)
    if p.is_dir():
        return p
    try:
        from huggingface_hub import snapshot_download

        return Path(
            snapshot_download(
                name_or_path, allow_patterns=["*.json", "*.safetensors"], local_files_only=True
            )
        )
    except Exception as e:  # noqa: BLE001 - any failure means: not available here
        raise FileNotFoundError(
            f"vision tower {name_or_path!r}: not a folder and not in the local hub cache "
            "(download the VLM first, or point --vision_tower at its folder)"
        ) from e


def _tower_state(folder: Path) -> dict[str, torch.Tensor]:
    from safetensors import safe_open

    index = folder / "model.safetensors.index.json"
    if index.is_file():
        files = sorted(set(json.loads(index.read_text())["weight_map"].values()))
    else:
        files = [p.name for p in folder.glob("*.safetensors")]
    state: dict[str, torch.Tensor] = {}
    for name in files:
        with safe_open(str(folder / name), framework="pt") as f:
            for key in f.keys():  # noqa: SIM118 - safe_open has keys(), not iteration
                for prefix in TOWER_PREFIXES:
                    if key.startswith(prefix):
                        state[key[len(prefix) :]] = f.get_tensor(key)
                        break
    if not state:
        raise ValueError(f"{folder}: no vision-tower weights (keys under {TOWER_PREFIXES})")
    return state


class VisionTower(nn.Module):
    """Pixels (N, 3, S, S), normalised with the VLM's own mean and std, to the tower's merged
    feature map (N, D, S / (patch * merge), S / (patch * merge)).

    The patches are laid out exactly as the VLM's image processor lays them out (the image
    repeated over the temporal patch, each merge window's patches together), so the tower sees
    what it saw in pretraining; a test checks this against the processor."""

    def __init__(self, name_or_path: str):
        super().__init__()
        from transformers import AutoConfig, AutoImageProcessor

        folder = resolve(name_or_path)
        config = AutoConfig.from_pretrained(folder)
        if config.model_type != "qwen2_5_vl":
            raise ValueError(
                f"vision tower {name_or_path!r}: a Qwen2.5-VL checkpoint is needed, "
                f"got model_type {config.model_type!r}"
            )
        from transformers.models.qwen2_5_vl.modeling_qwen2_5_vl import (
            Qwen2_5_VisionTransformerPretrainedModel,
        )

        vc = config.vision_config
        self.net = Qwen2_5_VisionTransformerPretrainedModel._from_config(vc, dtype=torch.float32)
        self.net.load_state_dict(_tower_state(folder))
        self.net.eval().requires_grad_(False)
        proc = AutoImageProcessor.from_pretrained(folder)
        self.patch, self.merge = int(vc.patch_size), int(vc.spatial_merge_size)
        self.temporal = int(vc.temporal_patch_size)
        self.channels = int(vc.out_hidden_size)
        self.mean = tuple(float(x) for x in proc.image_mean)
        self.std = tuple(float(x) for x in proc.image_std)
        self._memo: OrderedDict[bytes, torch.Tensor] = OrderedDict()
        self._memo_bytes = 0
        self._lock = threading.Lock()

    @property
    def stride(self) -> int:
        return self.patch * self.merge

    def train(self, mode: bool = True) -> VisionTower:
        """The tower stays in eval mode: it is fixed, dropout and all."""
        super().train(mode)
        self.net.eval()
        return self

    def patches(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(N * gh * gw, C * T * P * P) patches and their (N, 3) grid, as the processor makes
        them for one still image."""
        n, c, h, w = x.shape
        p, m, t = self.patch, self.merge, self.temporal
        if h % self.stride or w % self.stride:
            raise ValueError(
                f"the vision tower needs sides that are multiples of {self.stride} px, got {h}x{w}"
            )
        gh, gw = h // p, w // p
        x = x.unsqueeze(1).expand(n, t, c, h, w)
        x = x.reshape(n, t, c, gh // m, m, p, gw // m, m, p)
        x = x.permute(0, 3, 6, 4, 7, 2, 1, 5, 8)  # n, gh/m, gw/m, m, m, c, t, p, p
        grid = torch.tensor([[1, gh, gw]] * n, dtype=torch.long)
        return x.reshape(n * gh * gw, c * t * p * p), grid

    @torch.no_grad()
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        keys = [hashlib.blake2b(img.numpy().tobytes(), digest_size=16).digest() for img in x.cpu()]
        with self._lock:  # a server scores from several threads
            found = {k: self._memo[k] for k in keys if k in self._memo}
            for k in found:
                self._memo.move_to_end(k)
        todo = [i for i, k in enumerate(keys) if k not in found]
        if todo:
            maps = self._compute(x[todo])
            new = dict(zip((keys[i] for i in todo), maps, strict=True))
            self._remember(new)
            found |= new
        return torch.stack([found[k] for k in keys]).to(x.device)

    def _compute(self, x: torch.Tensor) -> torch.Tensor:
        n, _, h, w = x.shape
        if next(self.net.parameters()).device != x.device:
            self.net.to(x.device)  # not a submodule of M2FN: it follows its inputs
        px, grid = self.patches(x.float())
        out = self.net(px.to(x.device), grid_thw=grid.to(x.device)).pooler_output
        gh, gw = h // self.stride, w // self.stride
        return out.reshape(n, gh, gw, -1).permute(0, 3, 1, 2).contiguous().cpu()

    def _remember(self, maps: dict[bytes, torch.Tensor]) -> None:
        with self._lock:
            for k, fmap in maps.items():
                if k not in self._memo:
                    self._memo_bytes += fmap.numel() * fmap.element_size()
                self._memo[k] = fmap
            while self._memo_bytes > MEMO_BYTES and self._memo:
                _, old = self._memo.popitem(last=False)
                self._memo_bytes -= old.numel() * old.element_size()


_TOWERS: dict[str, VisionTower] = {}


def tower_for(name_or_path: str) -> VisionTower:
    """One tower per VLM in a process, so that its remembered outputs serve every model built
    on it (the ablation's runs, a scorer after training)."""
    key = str(Path(name_or_path).resolve()) if Path(name_or_path).is_dir() else name_or_path
    if key not in _TOWERS:
        _TOWERS[key] = VisionTower(name_or_path)
    return _TOWERS[key]
