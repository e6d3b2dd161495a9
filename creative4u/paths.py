"""Small filesystem rules every command follows."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def file_stamp(path: str | Path) -> list[Any]:
    """What identifies a file's content cheaply: absolute path, size, modification time (ns).
    Results cached under a stamp (a build stage, saved evaluation answers) are redone when the
    file changes."""
    p = Path(path)
    st = p.stat()
    return [str(p.resolve()), st.st_size, st.st_mtime_ns]


def ensure_writable_dir(path: str | Path, force: bool) -> Path:
    """An output folder a command may write: new, empty, or explicitly `--force`d. Refusing a
    non-empty folder by default means a typo never overwrites someone's work."""
    out = Path(path)
    if out.exists() and any(out.iterdir()) and not force:
        raise ValueError(f"{out} exists and is not empty (use --force to overwrite)")
    return out
