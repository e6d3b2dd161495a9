"""One error shape for every failure the API reports: OpenAI's `{"error": {...}}`.

Clients of an OpenAI-compatible server already know how to read that shape (the `openai` SDK
turns it into typed exceptions), so our own endpoints use it too. Every error names the request
field it is about (`param`) when there is one, so a caller can fix the request without reading
server logs.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from creative4u.errors import ERROR_TYPES, APIError, error_body

__all__ = ["ERROR_TYPES", "APIError", "error_body", "error_response", "install_error_handlers"]

logger = logging.getLogger("creative4u.serve")


def loc_to_param(loc: tuple[Any, ...] | list[Any]) -> str | None:
    """("body", "creatives", 0, "image") -> "creatives[0].image"."""
    parts = list(loc)
    if parts and parts[0] in ("body", "query", "path", "header"):
        parts = parts[1:]  # where FastAPI found it, not a field name
    out = ""
    for p in parts:
        if isinstance(p, int):
            out += f"[{p}]"
        else:
            out += f".{p}" if out else str(p)
    return out or None


def error_response(exc: APIError) -> JSONResponse:
    return JSONResponse(exc.body(), status_code=exc.status, headers=exc.headers)


def validation_error(exc: RequestValidationError) -> APIError:
    """Pydantic's list of errors as one readable 400 that names the first field at fault."""
    errors = exc.errors()
    if not errors:
        return APIError(400, "invalid request body")
    messages = []
    for e in errors[:5]:
        param = loc_to_param(e.get("loc", ()))
        msg = str(e.get("msg", "invalid value"))
        if e.get("type") == "json_invalid":
            messages.append(f"request body is not valid JSON: {e.get('ctx', {}).get('error', msg)}")
        elif e.get("type") == "missing":
            messages.append(f"{param}: required field is missing")
        else:
            messages.append(f"{param}: {msg}" if param else msg)
    param = loc_to_param(errors[0].get("loc", ()))
    if errors[0].get("type") == "json_invalid":
        param = None
    return APIError(400, "; ".join(messages), param=param, code="invalid_value")


def install_error_handlers(app: FastAPI) -> None:
    """Route every error (ours, validation, routing) through the one error shape."""

    @app.exception_handler(APIError)
    async def _api_error(_: Request, exc: APIError) -> JSONResponse:
        return error_response(exc)

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        return error_response(validation_error(exc))

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, exc: Exception) -> JSONResponse:
        logger.exception("unhandled error", exc_info=exc)
        return error_response(APIError(500, "internal server error; see the server log"))

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed", 413: "payload_too_large"}.get(
            exc.status_code
        )
        return error_response(APIError(exc.status_code, str(exc.detail), code=code))
