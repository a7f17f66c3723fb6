"""The glimpse sensor rho(x, l): k square patches around one point, each twice the side of the last, all pooled to g x g.

Coordinates. A location is (x, y) in [-1, 1], (-1, -1) being the top-left corner of the image and (1, 1) the
bottom-right. It maps to the continuous pixel point (u, v) = ((x + 1) / 2 * W, (y + 1) / 2 * H), where pixel column j
spans [j, j + 1). Scale k has side s_k = size * 2**k and covers the columns c - s_k // 2 ... c - s_k // 2 + s_k - 1 with
c = round(u) (half up), and likewise the rows. For even sides and whole-pixel centres this is u - s/2 ... u + s/2 - 1.
Every scale shares the centre pixel c, so the scales are nested squares: one gather of the largest square gives all of
them, and scale k is its central crop average-pooled by 2**k. Anything outside the image reads as 0.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def check_geometry(*, size: int, scales: int, height: int, width: int) -> None:
    """Raise ValueError naming the field and the value if the sensor cannot read such an image."""
    if size < 1:
        raise ValueError(f"patch size must be >= 1, got {size}")
    if scales < 1:
        raise ValueError(f"scales must be >= 1, got {scales}")
    if size > min(height, width):
        raise ValueError(f"patch size {size} is larger than the {height}x{width} image")


def pad_images(images: torch.Tensor, *, size: int, scales: int) -> tuple[torch.Tensor, int]:
    """Zero-pad [B, C, H, W] images once per episode so every in-range read is a plain gather.

    Returns the padded images [B, C, H + 2p, W + 2p] and p, the side of the largest patch.
    """
    pad = size * 2 ** (scales - 1)
    return F.pad(images, (pad, pad, pad, pad)), pad


def read(
    padded: torch.Tensor, pad: int, locations: torch.Tensor, *, size: int, scales: int, height: int, width: int
) -> torch.Tensor:
    """Glimpses from images already padded by `pad_images`: the hot path, with no checks and no host syncs.

    padded: [B, C, H + 2p, W + 2p]; locations: [B, 2] as (x, y). Returns [B, scales, C, size, size].
    """
    B, C, Hp, Wp = padded.shape
    side = pad  # the largest patch
    scale = torch.tensor([width / 2, height / 2], dtype=locations.dtype, device=locations.device)
    centre = torch.floor((locations + 1) * scale + 0.5)  # [B, 2] pixel (c_x, c_y)
    # Top-left of the largest square in padded coordinates. A square entirely off the image is clamped to one that is
    # still entirely inside the zero border, which reads the same zeros and keeps every index in range.
    start = centre.long() - side // 2 + pad
    start_x = start[:, 0].clamp(0, width + pad)
    start_y = start[:, 1].clamp(0, height + pad)
    offsets = torch.arange(side, device=padded.device)
    rows = (start_y[:, None] + offsets) * Wp  # [B, side]
    cols = start_x[:, None] + offsets  # [B, side]
    index = (rows[:, :, None] + cols[:, None, :]).view(B, 1, side * side).expand(B, C, side * side)
    big = padded.view(B, C, Hp * Wp).gather(2, index).view(B, C, side, side)

    patches = []
    for k in range(scales):
        s = size * 2**k
        o = side // 2 - s // 2
        crop = big[:, :, o : o + s, o : o + s]
        patches.append(crop if k == 0 else F.avg_pool2d(crop, 2**k))
    return torch.stack(patches, dim=1)


def glimpse(images: torch.Tensor, locations: torch.Tensor, size: int, scales: int) -> torch.Tensor:
    """Read `scales` patches of side size * 2**k around each location, each pooled to size x size.

    images: [B, C, H, W] float; locations: [B, 2] as (x, y), any finite value (outside [-1, 1] reads zeros).
    Returns [B, scales, C, size, size].
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
    padded, pad = pad_images(images, size=size, scales=scales)
    # Far-off locations would overflow the index arithmetic. Past 1 + side / W every scale reads only zeros, so
    # clamping beyond that bound changes nothing.
    bound = 2.0 + 2.0 * pad / min(H, W)
    locations = locations.clamp(-bound, bound)
    return read(padded, pad, locations.to(images.dtype), size=size, scales=scales, height=H, width=W)
