"""Canvases of several digits (mnist-pairs, mnist-addition): the splits keep their digits apart, the digits do not
overlap, the labels name what was placed, and the draws are functions of the seed."""

import itertools

import pytest
import torch

from ram.data import mnist
from ram.data.multi import (ADDITION, EOS, PAD, PAIRS, Layout, MultiDigitData, compose, label_lengths, pack_labels,
                            pair_class, place_apart, sequence_reward, upto_first_wrong)
from ram.data.tasks import generator

# Every digit of a split is the constant of its split, a different power of 8. With at most three layers on a pixel (a
# digit and two clutter pieces: the digits' boxes are disjoint), a pixel's value in base 8 counts the layers of each
# split on it, so one pixel from another split shows.
TRAIN_CODE, VAL_CODE, TEST_CODE = 1, 8, 64
CODED = Layout(objects=2, canvas=100, pieces=2)


def coded_digits(n_train=300, n_val=100, n_test=200) -> mnist.Digits:
    def const(n, value):
        return torch.full((n, 28, 28), value, dtype=torch.uint8)

    labels = torch.arange(max(n_train + n_val, n_test)) % 10
    return mnist.Digits(
        torch.cat([const(n_train, TRAIN_CODE), const(n_val, VAL_CODE)]), labels[: n_train + n_val],
        const(n_test, TEST_CODE), labels[:n_test],
    )


def crops(c) -> torch.Tensor:
    """The 28x28 box of each placed digit: uint8 [N, objects, 28, 28]."""
    return torch.stack([
        torch.stack([img[t : t + 28, l : l + 28] for t, l in pos.tolist()]) for img, pos in zip(c.images, c.positions)
    ])


@pytest.fixture(scope="module")
def coded():
    return MultiDigitData(coded_digits(), seed=0, layout=CODED, val_size=100)


def test_training_canvases_hold_training_digits_only(coded):
    for epoch in range(2):
        for c in coded.train_batches(epoch, 64):
            assert c.images.max() < VAL_CODE  # no validation or test pixel, clutter included
            assert c.images.max() > 0
            # and by index: digits and clutter come from the training head of MNIST's training set
            assert (c.sources < 300).all() and (c.clutter < 300).all()


def test_validation_canvases_come_from_the_held_out_tail_and_test_canvases_from_the_test_set(coded):
    val, test = coded.val().images.long(), coded.test().images.long()
    assert (val % VAL_CODE == 0).all() and (val < TEST_CODE).all() and val.max() > 0
    assert (test % TEST_CODE == 0).all() and test.max() > 0
    assert coded.val().images.shape[0] == 100 and coded.test().images.shape[0] == 200
    assert torch.equal(coded.val_digits.images, coded_digits().train_images[300:])


def test_a_canvas_holds_different_digits_and_its_clutter_comes_from_others(coded):
    for c in [coded.test(), next(coded.train_batches(0, 300))]:
        assert (c.sources[:, 0] != c.sources[:, 1]).all()
        assert (c.clutter[:, :, None] != c.sources[:, None, :]).all()
    # every other digit of the split gets used, for the digits and for the clutter
    c = compose(torch.ones(5, 28, 28, dtype=torch.uint8), torch.zeros(5, dtype=torch.int64), torch.zeros(400).long(),
                layout=PAIRS, gen=generator(5))
    assert set(c.sources[c.sources != 0].tolist()) == {1, 2, 3, 4}
    assert set(c.clutter.flatten().tolist()) == {1, 2, 3, 4}


@pytest.mark.parametrize("objects,canvas", [(2, 100), (2, 70), (3, 100), (4, 112)])
def test_digits_do_not_overlap(objects, canvas):
    ones = torch.ones(500, 28, 28, dtype=torch.uint8)
    c = compose(ones, torch.zeros(500, dtype=torch.int64), torch.arange(500),
                layout=Layout(objects=objects, canvas=canvas, pieces=0), gen=generator(objects, canvas))
    assert c.images.max() == 1  # boxes that overlapped would add up to 2 where they meet
    assert (c.images.sum((1, 2)) == objects * 28 * 28).all()
    assert (c.positions >= 0).all() and (c.positions <= canvas - 28).all()
    top, left = c.positions[..., 0], c.positions[..., 1]
    for i, j in itertools.combinations(range(objects), 2):
        assert (((top[:, i] - top[:, j]).abs() >= 28) | ((left[:, i] - left[:, j]).abs() >= 28)).all()


def test_given_digits_are_placed_whole_and_apart_with_clutter_from_the_pool():
    """The page's drawn digits (`place_apart`): each whole in its own 28x28 box, the boxes apart, the clutter cut from
    the pool, and the canvas a function of the seed. The digits are codes as above: 1, 8, and the pool's 64."""
    digits = torch.stack([torch.full((28, 28), TRAIN_CODE), torch.full((28, 28), VAL_CODE)]).to(torch.uint8)[None]
    pool = torch.full((5, 28, 28), TEST_CODE, dtype=torch.uint8)
    layout = Layout(objects=2, canvas=100, pieces=2, piece_size=8)
    canvas = place_apart(digits, layout=layout, pool=pool, gen=generator(3))[0].long()  # [100, 100]
    for layer in (canvas % 8, canvas // 8 % 8):
        rows, cols = torch.nonzero(layer == 1, as_tuple=True)
        assert len(rows) == 784 and rows.max() - rows.min() == 27 and cols.max() - cols.min() == 27  # one whole box
    assert 64 <= (canvas >= TEST_CODE).sum() <= 2 * 64  # two 8x8 pieces, from the pool alone
    assert torch.equal(place_apart(digits, layout=layout, pool=pool, gen=generator(3))[0].long(), canvas)
    assert not torch.equal(place_apart(digits, layout=layout, pool=pool, gen=generator(4))[0].long(), canvas)
    with pytest.raises(ValueError, match="3 digits per canvas; the layout holds 2"):
        place_apart(torch.zeros(1, 3, 28, 28, dtype=torch.uint8), layout=layout, gen=generator(0))


def test_positions_cover_the_canvas():
    c = compose(torch.ones(3000, 28, 28, dtype=torch.uint8), torch.zeros(3000, dtype=torch.int64), torch.arange(3000),
                layout=Layout(pieces=0), gen=generator(7))
    for axis in (0, 1):
        assert c.positions[..., axis].min() == 0 and c.positions[..., axis].max() == 72


@pytest.fixture(scope="module")
def digits(mnist_root):
    return mnist.load(root=mnist_root, progress=False)


def test_labels_name_the_digits_placed_in_reading_order(digits):
    data = MultiDigitData(digits, seed=0, layout=Layout(pieces=0))
    test = data.test()
    batch = next(data.train_batches(0, 500))
    for c, split in [(test, data.test_digits), (batch, data.train)]:
        n = c.images.shape[0]
        assert torch.equal(crops(c), split.images[c.sources])  # each digit intact where `positions` says
        assert torch.equal(c.labels[:, :2], split.labels[c.sources])
        assert (c.labels[:, 2] == EOS).all()
        assert torch.equal(c.sums, split.labels[c.sources].sum(1))
        assert (c.positions[:, 0, 1] <= c.positions[:, 1, 1]).all()  # left to right
        assert c.images.sum() == split.images[c.sources].long().sum()  # nothing else on the canvas
        assert c.labels.shape == (n, 3) and c.sums.shape == (n,) and c.positions.shape == (n, 2, 2)
    assert (batch.sources < 50_000).all()  # the head of MNIST's training set; validation is its last 10,000
    assert set(test.sources.flatten().tolist()) == set(range(10_000))  # each test digit starts one test canvas


def test_shapes_and_dtypes_of_cluttered_canvases(digits):
    data = MultiDigitData(digits, seed=0, layout=PAIRS, train_size=1000)
    c = next(data.train_batches(0, 64))
    assert c.images.shape == (64, 100, 100) and c.images.dtype == torch.uint8
    for t in (c.labels, c.sums, c.sources, c.positions, c.clutter):
        assert t.dtype == torch.int64
    assert c.clutter.shape == (64, 8)
    assert c.sums.max() <= 18 and c.sums.min() >= 0
    assert data.batches_per_epoch(64) == 16


def test_the_addition_answer_is_the_sum(digits):
    c = MultiDigitData(digits, seed=3, layout=ADDITION).test()
    assert torch.equal(c.sums, c.labels[:, 0] + c.labels[:, 1])
    assert set(c.sums.tolist()) == set(range(19))


def test_same_seed_same_canvases_and_a_resumed_epoch_sees_the_same_ones():
    a = MultiDigitData(coded_digits(), seed=1, layout=PAIRS, val_size=100)
    b = MultiDigitData(coded_digits(), seed=1, layout=PAIRS, val_size=100)
    e0 = list(a.train_batches(0, 64))
    assert len(e0) == a.batches_per_epoch(64) == 5
    for x, y in zip(e0, b.train_batches(0, 64)):
        assert all(torch.equal(u, v) for u, v in zip(x, y))
    for x, y in zip(e0[2:], a.train_batches(0, 64, start=2)):
        assert all(torch.equal(u, v) for u, v in zip(x, y))
    assert not torch.equal(e0[0].sources, next(a.train_batches(1, 64)).sources)  # fresh canvases each epoch
    assert not torch.equal(e0[0].images, next(MultiDigitData(coded_digits(), seed=2, val_size=100)
                                             .train_batches(0, 64)).images)
    # the standard test draw does not depend on the run's seed, another test seed redraws it
    assert torch.equal(a.test(0).images, MultiDigitData(coded_digits(), seed=9, val_size=100).test(0).images)
    assert not torch.equal(a.test(0).positions, a.test(1).positions)
    assert torch.equal(a.test(1).clutter, b.test(1).clutter)


def test_shards_split_an_epoch_between_ranks():
    data = MultiDigitData(coded_digits(), seed=0, val_size=100)
    whole = list(data.train_batches(0, 32))  # 10 batches
    ranks = [list(data.train_batches(0, 32, shard=(r, 3))) for r in range(3)]
    assert [len(r) for r in ranks] == [3, 3, 3]  # the ragged tenth batch is dropped
    assert torch.equal(ranks[1][0].images, whole[1].images) and torch.equal(ranks[0][1].images, whole[3].images)


def test_pair_classes_number_the_55_unordered_pairs():
    pairs = torch.tensor(list(itertools.product(range(10), repeat=2)))
    classes = pair_class(pairs)
    assert set(classes.tolist()) == set(range(55))
    assert torch.equal(classes, pair_class(pairs.flip(1)))  # either order
    assert pair_class(torch.tensor([[0, 0], [9, 0], [1, 1], [9, 9]])).tolist() == [0, 9, 10, 54]


@pytest.mark.parametrize("layout,message", [
    (Layout(objects=0), "objects = 0"),
    (Layout(objects=5, canvas=60), "objects = 5"),
    (Layout(pieces=-1), "pieces = -1"),
    (Layout(piece_size=30), "piece_size = 30"),
])
def test_a_bad_layout_is_named(layout, message):
    with pytest.raises(ValueError, match=message):
        MultiDigitData(coded_digits(), seed=0, layout=layout, val_size=100)


def test_a_split_too_small_is_named():
    with pytest.raises(ValueError, match="val_size = 400"):
        MultiDigitData(coded_digits(), seed=0, val_size=400)
    with pytest.raises(ValueError, match="too few"):
        compose(torch.ones(2, 28, 28, dtype=torch.uint8), torch.zeros(2, dtype=torch.int64), torch.arange(2),
                layout=PAIRS, gen=generator(0))


def test_strings_of_any_length_share_the_label_layout():
    labels = pack_labels([[7, 3], [5], [], [1, 2, 3, 4]])
    assert labels.tolist() == [[7, 3, EOS, PAD, PAD], [5, EOS, PAD, PAD, PAD], [EOS, PAD, PAD, PAD, PAD],
                               [1, 2, 3, 4, EOS]]
    assert label_lengths(labels).tolist() == [2, 1, 0, 4]
    c = compose(torch.ones(10, 28, 28, dtype=torch.uint8), torch.arange(10), torch.arange(10), layout=PAIRS,
                gen=generator(0))
    assert torch.equal(pack_labels(c.labels[:, :2].tolist()), c.labels)  # a pair is a string of two
    assert (label_lengths(c.labels) == 2).all()
    # PAD is what cross-entropy skips by default, so a padded batch needs no mask
    logits = torch.randn(4 * 5, 11)
    full = torch.nn.functional.cross_entropy(logits, labels.flatten(), reduction="sum")
    kept = labels.flatten() != PAD
    kept_only = torch.nn.functional.cross_entropy(logits[kept], labels.flatten()[kept], reduction="sum")
    assert torch.allclose(full, kept_only)
    with pytest.raises(ValueError, match="0..9"):
        pack_labels([[3, 12]])


def test_the_reward_counts_right_labels_and_is_cut_at_the_first_wrong_one():
    labels = pack_labels([[7, 3], [7, 3], [7, 3], [5]])  # [7, 3, EOS], ..., [5, EOS, PAD]
    predicted = torch.tensor([[7, 3, EOS], [7, 5, EOS], [1, 3, EOS], [5, EOS, 9]])
    assert sequence_reward(predicted, labels).tolist() == [[1, 2, 3], [1, 1, 1], [0, 0, 0], [1, 2, 2]]
    assert upto_first_wrong(predicted, labels).tolist() == [
        [True, True, True], [True, True, False], [True, False, False], [True, True, False]]
