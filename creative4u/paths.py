"""Small filesystem rules every command follows."""

from __future__ import annotations

from pathlib import Path


def ensure_writable_dir(path: str | Path, force: bool) -> Path:
    """An output folder a command may write: new, empty, or explicitly `--force`d. Refusing a
    non-empty folder by default means a typo never overwrites someone's work."""
    out = Path(path)
    if out.exists() and any(out.iterdir()) and not force:
        raise ValueError(f"{out} exists and is not empty (use --force to overwrite)")
    return out
