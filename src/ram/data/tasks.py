"""Task builders: place 28x28 digits on a larger canvas, optionally with clutter. Vectorised, no loop per image.
And the seeds every draw is made from: a generator per (seed, stream, ...) and a seeded block of torch's global one.

All images stay uint8 until a batch is fed to the model: clutter is added in int16 and clipped to 255, which is
"add, then clip to [0, 1]" in pixel units.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch

DIGIT = 28


def stream_seed(*parts: int) -> int:
    """A 63-bit seed from integers (run seed, split, epoch, batch...), stable across processes unlike hash()."""
    h = 0x243F6A8885A308D3
    for p in parts:
        h = ((h ^ (p & 0xFFFFFFFFFFFFFFFF)) * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
        h ^= h >> 29
    return h & 0x7FFFFFFFFFFFFFFF


def generator(*parts: int) -> torch.Generator:
    return torch.Generator().manual_seed(stream_seed(*parts))


@contextlib.contextmanager
def seeded(seed: int):
    """torch's global generator seeded for a block (the sampled glimpses and moves of an evaluation), and the
    caller's stream given back afterwards."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


TRAIN, VAL, TEST = 1, 2, 3
"""Stream ids for seeding (`generator(seed, stream, ...)`): training batches, the validation set, the test set."""


def epoch_batches(n: int, batch_size: int, *, seed: int, epoch: int, start: int = 0,
                  shard: tuple[int, int] = (0, 1)) -> Iterator[tuple[int, torch.Tensor]]:
    """(b, indices into the n training items) for each batch b of an epoch's seeded permutation, from batch `start`
    on. shard = (rank, world): each data-parallel rank takes every world-th batch, and a ragged last round is
    dropped, since ranks must take equally many steps or a collective hangs."""
    order = torch.randperm(n, generator=generator(seed, TRAIN, epoch))
    rank, world = shard
    total = -(-n // batch_size)
    for b in range(start, total - total % world if world > 1 else total):
        if b % world == rank:
            yield b, order[b * batch_size : (b + 1) * batch_size]


def square_index(top: torch.Tensor, left: torch.Tensor, side: int, row_stride: int) -> torch.Tensor:
    """Flat indices of side x side squares at (top, left), [...] -> [..., side * side], for a row stride."""
    r = torch.arange(side)
    offsets = (r[:, None] * row_stride + r[None, :]).flatten()
    return (top * row_stride + left)[..., None] + offsets


def place(
    digits: torch.Tensor,
    *,
    canvas: int,
    pieces: int = 0,
    piece_size: int = 8,
    pool: torch.Tensor | None = None,
    pool_index: torch.Tensor | None = None,
    gen: torch.Generator,
) -> torch.Tensor:
    """Put each digit at a uniformly random position on a blank canvas and add clutter.

    digits: uint8 [N, 28, 28]. pool: uint8 [M, 28, 28], the training digits clutter is cut from (default: digits).
    pool_index: [N] index of each digit inside the pool, so its clutter comes from *other* digits; None when the
    digits are not in the pool (validation and test images). Returns uint8 [N, canvas, canvas]. Images already of
    the canvas's side with no clutter are returned as they are (your own images: [N, C, canvas, canvas]).
    """
    N = digits.shape[0]
    if canvas == digits.shape[-1] and pieces == 0:
        return digits
    top = torch.randint(0, canvas - DIGIT + 1, (N,), generator=gen)
    left = torch.randint(0, canvas - DIGIT + 1, (N,), generator=gen)
    out = torch.zeros(N, canvas * canvas, dtype=torch.int16)
    out.scatter_(1, square_index(top, left, DIGIT, canvas), digits.reshape(N, -1).to(torch.int16))
    if pieces:
        pool = digits if pool is None else pool
        M = pool.shape[0]
        if pool_index is None:
            source = torch.randint(0, M, (N, pieces), generator=gen)
        else:  # uniform over the pool minus the digit itself
            source = (pool_index[:, None] + 1 + torch.randint(0, M - 1, (N, pieces), generator=gen)) % M
        add_clutter(out, source, canvas=canvas, piece_size=piece_size, pool=pool, gen=gen)
    return out.to(torch.uint8).view(N, canvas, canvas)


def add_clutter(
    out: torch.Tensor, source: torch.Tensor, *, canvas: int, piece_size: int, pool: torch.Tensor, gen: torch.Generator
) -> None:
    """Add a random piece_size x piece_size crop of pool[source[i, j]] at a random place of canvas i, then clip to 255.

    out: int16 [N, canvas * canvas], changed in place. source: int64 [N, pieces], the pool digit each piece is cut
    from (the caller decides which digits are allowed). pool: uint8 [M, 28, 28].
    """
    N, pieces = source.shape
    crop_top = torch.randint(0, DIGIT - piece_size + 1, (N, pieces), generator=gen)
    crop_left = torch.randint(0, DIGIT - piece_size + 1, (N, pieces), generator=gen)
    crops = pool.reshape(-1)[source[..., None] * DIGIT**2 + square_index(crop_top, crop_left, piece_size, DIGIT)]
    at_top = torch.randint(0, canvas - piece_size + 1, (N, pieces), generator=gen)
    at_left = torch.randint(0, canvas - piece_size + 1, (N, pieces), generator=gen)
    at = square_index(at_top, at_left, piece_size, canvas).reshape(N, -1)
    out.scatter_add_(1, at, crops.reshape(N, -1).to(torch.int16))
    out.clamp_(max=255)


def shift(images: torch.Tensor, most: int, *, gen: torch.Generator) -> torch.Tensor:
    """Move each image by its own random (dy, dx), each a whole number in [-most, most], filling with black.

    images: uint8 [N, H, W] or [N, C, H, W]; returns the same shape and dtype.
    """
    if most == 0:
        return images
    N, H, W = images.shape[0], images.shape[-2], images.shape[-1]
    padded = torch.nn.functional.pad(images, (most, most, most, most))  # zeros around every image
    top = torch.randint(0, 2 * most + 1, (N,), generator=gen)
    left = torch.randint(0, 2 * most + 1, (N,), generator=gen)
    rows = (top[:, None] + torch.arange(H))[:, :, None]  # [N, H, 1]
    cols = (left[:, None] + torch.arange(W))[:, None, :]  # [N, 1, W]
    # The indexed axes come first: [N, H, W] for grey, [N, H, W, C] for [N, C, H, W].
    moved = padded[torch.arange(N)[:, None, None], ..., rows, cols]
    return moved if images.dim() == 3 else moved.permute(0, 3, 1, 2).contiguous()


def warp(images: torch.Tensor, rotate: float, scale: float, *, gen: torch.Generator) -> torch.Tensor:
    """Turn each image about its centre by its own random angle in [-rotate, rotate] degrees and resize it by its own
    factor in [1 - scale, 1 + scale], bilinear, filling with black (Simard et al. 2003's affine distortions).

    images: float [N, C, H, W]; returns a new tensor of the same shape (the input itself when both bounds are 0).
    """
    if rotate == 0 and scale == 0:
        return images
    N = images.shape[0]
    angle = torch.deg2rad(torch.empty(N).uniform_(-rotate, rotate, generator=gen))
    factor = torch.empty(N).uniform_(1 - scale, 1 + scale, generator=gen)
    # affine_grid maps output to input coordinates: the inverse of "turn by angle, grow by factor".
    cos, sin = torch.cos(angle) / factor, torch.sin(angle) / factor
    zero = torch.zeros(N)
    theta = torch.stack([torch.stack([cos, sin, zero], 1), torch.stack([-sin, cos, zero], 1)], 1)
    grid = torch.nn.functional.affine_grid(theta, list(images.shape), align_corners=False)
    return torch.nn.functional.grid_sample(images, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
