"""House numbers made of MNIST digits (`mnist-numbers`), the stand-in for SVHN that these machines can make.

A string of 1 to `longest` digits, all different images of one split, is laid out in a row: each digit resized to its
own random side (`min_size`..28 pixels), moved up or down by its own offset (up to `max_offset`), and set after the
one before it with its own gap between their 28-pixel-wide slots (`min_gap`..`max_gap`; a negative gap brings them
closer, where the digits' blank margins overlap, and the brighter pixel wins). Then SVHN's crop
(`ram.data.strings`): the box around all the digits' ink, enlarged by 30%, resized to 64x64, and a 54x54 square of it
at a random place. The longer the string, the more its box is squeezed across, as a long house number's is.

Every pixel of a string comes from one split: training strings from the training digits only (the head of MNIST's
training set), validation strings from its held-out tail, test strings from MNIST's test set. `Strings.sources` keeps
the index of every digit used, so a test can prove it. Training strings are drawn afresh for every batch from a
generator seeded by (seed, epoch, batch); validation and test strings are fixed functions of a seed, drawn in blocks of
`BLOCK`. `place_strings` lays out given digits (a person's, on the page) as a split's strings are laid out.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from .mnist import Digits
from .multi import EOS, PAD, _Split, _uniform_excluding
from .strings import CROP, SIDE, Strings, box_to_square, enlarge
from .tasks import DIGIT, TEST, TRAIN, VAL, epoch_batches, generator, square_index

BLOCK = 1000
"""Validation and test strings are drawn this many at a time, each block from its own generator (memory)."""


@dataclass(frozen=True, kw_only=True)
class Shape:
    """How a string is laid out (the defaults are mnist-numbers')."""

    shortest: int = 1
    longest: int = 5
    min_size: int = 20
    """Smallest side a digit is resized to (28: never smaller than MNIST's)."""
    max_offset: int = 4
    """Largest move of a digit up or down, in pixels of the row."""
    min_gap: int = -6
    max_gap: int = 4
    """Gap between one digit's 28-pixel slot and the next one's (the slot of a resized digit: its side)."""

    def validate(self) -> None:
        if not 1 <= self.shortest <= self.longest:
            raise ValueError(f"shortest = {self.shortest}, longest = {self.longest}: need 1 <= shortest <= longest")
        if not 8 <= self.min_size <= DIGIT:
            raise ValueError(f"min_size = {self.min_size}: must be in 8..{DIGIT}")
        if not 0 <= self.max_offset <= DIGIT:
            raise ValueError(f"max_offset = {self.max_offset}: must be in 0..{DIGIT}")
        if not -self.min_size // 2 <= self.min_gap <= self.max_gap <= DIGIT:
            raise ValueError(f"min_gap = {self.min_gap}, max_gap = {self.max_gap}: need -min_size/2 <= min_gap <= "
                             f"max_gap <= {DIGIT}")


def compose_strings(digits: torch.Tensor, labels: torch.Tensor, first: torch.Tensor, *, shape: Shape,
                    gen: torch.Generator) -> Strings:
    """One string per entry of `first` from the digits of one split.

    digits: uint8 [M, 28, 28] and labels int64 [M], the split. first: int64 [N], each string's first digit; its others
    are drawn uniformly from the rest of the split, all different images. Returns `Strings` of N: images uint8
    [N, 54, 54], labels [N, longest + 1], sources [N, longest] (-1 past the string's end).
    """
    shape.validate()
    N, M, K = first.shape[0], digits.shape[0], shape.longest
    if M < K:
        raise ValueError(f"{M} digits are too few for strings of up to {K} different digits")
    lengths = torch.randint(shape.shortest, K + 1, (N,), generator=gen)
    sources = first[:, None]
    for _ in range(K - 1):
        sources = torch.cat([sources, _uniform_excluding(sources, 1, M, gen)], 1)
    used = torch.arange(K) < lengths[:, None]  # [N, K]
    images = _lay_out(digits[sources], used, shape=shape, gen=gen)
    strings = torch.where(used, labels[sources], PAD)
    packed = torch.cat([strings, torch.full((N, 1), PAD)], 1)
    packed[torch.arange(N), lengths] = EOS
    return Strings(images=images, labels=packed, sources=torch.where(used, sources, -1))


def place_strings(digits: torch.Tensor, *, shape: Shape, gen: torch.Generator) -> torch.Tensor:
    """Given digits laid out and cropped as `compose_strings` makes a split's strings: each its own random size,
    offset and gap, the box around their ink enlarged, resized and cropped at random.

    digits: uint8 [N, k, 28, 28], each string's own, in reading order (a person's drawings, on the page), k from
    shape.shortest to shape.longest. Returns uint8 [N, 54, 54].
    """
    shape.validate()
    N, k = digits.shape[:2]
    if not shape.shortest <= k <= shape.longest:
        raise ValueError(f"{k} digits per string; strings hold {shape.shortest} to {shape.longest}")
    # Blank slots after the string's end, as compose_strings has them: the same draws from gen, the same layout.
    blank = digits.new_zeros(N, shape.longest - k, DIGIT, DIGIT)
    used = torch.arange(shape.longest) < k
    return _lay_out(torch.cat([digits, blank], 1), used.expand(N, -1), shape=shape, gen=gen)


def _lay_out(digits: torch.Tensor, used: torch.Tensor, *, shape: Shape, gen: torch.Generator) -> torch.Tensor:
    """Strings of digits uint8 [N, K, 28, 28], those where used bool [N, K] (a prefix of each row), in a row and
    cropped: uint8 [N, 54, 54]. Draws each digit's size, offset and gap, then each crop's place, from gen."""
    N, K = used.shape
    sizes = torch.randint(shape.min_size, DIGIT + 1, (N, K), generator=gen)
    moves = torch.randint(-shape.max_offset, shape.max_offset + 1, (N, K), generator=gen)
    gaps = torch.randint(shape.min_gap, shape.max_gap + 1, (N, K), generator=gen)
    gaps[:, 0] = 0
    # Slot k starts after the slots before it and their gaps; a digit sits centred on the row's middle, moved.
    left = (sizes + gaps).cumsum(1) - sizes  # [N, K]
    top = shape.max_offset + (DIGIT - sizes) // 2 + moves
    H = DIGIT + 2 * shape.max_offset
    W = K * DIGIT + (K - 1) * max(shape.max_gap, 0)
    row = torch.zeros(N * H * W)
    ink = torch.zeros(N, K, 4)  # (top, left, bottom, right) of each digit's ink in the row
    for side in sizes[used].unique().tolist():
        n, k = ((sizes == side) & used).nonzero(as_tuple=True)
        small = F.interpolate(digits[n, k][:, None].float(), size=(side, side), mode="bilinear",
                              antialias=True, align_corners=False)[:, 0].clamp(0, 255)  # [P, side, side]
        at = n[:, None] * (H * W) + square_index(top[n, k], left[n, k], side, W)  # [P, side * side]
        row.scatter_reduce_(0, at.flatten(), small.flatten(), reduce="amax")
        rows, cols = small.amax(2) > 0, small.amax(1) > 0  # [P, side]: lines holding ink
        first_row, last_row = rows.int().argmax(1), side - 1 - rows.flip(1).int().argmax(1)
        first_col, last_col = cols.int().argmax(1), side - 1 - cols.flip(1).int().argmax(1)
        ink[n, k] = torch.stack([top[n, k] + first_row, left[n, k] + first_col,
                                 top[n, k] + last_row + 1, left[n, k] + last_col + 1], 1).float()
    far = torch.tensor(float(10 * (H + W)))
    lo = torch.where(used[..., None], ink[..., :2], far).amin(1)  # [N, 2] top, left of all the ink
    hi = torch.where(used[..., None], ink[..., 2:], -far).amax(1)  # [N, 2] bottom, right
    boxes = enlarge(torch.cat([lo, hi - lo], 1))
    offsets = torch.randint(0, SIDE - CROP + 1, (N, 2), generator=gen)
    images = box_to_square(row.view(N, 1, H, W), boxes, offsets=offsets, crop=CROP)[:, 0]
    return images.round().clamp(0, 255).to(torch.uint8)


class NumberData:
    """The strings of one shape: training batches drawn afresh, and fixed validation and test sets.

    The split rule is `ram.data.multi.MultiDigitData`'s: the last `val_size` training digits make the validation
    strings, the first `train_size` (0: all) of the rest the training strings; an epoch has one string per training
    digit (its first), the test set one per test digit.
    """

    def __init__(self, digits: Digits, *, seed: int, shape: Shape = Shape(), val_size: int = 10_000,
                 train_size: int = 0):
        shape.validate()
        n_train = digits.train_images.shape[0] - val_size
        if val_size < 0 or n_train < 1:
            raise ValueError(f"val_size = {val_size}: leaves none of the {digits.train_images.shape[0]} training "
                             "digits to train on")
        self.shape, self.seed = shape, seed
        self.val_digits = _Split(digits.train_images[n_train:], digits.train_labels[n_train:])
        n_train = min(train_size, n_train) if train_size else n_train
        self.train = _Split(digits.train_images[:n_train], digits.train_labels[:n_train])
        self.test_digits = _Split(digits.test_images, digits.test_labels)
        self._cache: dict[tuple[int, int], Strings] = {}

    def _fixed(self, stream: int, split: _Split, seed: int) -> Strings:
        key = (stream, seed)
        if key not in self._cache:
            n = split.images.shape[0]
            blocks = [compose_strings(*split, torch.arange(i, min(i + BLOCK, n)), shape=self.shape,
                                      gen=generator(seed, stream, i // BLOCK)) for i in range(0, n, BLOCK)]
            self._cache[key] = Strings(*(torch.cat(parts) for parts in zip(*blocks)))
        return self._cache[key]

    def val(self) -> Strings:
        """Validation strings from the held-out tail of the training set, drawn with the run's seed."""
        return self._fixed(VAL, self.val_digits, self.seed)

    def test(self, seed: int = 0) -> Strings:
        """Test strings from MNIST's test set only. Seed 0 is the standard draw."""
        return self._fixed(TEST, self.test_digits, seed)

    def batches_per_epoch(self, batch_size: int) -> int:
        return -(-self.train.images.shape[0] // batch_size)

    def train_batches(self, epoch: int, batch_size: int, *, start: int = 0,
                      shard: tuple[int, int] = (0, 1)) -> Iterator[Strings]:
        """`Strings` of training digits for one epoch, from batch `start` on (shard as `MultiDigitData`'s)."""
        n = self.train.images.shape[0]
        for b, first in epoch_batches(n, batch_size, seed=self.seed, epoch=epoch, start=start, shard=shard):
            yield compose_strings(*self.train, first, shape=self.shape, gen=generator(self.seed, TRAIN, epoch, b))
