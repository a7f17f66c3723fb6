"""Two models' glimpse tracks side by side on the same test images, each under its own caption: `ram viz`'s
tracks.png of each, put in one picture.

    # the 100x100 g4 row before and after its first glimpse was decided by the image (docs/first-glimpse.png);
    # runs/mnist-cluttered-100-g4-phase1 is the row's first phase, which `ram reproduce mnist-cluttered-100-g4` writes
    python benchmarks/first_glimpse_picture.py runs/mnist-cluttered-100-g4-phase1 mnist-cluttered-100-g4 \\
      --captions "first glimpse from the zero state:|the same point in every image (11.59%)" \\
                 "first glimpse decided by the image|(--first-glimpse context: 6.54%)" --out docs/first-glimpse.png
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont



def tracks(model: str, n: int, folder: Path) -> Image.Image:
    """`ram viz`'s tracks.png of `model` (a run folder or a shipped model's name) on the first n test images."""
    which = ["--checkpoint", model] if Path(model).is_dir() else ["--pretrained", model]
    subprocess.run([sys.executable, "-m", "ram", "viz", *which, "--n", str(n), "--out", str(folder)], check=True,
                   stdout=subprocess.DEVNULL)
    return Image.open(folder / "tracks.png").convert("RGB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("models", nargs=2, help="two run folders or shipped models' names, left then right")
    parser.add_argument("--captions", nargs=2, required=True, help="a caption for each; '|' breaks a line")
    parser.add_argument("--n", type=int, default=4, help="test images in each (default 4)")
    parser.add_argument("--out", type=Path, required=True, help="the PNG to write")
    args = parser.parse_args()
    for model in args.models:
        if not Path(model).is_dir() and "/" in model:
            raise SystemExit(f"{model}: no such run folder")
    with tempfile.TemporaryDirectory() as tmp:
        left, right = (tracks(m, args.n, Path(tmp) / str(i)) for i, m in enumerate(args.models))
    head, gap, font = 50, 20, ImageFont.load_default(size=16)
    out = Image.new("RGB", (left.width + gap + right.width, head + max(left.height, right.height)), "white")
    pen = ImageDraw.Draw(out)
    for x, image, caption in ((0, left, args.captions[0]), (left.width + gap, right, args.captions[1])):
        pen.text((x + 12, 6), caption.replace("|", "\n"), fill="black", font=font)
        out.paste(image, (x, head))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    out.save(args.out, optimize=True)
    print(args.out)


if __name__ == "__main__":
    main()
