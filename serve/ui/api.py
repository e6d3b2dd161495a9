"""The UI's view of the selection API: plain HTTP, so the same page works mounted in the server
and standalone against any URL.

Every failure becomes an `APIProblem` with a sentence a marketer can act on and, when the server
named one, the input that caused it (`param`, e.g. `creatives[1]`), so the page can show the
message next to that input instead of a stack trace.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx


class APIProblem(Exception):
    """A failed call, in words; `param` names the request field at fault, when known."""

    def __init__(self, message: str, param: str | None = None, status: int | None = None):
        super().__init__(message)
        self.message, self.param, self.status = message, param, status

    def creative_index(self) -> int | None:
        """`creatives[1]` or `creatives[1].image` -> 1: which uploaded creative was refused."""
        p = self.param or ""
        if not p.startswith("creatives["):
            return None
        try:
            return int(p[len("creatives[") : p.index("]")])
        except ValueError:
            return None


@dataclass
class SelectionAPI:
    """A running `creative4u serve` (or anything with the same endpoints) at `base_url`."""

    base_url: str
    api_key: str | None = None
    timeout_s: float = 600.0

    def __post_init__(self) -> None:
        self.base_url = self.base_url.rstrip("/")
        self._model: str | None = None

    # ---- plumbing ----------------------------------------------------------------------------

    def _headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}

    def _unreachable(self, e: httpx.HTTPError) -> APIProblem:
        if isinstance(e, httpx.TimeoutException):
            return APIProblem(
                f"The selection API at {self.base_url} did not answer within {self.timeout_s:g} s. "
                "It may be busy; try again in a moment."
            )
        return APIProblem(
            f"Cannot reach the selection API at {self.base_url}. Is the server running? "
            f"({type(e).__name__})"
        )

    @staticmethod
    def _problem(resp: httpx.Response) -> APIProblem:
        try:
            err = resp.json().get("error", {})
        except (ValueError, AttributeError):
            err = {}
        message = err.get("message") if isinstance(err, dict) else None
        param = err.get("param") if isinstance(err, dict) else None
        if resp.status_code == 401:
            message = f"The server refused the API key: {message or 'unauthorised'}."
        elif resp.status_code == 429:
            message = "The server is busy (too many requests waiting). Try again in a moment."
        elif not message:
            message = f"The server answered {resp.status_code} {resp.reason_phrase}."
        return APIProblem(message, param=param, status=resp.status_code)

    def _post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        try:
            resp = httpx.post(
                self.base_url + path, json=body, headers=self._headers(), timeout=self.timeout_s
            )
        except httpx.HTTPError as e:
            raise self._unreachable(e) from e
        if resp.status_code != 200:
            raise self._problem(resp)
        return resp.json()

    # ---- endpoints ---------------------------------------------------------------------------

    def model(self) -> str:
        """The served model name (chat requests must name it); asked once."""
        if self._model is None:
            try:
                resp = httpx.get(
                    self.base_url + "/v1/models", headers=self._headers(), timeout=30.0
                )
            except httpx.HTTPError as e:
                raise self._unreachable(e) from e
            if resp.status_code != 200:
                raise self._problem(resp)
            self._model = resp.json()["data"][0]["id"]
        return self._model

    def select(
        self, creatives: list[str], query: str, title: str, options: dict[str, Any]
    ) -> dict[str, Any]:
        return self._post(
            "/v1/select",
            {"creatives": creatives, "query": query, "title": title, "options": options},
        )

    def rank(
        self, creatives: list[dict[str, str]], query: str, title: str, options: dict[str, Any]
    ) -> dict[str, Any]:
        return self._post(
            "/v1/rank",
            {"creatives": creatives, "query": query, "title": title, "options": options},
        )

    def select_stream(
        self, creatives: list[str], query: str, title: str, options: dict[str, Any]
    ) -> Iterator[str | dict[str, Any]]:
        """`/v1/select` with `stream: true`: the (A, B) order's text piece by piece (`str`), then
        the selection (`dict`). One call, one generation per order: the text shown while the
        model writes is the text the decision reads."""
        body = {
            "creatives": creatives,
            "query": query,
            "title": title,
            "options": options,
            "stream": True,
        }
        try:
            with httpx.stream(
                "POST",
                self.base_url + "/v1/select",
                json=body,
                headers=self._headers(),
                timeout=self.timeout_s,
            ) as resp:
                if resp.status_code != 200:
                    resp.read()
                    raise self._problem(resp)
                for line in resp.iter_lines():
                    if not line.startswith("data:"):
                        continue
                    data = line[len("data:") :].strip()
                    if data == "[DONE]":
                        return
                    event = json.loads(data)
                    if "error" in event:
                        err = event["error"]
                        raise APIProblem(err.get("message", "selection failed"), err.get("param"))
                    if event.get("type") == "delta":
                        yield event["text"]
                    elif event.get("type") == "selection":
                        yield event["selection"]
        except httpx.HTTPError as e:
            raise self._unreachable(e) from e
