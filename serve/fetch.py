"""Fetch creatives from http(s) URLs without turning the server into a proxy into its own network.

URL fetching is off unless hosts are allow-listed. For an allowed host, every address the name
resolves to is checked, and the connection is made to the checked address itself (the check sits
in the connection layer), so a DNS answer that changes between check and connect cannot reach a
private, loopback or link-local address. Redirects are followed a few times, each one checked
again; proxies from the environment are ignored, since they would bypass the address check.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Awaitable, Callable, Iterable
from typing import Any
from urllib.parse import urljoin, urlsplit

import anyio
import httpcore
import httpx

from serve.errors import APIError

Resolver = Callable[[str, int], Awaitable[list[str]]]
MAX_REDIRECTS = 3


class AddressRefused(Exception):
    """A URL's host resolves to an address the server must not connect to."""


def address_refusal(ip: str) -> str | None:
    """Why an address may not be fetched from (None when it is a public unicast address)."""
    addr = ipaddress.ip_address(ip.split("%", 1)[0])
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        addr = addr.ipv4_mapped
    for attr, why in (
        ("is_loopback", "loopback"),
        ("is_link_local", "link-local"),
        ("is_private", "private"),
        ("is_multicast", "multicast"),
        ("is_unspecified", "unspecified"),
        ("is_reserved", "reserved"),
    ):
        if getattr(addr, attr):
            return why
    if not addr.is_global:
        return "non-global"
    return None


async def system_resolver(host: str, port: int) -> list[str]:
    infos = await anyio.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def host_allowed(host: str, allow: Iterable[str]) -> bool:
    """Exact host names, or `.example.com` / `*.example.com` for a domain and its subdomains."""
    host = host.lower().rstrip(".")
    for entry in allow:
        entry = entry.lower().rstrip(".")
        if entry.startswith("*."):
            entry = entry[1:]
        if entry.startswith("."):
            if host == entry[1:] or host.endswith(entry):
                return True
        elif host == entry:
            return True
    return False


class _GuardedBackend(httpcore.AsyncNetworkBackend):
    """Resolves, checks and connects to the checked address (TLS still verifies the host name)."""

    def __init__(self, resolver: Resolver):
        self._inner = httpcore.AnyIOBackend()
        self._resolve = resolver

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        try:
            ips = await self._resolve(host, port)
        except OSError as e:
            raise AddressRefused(f"cannot resolve host {host!r}: {e}") from e
        if not ips:
            raise AddressRefused(f"host {host!r} has no address")
        for ip in ips:
            why = address_refusal(ip)
            if why:
                raise AddressRefused(f"host {host!r} resolves to a {why} address ({ip})")
        return await self._inner.connect_tcp(
            ips[0],
            port,
            timeout=timeout,
            local_address=local_address,
            socket_options=socket_options,
        )

    async def connect_unix_socket(self, *args: Any, **kwargs: Any) -> httpcore.AsyncNetworkStream:
        raise AddressRefused("unix sockets are not fetched from")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


class URLFetcher:
    """Downloads one image from an allow-listed host, bounded in size and time."""

    def __init__(
        self,
        allow_hosts: Iterable[str],
        max_bytes: int,
        timeout_s: float = 10.0,
        resolver: Resolver | None = None,
    ):
        self.allow_hosts = tuple(h for h in allow_hosts if h)
        self.max_bytes, self.timeout_s = max_bytes, timeout_s
        transport = httpx.AsyncHTTPTransport(trust_env=False)
        # Swap in a pool whose connections go through the address check.
        transport._pool = httpcore.AsyncConnectionPool(
            ssl_context=httpx.create_ssl_context(trust_env=False),
            network_backend=_GuardedBackend(resolver or system_resolver),
            max_connections=16,
        )
        self._client = httpx.AsyncClient(
            transport=transport,
            trust_env=False,
            follow_redirects=False,
            timeout=httpx.Timeout(timeout_s),
            headers={"User-Agent": "creative4u-serve/1", "Accept": "image/*"},
        )

    def check(self, url: str, param: str) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https"):
            raise APIError(400, f"URL scheme {parts.scheme!r} is not fetched", param=param)
        if parts.username or parts.password:
            raise APIError(400, "URLs with credentials are not fetched", param=param)
        host = parts.hostname or ""
        if not host:
            raise APIError(400, "URL has no host", param=param)
        if not host_allowed(host, self.allow_hosts):
            raise APIError(
                400,
                f"host {host!r} is not on this server's URL allow-list; send the image as a "
                "data URL or base64",
                param=param,
                code="url_not_allowed",
            )

    async def fetch(self, url: str, param: str) -> bytes:
        for _ in range(MAX_REDIRECTS + 1):
            self.check(url, param)
            try:
                async with self._client.stream("GET", url) as resp:
                    if resp.is_redirect and "location" in resp.headers:
                        url = urljoin(url, resp.headers["location"])
                        continue
                    if resp.status_code != 200:
                        raise APIError(
                            400, f"fetching the URL gave HTTP {resp.status_code}", param=param
                        )
                    declared = resp.headers.get("content-length")
                    if declared and declared.isdigit() and int(declared) > self.max_bytes:
                        raise _too_large(int(declared), self.max_bytes, param)
                    data = bytearray()
                    async for chunk in resp.aiter_bytes():
                        data += chunk
                        if len(data) > self.max_bytes:
                            raise _too_large(len(data), self.max_bytes, param)
                    return bytes(data)
            except AddressRefused as e:
                raise APIError(400, f"URL refused: {e}", param=param, code="url_refused") from e
            except httpx.TimeoutException as e:
                raise APIError(
                    400, f"fetching the URL timed out after {self.timeout_s}s", param=param
                ) from e
            except httpx.HTTPError as e:
                raise APIError(400, f"fetching the URL failed: {e}", param=param) from e
        raise APIError(400, f"URL redirected more than {MAX_REDIRECTS} times", param=param)

    async def aclose(self) -> None:
        await self._client.aclose()


def _too_large(size: int, limit: int, param: str) -> APIError:
    return APIError(
        413,
        f"image is {size} bytes or more, more than the limit of {limit}",
        param=param,
        code="image_too_large",
    )
