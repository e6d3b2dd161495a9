"""Shared fixtures: one tiny from-scratch model per test session (it builds in seconds)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")

ARTIFACTS = Path(__file__).parent / "artifacts"


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from creative4u.model_factory import build

    return build(tmp_path_factory.mktemp("models") / "tiny", preset="tiny", seed=0)


@pytest.fixture(scope="session")
def swatches():
    """Two distinct creatives-like images of different sizes."""
    from PIL import Image, ImageDraw

    a = Image.new("RGB", (200, 300), (235, 235, 230))
    ImageDraw.Draw(a).rectangle([40, 60, 160, 250], fill=(205, 35, 45))
    b = Image.new("RGB", (320, 240), (40, 40, 60))
    ImageDraw.Draw(b).ellipse([120, 80, 200, 160], fill=(35, 85, 200))
    return a, b
