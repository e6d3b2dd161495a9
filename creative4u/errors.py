"""One error type for every failure a selection can meet, with the HTTP status it maps to.

Engines, the selector and the batch jobs raise `APIError`; the server turns it into OpenAI's
`{"error": {...}}` body (clients of an OpenAI-compatible server already read that shape), and the
CLI and the Python API show its message. Every error names the request field it is about
(`param`) when there is one, so a caller can fix the request without reading logs.
"""

from __future__ import annotations

from typing import Any

ERROR_TYPES: dict[int, str] = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    405: "invalid_request_error",
    413: "invalid_request_error",
    422: "invalid_request_error",
    429: "rate_limit_error",
    500: "server_error",
    502: "upstream_error",
    503: "server_error",
    504: "timeout_error",
}


class APIError(Exception):
    """A failure with its HTTP status, a message that says what to fix, and the field at fault."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        param: str | None = None,
        code: str | None = None,
        type: str | None = None,
        headers: dict[str, str] | None = None,
    ):
        super().__init__(message)
        self.status = status
        self.message = message
        self.param = param
        self.code = code
        self.type = type or ERROR_TYPES.get(status, "invalid_request_error")
        self.headers = headers

    def body(self) -> dict[str, Any]:
        return error_body(self.message, self.type, self.param, self.code)


def error_body(
    message: str, type: str, param: str | None = None, code: str | None = None
) -> dict[str, Any]:
    return {"error": {"message": message, "type": type, "param": param, "code": code}}
