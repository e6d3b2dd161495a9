"""The auxiliary vector: categorical context one-hot, text embedded, as the paper feeds its CBN,
attention and high-level fusion.

A field that is missing when scoring (the selector knows the query and the title, not the
audience or the slot) is encoded as what the model saw on average: a categorical field becomes
its training frequencies (the expected one-hot), a text field the zero vector. Training hides
context fields the same way at random (`blocks` says where each field lives), so a partial
context is in distribution rather than a vector the model never met.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

# Fields computed from the image itself: always present, never hidden in training.
IMAGE_FIELDS: tuple[str, ...] = ("colour", "ocr")
TOKEN_PATTERN = r"(?u)\b\w+\b"


def norm_value(v: Any) -> str | None:
    """One spelling per categorical value: 5, 5.0 and "5" are the same month; None, NaN and ""
    are missing."""
    if v is None:
        return None
    if isinstance(v, float):
        if math.isnan(v):
            return None
        if v.is_integer():
            v = int(v)
    s = str(v).strip()
    return s or None


def norm_text(v: Any) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return ""
    return " ".join(str(v).split())


@dataclass
class Block:
    name: str
    start: int
    stop: int
    missing: np.ndarray  # what the block holds when the field is unknown


class AuxEncoder:
    """Fitted on the training cells; serialisable to JSON inside the checkpoint config."""

    def __init__(
        self,
        vocab: Mapping[str, Sequence[str]],
        freq: Mapping[str, Sequence[float]],
        text: Sequence[str],
        text_encoder: str = "hashing",
        text_dim: int = 128,
        idf: Mapping[str, Sequence[float]] | None = None,
    ):
        self.vocab = {k: list(v) for k, v in vocab.items()}
        self.freq = {k: np.asarray(v, dtype=np.float32) for k, v in freq.items()}
        self.text = list(text)
        self.text_encoder = text_encoder
        self.idf = {k: np.asarray(v, dtype=np.float32) for k, v in (idf or {}).items()}
        self._index = {k: {s: i for i, s in enumerate(v)} for k, v in self.vocab.items()}
        self._st = None
        if text_encoder != "hashing":
            text_dim = self._sentence_model().get_sentence_embedding_dimension()
        self.text_dim = int(text_dim)
        self.blocks = self._layout()
        self.dim = self.blocks[-1].stop if self.blocks else 0

    # ---- construction -------------------------------------------------------------------
    @classmethod
    def fit(
        cls,
        rows: Mapping[str, Sequence[Any]],
        categorical: Sequence[str],
        text: Sequence[str],
        text_encoder: str = "hashing",
        text_dim: int = 128,
    ) -> AuxEncoder:
        """Vocabularies and frequencies of the categorical fields, IDF of the text fields, from
        the training cells (`rows`: column name -> values, e.g. a DataFrame)."""
        vocab: dict[str, list[str]] = {}
        freq: dict[str, list[float]] = {}
        for name in categorical:
            values = [norm_value(v) for v in _column(rows, name)]
            seen = [v for v in values if v is not None]
            levels = sorted(set(seen), key=_level_order)
            counts = np.array([seen.count(x) for x in levels], dtype=np.float64)
            vocab[name] = levels
            freq[name] = (counts / counts.sum()).tolist() if len(seen) else []
        idf: dict[str, list[float]] = {}
        if text_encoder == "hashing":
            for name in text:
                docs = sorted({norm_text(v) for v in _column(rows, name)} - {""})
                idf[name] = _fit_idf(docs, text_dim).tolist()
        return cls(vocab, freq, text, text_encoder, text_dim, idf)

    def to_dict(self) -> dict[str, Any]:
        return {
            "vocab": self.vocab,
            "freq": {k: v.tolist() for k, v in self.freq.items()},
            "text": self.text,
            "text_encoder": self.text_encoder,
            "text_dim": self.text_dim,
            "idf": {k: v.tolist() for k, v in self.idf.items()},
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> AuxEncoder:
        return cls(d["vocab"], d["freq"], d["text"], d["text_encoder"], d["text_dim"], d["idf"])

    def _layout(self) -> list[Block]:
        out, at = [], 0
        for name, levels in self.vocab.items():
            k = len(levels)
            missing = self.freq[name] if len(self.freq[name]) == k else np.zeros(k, np.float32)
            out.append(Block(name, at, at + k, missing.astype(np.float32)))
            at += k
        for name in self.text:
            out.append(Block(name, at, at + self.text_dim, np.zeros(self.text_dim, np.float32)))
            at += self.text_dim
        return out

    @property
    def context_blocks(self) -> list[Block]:
        """The blocks training may hide: context fields, not what the image itself yields."""
        return [b for b in self.blocks if b.name not in IMAGE_FIELDS]

    # ---- encoding -----------------------------------------------------------------------
    def encode(self, rows: Mapping[str, Sequence[Any]] | Sequence[Mapping[str, Any]]) -> np.ndarray:
        """(n, dim) float32 auxiliary vectors. `rows` is column-wise (a DataFrame or a dict of
        lists) or a list of per-row dicts; absent fields count as missing."""
        if isinstance(rows, Sequence) and not isinstance(rows, str):
            rows = _columns_of(rows)
        n = _length(rows)
        out = np.zeros((n, self.dim), dtype=np.float32)
        for b in self.blocks:
            if b.name in self.vocab:
                self._encode_categorical(b, _column(rows, b.name, n), out)
            else:
                self._encode_text(b, _column(rows, b.name, n), out)
        return out

    def _encode_categorical(self, b: Block, values: Iterable[Any], out: np.ndarray) -> None:
        index = self._index[b.name]
        codes = np.array([index.get(norm_value(v), -1) for v in values], dtype=np.int64)
        known = codes >= 0
        out[np.flatnonzero(known), b.start + codes[known]] = 1.0
        out[~known, b.start : b.stop] = b.missing

    def _encode_text(self, b: Block, values: Iterable[Any], out: np.ndarray) -> None:
        texts = [norm_text(v) for v in values]
        uniq = sorted(set(texts))
        vecs = self.embed(b.name, uniq)
        pos = {t: i for i, t in enumerate(uniq)}
        out[:, b.start : b.stop] = vecs[[pos[t] for t in texts]]

    def embed(self, field: str, texts: Sequence[str]) -> np.ndarray:
        """Unit-length embeddings of `texts` (the empty text is the zero vector)."""
        if not texts:
            return np.zeros((0, self.text_dim), np.float32)
        if self.text_encoder == "hashing":
            m = _hash_counts(texts, self.text_dim) * self.idf[field][None, :]
        else:
            m = np.asarray(
                self._sentence_model().encode(list(texts), convert_to_numpy=True), np.float32
            )
        norms = np.linalg.norm(m, axis=1, keepdims=True)
        m = np.where(norms > 0, m / np.maximum(norms, 1e-12), 0.0).astype(np.float32)
        m[[i for i, t in enumerate(texts) if not t]] = 0.0
        return m

    def _sentence_model(self) -> Any:
        if self._st is None:
            try:
                from sentence_transformers import SentenceTransformer
            except ModuleNotFoundError as e:
                raise ValueError(
                    f"text_encoder {self.text_encoder!r} needs the sentence-transformers package; "
                    "use text_encoder=hashing offline"
                ) from e
            self._st = SentenceTransformer(self.text_encoder, device="cpu")
        return self._st


def _hash_counts(texts: Sequence[str], dim: int) -> np.ndarray:
    from sklearn.feature_extraction.text import HashingVectorizer

    hv = HashingVectorizer(
        n_features=dim, alternate_sign=False, norm=None, token_pattern=TOKEN_PATTERN
    )
    return hv.transform(list(texts)).toarray().astype(np.float32)


def _fit_idf(docs: Sequence[str], dim: int) -> np.ndarray:
    """Smoothed IDF per hashed dimension (sklearn's formula), over the distinct training texts."""
    if not docs:
        return np.ones(dim, np.float32)
    df = (_hash_counts(docs, dim) > 0).sum(0)
    return (np.log((1 + len(docs)) / (1 + df)) + 1.0).astype(np.float32)


def _level_order(v: str) -> tuple[int, float, str]:
    """Numbers in numeric order (hour 2 before hour 10), then words alphabetically."""
    try:
        return (0, float(v), v)
    except ValueError:
        return (1, 0.0, v)


def _columns_of(rows: Sequence[Mapping[str, Any]]) -> dict[str, list[Any]]:
    keys = {k for r in rows for k in r}
    return {k: [r.get(k) for r in rows] for k in keys} | {"__n__": [None] * len(rows)}


def _length(rows: Mapping[str, Sequence[Any]]) -> int:
    if "__n__" in rows:
        return len(rows["__n__"])
    if hasattr(rows, "shape"):
        return int(rows.shape[0])
    return len(next(iter(rows.values()))) if rows else 0


def _column(rows: Mapping[str, Sequence[Any]], name: str, n: int | None = None) -> list[Any]:
    if name in rows:
        return list(rows[name])
    return [None] * (n if n is not None else _length(rows))
