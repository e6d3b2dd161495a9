"""`creative4u select` and `creative4u rank`: against a server, or with the model in this process.

With `--server` the images are sent as data URLs to `/v1/select` / `/v1/rank`. With `--model`
the same `Selector` the server uses runs here on an in-process vLLM engine, so both paths give
the same answer for the same model.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import mimetypes
import os
import sys
from pathlib import Path
from typing import Any


def data_url(path: str) -> str:
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"image file not found: {p}")
    mime = mimetypes.guess_type(p.name)[0] or "image/png"
    if not mime.startswith("image/"):
        mime = "image/png"
    return f"data:{mime};base64," + base64.b64encode(p.read_bytes()).decode("ascii")


def options_of(args: argparse.Namespace) -> dict[str, Any]:
    opts: dict[str, Any] = {"both_orders": not args.single_order}
    if args.max_tokens:
        opts["max_tokens"] = args.max_tokens
    return opts


def call_server(args: argparse.Namespace, endpoint: str, body: dict[str, Any]) -> dict[str, Any]:
    import httpx

    headers = {}
    key = args.api_key or os.environ.get("CREATIVE4U_API_KEY")
    if key:
        headers["Authorization"] = f"Bearer {key}"
    url = args.server.rstrip("/") + endpoint
    try:
        resp = httpx.post(url, json=body, headers=headers, timeout=args.timeout)
    except httpx.HTTPError as e:
        raise SystemExit(f"creative4u: cannot reach {url}: {e}") from e
    try:
        payload = resp.json()
    except ValueError:
        payload = {"error": {"message": resp.text[:500]}}
    if resp.status_code != 200:
        err = payload.get("error", {}) if isinstance(payload, dict) else {}
        param = f" ({err.get('param')})" if err.get("param") else ""
        raise SystemExit(
            f"creative4u: server said {resp.status_code}{param}: {err.get('message', payload)}"
        )
    return payload


def run_local(args: argparse.Namespace, op: str, paths: list[str]) -> dict[str, Any]:
    from creative4u.images import load_image
    from serve.engines import LocalEngine
    from serve.selection import SelectOptions, Selector

    images = [load_image(p) for p in paths]  # the user's own files: paths are fine here
    # Keep stdout for the result (--json is parsed by scripts): engine logs go to stderr.
    os.environ.setdefault("VLLM_LOGGING_STREAM", "ext://sys.stderr")
    os.environ.setdefault("VLLM_LOGGING_LEVEL", "WARNING")
    opts = SelectOptions(**options_of(args))
    scorer = None
    if getattr(args, "m2fn", None):
        from serve.server import load_ctr_scorer

        scorer = load_ctr_scorer(args.m2fn)

    async def main() -> dict[str, Any]:
        engine = LocalEngine.from_model(args.model, args.adapter, max_model_len=args.max_model_len)
        await engine.start()
        try:
            selector = Selector(engine, probe_answer=not args.no_probe, ctr_scorer=scorer)
            if op == "select":
                return await selector.select(images, args.query, args.title, opts)
            return await selector.rank(images, args.query, args.title, opts, ids=paths)
        finally:
            await engine.close()

    return asyncio.run(main())


def _run(
    args: argparse.Namespace, kind: str, paths: list[str], creatives: list[Any], fmt: Any
) -> int:
    """One client path for select and rank: the server's endpoint or the in-process selector,
    then JSON or the readable table."""
    if args.server and getattr(args, "m2fn", None):
        raise ValueError("--m2fn goes with --model; a server loads its own with `serve --m2fn`")
    if args.server:
        body = {
            "creatives": creatives,
            "query": args.query,
            "title": args.title,
            "options": options_of(args),
        }
        result = call_server(args, f"/v1/{kind}", body)
    else:
        result = run_local(args, kind, paths)
    if args.json:
        json.dump(result, sys.stdout, indent=2)
        print()
    else:
        print(fmt(result, names=paths))
    return 0


def run_select(args: argparse.Namespace) -> int:
    from serve.report import format_select

    paths = [args.image_a, args.image_b]
    creatives = [data_url(p) for p in paths] if args.server else []
    return _run(args, "select", paths, creatives, format_select)


def run_rank(args: argparse.Namespace) -> int:
    from serve.report import format_rank

    paths = list(args.images)
    if len(paths) < 2:
        raise ValueError("rank needs at least 2 images")
    creatives = [{"id": p, "image": data_url(p)} for p in paths] if args.server else []
    return _run(args, "rank", paths, creatives, format_rank)
