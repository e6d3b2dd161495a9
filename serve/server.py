"""`creative4u serve`: build the engine, the optional M2FN scorer and the app from flags; run uvicorn.

Run it from the `creative4u` console script or `python -m creative4u serve`: both are
`__main__`-guarded, which vLLM's spawned engine process needs.
"""

from __future__ import annotations

import argparse
import logging
import os
from typing import Any

from serve.config import Limits, ServeConfig

log = logging.getLogger("creative4u.serve")


def config_from_args(args: argparse.Namespace) -> ServeConfig:
    return ServeConfig(
        served_model_name=args.served_model_name,
        api_key=args.api_key or os.environ.get("CREATIVE4U_API_KEY") or None,
        limits=Limits(
            max_image_bytes=args.max_image_bytes,
            max_image_pixels=args.max_image_pixels,
            max_body_bytes=args.max_body_bytes,
            max_creatives=args.max_creatives,
            max_text_chars=args.max_text_chars,
            max_prompt_chars=args.max_prompt_chars,
            max_tokens=args.max_tokens_limit,
        ),
        default_max_tokens=args.max_tokens,
        max_concurrency=args.max_concurrency,
        max_queue=args.max_queue,
        request_timeout_s=args.request_timeout,
        allow_url_hosts=tuple(args.allow_url_host or ()),
        url_timeout_s=args.url_timeout,
        probe_answer=not args.no_probe,
    )


def lora_modules(args: argparse.Namespace) -> dict[str, str]:
    """`--lora-modules a=PATH b=PATH` -> {"a": PATH, "b": PATH}."""
    out: dict[str, str] = {}
    for item in getattr(args, "lora_modules", None) or []:
        name, sep, path = item.partition("=")
        if not sep or not name or not path:
            raise ValueError(f"--lora-modules takes NAME=PATH, got {item!r}")
        if name in out:
            raise ValueError(f"--lora-modules names {name!r} twice")
        out[name] = path
    return out


def engine_from_args(args: argparse.Namespace) -> Any:
    from creative4u.engines import LocalEngine, OpenAIEngine

    adapters = lora_modules(args)
    if args.engine == "local":
        overrides: dict[str, Any] = {}
        for name in ("max_num_seqs", "tensor_parallel_size", "gpu_memory_utilization"):
            if getattr(args, name, None):
                overrides[name] = getattr(args, name)
        # A server runs for long: compiled (vLLM's default) unless told otherwise, on CPU too.
        overrides["enforce_eager"] = bool(getattr(args, "enforce_eager", False))
        return LocalEngine.from_model(
            args.model,
            args.adapter,
            served_model_name=args.served_model_name,
            max_model_len=args.max_model_len,
            adapters=adapters,
            worker_process=True,  # measured: `ensure_cpu_env`
            **overrides,
        )
    if not args.engine.startswith(("http://", "https://")):
        raise ValueError(f"--engine must be 'local' or an http(s) URL, got {args.engine!r}")
    if args.adapter or adapters:
        raise ValueError(
            "--adapter and --lora-modules apply to --engine local; with a URL engine the upstream serves the adapter "
            "(vllm --lora-modules NAME=PATH) and --upstream-model names it"
        )
    return OpenAIEngine.from_model(
        args.engine,
        args.model,
        served_model_name=args.served_model_name,
        upstream_model=args.upstream_model,
        api_key=args.upstream_api_key or os.environ.get("CREATIVE4U_UPSTREAM_API_KEY") or None,
        timeout_s=args.request_timeout,
        batch_capacity=args.max_num_seqs,
    )


def load_ctr_scorer(ckpt: str) -> Any:
    """M2FN is imported only when asked for: serving without it needs none of its code."""
    from creative4u import m2fn

    return m2fn.load(ckpt)


def loopback_url(host: str, port: int) -> str:
    """Where this process reaches its own API (the mounted page calls it over HTTP)."""
    if host in ("", "0.0.0.0", "127.0.0.1", "localhost"):
        return f"http://127.0.0.1:{port}"
    if host in ("::", "::1"):
        return f"http://[::1]:{port}"
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def run(args: argparse.Namespace) -> int:
    import uvicorn

    from creative4u.calibration import Calibration
    from serve.app import create_app

    cfg = config_from_args(args)
    engine = engine_from_args(args)
    scorer = load_ctr_scorer(args.m2fn) if args.m2fn else None
    calibration = Calibration.for_model(args.model, args.adapter)
    if calibration is not None:
        log.info("confidence calibrated: temperature %.3f", calibration.temperature)
    calibrations = {name: Calibration.load(path) for name, path in engine.adapters.items()}
    app = create_app(
        engine, cfg, ctr_scorer=scorer, calibration=calibration, calibrations=calibrations
    )
    if not getattr(args, "no_ui", False):
        from serve.ui import mount_ui

        mount_ui(
            app,
            loopback_url(args.host, args.port),
            cfg.api_key,
            cfg.limits,
            cfg.request_timeout_s + 30,
        )
    if cfg.api_key is None and args.host not in ("127.0.0.1", "localhost", "::1"):
        log.warning("serving on %s without an API key", args.host)
    uvicorn.run(
        app,
        host=args.host,
        port=args.port,
        log_level=args.log_level,
        # Connections beyond this get 503 from uvicorn itself: a backstop behind admission
        # control (whose own limits are sized from the engine once it has started).
        limit_concurrency=(
            cfg.max_concurrency + cfg.max_queue + 32
            if cfg.max_concurrency is not None and cfg.max_queue is not None
            else None
        ),
        timeout_keep_alive=5,
        timeout_graceful_shutdown=10,
    )
    return 0
