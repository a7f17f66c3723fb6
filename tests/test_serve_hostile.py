"""`ram serve` against hostile input: one test per finding of the review in issue 35, each of which failed before its
fix. Most go through Starlette's TestClient or call the app as uvicorn would; the timeouts need a real uvicorn server,
started in a thread on a free loopback port with short limits."""

import asyncio
import io
import json
import select
import socket
import threading
import time
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from PIL import EpsImagePlugin, Image

pytest.importorskip("starlette", reason="the serve extra is not installed: pip install -e '.[serve]'")

from starlette.testclient import TestClient  # noqa: E402

from ram import checkpoint as ckpt  # noqa: E402
from ram.config import ModelConfig, RunConfig  # noqa: E402
from ram.models import build_model  # noqa: E402
from ram.serve import app as serve_app  # noqa: E402
from ram.serve import server  # noqa: E402
from ram.serve.app import create_app  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
LOCAL = "http://127.0.0.1:8000"  # where `ram serve` is by default, and the Host its requests name


@pytest.fixture(scope="module")
def client() -> TestClient:
    with TestClient(create_app(), base_url=LOCAL) as c:
        yield c


def image_file(image: Image.Image, form: str) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=form)
    return buffer.getvalue()


@pytest.fixture
def no_ghostscript(monkeypatch):
    """Pillow's EPS plug-in renders through Ghostscript, which runs the PostScript it is given: here that fails the
    test instead (whether or not this machine has Ghostscript)."""
    def ran(*args, **kwargs):
        raise AssertionError("Pillow handed the upload to Ghostscript")

    monkeypatch.setattr(EpsImagePlugin, "Ghostscript", ran)


# ---- dependencies ---------------------------------------------------------------------------------------------------

def test_the_dependencies_leave_out_the_versions_the_review_named():
    """starlette 1.0-1.1's TestClient cannot drive httpx2 (the test extra's client); pillow before 10.3 has the
    buffer overflow of CVE-2024-28219, and before 10.0.1 bundles a libwebp without the fix for CVE-2023-4863."""
    tomllib = pytest.importorskip("tomllib")
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    named = [Requirement(r) for r in project["dependencies"] + project["optional-dependencies"]["serve"]]
    wanted = {r.name: r.specifier for r in named}
    assert not wanted["starlette"].contains("1.1.0") and wanted["starlette"].contains("1.2.0")
    assert not wanted["pillow"].contains("10.2.0") and wanted["pillow"].contains("10.3.0")


# ---- decoding -------------------------------------------------------------------------------------------------------

def test_an_eps_upload_never_reaches_pillow_s_eps_plugin(client, no_ghostscript):
    answer = client.post("/api/classify?model=mnist-g6", content=image_file(Image.new("L", (28, 28)), "EPS"))
    assert answer.status_code == 422 and "PNG, JPEG, GIF, BMP, WebP or TIFF" in answer.json()["error"]


def test_an_image_pillow_cannot_make_grey_gets_a_422_naming_its_mode(client):
    lab = image_file(Image.new("LAB", (28, 28)), "TIFF")  # Pillow converts LAB to RGB, not to grey
    answer = client.post("/api/classify?model=mnist-g6", content=lab)
    assert answer.status_code == 422 and "mode LAB" in answer.json()["error"]


# ---- the JSON endpoint ----------------------------------------------------------------------------------------------

def test_json_nested_too_deep_gets_a_400(client):
    answer = client.post("/api/catch/step", content=b"[" * 2040, headers={"Content-Type": "application/json"})
    assert answer.status_code == 400 and "nested" in answer.json()["error"]


# ---- blocking -------------------------------------------------------------------------------------------------------

STATE = {"row": 0, "ball_x": 3.0, "dx": 0.5, "paddle_x": 4}


@pytest.mark.parametrize("name, path, body", [
    ("decode", "/api/classify?model=mnist-g6", {"content": image_file(Image.new("L", (28, 28)), "PNG")}),
    ("step", "/api/catch/step", {"json": {"state": STATE, "move": 1}}),
], ids=["decoding", "a-game-step"])
def test_work_runs_off_the_event_loop(client, monkeypatch, name, path, body):
    """The event loop answers every request, so what takes CPU runs in a worker thread (one with no running loop):
    decoding 20 uploads of 2000x2000 on the loop held GET /api/models up for 1.9 s."""
    where, work = [], getattr(serve_app, name)

    def spy(*args, **kwargs):
        try:
            asyncio.get_running_loop()
            where.append("the event loop")
        except RuntimeError:
            where.append("a worker thread")
        return work(*args, **kwargs)

    monkeypatch.setattr(serve_app, name, spy)
    assert client.post(path, **body).status_code == 200
    assert where == ["a worker thread"]


# ---- timeouts and bounds --------------------------------------------------------------------------------------------

SHORT = 2.0  # the live server's deadlines for headers and bodies, in seconds
LIMIT = 6  # and its bound on connections


@pytest.fixture(scope="module")
def live():
    """`ram serve`'s uvicorn server with short deadlines and a low bound, in a thread on a free loopback port: its
    address."""
    uvicorn = pytest.importorskip("uvicorn")
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    running = uvicorn.Server(server.config(create_app(body_timeout=SHORT), header_timeout=SHORT,
                                           max_connections=LIMIT))
    thread = threading.Thread(target=running.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    while not running.started:
        assert thread.is_alive(), "the server did not start"
        time.sleep(0.01)
    yield sock.getsockname()
    running.should_exit = True
    thread.join(timeout=10)
    sock.close()


def until_closed(sock: socket.socket, *, trickle: bool, guard: float = 30.0) -> bytes | None:
    """What the server sent on `sock` until it closed it, sending a byte every 0.1 s if `trickle` (as a slow client
    does, to keep an idle timer from firing); None if it was still open after `guard` seconds."""
    received, deadline = b"", time.monotonic() + guard
    while time.monotonic() < deadline:
        if select.select([sock], [], [], 0.1)[0]:
            try:
                data = sock.recv(65536)
            except ConnectionResetError:
                return received
            if not data:
                return received
            received += data
        elif trickle:
            try:
                sock.send(b"a")
            except (BrokenPipeError, ConnectionResetError):
                return received
    return None


def test_headers_that_never_end_are_cut_off(live):
    """300 connections that sent part of their headers stayed open: now each has SHORT seconds to send them all."""
    with socket.create_connection(live) as sock:
        sock.sendall(b"GET /api/models HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
        assert until_closed(sock, trickle=True) == b""


def test_a_body_that_never_ends_gets_a_408(live):
    """30 requests that declared 2 MB and sent 4 bytes stayed open: now the body has SHORT seconds to arrive."""
    with socket.create_connection(live) as sock:
        sock.sendall(b"POST /api/classify HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/octet-stream\r\n"
                     b"Content-Length: 2000000\r\n\r\n\x89PNG")
        answer = until_closed(sock, trickle=True)
    assert answer is not None and answer.startswith(b"HTTP/1.1 408") and b"took over 2 s" in answer


def test_connections_beyond_the_bound_get_a_503(live):
    held = [socket.create_connection(live) for _ in range(LIMIT)]
    try:
        with socket.create_connection(live) as sock:
            sock.sendall(b"GET /api/models HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
            answer = until_closed(sock, trickle=False)
    finally:
        for s in held:
            s.close()
    assert answer is not None and answer.startswith(b"HTTP/1.1 503")


def test_a_client_that_leaves_mid_upload_is_no_error():
    """An upload cut off by its client raised ClientDisconnect out of the app, which uvicorn logs with a traceback."""
    app = create_app()
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST", "scheme": "http",
             "path": "/api/classify", "raw_path": b"/api/classify", "root_path": "", "query_string": b"model=mnist-g6",
             "headers": [(b"host", b"127.0.0.1:8000"), (b"content-type", b"application/octet-stream"),
                         (b"content-length", b"1000")],
             "client": ("127.0.0.1", 50000), "server": ("127.0.0.1", 8000)}
    messages = iter([{"type": "http.request", "body": b"\x89PNG", "more_body": True}, {"type": "http.disconnect"}])
    sent = []

    async def receive():
        return next(messages)

    async def send(message):
        sent.append(message)

    asyncio.run(app(scope, receive, send))
    assert sent[0]["type"] == "http.response.start"


# ---- origins --------------------------------------------------------------------------------------------------------

def test_a_loopback_server_answers_only_its_own_host_names(client):
    """DNS rebinding: a page on evil.example, its name re-pointed at 127.0.0.1, reaches the server with Host:
    evil.example. On a loopback address only this machine's names are answered; served to the network, any."""
    assert client.get("/api/models", headers={"Host": "evil.example"}).status_code == 400
    assert client.get("/api/models", headers={"Host": "evil.example:8000"}).status_code == 400
    for name in ("127.0.0.1:8000", "localhost:8000", "[::1]:8000", "localhost"):
        assert client.get("/api/models", headers={"Host": name}).status_code == 200, name
    with TestClient(create_app(host="0.0.0.0"), base_url="http://evil.example") as anywhere:
        assert anywhere.get("/api/models").status_code == 200


@pytest.mark.parametrize("path", ["/", "/static/index.html", "/static/app.js", "/api/models", "/nowhere"])
def test_every_answer_says_nosniff_and_every_page_its_csp(client, path):
    """/static/index.html came without the CSP that / had, and no answer set frame-ancestors (against the page framed by
    another site, for clickjacking) or nosniff (against an answer read as another type than it says)."""
    answer = client.get(path)
    assert answer.headers["x-content-type-options"] == "nosniff"
    if answer.headers["content-type"].startswith("text/html"):
        policy = answer.headers["content-security-policy"]
        assert "default-src 'self'" in policy and "frame-ancestors 'none'" in policy


MOVE = {"state": STATE, "move": 1}


def test_a_page_elsewhere_cannot_post(client):
    """A browser names the page's origin on every cross-origin POST; another site's is refused before any work."""
    for origin in ("http://evil.example", "http://127.0.0.1:9999", "null"):
        answer = client.post("/api/catch/step", json=MOVE, headers={"Origin": origin})
        assert answer.status_code == 403 and origin in answer.json()["error"], origin
    assert client.post("/api/catch/step", json=MOVE, headers={"Origin": LOCAL}).status_code == 200


@pytest.mark.parametrize("kind", ["text/plain", "text/plain; charset=utf-8", "application/x-www-form-urlencoded",
                                  "multipart/form-data; boundary=x"])
def test_a_post_any_page_could_send_unasked_is_refused(client, kind):
    """The content types of a CORS simple request, which a page on any site may send without asking the server
    first: a text/plain body that holds JSON was played."""
    answer = client.post("/api/catch/step", content=json.dumps(MOVE), headers={"Content-Type": kind})
    assert answer.status_code == 415 and kind.split(";")[0] in answer.json()["error"]


def test_the_model_list_does_not_show_where_the_run_folder_is(tmp_path):
    folder = tmp_path / "my-run"
    small = RunConfig(model=ModelConfig(glimpses=3, hidden=8))
    ckpt.export_model(folder, build_model(small.model), small)
    with TestClient(create_app(checkpoint=folder), base_url=LOCAL) as c:
        listing = c.get("/api/models").text
    assert "run:my-run" in listing and str(tmp_path) not in listing


# ---- text -----------------------------------------------------------------------------------------------------------

def test_the_model_list_says_what_each_model_reads(client):
    """fashion-g6 was described as "images images 28x28": a model of a folder's images is named by its folder."""
    about = {m["name"]: m["about"] for m in client.get("/api/models").json()["models"]}
    assert about["fashion-g6"] == "fashion-images (10 classes) 28x28, 6 glimpses"
    assert about["mnist-cluttered-g6"] == "mnist cluttered 60x60, 6 glimpses"
    assert about["mnist-g6"] == "mnist centred, 6 glimpses"
