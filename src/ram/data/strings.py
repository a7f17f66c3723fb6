"""Strings of objects read in turn (house numbers): the crop the DRAM paper made of SVHN, and the files that hold
such strings when a user has them.

- `box_to_square`: Goodfellow et al. 2014's crop, which Ba et al. 2015 used too: the box around all the digits,
  enlarged by 30%, resized to 64x64, and a 54x54 square of that cropped at random. One batched resampling, each
  output pixel the mean of 3x3 bilinear samples, so that a box shrunk by up to 3x (a 5-digit string) keeps its thin
  strokes.
- `read_digit_struct`: SVHN's own "format 1", a folder of PNGs and `digitStruct.mat` (MATLAB v7.3, which is HDF5,
  read with h5py: `pip install recurrent-attention[svhn]`). Label 10 means the digit 0.
- `read_labels_csv`: any other folder of images with a `labels.csv`: a header `file,labels`, then one row per image,
  its labels in order separated by spaces ("3 1 4"; any names, "cat dog" too).
- `StringImages`: the images of a folder's train/ (and extra/) and test/ cropped to the enlarged box and resized to
  64x64 once; every training batch is cut at random to 54x54, each epoch anew. Validation and test images are cut at
  the centre, the same 54x54 every time (the test protocol: one fixed crop, no averaging over several).
- `squares`: those 64x64 squares decoded once into the data cache, `{data_dir()}/strings/`, and read from there by
  every later run (SVHN with extra/ is 235k PNGs). A label file read once is kept there too (`read_folder`): h5py
  takes about a millisecond for each entry of digitStruct.mat, 4 minutes for extra/'s.

Labels use the layout of `ram.data.multi`: the labels in order, then EOS, then PAD; here EOS is the class after the
last name (10 after the digits 0..9), and every row is `longest` + 1 wide. A bad file stops the run before any work
with one line naming the file and the entry (`DataError`).
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import sys
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import NamedTuple

import filelock
import numpy as np
import torch
import torch.nn.functional as F

from ..checkpoint import atomic_write
from .mnist import DataError, data_dir
from .multi import PAD
from .tasks import TRAIN, epoch_batches, generator

SIDE, CROP = 64, 54
"""The enlarged box is resized to SIDE x SIDE, then a CROP x CROP square of it is taken (Goodfellow et al. 2014)."""
ENLARGE = 1.3
"""The box around all the digits grows by 30% in each direction (15% on each side)."""
SUPERSAMPLE = 3
"""Bilinear samples per output pixel along each axis, averaged: a box area-averaged when it shrinks up to 3x."""
_FORMAT = 1
"""Bump when the cache's layout or the crop changes: old entries are then never read."""

__all__ = ["CROP", "SIDE", "StringFile", "StringImages", "Strings", "box_to_square", "centre_crop", "enlarge",
           "pack_strings", "random_crops", "read_digit_struct", "read_folder", "read_labels_csv", "squares"]


class Strings(NamedTuple):
    """Images of strings and what they say, as a task's batches, validation and test sets hold them."""

    images: torch.Tensor  # uint8 [N, H, W] (grey) or [N, C, H, W]
    labels: torch.Tensor  # int64 [N, longest + 1]: the string's labels in order, EOS, then PAD
    sources: torch.Tensor  # int64 [N, S]: where each image came from in its split (its digits' indices, or its file's),
    # -1 past the end


def pack_strings(strings: Sequence[Sequence[int]], *, width: int, eos: int) -> torch.Tensor:
    """Strings of label classes -> int64 [N, width]: each string, then `eos`, then PAD (`ram.data.multi`'s layout,
    every row as wide as the longest string a model emits plus its EOS)."""
    out = torch.full((len(strings), width), PAD, dtype=torch.int64)
    for i, s in enumerate(strings):
        if len(s) >= width:
            raise ValueError(f"a string of {len(s)} labels does not fit {width - 1} labels and EOS")
        out[i, : len(s)] = torch.as_tensor(list(s), dtype=torch.int64)
        out[i, len(s)] = eos
    return out


def enlarge(boxes: torch.Tensor, factor: float = ENLARGE) -> torch.Tensor:
    """(top, left, height, width) float [N, 4] -> the same boxes grown by `factor` about their centres."""
    top, left, height, width = boxes.unbind(-1)
    return torch.stack([top - (factor - 1) / 2 * height, left - (factor - 1) / 2 * width,
                        factor * height, factor * width], -1)


def box_to_square(images: torch.Tensor, boxes: torch.Tensor, *, offsets: torch.Tensor | None = None,
                  side: int = SIDE, crop: int = SIDE) -> torch.Tensor:
    """Each image's box resized to side x side, and the crop x crop square of it at `offsets`.

    images: float [N, C, H, W]. boxes: float [N, 4] (top, left, height, width) in pixels, pixel (i, j) covering
    [i, i + 1) x [j, j + 1); outside the image reads black. offsets: int64 [N, 2] (row, column) of the crop in the
    side x side square (default: 0, 0). Returns float [N, C, crop, crop].
    """
    N, _, H, W = images.shape
    if offsets is None:
        offsets = torch.zeros(N, 2, dtype=torch.int64)
    s = SUPERSAMPLE
    sub = (torch.arange(crop * s, dtype=torch.float32) + 0.5) / s  # [crop * s] sample points, in square pixels
    rows = offsets[:, :1].float() + sub  # [N, crop * s]
    cols = offsets[:, 1:].float() + sub
    y = boxes[:, :1] + rows * boxes[:, 2:3] / side  # [N, crop * s] in image pixels
    x = boxes[:, 1:2] + cols * boxes[:, 3:4] / side
    # grid_sample (align_corners=False): -1 is the outer edge of the first pixel, +1 that of the last one.
    gy, gx = 2 * y / H - 1, 2 * x / W - 1
    n = crop * s
    grid = torch.stack([gx[:, None, :].expand(N, n, n), gy[:, :, None].expand(N, n, n)], -1)  # [N, n, n, (x, y)]
    sampled = F.grid_sample(images, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    return F.avg_pool2d(sampled, s)


def _crop(images: torch.Tensor, offsets: torch.Tensor, crop: int) -> torch.Tensor:
    """uint8 [N, C, H, W] -> [N, C, crop, crop], image i cut at offsets[i] = (row, column)."""
    N = images.shape[0]
    rows = (offsets[:, :1] + torch.arange(crop))[:, :, None]  # [N, crop, 1]
    cols = (offsets[:, 1:] + torch.arange(crop))[:, None, :]  # [N, 1, crop]
    return images[torch.arange(N)[:, None, None], :, rows, cols].permute(0, 3, 1, 2).contiguous()


def random_crops(images: torch.Tensor, *, gen: torch.Generator, crop: int = CROP) -> torch.Tensor:
    """uint8 [N, C, side, side] -> [N, C, crop, crop], each cut at its own uniformly random place."""
    offsets = torch.randint(0, images.shape[-1] - crop + 1, (images.shape[0], 2), generator=gen)
    return _crop(images, offsets, crop)


def centre_crop(images: torch.Tensor, crop: int = CROP) -> torch.Tensor:
    """uint8 [N, C, side, side] -> [N, C, crop, crop], the middle of each."""
    at = (images.shape[-1] - crop) // 2
    return images[..., at : at + crop, at : at + crop].contiguous()


class StringFile(NamedTuple):
    """What a label file says of one image: its file (relative to the folder), its labels' names in order, and the
    box around all its objects (top, left, height, width) in pixels, or None for the whole image."""

    name: str
    labels: tuple[str, ...]
    box: tuple[float, float, float, float] | None


def _h5py():
    try:
        import h5py
    except ImportError:
        raise DataError("reading SVHN's digitStruct.mat needs h5py: pip install recurrent-attention[svhn] "
                        "(or pip install h5py)") from None
    return h5py


def read_digit_struct(path: str | Path, *, progress: bool = False) -> list[StringFile]:
    """SVHN's format 1 label file: /digitStruct/name and /digitStruct/bbox, one entry per image, each an object
    reference. A name is a column of character codes; a bbox a group of height, label, left, top and width, each a
    1x1 value for one digit or a column of references to 1x1 values for several. Label 10 is the digit 0.

    Returns each image's digits (as names "0".."9") and the box around all of them. DataError naming the file and
    the entry for anything else."""
    h5py = _h5py()
    path = Path(path)
    try:
        f = h5py.File(path, "r")
    except OSError as e:
        raise DataError(f"{path}: not an HDF5 (MATLAB v7.3) digitStruct.mat ({e})") from None
    with f:
        try:
            names, bboxes = f["digitStruct"]["name"], f["digitStruct"]["bbox"]
        except KeyError:
            raise DataError(f"{path}: no /digitStruct/name and /digitStruct/bbox (not SVHN's digitStruct.mat)") from None
        if names.shape[0] != bboxes.shape[0] or names.size != names.shape[0]:
            raise DataError(f"{path}: /digitStruct/name holds {names.shape} entries and /digitStruct/bbox "
                            f"{bboxes.shape}: one column of each per image")
        from tqdm.auto import tqdm

        out = []
        for i in tqdm(range(names.shape[0]), desc=f"reading {path.parent.name}/{path.name}", unit="entry",
                      leave=False, disable=not progress):
            name = f"entry {i + 1}"
            try:
                name = "".join(map(chr, f[names[i, 0]][()].flatten().astype(int)))
                box = f[bboxes[i, 0]]
                fields = {k: _values(f, box[k]) for k in ("height", "label", "left", "top", "width")}
            except (KeyError, TypeError, ValueError, AttributeError) as e:
                raise DataError(f"{path}: entry {i + 1} ({name}): unreadable ({e})") from None
            counts = {len(v) for v in fields.values()}
            if len(counts) != 1 or 0 in counts:
                raise DataError(f"{path}: entry {i + 1} ({name}): height, label, left, top and width hold "
                                f"{', '.join(str(len(v)) for v in fields.values())} values; one per digit each")
            labels = fields["label"]
            if not all(float(v).is_integer() and 1 <= v <= 10 for v in labels):
                raise DataError(f"{path}: entry {i + 1} ({name}): labels {labels} must be 1..10 (10 is the digit 0)")
            if min(fields["height"] + fields["width"]) <= 0:
                raise DataError(f"{path}: entry {i + 1} ({name}): a digit's box has no area")
            top = min(fields["top"])
            left = min(fields["left"])
            bottom = max(t + h for t, h in zip(fields["top"], fields["height"]))
            right = max(x + w for x, w in zip(fields["left"], fields["width"]))
            out.append(StringFile(name, tuple(str(int(v) % 10) for v in labels),
                                  (top, left, bottom - top, right - left)))
    return out


def _values(f, dataset) -> list[float]:
    """A bbox field: a 1x1 value, or a column of references to 1x1 values."""
    data = dataset[()]
    if dataset.dtype.kind == "O":  # references, one per digit
        return [float(f[ref][()].flatten()[0]) for ref in data.flatten()]
    return [float(v) for v in data.flatten()]


def read_labels_csv(path: str | Path) -> list[StringFile]:
    """A labels.csv: a header `file,labels`, then each image's file and its labels separated by spaces. DataError
    naming the file and the line for a row that is not that."""
    path = Path(path)
    try:
        with open(path, newline="", encoding="utf-8") as f:
            rows = list(csv.reader(f))
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise DataError(f"{path}: unreadable ({e})") from None
    if not rows or [c.strip() for c in rows[0]] != ["file", "labels"]:
        raise DataError(f"{path}: line 1 must be the header file,labels")
    out = []
    for line, row in enumerate(rows[1:], start=2):
        if not row:
            continue
        if len(row) != 2 or not row[0].strip():
            raise DataError(f"{path}: line {line}: {','.join(row)!r} is not a file and its labels")
        labels = tuple(row[1].split())
        if not labels:
            raise DataError(f"{path}: line {line} ({row[0]}): no labels")
        out.append(StringFile(row[0].strip(), labels, None))
    if not out:
        raise DataError(f"{path}: no images listed")
    return out


def read_folder(folder: Path, *, progress: bool = False) -> tuple[Path, list[StringFile]]:
    """The label file of one split folder (digitStruct.mat or labels.csv) and what it says; each file must exist.
    What a label file says is kept in the data cache, keyed by the SHA-256 of its bytes (a fraction of a second for
    extra/'s, where h5py takes minutes), and read from there while the file is unchanged."""
    readers = {"digitStruct.mat": lambda path: read_digit_struct(path, progress=progress),
               "labels.csv": read_labels_csv}
    for name, reader in readers.items():
        path = folder / name
        if path.is_file():
            kept = _cache_dir() / f"{_slug(folder)}-labels-{_digest([_FORMAT, _sha256(path)])}.json"
            entries = _kept_entries(kept)
            if entries is None:
                entries = reader(path)
                atomic_write(kept, json.dumps([[e.name, e.labels, e.box] for e in entries]).encode())
            for i, e in enumerate(entries, start=1):
                if not (folder / e.name).is_file():
                    raise DataError(f"{path}: entry {i} names {e.name}, which {folder} does not hold")
            return path, entries
    raise DataError(f"{folder}: holds neither digitStruct.mat (SVHN's format 1) nor labels.csv")


def _kept_entries(path: Path) -> list[StringFile] | None:
    """A label file's entries as `read_folder` kept them (JSON: [name, labels, box or null] each), or None when there
    is no such file or it is not that (a damaged one is then read from the label file again, and replaced)."""
    try:
        rows = json.loads(path.read_text(encoding="utf-8"))
        entries = [StringFile(name, tuple(labels), None if box is None else tuple(map(float, box)))
                   for name, labels, box in rows]
    except (OSError, ValueError, TypeError):
        return None
    ok = all(isinstance(e.name, str) and e.labels and all(isinstance(v, str) for v in e.labels)
             and (e.box is None or len(e.box) == 4) for e in entries)
    return entries if entries and ok else None


class StringImages:
    """A folder's strings: its train/, extra/ and test/ images cropped to their enlarged boxes and resized to 64x64,
    labels as `pack_strings` packs them. The last `val_size` images of train/ validate; the rest of train/, then
    extra/ (when given), train, the first `train_size` of them when it is not 0. Training batches are cut at random
    to 54x54, each epoch anew (the crop, like the paper's, is there to move the string about the training images);
    validation and test images at the centre, the same pixels every time and whatever the seed."""

    def __init__(self, train: Strings, test: Strings, *, seed: int, val_size: int, train_size: int = 0,
                 extra: Strings | None = None):
        n = train.images.shape[0] - val_size
        if n < 1:
            raise DataError(f"val_size = {val_size}: leaves none of the {train.images.shape[0]} training images")
        self.seed = seed
        self.val_set = Strings(*(t[n:] for t in train))
        train = Strings(*(t[:n] for t in train))
        if extra is not None:  # extra's sources count on from train/'s: an index into train/ then extra/
            extra = extra._replace(sources=extra.sources + n + val_size)
            train = Strings(*(torch.cat(pair) for pair in zip(train, extra)))
        n = min(train_size, len(train.images)) if train_size else len(train.images)
        self.train = Strings(*(t[:n] for t in train))
        self.test_set = test

    def val(self) -> Strings:
        """The validation images, each the centre 54x54 of its square."""
        return Strings(centre_crop(self.val_set.images), *self.val_set[1:])

    def test(self, seed: int = 0) -> Strings:
        """The test images, each the centre 54x54 of its square, whatever the seed: the test protocol is one fixed
        crop of every image."""
        return Strings(centre_crop(self.test_set.images), *self.test_set[1:])

    def batches_per_epoch(self, batch_size: int) -> int:
        return -(-self.train.images.shape[0] // batch_size)

    def train_batches(self, epoch: int, batch_size: int, *, start: int = 0,
                      shard: tuple[int, int] = (0, 1)) -> Iterator[Strings]:
        n = self.train.images.shape[0]
        for b, idx in epoch_batches(n, batch_size, seed=self.seed, epoch=epoch, start=start, shard=shard):
            gen = generator(self.seed, TRAIN, epoch, b)
            yield Strings(random_crops(self.train.images[idx], gen=gen), self.train.labels[idx],
                          self.train.sources[idx])


def decode(folder: Path, entries: list[StringFile], *, channels: int, progress: bool = True) -> torch.Tensor:
    """Each entry's image cropped to its enlarged box (the whole image where it has none) and resized to 64x64:
    uint8 [N, channels, 64, 64]. DataError naming a file that cannot be decoded."""
    from PIL import Image, UnidentifiedImageError
    from tqdm.auto import tqdm

    out = torch.zeros(len(entries), channels, SIDE, SIDE, dtype=torch.uint8)
    mode = "L" if channels == 1 else "RGB"
    for i, e in enumerate(tqdm(entries, desc=f"reading {folder.name}", leave=False, disable=not progress)):
        try:
            with Image.open(folder / e.name) as im:
                pixels = torch.frombuffer(bytearray(im.convert(mode).tobytes()), dtype=torch.uint8)
                H, W = im.height, im.width
        except (OSError, UnidentifiedImageError) as err:
            raise DataError(f"{folder / e.name}: cannot be decoded ({err})") from None
        image = pixels.view(H, W, channels).permute(2, 0, 1)[None].float()
        box = torch.tensor([e.box if e.box is not None else (0.0, 0.0, float(H), float(W))])
        box = enlarge(box) if e.box is not None else box
        out[i] = box_to_square(image, box)[0].round().clamp(0, 255).to(torch.uint8)
    return out


# The cache -----------------------------------------------------------------------------------------------------------

def _cache_dir() -> Path:
    return data_dir() / "strings"


def _slug(folder: Path) -> str:
    """A cache entry's readable part: the folder and its parent's names ("svhn-extra")."""
    return f"{folder.resolve().parent.name}-{folder.name}"


def _digest(parts) -> str:
    return hashlib.sha256(json.dumps(parts).encode()).hexdigest()[:20]


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
    except OSError as e:
        raise DataError(f"{path}: unreadable ({e})") from None
    return digest.hexdigest()


def squares(folder: Path, entries: list[StringFile], *, channels: int, progress: bool = True) -> torch.Tensor:
    """`decode`'s squares, uint8 [N, channels, 64, 64], from the data cache, decoded into it the first time.

    The entry, `{data_dir()}/strings/{parent}-{folder}-{key}.npy`, is keyed by the crop, the channels, and each
    entry's file, box, and the file's size and modification time: a changed image or label file is decoded anew, an
    unchanged folder never is (adding images the label file does not name changes nothing). It is written whole or
    not at all (`atomic_write`) and read as a plain .npy, memory-mapped: nothing in it can run as code. One that is
    damaged or not of the expected shape is decoded anew, with a notice. Two processes asking at once: one decodes,
    the other then reads what it wrote."""
    parts = [[_FORMAT, channels, SIDE, ENLARGE, SUPERSAMPLE]]
    for e in entries:
        st = (folder / e.name).stat()
        parts.append([e.name, e.box, st.st_size, st.st_mtime_ns])
    path = _cache_dir() / f"{_slug(folder)}-{_digest(parts)}.npy"
    shape = (len(entries), channels, SIDE, SIDE)
    got = _cached_squares(path, shape)
    if got is not None:
        return got
    path.parent.mkdir(parents=True, exist_ok=True)
    with filelock.FileLock(path.parent / f".{path.name}.lock"):
        for stale in path.parent.glob(f".{path.name}.*.tmp"):  # left by a process killed while writing this entry
            stale.unlink(missing_ok=True)
        got = _cached_squares(path, shape, quiet=True)  # written by another process while this one waited
        if got is None:
            decoded = decode(folder, entries, channels=channels, progress=progress).numpy()
            atomic_write(path, [_npy_header(decoded), memoryview(decoded)])
            print(f"ram: decoded the {len(entries):,} images of {folder} into {path}", file=sys.stderr)
            got = _cached_squares(path, shape)
    if got is None:
        raise DataError(f"cache {path}: written, and then not readable as {shape} uint8")
    return got


def _npy_header(array: np.ndarray) -> bytes:
    """The .npy magic and header of a C-ordered array, to be followed by its bytes."""
    head = io.BytesIO()
    np.lib.format.write_array_header_1_0(head, np.lib.format.header_data_from_array_1_0(array))
    return head.getvalue()


def _cached_squares(path: Path, shape: tuple[int, ...], *, quiet: bool = False) -> torch.Tensor | None:
    """The uint8 array of `shape` in the .npy at path, memory-mapped read-only; None when there is no such file, or
    it is damaged (truncated, not an .npy, an object array, another shape or type; a notice says so unless quiet)."""
    if not path.is_file():
        return None
    try:
        array = np.lib.format.open_memmap(path, mode="r")  # plain .npy only: object arrays are refused, not unpickled
        why = "" if array.dtype == np.uint8 and array.shape == shape else (
            f"holds {array.dtype} {array.shape}, not uint8 {shape}")
    except (OSError, ValueError, EOFError) as e:
        why = f"{type(e).__name__}: {e}"
    if why:
        if not quiet:
            print(f"ram: notice: cache {path} is unreadable ({why}); decoding the images again", file=sys.stderr)
        return None
    with warnings.catch_warnings():  # torch warns that the memory map is read-only; nothing here writes to it
        warnings.simplefilter("ignore", UserWarning)
        return torch.from_numpy(array)
