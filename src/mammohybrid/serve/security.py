"""Who ``mammohybrid serve`` answers: only its own page, in the browser of whoever holds the
address it printed.

The server listens on this machine, but every web site the user has open can make the browser
send requests to it. Three checks, in this order, before any work (:class:`AccessGuard`):

1. **Host** (DNS rebinding): the ``Host`` header must name the server by a name it was started
   for (``127.0.0.1``, ``localhost``, ``[::1]``, the ``--host`` value and every
   ``--allow-host``). A foreign domain re-pointed to 127.0.0.1 carries its own name.
2. **Origin** (cross-site requests): every request but following a link to the page (a
   ``GET`` of the page without ``Origin``) is refused when its ``Origin``, ``Referer`` or
   ``Sec-Fetch-Site`` says it comes from another origin: a ``POST`` from a form or script of
   another site (a form needs no CORS pre-flight), any fetch of the API from elsewhere.
3. **Token**: a random one by default, printed once in the address the command shows (as
   Jupyter does). Loading the page with ``?token=`` sets it as a cookie (``HttpOnly``,
   ``SameSite=Strict``, named after the port) and redirects to the bare address, so the token
   leaves the address bar; every later request carries the cookie, or an
   ``Authorization: Bearer TOKEN`` header (scripts, ``curl``).

Every answer, refusals included, carries :func:`security_headers`: a Content-Security-Policy
that lets the page run only its own inline script and style (by their SHA-256), fetch only its
own origin and show only ``data:`` images; ``nosniff``; no referrer; no framing.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

from starlette.datastructures import Headers
from starlette.requests import cookie_parser
from starlette.responses import JSONResponse, PlainTextResponse, RedirectResponse

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

# Names of this machine every server answers to (IPv6 addresses without their brackets).
LOCAL_NAMES = ("127.0.0.1", "localhost", "::1")
TOKEN_PARAMETER = "token"
API_PREFIX = "/api/"
# Sec-Fetch-Site values of a request the page itself, or the user's address bar, made.
OWN_FETCH_SITES = ("same-origin", "none")
_DEFAULT_PORTS = {"http": 80, "https": 443}


def new_token() -> str:
    """A fresh random access token (192 bits, hexadecimal like Jupyter's)."""
    return secrets.token_hex(24)


def host_name(host: str) -> str:
    """The name in a ``Host`` header or ``--host`` value, without port and IPv6 brackets,
    lower-cased (``[::1]:8000`` -> ``::1``)."""
    host = host.strip().lower()
    if host.startswith("["):
        return host[1:].split("]", 1)[0]
    if host.count(":") == 1:  # name:port (a bare IPv6 address has several colons)
        return host.split(":", 1)[0]
    return host


@dataclass(frozen=True)
class AccessPolicy:
    """What :class:`AccessGuard` lets through: requests naming one of ``hosts``, from the
    server's own origin, carrying ``token`` (None: no token asked, ``--no-token``)."""

    hosts: frozenset[str]
    token: str | None

    @classmethod
    def for_server(cls, host: str, allowed_hosts: Iterable[str] = (),
                   token: str | None = None) -> AccessPolicy:
        """The policy of a server listening on ``host``: this machine's names, ``host``
        itself and ``allowed_hosts``."""
        names = {host_name(name) for name in (*LOCAL_NAMES, host, *allowed_hosts)}
        return cls(frozenset(names), token)

    def address(self, host: str, port: int) -> str:
        """The address to print: the page on ``host:port``, with the token."""
        shown = f"[{host}]" if ":" in host else host
        query = "?" + urlencode({TOKEN_PARAMETER: self.token}) if self.token is not None else ""
        return f"http://{shown}:{port}/{query}"

    def cookie_name(self, port: int) -> str:
        """The token's cookie, one per port: cookies ignore ports, and two servers on one
        machine must not overwrite each other's."""
        return f"mammohybrid-token-{port}"

    def token_matches(self, offered: str | None) -> bool:
        return self.token is None or (
            offered is not None and hmac.compare_digest(offered.encode(), self.token.encode()))


class AccessGuard:
    """ASGI middleware: the three checks of the module doc; a refused request gets 403 (JSON
    ``{"error": ...}`` on the API, text elsewhere) and its body is never read."""

    def __init__(self, app: ASGIApp, policy: AccessPolicy) -> None:
        self.app = app
        self.policy = policy

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        path = scope["path"]
        refusal = self._refusal(scope, headers)
        if refusal is not None:
            response_class = JSONResponse if path.startswith(API_PREFIX) else PlainTextResponse
            body = {"error": refusal} if response_class is JSONResponse else refusal + "\n"
            await response_class(body, status_code=403)(scope, receive, send)
            return
        if self.policy.token is not None and _address_token(scope) is not None:
            await self._token_to_cookie(scope, receive, send)
            return
        await self.app(scope, receive, send)

    def _refusal(self, scope: Scope, headers: Headers) -> str | None:
        """Why the request is refused, or None."""
        host = headers.get("host", "")
        if host_name(host) not in self.policy.hosts:
            return (f"this server does not answer to the host name '{host}' (start it with "
                    "--allow-host NAME to add a name)")
        own = _origin_key(f"{scope['scheme']}://{host}")
        # Following a link to the page from elsewhere is fine (the token still decides);
        # a script's request, or a post, from elsewhere is not.
        navigation = scope["method"] in ("GET", "HEAD") and "origin" not in headers \
            and not scope["path"].startswith(API_PREFIX)
        if not navigation:
            foreign = _foreign_source(headers, own)
            if foreign is not None:
                return f"cross-origin request refused ({foreign})"
        if not self.policy.token_matches(self._offered_token(scope, headers)):
            return ("missing or wrong access token: open the address mammohybrid serve "
                    "printed when it started (with its ?token=...), or send the header "
                    "'Authorization: Bearer TOKEN'")
        return None

    def _offered_token(self, scope: Scope, headers: Headers) -> str | None:
        authorization = headers.get("authorization", "")
        scheme, _, credentials = authorization.partition(" ")
        if scheme.lower() == "bearer" and credentials.strip():
            return credentials.strip()
        in_address = _address_token(scope)
        if in_address is not None:
            return in_address
        cookies = cookie_parser(headers.get("cookie", ""))
        return cookies.get(self.policy.cookie_name(_port(scope)))

    async def _token_to_cookie(self, scope: Scope, receive: Receive, send: Send) -> None:
        """The page loaded with a right ``?token=``: keep it as a cookie, drop it from the
        address."""
        response = RedirectResponse("/", status_code=303)
        response.set_cookie(self.policy.cookie_name(_port(scope)), str(self.policy.token),
                            httponly=True, samesite="strict", path="/")
        await response(scope, receive, send)


def _address_token(scope: Scope) -> str | None:
    """The ``?token=`` of a page load (the address the command printed), or None."""
    if scope["path"] != "/":
        return None
    values = parse_qs(scope.get("query_string", b"").decode("latin-1")).get(TOKEN_PARAMETER)
    return values[-1] if values else None


def _port(scope: Scope) -> int:
    server = scope.get("server") or ("", _DEFAULT_PORTS.get(scope["scheme"], 80))
    return int(server[1] or 0)


def _origin_key(url: str) -> tuple[str, str, int] | None:
    """(scheme, host, port) of a URL, the default port filled in; None for what is no URL
    of a web origin (``null``, ``data:``, garbage)."""
    try:
        parts = urlsplit(url.strip().lower())
        port = parts.port or _DEFAULT_PORTS.get(parts.scheme)
    except ValueError:
        return None
    if not parts.hostname or port is None:
        return None
    return parts.scheme, parts.hostname, port


def _foreign_source(headers: Headers, own: tuple[str, str, int] | None) -> str | None:
    """What says the request came from another origin than ``own``, or None. Browsers send
    ``Origin`` with every POST and cross-origin fetch, ``Sec-Fetch-Site`` with every request;
    clients such as ``curl`` send neither, and the token alone decides for them."""
    origin = headers.get("origin")
    if origin is not None and _origin_key(origin) != own:
        return f"Origin: {origin}"
    referer = headers.get("referer")
    if referer and _origin_key(referer) != own:
        return f"Referer: {referer}"
    site = headers.get("sec-fetch-site")
    if site is not None and site.lower() not in OWN_FETCH_SITES:
        return f"Sec-Fetch-Site: {site}"
    return None


# ------------------------------------------------------------------------------- headers
def content_security_policy(page: str) -> str:
    """The page's Content-Security-Policy: its own inline ``<script>`` and ``<style>`` (by
    their SHA-256) and nothing else runs or styles it; it fetches only its own origin and
    shows only ``data:`` images; no one may frame it, and it posts no form anywhere."""
    def hashes(tag: str) -> str:
        bodies = re.findall(rf"<{tag}>(.*?)</{tag}>", page, re.DOTALL)
        return " ".join(
            "'sha256-" + base64.b64encode(hashlib.sha256(body.encode()).digest()).decode() + "'"
            for body in bodies) or "'none'"

    return "; ".join([
        "default-src 'none'",
        f"script-src {hashes('script')}",
        f"style-src {hashes('style')}",
        "img-src data:",
        "connect-src 'self'",
        "base-uri 'none'",
        "form-action 'none'",
        "frame-ancestors 'none'",
    ])


def security_headers(page: str) -> dict[str, str]:
    """The headers every answer of the server carries."""
    return {
        "Content-Security-Policy": content_security_policy(page),
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
        "X-Frame-Options": "DENY",
        # Answers hold the uploaded images and their results: none is kept in a cache.
        "Cache-Control": "no-store",
    }


class SecurityHeaders:
    """ASGI middleware adding ``headers`` to every response (those the application sets
    itself are kept)."""

    def __init__(self, app: ASGIApp, headers: dict[str, str]) -> None:
        self.app = app
        self.headers = [(name.lower().encode("latin-1"), value.encode("latin-1"))
                        for name, value in headers.items()]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                present = {name.lower() for name, _ in message.get("headers", [])}
                message["headers"] = [*message.get("headers", []),
                                      *((name, value) for name, value in self.headers
                                        if name not in present)]
            await send(message)

        await self.app(scope, receive, send_with_headers)
