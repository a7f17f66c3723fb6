"""Pictures: the boxes are where the sensor read, colours follow correctness, files are written, hooks never crash."""

import importlib.util
import sys
import warnings

import numpy as np
import pytest
import torch
from matplotlib.figure import Figure
from PIL import Image, ImageSequence

from ram import viz
from ram.checkpoint import export_model
from ram.config import ConfigError, ConvNetConfig, ModelConfig, RunConfig
from ram.tasks import DigitsConfig
from ram.data import Digits, Split
from ram.model import RAM
from ram.models import build_model
from ram.sensor import glimpse
from ram.tasks import Classification

T, S, G = 3, 2, 8  # glimpses, scales, patch size of the tiny model


def tiny(**kw) -> ModelConfig:
    return ModelConfig(**{"image_size": 28, "glimpses": T, "patch_size": G, "scales": S, **kw})


def fake_trace(*, x=0.0, y=0.0, guess=3, label=3, size=28) -> viz.Trace:
    """One black image whose glimpses all sit at (x, y), with a final guess."""
    probs = torch.full((1, T, 10), 0.01)
    probs[0, :, guess] = 0.91
    return viz.Trace(
        images=torch.zeros(1, 1, size, size), labels=torch.tensor([label]),
        locations=torch.tensor([x, y]).expand(1, T, 2).clone(), probs=probs, patch_size=G, scales=S,
    )


def tint(rgb: np.ndarray, row: float, col: float, radius: int = 2) -> tuple[int, int]:
    """(greenness, redness) of the greenest and the reddest pixel within `radius` of (row, col).

    Greenness is G - max(R, B), so neither white strokes nor the cyan path count as green.
    """
    r, c = round(row), round(col)
    p = rgb[r - radius : r + radius + 1, c - radius : c + radius + 1].astype(int)
    R, G, B = p[..., 0], p[..., 1], p[..., 2]
    return int((G - np.maximum(R, B)).max()), int((R - np.maximum(G, B)).max())


def to_pixel(fig: Figure, ax, x: float, y: float, height: int) -> tuple[float, float]:
    """Data (x, y) -> (row, col) in the Agg rendering, whose origin is the top-left."""
    u, v = ax.transData.transform((x, y))
    return height - v, u


@pytest.mark.parametrize("seed", range(4))
def test_boxes_are_the_pixels_the_sensor_reads(seed):
    """Every scale's box, cut to the image, is exactly the set of pixels that scale of the sensor reads."""
    gen = torch.Generator().manual_seed(seed)
    H = W = 28
    locations = torch.rand(16, 2, generator=gen) * 2.4 - 1.2  # some boxes hang over the edge
    sq = viz.boxes(locations, patch_size=G, scales=3, height=H, width=W)
    ones = torch.ones(16, 1, H, W)
    full = glimpse(ones, locations, G, 3)  # [B, 3, 1, g, g]
    for b in range(16):
        for k in range(3):
            x0, y0, s = sq[b, k].tolist()
            assert s == G * 2**k
            mask = torch.zeros(1, 1, H, W)
            mask[..., max(y0, 0) : max(y0 + s, 0), max(x0, 0) : max(x0 + s, 0)] = 1
            inside = glimpse(mask, locations[b : b + 1], G, 3)[0, k]
            # nothing outside the box is read, and every pixel of the box inside the image is
            assert torch.allclose(inside, full[b, k])
            assert torch.isclose(full[b, k].sum() * 4**k, mask.sum())


def test_trace_follows_the_policy_means_in_eval_mode_and_restores_the_mode():
    torch.manual_seed(0)
    model = RAM(tiny()).train()
    images = torch.randint(0, 256, (5, 28, 28), dtype=torch.uint8)
    t = viz.trace(model, images, torch.arange(5))
    assert model.training
    model.eval()
    ep = model(images[:, None].float() / 255, sample=False)
    assert torch.equal(t.locations, ep.locations)
    assert torch.allclose(t.probs, ep.step_logits.softmax(-1))
    assert t.probs.shape == (5, T, 10) and not t.probs.requires_grad


def test_trace_refuses_whole_image_models():
    with pytest.raises(ConfigError, match="takes no glimpses"):
        viz.trace(build_model(tiny(kind="fc")), torch.zeros(2, 28, 28, dtype=torch.uint8), torch.zeros(2))


@pytest.mark.parametrize("kind, classes, seen", [("fc", 10, "image"), ("convnet", 10, "image"),
                                                 ("screen", 0, "screen"), ("random-agent", 0, "screen")])
def test_one_refusal_names_the_setting_that_asked_for_a_picture_of_a_model_without_glimpses(kind, classes, seen):
    with pytest.raises(ConfigError) as e:
        ModelConfig(kind=kind, classes=classes).require_drawn("checkpoint", "runs/x")
    assert str(e.value) == (f"checkpoint = 'runs/x': a {kind} model reads the whole {seen} and takes no glimpses, "
                            "so there is nothing to draw; pictures need a ram or random-glimpses model")
    for drawn in ("ram", "random-glimpses"):
        ModelConfig(kind=drawn).require_drawn("checkpoint", "runs/x")  # nothing to refuse


def test_models_are_evaluated_in_eval_mode_and_given_back_in_their_own_mode_even_after_an_error():
    from ram.models import evaluating

    model = build_model(tiny())
    with evaluating(model) as m:
        assert m is model and not model.training
    assert model.training
    model.eval()
    with pytest.raises(RuntimeError), evaluating(model):
        model.train()
        raise RuntimeError("mid-evaluation")
    assert not model.training


@pytest.mark.parametrize("guess, colour", [(3, viz.RIGHT), (5, viz.WRONG)])
def test_tracks_draws_boxes_where_the_locations_say_in_the_colour_of_correctness(guess, colour):
    t = fake_trace(x=-0.25, y=0.25, guess=guess, label=3)  # centre pixel (10.5 -> 11, 17.5 -> 18)
    fig = viz.tracks(t)
    rgb = viz.to_array(fig)
    ax = fig.axes[0]
    (x0, y0, s), (X0, Y0, S1) = viz.boxes(t.locations[0, 0], patch_size=G, scales=S, height=28, width=28).tolist()
    assert (x0, y0, s) == (7, 14, 8) and (X0, Y0, S1) == (3, 10, 16)
    # points on the finest box's top and left edges (thick, solid) and on the coarse box's bottom edge (thin, faint)
    for (x, y), strong in [((x0 + 2, y0), 100), ((x0, y0 + 6), 100), ((X0 + 3, Y0 + S1), 40)]:
        green, red = tint(rgb, *to_pixel(fig, ax, x, y, rgb.shape[0]))
        assert (green, red)[colour is viz.WRONG] > strong and (green, red)[colour is viz.RIGHT] < 20, (x, y, green, red)
    # far from every box: the black image
    for x, y in [(25, 3), (25, 25), (1, 1)]:
        row, col = to_pixel(fig, ax, x, y, rgb.shape[0])
        assert rgb[round(row) - 2 : round(row) + 3, round(col) - 2 : round(col) + 3].max() < 40, (x, y)
    assert ax.get_title() == f"pred {guess} / true 3"


def test_tracks_draws_pixel_j_over_j_to_j_plus_1():
    """The boxes are drawn in data coordinates where pixel (row 3, column 24) spans [24, 25) x [3, 4)."""
    t = fake_trace(x=-0.25, y=0.25)
    t.images[0, 0, 3, 24] = 1
    fig = viz.tracks(t)
    rgb = viz.to_array(fig)
    for x, y, white in [(24.2, 3.5, True), (24.8, 3.5, True), (24.5, 3.2, True), (24.5, 3.8, True),
                        (23.8, 3.5, False), (25.2, 3.5, False), (24.5, 2.8, False), (24.5, 4.2, False)]:
        row, col = to_pixel(fig, fig.axes[0], x, y, rgb.shape[0])
        assert (rgb[round(row), round(col)].min() > 200) == white, (x, y)


def test_written_pngs_have_the_figure_size(tmp_path):
    torch.manual_seed(0)
    t = viz.trace(RAM(tiny()), torch.randint(0, 256, (6, 28, 28), dtype=torch.uint8), torch.arange(6))
    for name, fig in [("tracks.png", viz.tracks(t, n=5)), ("glimpses.png", viz.glimpse_panels(t, n=2))]:
        path = viz.save(fig, tmp_path / name)
        w, h = fig.get_size_inches() * fig.dpi
        width, height = Image.open(path).size
        assert abs(width - w) <= 1 and abs(height - h) <= 1  # Agg truncates fractional pixels
    assert len(viz.tracks(t, n=5).axes) == 5
    # one overview + T x (S patches + 1 bar chart) per image
    assert len(viz.glimpse_panels(t, n=2).axes) == 2 * (1 + T * (S + 1))


def test_gif_has_a_frame_per_glimpse_and_holds_the_last(tmp_path):
    t = fake_trace(guess=3, label=3)
    path = viz.animate(t, tmp_path / "g.gif", step_ms=300, hold_ms=2000)
    gif = Image.open(path)
    durations = [f.info["duration"] for f in ImageSequence.Iterator(gif)]
    assert len(durations) >= T
    assert durations[-1] > durations[0]


@pytest.mark.parametrize("guess, colour", [(3, viz.RIGHT), (5, viz.WRONG)])
def test_gif_frames_draw_the_current_boxes_in_the_colour_of_the_current_guess(guess, colour):
    t = fake_trace(x=0.0, y=0.0, guess=guess, label=3)
    z = 4
    shots = viz.frames(t, zoom=z)
    assert len(shots) == T and shots[0].size == (28 * z, viz.GIF_HEADER + 28 * z)
    rgb = np.asarray(shots[0])
    hue = np.array([round(255 * v) for v in colour])
    x0, y0 = 10 * z, 10 * z  # the finest box at the centre: pixels 10..17
    top, left = viz.GIF_HEADER + y0, x0
    assert (rgb[top, left + 4 : left + 12] == hue).all()  # top edge, clear of the step marker at the centre
    assert (rgb[top + 4 : top + 12, left] == hue).all()  # left edge
    assert (rgb[viz.GIF_HEADER + 26 * z, 2 * z] == 0).all()  # far corner of the image


def metrics_rows(n=4, **columns):
    rows = [dict(epoch=e, step=10 * e, lr="0.001", loss=-1 / e, classify=1 / e, reinforce=-2 / e, baseline=0.1 / e,
                 reward=1 - 0.5 / e, train_error=50 / e, val_error=40 / e, seconds=1.0, img_per_s=100.0 * e)
            for e in range(1, n + 1)]
    return [{**row, **columns} for row in rows]


def test_curves_from_rows_and_from_metrics_csv(tmp_path):
    """What a reader needs, one panel each: cross-entropy, error, reward, speed; never the negative hybrid total."""
    import csv

    rows = metrics_rows()
    with open(tmp_path / "metrics.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    for fig in (viz.curves(rows), viz.curves(tmp_path / "metrics.csv")):
        ce, error, reward, speed = fig.axes
        assert [ax.get_title() for ax in fig.axes] == ["cross-entropy (training batches)", "error (%)",
                                                       "reward (mean, sampled episodes)", "training speed (images/s)"]
        assert np.allclose(ce.get_lines()[0].get_ydata(), [1, 1 / 2, 1 / 3, 1 / 4])
        assert np.allclose(error.get_lines()[1].get_ydata(), [40, 20, 40 / 3, 10])
        assert np.allclose(reward.get_lines()[0].get_ydata(), [0.5, 0.75, 1 - 0.5 / 3, 0.875])
        assert np.allclose(speed.get_lines()[0].get_ydata(), [100, 200, 300, 400])
        drawn = np.concatenate([line.get_ydata() for ax in fig.axes for line in ax.get_lines()])
        assert (drawn >= 0).all()  # the total (-1/e) and REINFORCE (-2/e) are in metrics.csv only
    with pytest.raises(ValueError, match="no rows"):
        viz.curves([])


@pytest.mark.parametrize("entropy", [-1.77, 0.9])  # a Gaussian's differential entropy (RAM), a categorical's
def test_curves_draw_the_entropy_inside_its_axis_and_name_the_best_epoch_in_the_legend(entropy):
    rows = [dict(row, entropy=entropy - 0.01 * row["epoch"]) for row in metrics_rows(n=6)]
    fig = viz.curves(rows)
    twin = fig.axes[-1]  # the reward panel's twin, made last
    low, high = twin.get_ylim()
    line = twin.get_lines()[0].get_ydata()
    assert low <= line.min() and line.max() <= high  # the line is on its axis, not below its floor
    error = fig.axes[1]
    # The best epoch is the last one here: its label sits in the legend, so nothing is written under the minimum,
    # where it ran into the axis labels (or off the plot when the best epoch was the first).
    assert [t.get_text() for t in error.get_legend().get_texts()][-1] == "best 6.67% (epoch 6)"
    assert not error.texts


@pytest.mark.parametrize("val_error, scale", [(40, "log"), (1.2, "linear")])
def test_the_error_axis_is_logarithmic_only_over_a_decade_and_always_has_labelled_ticks(val_error, scale):
    """40/e .. 10% (with the train error, 50/e) spans a decade: log, to show the last gains. A second phase between
    1.2% and 1.5% on a log axis had no labelled tick at all."""
    rows = [dict(row, train_error=1.5, val_error=val_error / (e if val_error > 10 else 1))
            for e, row in enumerate(metrics_rows(), 1)]
    fig = viz.curves(rows)
    error = fig.axes[1]
    assert error.get_yscale() == scale
    fig.canvas.draw()  # tick labels are made when drawn
    low, high = error.get_ylim()
    shown = [t for t in error.get_yticklabels(minor=False) + error.get_yticklabels(minor=True)
             if t.get_text() and low <= t.get_position()[1] <= high]
    assert len(shown) >= 2


def test_curves_of_a_game_have_no_cross_entropy_panel():
    fig = viz.curves(metrics_rows(classify=""))  # a game's rows: it has no cross-entropy
    assert [ax.get_title() for ax in fig.axes] == ["error (%)", "reward (mean, sampled episodes)",
                                                   "training speed (images/s)"]


class FakeData:
    def __init__(self, n=6, broken=False):
        gen = torch.Generator().manual_seed(0)
        self.split = Split(torch.randint(0, 256, (n, 28, 28), dtype=torch.uint8, generator=gen), torch.arange(n) % 10)
        self.broken = broken

    def test(self, seed=0):
        if self.broken:
            raise RuntimeError("no test set here")
        return self.split

    val = test


def FakeTask(data: FakeData, model: ModelConfig | None = None) -> Classification:
    """A classification task of the tiny model on a handful of images, without loading MNIST."""
    return Classification(RunConfig(model=model or tiny()), data=data)


def test_run_pictures_hook_writes_curves_and_tracks(tmp_path):
    import csv

    rows = metrics_rows(2)
    with open(tmp_path / "metrics.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    model = RAM(tiny())
    viz.run_pictures_hook("epoch", model=model, task=FakeTask(FakeData()), row=rows[-1], out=tmp_path)
    assert (tmp_path / "curves.png").is_file() and not (tmp_path / "tracks.png").exists()
    viz.run_pictures_hook("end", model=model, task=FakeTask(FakeData()), row=rows[-1], out=tmp_path)
    assert Image.open(tmp_path / "tracks.png").size[0] > 100


def test_run_pictures_hook_turns_failures_into_warnings(tmp_path):
    with pytest.warns(RuntimeWarning, match="no test set here"):
        viz.run_pictures_hook("end", model=RAM(tiny()), task=FakeTask(FakeData(broken=True)), row={}, out=tmp_path)
    # whole-image models get no tracks, and no warning either
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        convnet = ConvNetConfig(image_size=28)
        viz.run_pictures_hook("end", model=build_model(convnet), task=FakeTask(FakeData(), convnet), row={},
                              out=tmp_path)


def test_tensorboard_hook_writes_namespaced_scalars_and_tracks(tmp_path):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    hook = viz.tensorboard_hook(tmp_path)
    assert not (tmp_path / "tensorboard").exists()  # nothing is written before the first epoch
    model = RAM(tiny())
    for row in metrics_rows(2):
        hook("epoch", model=model, task=FakeTask(FakeData()), row=row, out=tmp_path)
    hook("end", model=model, task=FakeTask(FakeData()), row=row, out=tmp_path)
    assert list((tmp_path / "tensorboard").glob("events.out.tfevents.*"))
    events = EventAccumulator(str(tmp_path / "tensorboard"))
    events.Reload()
    tags = events.Tags()
    for tag in ("loss/classify", "loss/reinforce", "loss/baseline", "loss/total", "reward/mean", "error/train",
                "error/val", "perf/img_per_s", "lr"):
        assert tag in tags["scalars"], tag
    assert [e.value for e in events.Scalars("error/val")] == [40.0, 20.0]
    assert "pictures/tracks" in tags["images"]


def test_tensorboard_missing_is_a_config_error_naming_the_extra(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)  # makes the import fail
    with pytest.raises(ConfigError, match=r"pip install 'recurrent-attention\[tensorboard\]'"):
        viz.tensorboard_hook(tmp_path)


@pytest.fixture
def synthetic_mnist(monkeypatch):
    """`ram viz` loads the task's data: give it 20 random test 'digits' instead of the MNIST cache."""
    gen = torch.Generator().manual_seed(0)
    digits = Digits(
        train_images=torch.zeros(10_020, 28, 28, dtype=torch.uint8),
        train_labels=torch.zeros(10_020, dtype=torch.int64),
        test_images=torch.randint(0, 256, (20, 28, 28), dtype=torch.uint8, generator=gen),
        test_labels=torch.arange(20) % 10,
    )
    monkeypatch.setattr("ram.data.mnist.load", lambda *a, **k: digits)


def run_folder(path, **model):
    cfg = RunConfig(preset="tiny", task=DigitsConfig(canvas=28), model=tiny(**model))
    torch.manual_seed(0)
    export_model(path, build_model(cfg.model), cfg)
    return path


def test_cli_viz_writes_the_three_pictures(tmp_path, synthetic_mnist, capsys):
    from ram.cli import main

    run = run_folder(tmp_path / "run")
    out = tmp_path / "pictures"
    assert main(["viz", "--checkpoint", str(run), "--out", str(out), "--n", "5", "--seed", "1"]) == 0
    printed = capsys.readouterr().out.split()
    names = ["tracks.png", "glimpses.png", "glimpses.gif"]
    assert printed == [str(out / name) for name in names]
    assert Image.open(out / "tracks.png").format == "PNG"
    assert sum(1 for _ in ImageSequence.Iterator(Image.open(out / "glimpses.gif"))) >= T


@pytest.mark.parametrize("argv, message", [
    (["--n", "0"], "n = 0: must be >= 1"),
    (["--seed", "-1"], "seed = -1: must be >= 0"),
])
def test_cli_viz_rejects_bad_input_before_any_work(tmp_path, capsys, argv, message):
    from ram.cli import main

    out = tmp_path / "pictures"
    assert main(["viz", "--checkpoint", str(tmp_path / "missing"), "--out", str(out), *argv]) == 2
    assert message in capsys.readouterr().err
    assert not out.exists()


def test_cli_viz_refuses_whole_image_models(tmp_path, synthetic_mnist, capsys):
    from ram.cli import main

    run = run_folder(tmp_path / "run", kind="fc")
    assert main(["viz", "--checkpoint", str(run), "--out", str(tmp_path / "p")]) == 2
    assert "takes no glimpses" in capsys.readouterr().err
    assert not (tmp_path / "p").exists()


def test_fit_runs_the_picture_hooks(tmp_path):
    """Two epochs of a tiny run through `fit` with both hooks: curves, tracks and TensorBoard events appear."""
    from ram.config import TrainConfig
    from ram.data import TaskData
    from ram.train import fit

    gen = torch.Generator().manual_seed(0)
    digits = Digits(
        train_images=torch.randint(0, 256, (40, 28, 28), dtype=torch.uint8, generator=gen),
        train_labels=torch.arange(40) % 10,
        test_images=torch.randint(0, 256, (20, 28, 28), dtype=torch.uint8, generator=gen),
        test_labels=torch.arange(20) % 10,
    )
    cfg = RunConfig(preset="tiny", task=DigitsConfig(canvas=28, val_size=10), model=tiny(),
                    train=TrainConfig(epochs=2, batch_size=16, eval_batch_size=16))
    hooks = [viz.run_pictures_hook]
    if importlib.util.find_spec("tensorboard"):
        hooks.append(viz.tensorboard_hook(tmp_path))
    fit(cfg, tmp_path, device="cpu", progress=False, data=TaskData(cfg.task, seed=0, digits=digits), hooks=hooks)
    assert (tmp_path / "curves.png").is_file() and (tmp_path / "tracks.png").is_file()
    if len(hooks) == 2:
        assert list((tmp_path / "tensorboard").glob("events.out.tfevents.*"))
