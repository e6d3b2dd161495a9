"""What the other stages use: predicted CTRs for creatives in a context, and P(A > B) for a pair.

Serving, the GRPO reward and evaluation call this with whatever context they have (usually the
query and the product title only); the fields they lack are encoded as the training average
(see `creative4u.m2fn.aux`). Images may be PIL images, paths, bytes, data URLs or datasets.Image
dicts, as everywhere in the product.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from creative4u.m2fn.aux import AuxEncoder
from creative4u.m2fn.config import M2FNConfig
from creative4u.m2fn.image_features import FeatureCache, features_for, image_key, open_image
from creative4u.m2fn.image_features import to_array as image_array


def logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(np.asarray(p, np.float64), 1e-9, 1 - 1e-9)
    return np.log(p) - np.log1p(-p)


def pair_probability(ctr_a: Any, ctr_b: Any, scale: float) -> np.ndarray:
    """P(A > B) = sigmoid(scale * (logit CTR_A - logit CTR_B)): a Bradley-Terry model on the
    predicted CTRs, with `scale` fitted on validation pairs (`evaluate.fit_prefer_scale`)."""
    d = scale * (logit(ctr_a) - logit(ctr_b))
    return 1.0 / (1.0 + np.exp(-d))


class M2FNScorer:
    def __init__(
        self,
        model: Any,
        cfg: M2FNConfig,
        encoder: AuxEncoder,
        cache: FeatureCache | None = None,
        prefer_scale: float = 1.0,
        batch_size: int = 64,
        workers: int = 1,
    ):
        self.model = model.eval()
        self.cfg = cfg
        self.encoder = encoder
        self.cache = cache if cache is not None else FeatureCache()
        self.prefer_scale = float(prefer_scale)
        self.batch_size = batch_size
        self.workers = workers  # threads for colour / OCR of images not in the cache

    def score(
        self,
        images: Sequence[Any],
        context: Sequence[Mapping[str, Any]] | Mapping[str, Any] | None = None,
    ) -> list[float]:
        """Predicted CTR of each image in its context (one dict per image, or one for all)."""
        import torch

        images = list(images)
        if context is None or isinstance(context, Mapping):
            context = [dict(context or {})] * len(images)
        if len(context) != len(images):
            raise ValueError(f"{len(images)} images but {len(context)} contexts")
        if not images:
            return []
        pixels, feats = self._images(images)
        rows = [
            {**ctx, "colour": f["colour"], "ocr": f["ocr"] or ""}
            for ctx, f in zip(context, feats, strict=True)
        ]
        aux = self.encoder.encode(rows)
        out: list[float] = []
        with torch.inference_mode():
            for i in range(0, len(images), self.batch_size):
                px = torch.from_numpy(pixels[i : i + self.batch_size])
                a = torch.from_numpy(aux[i : i + self.batch_size])
                out += self.model.ctr(self.model(px, a)).tolist()
        return [float(x) for x in out]

    def prefer(self, a: Any, b: Any, context: Mapping[str, Any] | None = None) -> float:
        """P(CTR of A > CTR of B) in this context."""
        ctr_a, ctr_b = self.score([a, b], [dict(context or {})] * 2)
        return float(pair_probability(ctr_a, ctr_b, self.prefer_scale))

    def prefer_many(self, pairs: Sequence[tuple[Any, Any, Mapping[str, Any]]]) -> list[float]:
        """`prefer` for many (a, b, context) pairs, scored in batches."""
        images = [x for a, b, _ in pairs for x in (a, b)]
        ctx = [dict(c or {}) for _, _, c in pairs for _ in (0, 1)]
        s = np.asarray(self.score(images, ctx)).reshape(-1, 2)
        return pair_probability(s[:, 0], s[:, 1], self.prefer_scale).tolist() if len(s) else []

    def prefer_pairs(
        self,
        splits: Sequence[Any],
        wanted: set[str] | None = None,
        batch_size: int = 256,
        progress: bool = True,
    ) -> dict[str, float]:
        """P(CTR_A > CTR_B) for each pair of CreativePair splits (A and B as stored), by pair id;
        with `wanted`, only those pair ids.

        A predicted CTR depends only on (image, query, title), and a creative takes part in many
        pairs, so each distinct triple is scored once and the pairs are read off the CTRs."""
        from datasets import Image
        from tqdm.auto import tqdm

        from creative4u.images import stored_image_key

        stored: dict[str, Any] = {}  # image key -> undecoded image
        index: dict[tuple[str, str, str], int] = {}
        todo: list[tuple[str, dict[str, str]]] = []  # (image key, context) to score
        pairs: list[tuple[str, int, int]] = []
        for split in splits:
            raw = split.select_columns(["pair_id", "query", "title", "image_a", "image_b"])
            raw = raw.cast_column("image_a", Image(decode=False))
            raw = raw.cast_column("image_b", Image(decode=False))
            for row in raw:
                if wanted is not None and row["pair_id"] not in wanted:
                    continue
                at = []
                for col in ("image_a", "image_b"):
                    key = stored_image_key(row[col])
                    stored.setdefault(key, row[col])
                    triple = (key, row["query"], row["title"])
                    if triple not in index:
                        index[triple] = len(todo)
                        todo.append((key, {"query": row["query"], "title": row["title"]}))
                    at.append(index[triple])
                pairs.append((row["pair_id"], at[0], at[1]))
        ctr: list[float] = []
        starts = range(0, len(todo), batch_size)
        for start in tqdm(starts, desc="M2FN CTRs", unit="batch", disable=not progress):
            chunk = todo[start : start + batch_size]
            ctr += self.score([stored[k] for k, _ in chunk], [c for _, c in chunk])
        if not pairs:
            return {}
        ctrs = np.asarray(ctr, dtype=np.float64)
        ia = np.asarray([a for _, a, _ in pairs], dtype=np.int64)
        ib = np.asarray([b for _, _, b in pairs], dtype=np.int64)
        probs = pair_probability(ctrs[ia], ctrs[ib], self.prefer_scale)
        return {pid: float(p) for (pid, _, _), p in zip(pairs, probs, strict=True)}

    def _images(self, images: Sequence[Any]) -> tuple[np.ndarray, list[dict[str, Any]]]:
        loaded = [open_image(x) for x in images]
        keys = [image_key(im) for im in loaded]
        feats = features_for(
            loaded,
            self.cache,
            ocr=self.cfg.ocr,
            keys=keys,
            workers=self.workers,
            near_duplicates=True,
        )
        arrays = np.stack([image_array(im, self.cfg.image_size) for im in loaded])
        return arrays, feats


def load(ckpt: str | Path, batch_size: int = 64) -> M2FNScorer:
    """The scorer of a checkpoint folder written by `creative4u m2fn train`."""
    from creative4u.m2fn.checkpoint import FEATURES, load_model

    model, cfg, encoder, config = load_model(ckpt)
    scale = config.get("prefer_scale", 1.0)
    if scale is None or not math.isfinite(scale):
        scale = 1.0
    cache = FeatureCache(Path(ckpt) / FEATURES)
    cache.path = None  # read the training images' features; never write into the checkpoint
    return M2FNScorer(model, cfg, encoder, cache, scale, batch_size)
