"""Shared fixtures: one tiny from-scratch model per test session (it builds in seconds)."""

from __future__ import annotations

import os
from collections.abc import Iterator
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


UI_API_KEY = "ui-test-key"


@pytest.fixture(scope="session", autouse=True)
def ui_cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Where the page simulates its CreativeSim examples, once per test session: every server a
    test starts mounts the page, and none of them writes to the user's cache."""
    path = tmp_path_factory.mktemp("ui-cache")
    before = os.environ.get("CREATIVE4U_CACHE_DIR")
    os.environ["CREATIVE4U_CACHE_DIR"] = str(path)
    yield path
    if before is None:
        os.environ.pop("CREATIVE4U_CACHE_DIR", None)
    else:
        os.environ["CREATIVE4U_CACHE_DIR"] = before


@pytest.fixture(scope="session")
def ui_server(tiny_model: Path, ui_cache_dir: Path, tmp_path_factory: pytest.TempPathFactory):
    """`creative4u serve` with the tiny model, an API key and the page at /ui, shared by the UI
    tests (browser and gradio_client). Short generations keep the tests fast."""
    from serve.launch import ServerProcess, free_port, serve_command

    port = free_port()
    args = serve_command(
        tiny_model,
        port,
        "--api-key",
        UI_API_KEY,
        "--enforce-eager",  # a short-lived server: start fast (tests/test_serve.py compiles)
        "--max-tokens",
        "12",
        "--max-model-len",
        "2048",
        "--log-level",
        "warning",
    )
    env = {"VLLM_CPU_KVCACHE_SPACE": "1", "CREATIVE4U_CACHE_DIR": str(ui_cache_dir)}
    log = tmp_path_factory.mktemp("ui-serve") / "server.log"
    proc = ServerProcess(
        args, f"http://127.0.0.1:{port}/health", log, env=env, cwd=Path(__file__).parents[1]
    )
    with proc:
        yield f"http://127.0.0.1:{port}"
        assert proc.alive, f"the server died during the UI tests:\n{proc.log_tail()}"


@pytest.fixture(scope="session")
def ui_images(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Creative-like PNGs of different shapes, and a corrupt one (a PNG cut short)."""
    from PIL import Image, ImageDraw

    d = tmp_path_factory.mktemp("ui-images")
    colours = {
        "red": (205, 35, 45),
        "blue": (35, 85, 200),
        "green": (40, 160, 70),
        "gold": (212, 175, 55),
    }
    out: dict[str, Path] = {}
    for i, (name, rgb) in enumerate(colours.items()):
        img = Image.new("RGB", (240 + 40 * i, 300 - 30 * i), (240, 240, 236))
        ImageDraw.Draw(img).rectangle([30, 40, 170, 220 - 20 * i], fill=rgb)
        out[name] = d / f"{name}.png"
        img.save(out[name])
    corrupt = d / "corrupt.png"
    corrupt.write_bytes(out["red"].read_bytes()[:80])
    out["corrupt"] = corrupt
    return out


@pytest.fixture(scope="session")
def ui_api_key() -> str:
    return UI_API_KEY


@pytest.fixture(scope="session")
def ui_standalone(ui_cache_dir: Path, tmp_path_factory: pytest.TempPathFactory):
    """`creative4u ui --server URL [--api-key KEY]` processes, started on demand, one per
    (URL, key), all stopped at the end of the session. Returns a starter: (url, key) -> page URL."""
    import sys

    from serve.launch import ServerProcess, free_port

    started: dict[tuple[str, str | None], tuple[ServerProcess, str]] = {}

    def start(server_url: str, api_key: str | None = None) -> str:
        if (server_url, api_key) not in started:
            port = free_port()
            args = [sys.executable, "-m", "creative4u", "ui", "--server", server_url]
            args += ["--port", str(port), "--timeout", "300"]
            if api_key:
                args += ["--api-key", api_key]
            log = tmp_path_factory.mktemp("ui-standalone") / "ui.log"
            proc = ServerProcess(
                args,
                f"http://127.0.0.1:{port}/",
                log,
                env={"CREATIVE4U_CACHE_DIR": str(ui_cache_dir)},
                cwd=Path(__file__).parents[1],
            ).start(timeout_s=300)
            started[(server_url, api_key)] = (proc, f"http://127.0.0.1:{port}/")
        return started[(server_url, api_key)][1]

    yield start
    for proc, _ in started.values():
        proc.stop()
