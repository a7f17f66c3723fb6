"""The auto recipe (`ram.auto`): the rule for several image sizes and dataset sizes, the flags that override it, and
what `ram train --data DIR` prints before it trains."""

import json

import numpy as np
import pytest
import torch
from PIL import Image

from ram import auto
from ram.cli import main
from ram.config import ConfigError
from ram.data import images as user
from ram.flags import parse, recipe
from ram.models import build_model


@pytest.fixture(autouse=True)
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("RAM_DATA_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(user, "_SCANNED", {})


def folder(root, *, size=28, train=12, test=3, classes=("cat", "dog")):
    """root/train/<class>/i.png and root/test/<class>/i.png, grey, size x size."""
    rng = np.random.default_rng(0)
    for name in classes:
        for part, n in (("train", train), ("test", test)):
            (root / part / name).mkdir(parents=True, exist_ok=True)
            for i in range(n):
                Image.fromarray(rng.integers(0, 256, (size, size), dtype=np.uint8)).save(root / part / name / f"{i}.png")
    return root


@pytest.mark.parametrize("size, n, expected", [
    # side, images to train on -> patch, scales, glimpses, std, epochs, val_every, patience
    (8, 1_198, (4, 2, 4, 0.1, 500, 100, 10)),  # scikit-learn's digits: two 4x4 scales see all of it
    (28, 50_000, (6, 3, 7, 0.1, 52, 0, 10)),  # Fashion-MNIST: 6, 12, 24
    (40, 1_250, (8, 3, 7, 0.2, 500, 100, 10)),  # the coloured shapes: 8, 16, 32
    (60, 50_000, (12, 3, 7, 0.2, 52, 0, 10)),  # the mnist-translated preset's glimpse
    (100, 50_000, (12, 4, 8, 0.2, 52, 0, 10)),  # the mnist-cluttered-100 preset's glimpse
    (224, 1_000_000, (12, 5, 8, 0.2, 10, 0, 10)),  # at least 10 epochs however many images
    (3, 40, (3, 1, 4, 0.1, 500, 10, 10)),  # smaller than the smallest patch: the image is the patch
])
def test_the_rule_for_several_image_and_dataset_sizes(size, n, expected):
    choices = auto.derive(size=size, train_images=n)
    assert tuple(choices[name].value for name in auto.DERIVED) == expected
    assert not any(c.given for c in choices.values())


def test_the_coarsest_scale_sees_most_of_every_image_size():
    for size in range(4, 1025):
        c = auto.derive(size=size, train_images=1000)
        p, k, g = c["patch_size"].value, c["scales"].value, c["glimpses"].value
        coarsest = p * 2 ** (k - 1)
        assert size / 2 < coarsest <= size, size  # inside the image, and more than half of its side
        assert 4 <= p <= 12 and 1 <= k <= 8 and 4 <= g <= 8, size


def test_the_schedule_shows_about_the_same_images_whatever_the_dataset_size():
    for n in (6_000, 20_000, 100_000, 256_000):
        epochs = auto.derive(size=28, train_images=n)["epochs"].value
        assert auto.IMAGES_SEEN <= epochs * n < auto.IMAGES_SEEN + n
    assert auto.derive(size=28, train_images=100)["epochs"].value == auto.EPOCHS[1]  # a tiny set: capped


def test_given_fields_are_kept_and_the_rule_works_around_them():
    patch = auto.derive(size=40, train_images=1_250, given={"patch_size": 12})
    assert patch["patch_size"] == (12, "yours", True)
    assert patch["scales"].value == 2 and patch["glimpses"].value == 6  # 12, 24 fit in 40; 4 patches cross it
    scales = auto.derive(size=40, train_images=1_250, given={"scales": 4})
    assert scales["scales"].given and scales["patch_size"].value == 5  # 5, 10, 20, 40: the largest patch that fits
    assert auto.derive(size=40, train_images=1_250, given={"lr": 1.0}).keys() == set(auto.DERIVED)


def test_data_without_a_preset_is_the_auto_recipe_and_says_why(tmp_path):
    root = folder(tmp_path / "pets", size=40)
    cfg, why = parse(["--data", str(root)]).resolve(progress=False)
    assert cfg.preset == "auto"
    m = cfg.model
    assert (m.patch_size, m.scales, m.glimpses, cfg.policy.std, cfg.train.epochs) == (8, 3, 7, 0.2, 500)
    assert cfg.task.val_size == 4 and cfg.train.lr == 1e-3  # a sixth of 24; the rest is the mnist recipe
    text = "\n".join(why)
    assert why[0].startswith("recipe auto: 2 classes of 40x40 grey images") and "20 to train on" in why[0]
    for flag in ("--patch-size", "--scales", "--glimpses", "--std", "--epochs", "--val-size"):
        assert flag in text
    assert "the coarsest sees 80% of the side" in text and "yours" not in text


@pytest.mark.parametrize("flags", [["--patch-size", "10"], ["--patch_size=10"]])
def test_an_explicit_flag_wins_over_the_derived_value(tmp_path, flags):
    root = folder(tmp_path / "pets", size=40)
    cfg, why = parse(["--data", str(root), *flags, "--glimpses", "7", "--epochs", "2"]).resolve(progress=False)
    # 10 is given, so the scales follow from it (10, 20, 40); 7 glimpses is also what the rule would take, and kept
    assert (cfg.model.patch_size, cfg.model.scales, cfg.model.glimpses, cfg.train.epochs) == (10, 3, 7, 2)
    lines = {line.split()[0]: line for line in why[1:]}
    assert lines["10x10"].endswith("yours") and lines["7"].endswith("yours") and lines["2"].endswith("yours")
    assert not lines["3"].endswith("yours")


def test_python_keywords_are_given_fields_too(tmp_path):
    cfg = recipe(data=str(folder(tmp_path / "pets")), std=0.3, scales=1).config(progress=False)
    assert cfg.preset == "auto" and cfg.policy.std == 0.3 and cfg.model.scales == 1
    assert cfg.model.patch_size == 6 and cfg.train.epochs == 500  # still derived: a fifth of 28; 20 images


def test_a_named_preset_or_dataset_keeps_its_recipe(tmp_path):
    root = folder(tmp_path / "pets")
    cfg, why = parse(["--preset", "mnist", "--data", str(root)]).resolve(progress=False)
    assert (cfg.preset, cfg.model.patch_size, cfg.model.scales, why) == ("mnist", 8, 1, [])
    assert parse([]).preset == "mnist" and parse(["--data", "fashion"]).preset == "mnist"
    with pytest.raises(ConfigError, match="preset = 'auto': derives its recipe from your images; give --data PATH"):
        parse(["--preset", "auto"]).config()
    with pytest.raises(ConfigError, match="or --preset fashion"):
        parse(["--preset", "auto", "--data", "fashion"]).config()


def test_train_prints_the_recipe_before_it_trains(tmp_path, capsys):
    root = folder(tmp_path / "pets", size=16)
    out = tmp_path / "run"
    assert main(["train", "--data", str(root), "--epochs", "1", "--hidden", "16", "--what-size", "8",
                 "--glimpse-size", "16", "--threads", "1", "--out", str(out), "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert printed.index("recipe auto: 2 classes of 16x16 grey images") < printed.index("test error")
    assert "4x4 patch" in printed and "3 scales" in printed and "4, 8, 16 pixels" in printed
    saved = json.loads((out / "config.json").read_text())
    assert (saved["preset"], saved["model"]["patch_size"], saved["model"]["scales"]) == ("auto", 4, 3)


def test_a_convnet_reads_8x8_images(tmp_path):
    """scikit-learn's digits are 8x8: two unpadded 5x5 layers would leave nothing to classify."""
    x = np.random.default_rng(0).integers(0, 256, (30, 8, 8), dtype=np.uint8)
    y = np.arange(30) % 3
    np.savez(tmp_path / "tiny.npz", x_train=x[:24], y_train=y[:24], x_test=x[24:], y_test=y[24:])
    cfg, why = parse(["--data", str(tmp_path / "tiny.npz"), "--model", "convnet"]).resolve(progress=False)
    assert "glimpses" not in "\n".join(why) and "epochs" in "\n".join(why)  # nothing to say of a glimpse it has not
    logits = build_model(cfg.model)(torch.zeros(5, 1, 8, 8)).logits
    assert logits.shape == (5, 3)
