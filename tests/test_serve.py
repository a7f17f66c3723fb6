"""`ram serve`: the image preparation, the app's API (Starlette's TestClient), the CLI's checks, and the page itself
in headless Chromium (skipped, saying why, where Playwright or Debian's chromium is missing)."""

import base64
import dataclasses
import io
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.request
import zlib
from pathlib import Path

import matplotlib
import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw

pytest.importorskip("starlette", reason="the serve extra is not installed: pip install -e '.[serve]'")

from starlette.testclient import TestClient  # noqa: E402

import ram  # noqa: E402
from ram import checkpoint as ckpt  # noqa: E402
from ram.cli import main  # noqa: E402
from ram.config import ModelConfig, RunConfig  # noqa: E402
from ram.data.numbers import place_strings  # noqa: E402
from ram.data.tasks import generator  # noqa: E402
from ram.flags import parse  # noqa: E402
from ram.tasks import DigitsConfig  # noqa: E402
from ram.models import build_model  # noqa: E402
from ram.serve import app as serve_app  # noqa: E402
from ram.serve.app import create_app  # noqa: E402
from ram.serve.images import BadImage, at_gaps, decode, drawn_digits, mnist_digit, on_canvas, prepare  # noqa: E402
from ram.viz.multi import OUTPUT_COLOURS  # noqa: E402

torch.set_num_threads(1)
STATIC = Path(serve_app.__file__).parent / "static"
LOCAL = "http://127.0.0.1:8000"  # a loopback server answers its own Host names alone


def png_bytes(image: Image.Image | np.ndarray) -> bytes:
    if isinstance(image, np.ndarray):
        image = Image.fromarray(image)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def drawing(kind: str = "seven", size: int = 280) -> bytes:
    """A canvas as the page sends it: a white stroke on black, PNG."""
    image = Image.new("L", (size, size))
    pen = ImageDraw.Draw(image)
    strokes = {
        "seven": [(70, 60), (210, 60), (120, 230)],
        "one": [(150, 40), (140, 240)],
        "zero": [(140, 40), (200, 90), (200, 190), (140, 240), (80, 190), (80, 90), (140, 40)],
    }[kind]
    pen.line(strokes, fill=255, width=20, joint="curve")
    return png_bytes(image)


def pair_drawing(left: str = "seven", right: str | None = "one") -> bytes:
    """Two drawing boxes side by side, as the page sends them for a model of a pair (right=None: left blank)."""
    return boxes_drawing(left, right)


def boxes_drawing(*kinds: str | None) -> bytes:
    """Drawing boxes side by side, as the page sends them for a model of several digits (None: a blank box)."""
    boxes = [np.asarray(Image.open(io.BytesIO(drawing(kind)))) if kind else np.zeros((280, 280), np.uint8)
             for kind in kinds]
    return png_bytes(np.hstack(boxes))


def written_number(*placed: tuple[str, int], width: int = 1000) -> bytes:
    """An image file of digits written along one line, not in boxes: each (kind, x) is `drawing(kind)` with its left
    edge at column x, on a black strip `width` wide."""
    strip = np.zeros((280, width), np.uint8)
    for kind, x in placed:
        strip[:, x : x + 280] |= np.asarray(Image.open(io.BytesIO(drawing(kind))))
    return png_bytes(strip)


UNEVEN = (("seven", 0), ("one", 230), ("zero", 420))
"""Three digits whose ink (columns 60-220, 370-400, 500-620) straddles the lines of five equal boxes (200, 400, 600):
cut into boxes they would be four inked columns."""


def from_data_url(url: str) -> np.ndarray:
    assert url.startswith("data:image/png;base64,")
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1]))))


def png_header(width: int, height: int) -> bytes:
    """The first bytes of a PNG claiming width x height pixels: its header, and the start of pixels that never come
    (were they decoded, 10000 x 10000 would take 100 MB)."""
    ihdr = width.to_bytes(4, "big") + height.to_bytes(4, "big") + bytes([8, 0, 0, 0, 0])
    chunk = b"IHDR" + ihdr
    pixels = zlib.compress(bytes(width + 1) * 8)
    return (b"\x89PNG\r\n\x1a\n" + len(ihdr).to_bytes(4, "big") + chunk + zlib.crc32(chunk).to_bytes(4, "big")
            + (10**6).to_bytes(4, "big") + b"IDAT" + pixels)


@pytest.fixture(scope="module")
def client() -> TestClient:
    with TestClient(create_app(max_body=200_000), base_url=LOCAL) as c:
        yield c


@pytest.fixture(scope="module")
def g6() -> ram.Model:
    return ram.load("mnist-g6")


@pytest.fixture(scope="module")
def pairs() -> ram.Model:
    return ram.load("mnist-pairs")


def tiny_numbers_run(folder: Path, *, ends: bool = False) -> Path:
    """A tiny untrained DRAM of mnist-numbers written as a run folder (no run of it is read). ends: its answer layer
    biased to the end label, so that it reads every image as the empty string and ends at once."""
    cfg = parse(["--preset", "mnist-numbers"]).config(progress=False)
    small = dataclasses.replace(cfg, model=dataclasses.replace(
        cfg.model, conv_channels=(4, 4, 4), context_channels=(4, 4, 4), glimpse_features=16, hidden=16,
        classifier_hidden=16)).validate()
    torch.manual_seed(0)
    module = build_model(small.model)
    if ends:
        with torch.no_grad():
            module.get_submodule(module.answer_layer).bias[10] += 100.0  # 10: EOS, after the digits
    ckpt.export_model(folder, module, small)
    return folder


@pytest.fixture(scope="module")
def numbers_run(tmp_path_factory) -> Path:
    return tiny_numbers_run(tmp_path_factory.mktemp("serve") / "numbers")


# ---- images ---------------------------------------------------------------------------------------------------------

def test_a_drawing_becomes_an_mnist_digit():
    digit = mnist_digit(decode(drawing("seven")))
    assert digit.shape == (28, 28) and digit.dtype == np.uint8
    rows, cols = np.nonzero(digit)
    assert max(np.ptp(rows), np.ptp(cols)) + 1 <= 20  # fits MNIST's 20x20 box
    ys, xs = np.indices(digit.shape)
    mass = digit.astype(float).sum()
    assert abs((ys * digit).sum() / mass - 13.5) <= 0.5 and abs((xs * digit).sum() / mass - 13.5) <= 0.5


def test_dark_ink_on_paper_and_transparent_drawings_read_as_white_on_black():
    paper = 255 - np.asarray(Image.open(io.BytesIO(drawing("one"))))
    inverted = decode(png_bytes(paper))
    np.testing.assert_array_equal(inverted, np.asarray(Image.open(io.BytesIO(drawing("one")))))
    rgba = np.zeros((50, 50, 4), np.uint8)
    rgba[10:40, 24:27] = (0, 0, 0, 255)  # a black stroke on a transparent background
    assert decode(png_bytes(Image.fromarray(rgba, "RGBA")))[20, 25] == 255


def test_placement_is_the_seed_s():
    digit = mnist_digit(decode(drawing("zero")))
    cluttered = DigitsConfig(canvas=60, pieces=4)
    a, b, c = (on_canvas(digit[None], cluttered, seed=s) for s in (1, 1, 2))
    np.testing.assert_array_equal(a, b)
    assert a.shape == (60, 60) and not np.array_equal(a, c)
    translated = on_canvas(digit[None], DigitsConfig(canvas=60), seed=5)
    assert translated.astype(int).sum() == digit.astype(int).sum()  # moved, nothing added
    image = np.zeros((60, 60), np.uint8)
    assert prepare(image, cluttered, seed=0)[1] == "as is"  # already the model's size: taken as it is


@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")
@pytest.mark.parametrize("data, message", [
    (b"", "empty"),
    (b"hello, I am not an image", "not an image"),
    (png_header(10_000, 10_000), "10000x10000"),
    (drawing()[:300], "truncated"),
], ids=["empty", "text", "huge", "truncated"])
def test_bad_uploads_say_what_is_wrong(data, message):
    with pytest.raises(BadImage, match=message):
        decode(data)


def test_an_image_of_a_number_is_cut_at_the_gaps_between_its_digits_not_into_boxes():
    ink = decode(written_number(*UNEVEN))
    digits = at_gaps(ink)
    assert len(digits) == 3
    for digit, (kind, _) in zip(digits, UNEVEN):  # each piece is that digit's ink, whole
        np.testing.assert_array_equal(mnist_digit(digit), mnist_digit(decode(drawing(kind))))
    assert len(drawn_digits(ink, range(1, 6), layout="gaps")) == 3
    assert len(drawn_digits(ink, range(1, 6), layout="boxes")) == 4  # the boxes cut the seven and the zero in two
    broken = ink.copy()
    broken[:, 140:142] = 0  # a stroke broken by two blank columns is still one digit
    assert len(at_gaps(broken)) == 3
    with pytest.raises(BadImage, match=r"the image holds 3 digit\(s\) side by side .* this model reads 2"):
        drawn_digits(ink, range(2, 3), layout="gaps")
    assert at_gaps(np.zeros((28, 90), np.uint8)) == []
    with pytest.raises(BadImage, match="the image is empty"):
        drawn_digits(np.zeros((28, 90), np.uint8), range(1, 6), layout="gaps")


def test_an_empty_canvas_is_refused():
    with pytest.raises(BadImage, match="empty"):
        mnist_digit(decode(png_bytes(np.zeros((280, 280), np.uint8))))


# ---- the app --------------------------------------------------------------------------------------------------------

def test_the_page_and_its_files_come_from_the_app_alone(client):
    page = client.get("/")
    assert page.status_code == 200 and "default-src 'self'" in page.headers["content-security-policy"]
    for name in re.findall(r'(?:src|href)="/static/([^"]+)"', page.text):
        assert client.get(f"/static/{name}").status_code == 200, name
    for path in STATIC.iterdir():
        text = path.read_text()
        # the SVG namespace is a name, not an address the browser fetches
        assert not re.findall(r"https?://(?!www\.w3\.org/2000/svg)", text), path.name


def test_models_lists_every_shipped_model_that_looks(client):
    """Every shipped model whose glimpses can be drawn (not the whole-image convnet of the pairs), with what the page
    needs to ask it: a pair model reads two drawn digits and emits two labels."""
    listing = client.get("/api/models").json()
    names = {m["name"]: m for m in listing["models"]}
    assert listing["default"] == "mnist-g6"
    drawn = {name for name, e in ram.hub.manifest().items() if RunConfig.from_dict(e["config"]).model.about.drawn}
    assert set(names) == drawn and "mnist-pairs-convnet" not in names
    assert names["catch"]["task"] == "catch" and names["mnist-cluttered-g6"]["pieces"] == 4
    assert (names["mnist-g6"]["drawings"], names["mnist-g6"]["outputs"]) == (1, 1)
    assert names["mnist-pairs"]["task"] == "classify"
    assert (names["mnist-pairs"]["drawings"], names["mnist-pairs"]["outputs"], names["mnist-pairs"]["canvas"]) == (2, 2, 100)


def test_classify_answers_what_predict_says_for_the_same_image(client, g6):
    answer = client.post("/api/classify?model=mnist-g6", content=drawing("seven")).json()
    image = from_data_url(answer["image"])
    assert image.shape == (28, 28)
    out = g6.predict(image)
    assert [a["label"] for a in answer["labels"]] == [int(out.labels[0])] and answer["prepared"] == "digit"
    assert len(answer["steps"]) == g6.cfg.model.glimpses
    for t, step in enumerate(answer["steps"]):
        np.testing.assert_allclose([step["x"], step["y"]], out.pixels[0, t].tolist(), atol=1e-5)
        np.testing.assert_allclose(step["probs"], out.step_probs[0, t].tolist(), atol=1e-6)
        assert step["output"] == 0  # one label, which every glimpse leads to
        assert len(step["boxes"]) == len(step["patches"]) == g6.cfg.model.scales
        x0, y0, side = step["boxes"][0]
        assert side == 8 and abs(x0 + side / 2 - step["x"]) <= 0.5 + 1e-6
        patch = from_data_url(step["patches"][0])
        read = g6.glimpses(image)[0, t, 0, 0]  # what the sensor read along the policy means
        np.testing.assert_array_equal(patch, (read * 255).round().to(torch.uint8).numpy())
    np.testing.assert_allclose(answer["labels"][0]["probs"], out.probs[0].tolist(), atol=1e-6)


def test_a_drawn_pair_is_placed_apart_on_the_cluttered_canvas_by_its_seed(client):
    """Each box of a drawn pair becomes an MNIST-like digit, and both are placed whole, their 28x28 boxes apart, on
    the task's 100x100 cluttered canvas (clutter only adds ink); the same seed places them the same way again."""
    def image(seed):
        answer = client.post(f"/api/classify?model=mnist-pairs&seed={seed}", content=pair_drawing()).json()
        assert answer["prepared"] == "digits"
        return from_data_url(answer["image"])

    a, b, c = image(5), image(5), image(6)
    assert a.shape == (100, 100)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    windows = torch.from_numpy(a.astype(np.int16)).unfold(0, 28, 1).unfold(1, 28, 1)  # [73, 73, 28, 28]
    places = []
    for kind in ("seven", "one"):
        digit = torch.from_numpy(mnist_digit(decode(drawing(kind))).astype(np.int16))
        found = (windows >= digit).flatten(2).all(-1).nonzero().tolist()  # where the digit sits, under any clutter
        assert found, kind
        places.append(found)
    assert any(max(abs(t1 - t2), abs(l1 - l2)) >= 28 for t1, l1 in places[0] for t2, l2 in places[1])


def test_a_pair_s_answer_is_what_ram_predict_says_for_the_same_canvas(client, pairs, tmp_path, capsys):
    """DRAM on a drawn pair: each emitted label with its probability (as `ram predict --json` prints them for the
    canvas the page shows), and every glimpse where predict() puts it, with the label it leads to and that label's
    colour in `ram viz`."""
    answer = client.post("/api/classify?model=mnist-pairs&seed=2", content=pair_drawing("seven", "zero")).json()
    image = from_data_url(answer["image"])
    Image.fromarray(image).save(tmp_path / "canvas.png")
    capsys.readouterr()
    assert main(["predict", str(tmp_path / "canvas.png"), "--pretrained", "mnist-pairs", "--json"]) == 0
    predicted = json.loads(capsys.readouterr().out)
    assert [{"label": a["label"], "probability": round(a["probability"], 4)} for a in answer["labels"]] \
        == predicted["labels"]
    assert answer["class"] == predicted["class"] and len(answer["labels"]) == 2
    out = pairs.predict(image)
    assert [s["output"] for s in answer["steps"]] == out.output_of[0].tolist() == [0, 0, 1, 1]
    for t, step in enumerate(answer["steps"]):
        np.testing.assert_allclose([step["x"], step["y"]], out.pixels[0, t].tolist(), atol=1e-5)
        np.testing.assert_allclose(step["probs"], out.step_probs[0, t].tolist(), atol=1e-6)
    for k, label in enumerate(answer["labels"]):
        np.testing.assert_allclose(label["probs"], out.probs[0, k].tolist(), atol=1e-6)
    tab = matplotlib.colormaps[OUTPUT_COLOURS]
    assert answer["colours"] == [matplotlib.colors.to_hex(tab(k)) for k in range(2)]
    assert answer["colours"][0] != answer["colours"][1]


def test_a_written_number_is_laid_out_as_the_task_s_test_strings_are():
    """The boxes of a written number, up to the last one drawn in, each made MNIST-like and laid out in a row and
    cropped as mnist-numbers' test strings are (`place_strings`), from the seed; the blank boxes after it make the
    number shorter."""
    task = parse(["--preset", "mnist-numbers"]).config(progress=False).task
    image, how, drawn = prepare(decode(boxes_drawing("seven", "one", None, None, None)), task, seed=4)
    digits = torch.from_numpy(np.stack([mnist_digit(decode(drawing(kind))) for kind in ("seven", "one")]))
    assert (how, drawn) == ("digits", 2) and image.shape == (54, 54)
    np.testing.assert_array_equal(image, place_strings(digits[None], shape=task.shape, gen=generator(4))[0].numpy())
    one, how, drawn = prepare(decode(boxes_drawing("seven", None, None, None, None)), task, seed=4)
    assert (how, drawn) == ("digit", 1)
    np.testing.assert_array_equal(one, place_strings(digits[None, :1], shape=task.shape, gen=generator(4))[0].numpy())


@pytest.mark.parametrize("ends", [False, True], ids=["reads-on", "ends-at-once"])
def test_a_number_s_answer_is_what_ram_predict_says_for_the_same_canvas(ends, tmp_path, capsys):
    """DRAM of mnist-numbers on a written number: the labels it reads, up to and with the end of the string, each
    with its probability, and the string (as `ram predict --json` gives them for the canvas the page shows); every
    glimpse where predict() puts it, with the label it leads to, those past the end too."""
    folder = tiny_numbers_run(tmp_path / "numbers", ends=ends)
    with TestClient(create_app(checkpoint=folder), base_url=LOCAL) as c:
        entry = {m["name"]: m for m in c.get("/api/models").json()["models"]}["run:numbers"]
        answer = c.post("/api/classify?seed=3", content=boxes_drawing("seven", "one", "zero", None, None)).json()
    assert (entry["drawings"], entry["fewest"], entry["outputs"], entry["canvas"]) == (5, 1, 6, 54)
    image = from_data_url(answer["image"])
    Image.fromarray(image).save(tmp_path / "canvas.png")
    capsys.readouterr()
    assert main(["predict", str(tmp_path / "canvas.png"), "--checkpoint", str(folder), "--json"]) == 0
    predicted = json.loads(capsys.readouterr().out)
    assert [{"label": a["label"], "probability": round(a["probability"], 4)} for a in answer["labels"]] \
        == predicted["labels"]
    assert answer["class"] == predicted["class"] and answer["classes"][answer["end"]] == "EOS"
    if ends:
        assert [a["label"] for a in answer["labels"]] == [answer["end"]] and answer["class"] == ""
    out = ram.load(folder).predict(image)
    assert [s["output"] for s in answer["steps"]] == out.output_of[0].tolist() == [t // 2 for t in range(12)]
    for t, step in enumerate(answer["steps"]):
        np.testing.assert_allclose([step["x"], step["y"]], out.pixels[0, t].tolist(), atol=1e-5)
    for k, label in enumerate(answer["labels"]):
        np.testing.assert_allclose(label["probs"], out.probs[0, k].tolist(), atol=1e-6)
    assert len(answer["colours"]) == 6


def test_a_dropped_number_is_read_from_its_gaps_and_a_bad_layout_is_named(numbers_run):
    with TestClient(create_app(checkpoint=numbers_run), base_url=LOCAL) as c:
        gaps = c.post("/api/classify?layout=gaps", content=written_number(*UNEVEN)).json()
        boxes = c.post("/api/classify?layout=boxes", content=written_number(*UNEVEN)).json()
        bad = c.post("/api/classify?layout=columns", content=written_number(*UNEVEN))
    assert (gaps["prepared"], gaps["digits"]) == ("digits", 3)
    assert (boxes["prepared"], boxes["digits"]) == ("digits", 4)
    assert bad.status_code == 422
    assert bad.json()["error"] == "layout = 'columns': must be one of boxes, gaps"


@pytest.mark.parametrize("boxes, message", [
    (("seven", None, "one", None, None), "box 2 of 5 is blank and box 3 is not: write the number from the left"),
    ((None, None, None, None, "one"), "box 1 of 5 is blank and box 5 is not"),
    ((None, None, None, None, None), "nothing is drawn: this model reads numbers of 1 to 5 digits"),
], ids=["a-gap", "only-the-last", "blank"])
def test_a_number_with_a_blank_box_inside_is_refused(numbers_run, boxes, message):
    with TestClient(create_app(checkpoint=numbers_run), base_url=LOCAL) as c:
        answer = c.post("/api/classify", content=boxes_drawing(*boxes))
    assert answer.status_code == 422
    assert message in answer.json()["error"]


def test_sampled_glimpses_repeat_with_their_seed(client):
    def ask(mode, seed):
        return client.post(f"/api/classify?model=mnist-g6&mode={mode}&seed={seed}", content=drawing()).json()

    first, again, other, means = ask("sampled", 3), ask("sampled", 3), ask("sampled", 4), ask("means", 3)
    assert first["steps"] == again["steps"]
    assert [s["x"] for s in first["steps"]] != [s["x"] for s in other["steps"]]
    assert [s["x"] for s in first["steps"]] != [s["x"] for s in means["steps"]]


def test_new_clutter_places_the_digit_anew_and_the_same_seed_again(client):
    def image(seed):
        answer = client.post(f"/api/classify?model=mnist-cluttered-g6&seed={seed}", content=drawing("zero")).json()
        return from_data_url(answer["image"])

    a, b, c = image(7), image(7), image(8)
    assert a.shape == (60, 60)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_a_run_folder_is_offered_and_opened_with(tmp_path):
    folder = tmp_path / "my-run"
    small = RunConfig(model=ModelConfig(glimpses=3, hidden=8))
    ckpt.export_model(folder, build_model(small.model), small)
    with TestClient(create_app(checkpoint=folder), base_url=LOCAL) as c:
        listing = c.get("/api/models").json()
        assert listing["default"] == "run:my-run" and "mnist-g6" in {m["name"] for m in listing["models"]}
        answer = c.post("/api/classify", content=drawing()).json()
        by_path = c.post("/api/classify", params={"model": str(folder)}, content=drawing())
    assert answer["model"] == "run:my-run" and len(answer["steps"]) == 3
    assert by_path.status_code == 404  # a request names a model; it never opens a path


def test_with_no_digits_cached_clutter_is_cut_from_the_drawing_and_nothing_is_written(tmp_path, monkeypatch):
    """With no MNIST in the data cache, clutter is cut from the drawn digit: nothing is fetched or written."""
    monkeypatch.setenv("RAM_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("RAM_MNIST_MIRRORS", "")
    with TestClient(create_app(), base_url=LOCAL) as c:
        answer = c.post("/api/classify?model=mnist-cluttered-g6&seed=1", content=drawing("zero"))
    assert answer.status_code == 200
    assert list(tmp_path.iterdir()) == []


@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")
@pytest.mark.parametrize("query, body, status, message", [
    ("model=mnist-g6", b"x" * 200_001, 413, "at most 200,000"),
    ("model=mnist-g6", b"%PDF-1.4 not a picture", 422, "not an image"),
    ("model=mnist-g6", drawing()[:300], 422, "truncated"),
    ("model=mnist-g6", png_header(10_000, 10_000), 422, "10000x10000 pixels"),
    ("model=mnist-g6", png_bytes(np.zeros((280, 280), np.uint8)), 422, "empty"),
    ("model=mnist-g6", b"", 422, "empty"),
    ("model=nope", drawing(), 404, "model = 'nope': unknown"),
    ("model=catch", drawing(), 422, "catch model"),
    ("model=mnist-g6&seed=-1", drawing(), 422, "seed = -1"),
    ("model=mnist-g6&mode=greedy", drawing(), 422, "mode = 'greedy'"),
    ("model=mnist-pairs", pair_drawing("seven", None), 422, "digit 2 of 2 is empty"),
], ids=["too-long", "pdf", "truncated", "huge", "blank-canvas", "no-body", "unknown-model", "a-game", "seed", "mode",
        "half-a-pair"])
def test_bad_requests_get_a_4xx_with_a_message(client, query, body, status, message):
    answer = client.post(f"/api/classify?{query}", content=body)
    assert answer.status_code == status
    assert message in answer.json()["error"]


def test_a_streamed_body_is_cut_off_once_it_passes_the_limit(client):
    def chunks():  # no Content-Length: the app counts as it reads
        for _ in range(100):
            yield b"\0" * 10_000

    answer = client.post("/api/classify?model=mnist-g6", content=chunks())
    assert answer.status_code == 413 and "over 200,000 bytes" in answer.json()["error"]


def test_tabs_asking_at_once_each_get_their_own_answer(client):
    requests = [(kind, model, mode, seed) for kind in ("seven", "one", "zero")
                for model, mode, seed in (("mnist-g6", "means", 0), ("mnist-translated-g6", "sampled", 2))]
    alone = [client.post(f"/api/classify?model={m}&mode={mode}&seed={s}", content=drawing(k)).json()
             for k, m, mode, s in requests]
    together: list = [None] * len(requests)
    start = threading.Barrier(len(requests))

    def ask(i):
        kind, model, mode, seed = requests[i]
        start.wait()
        together[i] = client.post(f"/api/classify?model={model}&mode={mode}&seed={seed}", content=drawing(kind)).json()

    threads = [threading.Thread(target=ask, args=(i,)) for i in range(len(requests))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert together == alone


def test_a_person_s_moves_replay_the_agent_s_game(client):
    """The server's stepping (what a person plays through) follows the same rules as the agent's game."""
    game = client.get("/api/catch/game?seed=3").json()
    T = len(game["steps"])
    assert len(game["frames"]) == T + 1 and T == 23 and game["start"]["row"] == 0
    state = game["start"]
    for t, step in enumerate(game["steps"]):
        answer = client.post("/api/catch/step", json={"state": state, "move": step["move"]}).json()
        assert answer["frame"] == game["frames"][t + 1], t
        state = answer["state"]
    assert answer["done"] and answer["caught"] == game["caught"]


def test_the_agent_s_game_is_its_seed_s(client):
    a, b = (client.get("/api/catch/game?seed=5&mode=sampled").json() for _ in range(2))
    assert a == b
    modes = client.get("/api/catch/game?seed=5").json()
    assert modes["frames"][0] == a["frames"][0]  # the same start, played another way
    assert len(modes["steps"][0]["boxes"]) == 3


@pytest.mark.parametrize("body, message", [
    ({"state": {"row": 0, "ball_x": 3.0, "dx": 0.5, "paddle_x": 4}, "move": 3}, "move = 3"),
    ({"state": {"row": 23, "ball_x": 3.0, "dx": 0.5, "paddle_x": 4}, "move": 1}, "row = 23"),
    ({"state": {"row": 0, "ball_x": "x", "dx": 0.5, "paddle_x": 4}, "move": 1}, "ball_x = 'x'"),
    ({"state": {"row": 0, "ball_x": 3.0, "dx": 2, "paddle_x": 4}, "move": 1}, "dx = 2"),
    ({"move": 1}, "the body must be"),
])
def test_a_bad_game_state_is_refused(client, body, message):
    answer = client.post("/api/catch/step", json=body)
    assert answer.status_code == 422 and message in answer.json()["error"]


# ---- the command ----------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("args, message", [
    (["--port", "0"], "port = 0: must be in 1..65535"),
    (["--port", "70000"], "port = 70000"),
    (["--pretrained", "mnist-g99"], "pretrained = 'mnist-g99': unknown"),
    (["--checkpoint", "no/such/run"], "no/such/run"),
])
def test_serve_refuses_bad_settings_before_starting(args, message, capsys):
    assert main(["serve", *args]) == 2
    assert message in capsys.readouterr().err


def test_serve_says_when_its_port_is_taken(capsys):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert main(["serve", "--port", str(port)]) == 2
    assert f"host/port = 127.0.0.1:{port}: cannot listen there" in capsys.readouterr().err


# ---- the page in a browser ------------------------------------------------------------------------------------------

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serving(log: Path, *args: str):
    """`ram serve ARGS` in a subprocess on a free port; its URL once it answers, then it is stopped."""
    port = free_port()
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    with open(log, "wb") as out:
        process = subprocess.Popen([sys.executable, "-m", "ram", "serve", "--port", str(port), *args], env=env,
                                   stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            urllib.request.urlopen(f"{url}/api/models", timeout=2)
            break
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                pytest.fail(f"ram serve did not start: {log.read_text()}")
            time.sleep(0.2)
    yield url
    process.terminate()
    process.wait(timeout=10)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    yield from serving(tmp_path_factory.mktemp("serve") / "serve.log")


@pytest.fixture(scope="module")
def numbers_server(tmp_path_factory, numbers_run):
    """`ram serve --checkpoint` of a tiny DRAM of mnist-numbers, which the page opens with."""
    yield from serving(tmp_path_factory.mktemp("serve") / "serve.log", "--checkpoint", str(numbers_run))


@pytest.fixture(scope="module")
def browser():
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (pip install playwright)")
    if not Path(CHROMIUM).is_file():
        pytest.skip(f"no browser: {CHROMIUM} is missing (apt-get install chromium)")
    with sync_api.sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, headless=True)
        yield chromium
        chromium.close()


SEVEN = [(0.3, 0.2), (0.75, 0.2), (0.45, 0.85)]  # strokes, as fractions of a drawing box
ONE = [(0.5, 0.15), (0.48, 0.85)]


def draw(page, box: str, stroke: list[tuple[float, float]]) -> None:
    """One stroke of the mouse across the drawing box `box` (a selector)."""
    where = page.locator(box).bounding_box()
    page.mouse.move(where["x"] + stroke[0][0] * where["width"], where["y"] + stroke[0][1] * where["height"])
    page.mouse.down()
    for fx, fy in stroke[1:]:
        page.mouse.move(where["x"] + fx * where["width"], where["y"] + fy * where["height"], steps=12)
    page.mouse.up()


def open_page(browser, url: str, viewport: tuple[int, int] | None = (1280, 800)):
    """A new page at url once it is ready (of viewport's width and height; None: the browser's own), and the list
    its script errors are collected in."""
    page = browser.new_page(**({"viewport": dict(zip(("width", "height"), viewport))} if viewport else {}))
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(url)
    page.wait_for_selector("body[data-ready]")
    return page, errors


def test_the_page_draws_what_the_model_does(server, browser, g6):
    page, errors = open_page(browser, server)
    assert page.input_value("#model") == "mnist-g6"

    draw(page, "#pad", SEVEN)
    page.wait_for_selector("#view[data-label]")

    glimpses = page.locator("#overlay .glimpse")
    assert glimpses.count() == g6.cfg.model.glimpses
    shown = np.array([[float(g.get_attribute("data-x")), float(g.get_attribute("data-y"))] for g in glimpses.all()])
    image = from_data_url(page.get_attribute("#input", "src"))
    out = g6.predict(image)
    np.testing.assert_allclose(shown, out.pixels[0].numpy(), atol=1e-4)
    assert int(page.get_attribute("#view", "data-label")) == int(out.labels[0])
    page.wait_for_selector("#view[data-state=done]")
    assert page.locator("#overlay .glimpse.current rect").count() == g6.cfg.model.scales
    assert page.locator("#patches img").count() == g6.cfg.model.scales
    assert page.locator("#bars .fill").count() == 10
    assert f"It says {int(out.labels[0])}" in page.inner_text("#verdict")

    page.set_input_files("#file", files=[{"name": "notes.txt", "mimeType": "text/plain", "buffer": b"not a digit"}])
    page.wait_for_selector("#error:not([hidden])")
    assert "not an image" in page.inner_text("#error")
    assert page.locator("#overlay .glimpse").count() == 0
    assert errors == []
    page.close()


def test_the_page_finds_both_digits_of_a_drawn_pair(server, browser, pairs):
    """mnist-pairs (DRAM): a drawing box per digit, nothing asked until both have ink, then the two labels it emits
    and its glimpses, each in the colour of the label it leads to."""
    page, errors = open_page(browser, server)
    page.select_option("#model", "mnist-pairs")
    assert page.locator("#pads canvas").count() == 2

    draw(page, "#pad", SEVEN)
    assert "now draw digit 2" in page.inner_text("#prepared")
    draw(page, "#pad-2", ONE)
    page.wait_for_selector("#view[data-label]")

    image = from_data_url(page.get_attribute("#input", "src"))
    assert image.shape == (100, 100)
    out = pairs.predict(image)
    assert page.get_attribute("#view", "data-label") == " ".join(map(str, out.labels[0].tolist()))
    glimpses = page.locator("#overlay .glimpse").all()
    shown = np.array([[float(g.get_attribute("data-x")), float(g.get_attribute("data-y"))] for g in glimpses])
    np.testing.assert_allclose(shown, out.pixels[0].numpy(), atol=1e-4)
    outputs = [int(g.get_attribute("data-output")) for g in glimpses]
    assert outputs == out.output_of[0].tolist()

    answers = page.locator("#answers .answer")
    step = "(t) => { const s = document.getElementById('step'); s.value = t; s.dispatchEvent(new Event('input')); }"
    page.evaluate(step, outputs.index(1) - 1)  # stepped to the glimpse that emits the first label
    assert [a.is_visible() for a in answers.all()] == [True, False]
    page.evaluate(step, len(outputs) - 1)
    assert [a.is_visible() for a in answers.all()] == [True, True]
    for k, a in enumerate(answers.all()):
        assert a.inner_text().split()[0] == str(int(out.labels[0, k]))
    tab = matplotlib.colormaps[OUTPUT_COLOURS]
    rgb = [f"rgb({', '.join(str(round(255 * c)) for c in tab(k)[:3])})" for k in range(2)]
    strokes = page.evaluate("[...document.querySelectorAll('#overlay .glimpse rect.scale-0')]"
                            ".map((r) => getComputedStyle(r).stroke)")
    assert strokes == [rgb[k] for k in outputs] and rgb[0] != rgb[1]
    first, second = (str(int(c)) for c in out.labels[0])
    assert f"It says {first} then {second}" in page.inner_text("#verdict")
    assert errors == []
    page.close()


def test_the_page_reads_a_written_number(numbers_server, browser, numbers_run):
    """mnist-numbers (DRAM): five boxes filled from the left, the model asked after each digit (the blank boxes after
    it make the number shorter) and not while a box before a drawn one is blank; then the labels it reads, up to a
    string's end, each in the colour of its glimpses, those past the end grey."""
    page, errors = open_page(browser, numbers_server)
    assert page.input_value("#model") == "run:numbers"
    assert page.locator("#pads canvas").count() == 5
    assert "Write a number of 1 to 5 digits" in page.inner_text("#pad-title")

    draw(page, "#pad", SEVEN)
    page.wait_for_selector("#view[data-label]")  # one digit is a number
    page.evaluate("document.getElementById('view').removeAttribute('data-label')")
    draw(page, "#pad-3", ONE)  # box 2 left blank
    assert "box 2 is blank" in page.inner_text("#prepared")
    assert page.get_attribute("#view", "data-label") is None
    page.click("#clear")
    draw(page, "#pad", SEVEN)
    page.wait_for_selector("#view[data-label]")
    page.evaluate("document.getElementById('view').removeAttribute('data-label')")
    draw(page, "#pad-2", ONE)
    page.wait_for_selector("#view[data-label]")

    image = from_data_url(page.get_attribute("#input", "src"))
    assert image.shape == (54, 54)
    assert "your 2 digits" in page.inner_text("#prepared")  # the blank boxes' hints are no digits
    out = ram.load(numbers_run).predict(image)
    read = out.labels[0, : out.read[0]].tolist()
    assert page.get_attribute("#view", "data-label") == " ".join(map(str, read))
    glimpses = page.locator("#overlay .glimpse").all()
    shown = np.array([[float(g.get_attribute("data-x")), float(g.get_attribute("data-y"))] for g in glimpses])
    np.testing.assert_allclose(shown, out.pixels[0].numpy(), atol=1e-4)
    outputs = [int(g.get_attribute("data-output")) for g in glimpses]
    assert outputs == out.output_of[0].tolist()
    page.wait_for_selector("#view[data-state=done]")
    tab = matplotlib.colormaps[OUTPUT_COLOURS]
    rgb = [f"rgb({', '.join(str(round(255 * c)) for c in tab(k)[:3])})" for k in range(6)]
    strokes = page.evaluate("[...document.querySelectorAll('#overlay .glimpse rect.scale-0')]"
                            ".map((r) => getComputedStyle(r).stroke)")
    assert strokes == [rgb[k] if k < len(read) else "rgb(119, 119, 119)" for k in outputs]
    chips = [a.inner_text().split()[0] for a in page.locator("#answers .answer").all()]
    assert chips == ["end" if c == 10 else str(c) for c in read]
    assert f"It reads {out.names[0] or 'no digit'}" in page.inner_text("#verdict")

    # a file of the number written along one line, not in the boxes: cut at the gaps between its digits
    page.set_input_files("#file", files=[{"name": "number.png", "mimeType": "image/png",
                                          "buffer": written_number(*UNEVEN)}])
    page.wait_for_selector("#prepared:has-text('your 3 digits')")
    assert errors == []
    page.close()


def test_a_person_plays_catch_through_the_glimpse_window(server, browser):
    page, errors = open_page(browser, server, viewport=None)
    page.click("#tab-catch")
    page.wait_for_selector("#agent[data-seed='0']")
    page.select_option("#speed", "250")
    page.click("#play")
    page.keyboard.down("ArrowRight")
    page.wait_for_selector("#human-score.caught, #human-score.missed", timeout=20_000)  # the game's end
    page.keyboard.up("ArrowRight")
    game = json.loads(urllib.request.urlopen(f"{server}/api/catch/game?seed=0").read())
    assert f"the agent {'caught' if game['caught'] else 'missed'} it" in page.inner_text("#human-score")
    assert errors == []
    page.close()


def test_the_first_view_says_what_to_do_and_what_the_controls_mean(server, browser):
    """Before anything is drawn: a hint on the pad, what will appear where, and what 'policy means', 'sampled' and
    'seed' are. The first stroke wipes the hint, so it never reaches the model."""
    page = browser.new_page(viewport={"width": 1280, "height": 800})
    page.goto(server)
    page.wait_for_selector("body[data-ready]")
    assert "Draw a digit on the pad" in page.inner_text("#prepared")
    help_text = page.inner_text("#help")
    assert "policy means" in help_text and "sampled" in help_text and "seed" in help_text
    grey = "(() => { const d = document.getElementById('pad').getContext('2d').getImageData(70, 125, 140, 30).data;"\
           " let n = 0; for (let i = 0; i < d.length; i += 4) n += d[i] > 0; return n; })()"
    assert page.evaluate(grey) > 0  # the hint's text
    box = page.locator("#pad").bounding_box()
    page.mouse.move(box["x"] + 0.8 * box["width"], box["y"] + 0.1 * box["height"])
    page.mouse.down()
    page.mouse.move(box["x"] + 0.9 * box["width"], box["y"] + 0.3 * box["height"], steps=4)
    page.mouse.up()
    assert page.evaluate(grey) == 0  # wiped by the stroke, far from it
    page.close()
