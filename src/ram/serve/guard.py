"""What keeps other sites out of the page: the Host names a loopback server answers, the POSTs it refuses before any
route sees them, and the headers every answer carries.

A page on another site, open in the same browser, can send requests to 127.0.0.1. Three ways are closed here:
  - DNS rebinding: its own name re-pointed at 127.0.0.1, it reads the answers too, with its name in the Host header.
    A server on a loopback address answers only this machine's names (Starlette's TrustedHostMiddleware).
  - A cross-origin POST: the browser sends it with the page's Origin, and only hides the answer. A POST whose Origin
    is not this server's is refused (403) before any work.
  - A POST any page may send without asking the server first (a CORS "simple request": text/plain or form data), as a
    browser that sends no Origin would: refused (415). The page sends images as application/octet-stream and moves
    as application/json, which a browser asks the server about first (and is refused, having no OPTIONS route).
Answers say `nosniff` (a browser reads them as the type they say, never guessing), and a page's CSP lets it load only
from this server and never be framed by another site.
"""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit

from starlette.datastructures import Headers, MutableHeaders
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

# The page and everything it loads come from this server, and no other site may frame it.
CSP = ("default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; connect-src 'self'; "
       "frame-ancestors 'none'")
SIMPLE_TYPES = ("text/plain", "application/x-www-form-urlencoded", "multipart/form-data")  # CORS-safelisted


def allowed_hosts(host: str) -> list[str]:
    """The Host names a server listening on `host` answers: on a loopback address, this machine's own (localhost,
    127.0.0.1, [::1] and `host`); on any other, any name, as people reach it by names it cannot know."""
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = host == "localhost"
    if not loopback:
        return ["*"]
    return sorted({"localhost", "127.0.0.1", "[::1]", f"[{host}]" if ":" in host else host})


class SameOrigin:
    """ASGI middleware: refuses a POST (any method but GET and HEAD) whose Origin is not the server's own (403), or
    whose Content-Type is one any page may send unasked (415)."""

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] not in ("GET", "HEAD"):
            refusal = _refusal(Headers(scope=scope))
            if refusal is not None:
                status, message = refusal
                await JSONResponse({"error": message}, status_code=status)(scope, receive, send)
                return
        await self.app(scope, receive, send)


def _refusal(headers: Headers) -> tuple[int, str] | None:
    origin = headers.get("origin")
    if origin is not None and urlsplit(origin).netloc.lower() != headers.get("host", "").lower():
        return 403, f"Origin {origin!r}: a page of another site may not use this server"
    kind = headers.get("content-type", "").split(";")[0].strip().lower()
    if kind in SIMPLE_TYPES:
        return 415, (f"Content-Type {kind!r} is refused, as a page of any site may send it unasked: send an image as "
                     "application/octet-stream, a move as application/json")
    return None


MAX_HEAD = 16 * 1024  # bytes of a request's target and headers (a browser sends localhost the cookies of every app
# served there)


class HeadLimit:
    """ASGI middleware: a request whose target and headers pass MAX_HEAD bytes is refused (431) before any route sees
    it. The server bounds what it buffers of a request not yet whole (h11's max_incomplete_event_size), but a 20 KB
    request line sent in one packet arrives whole and passed."""

    def __init__(self, app: ASGIApp, *, limit: int = MAX_HEAD):
        self.app, self.limit = app, limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            size = len(scope.get("raw_path") or b"") + len(scope.get("query_string") or b"") + sum(
                len(name) + len(value) for name, value in scope["headers"])
            if size > self.limit:
                message = f"the request's target and headers take {size:,} bytes; at most {self.limit:,} are read"
                await JSONResponse({"error": message}, status_code=431, headers={"Connection": "close"})(
                    scope, receive, send)
                return
        await self.app(scope, receive, send)


class SecurityHeaders:
    """ASGI middleware: `X-Content-Type-Options: nosniff` on every answer, and the CSP on every HTML one."""

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                headers["X-Content-Type-Options"] = "nosniff"
                if headers.get("content-type", "").startswith("text/html"):
                    headers["Content-Security-Policy"] = CSP
            await send(message)

        await self.app(scope, receive, send_with_headers)
