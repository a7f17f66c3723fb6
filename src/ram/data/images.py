"""Your own images: a folder of class folders or an .npz file, decoded once into a uint8 cache on disk, read from there.

Sources (`ram train --data PATH`)
  folder  PATH/train/<class>/*.png|jpg|... and PATH/test/<class>/..., or PATH/<class>/... of which a fixed share of
          each class (TaskConfig.test_fraction, 20%) is held out for testing, drawn with a fixed seed: the same
          images for every run on the same folder. Classes are the folder names, sorted; images in subfolders of a
          class folder belong to it; hidden files and files of other types are skipped. Only PNG, JPEG, GIF, BMP,
          WebP and TIFF are decoded (FORMATS), whatever a file's extension says.
  npz     x_train, y_train, x_test, y_test, and optionally classes (one name per label; else "0".."K-1").
          x: uint8 (0-255) or float (0-1), [N, H, W], [N, H, W, C] or [N, C, H, W] with C = 1 or 3; y: integers.
          Arrays of other dtypes (objects, which would need pickle, strings) are refused by name.

Every image is brought to size x size, `size` being --image-size or, by default, the larger side of the first training
image (in sorted order; above MAX_SIDE, 1024, only an explicit --image-size will do): an image of another size is
scaled to fit, keeping its aspect, and padded with black (the zeros the sensor reads off the image). Channels come from
the data: grey when every image is grey, else RGB, grey images then converted (a notice names them).

The cache, {data_dir()}/images/{name}-{key}/, holds train_x.npy, train_y.npy, test_x.npy, test_y.npy and meta.json;
images are uint8 [N, C, H, W], labels int64 [N]. key hashes the relative paths (a name that is not UTF-8 as its
bytes), sizes and modification times of the files (of an .npz, its size and time), the image size and the test split:
a changed folder is decoded again, an unchanged one never is. Free disk space is checked before it is written, into a
temp folder renamed into place at the end, so it is complete or absent; a temp folder left by a killed process is
removed by the next one. The arrays are opened with mmap_mode="r": a batch is read from disk (through the page cache,
which the system frees under pressure) and memory grows with the batch, not the dataset.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import shutil
import sys
import tempfile
import warnings
import zipfile
from pathlib import Path
from collections.abc import Iterator
from typing import NamedTuple

import filelock
import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from tqdm import tqdm

from ..config import MODEL_LIMITS
from ..printable import shown
from .decoding import FORMAT_NAMES, FORMATS, UnreadableImage, converted, decode
from .mnist import DataError, Digits, data_dir

__all__ = ["FORMATS", "Source", "export_folder", "fit_image", "image_files", "inspect", "load", "open_image", "read_image",
           "with_channels"]

EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff")
GREY_MODES = ("1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "F")
_FORMAT = 1  # bump when the cache's layout changes: old entries are then never read
_SPLIT_STREAM = 0x5E7  # seed of the held-out test images of a flat folder
_ORDER_STREAM = 0x0D3  # seed of the order the images are stored in
_SHOWN = 5  # files named in a notice or an error about many
MAX_SIDE = 1024  # the largest image size taken from the data; above it, --image-size must say so


class Source(NamedTuple):
    """What a look at the files says, before any image is decoded."""

    path: Path
    kind: str  # "folder" or "npz"
    classes: tuple[str, ...]
    channels: int  # 1 (grey) or 3 (RGB); 0 for a folder until `with_channels` has read its headers
    size: int  # the side every image is brought to
    size_from: str  # where size came from, for messages: "--image-size" or the first image's file
    n_train: int
    n_test: int
    key: str  # the cache entry: {name}-{hash}
    train: list[tuple[str, int]] = []  # folder: (relative path, label); empty when the cache has them
    test: list[tuple[str, int]] = []
    grey: list[str] = []  # folder: grey files among colour ones, converted to RGB

    @property
    def cache(self) -> Path:
        return data_dir() / "images" / self.key


def notice(message: str) -> None:
    print(f"ram: notice: {shown(message)}", file=sys.stderr)  # the names of files in it may hold terminal escapes


def _few(files: list[str]) -> str:
    more = f" and {len(files) - _SHOWN} more" if len(files) > _SHOWN else ""
    return ", ".join(files[:_SHOWN]) + more


# Looking at the files -------------------------------------------------------------------------------------------------

def inspect(path: str | Path, *, size: int = 0, test_fraction: float = 0.2) -> Source:
    """Classes, channels, image size and counts of a folder or an .npz, and its cache key, with no image decoded.

    size = 0 takes the larger side of the first training image. Lists and stats every file and reads one header;
    the channels of a folder not decoded yet stay 0 until `with_channels` reads every header. Raises DataError naming
    the file or folder at fault.
    """
    path = Path(path)
    if not path.exists():
        raise DataError(f"data = {str(path)!r}: no such folder or file")
    if path.is_file():
        if path.suffix != ".npz":
            raise DataError(f"data = {str(path)!r}: a file must be an .npz holding x_train, y_train, x_test, y_test")
        return _inspect_npz(path, size=size)
    return _inspect_folder(path, size=size, test_fraction=test_fraction)


def image_files(folder: Path) -> list[Path]:
    """The image files under folder and its subfolders, by extension (EXTENSIONS), sorted; hidden ones skipped."""
    return sorted(p for p in folder.rglob("*") if p.suffix.lower() in EXTENSIONS and p.is_file()
                  and not any(part.startswith(".") for part in p.relative_to(folder).parts))


def _class_folders(root: Path) -> list[Path]:
    folders = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not folders:
        raise DataError(f"{root}: no class folders; expected {root}/<class>/*.png (or train/ and test/ of them)")
    return folders


def _listing(root: Path, folders: list[Path], classes: tuple[str, ...]) -> list[tuple[Path, int]]:
    """(file, label) of every image under the class folders; an empty class folder is an error naming it."""
    out = []
    for folder in folders:
        if folder.name not in classes:
            raise DataError(f"{folder}: class {folder.name!r} is not among the training classes {', '.join(classes)}")
        files = image_files(folder)
        if not files:
            raise DataError(f"{folder}: an empty class folder (no {'/'.join(e[1:] for e in EXTENSIONS[:3])} images); "
                            "remove it or add its images")
        out += [(f, classes.index(folder.name)) for f in files]
    return out


def _held_out(listing: list[tuple[Path, int]], fraction: float) -> tuple[list, list]:
    """A flat folder's (train, test): round(fraction * n) images of each class with n >= 2 for testing, drawn with a
    fixed seed, so the same folder always gives the same split."""
    gen = np.random.default_rng(_SPLIT_STREAM)
    labels = np.array([label for _, label in listing])
    test = np.zeros(len(listing), dtype=bool)
    for label in np.unique(labels):
        index = np.flatnonzero(labels == label)
        k = min(len(index) - 1, max(1, round(fraction * len(index)))) if len(index) >= 2 else 0
        test[gen.permutation(index)[:k]] = True
    return [x for x, t in zip(listing, test) if not t], [x for x, t in zip(listing, test) if t]


def _shuffled(items: list) -> list:
    """items in a fixed random order: a folder lists its classes one after the other, and the validation images
    (the end of the training set), --train-size (its start) and the pictures (the first test images) need them mixed."""
    return [items[i] for i in np.random.default_rng(_ORDER_STREAM).permutation(len(items))]


def _inspect_folder(root: Path, *, size: int, test_fraction: float) -> Source:
    split = (root / "train").is_dir() and (root / "test").is_dir()
    if (root / "train").is_dir() != (root / "test").is_dir():
        have, lack = ("train", "test") if (root / "train").is_dir() else ("test", "train")
        raise DataError(f"{root}: has {have}/ but no {lack}/; give both, or put the class folders in {root} itself "
                        "to hold out 20% of each class for testing")
    train_root = root / "train" if split else root
    folders = _class_folders(train_root)
    classes = tuple(f.name for f in folders)
    if len(classes) < 2:
        raise DataError(f"{train_root}: one class folder ({classes[0]!r}); a classifier needs at least 2")
    train = _listing(train_root, folders, classes)
    if split:
        test = _listing(root / "test", _class_folders(root / "test"), classes)
    else:
        train, test = _held_out(train, test_fraction)
    train, test = _shuffled(train), _shuffled(test)
    train, test = ([(str(f.relative_to(root)), label) for f, label in files] for files in (train, test))
    first = min(f for f, _ in train)  # in sorted order, not the stored one: what a user sees first
    size_from = "--image-size"
    if not size:
        width, height = _header(root / first).size
        size, size_from = max(width, height), f"the larger side of the first training image {first}"
        _bounded(size, f"{root / first}: the first training image is {width}x{height}")
    digest = hashlib.sha256(json.dumps([_FORMAT, size, split or test_fraction]).encode())
    for part, files in (("train", train), ("test", test)):
        for rel_path, label in files:
            st = (root / rel_path).stat()
            # fsencode: a name that is not UTF-8 (Latin-1 from an old camera) is kept as its bytes, not refused
            digest.update(part.encode() + b"\0" + os.fsencode(rel_path)
                          + f"\0{label}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    key = f"{root.resolve().name}-{digest.hexdigest()[:20]}"
    source = Source(root, "folder", classes, 0, size, size_from, len(train), len(test), key, train, test)
    meta = _meta(source.cache)
    return source if meta is None else source._replace(channels=meta["channels"], train=[], test=[])


_SCANNED: dict[str, tuple[int, list[str]]] = {}  # key -> (channels, grey files): read once per process


def with_channels(source: Source, *, progress: bool = True) -> Source:
    """The source with its channels: 1 if every image is grey, else 3, and the grey files to convert. Reads every
    image's header the first time (an unreadable file fails here, naming it)."""
    if source.channels:
        return source
    if source.key not in _SCANNED:
        files = source.train + source.test
        modes = [_header(source.path / f).mode for f, _ in tqdm(files, desc="read headers", unit="img",
                                                                 disable=not progress, leave=False)]
        grey = [f for (f, _), mode in zip(files, modes) if mode in GREY_MODES]
        channels = 1 if len(grey) == len(files) else 3
        _SCANNED[source.key] = channels, grey if channels == 3 else []
    channels, grey = _SCANNED[source.key]
    return source._replace(channels=channels, grey=grey)


def open_image(fp) -> Image.Image:
    """Pillow's lazy open of a file or a file object (the header only, pixels on load()), in FORMATS alone: anything
    else raises PIL.UnidentifiedImageError, as a file that is no image does."""
    return Image.open(fp, formats=FORMATS)


def _header(path: Path) -> Image.Image:
    """The image's size and mode, read from its header; a DataError naming the file if it is not an image."""
    try:
        with open_image(path) as image:
            return image
    except UnidentifiedImageError:
        raise DataError(f"{path}: not a readable image (only {FORMAT_NAMES} are read)") from None
    except Exception as e:  # noqa: BLE001 - a damaged header breaks Pillow's parsers in many ways (SyntaxError, ...)
        raise DataError(f"{path}: not a readable image ({type(e).__name__}: {e}); remove it or replace it") from None


class _Member(NamedTuple):
    """An .npz member's array header, read without loading the array."""

    shape: tuple[int, ...]
    dtype: np.dtype
    fortran: bool


def _npz_members(path: Path) -> dict[str, _Member]:
    """The header of each array in an .npz, each checked against the bytes its member holds: a header may declare
    10**9 elements in a file of a few bytes, and numpy allocates what the header says before it reads."""
    out = {}
    try:
        with zipfile.ZipFile(path) as z:
            for info in z.infolist():
                if info.filename.endswith(".npy"):
                    with z.open(info) as f:
                        version = np.lib.format.read_magic(f)
                        read = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                                else np.lib.format.read_array_header_2_0)
                        shape, fortran, dtype = read(f)
                        held = info.file_size - f.tell()
                    name = info.filename[:-4]
                    declared = math.prod(shape) * dtype.itemsize
                    if not dtype.hasobject and declared != held:
                        raise DataError(f"{path}: {name} declares shape {shape} of {dtype} ({declared:,} bytes) but "
                                        f"holds {held:,} bytes of data; the file is damaged")
                    out[name] = _Member(shape, dtype, fortran)
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as e:
        raise DataError(f"{path}: not a readable .npz ({type(e).__name__}: {e})") from None
    return out


def _layout(shape: tuple[int, ...], *, path: Path, name: str) -> tuple[int, int, int, bool]:
    """(channels, height, width, channels last) of an image array's shape; a DataError naming the field if none fits."""
    if len(shape) == 3:
        return 1, shape[1], shape[2], False
    if len(shape) == 4 and shape[-1] in (1, 3):
        return shape[-1], shape[1], shape[2], True
    if len(shape) == 4 and shape[1] in (1, 3):
        return shape[1], shape[2], shape[3], False
    raise DataError(f"{path}: {name} has shape {shape}; expected [N, H, W], [N, H, W, C] or [N, C, H, W] with C 1 or 3")


def _inspect_npz(path: Path, *, size: int) -> Source:
    members = _npz_members(path)
    missing = [k for k in ("x_train", "y_train", "x_test", "y_test") if k not in members]
    if missing:
        raise DataError(f"{path}: no {', '.join(missing)}; an .npz needs x_train, y_train, x_test, y_test "
                        f"(it holds {', '.join(members) or 'nothing'})")
    for name in ("x_train", "x_test", "y_train", "y_test"):  # from the headers: an object array cannot be loaded
        shape, dtype, _ = members[name]
        kinds, expected = ("iuf", "expected uint8 0..255 or floats 0..1") if name[0] == "x" else (
            "iu", "labels must be integers 0..K-1")
        if dtype.hasobject or (dtype.kind not in kinds and math.prod(shape)):
            raise DataError(f"{path}: {name} has dtype {dtype}; {expected}")
    layouts = {k: _layout(members[k][0], path=path, name=k) for k in ("x_train", "x_test")}
    if layouts["x_train"][0] != layouts["x_test"][0]:
        raise DataError(f"{path}: x_train has {layouts['x_train'][0]} channel(s), x_test {layouts['x_test'][0]}")
    for part in ("train", "test"):
        nx, ny = members[f"x_{part}"][0][0], members[f"y_{part}"][0]
        if ny != (nx,):
            raise DataError(f"{path}: x_{part} holds {nx} images but y_{part} has shape {ny}; expected ({nx},)")
    if members["x_train"][0][0] == 0:
        raise DataError(f"{path}: x_train holds no images")
    size_from = "--image-size"
    if not size:
        size, size_from = max(layouts["x_train"][1:3]), "the larger side of x_train's images"
        _bounded(size, f"{path}: x_train's images are {layouts['x_train'][1]}x{layouts['x_train'][2]} (HxW)")
    st = path.stat()
    digest = hashlib.sha256(json.dumps([_FORMAT, size, st.st_size, st.st_mtime_ns]).encode()).hexdigest()[:20]
    key = f"{path.stem}-{digest}"
    source = Source(path, "npz", (), layouts["x_train"][0], size, size_from, members["x_train"][0][0],
                    members["x_test"][0][0], key)
    meta = _meta(source.cache)
    if meta is not None:
        return source._replace(classes=tuple(meta["classes"]))
    with np.load(path, allow_pickle=False) as z:
        y_train, y_test = z["y_train"], z["y_test"]
        names = _npz_classes(z, path)
    k = len(names) if names else int(max(y_train.max(initial=0), y_test.max(initial=0))) + 1
    if k > MODEL_LIMITS["classes"]:  # the classes' names "0".."K-1" and the classifier's outputs would be made first
        raise DataError(f"{path}: the labels go up to {k - 1:,}, so there would be {k:,} classes; at most "
                        f"{MODEL_LIMITS['classes']:,} are trained (labels must be 0..K-1)")
    for name, y in (("y_train", y_train), ("y_test", y_test)):
        bad = np.flatnonzero((y < 0) | (y >= k))
        if bad.size:
            why = f"the {k} classes named in classes" if names else "0..K-1"
            raise DataError(f"{path}: {name}[{bad[0]}] = {y[bad[0]]} is out of range: labels must be in 0..{k - 1}, "
                            f"{why} ({bad.size} such label(s))")
    return source._replace(classes=names or tuple(str(c) for c in range(k)))


def _bounded(size: int, what: str) -> None:
    """A DataError if `size`, taken from the data (`what` says where), is above MAX_SIDE: one wide image sorted first
    would bring every image to its size (a 4000x1 PNG turned a 20 KB folder into a 153 MB cache)."""
    if size > MAX_SIDE:
        raise DataError(f"{what}, and every image would be brought to {size}x{size}, over {MAX_SIDE}x{MAX_SIDE}; "
                        "give the size to bring them to with --image-size (e.g. --image-size 64)")


def _npz_classes(z, path: Path) -> tuple[str, ...]:
    if "classes" not in z.files:
        return ()
    try:
        names = z["classes"]
    except ValueError as e:  # an object array would need pickle, which is refused
        raise DataError(f"{path}: classes must be an array of strings ({e})") from None
    if names.ndim != 1 or names.dtype.kind not in "US" or len(names) < 2:
        raise DataError(f"{path}: classes has shape {names.shape} and dtype {names.dtype}; expected at least 2 names")
    return tuple(str(n) for n in names)


def _meta(folder: Path) -> dict | None:
    try:
        return json.loads((folder / "meta.json").read_text())
    except (OSError, ValueError):
        return None


# Decoding into the cache ----------------------------------------------------------------------------------------------

def load(source: Source, *, progress: bool = True) -> Digits:
    """The source's images from its cache entry, decoding them into one first if there is none.

    Returns uint8 [N, C, size, size] images and int64 [N] labels as tensors over read-only memory maps of the cache.
    """
    folder = source.cache
    if _meta(folder) is None:
        source = with_channels(source, progress=progress)
        folder.parent.mkdir(parents=True, exist_ok=True)
        # Two processes asking for the same folder at once: one decodes, the other then finds the entry.
        with filelock.FileLock(folder.parent / f".{source.key}.lock"):
            for stale in folder.parent.glob(f".tmp-{source.key}-*"):  # left by a process that was killed
                shutil.rmtree(stale, ignore_errors=True)
            if _meta(folder) is None:
                _write(source, folder, progress=progress)
        source = source._replace(channels=_meta(folder)["channels"])
    return _open(folder, source)


def _open(folder: Path, source: Source) -> Digits:
    def array(name: str) -> torch.Tensor:
        with warnings.catch_warnings():  # torch warns that the memory map is read-only; nothing here writes to it
            warnings.simplefilter("ignore", UserWarning)
            return torch.from_numpy(np.load(folder / f"{name}.npy", mmap_mode="r"))

    d = Digits(array("train_x"), array("train_y"), array("test_x"), array("test_y"))
    if d.train_images.shape[1:] != (source.channels, source.size, source.size):
        raise DataError(f"cache {folder}: images of shape {tuple(d.train_images.shape[1:])}, expected "
                        f"{(source.channels, source.size, source.size)}; delete the folder to decode again")
    return d


def _write(source: Source, folder: Path, *, progress: bool) -> None:
    """Decode every image into a temp folder beside `folder`, then rename it into place; a DataError before anything
    is written if the disk has not the room."""
    n = source.n_train + source.n_test
    need = n * (source.channels * source.size**2 + 8)  # uint8 pixels and an int64 label per image
    free = shutil.disk_usage(folder.parent).free
    if need > free:
        raise DataError(f"cache {folder.parent}: the {n:,} images of {source.path} take {need:,} bytes "
                        f"({need / 2**20:,.1f} MB) decoded to {source.channels}x{source.size}x{source.size}, and "
                        f"{free:,} are free there; free some space, or set RAM_DATA_DIR to a folder on a larger disk")
    with _renamed_into_place(folder, prefix=f".tmp-{source.key}-") as tmp:
        if source.kind == "npz":
            notes = _write_npz(source, tmp, progress=progress)
        else:
            notes = _write_folder(source, tmp, progress=progress)
        meta = {"format": _FORMAT, "source": str(source.path), "classes": list(source.classes),
                "channels": source.channels, "size": source.size, "n_train": source.n_train,
                "n_test": source.n_test, "notices": notes}
        (tmp / "meta.json").write_text(json.dumps(meta, indent=2))  # last: an entry with meta.json is whole
        for f in tmp.iterdir():
            os.chmod(f, 0o644)  # a shared cache stays readable
    print(f"ram: decoded {source.n_train + source.n_test} images of {source.path} into {folder}", file=sys.stderr)


@contextlib.contextmanager
def _renamed_into_place(target: Path, *, prefix: str):
    """A temp folder beside `target`, renamed to it when the block ends and removed if the block fails (or the
    process is interrupted), so `target` is whole or absent."""
    tmp = Path(tempfile.mkdtemp(prefix=prefix, dir=target.parent))
    try:
        yield tmp
        os.chmod(tmp, 0o755)
        os.replace(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def fit_image(image: Image.Image, size: int) -> Image.Image:
    """image scaled to fit size x size keeping its aspect, centred on black: what training did to every image of
    another size (`ram.load(run).predict(fit_image(Image.open(path).convert(mode), model.image_size))`)."""
    w, h = image.size
    if (w, h) == (size, size):
        return image
    scale = size / max(w, h)
    image = image.resize((max(1, round(w * scale)), max(1, round(h * scale))), Image.Resampling.LANCZOS)
    canvas = Image.new(image.mode, (size, size))
    canvas.paste(image, ((size - image.width) // 2, (size - image.height) // 2))
    return canvas


def read_image(path: Path, *, size: int, channels: int) -> tuple[np.ndarray, tuple[int, int]]:
    """An image file as training stores it, and its own (width, height): decoded (FORMATS only), made grey
    (channels 1) or RGB (3), scaled to fit size x size keeping its aspect and padded with black (`fit_image`), as
    uint8 [channels, size, size]. The cache is written with it, and `ram predict` reads files with it, so a model
    sees a file as it saw its training images. The decode is bounded in pixels and time (`ram.data.decoding`). A
    DataError naming the file if it cannot be decoded."""
    try:
        with open(path, "rb") as f, decode(f) as image:
            try:
                pixels = np.asarray(fit_image(converted(image, "L" if channels == 1 else "RGB"), size))
            except ValueError as e:  # a mode Pillow has no conversion for, such as LAB to grey
                raise DataError(f"{path}: the image is in mode {image.mode}, which is not read here ({e}); save it "
                                "as greyscale or RGB") from None
            return _channels_first(pixels), image.size
    except UnreadableImage as e:
        raise DataError(f"{path}: {e}") from None
    except OSError as e:
        raise DataError(f"{path}: cannot read the file ({e.strerror or e})") from None


def _channels_first(pixels: np.ndarray) -> np.ndarray:
    """A PIL image's pixels, [H, W] (grey) or [H, W, C], as the cache lays them out: [C, H, W]."""
    return pixels[None] if pixels.ndim == 2 else pixels.transpose(2, 0, 1)


def _write_folder(source: Source, tmp: Path, *, progress: bool) -> list[str]:
    resized: list[str] = []
    bar = tqdm(total=source.n_train + source.n_test, desc=f"decode {source.path.name}", unit="img",
               disable=not progress)
    with bar:
        for part, files in (("train", source.train), ("test", source.test)):
            x = np.lib.format.open_memmap(tmp / f"{part}_x.npy", mode="w+", dtype=np.uint8,
                                          shape=(len(files), source.channels, source.size, source.size))
            for i, (rel_path, _) in enumerate(files):
                x[i], own_size = read_image(source.path / rel_path, size=source.size, channels=source.channels)
                if own_size != (source.size, source.size):
                    resized.append(rel_path)
                bar.update()
            x.flush()
            del x
            np.save(tmp / f"{part}_y.npy", np.array([label for _, label in files], dtype=np.int64))
    notes = []
    if source.grey:
        notes.append(f"{len(source.grey)} grey image(s) among colour ones, converted to RGB: {_few(source.grey)}")
    if resized:
        notes.append(f"{len(resized)} image(s) not {source.size}x{source.size}, scaled to fit keeping their aspect "
                     f"and padded with black: {_few(resized)}")
    for note in notes:
        notice(note)
    return notes


def _write_npz(source: Source, tmp: Path, *, progress: bool) -> list[str]:
    """The .npz's images into the cache, a block of rows at a time (`_npz_blocks`), in the fixed mixed order a folder's
    are stored in; its labels likewise."""
    notes = []
    members = _npz_members(source.path)
    for part in ("train", "test"):
        name = f"x_{part}"
        channels, h, w, last = _layout(members[name].shape, path=source.path, name=name)
        n = members[name].shape[0]
        order = np.random.default_rng(_ORDER_STREAM).permutation(n)  # mixed, as a folder's are
        where = np.argsort(order)  # row i of the file goes to where[i]
        out = np.lib.format.open_memmap(tmp / f"{part}_x.npy", mode="w+", dtype=np.uint8,
                                        shape=(n, channels, source.size, source.size))
        resize = (h, w) != (source.size, source.size)
        bar = tqdm(total=n, desc=f"{'resize' if resize else 'copy'} {name}", unit="img",
                   disable=not (progress and resize))
        with bar:
            for first, x in _npz_blocks(source.path, name, members[name]):
                x = _as_uint8(x, path=source.path, name=name)
                x = x.reshape(len(x), h, w, 1) if x.ndim == 3 else x if last else x.transpose(0, 2, 3, 1)  # [B,H,W,C]
                rows = where[first : first + len(x)]
                if not resize:
                    out[rows] = x.transpose(0, 3, 1, 2)
                    continue
                mode = "L" if channels == 1 else "RGB"
                for row, image in zip(rows, x):
                    out[row] = _channels_first(np.asarray(fit_image(
                        Image.fromarray(image[..., 0] if channels == 1 else image, mode), source.size)))
                    bar.update()
        if resize:
            notes.append(f"{name}: {h}x{w} images scaled to fit {source.size}x{source.size}, keeping their "
                         "aspect, padded with black")
        out.flush()
        del out
        with np.load(source.path, allow_pickle=False) as z:
            np.save(tmp / f"{part}_y.npy", z[f"y_{part}"].astype(np.int64)[order])
    for note in notes:
        notice(note)
    return notes


_BLOCK_BYTES = 64 * 2**20  # bytes of an .npz's images held in memory at once


def _npz_blocks(path: Path, name: str, member: _Member) -> Iterator[tuple[int, np.ndarray]]:
    """(first row, rows) of the .npz's array `name`, a block of about _BLOCK_BYTES at a time, read from the member's
    stream: np.load holds an array whole, and the conversions after it two more copies (a 9.5 MB .npz of a 1.57 GB
    array peaked at 3.27 GB). An array stored in Fortran order has no contiguous rows and is read whole."""
    if member.fortran:
        with np.load(path, allow_pickle=False) as z:
            yield 0, z[name]
        return
    row = math.prod(member.shape[1:]) * member.dtype.itemsize
    step = max(1, _BLOCK_BYTES // max(row, 1))
    with zipfile.ZipFile(path) as z, z.open(f"{name}.npy") as f:
        version = np.lib.format.read_magic(f)
        (np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0)(f)
        for first in range(0, member.shape[0], step):
            n = min(step, member.shape[0] - first)
            data = f.read(n * row)
            if len(data) != n * row:
                raise DataError(f"{path}: {name} ends after {first + len(data) // max(row, 1)} of its "
                                f"{member.shape[0]} images; the file is truncated")
            yield first, np.frombuffer(data, member.dtype).reshape(n, *member.shape[1:])


def _as_uint8(x: np.ndarray, *, path: Path, name: str) -> np.ndarray:
    """Images of an .npz as uint8: uint8 as they are, floats in 0..1 times 255, integers in 0..255; a DataError naming
    the array and the range of its values otherwise."""
    if x.dtype == np.uint8:
        return x
    if np.issubdtype(x.dtype, np.floating):
        if x.size and not (np.isfinite(x).all() and x.min() >= 0 and x.max() <= 1):
            raise DataError(f"{path}: {name} holds floats in [{np.nanmin(x):.3g}, {np.nanmax(x):.3g}]; "
                            "expected 0..1 (or uint8 0..255)")
        return np.rint(x * 255).astype(np.uint8)
    if np.issubdtype(x.dtype, np.integer) and (x.size == 0 or (x.min() >= 0 and x.max() <= 255)):
        return x.astype(np.uint8)
    raise DataError(f"{path}: {name} has dtype {x.dtype}; expected uint8 0..255 or floats 0..1")


# A worked example -----------------------------------------------------------------------------------------------------

def folder_name(name: str) -> str:
    """A class name as a folder name ("T-shirt/top" -> "T-shirt-top")."""
    return name.replace("/", "-").replace("\\", "-")


def export_folder(images: Digits, classes: tuple[str, ...], out: Path, *, progress: bool = True) -> int:
    """Write a dataset as out/train/<class>/NNNNN.png and out/test/<class>/NNNNN.png, the layout `ram train --data`
    reads. Written into a temp folder renamed to `out` at the end. Returns the number of images written."""
    out = Path(out)
    if out.exists():
        raise DataError(f"out = {str(out)!r} already exists; remove it or pick another folder")
    out.parent.mkdir(parents=True, exist_ok=True)
    parts = (("train", images.train_images, images.train_labels), ("test", images.test_images, images.test_labels))
    with _renamed_into_place(out, prefix=f".{out.name}.") as tmp, \
            tqdm(total=sum(len(x) for _, x, _ in parts), desc=f"export {out.name}", unit="img",
                 disable=not progress) as bar:
        for part, x, y in parts:
            for name in classes:
                (tmp / part / folder_name(name)).mkdir(parents=True)
            for i, (image, label) in enumerate(zip(x.numpy(), y.tolist())):
                Image.fromarray(image).save(tmp / part / folder_name(classes[label]) / f"{i:05d}.png")
                bar.update()
    return sum(len(x) for _, x, _ in parts)

