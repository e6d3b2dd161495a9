"""`creative4u ui --server URL`: the comparison page on its own, against any running API.

Only argparse is imported at registration: `creative4u --help` stays fast; Gradio is imported
when the command runs.
"""

from __future__ import annotations

import argparse
import logging
import os

log = logging.getLogger("creative4u.ui")


def register(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Run the side-by-side comparison page against a running selection API (creative4u serve, "
        "or anything with the same /v1/select, /v1/rank and /v1/chat/completions endpoints). "
        "`creative4u serve` already mounts this page at /ui."
    )
    parser.add_argument(
        "--server",
        required=True,
        metavar="URL",
        help="the selection API, e.g. http://127.0.0.1:8000",
    )
    parser.add_argument("--host", default="127.0.0.1", help="bind address (default: 127.0.0.1)")
    parser.add_argument("--port", type=int, default=7860, help="port (default: 7860)")
    parser.add_argument(
        "--api-key",
        default=None,
        help="the API's key (or env CREATIVE4U_API_KEY); the page then asks for it at sign-in",
    )
    parser.add_argument(
        "--timeout", type=float, default=600.0, help="seconds to wait for the API per request"
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from serve.ui import page_settings
    from serve.ui.api import SelectionAPI
    from serve.ui.app import build_ui

    key = args.api_key or os.environ.get("CREATIVE4U_API_KEY") or None
    page = build_ui(SelectionAPI(args.server, key, args.timeout))
    if key is None and args.host not in ("127.0.0.1", "localhost", "::1"):
        log.warning("the page on %s calls %s without an API key", args.host, args.server)
    page.blocks.queue(default_concurrency_limit=4).launch(
        server_name=args.host,
        server_port=args.port,
        quiet=True,
        **page_settings(page, key),
    )
    return 0
