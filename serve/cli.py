"""Subcommands `serve`, `select` and `rank` for the `creative4u` CLI (declared as entry points).

Only argparse is imported here: `creative4u --help` must stay fast, so FastAPI, vLLM and torch
are imported by the command that needs them, when it runs.
"""

from __future__ import annotations

import argparse

from serve.config import Limits, ServeConfig

_LIMITS = Limits()
_CFG = ServeConfig()


def _int_bytes(text: str) -> int:
    """Accepts 8388608, 8MiB, 8MB, 512KiB."""
    t = text.strip().lower().replace(" ", "")
    for suffix, mult in (
        ("gib", 2**30),
        ("mib", 2**20),
        ("kib", 2**10),
        ("gb", 10**9),
        ("mb", 10**6),
        ("kb", 10**3),
        ("b", 1),
    ):
        if t.endswith(suffix):
            return int(float(t[: -len(suffix)]) * mult)
    return int(t)


def _model_args(p: argparse.ArgumentParser, required: bool) -> None:
    p.add_argument(
        "--model", required=required, help="model folder or hub id (or an adapter folder)"
    )
    p.add_argument("--adapter", default=None, help="LoRA adapter folder on top of --model")
    p.add_argument(
        "--max-model-len", type=int, default=4096, help="engine context length (default: 4096)"
    )


def register_serve(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Serve the selection API: OpenAI-compatible /v1/chat/completions and /v1/models, plus "
        "/v1/select, /v1/rank, /health and /metrics, and the comparison page at /ui, in front of "
        "an in-process vLLM engine or any OpenAI-compatible server."
    )
    _model_args(parser, required=True)
    parser.add_argument(
        "--m2fn", default=None, metavar="CKPT", help="M2FN checkpoint: fills the ctr fields"
    )
    parser.add_argument("--host", default="127.0.0.1", help="bind address (default: 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument(
        "--engine",
        default="local",
        metavar="local|URL",
        help="'local' runs vLLM in this process; a URL forwards to that OpenAI-compatible server",
    )
    parser.add_argument(
        "--api-key",
        default=None,
        help="require 'Authorization: Bearer KEY' (or env CREATIVE4U_API_KEY)",
    )
    parser.add_argument(
        "--served-model-name", default=_CFG.served_model_name, help="model name clients use"
    )
    parser.add_argument(
        "--upstream-model", default=None, help="model name at the URL engine (default: its first)"
    )
    parser.add_argument(
        "--upstream-api-key",
        default=None,
        help="key for the URL engine (or env CREATIVE4U_UPSTREAM_API_KEY)",
    )
    parser.add_argument(
        "--max-num-seqs",
        type=int,
        default=None,
        help="sequences the engine batches (local: vLLM's default; URL: the upstream's, which "
        "sizes admission control)",
    )
    parser.add_argument(
        "--lora-modules",
        nargs="+",
        default=None,
        metavar="NAME=PATH",
        help="more LoRA adapters of the same base, each served under its NAME (requests pick "
        "one with `model`; /v1/models lists them)",
    )
    v = parser.add_argument_group("local vLLM engine (GPU serving; the CPU defaults need none)")
    v.add_argument(
        "--tensor-parallel-size", type=int, default=None, help="GPUs one model is split over"
    )
    v.add_argument(
        "--gpu-memory-utilization",
        type=float,
        default=None,
        help="share of each GPU's memory vLLM may take (vLLM's default: 0.9)",
    )
    eager = v.add_mutually_exclusive_group()
    eager.add_argument(
        "--enforce-eager",
        action="store_true",
        help="skip vLLM's compilation (and CUDA graphs): a faster start, slower serving "
        "(on 2 CPU cores: 19 s less to start, 18%% fewer pairs/s; bench/results/engine_settings.md)",
    )
    eager.add_argument(
        "--compiled",
        action="store_true",
        help="compile (vLLM's default, and this server's): the opposite of --enforce-eager",
    )

    g = parser.add_argument_group("limits")
    g.add_argument(
        "--max-tokens", type=int, default=_CFG.default_max_tokens, help="default tokens to generate"
    )
    g.add_argument(
        "--max-tokens-limit",
        type=int,
        default=_LIMITS.max_tokens,
        help="largest max_tokens a request may ask",
    )
    g.add_argument(
        "--max-concurrency",
        type=int,
        default=_CFG.max_concurrency,
        help="requests worked on at once (default: the engine's batch / 2, both orders of a pair)",
    )
    g.add_argument(
        "--max-queue",
        type=int,
        default=_CFG.max_queue,
        help="requests allowed to wait, then 429 (default: 4 full batches of requests)",
    )
    g.add_argument(
        "--request-timeout",
        type=float,
        default=_CFG.request_timeout_s,
        help="seconds per request (then 504)",
    )
    g.add_argument("--max-image-bytes", type=_int_bytes, default=_LIMITS.max_image_bytes)
    g.add_argument("--max-image-pixels", type=int, default=_LIMITS.max_image_pixels)
    g.add_argument("--max-body-bytes", type=_int_bytes, default=_LIMITS.max_body_bytes)
    g.add_argument(
        "--max-creatives",
        type=int,
        default=_LIMITS.max_creatives,
        help="creatives per rank request",
    )
    g.add_argument(
        "--max-text-chars", type=int, default=_LIMITS.max_text_chars, help="query and title length"
    )
    g.add_argument(
        "--max-prompt-chars", type=int, default=_LIMITS.max_prompt_chars, help="chat text length"
    )
    g.add_argument(
        "--allow-url-host",
        action="append",
        metavar="HOST",
        help="fetch image URLs from this host (repeatable; '.example.com' for subdomains); off by default",
    )
    g.add_argument("--url-timeout", type=float, default=_CFG.url_timeout_s)
    g.add_argument(
        "--no-probe", action="store_true", help="never read P(A) by appending <answer> to an output"
    )
    parser.add_argument(
        "--no-ui", action="store_true", help="do not mount the comparison page at /ui"
    )
    parser.add_argument(
        "--log-level", default="info", choices=["critical", "error", "warning", "info", "debug"]
    )
    parser.set_defaults(func=_run_serve)


def _client_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--query", default="", help="the user's search query")
    p.add_argument("--title", default="", help="the product title")
    where = p.add_mutually_exclusive_group(required=True)
    where.add_argument("--server", default=None, metavar="URL", help="a running creative4u serve")
    where.add_argument(
        "--model", default=None, help="run the model in this process (folder or hub id)"
    )
    p.add_argument("--adapter", default=None, help="LoRA adapter folder (with --model)")
    p.add_argument(
        "--max-model-len", type=int, default=4096, help="engine context length (with --model)"
    )
    p.add_argument(
        "--m2fn",
        default=None,
        metavar="CKPT",
        help="M2FN checkpoint: predicted CTRs next to the verdict (with --model; a server "
        "loads its own with `serve --m2fn`)",
    )
    p.add_argument(
        "--api-key", default=None, help="API key for --server (or env CREATIVE4U_API_KEY)"
    )
    p.add_argument("--max-tokens", type=int, default=None, help="tokens to generate per order")
    p.add_argument("--single-order", action="store_true", help="judge (A,B) only, not also (B,A)")
    p.add_argument("--no-probe", action="store_true", help="never read P(A) by appending <answer>")
    p.add_argument("--timeout", type=float, default=600.0, help="seconds to wait for the server")
    p.add_argument("--json", action="store_true", help="print the full JSON result")


def _batch_args(p: argparse.ArgumentParser, what: str) -> None:
    p.add_argument("--out", default=None, help=f"{what} results (.jsonl, or .parquet)")
    p.add_argument(
        "--chunk",
        type=int,
        default=128,
        help="batch: pairs (or groups, a sixteenth of it) submitted to the engine at a time and "
        "saved together (default: 128)",
    )
    p.add_argument(
        "--images",
        default=None,
        metavar="DIR",
        help="folder the image paths are relative to (default: the input file's folder)",
    )


def register_select(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("image_a", nargs="?", help="creative A (image file)")
    parser.add_argument("image_b", nargs="?", help="creative B (image file)")
    parser.add_argument(
        "--pairs",
        default=None,
        metavar="FILE",
        help="batch: a .csv/.jsonl/.parquet of pairs (image_a, image_b, query, title, id); "
        "resumable, bad rows reported in --out",
    )
    _batch_args(parser, "batch")
    _client_args(parser)
    parser.set_defaults(func=_run_select)


def register_rank(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("images", nargs="*", help="two or more creatives (image files)")
    parser.add_argument(
        "--groups",
        default=None,
        metavar="FILE_OR_DIR",
        help="batch: a folder with one sub-folder of creatives per product (product.json for "
        "its query and title), or a .csv/.jsonl/.parquet of (group, image, id, query, title)",
    )
    parser.add_argument(
        "--method",
        choices=["auto", "full", "adaptive"],
        default="auto",
        help="every pair, adaptive rounds, or auto: every pair up to 8 creatives (default)",
    )
    _batch_args(parser, "one line per group")
    _client_args(parser)
    parser.set_defaults(func=_run_rank)


def _run_serve(args: argparse.Namespace) -> int:
    from serve.server import run

    return run(args)


def _run_select(args: argparse.Namespace) -> int:
    from serve.client import run_select

    return run_select(args)


def _run_rank(args: argparse.Namespace) -> int:
    from serve.client import run_rank

    return run_rank(args)
