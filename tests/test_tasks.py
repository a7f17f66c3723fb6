"""Task builders (translated, cluttered, shifted, distorted) and the split/seed rules, on synthetic digits."""

import pytest
import torch

from ram.config import ConfigError
from ram.data import Digits, TaskData
from ram.data.tasks import generator, place, shift, warp
from ram.tasks import DigitsConfig


def synthetic_digits(n_train=300, n_test=50) -> Digits:
    g = torch.Generator().manual_seed(0)
    return Digits(
        torch.randint(0, 256, (n_train, 28, 28), generator=g, dtype=torch.uint8),
        torch.arange(n_train) % 10,
        torch.randint(0, 256, (n_test, 28, 28), generator=g, dtype=torch.uint8),
        torch.arange(n_test) % 10,
    )


def test_translated_digit_is_intact_somewhere_on_the_canvas():
    digits = synthetic_digits().train_images[:20]
    out = place(digits, canvas=60, gen=generator(0))
    assert out.shape == (20, 60, 60) and out.dtype == torch.uint8
    for i in range(20):
        ys, xs = torch.nonzero(out[i], as_tuple=True)
        top, left = int(ys.min()), int(xs.min())
        # the digit's bounding box may be smaller than 28x28; find the placement by matching the whole digit
        found = any(
            torch.equal(out[i, t : t + 28, l : l + 28], digits[i])
            for t in range(max(0, top - 27), min(top, 32) + 1)
            for l in range(max(0, left - 27), min(left, 32) + 1)
        )
        assert found, i
        assert out[i].sum() == digits[i].sum()


def test_positions_cover_the_canvas():
    digits = torch.full((2000, 28, 28), 255, dtype=torch.uint8)
    out = place(digits, canvas=60, gen=generator(1))
    lefts = (out[:, 0:60, :] > 0).any(1).float().argmax(1)
    assert lefts.min() == 0 and lefts.max() == 32


def test_clutter_comes_from_other_digits_and_is_clipped():
    # digit i is the constant i + 1, so a lone piece's pixels tell which digit it was cut from
    for m in (2, 3, 200):
        pool = (torch.arange(m, dtype=torch.uint8) + 1)[:, None, None].expand(m, 28, 28).contiguous()
        index = torch.arange(500) % m
        out = place(torch.zeros(500, 28, 28, dtype=torch.uint8), canvas=60, pieces=1, pool=pool, pool_index=index,
                    gen=generator(m))
        source = out.flatten(1).max(1).values.long() - 1
        assert (source >= 0).all() and (source != index).all()
        if m == 3:
            assert set(source.tolist()) == {0, 1, 2}  # every other digit gets used
    heavy = place(torch.full((50, 28, 28), 200, dtype=torch.uint8), canvas=60, pieces=8,
                  pool=torch.full((10, 28, 28), 200, dtype=torch.uint8), gen=generator(3))
    assert heavy.max() == 255  # added, then clipped


def test_clutter_pieces_are_8x8():
    pool = torch.full((10, 28, 28), 9, dtype=torch.uint8)
    out = place(torch.zeros(300, 28, 28, dtype=torch.uint8), canvas=100, pieces=1, pool=pool, gen=generator(4))
    assert ((out == 9).sum((1, 2)) == 64).all()


def test_test_set_is_a_function_of_the_seed():
    task = DigitsConfig(canvas=60, pieces=4, val_size=100)
    a = TaskData(task, seed=0, digits=synthetic_digits())
    b = TaskData(task, seed=5, digits=synthetic_digits())
    assert torch.equal(a.test(0).images, b.test(0).images)  # the standard set does not depend on the run seed
    assert not torch.equal(a.test(0).images, a.test(1).images)
    assert torch.equal(a.test(1).images, TaskData(task, seed=0, digits=synthetic_digits()).test(1).images)
    assert torch.equal(a.test(0).labels, synthetic_digits().test_labels)


def test_training_batches_are_fresh_each_epoch_and_resumable():
    data = TaskData(DigitsConfig(canvas=60, val_size=100), seed=0, digits=synthetic_digits())
    e0 = list(data.train_batches(0, 64))
    e1 = list(data.train_batches(1, 64))
    assert len(e0) == data.batches_per_epoch(64) == 4
    assert not torch.equal(e0[0][0], e1[0][0])
    again = list(data.train_batches(0, 64, start=2))
    assert all(torch.equal(x, y) for (x, _), (y, _) in zip(again, e0[2:]))
    assert e0[0][0].shape == (64, 1, 60, 60) and e0[0][0].dtype == torch.float32 and e0[0][0].max() <= 1


def test_validation_comes_from_the_end_of_train():
    digits = synthetic_digits()
    data = TaskData(DigitsConfig(canvas=28, val_size=100), seed=0, digits=digits)
    assert torch.equal(data.val().images, digits.train_images[200:])
    assert data.train.images.shape[0] == 200


@pytest.mark.parametrize("channels", [None, 3])
def test_a_shift_moves_each_image_whole_within_its_bound(channels):
    """Every shifted image is its original moved by one (dy, dx) in [-2, 2]^2 with black filled in; all 25 moves
    occur; grey [N, H, W] and RGB [N, C, H, W] alike."""
    g = torch.Generator().manual_seed(1)
    shape = (400, 12, 12) if channels is None else (400, channels, 12, 12)
    images = torch.randint(1, 256, shape, generator=g, dtype=torch.uint8)  # no black pixel: the fill shows
    moved = shift(images, 2, gen=generator(0))
    assert moved.shape == images.shape and moved.dtype == torch.uint8
    seen = set()
    for before, after in zip(images, moved):
        matches = [(dy, dx) for dy in range(-2, 3) for dx in range(-2, 3)
                   if torch.equal(after, _moved(before, dy, dx))]
        assert len(matches) == 1
        seen.add(matches[0])
    assert len(seen) == 25


def _moved(image: torch.Tensor, dy: int, dx: int) -> torch.Tensor:
    """image shifted down by dy and right by dx, black where nothing moved in."""
    out = torch.zeros_like(image)
    H, W = image.shape[-2:]
    out[..., max(dy, 0):H + min(dy, 0), max(dx, 0):W + min(dx, 0)] = \
        image[..., max(-dy, 0):H + min(-dy, 0), max(-dx, 0):W + min(-dx, 0)]
    return out


@pytest.mark.parametrize("augment", [dict(shift=3), dict(rotate=10, scale=0.1)])
def test_augmentation_reaches_training_batches_only_and_resumes_the_same(augment):
    digits = synthetic_digits()
    plain = TaskData(DigitsConfig(canvas=28, val_size=100), seed=0, digits=digits)
    moved = TaskData(DigitsConfig(canvas=28, val_size=100, **augment), seed=0, digits=digits)
    assert torch.equal(moved.val().images, plain.val().images)
    assert torch.equal(moved.test().images, plain.test().images)
    (x, y), (x_plain, y_plain) = next(moved.train_batches(0, 64)), next(plain.train_batches(0, 64))
    assert torch.equal(y, y_plain) and x.shape == x_plain.shape and not torch.allclose(x, x_plain, atol=0.05)
    if "shift" in augment:
        assert (x == 0).sum() > (x_plain == 0).sum()  # black came in from the borders
    again = list(moved.train_batches(0, 64, start=1))
    assert all(torch.equal(a, b) for (a, _), (b, _) in zip(again, list(moved.train_batches(0, 64))[1:]))


@pytest.mark.parametrize("task, message", [
    (dict(shift=-1), "shift = -1: must be >= 0"),
    (dict(shift=28), "shift = 28: must be smaller than the canvas 28"),
    (dict(rotate=-5), "rotate = -5: must be in \\[0, 180\\] degrees"),
    (dict(rotate=float("nan")), "rotate = nan: must be in"),
    (dict(scale=1.0), "scale = 1.0: must be in \\[0, 1\\)"),
])
def test_a_bad_augmentation_is_named(task, message):
    with pytest.raises(ConfigError, match=message):
        DigitsConfig(**task).validate()


def _centroid(images: torch.Tensor) -> torch.Tensor:
    """[N, 1, H, W] -> [N, 2] (row, column) centre of mass, measured from the image centre."""
    H, W = images.shape[-2:]
    rows = torch.arange(H, dtype=torch.float32) - (H - 1) / 2
    cols = torch.arange(W, dtype=torch.float32) - (W - 1) / 2
    mass = images.sum((1, 2, 3))
    return torch.stack([(images.sum((1, 3)) * rows).sum(1), (images.sum((1, 2)) * cols).sum(1)], 1) / mass[:, None]


def test_a_warp_turns_and_resizes_each_image_about_its_centre_within_its_bounds():
    """A blob 8 pixels right of the centre lands at its own angle within +-20 degrees and its own distance within
    8 * [0.8, 1.2]; both signs of angle and both sides of 1 occur; the same generator gives the same images."""
    blob = torch.zeros(1, 1, 28, 28)
    blob[..., 13:15, 21:23] = 1.0  # centre (0.0, 8.0) from the image centre (13.5, 13.5)
    images = blob.repeat(300, 1, 1, 1)
    out = warp(images, 20, 0.2, gen=generator(3))
    assert out.shape == images.shape and torch.equal(out, warp(images, 20, 0.2, gen=generator(3)))
    assert torch.equal(images, blob.repeat(300, 1, 1, 1))  # the input is not touched
    row, col = _centroid(out).unbind(1)
    angle, radius = torch.rad2deg(torch.atan2(row, col)), torch.hypot(row, col) / 8.0
    assert angle.abs().max() <= 20.5 and radius.min() >= 0.8 - 0.02 and radius.max() <= 1.2 + 0.02
    assert angle.min() < -10 and angle.max() > 10 and radius.min() < 0.9 and radius.max() > 1.1
    assert warp(images, 0, 0.0, gen=generator(3)) is images  # off: no work, no copy
