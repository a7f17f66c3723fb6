"""How `ram serve` runs the app: uvicorn, with bounds on what a client may hold.

uvicorn bounds a request's headers in size (h11's limit) and closes a connection idle after an answer
(`timeout_keep_alive`), but sets no deadline for a request's headers to arrive: 300 connections that sent half their
headers stayed open indefinitely, and a client that sends a byte now and then resets the idle timer every time. Nor
does it bound how long an answer may wait for a client that does not read it. `Protocol` adds both deadlines. The
deadline for a body is the app's (`create_app(body_timeout=)`, a 408), and `limit_concurrency` bounds the connections
and requests at once (uvicorn answers 503 beyond it).
"""

from __future__ import annotations

import contextlib
import functools
import socket

import h11
import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

from .guard import MAX_HEAD

HEADER_TIMEOUT = 10.0  # seconds to send a request's line and headers, from connecting or from the last answer
WRITE_TIMEOUT = 10.0  # seconds an answer may wait for its client to read on; a page's answer is read in milliseconds
MAX_UNSENT = 1024 * 1024  # bytes of answers a connection may hold unsent (the largest answer, a game, is ~50 KB)
SEND_BUFFER = 256 * 1024  # the socket's send buffer (Linux doubles it); left alone it grows to megabytes on loopback
KEEP_ALIVE = 5  # seconds an idle connection is kept after an answer (uvicorn's default)
MAX_CONNECTIONS = 64  # connections and requests at once: a page open in a few tabs uses a handful
MAX_HEADERS = MAX_HEAD  # bytes of a request's line and headers buffered before they are whole; a whole request's
# are bounded by the app (`guard.HeadLimit`)
NOSNIFF = (b"x-content-type-options", b"nosniff")


class Protocol(H11Protocol):
    """uvicorn's HTTP/1.1 protocol, with
      - a deadline for a request's headers: a connection on which no request has begun `header_timeout` seconds after
        it was made, or after its last answer, is closed as uvicorn closes an idle one. A request that has begun (its
        headers are in) is the app's to time, however long it runs.
      - a deadline for a client to read: answers whose writing has waited `write_timeout` seconds for the client to
        read on, or more than `max_unsent` bytes of answers not yet sent, end the connection. 64 clients that
        pipelined requests and never read their answers held every connection, and everyone else got 503, for as
        long as they stayed.
      - nosniff on the 400 that uvicorn sends itself for a request h11 cannot parse.
    """

    def __init__(self, *args, header_timeout: float, write_timeout: float = WRITE_TIMEOUT,
                 max_unsent: int = MAX_UNSENT, **kwargs):
        super().__init__(*args, **kwargs)
        self.header_timeout, self.write_timeout, self.max_unsent = header_timeout, write_timeout, max_unsent
        self._stalled = None  # the timer of a write waiting for the client to read

    def connection_made(self, transport) -> None:
        super().connection_made(transport)
        sock = transport.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SEND_BUFFER)
        self._expect_request()

    def pause_writing(self) -> None:
        """The transport holds more than its high-water mark of unsent bytes: the client reads slower than answers
        come."""
        super().pause_writing()
        if self.transport.get_write_buffer_size() > self.max_unsent:
            self.transport.abort()
        elif self._stalled is None:
            self._stalled = self.loop.call_later(self.write_timeout, self.transport.abort)

    def resume_writing(self) -> None:
        super().resume_writing()
        if self._stalled is not None:
            self._stalled.cancel()
            self._stalled = None

    def connection_lost(self, exc) -> None:
        if self._stalled is not None:
            self._stalled.cancel()
            self._stalled = None
        super().connection_lost(exc)

    def send_400_response(self, msg: str) -> None:
        """uvicorn's own 400, with nosniff as every answer of the app has it."""
        output = self.conn.send(h11.Response(status_code=400, reason=b"Bad Request", headers=[
            (b"content-type", b"text/plain; charset=utf-8"), (b"connection", b"close"), NOSNIFF]))
        output += self.conn.send(h11.Data(data=msg.encode("ascii")))
        output += self.conn.send(h11.EndOfMessage())
        self.transport.write(output)
        self.transport.close()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._expect_request()

    def _expect_request(self) -> None:
        self.loop.call_later(self.header_timeout, self._request_due, self.cycle)

    def _request_due(self, cycle) -> None:
        """Close the connection if no request has begun since `cycle` (None before the first) was answered."""
        if self.cycle is cycle and (cycle is None or cycle.response_complete):
            self.timeout_keep_alive_handler()  # a no-op on a connection already closing


def config(app, *, header_timeout: float = HEADER_TIMEOUT, write_timeout: float = WRITE_TIMEOUT,
           max_connections: int = MAX_CONNECTIONS) -> uvicorn.Config:
    """The uvicorn config `ram serve` runs `app` with: the limits above, HTTP/1.1 through h11 (no WebSockets, which
    the page does not use), and only warnings and errors logged."""
    # headers: uvicorn adds them to every answer it sends, its own 503 beyond limit_concurrency too (the app's answers
    # then say nosniff twice, which browsers read as once).
    protocol = functools.partial(Protocol, header_timeout=header_timeout, write_timeout=write_timeout)
    return uvicorn.Config(app, http=protocol, ws="none",
                          timeout_keep_alive=KEEP_ALIVE, limit_concurrency=max_connections,
                          h11_max_incomplete_event_size=MAX_HEADERS, log_level="warning",
                          headers=[(NOSNIFF[0].decode(), NOSNIFF[1].decode())])
