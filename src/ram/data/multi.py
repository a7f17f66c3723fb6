"""Canvases of several digits, for the multi-object tasks of Ba, Mnih & Kavukcuoglu 2015 ("Multiple Object
Recognition with Visual Attention", arXiv 1412.7755): `mnist-pairs` (name both digits) and `mnist-addition` (name
their sum).

Each canvas holds `objects` different MNIST digits at random positions whose 28x28 boxes do not overlap, plus clutter:
8x8 pieces cut from other digits of the same split, as in the single-digit cluttered tasks (`tasks.place`). Every pixel
of a canvas comes from one split: training canvases from the training digits only (the head of MNIST's training set),
validation canvases from its held-out tail, test canvases from MNIST's test set, clutter included. `Canvases` keeps the
index of every digit and clutter piece used, so a test can prove it.

Labels are sequences, so strings of any length come later without a redesign: `labels[i]` is canvas i's digits in
reading order (by the left edge of their boxes, then the top), then `EOS`. A batch of strings of different lengths
(`pack_labels`) pads after EOS with `PAD`, which `torch.nn.functional.cross_entropy` ignores by default; canvases of
one layout all have `objects` digits, so they need none. `sums` is the answer of the addition task; `pair_class`
numbers the 55 unordered pairs for a classifier that names a pair in one go (the paper's MNIST-pairs task, as
far as a second-hand reading tells, is that 55-way classification). `sequence_reward` and `upto_first_wrong` score a
string read label by label, cut at the first wrong label.

Training canvases are drawn afresh for every batch from a generator seeded by (seed, epoch, batch), so a run resumed
mid-epoch sees the canvases it would have seen; validation and test canvases are fixed functions of a seed.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import NamedTuple

import torch

from .mnist import Digits
from .tasks import DIGIT, TEST, TRAIN, VAL, add_clutter, epoch_batches, generator, square_index

__all__ = [
    "ADDITION", "EOS", "PAD", "PAIRS", "Canvases", "Layout", "MultiDigitData", "compose", "label_lengths",
    "pack_labels", "pair_class", "place_apart", "sequence_reward", "upto_first_wrong",
]

EOS = 10  # end of sequence, after the digit classes 0..9
PAD = -100  # after EOS when strings of different lengths share a batch: cross_entropy's default ignore_index
_MAX_ROUNDS = 1000  # redraws of overlapping positions; a feasible layout needs a handful (see _positions)


@dataclass(frozen=True, kw_only=True)
class Layout:
    """How a canvas is made."""

    objects: int = 2
    """Digits on each canvas, all different images of the split."""
    canvas: int = 100
    """Side of the square canvas."""
    pieces: int = 8
    """Clutter: pieces cut from other digits of the same split and added at random places."""
    piece_size: int = 8
    """Side of each square clutter piece."""

    def validate(self) -> None:
        if self.objects < 1:
            raise ValueError(f"objects = {self.objects}: a canvas needs at least one digit")
        if (self.canvas // DIGIT) ** 2 < self.objects:
            raise ValueError(f"objects = {self.objects}: that many 28x28 digits need not fit apart on a "
                             f"{self.canvas}x{self.canvas} canvas (at most {(self.canvas // DIGIT) ** 2} surely fit)")
        if self.pieces < 0:
            raise ValueError(f"pieces = {self.pieces}: must be 0 or more")
        if not 1 <= self.piece_size <= DIGIT:
            raise ValueError(f"piece_size = {self.piece_size}: must be between 1 and {DIGIT}")


# The setting for both tasks: two digits on the project's 100x100 canvas with 8 pieces of clutter. The paper
# says "100x100" for both; whether and how it cluttered them could not be read (see the notes of issue 58).
PAIRS = Layout(objects=2, canvas=100, pieces=8)
ADDITION = Layout(objects=2, canvas=100, pieces=8)


class Canvases(NamedTuple):
    images: torch.Tensor  # uint8 [N, canvas, canvas]
    labels: torch.Tensor  # int64 [N, objects + 1]: the digits' classes in reading order, then EOS
    sums: torch.Tensor  # int64 [N]: the sum of the digits (mnist-addition's answer)
    sources: torch.Tensor  # int64 [N, objects]: each digit's index among its split's digits, in label order
    positions: torch.Tensor  # int64 [N, objects, 2]: (top, left) of each digit's 28x28 box, in label order
    clutter: torch.Tensor  # int64 [N, pieces]: index among the split's digits of each clutter piece's digit


def pair_class(labels: torch.Tensor) -> torch.Tensor:
    """The unordered pair of digit classes as one of 55 classes: labels int64 [N, 2+] (columns 0 and 1) -> [N].

    {a, b} with a <= b is 10a - a(a-1)/2 + (b - a): {0, 0} -> 0, {0, 9} -> 9, {1, 1} -> 10, ..., {9, 9} -> 54.
    """
    a = torch.minimum(labels[:, 0], labels[:, 1])
    b = torch.maximum(labels[:, 0], labels[:, 1])
    return 10 * a - a * (a - 1) // 2 + b - a


def pack_labels(strings: Sequence[Sequence[int]]) -> torch.Tensor:
    """Strings of digit classes of any lengths -> int64 [N, longest + 1]: each string, then EOS, then PAD to the end.

    The label layout of `Canvases`, for strings of different lengths in one batch: [[7, 3], [5]] ->
    [[7, 3, EOS], [5, EOS, PAD]].
    """
    lengths = torch.tensor([len(s) for s in strings], dtype=torch.int64)
    flat = torch.tensor([c for s in strings for c in s], dtype=torch.int64)
    if flat.numel() and not ((flat >= 0) & (flat < EOS)).all():
        raise ValueError(f"digit classes must be 0..{EOS - 1}, got {sorted(set(flat.tolist()) - set(range(EOS)))}")
    width = int(lengths.max()) + 1 if len(strings) else 1
    out = torch.full((len(strings), width), PAD, dtype=torch.int64)
    out[torch.arange(width) < lengths[:, None]] = flat
    out[torch.arange(len(strings)), lengths] = EOS
    return out


def label_lengths(labels: torch.Tensor) -> torch.Tensor:
    """How many digits each string has: the position of its EOS. labels int64 [N, L] -> [N]."""
    return (labels == EOS).int().argmax(1)


def sequence_reward(predicted: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """The reward of a string read one label at a time: after label s, how many labels are right, counted up to the
    first wrong one. Labels right after a wrong one earn nothing, and PAD earns nothing.

    predicted, labels: int64 [N, L] (the layout of `Canvases.labels`, EOS included) -> int64 [N, L], non-decreasing
    along L. Ba et al.'s multi-object reward as read second-hand: the cumulative count of right labels, cut at the
    first mistake.
    """
    right = (predicted == labels) & (labels != PAD)
    return right.long().cumprod(1).cumsum(1)


def upto_first_wrong(predicted: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """bool [N, L]: the labels every earlier label of whose string was right (the first wrong one included, none
    after it, no PAD). The labels that still get a learning signal when it is cut at the first mistake."""
    right = ((predicted == labels) & (labels != PAD)).long().cumprod(1)
    before = torch.cat([torch.ones_like(right[:, :1]), right[:, :-1]], 1)
    return before.bool() & (labels != PAD)


def _uniform_excluding(excluded: torch.Tensor, size: int, m: int, gen: torch.Generator) -> torch.Tensor:
    """[N, size] indices uniform over range(m) minus row i's `excluded` [N, k] (k distinct values per row)."""
    n, k = excluded.shape
    r = torch.randint(0, m - k, (n, size), generator=gen)
    # Shift past each excluded index in increasing order: a bijection from range(m - k) onto the allowed indices.
    for e in excluded.sort(1).values.unbind(1):
        r += r >= e[:, None]
    return r


def _positions(n: int, objects: int, canvas: int, gen: torch.Generator) -> torch.Tensor:
    """(top, left) [n, objects, 2], uniform over the placements whose 28x28 boxes do not overlap.

    Rejection sampling, vectorised over canvases: rows with an overlapping pair are redrawn whole until none is left.
    Two boxes on a 100x100 canvas overlap with probability about 0.37, so after r rounds about 0.37^r of the rows
    remain: a handful of rounds, each over fewer rows.
    """
    pos = torch.randint(0, canvas - DIGIT + 1, (n, objects, 2), generator=gen)
    todo = torch.arange(n)
    for _ in range(_MAX_ROUNDS):
        p = pos[todo]
        close = ((p[:, :, None, :] - p[:, None, :, :]).abs() < DIGIT).all(-1)  # [t, objects, objects]
        clash = close.triu(1).any(-1).any(-1)
        todo = todo[clash]
        if todo.numel() == 0:
            return pos
        pos[todo] = torch.randint(0, canvas - DIGIT + 1, (todo.numel(), objects, 2), generator=gen)
    raise RuntimeError(f"no non-overlapping places for {objects} digits on a {canvas}x{canvas} canvas after "
                       f"{_MAX_ROUNDS} rounds")


def _paste(digits: torch.Tensor, positions: torch.Tensor, canvas: int) -> torch.Tensor:
    """digits uint8 [N, k, 28, 28] with their boxes' (top, left) [N, k, 2], which do not overlap -> int16
    [N, canvas * canvas], blank elsewhere."""
    n = digits.shape[0]
    out = torch.zeros(n, canvas * canvas, dtype=torch.int16)
    at = square_index(positions[..., 0], positions[..., 1], DIGIT, canvas).reshape(n, -1)  # [N, k * 784]
    out.scatter_(1, at, digits.reshape(n, -1).to(torch.int16))  # boxes are disjoint: no index repeats
    return out


def place_apart(
    digits: torch.Tensor, *, layout: Layout, pool: torch.Tensor | None = None, gen: torch.Generator
) -> torch.Tensor:
    """Given digits on canvases of `layout`, placed as `compose` places a split's: uniformly over the places whose
    28x28 boxes do not overlap, with layout.pieces of clutter.

    digits: uint8 [N, objects, 28, 28], each canvas's own (a person's drawings, on the page). pool: uint8 [M, 28, 28],
    the digits clutter is cut from (the training digits; None cuts it from these digits). Returns uint8
    [N, canvas, canvas].
    """
    layout.validate()
    n, k = digits.shape[:2]
    if k != layout.objects:
        raise ValueError(f"{k} digits per canvas; the layout holds {layout.objects}")
    out = _paste(digits, _positions(n, k, layout.canvas, gen), layout.canvas)
    if layout.pieces:
        pool = digits.reshape(-1, DIGIT, DIGIT) if pool is None else pool
        clutter = torch.randint(0, pool.shape[0], (n, layout.pieces), generator=gen)
        add_clutter(out, clutter, canvas=layout.canvas, piece_size=layout.piece_size, pool=pool, gen=gen)
    return out.to(torch.uint8).view(n, layout.canvas, layout.canvas)


def compose(
    digits: torch.Tensor, labels: torch.Tensor, first: torch.Tensor, *, layout: Layout, gen: torch.Generator
) -> Canvases:
    """Make one canvas per entry of `first` from the digits of one split.

    digits: uint8 [M, 28, 28] and labels int64 [M], the split. first: int64 [N], the digit each canvas starts from;
    its other digits are drawn uniformly from the rest of the split, all different images, and its clutter from the
    digits of the split that are not on it. Returns `Canvases` of N.
    """
    layout.validate()
    n, m, k = first.shape[0], digits.shape[0], layout.objects
    if m < k + (1 if layout.pieces else 0):
        raise ValueError(f"{m} digits are too few for canvases of {k} different digits"
                         + (" and clutter from others" if layout.pieces else ""))
    sources = first[:, None]
    for _ in range(k - 1):
        sources = torch.cat([sources, _uniform_excluding(sources, 1, m, gen)], 1)
    pos = _positions(n, k, layout.canvas, gen)
    # Reading order: by left edge, then top (positions are < canvas, so the key is unique per box).
    order = (pos[..., 1] * layout.canvas + pos[..., 0]).argsort(1)
    sources = sources.gather(1, order)
    pos = pos.gather(1, order[..., None].expand(-1, -1, 2))
    out = _paste(digits[sources], pos, layout.canvas)
    clutter = torch.zeros(n, 0, dtype=torch.int64)
    if layout.pieces:
        clutter = _uniform_excluding(sources, layout.pieces, m, gen)
        add_clutter(out, clutter, canvas=layout.canvas, piece_size=layout.piece_size, pool=digits, gen=gen)
    classes = labels[sources]
    return Canvases(
        images=out.to(torch.uint8).view(n, layout.canvas, layout.canvas),
        labels=torch.cat([classes, torch.full((n, 1), EOS, dtype=torch.int64)], 1),
        sums=classes.sum(1),
        sources=sources,
        positions=pos,
        clutter=clutter,
    )


class _Split(NamedTuple):
    images: torch.Tensor  # uint8 [M, 28, 28]
    labels: torch.Tensor  # int64 [M]


class MultiDigitData:
    """The canvases of one layout: training batches drawn afresh, and fixed validation and test sets.

    The split rule is `ram.data.TaskData`'s: the last `val_size` training digits are validation digits, the first
    `train_size` (0: all) of the rest are training digits. Each canvas starts from one digit of its split, so an epoch
    has one canvas per training digit and the test set one per test digit.
    """

    def __init__(
        self, digits: Digits, *, seed: int, layout: Layout = PAIRS, val_size: int = 10_000, train_size: int = 0
    ):
        layout.validate()
        n_train = digits.train_images.shape[0] - val_size
        if val_size < 0 or n_train < 1:
            raise ValueError(f"val_size = {val_size}: leaves none of the {digits.train_images.shape[0]} training "
                             "digits to train on")
        self.layout = layout
        self.seed = seed
        self.val_digits = _Split(digits.train_images[n_train:], digits.train_labels[n_train:])
        n_train = min(train_size, n_train) if train_size else n_train
        self.train = _Split(digits.train_images[:n_train], digits.train_labels[:n_train])
        self.test_digits = _Split(digits.test_images, digits.test_labels)
        self._cache: dict[tuple[int, int], Canvases] = {}

    def _fixed(self, stream: int, split: _Split, seed: int) -> Canvases:
        key = (stream, seed)
        if key not in self._cache:
            first = torch.arange(split.images.shape[0])
            self._cache[key] = compose(*split, first, layout=self.layout, gen=generator(seed, stream))
        return self._cache[key]

    def val(self) -> Canvases:
        """Validation canvases from the held-out tail of the training set, placed with the run's seed."""
        return self._fixed(VAL, self.val_digits, self.seed)

    def test(self, seed: int = 0) -> Canvases:
        """Test canvases from MNIST's test set only. Seed 0 is the standard draw."""
        return self._fixed(TEST, self.test_digits, seed)

    def batches_per_epoch(self, batch_size: int) -> int:
        return -(-self.train.images.shape[0] // batch_size)

    def train_batches(
        self, epoch: int, batch_size: int, *, start: int = 0, shard: tuple[int, int] = (0, 1)
    ) -> Iterator[Canvases]:
        """Yield `Canvases` of training digits for one epoch, from batch `start` on; images stay uint8.

        shard = (rank, world): each data-parallel rank takes every world-th batch of the same permutation, and a
        ragged last round is dropped so that every rank takes as many steps.
        """
        n = self.train.images.shape[0]
        for b, first in epoch_batches(n, batch_size, seed=self.seed, epoch=epoch, start=start, shard=shard):
            yield compose(*self.train, first, layout=self.layout, gen=generator(self.seed, TRAIN, epoch, b))
