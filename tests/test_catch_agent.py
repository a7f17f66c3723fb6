"""The Catch agent: RAM with a move head, trained through the same fit() as the classifiers."""

import csv
import dataclasses
import json
import math

import pytest
import torch
from test_resume import assert_same_run, fast, killed_before_write  # noqa: F401 - fast is a fixture

from ram.cli import main
from ram.config import ConfigError, ModelConfig, RunConfig, TrainConfig
from ram.data.tasks import generator
from ram.envs import CatchBatch
from ram.losses import copies_baseline, game
from ram.model import RAM
from ram.models import build_model
from ram.policies import Categorical
from ram.tasks import CatchConfig, CatchGame, catch_rate
from ram.train import fit


def tiny_catch(**train) -> RunConfig:
    """A 12x12 screen (11 steps), 100 games an epoch in batches of 32: 4 steps, the last one short."""
    model = ModelConfig(image_size=12, classes=0, actions=3, glimpses=11, patch_size=3, scales=2, what_size=8,
                        where_size=8, glimpse_size=16, hidden=16, core="lstm", reinforce_core=True)
    task = CatchConfig(canvas=12, epoch_games=100, val_games=40)
    train = TrainConfig(**{**dict(epochs=2, batch_size=32, seed=7, eval_batch_size=64, eval_mc_samples=0), **train})
    return RunConfig(preset="catch", task=task, model=model, train=train).validate()


def grads(model, loss) -> set[str]:
    model.zero_grad()
    loss.backward(retain_graph=True)
    return {n.split(".")[0] for n, p in model.named_parameters() if p.grad is not None and p.grad.abs().sum() > 0}


@pytest.mark.parametrize("reinforce_core", [True, False])
def test_reinforce_reaches_the_core_exactly_when_the_setting_says(reinforce_core):
    torch.manual_seed(0)
    model = RAM(ModelConfig(**{**tiny_catch().model.__dict__, "reinforce_core": reinforce_core}))
    world = CatchBatch(16, size=12, generator=torch.Generator().manual_seed(0))
    world.reset()
    ep = model.play(world)
    rewards = torch.arange(16.0) % 2  # a reward that varies, so the advantage is not zero
    losses = game(ep, rewards)
    trunk = {"glimpse_net", "core"}
    assert grads(model, losses.reinforce) == ({"act", "policy"} | (trunk if reinforce_core else set()))
    assert grads(model, losses.baseline) == ({"baseline"} | (trunk if reinforce_core else set()))


def test_catch_needs_the_core_to_learn_from_reinforce():
    cfg = tiny_catch()
    bad = RunConfig(preset="catch", task=cfg.task, model=ModelConfig(**{**cfg.model.__dict__, "reinforce_core": False}),
                    train=cfg.train)
    with pytest.raises(ConfigError, match="^reinforce_core = False: catch has no classification loss"):
        bad.validate()
    wrong_length = RunConfig(preset="catch", task=cfg.task, model=ModelConfig(**{**cfg.model.__dict__, "glimpses": 5}),
                             train=cfg.train)
    with pytest.raises(ConfigError, match="^glimpses = 5: a game on a 12x12 screen lasts 11 steps"):
        wrong_length.validate()


@pytest.mark.parametrize("field, value, words", [
    ("means_weight", 1.0, "catch has no classification loss for the means copy"),
    ("step_weight", 0.3, "catch has no guess after each glimpse"),
    ("reward", "prob", "catch's reward is the game's"),
])
def test_catch_refuses_the_settings_of_the_classification_loss(field, value, words):
    cfg = tiny_catch()
    cfg.validate()  # the same run with the setting left alone is fine
    bad = dataclasses.replace(cfg, loss=dataclasses.replace(cfg.loss, **{field: value}))
    with pytest.raises(ConfigError, match=f"^{field} = {value!r}: {words}"):
        bad.validate()


def test_move_log_probs_match_torch_distributions():
    logits = torch.randn(5, 3, generator=torch.Generator().manual_seed(0))
    moves = torch.tensor([0, 1, 2, 1, 0])
    torch.testing.assert_close(Categorical(logits).log_prob(moves),
                               torch.distributions.Categorical(logits=logits).log_prob(moves))


def test_an_episode_plays_the_whole_game_and_its_moves_are_the_games_moves():
    torch.manual_seed(0)
    model = build_model(tiny_catch().model)
    world = CatchBatch(8, size=12, generator=torch.Generator().manual_seed(3))
    world.reset()
    start = (world.ball_x.clone(), world.dx.clone(), world.paddle_x.clone())
    ep = model.play(world)
    assert ep.moves.shape == (8, 11) and ep.log_probs.shape == (8, 11) and world.row == 11
    replay = CatchBatch(8, size=12)
    replay.start(ball_x=start[0], dx=start[1], paddle_x=start[2])
    for t in range(11):
        replay.act(ep.moves[:, t])
    assert torch.equal(replay.paddle_x, world.paddle_x) and torch.equal(replay.reward, world.reward)


def test_the_copies_baseline_is_the_mean_of_the_other_copies():
    rewards = torch.tensor([1.0, 0.0, 1.0, 1.0, 0.0, 0.0])  # 3 copies of 2 games: game 0 gets 1,1,0; game 1 gets 0,1,0
    torch.testing.assert_close(copies_baseline(rewards, 3), torch.tensor([0.5, 0.5, 0.5, 0.0, 1.0, 0.5]))


def test_catch_rate_is_the_share_of_games_whose_reward_is_one():
    torch.manual_seed(0)
    model = build_model(tiny_catch().model)
    rate = catch_rate(model, games=50, size=12, seed=0, stream=3, sample=False, batch_size=20)
    caught = 0
    for b, first in enumerate(range(0, 50, 20)):
        world = CatchBatch(min(20, 50 - first), size=12, generator=generator(0, 3, b))
        world.reset()
        model.eval()
        model.play(world, sample=False)
        caught += int(world.reward.sum())
    assert rate == {"catch_rate": 100.0 * caught / 50, "error": 100.0 - 100.0 * caught / 50, "n": 50}


def test_catch_batches_are_games_from_a_seeded_generator_and_shard_over_ranks():
    task = CatchGame(tiny_catch())
    assert task.batches_per_epoch(32) == 4
    sizes = [b.n for b in task.train_batches(0, 32)]
    assert sizes == [32, 32, 32, 4]
    again = [b.generator.initial_seed() for b in task.train_batches(0, 32)]
    assert again == [b.generator.initial_seed() for b in task.train_batches(0, 32)]
    assert len(set(again)) == 4 and again != [b.generator.initial_seed() for b in task.train_batches(1, 32)]
    ranks = [[b.generator.initial_seed() for b in task.train_batches(0, 32, shard=(r, 2))] for r in (0, 1)]
    assert ranks == [again[0::2], again[1::2]]


def test_crash_before_every_write_then_resume_is_bit_identical(tmp_path, fast):  # noqa: F811 - fast is a fixture
    """The same guarantee as the classifiers', through the same fit(): a Catch run killed before any of its writes
    and resumed ends bit-identical to one that never stopped."""
    cfg = tiny_catch()
    reference = tmp_path / "reference"
    with killed_before_write(-1) as writes:
        fit(cfg, reference, progress=False, checkpoint_every=0.0)
    assert sum(p.name == "last.pt" for p in writes) == 2 * 4 + 2
    for k in range(0, len(writes), 2):  # every other write: the states between are the same kinds
        out = tmp_path / f"killed-{k}"
        with killed_before_write(k), pytest.raises(BaseException, match="killed before writing"):
            fit(cfg, out, progress=False, checkpoint_every=0.0)
        fit(cfg, out, resume=True, progress=False, checkpoint_every=math.inf)
        assert_same_run(reference, out)


def test_ram_train_and_eval_play_catch_from_the_command_line(tmp_path, capsys):
    out = tmp_path / "run"
    args = ["train", "--preset", "catch", "--epochs", "1", "--epoch-games", "64", "--val-games", "32", "--hidden", "16",
            "--what-size", "8", "--glimpse-size", "16", "--threads", "1", "--out", str(out),
            "--no-progress"]
    assert main(args) == 0, capsys.readouterr().err
    assert (out / "model.safetensors").is_file() and (out / "metrics.csv").is_file()
    row = next(csv.DictReader((out / "metrics.csv").open()))
    assert row["classify"] == "" and row["reward"] != ""  # a game has no cross-entropy to show, not a 0
    test = json.loads((out / "test.json").read_text())
    assert test["task"] == "catch" and test["n"] == 1000 and 0 <= test["catch_rate"] <= 100
    capsys.readouterr()
    assert main(["eval", "--checkpoint", str(out), "--episodes", "200", "--seed", "1", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["n"] == 200 and result["test_seed"] == 1
    assert result["error"] == pytest.approx(100 - result["catch_rate"])
    assert 0 <= result["catch_rate_sampled"] <= 100
    assert result["protocol"] == "one game per ball along the policies' modes"
    assert main(["eval", "--checkpoint", str(out), "--episodes", "0"]) == 2
    assert "episodes = 0: must be > 0" in capsys.readouterr().err


@pytest.mark.parametrize("detach_location", [False, True])
def test_detach_location_keeps_the_locations_reinforce_out_of_the_core(detach_location):
    """A classifier whose only decisions are locations: with reinforce_core its REINFORCE reaches the core unless
    detach_location says otherwise. (Catch's moves still train the core either way: the test above.)"""
    torch.manual_seed(0)
    cfg = ModelConfig(image_size=28, glimpses=3, hidden=16, what_size=8, where_size=8, glimpse_size=16,
                      reinforce_core=True, detach_location=detach_location)
    model = RAM(cfg)
    ep = model(torch.rand(6, 1, 28, 28))
    rl = -(ep.log_probs * (torch.arange(6.0)[:, None] - ep.baselines).detach()).sum(1).mean()
    assert grads(model, rl) == ({"policy"} if detach_location else {"policy", "core", "glimpse_net"})


def test_eval_refuses_the_other_tasks_options(tmp_path, capsys):
    """--episodes is for games, --mc-samples for classifiers: each on the other is an error naming it."""
    from ram import checkpoint as ckpt

    game_run, classifier_run = tmp_path / "catch", tmp_path / "mnist"
    ckpt.export_model(game_run, build_model(tiny_catch().model), tiny_catch())
    ckpt.export_model(classifier_run, build_model(ModelConfig()), RunConfig())
    assert main(["eval", "--checkpoint", str(game_run), "--mc-samples", "5"]) == 2
    assert "mc_samples = 5: Catch reports the catch rate" in capsys.readouterr().err
    assert main(["eval", "--checkpoint", str(classifier_run), "--episodes", "100"]) == 2
    assert "episodes = 100: only a game is played" in capsys.readouterr().err


def test_the_random_agent_moves_at_random_even_along_its_modes():
    torch.manual_seed(0)
    model = build_model(ModelConfig(**{**tiny_catch().model.__dict__, "kind": "random-agent"})).eval()
    world = CatchBatch(300, size=12, generator=torch.Generator().manual_seed(0))
    world.reset()
    moves = model(world, sample=False).moves
    share = torch.bincount(moves.flatten(), minlength=3) / moves.numel()
    assert (share - 1 / 3).abs().max() < 0.02  # not always left, as an argmax over equal logits would be
