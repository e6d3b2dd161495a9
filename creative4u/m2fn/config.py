"""M2FN's two recipes: the model (what a checkpoint must know to rebuild itself) and the run (where
the data is, how long to train). Plain dataclasses without torch, so that the CLI can build its
options from them without loading a deep-learning stack.

The defaults are chosen to train in a couple of minutes on two CPU cores: 64 px images, a small
from-scratch CNN, a few epochs on at most 8,000 impression cells. The paper's setting (VGG-19,
224 px, hidden sizes 256/512/1024, 100 epochs) is a matter of overriding fields.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any

# The paper's four switchable modules, in the order of its table 4.
MODULES: tuple[str, ...] = ("aux", "low", "att", "high")
# HCCM's three (Chen et al., SIGIR 2022, seed 002): category channel attention, the category-prior
# map, the fixed/trainable hybrid; each named by the letter that marks it in run names.
HCCM: dict[str, str] = {"cat_att": "c", "cat_map": "m", "hybrid": "h"}
LOSSES: tuple[str, ...] = ("mse", "kld")
BACKBONES: tuple[str, ...] = ("small", "vgg19", "vlm")
SELECT_ON: tuple[str, ...] = ("sprc", "pairs")


@dataclass
class M2FNConfig:
    """The architecture and the auxiliary encoding: everything `load` needs besides the weights."""

    # ---- the four modules (table 4): switch any off for ablations
    aux: bool = field(default=True, metadata={"help": "use the auxiliary input at all"})
    low: bool = field(
        default=True, metadata={"help": "low-level fusion: conditional batch norm after conv 1"}
    )
    att: bool = field(default=True, metadata={"help": "spatial attention conditioned on aux"})
    high: bool = field(
        default=True, metadata={"help": "high-level fusion: tanh(W_i v) * tanh(W_a aux)"}
    )
    # ---- hidden sizes of the fusion modules (paper: 64/512/512 on AVA, 256/512/1024 on Real-Ad)
    low_hidden: int = field(default=64, metadata={"help": "CBN MLP hidden size"})
    att_hidden: int = field(default=256, metadata={"help": "attention MLP hidden size"})
    high_hidden: int = field(default=256, metadata={"help": "high-level fusion size"})
    # ---- HCCM (seed 002): the category prior at the backbone's split, and the hybrid
    cat_att: bool = field(
        default=False,
        metadata={
            "help": "HCCM channel attention: a shared MLP over [avg-pooled map ; category] and "
            "[max-pooled map ; category], summed, sigmoid, scales the channels (eq. 8-9)"
        },
    )
    cat_map: bool = field(
        default=False,
        metadata={
            "help": "HCCM category-prior array: a learned map per category concatenated to the "
            "feature map as one more channel (eq. 10-11)"
        },
    )
    hybrid: bool = field(
        default=False,
        metadata={
            "help": "HCCM fixed-CNN / trainable-CNN: the layers before the split are frozen at "
            "their initial (for vgg19: ImageNet) weights, the rest trains (eq. 6-7, 12-13)"
        },
    )
    split: int = field(
        default=1,
        metadata={
            "help": "where HCCM sits: small, stages after the stem before it (0 .. len(widths)-2);"
            " vgg19, pooling blocks before it (1-4)"
        },
    )
    cat_hidden: int = field(default=32, metadata={"help": "HCCM attention MLP hidden size"})
    # ---- image backbone
    backbone: str = field(
        default="small",
        metadata={
            "help": "small (from scratch) | vgg19 (needs local weights) | vlm (the fixed vision "
            "tower of --vision_tower, then a trainable CNN of --widths)"
        },
    )
    vision_tower: str = field(
        default="",
        metadata={
            "help": "backbone=vlm: a Qwen2.5-VL checkpoint (folder or cached hub id) whose vision "
            "tower is the fixed network, e.g. models/small-base"
        },
    )
    image_size: int = field(default=64, metadata={"help": "square input side in pixels"})
    widths: list[int] = field(
        default_factory=lambda: [16, 32, 64, 64],
        metadata={"help": "small CNN: channels of the stride-2 stem and of each stage after it"},
    )
    image_hidden: int = field(
        default=128, metadata={"help": "the image FC layer before fusion / the head"}
    )
    dropout: float = field(default=0.1, metadata={"help": "dropout before the head"})
    # ---- output and loss
    loss: str = field(
        default="mse",
        metadata={"help": "mse: impression-weighted MSE (eq. 2) | kld: log-normal buckets (eq. 3)"},
    )
    buckets: int = field(default=10, metadata={"help": "kld: CTR buckets of the distribution"})
    # ---- auxiliary encoding
    categorical: list[str] = field(
        default_factory=lambda: [
            "gender",
            "age",
            "month",
            "weekday",
            "hour",
            "position",
            "category",
            "colour",
        ],
        metadata={"help": "one-hot context fields (colour: the image's dominant palette colour)"},
    )
    text: list[str] = field(
        default_factory=lambda: ["query", "title", "description", "ocr"],
        metadata={"help": "embedded text fields (ocr: the text printed in the image)"},
    )
    text_encoder: str = field(
        default="hashing",
        metadata={"help": "hashing (TF-IDF over hashed words) | a local sentence-transformers dir"},
    )
    text_dim: int = field(default=128, metadata={"help": "hashing: dimensions per text field"})
    ocr: bool = field(
        default=True, metadata={"help": "read image text with tesseract (off: empty OCR field)"}
    )

    def __post_init__(self) -> None:
        if self.loss not in LOSSES:
            raise ValueError(f"loss must be one of {LOSSES}, got {self.loss!r}")
        if self.backbone not in BACKBONES:
            raise ValueError(f"backbone must be one of {BACKBONES}, got {self.backbone!r}")
        if not self.aux and (self.low or self.att or self.high):
            raise ValueError("low, att and high fuse the auxiliary input: they need aux=True")
        if self.image_size < 16:
            raise ValueError("image_size must be at least 16")
        if (self.cat_att or self.cat_map) and not (self.aux and "category" in self.categorical):
            raise ValueError(
                "cat_att and cat_map read the ad's category from the auxiliary input: they need "
                "aux=True and 'category' among the categorical fields"
            )
        if self.backbone == "vlm" and not self.vision_tower:
            raise ValueError("backbone=vlm needs vision_tower (a Qwen2.5-VL checkpoint)")
        top = len(self.widths) - 2 if self.backbone == "small" else 4
        low = 0 if self.backbone == "small" else 1
        if self.backbone != "vlm" and self.hccm_on and not low <= self.split <= top:
            raise ValueError(
                f"split must be within {low}..{top} for backbone {self.backbone} "
                f"(widths {self.widths}), got {self.split}"
            )

    @property
    def modules_on(self) -> str:
        """The table-4 notation: O for a module on, x for off, in aux/low/att/high order."""
        return "".join("O" if getattr(self, m) else "x" for m in MODULES)

    @property
    def hccm_on(self) -> bool:
        return any(getattr(self, m) for m in HCCM)

    @property
    def name(self) -> str:
        """The run's name in ablations: table-4 notation, then '+' and the letters of the HCCM
        modules on (e.g. OOOO+cm), so that rows with and without HCCM never share a folder."""
        letters = "".join(c for m, c in HCCM.items() if getattr(self, m))
        return self.modules_on + (f"+{letters}" if letters else "")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> M2FNConfig:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in known})


@dataclass
class TrainConfig:
    """One training run: data, output, optimisation, evaluation."""

    data: str = field(
        default="", metadata={"help": "dataset folder (impressions.parquet + CreativePair)"}
    )
    out: str = field(default="", metadata={"help": "checkpoint folder"})
    images: str | None = field(
        default=None, metadata={"help": "images root (default: images_root in DATA/card.json)"}
    )
    epochs: int = field(default=4, metadata={"help": "passes over the training cells"})
    max_steps: int | None = field(default=None, metadata={"help": "stop after this many steps"})
    batch_size: int = field(default=64)
    learning_rate: float = field(
        default=5e-4,
        metadata={"help": "AdamW (the full model's validation SPRC was higher than at 2e-3)"},
    )
    weight_decay: float = field(default=1e-4)
    warmup_ratio: float = field(default=0.05)
    max_train_rows: int | None = field(
        default=8000, metadata={"help": "train on at most this many cells (seeded sample)"}
    )
    max_eval_rows: int | None = field(
        default=1000, metadata={"help": "validation cells scored after each epoch"}
    )
    max_test_rows: int | None = field(
        default=5000, metadata={"help": "test cells for SPRC / LCC (seeded sample)"}
    )
    max_pairs: int | None = field(
        default=2000,
        metadata={"help": "CreativePair pairs per split for calibration and accuracy (seeded)"},
    )
    min_impressions: int = field(
        default=1, metadata={"help": "drop cells with fewer impressions (paper: 100 or 500)"}
    )
    context_dropout: float = field(
        default=0.15,
        metadata={
            "help": "chance that a context field is hidden in training, so that scoring with a "
            "partial context (e.g. only query and title) stays in distribution"
        },
    )
    save_steps: int = field(default=200, metadata={"help": "save a resumable state every N steps"})
    eval_steps: int | None = field(
        default=None, metadata={"help": "also validate every N steps (default: once an epoch)"}
    )
    select_on: str = field(
        default="sprc",
        metadata={
            "help": "what picks the best validation point: sprc (the cells' CTR ranking) | pairs "
            "(the CreativePair validation accuracy, what the selector's reward and bars use)"
        },
    )
    seed: int = field(default=0)
    feature_cache: str | None = field(
        default=None,
        metadata={"help": "per-image feature cache (default: OUT/image_features.json)"},
    )
    feature_workers: int = field(default=2, metadata={"help": "threads for OCR / colour"})
    vgg19_weights: str | None = field(
        default=None,
        metadata={"help": "backbone=vgg19: torchvision weights file (default: torch hub cache)"},
    )
    progress: bool = field(default=True, metadata={"help": "progress bars"})
    force: bool = field(default=False, metadata={"help": "start over in a non-empty OUT"})

    def __post_init__(self) -> None:
        if self.select_on not in SELECT_ON:
            raise ValueError(f"select_on must be one of {SELECT_ON}, got {self.select_on!r}")
        if self.eval_steps is not None and self.eval_steps < 1:
            raise ValueError("eval_steps must be at least 1")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
