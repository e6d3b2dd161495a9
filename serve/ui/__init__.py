"""The Gradio comparison UI: mounted at `/ui` by `creative4u serve`, or run on its own against
any running selection API by `creative4u ui --server URL`.

Whenever the page holds an API key it asks for that key at sign-in, so the page never opens
to anyone the API itself would refuse.
"""

from __future__ import annotations

import hmac
import os
from collections.abc import Callable
from typing import Any

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

CSS_THEME_FONTS = ["ui-sans-serif", "system-ui", "sans-serif"]
MONO_FONTS = ["ui-monospace", "monospace"]
AUTH_MESSAGE = (
    "This server requires an API key: sign in with any user name and the key as password."
)


def key_auth(api_key: str | None) -> Callable[[str, str], bool] | None:
    """Sign-in that accepts the API key as the password (any user name), or none without a key."""
    if not api_key:
        return None

    def check(_user: str, password: str) -> bool:
        return hmac.compare_digest((password or "").encode(), api_key.encode())

    return check


def page_style() -> dict[str, Any]:
    """Theme and CSS, given at mount or launch. System fonts: the page loads nothing from the
    internet, so it works offline and behind firewalls."""
    import gradio as gr

    from serve.ui.app import CSS

    theme = gr.themes.Default(font=CSS_THEME_FONTS, font_mono=MONO_FONTS)
    return {"theme": theme, "css": CSS}


def page_settings(page: Any, api_key: str | None) -> dict[str, Any]:
    """What mounting and standalone launching both give Gradio: sign-in with the API key, the
    example files, no tracebacks on the page, theme and CSS."""
    return {
        "auth": key_auth(api_key),
        "auth_message": AUTH_MESSAGE,
        "allowed_paths": page.allowed_paths,
        "show_error": False,
        "ssr_mode": False,
        "footer_links": ["api"],
        **page_style(),
    }


def mount_ui(
    app: Any,
    api_url: str,
    api_key: str | None = None,
    limits: Any = None,
    timeout_s: float = 600.0,
    path: str = "/ui",
) -> Any:
    """Mount the page on a FastAPI `app` at `path`; it calls the API at `api_url` over HTTP."""
    import gradio as gr

    from serve.ui.api import SelectionAPI
    from serve.ui.app import build_ui

    page = build_ui(SelectionAPI(api_url, api_key, timeout_s), limits)
    return gr.mount_gradio_app(
        app,
        page.blocks.queue(default_concurrency_limit=4),
        path=path,
        # Gradio derives file URLs of some events from the request path, which drops the mount
        # point (example images would 404); naming it keeps them right. GRADIO_ROOT_PATH still
        # wins for a page behind a proxy at another public path.
        root_path=os.environ.get("GRADIO_ROOT_PATH") or path,
        **page_settings(page, api_key),
    )
