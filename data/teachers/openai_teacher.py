"""The VLM rationale teacher: any OpenAI-compatible endpoint answers the protocol for each pair.

Rejection sampling keeps a reply only if it parses well-formed and names the labelled winner; the
first try is greedy, later ones sample (temperature > 0) with a per-try seed. Pairs that never
succeed fall back to the features teacher, and `rationale_source` says so. Every reply is cached
on disk under a key made of the pair, the exact prompt (images included), the model and the try
number, so an interrupted run resumes without repeating a single request, and a rerun with the
same inputs makes none.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from creative4u.protocol import build_messages, parse, render


@dataclass
class OpenAITeacherConfig:
    url: str
    model: str
    cache_dir: Path
    api_key: str = "EMPTY"
    tries: int = 4
    temperature: float = 0.8
    max_tokens: int = 400
    workers: int = 4
    timeout: float = 300.0
    seed: int = 0


@dataclass
class TeacherStats:
    """What the teacher did, for the dataset card (and for checking that a rerun is free)."""

    requests: int = 0
    cache_hits: int = 0
    errors: int = 0
    accepted: int = 0
    fallbacks: int = 0
    accepted_on_try: dict[int, int] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def to_dict(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "cache_hits": self.cache_hits,
            "errors": self.errors,
            "accepted": self.accepted,
            "fallbacks": self.fallbacks,
            "accepted_on_try": {str(k): v for k, v in sorted(self.accepted_on_try.items())},
        }


class ReplyCache:
    """One JSON file per reply, written atomically (a killed run never leaves half a file)."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)

    @staticmethod
    def key(pair_id: str, prompt_digest: str, model: str, attempt: int) -> str:
        raw = json.dumps([pair_id, prompt_digest, model, attempt], ensure_ascii=False)
        return hashlib.sha256(raw.encode()).hexdigest()

    def path(self, key: str) -> Path:
        return self.root / key[:2] / f"{key}.json"

    def get(self, key: str) -> dict | None:
        p = self.path(key)
        if not p.is_file():
            return None
        try:
            return json.loads(p.read_text())
        except json.JSONDecodeError:
            return None  # a damaged entry is asked again

    def put(self, key: str, record: dict) -> None:
        p = self.path(key)
        p.parent.mkdir(parents=True, exist_ok=True)
        tmp = p.with_suffix(f".tmp{os.getpid()}.{threading.get_ident()}")
        tmp.write_text(json.dumps(record, ensure_ascii=False))
        os.replace(tmp, p)

    def __len__(self) -> int:
        return sum(1 for _ in self.root.glob("*/*.json"))


def prompt_digest(messages: list[dict]) -> str:
    return hashlib.sha256(json.dumps(messages, sort_keys=True).encode()).hexdigest()


class OpenAITeacher:
    """Rationales from an OpenAI-compatible VLM, with rejection sampling and a reply cache."""

    def __init__(self, cfg: OpenAITeacherConfig, client: Any = None) -> None:
        from openai import OpenAI

        if cfg.tries < 1:
            raise ValueError(f"--teacher-tries must be >= 1, got {cfg.tries}")
        self.cfg = cfg
        self.client = client or OpenAI(
            base_url=cfg.url, api_key=cfg.api_key, timeout=cfg.timeout, max_retries=2
        )
        self.cache = ReplyCache(cfg.cache_dir)
        self.stats = TeacherStats()
        self.last_error = ""
        self.source = f"openai:{cfg.model}"
        self.fallback_source = f"features (fallback: {self.source} failed {cfg.tries} tries)"

    def _reply(self, messages: list[dict], key: str, attempt: int, pair_id: str) -> str | None:
        cached = self.cache.get(key)
        if cached is not None:
            with self.stats.lock:
                self.stats.cache_hits += 1
            return cached["text"]
        from openai import OpenAIError

        try:
            resp = self.client.chat.completions.create(
                model=self.cfg.model,
                messages=messages,
                temperature=0.0 if attempt == 0 else self.cfg.temperature,
                max_tokens=self.cfg.max_tokens,
                seed=self.cfg.seed + attempt,
            )
        except OpenAIError as e:
            # not cached: a server that was down should be asked again on the next run
            with self.stats.lock:
                self.stats.requests += 1
                self.stats.errors += 1
            self.last_error = f"{type(e).__name__}: {e}"
            return None
        text = resp.choices[0].message.content or ""
        self.cache.put(
            key,
            {
                "pair_id": pair_id,
                "model": self.cfg.model,
                "try": attempt,
                "finish_reason": resp.choices[0].finish_reason,
                "text": text,
            },
        )
        with self.stats.lock:
            self.stats.requests += 1
        return text

    def teach(
        self, pair_id: str, query: str, title: str, image_a: Any, image_b: Any, label: str
    ) -> str | None:
        """A well-formed rationale naming `label`, or None after `tries` attempts."""
        from creative4u.images import to_data_url

        messages = build_messages(
            query, title, to_data_url(image_a), to_data_url(image_b), style="openai"
        )
        digest = prompt_digest(messages)
        for attempt in range(self.cfg.tries):
            key = ReplyCache.key(pair_id, digest, self.cfg.model, attempt)
            text = self._reply(messages, key, attempt, pair_id)
            if text is None:
                continue
            v = parse(text)
            if v.well_formed and v.winner == label:
                with self.stats.lock:
                    self.stats.accepted += 1
                    self.stats.accepted_on_try[attempt] = (
                        self.stats.accepted_on_try.get(attempt, 0) + 1
                    )
                return render(v)  # the canonical form of the same judgement
        with self.stats.lock:
            self.stats.fallbacks += 1
        return None

    def run(
        self,
        rows: Sequence[Mapping[str, Any]],
        image_path: Callable[[str], Path],
        fallback: Sequence[str],
        progress: bool = True,
    ) -> tuple[list[str], list[str]]:
        """(rationale, rationale_source) for every row; unlabelled rows keep ("", "")."""
        from concurrent.futures import ThreadPoolExecutor

        from tqdm import tqdm

        def one(i: int) -> tuple[str, str]:
            r = rows[i]
            if not r["label"]:
                return "", ""
            text = self.teach(
                r["pair_id"],
                r["query"],
                r["title"],
                image_path(r["image_a"]),
                image_path(r["image_b"]),
                r["label"],
            )
            if text is None:
                return fallback[i], self.fallback_source
            return text, self.source

        with ThreadPoolExecutor(max_workers=max(1, self.cfg.workers)) as pool:
            out = list(
                tqdm(
                    pool.map(one, range(len(rows))),
                    total=len(rows),
                    desc=f"teacher {self.cfg.model}",
                    unit="pair",
                    disable=not progress,
                )
            )
        return [t for t, _ in out], [s for _, s in out]
