"""How `ram serve` runs the app: uvicorn, with bounds on what a client may hold.

uvicorn bounds a request's headers in size (h11's limit) and closes a connection idle after an answer
(`timeout_keep_alive`), but sets no deadline for a request's headers to arrive: 300 connections that sent half their
headers stayed open indefinitely, and a client that sends a byte now and then resets the idle timer every time.
`Protocol` adds that deadline. The deadline for a body is the app's (`create_app(body_timeout=)`, a 408), and
`limit_concurrency` bounds the connections and requests at once (uvicorn answers 503 beyond it).
"""

from __future__ import annotations

import functools

import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

HEADER_TIMEOUT = 10.0  # seconds to send a request's line and headers, from connecting or from the last answer
KEEP_ALIVE = 5  # seconds an idle connection is kept after an answer (uvicorn's default)
MAX_CONNECTIONS = 64  # connections and requests at once: a page open in a few tabs uses a handful
MAX_HEADERS = 16 * 1024  # bytes of a request's line and headers (h11's default: a browser sends localhost the
# cookies of every app served there)


class Protocol(H11Protocol):
    """uvicorn's HTTP/1.1 protocol, with a deadline for a request's headers: a connection on which no request has
    begun `header_timeout` seconds after it was made, or after its last answer, is closed as uvicorn closes an idle
    one. A request that has begun (its headers are in) is the app's to time, however long it runs."""

    def __init__(self, *args, header_timeout: float, **kwargs):
        super().__init__(*args, **kwargs)
        self.header_timeout = header_timeout

    def connection_made(self, transport) -> None:
        super().connection_made(transport)
        self._expect_request()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._expect_request()

    def _expect_request(self) -> None:
        self.loop.call_later(self.header_timeout, self._request_due, self.cycle)

    def _request_due(self, cycle) -> None:
        """Close the connection if no request has begun since `cycle` (None before the first) was answered."""
        if self.cycle is cycle and (cycle is None or cycle.response_complete):
            self.timeout_keep_alive_handler()  # a no-op on a connection already closing


def config(app, *, header_timeout: float = HEADER_TIMEOUT, max_connections: int = MAX_CONNECTIONS) -> uvicorn.Config:
    """The uvicorn config `ram serve` runs `app` with: the limits above, HTTP/1.1 through h11 (no WebSockets, which
    the page does not use), and only warnings and errors logged."""
    return uvicorn.Config(app, http=functools.partial(Protocol, header_timeout=header_timeout), ws="none",
                          timeout_keep_alive=KEEP_ALIVE, limit_concurrency=max_connections,
                          h11_max_incomplete_event_size=MAX_HEADERS, log_level="warning")
