"""Strings of digits (mnist-numbers, svhn): the splits keep their digits apart, the labels say what was placed, a
string is scored whole, the multi-head convnet's heads are Goodfellow's loss, and SVHN's own files and a labels.csv
are read, or refused in one line naming the file and the entry."""

import dataclasses
import itertools
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from ram import presets
from ram.cli import main
from ram.config import ConfigError
from ram.data import DataError, mnist
from ram.data import strings as strings_data
from ram.data.multi import EOS, PAD
from ram.data.multi import _uniform_excluding
from ram.data.numbers import NumberData, Shape, compose_strings, place_strings
from ram.data.strings import StringImages, Strings, box_to_square, read_digit_struct, read_folder, read_labels_csv
from ram.data.tasks import generator
from ram.flags import parse
from ram.losses import LossSpec, sequence_hybrid
from ram.models import build_model
from ram.multihead import MultiHeadConvNet
from ram.tasks.strings import MnistNumbers, string_score

try:
    import h5py
except ImportError:  # the svhn extra: only the tests of SVHN's own files need it
    h5py = None
needs_h5py = pytest.mark.skipif(h5py is None, reason="reading digitStruct.mat needs h5py (pip install .[svhn])")

CPU = torch.device("cpu")


@pytest.fixture(autouse=True)
def own_cache(tmp_path, monkeypatch) -> Path:
    """A data cache of the test's own: the squares and label files SVHN's folders leave there stay in tmp_path."""
    monkeypatch.setenv("RAM_DATA_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache"


# Every digit of a split is the constant of its split. Resizing and cropping only average pixels of one string, and
# overlapping digits keep the brighter pixel, so no pixel of a string exceeds the constant of the split it came from.
TRAIN_CODE, VAL_CODE, TEST_CODE = 50, 100, 200


def coded_digits(n_train=300, n_val=100, n_test=200) -> mnist.Digits:
    def const(n, value):
        return torch.full((n, 28, 28), value, dtype=torch.uint8)

    labels = torch.arange(max(n_train + n_val, n_test)) % 10
    return mnist.Digits(torch.cat([const(n_train, TRAIN_CODE), const(n_val, VAL_CODE)]), labels[: n_train + n_val],
                        const(n_test, TEST_CODE), labels[:n_test])


def test_training_strings_hold_training_digits_only_and_test_strings_test_digits():
    data = NumberData(coded_digits(), seed=0, val_size=100)
    for epoch in range(2):
        for s in data.train_batches(epoch, 64):
            assert 0 < s.images.max() <= TRAIN_CODE  # no validation or test pixel
            assert (s.sources < 300).all()  # and by index: the head of the training set
    val, test = data.val(), data.test()
    assert TRAIN_CODE < val.images.max() <= VAL_CODE and ((val.sources >= 0) | (val.sources == -1)).all()
    assert VAL_CODE < test.images.max() <= TEST_CODE
    assert (test.images.amax((1, 2)) > VAL_CODE).all()  # every test string shows its test digits
    assert set(test.sources[:, 0].tolist()) == set(range(200))  # each test digit starts one test string


def test_labels_are_the_digits_placed_then_eos_then_pad(mnist_root):
    digits = mnist.load(root=mnist_root, progress=False)
    s = compose_strings(digits.test_images, digits.test_labels, torch.arange(2000), shape=Shape(),
                        gen=generator(1))
    lengths = (s.labels == EOS).int().argmax(1)
    assert set(lengths.tolist()) == {1, 2, 3, 4, 5} and s.labels.shape == (2000, 6)
    assert s.images.shape == (2000, 54, 54) and s.images.dtype == torch.uint8
    for i in range(2000):
        n = int(lengths[i])
        assert s.labels[i, :n].tolist() == digits.test_labels[s.sources[i, :n]].tolist()
        assert (s.labels[i, n + 1 :] == PAD).all() and (s.sources[i, n:] == -1).all()
        assert len(set(s.sources[i, :n].tolist())) == n  # different images
    # the same seed draws the same strings
    again = compose_strings(digits.test_images, digits.test_labels, torch.arange(2000), shape=Shape(),
                            gen=generator(1))
    assert torch.equal(again.images, s.images) and torch.equal(again.labels, s.labels)


def test_given_digits_are_laid_out_as_a_split_s_strings_are():
    """The page's drawn digits (`place_strings`): with the generator where compose_strings has it after drawing a
    string's length and digits, the same digits come out as the same 54x54 image; the seed decides the layout."""
    digits = coded_digits().test_images.clone()
    digits[:, 4:24, 8:20] = torch.arange(200, dtype=torch.uint8)[:, None, None]  # each digit its own ink
    labels = torch.arange(200) % 10
    for seed in range(4):
        gen = generator(seed)
        made = compose_strings(digits, labels, torch.tensor([seed]), shape=Shape(), gen=gen)
        n = int((made.sources >= 0).sum())
        gen = generator(seed)  # the same draws of the length and the digits, then place_strings's
        torch.randint(1, 6, (1,), generator=gen)
        sources = torch.tensor([[seed]])
        for _ in range(4):
            sources = torch.cat([sources, _uniform_excluding(sources, 1, 200, gen)], 1)
        assert torch.equal(sources[0, :n], made.sources[0, :n])
        placed = place_strings(digits[sources[:, :n]], shape=Shape(), gen=gen)
        assert placed.shape == (1, 54, 54) and placed.dtype == torch.uint8
        assert torch.equal(placed, made.images)
    three = digits[None, :3]
    assert torch.equal(place_strings(three, shape=Shape(), gen=generator(5)),
                       place_strings(three, shape=Shape(), gen=generator(5)))
    assert not torch.equal(place_strings(three, shape=Shape(), gen=generator(5)),
                           place_strings(three, shape=Shape(), gen=generator(6)))
    with pytest.raises(ValueError, match="6 digits per string; strings hold 1 to 5"):
        place_strings(digits[None, :6], shape=Shape(), gen=generator(0))


def test_the_box_is_resized_to_the_square():
    image = torch.zeros(1, 1, 20, 40)
    image[..., 5:15, 10:30] = 1.0  # a 10x20 box of ink
    out = box_to_square(image, torch.tensor([[5.0, 10.0, 10.0, 20.0]]), side=8, crop=8)
    # the box fills the square (its outermost samples blend with the black beyond, as bilinear sampling does)
    assert torch.allclose(out[..., 1:7, 1:7], torch.ones(6, 6), atol=1e-6) and out.min() > 0.85
    half = box_to_square(image, torch.tensor([[0.0, 0.0, 20.0, 40.0]]), side=8, crop=8)
    assert half[0, 0, 2:6, 2:6].min() > 0.95 and half[0, 0, :, 0].max() < 1e-6  # the whole image, its border black


def test_a_string_is_right_only_when_every_label_and_its_length_are():
    labels = torch.tensor([[3, 1, 4, EOS, PAD, PAD], [7, EOS, PAD, PAD, PAD, PAD]] * 3)
    predicted = torch.tensor([
        [3, 1, 4, EOS, 5, 5],  # right: what follows the EOS is not read
        [7, EOS, EOS, EOS, EOS, EOS],  # right
        [3, 1, 4, 1, EOS, 5],  # too long: wrong, its digits right
        [7, 2, EOS, EOS, EOS, EOS],  # too long
        [3, 9, 4, EOS, EOS, EOS],  # one digit wrong
        [EOS, EOS, EOS, EOS, EOS, EOS],  # empty
    ])
    score = string_score(predicted, labels, EOS)
    assert score["right"].tolist() == [1, 1, 0, 0, 0, 0]
    right, of = score["digits"]
    assert right.tolist() == [3, 1, 3, 1, 2, 0] and of.tolist() == [3, 1, 3, 1, 3, 1]
    assert score["length"].tolist() == [1, 1, 0, 0, 1, 0]
    assert set(score) == {"right", "digits", "length", "long1", "long3"}
    right, of = score["long3"]
    assert right.tolist() == [1, 0, 0, 0, 0, 0] and of.tolist() == [1, 0, 1, 0, 1, 0]
    right, of = score["long1"]
    assert right.tolist() == [0, 1, 0, 0, 0, 0] and of.tolist() == [0, 1, 0, 1, 0, 1]


def small_run(model: str = "dram", **task):
    cfg = parse(["--preset", "mnist-numbers", "--model", model]).config(progress=False)
    return dataclasses.replace(cfg, task=dataclasses.replace(cfg.task, val_size=100, **task),
                               train=dataclasses.replace(cfg.train, eval_mc_samples=0, precision="fp32",
                                                         batch_size=32)).validate()


def test_the_digit_error_is_pooled_over_all_the_digits():
    task = MnistNumbers(small_run(), data=coded_digits(), progress=False)

    class Says314:
        def __call__(self, images, *, sample=True):
            from types import SimpleNamespace

            logits = 10.0 * F.one_hot(torch.tensor([3, 1, 4, EOS, EOS, EOS]), 11).float()
            return SimpleNamespace(logits=logits.expand(images.shape[0], -1, -1))

        def parameters(self):
            return iter([torch.zeros(1)])

        def eval(self):
            return self

        training = False

        def train(self, mode=True):
            return self

    val = task.data.val()
    got = task.evaluate(Says314(), val, batch_size=33)
    y = val.labels
    digits = (y != PAD) & (y != EOS)
    said = torch.tensor([3, 1, 4, EOS, EOS, EOS])
    right_digits = ((said == y) & digits).sum().item()
    assert got["digit_error"] == pytest.approx(100 * (1 - right_digits / digits.sum().item()), abs=1e-3)
    whole = sum(row[: row.index(EOS) + 1] == [3, 1, 4, EOS] for row in y.tolist())
    assert got["error"] == pytest.approx(100 * (1 - whole / 100))
    assert got["length_error"] == pytest.approx(100 * (1 - (digits.sum(1) == 3).float().mean().item()), abs=1e-3)
    lengths = digits.sum(1)
    assert got["error_long3"] == pytest.approx(100 * (1 - whole / (lengths == 3).sum().item()), abs=1e-3)
    assert all(got[f"error_long{n}"] == 100 for n in lengths.unique().tolist() if n != 3)


def test_the_multi_head_convnets_labels_are_goodfellows_loss():
    """The cross-entropy of its labels up to EOS, summed, is -log P(L) - sum_k log P(S_k) of its two kinds of head."""
    torch.manual_seed(0)
    net = MultiHeadConvNet(image_size=54, outputs=6, classes=11, conv_channels=(4, 4), hidden=16)
    with torch.no_grad():  # heads far from uniform
        net.length.weight.mul_(30)
        net.digits.weight.mul_(30)
    images = torch.rand(4, 1, 54, 54)
    labels = torch.tensor([[3, 1, 4, EOS, PAD, PAD], [7, EOS, PAD, PAD, PAD, PAD], [1, 2, 3, 4, 5, EOS],
                           [0, 0, EOS, PAD, PAD, PAD]])
    episode = net(images)
    assert torch.allclose(episode.logits.logsumexp(-1), torch.zeros(4, 6), atol=1e-5)  # each label a distribution
    ours = F.cross_entropy(episode.logits.flatten(0, 1), labels.flatten(), ignore_index=PAD, reduction="none")
    h = net.hidden(net.features(images))
    length = F.log_softmax(net.length(h), -1)
    digits = F.log_softmax(net.digits(h).view(4, 5, 10), -1)
    for i, row in enumerate(labels.tolist()):
        n = row.index(EOS)
        goodfellow = -length[i, n] - sum(digits[i, k, row[k]] for k in range(n))
        assert ours.view(4, 6)[i].sum().item() == pytest.approx(goodfellow.item(), rel=1e-4, abs=1e-4)


@pytest.mark.parametrize("model", ["dram", "multihead"])
def test_a_model_that_emits_labels_in_turn_trains_on_strings(model):
    cfg = small_run(model, train_size=64)
    task = MnistNumbers(cfg, data=coded_digits(), progress=False)
    net = build_model(cfg.model, cfg.policy, baseline=cfg.loss.baseline)
    batch = next(task.train_batches(0, 32))
    losses = task.loss(net, batch, CPU)
    losses.total.backward()
    assert torch.isfinite(losses.total) and losses.classify > 0
    assert all(p.grad is not None for n, p in net.named_parameters() if n.startswith(("classifier", "digits")))
    report = task.report(net, split="val", mc_samples=0)
    assert {"error", "digit_error", "length_error", "n"} <= report.keys() and report["n"] == 100
    line = task.summary(report, split="val", seed=0)
    for n in range(1, 6):
        assert f"{report[f'error_long{n}']:.2f}% of {n}-label strings" in line


def test_a_model_that_answers_once_is_refused_naming_those_that_read_strings():
    cfg = presets.get("mnist-numbers")
    with pytest.raises(ConfigError, match=r"model = 'convnet'.*\(dram, multihead\)"):
        parse(["--preset", "mnist-numbers", "--model", "convnet"]).config(progress=False)
    assert cfg.model.outputs == 6 and cfg.model.classes == 11


# SVHN's format 1 ------------------------------------------------------------------------------------------------


def write_digit_struct(path: Path, entries) -> None:
    """digitStruct.mat as SVHN ships it (MATLAB v7.3): /digitStruct/name and /digitStruct/bbox, columns of object
    references; a name is a column of uint16 character codes; a bbox a group of height, label, left, top, width,
    each a 1x1 double for one digit or a column of references to 1x1 doubles for several. entries: (name, [(label,
    left, top, width, height), ...])."""
    ref = h5py.special_dtype(ref=h5py.Reference)
    with h5py.File(path, "w") as f:
        refs = f.create_group("#refs#")
        names = f.create_dataset("digitStruct/name", (len(entries), 1), dtype=ref)
        bboxes = f.create_dataset("digitStruct/bbox", (len(entries), 1), dtype=ref)
        counter = itertools.count()
        for i, (name, digits) in enumerate(entries):
            names[i, 0] = refs.create_dataset(str(next(counter)), data=np.array([[ord(c)] for c in name],
                                                                                  dtype=np.uint16)).ref
            box = refs.create_group(str(next(counter)))
            for k, key in enumerate(("label", "left", "top", "width", "height")):
                values = [float(d[k]) for d in digits]
                if len(values) == 1:
                    box.create_dataset(key, data=np.array([[values[0]]]))
                else:
                    cells = [refs.create_dataset(str(next(counter)), data=np.array([[v]])).ref for v in values]
                    box.create_dataset(key, data=np.array(cells, dtype=ref).reshape(-1, 1))
            bboxes[i, 0] = box.ref


def house(path: Path, size=(40, 30), box=(8, 6, 20, 16), ink=180) -> None:
    """An RGB image with a grey rectangle of `ink` where the digits' box is: (left, top, width, height)."""
    image = np.zeros((size[1], size[0], 3), dtype=np.uint8)
    left, top, w, h = box
    image[top : top + h, left : left + w] = ink
    Image.fromarray(image).save(path)


SPLITS = {
    "train": [("1.png", [(1, 8, 6, 10, 16), (9, 18, 6, 10, 16)]), ("2.png", [(10, 8, 6, 20, 16)]),
              ("3.png", [(2, 8, 6, 7, 16), (10, 15, 6, 7, 16), (5, 22, 6, 6, 16)]),
              ("4.png", [(4, 8, 6, 20, 16)]), ("5.png", [(3, 8, 6, 10, 16), (3, 18, 6, 10, 16)])],
    "test": [("1.png", [(6, 8, 6, 10, 16), (10, 18, 6, 10, 16)]), ("2.png", [(8, 8, 6, 20, 16)])],
}


# extra/: easier strings, each image's ink its own (EXTRA_INK) so that a square shows whether it came from extra/
EXTRA = [("1.png", [(7, 8, 6, 20, 16)]), ("2.png", [(5, 8, 6, 10, 16), (2, 18, 6, 10, 16)]),
         ("3.png", [(1, 8, 6, 20, 16)])]
EXTRA_INK = 250


def svhn_folder(root: Path, *, extra: bool = False) -> Path:
    for split, entries in {**SPLITS, **({"extra": EXTRA} if extra else {})}.items():
        (root / split).mkdir(parents=True)
        write_digit_struct(root / split / "digitStruct.mat", entries)
        for name, _ in entries:
            house(root / split / name, ink=EXTRA_INK if split == "extra" else 180)
    return root


@needs_h5py
def test_digit_struct_is_read_as_svhn_writes_it(tmp_path):
    svhn_folder(tmp_path)
    got = read_digit_struct(tmp_path / "train" / "digitStruct.mat")
    assert [e.name for e in got] == ["1.png", "2.png", "3.png", "4.png", "5.png"]
    assert [e.labels for e in got] == [("1", "9"), ("0",), ("2", "0", "5"), ("4",), ("3", "3")]  # 10 is the digit 0
    assert got[0].box == (6.0, 8.0, 16.0, 20.0) and got[2].box == (6.0, 8.0, 16.0, 20.0)  # around all the digits


@needs_h5py
def test_svhn_trains_from_its_own_folder_and_crops_the_box(tmp_path, monkeypatch):
    root = svhn_folder(tmp_path / "svhn")
    cfg, found = parse(["--preset", "svhn", "--data", str(root), "--val-size", "1"]).prepare(progress=False)[::2]
    assert cfg.task.class_names == tuple("0123456789") and cfg.model.channels == 3 and cfg.task.val_size == 1
    from ram.tasks import make_task

    cfg = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, eval_mc_samples=0, precision="fp32"))
    task = make_task(cfg, data=found, progress=False)
    test = task.data.test()
    assert test.images.shape == (2, 3, 54, 54) and test.labels[:, :3].tolist() == [[6, 0, EOS], [8, EOS, PAD]]
    # the grey box fills the middle of the 64x64 square (the box grown by 30%: 1/1.3 of it), black around it
    square = task.data.test_set.images[0, 0].float()
    assert square[14:50, 14:50].min() > 170 and square[:4].max() < 10 and square[:, :4].max() < 10
    batch = next(task.train_batches(0, 4))
    assert batch.images.shape == (4, 3, 54, 54)
    net = build_model(cfg.model, cfg.policy)
    assert torch.isfinite(task.loss(net, batch, CPU).total)


@needs_h5py
def test_a_labels_csv_folder_reads_any_names(tmp_path):
    root = tmp_path / "shapes"
    for split, rows in (("train", [("a.png", "cat dog"), ("b.png", "dog"), ("c.png", "cat cat bird")]),
                        ("test", [("d.png", "bird dog")])):
        (root / split).mkdir(parents=True)
        (root / split / "labels.csv").write_text("file,labels\n" + "".join(f"{f},{l}\n" for f, l in rows))
        for f, _ in rows:
            Image.fromarray(np.full((20, 30), 99, dtype=np.uint8)).save(root / split / f)
    cfg = parse(["--preset", "svhn", "--data", str(root), "--val-size", "1"]).config(progress=False)
    assert cfg.task.class_names == ("bird", "cat", "dog") and cfg.model.classes == 4 and cfg.model.channels == 1
    assert read_labels_csv(root / "train" / "labels.csv")[2].labels == ("cat", "cat", "bird")


BAD_FILES = [
    ("digitStruct", lambda p: write_digit_struct(p, [SPLITS["train"][0], ("2.png", [(11, 8, 6, 20, 16)])]),
     "digitStruct.mat: entry 2 (2.png): labels [11.0] must be 1..10"),
    ("digitStruct", lambda p: p.write_bytes(b"MATLAB 5.0 MAT-file, not HDF5"), "digitStruct.mat: not an HDF5"),
    ("digitStruct", lambda p: write_digit_struct(p, [SPLITS["train"][0], ("9.png", [(1, 8, 6, 20, 16)])]),
     "digitStruct.mat: entry 2 names 9.png, which"),
    ("csv", lambda p: p.write_text("file,labels\n1.png,3 1\n2.png\n"), "labels.csv: line 3: '2.png' is not a file"),
    ("csv", lambda p: p.write_text("name,digits\n1.png,3\n"), "labels.csv: line 1 must be the header file,labels"),
]


@needs_h5py
@pytest.mark.parametrize("kind,write,message", BAD_FILES, ids=[m for _, _, m in BAD_FILES])
def test_a_bad_label_file_is_refused_in_one_line_naming_it_and_the_entry(kind, write, message, tmp_path, capsys,
                                                                         monkeypatch):
    root = svhn_folder(tmp_path / "svhn")
    bad = root / "train" / "digitStruct.mat"
    if kind == "csv":
        bad.unlink()
        bad = root / "train" / "labels.csv"
    write(bad)
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    assert main(["train", "--preset", "svhn", "--data", str(root), "--epochs", "1"]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1, err
    assert str(bad.parent) in err and list(work.iterdir()) == []  # no work started
    with pytest.raises(DataError):
        read_folder(bad.parent)


def svhn_task(root: Path, *flags: str, found: bool = True):
    """The svhn task on the folder root as `ram train --data root --val-size 1 FLAGS` makes it, and the lines the run
    prints first. found=False: the task looks at the folder itself, as `ram eval` has it do."""
    from ram.tasks import make_task

    cfg, why, data = parse(["--preset", "svhn", "--data", str(root), "--val-size", "1", *flags]).prepare(
        progress=False)
    cfg = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, eval_mc_samples=0, precision="fp32"))
    return make_task(cfg, data=data if found else None, progress=False), why


@needs_h5py
def test_extra_strings_train_and_never_validate_or_test(tmp_path):
    """SVHN's extra/ joins the training strings after train/'s; validation stays the last of train/, test is test/."""
    root = svhn_folder(tmp_path / "svhn", extra=True)
    task, why = svhn_task(root)
    assert why[0] == (f"svhn: {root}: training strings 4 from train/ and 3 from extra/; validation 1 (the last of "
                      "train/); test 2 (test/)")
    train = task.data.train
    from_extra = train.images.amax((1, 2, 3)) == EXTRA_INK
    assert from_extra.tolist() == [False] * 4 + [True] * 3
    assert train.labels[4:, :3].tolist() == [[7, EOS, PAD], [5, 2, EOS], [1, EOS, PAD]]
    assert train.sources[:, 0].tolist() == [0, 1, 2, 3, 5, 6, 7]  # an index into train/ (5 strings), then extra/
    assert task.data.val_set.labels[:, :3].tolist() == [[3, 3, EOS]]  # train/'s last string
    assert task.data.val().images.max() < EXTRA_INK and task.data.test().images.max() < EXTRA_INK
    seen = torch.cat([b.images.amax((1, 2, 3)) for b in task.train_batches(0, 3)])
    assert (seen == EXTRA_INK).sum() == 3 and len(seen) == 7  # each extra/ string once an epoch

    task, why = svhn_task(root, "--extra", "False")
    assert task.cfg.task.extra is False and len(task.data.train.images) == 4
    assert (task.data.train.images < EXTRA_INK).all()
    assert why[0].startswith(f"svhn: {root}: training strings 4 from train/ (--extra False); validation 1")
    shutil.rmtree(root / "extra")
    assert "4 from train/ (no extra/ folder)" in svhn_task(root)[1][0]


@needs_h5py
def test_the_run_says_how_many_strings_were_left_out_for_their_length(tmp_path, capsys, monkeypatch):
    root = svhn_folder(tmp_path / "svhn", extra=True)
    six = ("6.png", [(d, 2 + 6 * k, 6, 6, 16) for k, d in enumerate((1, 2, 3, 4, 5, 6))])
    write_digit_struct(root / "train" / "digitStruct.mat", [*SPLITS["train"], six])
    house(root / "train" / "6.png")
    task, why = svhn_task(root)
    assert why == [f"svhn: {root}: training strings 4 from train/ and 3 from extra/; validation 1 (the last of "
                   "train/); test 2 (test/)", "svhn: 1 string of more than 5 labels left out (1 in train/)"]
    assert len(task.data.train.images) == 7  # 6.png is not among them
    shutil.rmtree(root / "extra")
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    assert main(["train", "--preset", "svhn", "--data", str(root), "--val-size", "1", "--epochs", "1",
                 "--batch-size", "2", "--threads", "1", "--no-progress", "--eval-mc-samples", "0"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[:2] == [f"svhn: {root}: training strings 4 from train/ (no extra/ folder); validation 1 (the last of "
                       "train/); test 2 (test/)", "svhn: 1 string of more than 5 labels left out (1 in train/)"]
    assert out[2].startswith("ram train: preset svhn")


def test_the_test_crop_is_the_centre_every_time_and_training_crops_move():
    """Validation and test images are the centre 54x54 of each 64x64 square, whatever the seed (the test protocol);
    each training batch cuts every square at its own random place, the same for the same (seed, epoch, batch)."""
    n = 12
    where = torch.arange(64, dtype=torch.uint8)
    square = torch.stack([where[:, None].expand(64, 64), where[None, :].expand(64, 64)])  # (row, column) a pixel
    images = square.expand(n, 2, 64, 64).clone()
    strings = Strings(images, torch.zeros(n, 6, dtype=torch.int64), torch.arange(n)[:, None])
    data = StringImages(strings, strings, seed=0, val_size=4)

    def corners(s: Strings) -> list[tuple[int, int]]:  # where each 54x54 crop starts in its square
        return [tuple(c) for c in s.images[:, :, 0, 0].tolist()]

    assert corners(data.test()) == [(5, 5)] * n and corners(data.val()) == [(5, 5)] * 4
    assert torch.equal(data.test().images, images[..., 5:59, 5:59]) and data.test().images.shape == (n, 2, 54, 54)
    assert torch.equal(data.test(seed=3).images, data.test().images)
    train = [corners(b) for epoch in range(3) for b in data.train_batches(epoch, 4)]
    starts = [c for batch in train for c in batch]
    assert len(set(starts)) > 10 and all(0 <= r <= 10 and 0 <= c <= 10 for r, c in starts)
    again = StringImages(strings, strings, seed=0, val_size=4)
    assert [corners(b) for epoch in range(3) for b in again.train_batches(epoch, 4)] == train


def _count_calls(monkeypatch, name: str) -> list[str]:
    """The folders `ram.data.strings.<name>` (decode: the PNG decoder; read_digit_struct: h5py's reader) is called
    on from now on."""
    real, calls = getattr(strings_data, name), []

    def counted(path, *args, **kwargs):
        calls.append(Path(path).name if name == "decode" else Path(path).parent.name)
        return real(path, *args, **kwargs)

    monkeypatch.setattr(strings_data, name, counted)
    return calls


def _squares(task) -> list[torch.Tensor]:
    """A copy of the task's 64x64 squares (they map the cache file, which a test may then damage in place)."""
    return [getattr(task.data, s).images.clone() for s in ("train", "val_set", "test_set")]


def _same(task, squares: list[torch.Tensor]) -> bool:
    return all(torch.equal(a, b) for a, b in zip(_squares(task), squares, strict=True))


@needs_h5py
def test_svhn_is_decoded_once_then_read_from_the_data_cache(tmp_path, monkeypatch, own_cache):
    root = svhn_folder(tmp_path / "svhn", extra=True)
    decoded, parsed = _count_calls(monkeypatch, "decode"), _count_calls(monkeypatch, "read_digit_struct")
    first = _squares(svhn_task(root)[0])
    assert sorted(decoded) == sorted(parsed) == ["extra", "test", "train"]
    kept = sorted(p.name for p in (own_cache / "strings").iterdir() if not p.name.startswith("."))
    assert [n.split("-")[1] for n in kept if n.endswith(".npy")] == ["extra", "test", "train"]
    assert sum(n.endswith(".json") for n in kept) == 3 and not list((own_cache / "strings").glob(".*.tmp"))
    for found in (True, False):  # as `ram train` finds the folder, and as `ram eval` has the task look at it
        again = svhn_task(root, found=found)[0]
        assert _same(again, first)
    assert len(decoded) == len(parsed) == 3  # neither a PNG decoded nor a digitStruct.mat read again


def csv_folder(root: Path, rows: dict[str, list[tuple[str, str, int]]]) -> Path:
    """A labels.csv in each split; rows: split -> (file, labels, the image's grey value)."""
    for split, entries in rows.items():
        (root / split).mkdir(parents=True, exist_ok=True)
        (root / split / "labels.csv").write_text("file,labels\n" + "".join(f"{f},{l}\n" for f, l, _ in entries))
        for f, _, value in entries:
            Image.fromarray(np.full((20, 30), value, dtype=np.uint8)).save(root / split / f)
    return root


@needs_h5py
def test_a_changed_label_file_or_image_is_read_anew(tmp_path, monkeypatch):
    rows = {"train": [("a.png", "1 2", 10), ("b.png", "3", 20), ("c.png", "4 5", 30)], "test": [("d.png", "1", 40)]}
    root = csv_folder(tmp_path / "digits", rows)
    decoded = _count_calls(monkeypatch, "decode")
    task = svhn_task(root)[0]
    assert task.data.train.images[:, 0, 32, 32].tolist() == [10, 20] and decoded == ["train", "test"]

    rows["train"] = [("c.png", "4 5", 30), ("a.png", "1 2", 10), ("b.png", "7", 20)]  # another order, a new label
    csv_folder(root, {"train": rows["train"]})
    task = svhn_task(root)[0]
    assert task.data.train.images[:, 0, 32, 32].tolist() == [30, 10] and decoded == ["train", "test", "train"]
    assert task.truth(task.data.val_set) == ["7"] and task.cfg.task.class_names == tuple("12457")

    csv_folder(root, {"test": [("d.png", "1", 90)]})  # the same name and labels, new pixels
    st = (root / "test" / "d.png").stat()
    os.utime(root / "test" / "d.png", ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))  # whatever the clock's grain
    task = svhn_task(root)[0]
    assert task.data.test_set.images[0, 0, 32, 32] == 90 and decoded == ["train", "test", "train", "test"]
    (root / "train" / "new.png").write_bytes((root / "train" / "a.png").read_bytes())  # not in labels.csv
    svhn_task(root)
    assert len(decoded) == 4


class _Boom:
    """Unpickled, it leaves a file: the proof that a cache file was unpickled."""

    def __init__(self, path: Path):
        self.path = path

    def __reduce__(self):
        return Path.touch, (self.path,)


DAMAGE = {
    "truncated": lambda p, tmp: p.write_bytes(p.read_bytes()[: p.stat().st_size // 2]),
    "empty": lambda p, tmp: p.write_bytes(b""),
    "not an npy": lambda p, tmp: p.write_bytes(b"PK\x03\x04 a zip, say"),
    "another shape": lambda p, tmp: np.save(p, np.zeros((2, 3, 8, 8), np.uint8)),
    "a pickle": lambda p, tmp: np.save(p, np.array([_Boom(tmp / "unpickled")], dtype=object), allow_pickle=True),
    "labels": None,  # the kept digitStruct.mat entries, not the squares
}


@needs_h5py
@pytest.mark.parametrize("damage", list(DAMAGE))
def test_a_damaged_cache_file_is_read_anew(damage, tmp_path, monkeypatch, own_cache, capsys):
    root = svhn_folder(tmp_path / "svhn")
    first = _squares(svhn_task(root)[0])
    decoded, parsed = _count_calls(monkeypatch, "decode"), _count_calls(monkeypatch, "read_digit_struct")
    if damage == "labels":
        [kept] = (own_cache / "strings").glob("svhn-test-labels-*.json")
        kept.write_text('[["1.png", ["6", "0"], [6, 8, 16')
    else:
        [kept] = [p for p in (own_cache / "strings").glob("svhn-test-*.npy")]
        np.load(kept, allow_pickle=False)  # whole before
        DAMAGE[damage](kept, tmp_path)
    capsys.readouterr()
    again = svhn_task(root)[0]
    assert _same(again, first) and not (tmp_path / "unpickled").exists()
    if damage == "labels":
        assert parsed == ["test"] and decoded == []
    else:
        assert decoded == ["test"] and parsed == []
        assert f"ram: notice: cache {kept} is unreadable" in capsys.readouterr().err
        assert np.load(kept, allow_pickle=False).shape == (2, 3, 64, 64)  # written anew, whole
    svhn_task(root)
    assert len(decoded) + len(parsed) == 1  # and read from there the next time


def test_the_labels_after_a_strings_eos_teach_nothing():
    """Strings of different lengths in one batch: neither the cross-entropy nor REINFORCE nor the baseline reads the
    outputs past each string's EOS (PAD), so DRAM needs nothing else for strings of any length."""
    from ram.dram import SequenceEpisode

    torch.manual_seed(0)
    B, K, N, C = 3, 6, 2, 11
    logits = torch.randn(B, K, C, requires_grad=True)
    log_probs = torch.randn(B, K * N, requires_grad=True)
    baselines = torch.rand(B, K * N, requires_grad=True)
    episode = SequenceEpisode(logits=logits, step_logits=logits, log_probs=log_probs, baselines=baselines,
                              locations=torch.zeros(B, K * N, 2), means=torch.zeros(B, K * N, 2),
                              entropies=torch.zeros(B, K * N),
                              output_of=(torch.arange(K * N) // N).expand(B, -1))
    labels = torch.tensor([[3, 1, 4, EOS, PAD, PAD], [7, EOS, PAD, PAD, PAD, PAD], [1, 2, 3, 4, 5, EOS]])
    sequence_hybrid(episode, labels, LossSpec()).total.backward()
    pad = labels == PAD  # [B, K]
    assert (logits.grad[pad] == 0).all() and (logits.grad[~pad].abs().sum(-1) > 0).all()
    past = pad.repeat_interleave(N, 1)  # [B, T] the glimpses that lead to a PAD output
    assert (log_probs.grad[past] == 0).all() and (baselines.grad[past] == 0).all()
