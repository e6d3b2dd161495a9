"""creative4u: explainable ad-creative selection with a Qwen-VL model.

The core library every stage imports: the Creative Evaluation Protocol, the image loader, model
loading and the offline model factory, the engines and the one selection path, and the CLI.
`from creative4u import Selector` is the Python API (imported on first use: the CLI and the
stages do not pay for it).
"""

from typing import Any

__version__ = "0.1.0"
__all__ = ["Selector", "AsyncSelector"]


def __getattr__(name: str) -> Any:
    if name == "Selector":
        from creative4u.selector import Selector

        return Selector
    if name == "AsyncSelector":
        from creative4u.selection import AsyncSelector

        return AsyncSelector
    raise AttributeError(f"module 'creative4u' has no attribute {name!r}")
