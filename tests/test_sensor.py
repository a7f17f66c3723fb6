"""The batched glimpse sensor against a per-sample loop oracle that follows the docstring's rules literally."""

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from ram.sensor import glimpse, pad_images, read


def oracle(images: torch.Tensor, locations: torch.Tensor, size: int, scales: int) -> torch.Tensor:
    """One image, one scale, one pixel at a time: scale k covers c - s//2 ... with c = round-half-up(u)."""
    B, C, H, W = images.shape
    out = torch.zeros(B, scales, C, size, size, dtype=images.dtype)
    for b in range(B):
        x, y = locations[b].tolist()
        cx = math.floor((x + 1) / 2 * W + 0.5)
        cy = math.floor((y + 1) / 2 * H + 0.5)
        for k in range(scales):
            s = size * 2**k
            patch = torch.zeros(C, s, s, dtype=images.dtype)
            for i in range(s):
                for j in range(s):
                    r, c = cy - s // 2 + i, cx - s // 2 + j
                    if 0 <= r < H and 0 <= c < W:
                        patch[:, i, j] = images[b, :, r, c]
            f = 2**k
            out[b, k] = patch.view(C, size, f, size, f).mean(dim=(2, 4))
    return out


def test_whole_pixel_centre_covers_documented_columns():
    """28x28, 8x8 at the centre (u = 14) covers columns and rows 10..17."""
    image = torch.arange(28 * 28, dtype=torch.float32).view(1, 1, 28, 28)
    g = glimpse(image, torch.zeros(1, 2), 8, 1)
    assert g.shape == (1, 1, 1, 8, 8)
    assert torch.equal(g[0, 0, 0], image[0, 0, 10:18, 10:18])


def test_corner_reads_zeros_outside():
    image = torch.ones(1, 1, 28, 28)
    g = glimpse(image, torch.tensor([[-1.0, -1.0]]), 8, 1)[0, 0, 0]
    # centre pixel (0, 0): rows/cols -4..3, so the top-left 4x4 quadrant is outside the image
    assert g[:4].sum() == 0 and g[:, :4].sum() == 0
    assert torch.equal(g[4:, 4:], torch.ones(4, 4))


def test_scales_are_pooled_nested_squares():
    image = torch.rand(2, 1, 60, 60)
    loc = torch.tensor([[0.1, -0.3], [0.5, 0.5]])
    g = glimpse(image, loc, 12, 3)
    assert g.shape == (2, 3, 1, 12, 12)
    # scale 2 is the 48x48 square pooled 4x: its central 6x6 equals scale 1 (24x24 pooled 2x) pooled 2x again
    inner = torch.nn.functional.avg_pool2d(g[:, 1, :], 2)
    assert torch.allclose(g[:, 2, :, 3:9, 3:9], inner, atol=1e-6)


def test_nan_location_is_an_error():
    with pytest.raises(ValueError, match="finite"):
        glimpse(torch.rand(2, 1, 28, 28), torch.tensor([[0.0, 0.0], [float("nan"), 0.0]]), 8, 1)


def test_bad_shapes_are_errors():
    with pytest.raises(ValueError, match="locations"):
        glimpse(torch.rand(2, 1, 28, 28), torch.zeros(3, 2), 8, 1)
    with pytest.raises(ValueError, match="images"):
        glimpse(torch.rand(28, 28), torch.zeros(1, 2), 8, 1)


@settings(max_examples=60, deadline=None)
@given(
    batch=st.integers(1, 3),
    channels=st.integers(1, 3),
    height=st.integers(8, 40),
    width=st.integers(8, 40),
    size=st.integers(1, 8),
    scales=st.integers(1, 3),
    coords=st.lists(st.floats(-3.0, 3.0, allow_nan=False), min_size=6, max_size=6),
)
def test_matches_oracle(batch, channels, height, width, size, scales, coords):
    """Any location (also outside [-1, 1]), odd and even sizes, non-square images, C > 1."""
    torch.manual_seed(0)
    images = torch.rand(batch, channels, height, width, dtype=torch.float64)
    locations = torch.tensor(coords[: 2 * batch], dtype=torch.float64).view(batch, 2)
    fast = glimpse(images, locations, size, scales)
    assert fast.shape == (batch, scales, channels, size, size)
    assert torch.allclose(fast, oracle(images, locations, size, scales), atol=1e-12)


@settings(max_examples=20, deadline=None)
@given(x=st.floats(-1e6, 1e6, allow_nan=False), y=st.floats(-1e6, 1e6, allow_nan=False))
def test_far_locations_read_zeros_or_match(x, y):
    images = torch.rand(1, 1, 28, 28, dtype=torch.float64)
    loc = torch.tensor([[x, y]], dtype=torch.float64)
    fast = glimpse(images, loc, 8, 2)
    assert torch.allclose(fast, oracle(images, loc, 8, 2))


@settings(max_examples=40, deadline=None)
@given(
    size=st.integers(1, 8),
    scales=st.integers(1, 3),
    side=st.integers(8, 30),
    coords=st.lists(st.floats(-1.0, 1.0, allow_nan=False), min_size=6, max_size=6),
)
def test_in_range_padding_matches_oracle(size, scales, side, coords):
    """The model pads by half the largest patch only (its locations stay in [-1, 1]); reads are unchanged."""
    images = torch.rand(3, 2, side, side + 3, dtype=torch.float64)
    locations = torch.tensor(coords + [-1.0, 1.0], dtype=torch.float64)[2:].view(3, 2)  # include the corners
    padded, pad = pad_images(images, size=size, scales=scales, locations_in_range=True)
    assert pad == (size * 2 ** (scales - 1) + 1) // 2
    fast = read(padded, pad, locations, size=size, scales=scales, height=side, width=side + 3)
    assert torch.allclose(fast, oracle(images, locations, size, scales), atol=1e-12)
