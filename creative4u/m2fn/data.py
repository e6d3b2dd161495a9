"""From a dataset folder to M2FN's tensors.

A dataset folder (written by `creative4u data build`) holds `impressions.parquet` (one row per
creative x context, the impression-table contract in `creative4u.schema`), the CreativePair
`DatasetDict`, and `card.json` whose `images_root` says where the table's `image` paths start.

Every distinct image is decoded once: its pixels at the model's size go into one uint8 array that
the cells index, and its colour and OCR into the auxiliary vector of each of its cells.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from creative4u.m2fn.aux import AuxEncoder
from creative4u.m2fn.config import M2FNConfig, TrainConfig
from creative4u.m2fn.image_features import FeatureCache, features_for, image_key, open_image
from creative4u.m2fn.image_features import to_array as image_array
from creative4u.schema import SPLITS

TABLE = "impressions.parquet"
FEATURES_TABLE = "features.parquet"  # the data stage's per-creative measurements
REQUIRED = ("image", "impressions", "split")


def load_table(data: str | Path) -> pd.DataFrame:
    path = Path(data) / TABLE
    if not path.is_file():
        raise FileNotFoundError(
            f"{path} not found: --data must be a dataset folder from `creative4u data build`"
        )
    df = pd.read_parquet(path)
    missing = [c for c in REQUIRED if c not in df.columns]
    if "clicks" not in df.columns and "ctr" not in df.columns:
        missing.append("clicks or ctr")
    if missing:
        raise ValueError(f"{path} lacks column(s): {', '.join(missing)}")
    if "clicks" not in df.columns:
        df["clicks"] = (df["ctr"] * df["impressions"]).round()
    if "ctr" not in df.columns:
        df["ctr"] = df["clicks"] / df["impressions"].clip(lower=1)
    bad = sorted(set(df["split"].astype(str)) - set(SPLITS))
    if bad:
        raise ValueError(f"{path}: unknown split value(s) {bad} (expected {SPLITS})")
    return df


def read_card(data: str | Path) -> dict[str, Any]:
    card = Path(data) / "card.json"
    return json.loads(card.read_text()) if card.is_file() else {}


def images_root(data: str | Path, override: str | None = None) -> Path:
    """--images, else card.json's images_root (or the image folder the build read, its
    sources.images), absolute or relative to the dataset folder or the working directory, else
    DATA/images."""
    data = Path(data)
    if override:
        root = Path(override)
    else:
        card = read_card(data)
        root_s = card.get("images_root") or (card.get("sources") or {}).get("images")
        if root_s:
            root = Path(root_s)
            if not root.is_absolute() and not root.is_dir() and (data / root).is_dir():
                root = data / root
        else:
            root = data / "images"
    if not root.is_dir():
        raise FileNotFoundError(
            f"images root {root} is not a folder (set images_root in {data / 'card.json'} or "
            "pass --images DIR)"
        )
    return root


def measured_text(data: str | Path) -> dict[str, str]:
    """image path -> the OCR text the data stage measured (features.parquet), when it read text;
    empty when it did not (a build with --no-ocr)."""
    path = Path(data) / FEATURES_TABLE
    if not path.is_file() or not (read_card(data).get("features") or {}).get("ocr"):
        return {}
    df = pd.read_parquet(path, columns=["image", "text"])
    return {str(k): str(v or "") for k, v in zip(df["image"], df["text"], strict=True)}


def load_pairs(data: str | Path) -> Any | None:
    """The CreativePair DatasetDict in the folder, or None when the folder has none."""
    if not (Path(data) / "dataset_dict.json").is_file():
        return None
    from datasets import load_from_disk

    return load_from_disk(str(data))


def select_rows(df: pd.DataFrame, cfg: TrainConfig) -> pd.DataFrame:
    """The cells of each split this run uses: enough impressions, then a seeded sample of at most
    the configured number (the same sample for every ablation configuration)."""
    df = df[df["impressions"] >= max(cfg.min_impressions, 1)]
    caps = {"train": cfg.max_train_rows, "validation": cfg.max_eval_rows, "test": cfg.max_test_rows}
    parts = []
    for split in SPLITS:
        part = df[df["split"].astype(str) == split]
        cap = caps[split]
        if cap is not None and len(part) > cap:
            part = part.sample(n=cap, random_state=cfg.seed)
        parts.append(part)
    return pd.concat(parts).reset_index(drop=True)


@dataclass
class Prepared:
    """Everything a training run reads, computed once (and shared by the ablation's runs)."""

    rows: pd.DataFrame  # the selected cells, with `colour` and `ocr` of their image
    pixels: np.ndarray  # (n_images, 3, S, S) uint8
    image_index: np.ndarray  # (n_rows,) row -> pixels index
    aux: np.ndarray  # (n_rows, dim) float32
    encoder: AuxEncoder
    cache: FeatureCache
    model_cfg: M2FNConfig
    cfg: TrainConfig
    pair_sets: dict[str, Any] = field(default_factory=dict)

    def split(self, name: str) -> np.ndarray:
        return np.flatnonzero(self.rows["split"].astype(str).to_numpy() == name)

    def pair_set(self, name: str) -> Any:
        """The CreativePair split's labelled pairs, prepared once (None: no such split)."""
        if name not in self.pair_sets:
            from creative4u.m2fn.evaluate import pair_set

            pairs = load_pairs(self.cfg.data)
            self.pair_sets[name] = None
            if pairs is not None and name in pairs:
                self.pair_sets[name] = pair_set(
                    pairs[name],
                    self.encoder,
                    self.model_cfg,
                    self.cache,
                    limit=self.cfg.max_pairs,
                    seed=self.cfg.seed,
                    workers=self.cfg.feature_workers,
                )
        return self.pair_sets[name]


def prepare(
    model_cfg: M2FNConfig, cfg: TrainConfig, cache: FeatureCache, progress: bool = True
) -> Prepared:
    from tqdm.auto import tqdm

    df = select_rows(load_table(cfg.data), cfg)
    if not (df["split"] == "train").any():
        raise ValueError(
            f"{cfg.data}: no training cells (with >= {cfg.min_impressions} impressions)"
        )
    root = images_root(cfg.data, cfg.images)
    names = sorted(df["image"].astype(str).unique())
    measured = measured_text(cfg.data) if model_cfg.ocr else {}
    openers, keys, arrays = [], [], []
    for name in tqdm(names, desc="loading images", disable=not progress):
        path = root / name
        img = open_image(path, name=str(path))
        keys.append(image_key(img))
        if name in measured and "ocr" not in cache.get(keys[-1]):
            cache.add(keys[-1], {"ocr": measured[name]})
        arrays.append(image_array(img, model_cfg.image_size))
        openers.append(lambda path=path: open_image(path, name=str(path)))
    feats = features_for(
        openers,
        cache,
        ocr=model_cfg.ocr,
        keys=keys,
        workers=cfg.feature_workers,
        progress=progress,
    )
    index = {n: i for i, n in enumerate(names)}
    image_index = df["image"].astype(str).map(index).to_numpy(np.int64)
    df = df.assign(
        colour=[feats[i]["colour"] for i in image_index],
        ocr=[feats[i]["ocr"] or "" for i in image_index],
    )
    train = df[df["split"] == "train"]
    encoder = AuxEncoder.fit(
        train,
        [c for c in model_cfg.categorical],
        list(model_cfg.text),
        model_cfg.text_encoder,
        model_cfg.text_dim,
    )
    return Prepared(
        rows=df,
        pixels=np.stack(arrays),
        image_index=image_index,
        aux=encoder.encode(df),
        encoder=encoder,
        cache=cache,
        model_cfg=model_cfg,
        cfg=cfg,
    )
