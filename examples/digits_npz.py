"""A second real dataset through `ram train --data FILE.npz`: scikit-learn's bundled handwritten digits.

scikit-learn ships the UCI optical-recognition digits (1,797 grey 8x8 images, 0-16 per pixel) inside its wheel, so
this needs no network beyond PyPI. The first 80% (in the file's order) become x_train, the rest x_test:

    pip install scikit-learn
    python examples/digits_npz.py data/digits.npz
    ram train --preset mnist --data data/digits.npz --image-size 16 --patch-size 8 --glimpses 6 --out runs/digits-g6
"""

import sys
from pathlib import Path

import numpy as np
from sklearn.datasets import load_digits


def main(out: Path) -> None:
    digits = load_digits()
    x = np.rint(digits.images * (255 / 16)).astype(np.uint8)  # [1797, 8, 8], 0-16 -> 0-255
    y = digits.target.astype(np.int64)
    n = round(0.8 * len(x))
    out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(out, x_train=x[:n], y_train=y[:n], x_test=x[n:], y_test=y[n:],
                        classes=np.array([str(d) for d in range(10)]))
    print(f"wrote {n} training and {len(x) - n} test images into {out}")


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "data/digits.npz"))
