"""`ram predict`: image files through a trained model, read as training read its images; bad files named and skipped.

One tiny run on a folder of colour PNGs (one short epoch) serves every test.
"""

import json
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import EpsImagePlugin, Image

import ram
from ram.cli import main
from ram.data import images as user
from ram.files import File, picture_names

CLASSES = ("cat", "dog", "owl")


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A run trained on data/train/<class>/*.png (16x16 RGB), and its folder of test images."""
    root = tmp_path_factory.mktemp("predict")
    mp = pytest.MonkeyPatch()
    mp.setenv("RAM_DATA_DIR", str(root / "cache"))
    rng = np.random.default_rng(0)
    for c, name in enumerate(CLASSES):
        for part, n in (("train", 8), ("test", 2)):
            (root / "data" / part / name).mkdir(parents=True)
            for i in range(n):
                pixels = rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)
                pixels[:, :, c] = 255  # a class is a colour: something to learn
                Image.fromarray(pixels).save(root / "data" / part / name / f"{i}.png")
    out = root / "run"
    assert main(["train", "--preset", "mnist", "--data", str(root / "data"), "--glimpses", "2", "--patch-size", "4",
                 "--scales", "2", "--epochs", "1", "--hidden", "16", "--what-size", "8", "--glimpse-size", "16",
                 "--batch-size", "8", "--threads", "1", "--out", str(out), "--no-progress"]) == 0
    yield out, root / "data" / "test"
    mp.undo()


def predicted(text: str) -> dict[str, tuple[str, float]]:
    """file -> (class, probability) from the tab-separated lines."""
    lines = [line.split("\t") for line in text.splitlines()]
    return {file: (name, float(p)) for file, name, p in lines}


def test_a_folder_is_classified_as_training_read_its_images(run, capsys):
    out, test = run
    assert main(["predict", "--checkpoint", str(out), str(test)]) == 0
    lines = predicted(capsys.readouterr().out)
    files = [test / name / f"{i}.png" for name in CLASSES for i in range(2)]
    assert sorted(lines) == sorted(str(f) for f in files)
    # The same pixels as the cache training wrote: the run's test split, decoded by the loader, in its stored order.
    source = user.inspect(test.parent)
    cached = user.load(source, progress=False)
    model = ram.load(out)
    probs = model.predict(cached.test_images).probs
    for (rel_path, label), p in zip(source.test, probs):
        name, probability = lines[str(test.parent / rel_path)]
        assert name == CLASSES[int(p.argmax())] and probability == pytest.approx(float(p.max()), abs=1e-4)


def test_an_image_of_another_size_is_fitted_as_training_fits_it(run, tmp_path, capsys):
    out, _ = run
    wide = np.zeros((10, 40, 3), np.uint8)
    wide[:, :, 1] = 255
    Image.fromarray(wide).save(tmp_path / "wide.png")
    assert main(["predict", "--checkpoint", str(out), str(tmp_path / "wide.png"), "--json"]) == 0
    record = json.loads(capsys.readouterr().out)
    fitted = user.fit_image(Image.open(tmp_path / "wide.png").convert("RGB"), 16)  # 16x4, centred on black
    expected = ram.load(out).predict(np.asarray(fitted)).probs[0]
    assert record == {"file": str(tmp_path / "wide.png"), "class": CLASSES[int(expected.argmax())],
                      "label": int(expected.argmax()), "probability": round(float(expected.max()), 4)}


def test_bad_files_are_named_and_skipped_and_the_rest_classified(run, tmp_path, capsys, monkeypatch):
    def ran(*args, **kwargs):
        raise AssertionError("Pillow handed the file to Ghostscript")

    monkeypatch.setattr(EpsImagePlugin, "Ghostscript", ran)
    out, test = run
    good = test / "cat" / "0.png"
    truncated = tmp_path / "cut.png"
    truncated.write_bytes(good.read_bytes()[:60])
    eps = tmp_path / "eps.png"
    Image.new("L", (16, 16)).save(eps, format="EPS")
    text = tmp_path / "notes.txt"
    text.write_text("not an image")
    assert main(["predict", "--checkpoint", str(out), str(truncated), str(good), str(eps), str(text)]) == 1
    captured = capsys.readouterr()
    assert list(predicted(captured.out)) == [str(good)]
    assert f"ram predict: skipped {truncated}: cannot decode the image" in captured.err
    for path in (eps, text):
        assert f"ram predict: skipped {path}: not a readable image (only PNG, JPEG, GIF, BMP, WebP or TIFF" in captured.err
    assert "3 of 4 file(s) skipped" in captured.err


def test_tracks_draws_each_images_gaze_under_its_own_name(run, tmp_path, capsys):
    out, test = run
    pictures = tmp_path / "gaze"
    assert main(["predict", "--checkpoint", str(out), str(test), str(test / "dog" / "1.png"), "--tracks",
                 str(pictures)]) == 0
    written = sorted(str(p.relative_to(pictures)) for p in pictures.rglob("*.png"))
    assert written == ["1.png", "cat/0.png", "cat/1.png", "dog/0.png", "dog/1.png", "owl/0.png", "owl/1.png"]
    assert Image.open(pictures / "cat" / "0.png").size[0] > 100


def test_picture_names_never_collide():
    files = [File(Path(p), Path(p)) for p in ("a/x.png", "x.jpg", "x.png", "x-2.png")]
    assert [str(n) for n in picture_names(files)] == ["a/x.png", "x.png", "x-2.png", "x-2-2.png"]


def test_a_file_name_that_is_not_utf8_is_printed(run, tmp_path, capsys):
    out, test = run
    name = os.fsdecode(b"caf\xe9.png")
    try:
        (tmp_path / name).write_bytes((test / "owl" / "0.png").read_bytes())
    except (OSError, UnicodeEncodeError):
        pytest.skip("this file system refuses names that are not UTF-8")
    assert main(["predict", "--checkpoint", str(out), str(tmp_path / name), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["file"] == f"{tmp_path}/caf\\xe9.png"


@pytest.mark.parametrize("args, message", [
    ("--checkpoint {run} no/such.png", "files: no/such.png: no such file or folder"),
    ("--checkpoint {run} {empty}", "holds no image files"),
    ("--checkpoint {run} --pretrained mnist-g6 {image}", "give exactly one of --checkpoint DIR or --pretrained NAME"),
    ("--pretrained catch {image}", "classifies no images"),
    ("--checkpoint {run} {image} --batch-size 0", "batch_size = 0: must be > 0"),
    ("--checkpoint {run} {image} --tracks {image}", "tracks = '{image}': exists and is not a folder"),  # issue 61
])
def test_bad_arguments_stop_before_any_work(run, tmp_path, capsys, args, message):
    out, test = run
    (tmp_path / "empty").mkdir()
    where = dict(run=out, empty=tmp_path / "empty", image=test / "cat" / "0.png")
    assert main(["predict", *args.format(**where).split()]) == 2
    captured = capsys.readouterr()
    assert message.format(**where) in captured.err and captured.out == "" and "Traceback" not in captured.err


def test_a_shipped_model_classifies_a_digit_file(tmp_path, capsys):
    image = np.zeros((28, 28), np.uint8)
    image[5:23, 13:16] = 255  # a 1, as the README draws it
    Image.fromarray(image).save(tmp_path / "one.png")
    assert main(["predict", "--pretrained", "mnist-g6", str(tmp_path / "one.png")]) == 0
    name, probability = predicted(capsys.readouterr().out)[str(tmp_path / "one.png")]
    expected = ram.load("mnist-g6").predict(image).probs[0]
    assert name == str(int(expected.argmax())) and probability == pytest.approx(float(expected.max()), abs=1e-4)


def test_a_png_that_breaks_pillow_s_parser_is_skipped_and_the_rest_classified(run, tmp_path, capsys):
    """An 81-byte PNG whose pixels go on in a chunk of type \\0\\0\\0I made Pillow raise SyntaxError, which stopped
    the whole batch (issue 61)."""
    from hostile_files import broken_png

    out, test = run
    bad = tmp_path / "broken.png"
    bad.write_bytes(broken_png())
    good = test / "cat" / "0.png"
    assert main(["predict", "--checkpoint", str(out), str(bad), str(good)]) == 1
    captured = capsys.readouterr()
    assert list(predicted(captured.out)) == [str(good)]
    assert f"ram predict: skipped {bad}: cannot decode the image (SyntaxError: broken PNG file" in captured.err


def test_terminal_escapes_in_a_file_name_are_printed_escaped(run, tmp_path, capsys):
    """A file named with ESC [ 2 J (clear the screen) and a newline was printed raw; --json escaped it already."""
    out, test = run
    name = "a\x1b[2J\nb.png"
    (tmp_path / name).write_bytes((test / "owl" / "0.png").read_bytes())
    (tmp_path / "x\x1b[31m.png").write_bytes(b"not an image")
    assert main(["predict", "--checkpoint", str(out), str(tmp_path / name), str(tmp_path / "x\x1b[31m.png")]) == 1
    captured = capsys.readouterr()
    assert "\x1b" not in captured.out + captured.err and captured.out.count("\n") == 1
    assert f"{tmp_path}/a\\x1b[2J\\x0ab.png\t" in captured.out
    assert f"skipped {tmp_path}/x\\x1b[31m.png: not a readable image" in captured.err
    assert main(["predict", "--checkpoint", str(out), str(tmp_path / name), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["file"] == str(tmp_path / name)  # JSON escapes it itself


def test_dark_ink_on_paper_is_warned_of_where_the_model_was_trained_on_light_on_black(tmp_path, capsys):
    """A black 3 on white reads confidently as another digit: the API warns, and `ram predict` names the file."""
    digit = np.zeros((28, 28), np.uint8)
    digit[6:9, 9:19] = digit[12:15, 11:19] = digit[19:22, 9:19] = digit[6:22, 16:19] = 255  # a 3, light on black
    Image.fromarray(255 - digit).save(tmp_path / "paper.png")
    Image.fromarray(digit).save(tmp_path / "mnist-like.png")
    model = ram.load("mnist-g6")
    assert model.light_background(np.stack([255 - digit, digit])).tolist() == [True, False]
    with pytest.warns(UserWarning, match=r"1 of 2 image\(s\) \(0\) have a light background"):
        model.predict(np.stack([255 - digit, digit]))
    assert main(["predict", "--pretrained", "mnist-g6", str(tmp_path)]) == 0
    err = capsys.readouterr().err
    assert f"warning: {tmp_path / 'paper.png'}: a light background" in err and "mnist-like" not in err


def test_a_model_of_your_own_images_is_not_warned_of_a_light_background(run):
    out, _ = run  # trained on random colours: its background may be anything
    assert not ram.load(out).light_background(np.full((16, 16, 3), 255, np.uint8)).any()


def test_a_string_is_named_up_to_its_end_and_read_with_it():
    """A model that emits labels in turn: a string's name stops at its first EOS, `read` counts the labels up to and
    with it; a pair (no class named EOS) is read whole."""
    import torch

    from ram.api import Prediction

    def prediction(labels, classes):
        labels = torch.tensor(labels)
        B, L = labels.shape
        empty = torch.zeros(B, 0, 2)
        return Prediction(labels=labels, probs=torch.zeros(B, L, len(classes) or 10), step_probs=torch.zeros(B, 0, 1),
                          locations=empty, pixels=empty, output_of=torch.zeros(B, 0, dtype=torch.long),
                          classes=classes)

    digits = tuple("0123456789")
    strings = prediction([[3, 1, 4, 10, 10, 10], [7, 10, 2, 2, 10, 10], [1, 2, 3, 4, 5, 6]], (*digits, "EOS"))
    assert strings.names == ["3 1 4", "7", "1 2 3 4 5 6"] and strings.read == [4, 2, 6]
    pairs = prediction([[7, 3], [0, 0]], ())
    assert pairs.names == ["7 3", "0 0"] and pairs.read == [2, 2]
