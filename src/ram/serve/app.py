"""The app behind `ram serve`: the page in static/, and a small JSON API over the Python API (`ram.api.Model`).

    GET  /api/models                      the models the page may pick, and the one it opens with
    POST /api/classify?model=&mode=&seed=&layout=  body: an image file (the page sends its canvas as PNG; its
                                          drawing boxes side by side for several digits, cut into equal columns,
                                          layout=boxes; a dropped file is cut at the gaps between its digits,
                                          layout=gaps) -> the episode
    GET  /api/catch/game?model=&mode=&seed=  one seeded game the agent played, every frame, glimpse and move
    POST /api/catch/step?model=           body: {"state": {...}, "move": 0|1|2} -> the next state and frame

Stateless: a request carries everything it needs (the image, a model's name, a seed, a game's state), so tabs share
nothing but the loaded models. A model's name is looked up among the shipped ones and the one run folder given on the
command line, never opened as a path. Decoding, inference and a game's step run in worker threads, so that the event
loop stays free to answer every other request; inference runs under one lock, as sampled episodes seed torch's global
generator (`tasks.seeded`), which must not interleave between requests. Nothing is ever written to disk. Other sites
are kept out by `guard`'s middleware, and `server` runs the app on uvicorn with deadlines and a bound on connections.
"""

from __future__ import annotations

import base64
import io
import json
import math
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import numpy as np
import torch
from PIL import Image
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.requests import ClientDisconnect, Request
from starlette.responses import FileResponse, JSONResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from .. import sensor
from ..api import END, Model
from ..config import ConfigError, RunConfig, task_of
from ..envs import MOVES, CatchBatch
from ..hub import load_checkpoint, load_pretrained, manifest
from ..sensor import boxes
from ..tasks import seeded
from ..tasks.catch import drawn_games, play
from ..viz.multi import output_colours
from .guard import HeadLimit, SameOrigin, SecurityHeaders, allowed_hosts
from .images import LAYOUTS, BadImage, decode, prepare

STATIC = Path(__file__).parent / "static"
MAX_BODY = 2 * 1024 * 1024  # bytes of an upload: a drawn canvas as PNG is about 10 KB, a phone photo a few MB
BODY_TIMEOUT = 20.0  # seconds for a body to arrive once its headers have: 2 MB at 1 Mbit/s takes 17
MAX_SEED = 2**31 - 1
DECODERS = 2  # uploads decoded at once


class Rejected(Exception):
    """A request the app refuses: an HTTP status and a message for the page to show."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status, self.message = status, message


@dataclass(frozen=True)
class Entry:
    name: str
    cfg: RunConfig
    about: str
    test_error: float | None = None

    def describe(self) -> dict[str, Any]:
        """What the page shows of a model, and how it asks: `drawings`, the drawing boxes a person draws digits in
        for one image, one a box (0: images of the model's own size only), of which the first `fewest` must be
        drawn (a string's may be shorter than its boxes); `outputs`, the labels it emits in turn (DRAM: 2 for a
        pair, 6 for a string of up to 5 digits and its end)."""
        m, t = self.cfg.model, self.cfg.task
        task = task_of(t.dataset)
        drawings = task.drawings(t) if hasattr(task, "place_drawn") else range(0, 1)
        return {"name": self.name, "about": self.about, "task": "classify" if t.classifies else t.dataset,
                "image_size": m.image_size, "glimpses": getattr(m, "glimpses", 0),
                "patch_size": getattr(m, "patch_size", None), "scales": getattr(m, "scales", None),
                "pool": getattr(m, "pool", None), "policy": self.cfg.policy.kind, "canvas": t.canvas, "pieces": getattr(t, "pieces", 0),
                "drawings": drawings[-1], "fewest": drawings[0],
                "outputs": getattr(m, "outputs", 1), "test_error": self.test_error}


class Models:
    """The models the page may ask for by name: the shipped ones (loaded on first use) and a `ram train` run folder.

    Call `get` and `pool` with `lock` held: loading fills a cache, and inference seeds torch's global generator.
    """

    def __init__(self, *, checkpoint: Path | None = None):
        self.lock = threading.Lock()
        self.entries: dict[str, Entry] = {}
        self._modules: dict[str, torch.nn.Module] = {}
        self._pools: dict[tuple, torch.Tensor | None] = {}
        if checkpoint is not None:
            module, cfg = load_checkpoint(checkpoint)
            cfg.model.require_drawn("checkpoint", str(checkpoint))
            name = f"run:{Path(checkpoint).name}"
            # The folder's name, not its path: the page may be shown to others, and the list to other sites.
            self.entries[name] = Entry(name, cfg, f"{task_of(cfg.task.dataset).about(cfg)} (run folder {Path(checkpoint).name})")
            self._modules[name] = module
        for name, e in manifest().items():
            cfg = RunConfig.from_dict(e["config"])
            if cfg.model.about.drawn:
                self.entries[name] = Entry(name, cfg, task_of(cfg.task.dataset).about(cfg), e.get("test_error"))

    def entry(self, name: str, *, task: str) -> Entry:
        """The model called `name` (a Rejected 404 naming the known ones if none), which must do `task`."""
        entry = self.entries.get(name)
        if entry is None:
            known = [n for n, e in self.entries.items() if e.describe()["task"] == task]
            raise Rejected(404, f"model = {name!r}: unknown; the models are {', '.join(known)}")
        if entry.describe()["task"] != task:
            raise Rejected(422, f"model = {name!r}: it is a {entry.describe()['task']} model, not a {task} one")
        return entry

    def get(self, name: str) -> torch.nn.Module:
        if name not in self._modules:
            self._modules[name], _ = load_pretrained(name)
        return self._modules[name]

    def pool(self, cfg: RunConfig) -> torch.Tensor | None:
        """The training digits a cluttered model's clutter was cut from, when they are already in the data cache
        (the task's `clutter_pool`); None, to cut clutter from the drawn digits themselves, when they are not."""
        t = cfg.task
        task = task_of(t.dataset)
        if not hasattr(task, "clutter_pool"):  # images of the model's own size only: nothing is placed
            return None
        key = (t.dataset, getattr(t, "pieces", 0), t.val_size, t.train_size)
        if key not in self._pools:
            self._pools[key] = task.clutter_pool(t)
        return self._pools[key]


def create_app(*, default: str | None = None, checkpoint: Path | None = None, host: str = "127.0.0.1",
               max_body: int = MAX_BODY, body_timeout: float = BODY_TIMEOUT) -> Starlette:
    """The app. default: the model the page opens with (a shipped name; the run folder's when `checkpoint` is given;
    else mnist-g6). host: the address it is served on, which decides the Host names it answers (`guard`). A body
    larger than `max_body` bytes, or slower to arrive than `body_timeout` seconds, is refused. Raises ConfigError for
    an unknown name or a run folder the page cannot show."""
    models = Models(checkpoint=checkpoint)
    # Decoding takes the CPU: more decodings at once than cores only hold more decoded images in memory.
    decoders = threading.BoundedSemaphore(DECODERS)
    if default is None:
        default = next(iter(models.entries)) if checkpoint is not None else "mnist-g6"
    if default not in models.entries:
        raise ConfigError(f"pretrained = {default!r}: unknown; shipped models are {', '.join(manifest())}")

    async def index(request: Request):
        return FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-store"})

    async def list_models(request: Request):
        return JSONResponse({"default": default, "models": [e.describe() for e in models.entries.values()]})

    async def classify(request: Request):
        entry = models.entry(request.query_params.get("model", default), task="classify")
        sampled = _mode(request)
        seed = _int(request, "seed", 0, 0, MAX_SEED)
        layout = request.query_params.get("layout", "boxes")
        if layout not in LAYOUTS:
            raise Rejected(422, f"layout = {layout!r}: must be one of {', '.join(LAYOUTS)}")
        data = await _body(request, max_body, body_timeout)

        def run(gone: threading.Event) -> dict[str, Any]:
            while not decoders.acquire(timeout=0.05):  # a client that left stops waiting for a decoder
                if gone.is_set():
                    raise Rejected(400, "the client left")
            try:
                ink = decode(data, stop=gone)
            finally:
                decoders.release()
            with models.lock:
                if gone.is_set():
                    raise Rejected(400, "the client left")
                model = Model(models.get(entry.name), entry.cfg, entry.name)
                image, how, drawn = prepare(ink, entry.cfg.task, seed=seed, pool=models.pool(entry.cfg),
                                            layout=layout)
                try:
                    answer = episode(model, image, sampled=sampled, seed=seed)
                except ValueError as e:  # an image predict() cannot read: it says what it expected
                    raise Rejected(422, str(e)) from None
                return answer | {"model": entry.name, "prepared": how, "digits": drawn}

        return JSONResponse(await _unless_gone(request, run))

    async def catch_game(request: Request):
        entry = models.entry(request.query_params.get("model", "catch"), task="catch")
        sampled = _mode(request)
        seed = _int(request, "seed", 0, 0, MAX_SEED)

        def run() -> dict[str, Any]:
            with models.lock:
                return game(models.get(entry.name), entry.cfg, sampled=sampled, seed=seed) | {"model": entry.name}

        return JSONResponse(await run_in_threadpool(run))

    async def catch_step(request: Request):
        entry = models.entry(request.query_params.get("model", "catch"), task="catch")
        expected = "send {\"state\": {...}, \"move\": 0, 1 or 2}"
        try:
            body = json.loads(await _body(request, 4096, body_timeout))
        except ValueError:
            raise Rejected(400, f"the body is not JSON: {expected}") from None
        except RecursionError:  # the parser recurses once per level: 2,000 "[" exhaust Python's stack
            raise Rejected(400, f"the body's JSON is nested too deep: {expected}") from None
        return JSONResponse(await run_in_threadpool(step, body, size=entry.cfg.task.canvas))

    async def rejected(request: Request, exc: Exception):
        if isinstance(exc, BadImage):
            return JSONResponse({"error": str(exc)}, status_code=422)
        if isinstance(exc, HTTPException):  # its headers too: a 405 says which methods are allowed (Allow)
            return JSONResponse({"error": exc.detail}, status_code=exc.status_code, headers=exc.headers)
        # The rest of a body refused part-way is never read, so the connection cannot carry another request.
        unread = {"Connection": "close"} if exc.status in (408, 413) else None
        return JSONResponse({"error": exc.message}, status_code=exc.status, headers=unread)

    async def gone(request: Request, exc: ClientDisconnect):
        """A client that left before its body was read: nobody is there to read an answer, and it is no error of the
        server's (left to Starlette, it is logged with a traceback)."""
        return JSONResponse({"error": "the client left before its request was read"}, status_code=400)

    routes = [
        Route("/", index),
        Route("/api/models", list_models),
        Route("/api/classify", classify, methods=["POST"]),
        Route("/api/catch/game", catch_game),
        Route("/api/catch/step", catch_step, methods=["POST"]),
        Mount("/static", StaticFiles(directory=STATIC), name="static"),
    ]
    middleware = [Middleware(SecurityHeaders), Middleware(HeadLimit),
                  Middleware(TrustedHostMiddleware, allowed_hosts=allowed_hosts(host)), Middleware(SameOrigin)]
    return Starlette(routes=routes, middleware=middleware,
                     exception_handlers={Rejected: rejected, BadImage: rejected, HTTPException: rejected,
                                         ClientDisconnect: gone})


async def _unless_gone(request: Request, work) -> Any:
    """work(gone) run in a worker thread, with `gone` (a threading.Event) set as soon as the client disconnects: the
    work then stops where it checks (a decode at its next block, a wait for a decoder at once), and frees what it
    held for clients still there. Two clients that sent scan bombs and left held both decoders for a minute."""
    gone = threading.Event()

    async def watch() -> None:
        while not gone.is_set():
            if await request.is_disconnected():
                gone.set()
                return
            await anyio.sleep(0.05)

    def attempt() -> tuple[Any, Exception | None]:  # its error is raised below, not wrapped in an ExceptionGroup
        try:
            return work(gone), None
        except Exception as e:  # noqa: BLE001 - re-raised as it is
            return None, e

    async with anyio.create_task_group() as tasks:
        tasks.start_soon(watch)
        try:
            answer, error = await run_in_threadpool(attempt)
        finally:
            gone.set()  # the answer is ready: stop watching
    if error is not None:
        raise error
    return answer


async def _body(request: Request, limit: int, timeout: float) -> bytes:
    """The request's body, refused with 413 as soon as it is known to pass `limit` bytes (from its Content-Length
    before reading anything, else while it streams in), and with 408 if it has not all come within `timeout`
    seconds: a client that declares 2 MB and sends 4 bytes would otherwise hold its connection for ever."""
    length = request.headers.get("content-length")
    if length is not None and (not length.isdigit() or int(length) > limit):
        raise Rejected(413, f"the upload is {length} bytes; at most {limit:,} are accepted")
    body = bytearray()
    try:
        with anyio.fail_after(timeout):
            async for chunk in request.stream():
                body += chunk
                if len(body) > limit:
                    raise Rejected(413, f"the upload is over {limit:,} bytes; at most {limit:,} are accepted")
    except TimeoutError:
        raise Rejected(408, f"the body took over {timeout:g} s to arrive ({len(body):,} bytes came)") from None
    return bytes(body)


def _int(request: Request, name: str, default: int, low: int, high: int) -> int:
    value = request.query_params.get(name)
    if value is None:
        return default
    try:
        number = int(value)
    except ValueError:
        raise Rejected(422, f"{name} = {value!r}: must be an integer") from None
    if not low <= number <= high:
        raise Rejected(422, f"{name} = {number}: must be in {low}..{high}")
    return number


def _mode(request: Request) -> bool:
    """True for sampled glimpses, False to follow the policy means."""
    mode = request.query_params.get("mode", "means")
    if mode not in ("means", "sampled"):
        raise Rejected(422, f"mode = {mode!r}: must be 'means' or 'sampled'")
    return mode == "sampled"


def png(pixels: np.ndarray) -> str:
    """uint8 [H, W] -> a PNG as a data: URL."""
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def _bytes(x: torch.Tensor) -> np.ndarray:
    """float [H, W] in [0, 1] -> uint8 [H, W]."""
    return (x.clamp(0, 1) * 255).round().to(torch.uint8).numpy()


def episode(model: Model, image: np.ndarray, *, sampled: bool, seed: int) -> dict[str, Any]:
    """What the page animates: the image (uint8 [S, S], the model's input); after each of the T glimpses where it
    was read (centre in pixels and in [-1, 1], the square of every scale), what the sensor read there (a PNG per
    scale, each pooled to patch x patch), the class probabilities, and which emitted label it leads to (`output`);
    then the labels emitted (one for a model that answers once, K in turn for DRAM; a string's up to and with its
    end, the class `end`, as `ram predict` gives them), each with its probability and its class probabilities, in
    the colour `ram viz` draws the glimpses that lead to it. Glimpses that lead to labels past a string's end are
    there too, and lead to nothing read."""
    m = model.cfg.model
    out = model.predict(image, mc_samples=1 if sampled else 0, seed=seed)
    x = model.images(image)  # [1, C, S, S], as predict read it
    locations = out.locations[0]  # [T, 2]
    squares = boxes(locations, patch_size=m.patch_size, scales=m.scales, height=model.image_size,
                    width=model.image_size)  # [T, scales, 3]
    steps = []
    for t in range(locations.shape[0]):
        # [scales, C, p, p]
        read = sensor.glimpse(x, locations[t : t + 1], m.patch_size, m.scales, pool=m.pool, pad=m.pad)[0]
        steps.append({
            "x": float(out.pixels[0, t, 0]), "y": float(out.pixels[0, t, 1]),
            "location": locations[t].tolist(),
            "boxes": squares[t].tolist(),  # per scale (x0, y0, side) in pixels
            "patches": [png(_bytes(read[k, 0])) for k in range(m.scales)],
            "probs": out.step_probs[0, t].tolist(),
            "output": int(out.output_of[0, t]),
        })
    labels = out.labels[0].reshape(-1)  # [K]
    probs = out.probs[0].reshape(len(labels), -1)  # [K, classes]
    length = out.read[0] if out.sequence else 1  # a string's labels up to and with its end, as ram predict gives
    classes = list(model.classes) or [str(c) for c in range(m.classes)]
    return {
        "image": png(image), "image_size": model.image_size, "patch_size": m.patch_size, "scales": m.scales,
        "mode": "sampled" if sampled else "means", "seed": seed, "steps": steps,
        "labels": [{"label": int(c), "probability": float(probs[k, c]), "probs": probs[k].tolist()}
                   for k, c in enumerate(labels[:length].tolist())],
        "class": out.names[0], "colours": output_colours(len(labels)), "classes": classes,
        "end": classes.index(END) if END in classes else None,
    }


def game(module: torch.nn.Module, cfg: RunConfig, *, sampled: bool, seed: int) -> dict[str, Any]:
    """One game of Catch, its start drawn from `seed` as `ram viz` draws its first game's: the start state (for a
    person to play the same game), T + 1 frames (0/1, [H][W]), and each step's glimpse squares and move."""
    size, m = cfg.task.canvas, cfg.model
    start = drawn_games(1, size=size, seed=seed)  # the start play() draws from the same seed
    with seeded(seed):
        g = play(module, cfg, n=1, seed=seed, sample=sampled)
    squares = boxes(g.locations[0], patch_size=m.patch_size, scales=m.scales, height=size, width=size)
    pixels = (g.locations[0] + 1) * (size / 2)
    return {
        "size": size, "patch_size": m.patch_size, "scales": m.scales, "pool": m.pool, "seed": seed,
        "mode": "sampled" if sampled else "means", "moves": list(MOVES), "caught": bool(g.caught[0]),
        "start": _state(start),
        "frames": g.frames[0, :, 0].round().to(torch.uint8).tolist(),
        "steps": [{"x": float(pixels[t, 0]), "y": float(pixels[t, 1]), "boxes": squares[t].tolist(),
                   "move": int(g.moves[0, t])} for t in range(g.moves.shape[1])],
    }


def _state(world: CatchBatch) -> dict[str, Any]:
    return {"row": world.row, "ball_x": float(world.ball_x[0]), "dx": float(world.dx[0]),
            "paddle_x": int(world.paddle_x[0])}


def step(body: Any, *, size: int) -> dict[str, Any]:
    """One move of a person's game from the state the page holds: the rules are CatchBatch's, not a copy in the page.
    body: {"state": {"row", "ball_x", "dx", "paddle_x"}, "move": 0 left, 1 stay, 2 right}."""
    if not isinstance(body, dict) or not isinstance(body.get("state"), dict):
        raise Rejected(422, "the body must be {\"state\": {\"row\", \"ball_x\", \"dx\", \"paddle_x\"}, \"move\"}")
    state = body["state"]

    def number(name: str, low: float, high: float, *, whole: bool) -> float:
        value = state.get(name) if name != "move" else body.get("move")
        # An int is compared as it is: math.isfinite(10**309) raises OverflowError (a 310-digit number gave a 500).
        ok = (isinstance(value, int) or (isinstance(value, float) and math.isfinite(value))) \
            and not isinstance(value, bool)
        if not ok or (whole and value != int(value)) or not low <= value <= high:
            kind = "an integer" if whole else "a number"
            raise Rejected(422, f"{name} = {value!r}: must be {kind} in {low}..{high}")
        return value

    # After a bounce the ball may sit up to one step (|dx| <= 1) past either edge: CatchBatch keeps x, it only draws
    # it clamped.
    ball_x = number("ball_x", -1, size + 1, whole=False)
    dx = number("dx", -1, 1, whole=False)
    paddle_x = int(number("paddle_x", 0, size - 2, whole=True))
    row = int(number("row", 0, size - 2, whole=True))
    move = int(number("move", 0, 2, whole=True))
    world = CatchBatch(1, size=size)
    world.start(ball_x=[ball_x], dx=[dx], paddle_x=[paddle_x])
    world.row = row  # start() puts the ball in row 0; the game goes on from the row the page says
    frame, reward, done = world.step(torch.tensor([move]))
    return {"state": _state(world), "frame": frame[0, 0].round().to(torch.uint8).tolist(), "done": done,
            "caught": bool(reward[0] > 0) if done else None}
