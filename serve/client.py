"""`creative4u select` and `creative4u rank`: against a server, or with the model in this process.

With `--server` the images are sent as data URLs to `/v1/select` / `/v1/rank`. With `--model`
the same `AsyncSelector` the server uses runs here on an in-process vLLM engine (with the
calibration stored next to the model), so both paths give the same answer for the same model.
`--pairs FILE` and `--groups FILE_OR_DIR` are the batch jobs of `creative4u.batch` on that
in-process engine.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from pathlib import Path
from typing import Any

from creative4u.images import to_data_url


def options_of(args: argparse.Namespace) -> dict[str, Any]:
    opts: dict[str, Any] = {"both_orders": not args.single_order}
    if args.max_tokens:
        opts["max_tokens"] = args.max_tokens
    if getattr(args, "method", "auto") != "auto":
        opts["rank_method"] = args.method
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


def local_selector(args: argparse.Namespace) -> Any:
    """The in-process `AsyncSelector` of `--model` (with its stored calibration and, when given,
    M2FN); its engine is started by the caller, inside the event loop that will use it."""
    from creative4u.calibration import Calibration
    from creative4u.engines import LocalEngine
    from creative4u.selection import AsyncSelector

    # Keep stdout for the result (--json is parsed by scripts): engine logs go to stderr.
    os.environ.setdefault("VLLM_LOGGING_STREAM", "ext://sys.stderr")
    os.environ.setdefault("VLLM_LOGGING_LEVEL", "WARNING")
    scorer = None
    if getattr(args, "m2fn", None):
        from serve.server import load_ctr_scorer

        scorer = load_ctr_scorer(args.m2fn)
    engine = LocalEngine.from_model(args.model, args.adapter, max_model_len=args.max_model_len)
    return AsyncSelector(
        engine,
        probe_answer=not args.no_probe,
        ctr_scorer=scorer,
        calibration=Calibration.for_model(args.model, args.adapter),
    )


def with_local_selector(args: argparse.Namespace, job: Any) -> Any:
    """Run `job(selector)` with the engine up, and shut it down cleanly however the job ends."""

    async def main() -> Any:
        selector = local_selector(args)
        await selector.engine.start()
        try:
            return await job(selector)
        finally:
            await selector.engine.close()

    return asyncio.run(main())


def run_local(args: argparse.Namespace, op: str, paths: list[str]) -> dict[str, Any]:
    from creative4u.images import load_image
    from creative4u.selection import SelectOptions

    images = [load_image(p) for p in paths]  # the user's own files: paths are fine here
    opts = SelectOptions(**options_of(args))

    async def job(selector: Any) -> dict[str, Any]:
        if op == "select":
            result = await selector.select(images, args.query, args.title, opts)
        else:
            result = await selector.rank(images, args.query, args.title, opts, ids=paths)
        return result.model_dump()

    return with_local_selector(args, job)


def run_batch(args: argparse.Namespace, kind: str) -> int:
    """`select --pairs FILE` / `rank --groups FILE_OR_DIR`: the offline engine, resumable."""
    from creative4u import batch
    from creative4u.selection import SelectOptions

    if args.server:
        raise ValueError(
            f"--{'pairs' if kind == 'select' else 'groups'} runs the model in this process: "
            "use --model (a server is for interactive calls)"
        )
    if not args.out:
        raise ValueError("a batch job needs --out (a .jsonl or .parquet file)")
    out = Path(args.out)
    if out.suffix not in (".jsonl", ".parquet"):
        raise ValueError(f"--out must end in .jsonl or .parquet, got {out.name}")
    opts = SelectOptions(**options_of(args))
    if kind == "select":
        rows = batch.read_table(args.pairs)
        root = Path(args.images) if args.images else Path(args.pairs).parent

        async def job(selector: Any) -> Any:
            return await batch.select_pairs(
                selector, rows, out, root=root, options=opts, chunk=args.chunk
            )

    else:
        groups = batch.read_groups(args.groups, args.query, args.title)
        src = Path(args.groups)
        root = Path(args.images) if args.images else (src if src.is_dir() else src.parent)

        async def job(selector: Any) -> Any:
            return await batch.rank_groups(
                selector,
                groups,
                out,
                root=root,
                options=opts,
                concurrency=max(1, args.chunk // 16),
            )

    report = with_local_selector(args, job)
    print(json.dumps(report.to_dict()))
    print(
        f"{report.answered} answered, {report.failed} failed"
        f" ({report.done_before} done before) -> {report.out}",
        file=sys.stderr,
    )
    return 0


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

    if getattr(args, "pairs", None):
        return run_batch(args, "select")
    if not (args.image_a and args.image_b):
        raise ValueError("select needs two images (image_a image_b), or --pairs FILE")
    paths = [args.image_a, args.image_b]
    creatives = [to_data_url(p) for p in paths] if args.server else []
    return _run(args, "select", paths, creatives, format_select)


def run_rank(args: argparse.Namespace) -> int:
    from serve.report import format_rank

    if getattr(args, "groups", None):
        return run_batch(args, "rank")
    paths = list(args.images)
    if len(paths) < 2:
        raise ValueError("rank needs at least 2 images")
    creatives = [{"id": p, "image": to_data_url(p)} for p in paths] if args.server else []
    return _run(args, "rank", paths, creatives, format_rank)
