"""Task builders (translated, cluttered) and the split/seed rules, on synthetic digits."""

import torch

from ram.config import TaskConfig
from ram.data import Digits, TaskData
from ram.data.tasks import generator, place


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
    task = TaskConfig(canvas=60, pieces=4, val_size=100)
    a = TaskData(task, seed=0, digits=synthetic_digits())
    b = TaskData(task, seed=5, digits=synthetic_digits())
    assert torch.equal(a.test(0).images, b.test(0).images)  # the standard set does not depend on the run seed
    assert not torch.equal(a.test(0).images, a.test(1).images)
    assert torch.equal(a.test(1).images, TaskData(task, seed=0, digits=synthetic_digits()).test(1).images)
    assert torch.equal(a.test(0).labels, synthetic_digits().test_labels)


def test_training_batches_are_fresh_each_epoch_and_resumable():
    data = TaskData(TaskConfig(canvas=60, val_size=100), seed=0, digits=synthetic_digits())
    e0 = list(data.train_batches(0, 64))
    e1 = list(data.train_batches(1, 64))
    assert len(e0) == data.batches_per_epoch(64) == 4
    assert not torch.equal(e0[0][0], e1[0][0])
    again = list(data.train_batches(0, 64, start=2))
    assert all(torch.equal(x, y) for (x, _), (y, _) in zip(again, e0[2:]))
    assert e0[0][0].shape == (64, 1, 60, 60) and e0[0][0].dtype == torch.float32 and e0[0][0].max() <= 1


def test_validation_comes_from_the_end_of_train():
    digits = synthetic_digits()
    data = TaskData(TaskConfig(canvas=28, val_size=100), seed=0, digits=digits)
    assert torch.equal(data.val().images, digits.train_images[200:])
    assert data.train.images.shape[0] == 200
