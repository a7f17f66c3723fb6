"""Generated colour scenes for `ram train --data`: one shape (circle, square or triangle) per image, the layout a
user's folder has (OUT/train/<class>/NNNN.png, OUT/test/<class>/NNNN.png).

Each 40x40 RGB scene (by default) has a dark background of a random colour with pixel noise, one shape of a random
bright colour, size (a radius of 5 to 12 pixels), turn and place (wholly inside the image), and three small specks of
other colours that are not the shape: the class is the shape's outline, not a colour or a place. Everything is drawn
from one seed, so the same command writes the same files.

    python benchmarks/shapes.py data/shapes                     # 1,500 training and 300 test images, 40x40
    python benchmarks/shapes.py data/shapes --train 250 --size 64
    python benchmarks/shapes.py data/shapes-plain --plain           # no specks, shapes upright: an easier set
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

CLASSES = ("circle", "square", "triangle")


def scene(rng: np.random.Generator, label: int, size: int, *, plain: bool = False) -> Image.Image:
    """One size x size RGB scene holding shape CLASSES[label]. plain: no specks, and the square and triangle stand
    upright (size, place and colours still vary)."""
    background = rng.integers(0, 80, 3)
    noise = rng.normal(0, 12, (size, size, 3))
    image = Image.fromarray(np.clip(background + noise, 0, 255).astype(np.uint8), "RGB")
    pen = ImageDraw.Draw(image)
    for _ in range(0 if plain else 3):  # specks: colour in other places than the shape
        x, y = rng.integers(0, size - 3, 2)
        pen.rectangle((int(x), int(y), int(x) + 2, int(y) + 2), fill=tuple(int(c) for c in rng.integers(60, 256, 3)))
    r = rng.uniform(5, min(12, size / 3))
    cx, cy = rng.uniform(r + 1, size - r - 1, 2)
    colour = tuple(int(c) for c in rng.integers(120, 256, 3))
    upright = math.pi / 4 if CLASSES[label] == "square" else -math.pi / 2  # a corner at the top of a triangle
    turn = upright if plain else rng.uniform(0, 2 * math.pi)
    if CLASSES[label] == "circle":
        pen.ellipse((cx - r, cy - r, cx + r, cy + r), fill=colour)
    else:
        corners = 4 if CLASSES[label] == "square" else 3
        pen.polygon([(cx + r * math.cos(turn + 2 * math.pi * i / corners), cy + r * math.sin(turn + 2 * math.pi * i / corners))
                     for i in range(corners)], fill=colour)
    return image


def write(out: Path, *, train: int, test: int, size: int, seed: int, plain: bool = False) -> None:
    """train and test scenes, as evenly over the classes as the counts allow, into out/train and out/test. Each part
    has its own random stream: the test scenes are the same whatever the number of training scenes, and a smaller
    training set is the start of a larger one."""
    if out.exists():
        raise SystemExit(f"out = {str(out)!r} already exists; remove it or pick another folder")
    for k, (part, n) in enumerate((("train", train), ("test", test))):
        rng = np.random.default_rng([seed, k])
        for name in CLASSES:
            (out / part / name).mkdir(parents=True)
        for i in range(n):
            label = i % len(CLASSES)
            scene(rng, label, size, plain=plain).save(out / part / CLASSES[label] / f"{i:04d}.png")
    print(f"wrote {train} training and {test} test scenes of {size}x{size} into {out}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--train", type=int, default=1500)
    parser.add_argument("--test", type=int, default=300)
    parser.add_argument("--size", type=int, default=40)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--plain", action="store_true", help="no specks; squares and triangles upright")
    args = parser.parse_args()
    write(args.out, train=args.train, test=args.test, size=args.size, seed=args.seed, plain=args.plain)


if __name__ == "__main__":
    main()
