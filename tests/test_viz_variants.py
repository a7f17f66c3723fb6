"""Pictures of the two variants: a saccade model's windows are the pixels its sensor read, and a Catch agent's games are
drawn from the screens it saw, step by step."""

import warnings

import numpy as np
import pytest
import torch
from PIL import Image, ImageSequence

from ram import viz
from ram.checkpoint import export_model
from ram.config import ModelConfig, RunConfig
from ram.tasks import CatchConfig
from ram.data import Split
from ram.envs import CatchBatch
from ram.model import RAM
from ram.policies import Lattice, SaccadeConfig
from ram.sensor import glimpse
from ram.tasks import CatchGame
from ram.tasks.catch import play

T = 5  # glimpses of the tiny saccade model


def saccade_model(*, glimpses: int = T) -> RAM:
    """A tiny saccade model whose modes start in window (0, 0) and then move down-right every step, so each glimpse
    reads a new window: (k, k) at step k."""
    cfg = ModelConfig(image_size=28, glimpses=glimpses, patch_size=4, scales=1, glimpse_net="pixels", core="lstm",
                      hidden=16, reinforce_core=True)
    torch.manual_seed(0)
    model = RAM(cfg, SaccadeConfig(saccade_step=2, init_downsample=4, policy_hidden=8), baseline="batch")
    with torch.no_grad():
        first, moves = model.policy.initial[-1], model.policy.moves[-1]
        first.weight.zero_()
        first.bias.zero_()
        first.bias[[0, model.policy.lattice.n]] = 10.0  # row 0, column 0
        moves.weight.zero_()
        moves.bias.zero_()
        moves.bias[3] = 10.0  # down-right
    return model


def digits(n: int = 6) -> Split:
    gen = torch.Generator().manual_seed(0)
    return Split(torch.randint(0, 256, (n, 28, 28), dtype=torch.uint8, generator=gen), torch.arange(n) % 10)


@pytest.mark.parametrize("side, patch, step", [(28, 4, 2), (28, 4, 3), (24, 5, 2), (30, 6, 4)])
def test_saccade_windows_are_the_pixels_the_sensor_reads(side, patch, step):
    """For random windows of the lattice, the drawn square is exactly the crop the sensor returns at its location, and
    the box `boxes` gives for the one scale."""
    lattice = Lattice(side=side, patch=patch, step=step)
    gen = torch.Generator().manual_seed(side + patch + step)
    index = torch.randint(0, lattice.n, (12, 2), generator=gen)  # (row, col)
    locations = lattice.location(index)
    win = viz.windows(locations, lattice)
    assert torch.equal(win, torch.stack([index[:, 1] * step, index[:, 0] * step, torch.full((12,), patch)], 1))
    assert torch.equal(win, viz.boxes(locations, patch_size=patch, scales=1, height=side, width=side)[:, 0])
    images = torch.rand(12, 1, side, side, generator=gen)
    read = glimpse(images, locations, patch, 1)[:, 0]  # [12, 1, patch, patch]
    for b, (x0, y0, s) in enumerate(win.tolist()):
        assert 0 <= x0 and x0 + s <= side and 0 <= y0 and y0 + s <= side  # a window lies on the image
        assert torch.equal(read[b], images[b, :, y0 : y0 + s, x0 : x0 + s])


def test_a_saccade_trace_carries_its_lattice_and_reads_the_windows_it_draws():
    model = saccade_model()
    split = digits(3)
    t = viz.trace(model, split.images, split.labels)
    assert t.lattice is model.policy.lattice
    win = viz.windows(t.locations, t.lattice)  # [3, T, 3]
    assert win[0, :, :2].tolist() == [[2 * k, 2 * k] for k in range(T)]
    images = split.images[:, None].float() / 255
    for step in range(T):
        read = glimpse(images, t.locations[:, step], 4, 1)[:, 0]
        for b, (x0, y0, s) in enumerate(win[:, step].tolist()):
            assert torch.equal(read[b], images[b, :, y0 : y0 + s, x0 : x0 + s])
    assert viz.trace(RAM(ModelConfig(glimpses=2)), split.images, split.labels).lattice is None


def test_saccades_shades_the_windows_in_visit_order_with_arrows_and_a_ringed_first():
    model = saccade_model()
    split = digits(4)
    t = viz.trace(model, split.images, split.labels)
    fig = viz.saccades(t, n=4)
    ax = fig.axes[0]
    shaded = [p for p in ax.patches if p.get_fill()]
    assert [[p.get_x(), p.get_y(), p.get_width()] for p in shaded] == viz.windows(t.locations[0], t.lattice).tolist()
    # the shades run along the order colormap, first to last
    assert np.allclose([p.get_facecolor()[:3] for p in shaded], viz.common._order_colours(T)[:, :3])
    rings = [p for p in ax.patches if not p.get_fill()]
    assert [(p.get_x(), p.get_y()) for p in rings] == [(0, 0)]
    assert len(ax.texts) == T - 1  # one arrow per saccade, no stays
    assert ax.get_title() == f"pred {int(t.preds[0])} / true {int(t.labels[0])}"
    assert ax.title.get_color() == viz.common._hue(bool(t.correct[0]))
    assert len(fig.axes) == 4 + 1  # the images and the order's colour bar


def test_saccades_counts_a_stay_against_the_border():
    model = saccade_model(glimpses=16)  # down-right from (0, 0) reaches the last window (12, 12) at step 12
    split = digits(1)
    fig = viz.saccades(viz.trace(model, split.images, split.labels), n=1)
    assert [text.get_text() for text in fig.axes[0].texts if text.get_text()] == ["x4"]


def test_render_a_saccade_model_writes_saccades_png_and_a_gif_whose_window_moves(tmp_path):
    paths = viz.render(saccade_model(), digits(), tmp_path, n=4)
    assert [p.name for p in paths] == ["tracks.png", "saccades.png", "glimpses.png", "glimpses.gif"]
    assert Image.open(tmp_path / "saccades.png").format == "PNG"
    shots = [np.asarray(f.convert("RGB")) for f in ImageSequence.Iterator(Image.open(tmp_path / "glimpses.gif"))]
    assert len(shots) == T
    for a, b in zip(shots, shots[1:]):
        assert (a != b).any()
    # The current window's box (the guess's colour, 3 pixels wide) sits on window (k, k) in frame k.
    t = viz.trace(saccade_model(), digits().images, digits().labels)
    z = 8
    for k, shot in enumerate(viz.frames(t, n=1, zoom=z)):
        rgb = np.asarray(shot)
        hue = np.array(viz.common._rgb255(viz.common._hue(int(t.probs[0, k].argmax()) == int(t.labels[0]))))
        top, left, side = viz.GIF_HEADER + 2 * k * z, 2 * k * z, 4 * z
        assert (rgb[top, left : left + side] == hue).all(), k  # top edge
        assert (rgb[top : top + side, left + side - 1] == hue).all(), k  # right edge


# Catch ---------------------------------------------------------------------------------------------------------------


def catch_config() -> RunConfig:
    return RunConfig(
        preset="tiny-catch", task=CatchConfig(canvas=24),
        model=ModelConfig(image_size=24, classes=0, actions=3, glimpses=23, patch_size=6, scales=3, hidden=16,
                          what_size=8, where_size=8, glimpse_size=16, core="lstm", reinforce_core=True),
    ).validate()


def catch_model(cfg: RunConfig) -> RAM:
    torch.manual_seed(0)
    return RAM(cfg.model)


def test_play_catch_records_the_screens_the_agent_saw():
    """Replaying the recorded moves in the same games gives the same screens and the same outcome."""
    cfg = catch_config()
    model = catch_model(cfg).train()
    g = play(model, cfg, n=3, seed=5)
    assert model.training
    assert g.frames.shape == (3, 24, 1, 24, 24) and g.locations.shape == (3, 23, 2) and g.moves.shape == (3, 23)
    world = CatchBatch(3, size=24, generator=torch.Generator().manual_seed(5))
    assert torch.equal(world.reset(), g.frames[:, 0])
    for step in range(23):
        world.act(g.moves[:, step])
        assert torch.equal(world.observe(), g.frames[:, step + 1])
    assert torch.equal(world.reward > 0, g.caught)


def test_render_catch_writes_a_gif_of_every_step_and_a_still_per_game(tmp_path):
    cfg = catch_config()
    paths = viz.render_catch(play(catch_model(cfg), cfg, n=3, seed=1), tmp_path)
    assert [p.name for p in paths] == ["catch.gif", "catch-0.png", "catch-1.png", "catch-2.png"]
    gif = Image.open(tmp_path / "catch.gif")
    durations = [f.info["duration"] for f in ImageSequence.Iterator(gif)]
    assert len(durations) == 23 + 1 and durations[-1] > durations[0]  # every step, then the final screen held
    for p in paths[1:]:
        assert Image.open(p).format == "PNG"


def test_catch_frames_draw_the_screen_the_boxes_of_every_scale_and_the_outcome():
    cfg = catch_config()
    g = play(catch_model(cfg), cfg, n=2, seed=2)
    z = 8
    shots = viz.catch_frames(g, zoom=z)
    assert len(shots) == 24
    cyan = np.array(viz.common._rgb255(viz.PATH))
    side = 24 * z
    left, top = 8 + side + 16, viz.CATCH_HEADER  # game 2's screen
    for step in (0, 11):
        rgb = np.asarray(shots[step])
        sq = viz.boxes(g.locations[1, step], patch_size=6, scales=3, height=24, width=24) * z
        for k, (x0, y0, s) in enumerate(sq.tolist()):
            row = y0 if y0 >= 0 else y0 + s - 1  # the top edge, or the bottom one where the top is off the screen
            assert 0 <= row < side, (step, k)
            edge = rgb[top + row, left + max(x0, 0) : left + min(x0 + s, side)]
            assert len(edge) and (edge == cyan).all(), (step, k)
        # the paddle: the two white cells of the bottom row
        paddle = int(torch.nonzero(g.frames[1, step, 0, -1])[0])
        assert (rgb[top + 24 * z - 2, left + paddle * z + 2] == 255).all()
    end = np.asarray(shots[-1])
    hue = np.array(viz.common._rgb255(viz.common._hue(bool(g.caught[0]))))
    assert (end[viz.CATCH_HEADER - 2, 8 + 20] == hue).all()  # game 1's outline


def test_catch_still_fades_the_past_and_draws_the_gaze_track():
    cfg = catch_config()
    g = play(catch_model(cfg), cfg, n=1, seed=0)
    fig = viz.catch_still(g, 0)
    ax = fig.axes[0]
    shown = ax.images[0].get_array() ** 2  # the recency image, before its square-root scale
    ball = [int(torch.nonzero(g.frames[0, t, 0, t])[0]) for t in range(24)]  # the ball is in row t at step t
    assert shown[23, ball[23]] == pytest.approx(1.0)
    for t in (5, 15, 20):  # row t is lit only on screen t, by the ball
        assert shown[t, ball[t]] == pytest.approx(0.8 ** (23 - t), rel=1e-4)
    centres = ((g.locations[0] + 1) / 2 * 24).numpy()
    assert np.allclose(np.stack(ax.lines[0].get_data(), 1), centres)
    assert ax.get_title() == f"game 1: {'caught' if g.caught[0] else 'missed'}"


def test_cli_viz_plays_a_catch_run(tmp_path, capsys):
    from ram.cli import main

    cfg = catch_config()
    export_model(tmp_path / "run", catch_model(cfg), cfg)
    out = tmp_path / "pictures"
    assert main(["viz", "--checkpoint", str(tmp_path / "run"), "--out", str(out), "--n", "2"]) == 0
    assert capsys.readouterr().out.split() == [str(out / n) for n in ("catch.gif", "catch-0.png", "catch-1.png")]
    assert sum(1 for _ in ImageSequence.Iterator(Image.open(out / "catch.gif"))) == 24


def test_run_pictures_hook_draws_a_catch_run_at_the_end(tmp_path):
    cfg = catch_config()
    model = catch_model(cfg)
    viz.run_pictures_hook("epoch", model=model, task=CatchGame(cfg), row={}, out=tmp_path)
    assert not (tmp_path / "catch.gif").exists()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        viz.run_pictures_hook("end", model=model, task=CatchGame(cfg), row={}, out=tmp_path)
    assert (tmp_path / "catch.gif").is_file()
    assert sorted(p.name for p in tmp_path.glob("catch-*.png")) == [f"catch-{i}.png" for i in range(4)]


def test_run_pictures_hook_turns_a_failed_catch_picture_into_a_warning(tmp_path, monkeypatch):
    def broken(*a, **k):
        raise RuntimeError("no screen")

    monkeypatch.setattr(viz.catch, "catch_frames", broken)  # where render_catch looks it up
    cfg = catch_config()
    with pytest.warns(RuntimeWarning, match="no screen"):
        viz.run_pictures_hook("end", model=catch_model(cfg), task=CatchGame(cfg), row={}, out=tmp_path)


def test_a_catch_runs_learning_curve_has_games_time_and_both_catch_rates(tmp_path):
    from ram.viz import learning_curve

    rows = [{"epoch": "1", "step": "10", "seconds": "2.5", "train_error": "90", "val_error": "80"},
            {"epoch": "2", "step": "20", "seconds": "3.5", "train_error": "50", "val_error": "40"}]
    fig, numbers = learning_curve(rows, batch_size=64)
    assert numbers.splitlines() == ["epoch,games,seconds,train_catch_rate,val_catch_rate",
                                    "1,640,2.5,10.000,20.000", "2,1280,6.0,50.000,60.000"]
    assert [ax.get_xlabel() for ax in fig.axes] == ["games played (millions)", "minutes"]


def test_catch_recipes_side_by_side_share_a_colour_per_recipe_and_name_it_once(tmp_path):
    from ram.viz import compare_learning_curves

    header = "epoch,step,seconds,train_error,val_error\n"
    for name, lines in (("a0", "1,10,2,90,80\n2,20,2,50,40\n"), ("a1", "1,10,2,85,70\n"), ("b", "1,10,2,95,92\n")):
        (tmp_path / f"{name}.csv").write_text(header + lines)
    fig = compare_learning_curves([("ours", tmp_path / "a0.csv"), ("ours", tmp_path / "a1.csv"),
                                   ("as written", tmp_path / "b.csv")], batch_size=64)
    modes, sampled = fig.axes
    assert [line.get_color() for line in modes.lines] == ["C0", "C0", "C1"]
    assert list(modes.lines[0].get_xdata()) == [640 / 1e6, 1280 / 1e6]
    assert list(modes.lines[0].get_ydata()) == [20.0, 60.0] and list(sampled.lines[0].get_ydata()) == [10.0, 50.0]
    assert [t.get_text() for t in modes.get_legend().get_texts()] == ["ours", "as written"]
    (tmp_path / "empty.csv").write_text(header)
    with pytest.raises(ValueError, match="empty.csv: no rows yet"):
        compare_learning_curves([("x", tmp_path / "empty.csv")], batch_size=64)
