"""Finished stages of a `data build`, kept on disk and keyed by their inputs.

A build of a real log spends minutes ingesting and measuring before the rationale teacher runs
(an OpenAI-compatible VLM may then take hours). A build killed anywhere reruns from the stage
that did not finish: each stage's result lives in `OUT/.stages/<stage>-<key>/`, where the key
hashes everything the stage read (files by `creative4u.paths.file_stamp`, and the settings
that change its output). A stage folder appears only once its result is complete (written to a
temporary folder, then renamed), so a kill mid-stage leaves nothing half-done to trust.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import uuid
from collections.abc import Iterable
from pathlib import Path
from typing import Any

STAGES_DIR = ".stages"
"""The folder inside a dataset folder that holds the finished stages (never part of the dataset)."""


def stage_key(payload: Any) -> str:
    """A short stable hash of a JSON-able description of a stage's inputs."""
    blob = json.dumps(payload, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:20]


class StageStore:
    """Finished stages under `root` (`OUT/.stages`), one folder per stage and input key."""

    def __init__(self, root: str | Path):
        self.root = Path(root)

    def folder(self, stage: str, key: str) -> Path:
        return self.root / f"{stage}-{key}"

    def finished(self, stage: str, key: str) -> Path | None:
        """The folder of a finished stage with these inputs, or None."""
        path = self.folder(stage, key)
        return path if (path / "DONE").is_file() else None

    def write(self, stage: str, key: str) -> StageWriter:
        """`with store.write(stage, key) as tmp:` fill `tmp`; it becomes the stage's folder on
        success and disappears on failure. Older results of the same stage are removed then."""
        return StageWriter(self, stage, key)

    def drop(self, stages: Iterable[str] | None = None) -> None:
        """Forget finished stages (all of them by default)."""
        if not self.root.is_dir():
            return
        names = None if stages is None else set(stages)
        for p in self.root.iterdir():
            if names is None or p.name.rsplit("-", 1)[0] in names:
                shutil.rmtree(p, ignore_errors=True) if p.is_dir() else p.unlink()


class StageWriter:
    def __init__(self, store: StageStore, stage: str, key: str):
        self.store, self.stage, self.key = store, stage, key
        self.tmp = store.root / f".tmp-{stage}-{uuid.uuid4().hex[:8]}"

    def __enter__(self) -> Path:
        self.tmp.mkdir(parents=True)
        return self.tmp

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if exc_type is not None:
            shutil.rmtree(self.tmp, ignore_errors=True)
            return
        (self.tmp / "DONE").write_text(self.key + "\n")
        final = self.store.folder(self.stage, self.key)
        for old in self.store.root.glob(f"{self.stage}-*"):
            shutil.rmtree(old, ignore_errors=True)
        os.replace(self.tmp, final)


def clear_temporaries(root: str | Path) -> None:
    """Remove half-written stage folders a killed build left behind."""
    root = Path(root)
    if root.is_dir():
        for p in root.glob(".tmp-*"):
            shutil.rmtree(p, ignore_errors=True)
