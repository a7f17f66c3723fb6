"""`ram serve` against the findings of issue 61: scan and tile bombs, a client that leaves while its upload decodes,
readers that never read, a 310-digit integer, a 405 without Allow, server-made errors without nosniff and a request
line over the header bound sent in one packet. Each test failed before its fix. The live ones run uvicorn in a thread
on a free loopback port with short deadlines."""

import asyncio
import json
import socket
import threading
import time

import pytest

pytest.importorskip("starlette", reason="the serve extra is not installed: pip install -e '.[serve]'")

from hostile_files import scan_bomb, tile_bomb  # noqa: E402
from starlette.testclient import TestClient  # noqa: E402

from ram.serve import app as serve_app  # noqa: E402
from ram.serve import server  # noqa: E402
from ram.serve.app import create_app  # noqa: E402

LOCAL = "http://127.0.0.1:8000"
STATE = {"row": 0, "ball_x": 3.0, "dx": 0.5, "paddle_x": 4}


@pytest.fixture(scope="module")
def client() -> TestClient:
    with TestClient(create_app(), base_url=LOCAL) as c:
        yield c


@pytest.mark.parametrize("bomb, message", [(scan_bomb(size=200_000), "scans"), (tile_bomb(), "32000x32000 tiles")],
                         ids=["scan-bomb", "tile-bomb"])
def test_a_bomb_upload_gets_a_422_naming_what_it_costs(client, bomb, message):
    """A 200 KB scan bomb took about 20 s of CPU, a 2 MB tile bomb 2.25 GB of memory."""
    answer = client.post("/api/classify?model=mnist-g6", content=bomb)
    assert answer.status_code == 422 and message in answer.json()["error"]


@pytest.mark.parametrize("field", ["ball_x", "dx", "paddle_x", "row", "move"])
def test_a_310_digit_integer_in_a_move_gets_a_422(client, field):
    """math.isfinite(10**309) raises OverflowError: the answer was a 500."""
    body = {"state": dict(STATE), "move": 1}
    (body if field == "move" else body["state"])[field] = 10**309
    answer = client.post("/api/catch/step", content=json.dumps(body), headers={"Content-Type": "application/json"})
    assert answer.status_code == 422 and f"{field} = 1000000" in answer.json()["error"]


def test_a_405_says_which_methods_are_allowed(client):
    answer = client.get("/api/classify")
    assert answer.status_code == 405 and answer.headers["allow"] == "POST"
    assert client.post("/api/models", content=b"{}", headers={"Content-Type": "application/json"}).headers[
        "allow"] in ("GET, HEAD", "HEAD, GET")


def test_a_request_over_the_header_bound_is_refused_however_it_arrives(client):
    """A 20 KB request line sent in one packet arrived whole, and passed h11's bound on what it buffers."""
    answer = client.get("/api/models?x=" + "a" * 20_000)
    assert answer.status_code == 431 and "at most 16,384" in answer.json()["error"]
    assert client.get("/api/models", headers={"X-Big": "b" * 20_000}).status_code == 431
    assert client.get("/api/models?x=" + "a" * 1000).status_code == 200


def test_a_client_that_leaves_stops_its_decode_and_frees_its_decoder(monkeypatch):
    """Two uploads from clients that had gone held both decoders (a valid classify then waited 62 s): the decode
    now stops as soon as its client leaves, and the decoder is free for the next."""
    started, stopped = threading.Event(), []

    def decode(data, *, stop=None):
        started.set()
        stopped.append(stop.wait(timeout=20))  # a decode that runs until it is stopped
        raise serve_app.BadImage("stopped")

    monkeypatch.setattr(serve_app, "decode", decode)
    app = create_app()
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST", "scheme": "http",
             "path": "/api/classify", "raw_path": b"/api/classify", "root_path": "", "query_string": b"model=mnist-g6",
             "headers": [(b"host", b"127.0.0.1:8000"), (b"content-type", b"application/octet-stream")],
             "client": ("127.0.0.1", 50000), "server": ("127.0.0.1", 8000)}

    async def receive():
        if not hasattr(receive, "sent"):
            receive.sent = True
            return {"type": "http.request", "body": b"\x89PNG", "more_body": False}
        while not started.is_set():  # the client leaves once its upload is being decoded
            await asyncio.sleep(0.01)
        return {"type": "http.disconnect"}

    async def send(message):
        pass

    began = time.monotonic()
    asyncio.run(app(scope, receive, send))
    assert stopped == [True] and time.monotonic() - began < 15  # stopped, not timed out after 20 s


# ---- a live server --------------------------------------------------------------------------------------------------

SHORT = 1.0  # the live server's deadlines, in seconds


@pytest.fixture(scope="module")
def live():
    uvicorn = pytest.importorskip("uvicorn")
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    running = uvicorn.Server(server.config(create_app(body_timeout=SHORT), header_timeout=SHORT * 5,
                                           write_timeout=SHORT, max_connections=4))
    thread = threading.Thread(target=running.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    while not running.started:
        assert thread.is_alive(), "the server did not start"
        time.sleep(0.01)
    yield sock.getsockname()
    running.should_exit = True
    thread.join(timeout=10)
    sock.close()


def answer(live, request: bytes, *, guard: float = 30) -> bytes:
    """What the server sends back to `request` until it closes the connection."""
    with socket.create_connection(live, timeout=guard) as sock:
        sock.sendall(request)
        received = b""
        while data := sock.recv(65536):
            received += data
        return received


def test_the_server_s_own_400_and_503_say_nosniff(live):
    bad = answer(live, b"GARBAGE\r\n\r\n")
    assert bad.startswith(b"HTTP/1.1 400") and b"x-content-type-options: nosniff" in bad.lower()
    held = [socket.create_connection(live) for _ in range(4)]
    try:
        busy = answer(live, b"GET /api/models HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
    finally:
        for s in held:
            s.close()
    assert busy.startswith(b"HTTP/1.1 503") and b"x-content-type-options: nosniff" in busy.lower()


def test_a_client_that_never_reads_its_answers_is_cut_off(live):
    """64 connections that pipelined GET /api/catch/game and never read held about 2.8 MB of answers each, and
    everyone else got 503 for as long as they stayed: now a connection whose answers wait SHORT s for their reader,
    or pile up past MAX_UNSENT bytes, is closed. Here 500 requests ask for 10 MB (of a static file, cheap to send);
    the client reads nothing for 4 x SHORT s, then everything it can: what the kernel kept before the server closed
    the connection, a fraction of the 10 MB (without the deadline it got them all)."""
    slow = socket.create_connection(live)
    request = b"GET /static/app.js HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
    received, ended = 0, None
    try:
        slow.sendall(request * 500)
        time.sleep(SHORT * 4)  # the deadline passes while nothing is read
        slow.settimeout(30)
        try:
            while data := slow.recv(65536):
                received += len(data)
            ended = "closed"
        except ConnectionResetError:
            ended = "reset"
        except TimeoutError:
            ended = "still open after 30 s"
    finally:
        slow.close()
    assert ended in ("closed", "reset") and received < 3 * 2**20, (ended, received)
    fine = answer(live, b"GET /api/models HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
    assert fine.startswith(b"HTTP/1.1 200")
