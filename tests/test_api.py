"""ram.load(...).predict / .glimpses: a trained model from Python, on numpy arrays, PIL images or tensors."""

import re
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import ram
from ram import checkpoint as ckpt
from ram import sensor
from ram.config import ConfigError, ModelConfig, RunConfig
from ram.tasks import CatchConfig, ImagesConfig
from ram.models import build_model

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def model() -> ram.Model:
    return ram.load("mnist-g6")


def digits(n: int = 3) -> np.ndarray:
    """uint8 [n, 28, 28]: bars of different widths, enough to tell inputs apart."""
    images = np.zeros((n, 28, 28), np.uint8)
    for i in range(n):
        images[i, 5:23, 12 - i : 15 + i] = 255
    return images


def test_the_getting_started_example_runs(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the example writes its picture where it runs
    text = (ROOT / "docs" / "getting-started.md").read_text()
    block = re.search(r"## From Python\n.*?```python\n(.*?)```", text, flags=re.S)
    assert block, "docs/getting-started.md has a ## From Python section with a python example"
    scope: dict = {}
    exec(block.group(1), scope)  # noqa: S102 - the docs' own example
    out = scope["out"]
    assert out.labels.tolist() == [1]  # the example draws a 1
    assert (tmp_path / "tracks.png").is_file()


def test_a_prediction_says_what_and_where(model):
    out = model.predict(digits())
    assert out.probs.shape == (3, 10) and out.step_probs.shape == (3, 6, 10)
    assert torch.equal(out.labels, out.probs.argmax(1))
    torch.testing.assert_close(out.probs, out.step_probs[:, -1])  # along the means the last step is the answer
    torch.testing.assert_close(out.pixels, (out.locations + 1) * 14)
    assert out.names == [str(int(label)) for label in out.labels]


def test_every_accepted_form_of_the_same_images_gives_the_same_answer(model):
    images = digits()
    reference = model.predict(images).probs
    forms = [
        images[:, :, :, None],  # numpy channels last
        torch.from_numpy(images)[:, None],  # tensor [B, C, H, W]
        torch.from_numpy(images).float() / 255,  # float [B, H, W]
        [Image.fromarray(image) for image in images],  # a list of PIL images
        [image for image in images],  # a list of [H, W] arrays
    ]
    for form in forms:
        torch.testing.assert_close(model.predict(form).probs, reference)
    torch.testing.assert_close(model.predict(Image.fromarray(images[1]).convert("RGB")).probs, reference[1:2])


def test_colour_images_in_any_memory_layout_give_the_same_answer():
    """A channels-last [B, C, H, W] (numpy's stack of transposed images, a permuted tensor) ended in a RuntimeError
    from the sensor's view()."""
    cfg = RunConfig(task=ImagesConfig(source="shapes", class_names=("a", "b"), canvas=12),
                    model=ModelConfig(image_size=12, channels=3, classes=2, patch_size=4, scales=2, glimpses=2))
    torch.manual_seed(0)
    colour = ram.Model(build_model(cfg.model), cfg, "random weights")
    hwc = np.random.default_rng(0).integers(0, 256, (3, 12, 12, 3), dtype=np.uint8)
    reference = colour.predict(hwc).probs
    torch.testing.assert_close(colour.predict(torch.from_numpy(hwc).permute(0, 3, 1, 2)).probs, reference)
    torch.testing.assert_close(colour.predict(torch.from_numpy(np.stack([x.transpose(2, 0, 1) for x in hwc]))).probs,
                               reference)


@pytest.mark.parametrize("images,message", [
    (np.zeros((32, 32), np.uint8), r"shape \(32, 32\); expected 28x28 images with 1 channel"),
    (np.zeros((2, 28, 28), np.int32), "dtype torch.int32; expected 28x28"),
    (np.full((28, 28), 2.0, np.float32), r"float values in \[2, 2\]; expected 28x28"),
    ("digit.png", "got a str; expected 28x28"),
    ([], "an empty list"),
])
def test_a_wrong_image_says_what_was_expected(model, images, message):
    with pytest.raises(ValueError, match=message):
        model.predict(images)


def test_sampled_episodes_are_seeded_and_leave_the_callers_random_stream_alone(model):
    torch.manual_seed(123)
    before = torch.get_rng_state()
    a = model.predict(digits(), mc_samples=5)
    assert torch.equal(torch.get_rng_state(), before)
    b = model.predict(digits(), mc_samples=5)
    c = model.predict(digits(), mc_samples=5, seed=1)
    assert torch.equal(a.probs, b.probs) and not torch.equal(a.probs, c.probs)
    with pytest.raises(ValueError, match="mc_samples = -1: must be an integer >= 0"):
        model.predict(digits(), mc_samples=-1)


def test_glimpses_are_what_the_sensor_reads_where_the_model_looked(model):
    images = digits(2)
    seen = model.glimpses(images)
    where = model.predict(images).locations
    assert seen.shape == (2, 6, 1, 1, 8, 8)
    x = torch.from_numpy(images)[:, None].float() / 255
    for t in range(6):
        torch.testing.assert_close(seen[:, t], sensor.glimpse(x, where[:, t], 8, 1))


def test_load_takes_a_run_folder_and_refuses_what_it_cannot_classify(tmp_path):
    folder = tmp_path / "run"
    small = RunConfig(model=ModelConfig(glimpses=2, hidden=8))
    ckpt.export_model(folder, build_model(small.model), small)
    assert ram.load(folder).predict(digits(1)).step_probs.shape == (1, 2, 10)
    with pytest.raises(ConfigError, match="'nope' is neither a run folder nor a shipped model; shipped models are"):
        ram.load("nope")
    catch = RunConfig(preset="catch", task=CatchConfig(canvas=24),
                      model=ModelConfig(image_size=24, classes=0, actions=3, glimpses=23, reinforce_core=True))
    ckpt.export_model(tmp_path / "catch", build_model(catch.model), catch)
    with pytest.raises(ConfigError, match="a catch agent plays games and classifies no images"):
        ram.load(tmp_path / "catch")


def test_the_pictures_take_the_same_model_and_images_in_two_lines(model, tmp_path):
    """A user's own images, unlabelled: drawn in blue with the guess alone in the title."""
    from ram import viz

    t = viz.trace(model, [Image.fromarray(image) for image in digits(2)])
    path = viz.save(viz.tracks(t), tmp_path / "mine.png")
    assert path.is_file() and t.labels.tolist() == [-1, -1]
    assert [t.verdict(i) for i in range(2)] == [None, None]
    assert t.title(0) == f"pred {int(t.preds[0])}"
    torch.testing.assert_close(t.locations, model.predict(digits(2)).locations)
    labelled = viz.trace(model, digits(2), labels=[1, 7])
    assert labelled.title(1) == f"pred {int(labelled.preds[1])} / true 7"
