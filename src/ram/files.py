"""Image files through a trained classifier (`ram predict`): which files, read as training read its images, batch by
batch, with the files that cannot be read named and set aside rather than stopping the rest.

A file is read by the data loader's own `ram.data.images.read_image`: decoded in the formats it reads alone, made grey
or RGB as the model's channels say, scaled to fit the model's image size keeping its aspect and padded with black.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch

from .config import ConfigError
from .data import DataError
from .data.images import EXTENSIONS, image_files, read_image
from .printable import shown


class File(NamedTuple):
    path: Path  # where it is read from
    name: Path  # the path under the folder it was found in, or the file's own name if given itself


class Batch(NamedTuple):
    files: list[File]  # the files read, in order
    images: torch.Tensor  # uint8 [B, C, size, size], as training stored its images
    skipped: list[tuple[File, str]]  # the files that could not be read, and why (without the path)


def listed(paths: Sequence[Path]) -> list[File]:
    """The files paths name: a file as it is, a folder as the image files under it (by extension, sorted, hidden ones
    skipped, as `ram train --data` lists a class folder). A ConfigError for a path that does not exist or a folder
    with no image files, before any is read."""
    out = []
    for path in paths:
        if path.is_dir():
            found = image_files(path)
            if not found:
                raise ConfigError(f"files: the folder {shown(path)} holds no image files "
                                  f"({', '.join(e[1:] for e in EXTENSIONS)})")
            out += [File(f, f.relative_to(path)) for f in found]
        elif path.is_file():
            out.append(File(path, Path(path.name)))
        else:
            raise ConfigError(f"files: {shown(path)}: no such file or folder")
    if not out:
        raise ConfigError("files: give image files or folders of them")
    return out


def batches(files: Sequence[File], *, size: int, channels: int, batch_size: int = 256) -> Iterator[Batch]:
    """The files read in batches of at most batch_size, each image as `read_image` brings it to the model."""
    for start in range(0, len(files), batch_size):
        read, images, skipped = [], [], []
        for f in files[start : start + batch_size]:
            try:
                images.append(read_image(f.path, size=size, channels=channels)[0])
                read.append(f)
            except DataError as e:  # its message starts with the path, which the caller names its own way
                skipped.append((f, str(e).removeprefix(f"{f.path}: ")))
        stacked = np.stack(images) if images else np.zeros((0, channels, size, size), np.uint8)
        yield Batch(read, torch.from_numpy(stacked), skipped)


def picture_names(files: Sequence[File]) -> list[Path]:
    """Where each file's picture goes under the output folder: its name with .png, made unique (name-2.png, ...) when
    two files would share one (cat.jpg and cat.png, or one name in two folders given)."""
    taken, out = set(), []
    for f in files:
        base = f.name.with_suffix(".png")
        name, k = base, 1
        while name in taken:
            k += 1
            name = base.with_name(f"{base.stem}-{k}.png")
        taken.add(name)
        out.append(name)
    return out
