"""Your own images (`ram train --data PATH`): folders and .npz files, the on-disk cache, and the errors bad data gets.

Every dataset here is a few tiny PNGs or arrays made in tmp_path; the one training run is a smoke run of one short
epoch.
"""

import json
import os
import shutil

import numpy as np
import pytest
import torch
from PIL import EpsImagePlugin, Image

import ram
from ram.cli import main
from ram.config import ConfigError, RunConfig
from ram.data import DataError, to_float
from ram.data import images as user
from ram.flags import recipe
from ram.tasks import make_task


@pytest.fixture(autouse=True)
def cache(tmp_path, monkeypatch):
    """Each test decodes into its own cache."""
    monkeypatch.setenv("RAM_DATA_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(user, "_SCANNED", {})
    return tmp_path / "cache" / "images"


def png(path, size=(12, 12), mode="L", value=None, seed=0):
    path.parent.mkdir(parents=True, exist_ok=True)
    channels = {"L": 1, "RGB": 3}[mode]
    pixels = np.random.default_rng(seed).integers(0, 256, (size[1], size[0], channels), dtype=np.uint8)
    if value is not None:
        pixels[:] = value
    Image.fromarray(pixels[..., 0] if mode == "L" else pixels, mode).save(path)
    return path


def folder(root, classes=("cat", "dog", "owl"), train=6, test=2, **kw):
    """root/train/<class>/i.png and root/test/<class>/i.png."""
    for c, name in enumerate(classes):
        for part, n in (("train", train), ("test", test)):
            for i in range(n):
                png(root / part / name / f"{i}.png", seed=hash((c, part, i)) % 1000, **kw)
    return root


def test_a_folder_is_decoded_once_into_a_memory_mapped_cache(tmp_path, cache, capsys):
    root = folder(tmp_path / "pets", mode="RGB", size=(10, 10))
    source = user.inspect(root)
    assert (source.classes, source.size, source.n_train, source.n_test) == (("cat", "dog", "owl"), 10, 18, 6)
    d = user.load(user.with_channels(source), progress=False)
    assert d.train_images.shape == (18, 3, 10, 10) and d.train_images.dtype == torch.uint8  # [N, C, H, W]
    assert sorted(d.train_labels.tolist()) == [0] * 6 + [1] * 6 + [2] * 6
    assert isinstance(np.load(source.cache / "train_x.npy", mmap_mode="r"), np.memmap)
    # stored in the right place: image k of the cache is the file it came from
    rel, label = source.train[0]
    assert int(d.train_labels[0]) == label
    assert torch.equal(d.train_images[0], torch.from_numpy(np.asarray(Image.open(root / rel))).permute(2, 0, 1))
    assert "decoded 24 images" in capsys.readouterr().err

    again = user.inspect(root)  # unchanged: read from the cache, no image decoded
    assert again.key == source.key and again.channels == 3
    assert torch.equal(user.load(again, progress=False).train_images, d.train_images)
    assert "decoded" not in capsys.readouterr().err
    assert [p.name for p in cache.iterdir() if not p.name.startswith(".")] == [source.key]


def test_a_changed_folder_is_decoded_again(tmp_path):
    root = folder(tmp_path / "pets")
    before = user.inspect(root)
    user.load(user.with_channels(before), progress=False)
    png(root / "train" / "cat" / "new.png", seed=99)
    after = user.inspect(root)
    assert after.key != before.key and after.n_train == before.n_train + 1
    assert user.load(user.with_channels(after), progress=False).train_images.shape[0] == before.n_train + 1
    assert user.inspect(root, size=16).key != after.key  # the image size is part of the key


def test_a_flat_folder_holds_out_a_fifth_of_each_class_the_same_way_every_time(tmp_path):
    root = tmp_path / "flat"
    for name, n in (("a", 10), ("b", 5)):
        for i in range(n):
            png(root / name / f"{i}.png", seed=i)
    source = user.inspect(root)
    assert (source.n_train, source.n_test) == (12, 3)  # round(0.2 * 10) of a, round(0.2 * 5) of b
    assert sorted(label for _, label in source.test) == [0, 0, 1]
    assert user.inspect(root).test == source.test


def test_a_decoding_error_names_the_file_and_leaves_no_cache(tmp_path, cache):
    root = folder(tmp_path / "pets")
    bad = root / "train" / "dog" / "3.png"
    bad.write_bytes(bad.read_bytes()[:60])  # the header reads, the pixels are cut off
    source = user.with_channels(user.inspect(root))
    with pytest.raises(DataError, match="dog/3.png"):
        user.load(source, progress=False)
    assert [p.name for p in cache.iterdir() if not p.name.endswith(".lock")] == []  # no entry, no temp folder


def test_a_killed_decoding_leaves_a_temp_folder_the_next_one_removes(tmp_path, cache, monkeypatch):
    root = folder(tmp_path / "pets")
    source = user.with_channels(user.inspect(root))

    def killed(*args, **kwargs):
        raise KeyboardInterrupt  # as a kill arrives midway; the temp folder is removed on the way out

    with monkeypatch.context() as m, pytest.raises(KeyboardInterrupt):
        m.setattr(user, "_write_folder", killed)
        user.load(source, progress=False)
    assert not source.cache.exists() and not list(cache.glob(".tmp-*"))
    # A SIGKILL leaves its temp folder behind: it is never read, and the next decoding removes it.
    stale = cache / f".tmp-{source.key}-dead"
    (stale / "half").mkdir(parents=True)
    user.load(source, progress=False)
    assert not stale.exists() and (source.cache / "meta.json").is_file()


def test_only_the_named_image_formats_are_decoded(tmp_path, monkeypatch):
    """A .png that holds PostScript: Pillow's EPS plug-in would hand it to Ghostscript, which runs it."""
    def ran(*args, **kwargs):
        raise AssertionError("Pillow handed the file to Ghostscript")

    monkeypatch.setattr(EpsImagePlugin, "Ghostscript", ran)
    root = folder(tmp_path / "pets")
    Image.new("L", (12, 12)).save(root / "train" / "dog" / "0.png", format="EPS")
    with pytest.raises(DataError, match=r"dog/0\.png: .*PNG, JPEG, GIF, BMP, WebP or TIFF"):
        user.load(user.with_channels(user.inspect(root)), progress=False)


def test_an_empty_class_folder_is_named(tmp_path):
    root = folder(tmp_path / "pets")
    (root / "train" / "emu").mkdir()
    with pytest.raises(DataError, match=r"train/emu: an empty class folder"):
        user.inspect(root)


def test_an_unreadable_image_is_named_before_any_decoding(tmp_path, cache):
    root = folder(tmp_path / "pets")
    (root / "test" / "owl" / "9.png").write_bytes(b"not a png at all")
    with pytest.raises(DataError, match=r"owl/9.png: not a readable image"):
        user.with_channels(user.inspect(root), progress=False)
    assert not cache.exists() or not list(cache.iterdir())


def test_a_grey_image_among_colour_ones_is_converted_with_a_notice_naming_it(tmp_path, capsys):
    root = folder(tmp_path / "pets", mode="RGB")
    png(root / "train" / "dog" / "grey.png", mode="L", value=200)
    source = user.with_channels(user.inspect(root))
    assert source.channels == 3 and source.grey == ["train/dog/grey.png"]
    d = user.load(source, progress=False)
    assert "1 grey image(s) among colour ones, converted to RGB: train/dog/grey.png" in capsys.readouterr().err
    index = [f for f, _ in source.train].index("train/dog/grey.png")
    assert d.train_images[index].unique().tolist() == [200]  # the same grey in all three channels


def test_images_of_other_sizes_are_scaled_to_fit_keeping_their_aspect(tmp_path, capsys):
    root = folder(tmp_path / "pets", size=(8, 8))  # the first image gives the size: 8
    png(root / "train" / "owl" / "wide.png", size=(16, 4), value=255)
    source = user.inspect(root)
    assert source.size == 8 and "train/cat/0.png" in source.size_from
    d = user.load(user.with_channels(source), progress=False)
    wide = d.train_images[[f for f, _ in source.train].index("train/owl/wide.png"), 0]
    assert wide[3:5].min() == 255 and wide[:3].max() == 0 and wide[5:].max() == 0  # 8x2 in the middle, black above
    assert "train/owl/wide.png" in capsys.readouterr().err


def test_a_glimpse_larger_than_the_images_is_refused_before_decoding(tmp_path, cache):
    root = folder(tmp_path / "pets", size=(6, 6))
    with pytest.raises(ConfigError) as e:  # the mnist preset reads 8x8 glimpses
        recipe("mnist", data=str(root)).config()
    message = str(e.value)
    assert "patch_size = 8" in message and "image_size = 6" in message and "train/cat/0.png" in message
    with pytest.raises(ConfigError, match=r"scales = 2.*= 12 is larger than the 8x8"):
        recipe("mnist", data=str(root), image_size=8, patch_size=6, scales=2).config()
    assert not cache.exists()


def npz(path, **arrays):
    rng = np.random.default_rng(0)
    base = dict(x_train=rng.integers(0, 256, (12, 10, 10), dtype=np.uint8), y_train=np.arange(12) % 3,
                x_test=rng.integers(0, 256, (6, 10, 10), dtype=np.uint8), y_test=np.arange(6) % 3)
    np.savez(path, **{k: v for k, v in {**base, **arrays}.items() if v is not None})
    return path


def test_an_npz_gives_its_classes_and_channels(tmp_path):
    x = np.random.default_rng(1).random((12, 3, 9, 12)).astype(np.float32)  # [N, C, H, W] floats, not square
    path = npz(tmp_path / "shapes.npz", x_train=x, x_test=x[:6], classes=np.array(["ring", "bar", "dot"]))
    source = user.inspect(path)
    assert (source.classes, source.channels, source.size) == (("ring", "bar", "dot"), 3, 12)
    d = user.load(source, progress=False)
    assert d.train_images.shape == (12, 3, 12, 12) and d.test_images.shape == (6, 3, 12, 12)
    assert sorted(d.train_labels.tolist()) == sorted((np.arange(12) % 3).tolist())
    assert user.inspect(tmp_path / npz(tmp_path / "plain.npz").name).classes == ("0", "1", "2")


@pytest.mark.parametrize("arrays, message", [
    (dict(y_train=np.array([0, 1, 2, 3] * 3), classes=np.array(["a", "b", "c"])),
     r"y_train\[3\] = 3 is out of range: labels must be in 0..2"),
    (dict(y_test=np.array([0, 1, -1, 0, 1, 2])), r"y_test\[2\] = -1 is out of range"),
    (dict(y_train=np.arange(11) % 3), r"x_train holds 12 images but y_train has shape \(11,\)"),
    (dict(x_test=None), r"no x_test"),
    (dict(x_train=np.zeros((12, 10, 10, 2), np.uint8)), r"x_train has shape \(12, 10, 10, 2\)"),
    (dict(x_train=np.full((12, 10, 10), 2.0)), r"x_train holds floats in \[2, 2\]"),
    (dict(x_train=np.full((12, 10, 10), None)), r"x_train has dtype object; expected uint8"),
    (dict(x_test=np.full((6, 10, 10), "a")), r"x_test has dtype <U1; expected uint8"),
    (dict(y_train=np.array([0, 1, 2] * 4, dtype=object)), r"y_train has dtype object; labels must be integers"),
    (dict(y_test=np.zeros(6)), r"y_test has dtype float64; labels must be integers"),
])
def test_bad_npz_data_is_named(tmp_path, cache, arrays, message):
    path = npz(tmp_path / "bad.npz", **arrays)
    with pytest.raises(DataError, match=message) as e:
        user.load(user.inspect(path), progress=False)
    assert "bad.npz" in str(e.value)
    assert not cache.exists() or [p for p in cache.iterdir() if not p.name.endswith(".lock")] == []


def test_a_file_name_that_is_not_utf8_is_read(tmp_path):
    """Names in Latin-1, as old cameras and zip files write them: the cache key was built from them as UTF-8."""
    root = folder(tmp_path / "pets")
    try:
        png(root / "train" / "cat" / os.fsdecode(b"caf\xe9.png"))
    except (OSError, UnicodeEncodeError):
        pytest.skip("this file system refuses names that are not UTF-8")
    source = user.with_channels(user.inspect(root))
    assert source.n_train == 19 and user.inspect(root).key == source.key
    assert user.load(source, progress=False).train_images.shape[0] == 19


@pytest.mark.parametrize("kind", ["folder", "npz"])
def test_a_huge_first_image_needs_an_explicit_image_size(tmp_path, cache, kind):
    """The image size comes from the first image: a 2000x1 one sorted first would make every image 2000x2000."""
    if kind == "folder":
        data = folder(tmp_path / "pets")
        png(data / "train" / "cat" / "0.png", size=(2000, 1))
    else:
        data = npz(tmp_path / "wide.npz", x_train=np.zeros((12, 1, 2000), np.uint8))
    with pytest.raises(DataError, match=r"2000x2000, over 1024.*--image-size"):
        user.inspect(data)
    assert user.inspect(data, size=32).size == 32
    assert not cache.exists()


def test_the_cache_checks_free_disk_space_before_writing(tmp_path, cache, monkeypatch):
    root = folder(tmp_path / "pets", size=(10, 10))
    source = user.with_channels(user.inspect(root))  # 24 grey 10x10 images: 24 x (100 + 8) bytes with their labels
    nearly_full = shutil.disk_usage(tmp_path)._replace(free=2000)
    monkeypatch.setattr(user.shutil, "disk_usage", lambda path: nearly_full)
    with pytest.raises(DataError, match=r"take 2,592 bytes.* 2,000 are free there.*RAM_DATA_DIR"):
        user.load(source, progress=False)
    assert [p for p in cache.iterdir() if not p.name.endswith(".lock")] == []


def test_data_by_name_is_the_dataset_the_preset_would_name():
    assert recipe("mnist", data="fashion").config().task.dataset == "fashion"
    cfg = recipe("fashion", data="mnist").config()
    assert cfg.task.dataset == "mnist" and cfg.labels[5] == "5"
    assert recipe("fashion").config().labels[5] == "Sandal"
    with pytest.raises(ConfigError, match="image_size = 32: only with --data PATH"):
        recipe("mnist", data="mnist", image_size=32).config()


def test_the_config_keeps_the_class_names_through_json(tmp_path):
    cfg = recipe("mnist", data=str(folder(tmp_path / "pets", mode="RGB")), glimpses=2).config()
    assert (cfg.task.class_names, cfg.model.channels, cfg.model.classes) == (("cat", "dog", "owl"), 3, 3)
    assert (cfg.task.val_size, cfg.task.dataset) == (3, "images")  # a sixth of the 18 training images
    again = RunConfig.from_dict(json.loads(json.dumps(cfg.to_dict())))
    assert again == cfg and isinstance(again.task.class_names, tuple)


def test_task_data_reads_colour_batches_from_the_cache(tmp_path):
    cfg = recipe("mnist", data=str(folder(tmp_path / "pets", mode="RGB", size=(10, 10))), glimpses=2).config()
    data = make_task(cfg, progress=False).data  # the images task reads them through TaskData
    images, labels = next(data.train_batches(0, 4))
    assert images.shape == (4, 3, 10, 10) and images.dtype == torch.float32 and labels.shape == (4,)
    assert data.val().images.shape == (3, 3, 10, 10) and data.test().images.shape == (6, 3, 10, 10)
    assert to_float(data.test().images).shape == (6, 3, 10, 10)


def test_train_eval_viz_and_load_a_run_on_a_folder_of_colour_pngs(tmp_path, capsys):
    root = folder(tmp_path / "pets", mode="RGB", size=(16, 16))
    out = tmp_path / "run"
    assert main(["train", "--preset", "mnist", "--data", str(root), "--glimpses", "2", "--epochs", "1",
                 "--hidden", "16", "--what-size", "8", "--glimpse-size", "16",
                 "--batch-size", "5", "--threads", "1", "--out", str(out), "--no-progress"]) == 0
    model = ram.load(out)
    assert model.classes == ("cat", "dog", "owl") and model.cfg.model.channels == 3
    prediction = model.predict(np.asarray(Image.open(root / "test" / "owl" / "0.png")))
    assert prediction.names[0] in model.classes
    assert main(["eval", "--checkpoint", str(out), "--json"]) == 0
    assert json.loads(capsys.readouterr().out.splitlines()[-1])["n"] == 6
    assert main(["viz", "--checkpoint", str(out), "--out", str(tmp_path / "pictures"), "--n", "2"]) == 0
    trace = ram.viz.trace(model, np.asarray(Image.open(root / "test" / "dog" / "1.png")), labels=[1])
    assert trace.title(0).endswith("/ true dog")


def test_an_export_folder_is_what_train_reads(tmp_path):
    digits = ram.data.Digits(torch.zeros(4, 28, 28, dtype=torch.uint8), torch.tensor([0, 1, 1, 0]),
                             torch.zeros(2, 28, 28, dtype=torch.uint8), torch.tensor([1, 0]))
    out = tmp_path / "export"
    assert user.export_folder(digits, ("T-shirt/top", "Bag"), out, progress=False) == 6
    assert sorted(os.listdir(out / "train")) == ["Bag", "T-shirt-top"]
    assert user.inspect(out).classes == ("Bag", "T-shirt-top")
    with pytest.raises(DataError, match="already exists"):
        user.export_folder(digits, ("a", "b"), out, progress=False)


def test_the_fashion_row_exports_its_folder_before_training(tmp_path, monkeypatch):
    from ram.results import BY_NAME, reproduce_commands

    monkeypatch.chdir(tmp_path)  # no data/fashion-images here
    commands = reproduce_commands(BY_NAME["fashion-g6"])
    assert commands[0] == ["ram", "export-folder", "--dataset", "fashion", "--out", "data/fashion-images"]
    assert commands[1][:6] == ["ram", "train", "--preset", "mnist", "--data", "data/fashion-images"]


def test_a_png_that_breaks_pillow_s_parser_stops_decoding_naming_it(tmp_path, cache, capsys):
    """The PNG of issue 61 whose header reads and whose pixels raise SyntaxError: `ram train --data` crashed with a
    traceback; it now stops with one line naming the file, and no cache entry is left."""
    from hostile_files import broken_png

    root = folder(tmp_path / "pets")
    (root / "train" / "dog" / "3.png").write_bytes(broken_png())
    assert main(["train", "--preset", "mnist", "--data", str(root), "--glimpses", "1", "--patch-size", "4",
                 "--scales", "1", "--epochs", "1", "--no-progress", "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert "dog/3.png: cannot decode the image (SyntaxError: broken PNG file" in err and "Traceback" not in err
    assert [p.name for p in cache.iterdir() if not p.name.endswith(".lock")] == []


def npz_with_header(path, *, shape, data=b"", dtype="|u1", **arrays):
    """An .npz whose x_train member declares `shape` but holds only `data`, beside valid arrays."""
    import io
    import zipfile

    npz(path, **arrays)
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": dtype, "fortran_order": False, "shape": shape})
    with zipfile.ZipFile(path) as z:
        members = {n: z.read(n) for n in z.namelist() if n != "x_train.npy"}
    with zipfile.ZipFile(path, "w") as z:
        for n, b in {**members, "x_train.npy": header.getvalue() + data}.items():
            z.writestr(n, b)
    return path


@pytest.mark.parametrize("shape", [(10**9, 28, 28), (2, 28, 28)], ids=["huge", "short"])
def test_an_npz_whose_header_declares_more_than_it_holds_is_refused_before_loading(tmp_path, cache, shape):
    """1e9 elements declared in a tiny file ended in a MemoryError or ValueError traceback (issue 61)."""
    path = npz_with_header(tmp_path / "liar.npz", shape=shape, data=bytes(100))
    with pytest.raises(DataError, match=rf"liar.npz: x_train declares shape \({shape[0]}, 28, 28\) of uint8 "
                                        rf"\({shape[0] * 784:,} bytes\) but holds 100 bytes"):
        user.inspect(path)


@pytest.mark.parametrize("top", [2**40, np.iinfo(np.uint64).max], ids=["2**40", "uint64-max"])
def test_an_npz_label_too_large_for_a_class_count_is_refused(tmp_path, cache, top):
    """A label of 2**40 made 2**40 class names before anything said so; memory grew until the process was killed."""
    path = npz(tmp_path / "labels.npz", y_train=np.array([0, 1, 2] * 3 + [0, 1, top], dtype=np.uint64))
    with pytest.raises(DataError, match=rf"labels.npz: the labels go up to {int(top):,}, so there would be "):
        user.inspect(path)


def test_an_npz_s_images_are_copied_a_block_at_a_time(tmp_path, cache, monkeypatch):
    """A 9.5 MB .npz of a 1.57 GB array peaked at 3.27 GB: the array whole, and two converted copies. Here 24 MB of
    float32 images (that compress to little) pass through blocks of 1 MB; numpy reports its allocations to
    tracemalloc."""
    import tracemalloc

    monkeypatch.setattr(user, "_BLOCK_BYTES", 2**20)
    x = np.zeros((6000, 1, 32, 32), np.float32)
    x[:, 0, 5, 5] = 1.0
    path = tmp_path / "big.npz"
    np.savez_compressed(path, x_train=x, y_train=np.arange(6000) % 3, x_test=x[:6], y_test=np.arange(6) % 3)
    del x
    source = user.inspect(path)
    tracemalloc.start()
    try:
        d = user.load(source, progress=False)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert d.train_images.shape == (6000, 1, 32, 32) and int(d.train_images[:, 0, 5, 5].min()) == 255
    assert peak < 8 * 2**20, f"peak {peak / 2**20:.1f} MB"


def test_ram_train_looks_at_the_data_folder_once(tmp_path, monkeypatch):
    """--data PATH was listed and stat'ed twice: by the flags, to make the config, and again by the task to read it.
    The task now reads the images from what the flags found; a run folder evaluated later looks at it itself."""
    root, looks = folder(tmp_path / "pets"), []
    real = user._inspect_folder
    monkeypatch.setattr(user, "_inspect_folder", lambda *a, **kw: looks.append(a) or real(*a, **kw))
    assert main(["train", "--preset", "mnist", "--data", str(root), "--glimpses", "1", "--patch-size", "4",
                 "--epochs", "1", "--hidden", "16", "--batch-size", "5", "--threads", "1", "--no-progress",
                 "--out", str(tmp_path / "run")]) == 0
    assert len(looks) == 1
    assert main(["eval", "--checkpoint", str(tmp_path / "run"), "--json"]) == 0
    assert len(looks) == 2


def test_a_finished_run_prints_its_headline_when_its_folder_changed_during_training(tmp_path, capsys, monkeypatch):
    """Printing the headline made the task again, which read the folder again: a class folder added during training
    made a finished run exit 2 (issue 61)."""
    from ram import train

    root = folder(tmp_path / "pets")
    report = train._Run.final_report

    def changed_then_report(self, *args, **kwargs):
        png(root / "train" / "emu" / "0.png")  # someone adds a class while the run trains
        png(root / "test" / "emu" / "0.png")
        return report(self, *args, **kwargs)

    monkeypatch.setattr(train._Run, "final_report", changed_then_report)
    assert main(["train", "--preset", "mnist", "--data", str(root), "--glimpses", "1", "--patch-size", "4",
                 "--scales", "1", "--epochs", "1", "--hidden", "16", "--batch-size", "5", "--threads", "1",
                 "--no-progress", "--out", str(tmp_path / "run")]) == 0
    assert "test error" in capsys.readouterr().out
