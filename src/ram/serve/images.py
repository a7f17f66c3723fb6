"""People's images for the page: an upload decoded with limits (and in the formats the data loader reads,
`ram.data.images.FORMATS`, alone), a drawing made to look like MNIST digits (one, or several side by side), and those
digits put on a model's canvas by its task's own placement code (`place_drawn`: `ram.data.tasks.place` for one digit,
`ram.data.multi.place_apart` for a pair, `ram.data.numbers.place_strings` for a string).

Everything here is a pure function of its arguments (the clutter of a placement comes from the seed it is given), and
every refusal is a `BadImage` whose message the page shows as it is.
"""

from __future__ import annotations

import io
import threading

import numpy as np
import torch
from PIL import Image

from ..config import TaskConfig, task_of
from ..data import decoding
from ..data.tasks import DIGIT, generator

MAX_PIXELS = 4_000_000  # 2000 x 2000: far more than a digit needs, and a decoded image stays under 16 MB (RGBA)
MAX_SECONDS = 2.0  # a 2000x2000 PNG or JPEG decodes in a tenth of that
INK = 48  # a pixel is part of the drawing from this grey (0-255) up: JPEG noise and paper texture stay below it
BOX = 20  # MNIST's digits fit a 20x20 box, centred by their centre of mass in the 28x28 image
GAP = 0.05  # digits side by side lie at least this share of the ink's height apart; a narrower gap: a broken stroke
LAYOUTS = ("boxes", "gaps")
"""How a drawing of several digits side by side is cut into digits: boxes, into equal columns (the page's drawing
boxes, sent as one image); gaps, at the blank columns between them (an image file: a photo or a scan)."""


class BadImage(ValueError):
    """An upload the page cannot use; the message says why, for the person who sent it."""


def decode(data: bytes, *, max_pixels: int = MAX_PIXELS, max_seconds: float = MAX_SECONDS,
           stop: threading.Event | None = None) -> np.ndarray:
    """The bytes of an image file -> uint8 [H, W], the ink bright on dark as in MNIST.

    Decoded as every image is, bounded in pixels (as decoded: a TIFF's tiles too) and time (`ram.data.decoding`). A
    transparent image's ink is where it is opaque; an opaque one is inverted when its border is bright (dark ink on
    paper). `stop`, when set, stops the decode at its next block (`ram.data.decoding`).
    """
    if not data:
        raise BadImage("the upload is empty: draw a digit or drop an image file")
    try:
        image = decoding.decode(io.BytesIO(data), max_pixels=max_pixels, max_seconds=max_seconds, stop=stop)
    except decoding.NotAnImage:
        raise BadImage(f"the upload is not an image (only {decoding.FORMAT_NAMES} are read)") from None
    except decoding.UnreadableImage as e:
        raise BadImage(f"the upload cannot be used: {e} (a digit needs about 28x28 pixels)") from None
    try:
        return _ink(image)
    except ValueError as e:  # a mode Pillow has no conversion for, such as LAB to grey
        raise BadImage(f"the {image.format} image is in mode {image.mode}, which is not read here ({e}); save it as "
                       "greyscale or RGB") from None


def _ink(image: Image.Image) -> np.ndarray:
    """A decoded image -> uint8 [H, W], the ink bright: its opacity if it has transparent pixels, else its grey
    levels, inverted when its border is bright."""
    if image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info:
        alpha = np.asarray(image.convert("RGBA"))[..., 3]
        if alpha.min() < 255:
            return alpha.copy()
    grey = np.asarray(decoding.converted(image, "L"))
    border = np.concatenate([grey[0], grey[-1], grey[:, 0], grey[:, -1]])
    return (255 - grey) if border.mean() > 127 else grey.copy()


def mnist_digit(ink: np.ndarray) -> np.ndarray:
    """A drawing uint8 [H, W] (ink bright) -> uint8 [28, 28] as MNIST's digits were made: the ink's bounding box
    scaled (anti-aliased, aspect kept) to fit 20x20, then placed so its centre of mass is the image's centre."""
    rows, cols = np.nonzero(ink >= INK)
    if rows.size == 0:
        raise BadImage("the drawing is empty: draw a digit (a light stroke on a dark canvas, or dark on light paper)")
    crop = ink[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1]
    h, w = crop.shape
    scale = BOX / max(h, w)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    small = np.asarray(Image.fromarray(crop).resize(size, Image.LANCZOS), dtype=np.float64)
    mass = small.sum()
    if mass == 0:
        raise BadImage("the drawing is empty: draw a digit")
    ys, xs = np.indices(small.shape)
    centre = (DIGIT - 1) / 2  # pixel j spans [j, j + 1): the image's centre is between pixels 13 and 14
    top = int(np.clip(round(centre - (ys * small).sum() / mass), 0, DIGIT - small.shape[0]))
    left = int(np.clip(round(centre - (xs * small).sum() / mass), 0, DIGIT - small.shape[1]))
    out = np.zeros((DIGIT, DIGIT), np.uint8)
    out[top : top + small.shape[0], left : left + small.shape[1]] = np.clip(small.round(), 0, 255)
    return out


def on_canvas(digits: np.ndarray, task: TaskConfig, *, seed: int, pool: torch.Tensor | None = None) -> np.ndarray:
    """Digits uint8 [k, 28, 28] (k in the task's `drawings`) on the task's canvas, uint8 [canvas, canvas], placed as
    its test images are, with its clutter, all drawn from `seed` (the same seed, the same image). pool: uint8
    [M, 28, 28], the digits clutter is cut from (the training digits; None cuts it from these digits)."""
    digits = torch.from_numpy(np.ascontiguousarray(digits))
    return task_of(task.dataset).place_drawn(digits, task, pool=pool, gen=generator(seed)).numpy()


def at_gaps(ink: np.ndarray) -> list[np.ndarray]:
    """An image of digits side by side, uint8 [H, W] -> each digit's columns, left to right: the runs of columns
    with ink, those less than GAP of the ink's height apart taken as one digit (a stroke broken by a column or two)."""
    cols, rows = (ink >= INK).any(axis=0), (ink >= INK).any(axis=1)
    if not cols.any():
        return []
    height = int(np.ptp(np.nonzero(rows)[0])) + 1
    edges = np.diff(np.concatenate([[0], cols.astype(np.int8), [0]]))
    starts, ends = np.nonzero(edges == 1)[0], np.nonzero(edges == -1)[0]
    runs = [[int(starts[0]), int(ends[0])]]
    for start, end in zip(starts[1:], ends[1:]):
        if start - runs[-1][1] < max(1, round(GAP * height)):
            runs[-1][1] = int(end)
        else:
            runs.append([int(start), int(end)])
    return [ink[:, start:end] for start, end in runs]


def drawn_digits(ink: np.ndarray, counts: range, *, layout: str = "boxes") -> np.ndarray:
    """A drawing of digits side by side, uint8 [H, W] -> uint8 [k, 28, 28], k in counts, each made MNIST-like.

    layout boxes: the drawing cut into counts[-1] columns of equal width (the page's drawing boxes, sent as one
    image). Boxes left blank after the last drawn one make a shorter string of digits; a blank box before a drawn one,
    or fewer than counts[0] digits, is refused. layout gaps: cut at the blank columns between digits (`at_gaps`), for
    an image file of digits written anywhere along it; a count outside counts is refused, naming it."""
    n = counts[-1]
    if n == 1:
        return mnist_digit(ink)[None]
    if layout == "gaps":
        found = at_gaps(ink)
        if not found:
            raise BadImage("the image is empty: no ink (a light stroke on a dark ground, or dark on light paper)")
        if len(found) not in counts:
            many = f"{counts[0]} to {n}" if len(counts) > 1 else f"{n}"
            raise BadImage(f"the image holds {len(found)} digit(s) side by side (columns of ink between blank "
                           f"columns), and this model reads {many}")
        return np.stack([mnist_digit(digit) for digit in found])
    columns = np.array_split(ink, n, axis=1)
    drawn = [bool((column >= INK).any()) for column in columns]
    k = max((i + 1 for i, d in enumerate(drawn) if d), default=0)  # up to the last box drawn in
    if k and not all(drawn[:k]):
        blank = drawn.index(False) + 1
        raise BadImage(f"box {blank} of {n} is blank and box {k} is not: write the number from the left, one digit "
                       "a box, with no blank box between digits")
    if k < counts[0]:
        if len(counts) == 1:
            raise BadImage(f"digit {k + 1} of {n} is empty: this model reads {n} digits side by side, so draw one "
                           f"in each box (or drop an image of {n} digits side by side)")
        drawn = "nothing is drawn" if k == 0 else f"{k} digit(s) are drawn"
        raise BadImage(f"{drawn}: this model reads numbers of {counts[0]} to {n} digits, written one a box from "
                       "the left")
    return np.stack([mnist_digit(column) for column in columns[:k]])


def prepare(ink: np.ndarray, task: TaskConfig, *, seed: int, pool: torch.Tensor | None = None,
            layout: str = "boxes") -> tuple[np.ndarray, str, int]:
    """What the model reads, uint8 [canvas, canvas], how it was made and from how many drawn digits: an image already
    of the model's size is taken as it is ("as is", 0); anything else is a drawing of the task's digits side by side,
    cut into digits as `layout` says (`drawn_digits`), each made MNIST-like, and placed ("digit", 1, or "digits" and
    how many)."""
    if ink.shape == (task.canvas, task.canvas):
        return ink, "as is", 0
    learns = task_of(task.dataset)
    if not hasattr(learns, "place_drawn"):
        raise BadImage(f"this model reads {task.canvas}x{task.canvas} images of its own data set, and the image is "
                       f"{ink.shape[1]}x{ink.shape[0]}; drawn digits go to the MNIST models")
    digits = drawn_digits(ink, learns.drawings(task), layout=layout)
    return on_canvas(digits, task, seed=seed, pool=pool), "digit" if len(digits) == 1 else "digits", len(digits)
