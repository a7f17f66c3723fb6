"""The glimpse sensor rho(x, l): k square patches around one point, each twice the side of the last, all pooled to g x g.

Coordinates. A location is (x, y) in [-1, 1], (-1, -1) being the top-left corner of the image and (1, 1) the
bottom-right. It maps to the continuous pixel point (u, v) = ((x + 1) / 2 * W, (y + 1) / 2 * H), where pixel column j
spans [j, j + 1). Scale k has side s_k = size * 2**k and covers the columns c - s_k // 2 ... c - s_k // 2 + s_k - 1 with
c = round(u) (half up), and likewise the rows. For even sides and whole-pixel centres this is u - s/2 ... u + s/2 - 1.
Every scale shares the centre pixel c, so the scales are nested squares: one gather of the largest square gives all of
them, and scale k is its central crop average-pooled by 2**k. Anything outside the image reads as 0.

Speed. The largest square is read as `side` rows of `side` contiguous pixels (one index_select over an overlapping
view of the padded images, about 5x faster than an element-wise gather), and for even sizes the scales come from a
pyramid of 2x2 means (scale k is a crop of the k-th level), about 5x faster than avg_pool2d on this CPU.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def pad_images(
    images: torch.Tensor, *, size: int, scales: int, locations_in_range: bool = False, mode: str = "zeros"
) -> tuple[torch.Tensor, int]:
    """Pad [B, C, H, W] images once per episode so every read is a plain in-range gather: with zeros, or with mode
    "edge" by repeating the border pixels (seed 002's retina).

    Returns the padded images [B, C, H + 2p, W + 2p] and p. By default p is the side of the largest patch, which
    serves any location (`glimpse` clamps far ones). With locations_in_range=True the caller promises every location
    lies in [-1, 1] (the model's policies clamp to the image), and half the side suffices: the centre pixel is then
    in 0..W, so the square reaches at most ceil(side / 2) pixels past the image. That pads 60x60 images to 108x108
    instead of 156x156.
    """
    side = size * 2 ** (scales - 1)
    pad = (side + 1) // 2 if locations_in_range else side
    if mode == "edge":
        return F.pad(images, (pad, pad, pad, pad), mode="replicate"), pad
    return F.pad(images, (pad, pad, pad, pad)), pad


def _pool2(x: torch.Tensor, pool: str = "mean") -> torch.Tensor:
    """Mean (or max) of 2x2 blocks of [B, C, h, w] (h, w even): rows first, whose halves are contiguous, then columns."""
    B, C, h, w = x.shape
    rows = x.reshape(B, C, h // 2, 2 * w)
    if pool == "max":
        y = torch.maximum(rows[..., :w], rows[..., w:])
        return torch.maximum(y[..., 0::2], y[..., 1::2])
    y = rows[..., :w] + rows[..., w:]
    return (y[..., 0::2] + y[..., 1::2]).mul_(0.25)


def row_offsets(padded: torch.Tensor, side: int) -> torch.Tensor:
    """[B, C * side] int64: where row i of channel c of image b's square starts, relative to the square's top-left
    pixel in the flattened padded images: ((b C + c) Hp + i) Wp. The same for every glimpse of an episode."""
    B, C, Hp, Wp = padded.shape
    image = torch.arange(0, B * C * Hp * Wp, C * Hp * Wp, device=padded.device)  # [B]
    row = (torch.arange(C, device=padded.device)[:, None] * Hp + torch.arange(side, device=padded.device)) * Wp
    return image[:, None] + row.view(1, C * side)


def read(
    padded: torch.Tensor, pad: int, locations: torch.Tensor, *, size: int, scales: int, height: int, width: int,
    out: torch.Tensor | None = None, rows: torch.Tensor | None = None, pool: str = "mean",
) -> torch.Tensor:
    """Glimpses from images already padded by `pad_images`: the hot path, with no checks and no host syncs.

    padded: [B, C, H + 2p, W + 2p], contiguous; locations: [B, 2] as (x, y), in [-1, 1] if the padding was made for
    that. Returns [B, scales, C, size, size], written into `out` if given (e.g. a row of a buffer). rows: the episode's
    `row_offsets`, to save recomputing them every glimpse. pool: how a coarse scale is brought down to size x size,
    "mean" (the paper's band-limited retina) or "max" (seed 002's Catch, where a one-pixel ball would otherwise fade
    to a 1/16 grey at the third scale).
    """
    B, C, Hp, Wp = padded.shape
    side = size * 2 ** (scales - 1)  # the largest patch
    if height == width:
        half = width / 2
    else:
        half = torch.tensor([width / 2, height / 2], dtype=locations.dtype, device=locations.device)
    centre = torch.floor((locations + 1) * half + 0.5)  # [B, 2] pixel (c_x, c_y)
    # Top-left of the largest square in padded coordinates. A square entirely off the image is clamped to one that is
    # still entirely inside the zero border, which reads the same zeros and keeps every index in range.
    start = centre.long() + (pad - side // 2)
    if Hp == Wp:
        start = start.clamp_(0, Wp - side)
    else:
        start = torch.stack((start[:, 0].clamp(0, Wp - side), start[:, 1].clamp(0, Hp - side)), dim=1)
    if rows is None:
        rows = row_offsets(padded, side)
    index = (rows + (start[:, 1] * Wp + start[:, 0])[:, None]).view(-1)  # [B * C * side] row starts
    flat = padded.view(-1)
    windows = flat.as_strided((flat.numel() - side + 1, side), (1, 1))  # row r = flat[r : r + side]
    if scales == 1:
        if out is None:
            return windows.index_select(0, index).view(B, 1, C, size, size)
        if out.is_contiguous():
            return torch.index_select(windows, 0, index, out=out.view(B * C * side, side)).view(out.shape)
    big = windows.index_select(0, index).view(B, C, side, side)

    if out is None:
        out = padded.new_empty(B, scales, C, size, size)
    if scales == 1:
        out[:, 0].copy_(big)
    elif size % 2 == 0:
        # Pyramid: level k is big pooled by 2**k, and scale k is its central size x size crop (at an integer offset
        # because size is even).
        level = big
        for k in range(scales):
            if k:
                level = _pool2(level, pool)
            o = (level.shape[-1] - size) // 2
            out[:, k].copy_(level[:, :, o : o + size, o : o + size])
    else:
        for k in range(scales):
            s = size * 2**k
            o = side // 2 - s // 2
            crop = big[:, :, o : o + s, o : o + s]
            down = F.max_pool2d if pool == "max" else F.avg_pool2d
            out[:, k].copy_(crop if k == 0 else down(crop, 2**k))
    return out


def glimpse(images: torch.Tensor, locations: torch.Tensor, size: int, scales: int, pool: str = "mean",
            pad: str = "zeros") -> torch.Tensor:
    """Read `scales` patches of side size * 2**k around each location, each pooled to size x size.

    images: [B, C, H, W] float; locations: [B, 2] as (x, y), any finite value (outside [-1, 1] reads zeros, or with
    pad "edge" the nearest border pixels). Returns [B, scales, C, size, size].
    """
    if images.dim() != 4:
        raise ValueError(f"images must be [B, C, H, W], got shape {tuple(images.shape)}")
    if locations.shape != (images.shape[0], 2):
        raise ValueError(f"locations must be [{images.shape[0]}, 2], got shape {tuple(locations.shape)}")
    if not torch.isfinite(locations).all():
        raise ValueError(f"locations must be finite, got {locations[~torch.isfinite(locations).all(1)][:4].tolist()}")
    if size < 1 or scales < 1:
        raise ValueError(f"size and scales must be >= 1, got size={size}, scales={scales}")
    H, W = images.shape[-2:]
    padded, width = pad_images(images, size=size, scales=scales, mode=pad)
    # Far-off locations would overflow the index arithmetic. Past 1 + side / W every scale reads only padding, so
    # clamping beyond that bound changes nothing.
    bound = 2.0 + 2.0 * width / min(H, W)
    locations = locations.clamp(-bound, bound)
    return read(padded.contiguous(), width, locations.to(images.dtype), size=size, scales=scales, height=H, width=W,
                pool=pool)


def boxes(locations: torch.Tensor, *, patch_size: int, scales: int, height: int, width: int) -> torch.Tensor:
    """The squares the sensor reads: locations [..., 2] -> int64 [..., scales, 3] as (x0, y0, side) in pixels.

    Computed exactly as `read` does, so a box is the set of pixels the model saw at that scale.
    """
    scale = torch.tensor([width / 2, height / 2], dtype=locations.dtype)
    centre = torch.floor((locations + 1) * scale + 0.5).long()  # [..., 2]
    sides = patch_size * 2 ** torch.arange(scales)  # [scales]
    corner = centre[..., None, :] - (sides // 2)[:, None]  # [..., scales, 2]
    return torch.cat([corner, sides[:, None].expand_as(corner[..., :1])], dim=-1)
