"""Catch: the Gymnasium env passes Gymnasium's checker and keeps seed 002's rules, and its batched twin agrees.

The rules are checked against `oracle_step` / `oracle_frame`, a literal per-game transcription of seed 002's catch.py
in float32 scalars (its tensors' precision), so the twin test does not only compare the env with itself.
"""

import warnings

import gymnasium
import numpy as np
import pytest
import torch
from gymnasium.utils.env_checker import check_env
from gymnasium.vector import AutoresetMode, SyncVectorEnv

import ram  # noqa: F401  (registers ram/Catch-v0)
from ram.envs import Catch, CatchBatch, CatchVector

SIZE = 24
LEFT, STAY, RIGHT = 0, 1, 2


def oracle_step(state: tuple, action: int, size: int) -> tuple:
    """One move of one game (row, x, dx, paddle): fall, bounce by flipping dx with x left outside, move the paddle."""
    row, x, dx, paddle = state
    x = np.float32(x + dx)
    if x < 0 or x >= size:
        dx = -dx
    return row + 1, x, dx, min(max(paddle + action - 1, 0), size - 2)


def oracle_column(x: np.float32, size: int) -> int:
    return int(min(max(x, 0), size - 1))


def oracle_frame(state: tuple, size: int) -> np.ndarray:
    row, x, _, paddle = state
    frame = np.zeros((size, size), np.float32)
    frame[row, oracle_column(x, size)] = 1
    frame[-1, paddle : paddle + 2] = 1
    return frame


def chase(column: int, paddle: int) -> int:
    """A policy that keeps the paddle under the ball, so that the games also end in catches."""
    return LEFT if column < paddle else RIGHT if column > paddle + 1 else STAY


@pytest.mark.parametrize("render_mode", [None, "rgb_array"])
def test_gymnasium_checker_passes_without_a_warning(render_mode):
    # through make, so the checker has a spec and can try the other render modes
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        check_env(gymnasium.make("ram/Catch-v0", render_mode=render_mode).unwrapped)
    assert [str(w.message) for w in caught] == []


def test_make_after_import_ram_gives_atari_style_images():
    env = gymnasium.make("ram/Catch-v0", size=10)
    obs, info = env.reset(seed=0)
    assert obs.shape == (10, 10, 1) and obs.dtype == np.uint8
    assert set(np.unique(obs)) == {0, 255} and obs.sum() == 3 * 255  # the ball and the paddle's two pixels
    assert set(info) == {"ball_row", "ball_x", "dx", "paddle_x"}


def test_render_is_an_upscaled_rgb_frame():
    env = Catch(render_mode="rgb_array")
    obs, _ = env.reset(seed=3)
    image = env.render()
    assert image.shape == (SIZE * 8, SIZE * 8, 3) and image.dtype == np.uint8
    assert np.array_equal(image[::8, ::8, :1], obs)


def test_same_seed_same_game():
    def play(seed):
        env = Catch()
        obs, info = env.reset(seed=seed)
        frames, rewards = [obs], []
        for action in np.random.default_rng(seed).integers(0, 3, SIZE - 1):
            obs, reward, *_ = env.step(action)
            frames.append(obs)
            rewards.append(reward)
        return np.stack(frames), rewards, info

    first, again, other = play(7), play(7), play(8)
    assert np.array_equal(first[0], again[0]) and first[1:] == again[1:]
    assert not np.array_equal(first[0], other[0])


@pytest.mark.parametrize("size", [2, 5, SIZE])
def test_game_lasts_size_minus_one_steps(size):
    env = Catch(size=size)
    env.reset(seed=size)
    for t in range(1, size):
        _, reward, terminated, truncated, info = env.step(STAY)
        assert info["ball_row"] == t and not truncated
        assert terminated == (t == size - 1)
        if not terminated:
            assert reward == 0.0
    assert CatchBatch(4, size=size).steps == size - 1


def test_reward_is_one_exactly_when_the_paddle_is_under_the_ball():
    # every (landing x, paddle) pair: straight falls (dx = 0) from x = c + 0.5 with the paddle staying put
    grid = torch.meshgrid(torch.arange(SIZE), torch.arange(SIZE - 1), indexing="ij")
    column, paddle = (g.flatten() for g in grid)
    x = column + 0.5
    game = CatchBatch(len(x), size=SIZE)
    game.start(ball_x=x, dx=torch.zeros_like(x), paddle_x=paddle)
    for _ in range(game.steps):
        _, reward, done = game.step(torch.full((len(x),), STAY))
    assert done
    assert torch.equal(reward, ((column == paddle) | (column == paddle + 1)).float())
    assert reward.sum() == 2 * (SIZE - 1)


@pytest.mark.parametrize("action, wall", [(LEFT, 0), (RIGHT, SIZE - 2)])
def test_paddle_is_clamped_at_the_walls(action, wall):
    env = Catch()
    env.reset(seed=1)
    for _ in range(SIZE - 1):
        obs, *_, info = env.step(action)
        assert 0 <= info["paddle_x"] <= SIZE - 2
    assert info["paddle_x"] == wall
    assert obs[-1, wall, 0] == obs[-1, wall + 1, 0] == 255


def test_ball_bounces_off_both_walls():
    game = CatchBatch(2, size=SIZE)
    game.start(ball_x=[0.0, SIZE - 1.0], dx=[-0.5, 0.75], paddle_x=[5, 5])
    columns, signs = [], []
    for row in range(1, 6):
        frames, _, _ = game.step(torch.full((2,), STAY))
        assert frames[:, 0, row].sum(-1).tolist() == [1, 1]  # one ball pixel per game, one row lower each step
        columns.append(frames[:, 0, row].argmax(-1).tolist())
        signs.append(torch.sign(game.dx).tolist())
    # left x: -0.5 (drawn at 0, dx flips), 0, 0.5, 1, 1.5
    # right x: 23.75, 24.5 (drawn at 23, dx flips), 23.75, 23, 22.25
    assert [c[0] for c in columns] == [0, 0, 0, 1, 1]
    assert [c[1] for c in columns] == [23, 23, 23, 23, 22]
    assert [s[0] for s in signs] == [1, 1, 1, 1, 1]
    assert [s[1] for s in signs] == [1, -1, -1, -1, -1]


def test_batched_random_starts_are_reproducible_and_in_range():
    def starts(seed):
        game = CatchBatch(500, generator=torch.Generator().manual_seed(seed))
        frames = game.reset()
        return frames, game.ball_x, game.dx, game.paddle_x

    frames, x, dx, paddle = starts(0)
    assert frames.shape == (500, 1, SIZE, SIZE) and frames.dtype == torch.float32
    assert all(torch.equal(a, b) for a, b in zip(starts(0), starts(0)))
    assert torch.equal(x, x.round()) and 0 <= x.min() and x.max() <= SIZE - 1
    assert dx.abs().max() <= 1 and dx.min() < -0.5 and dx.max() > 0.5
    assert 0 <= paddle.min() and paddle.max() == SIZE - 2


def test_gymnasium_env_batched_twin_and_oracle_agree():
    """64 seeded games, half with random actions, half chasing the ball: identical frames and rewards every step."""
    seeds = range(64)
    envs = [Catch() for _ in seeds]
    starts = [env.reset(seed=seed) for env, seed in zip(envs, seeds)]
    infos = [info for _, info in starts]
    twin = CatchBatch(len(envs), size=SIZE)
    twin_frames = twin.start(
        ball_x=[i["ball_x"] for i in infos], dx=[i["dx"] for i in infos], paddle_x=[i["paddle_x"] for i in infos]
    )
    states = [(0, np.float32(i["ball_x"]), np.float32(i["dx"]), i["paddle_x"]) for i in infos]
    dx0 = twin.dx.clone()
    rng = np.random.default_rng(0)
    bounced = torch.zeros(len(envs), dtype=torch.bool)
    for t in range(1, SIZE):
        for k, (obs, _) in enumerate(starts):
            assert np.array_equal(obs[:, :, 0], 255 * oracle_frame(states[k], SIZE))
            assert np.array_equal(twin.image()[k], obs)
        actions = [
            chase(oracle_column(s[1], SIZE), s[3]) if k % 2 else int(rng.integers(0, 3)) for k, s in enumerate(states)
        ]
        results = [env.step(a) for env, a in zip(envs, actions)]
        states = [oracle_step(s, a, SIZE) for s, a in zip(states, actions)]
        twin_frames, twin_reward, done = twin.step(torch.tensor(actions))
        bounced |= torch.sign(twin.dx) != torch.sign(dx0)
        rewards = [r[1] for r in results]
        assert twin_reward.tolist() == rewards
        assert all(r[2] == done == (t == SIZE - 1) for r in results)
        starts = [(r[0], r[4]) for r in results]
    for k, (obs, _) in enumerate(starts):
        assert np.array_equal(obs[:, :, 0], 255 * oracle_frame(states[k], SIZE))
        assert np.array_equal(twin.image()[k], obs)
    caught = [oracle_column(s[1], SIZE) - s[3] in (0, 1) for s in states]
    assert rewards == [float(c) for c in caught]
    assert bounced.sum() >= 5 and 0 < sum(caught) < len(caught)


@pytest.mark.parametrize(
    "make, words",
    [
        (lambda: Catch(size=1), ["size", "1"]),
        (lambda: Catch(size=24.0), ["size", "24.0"]),
        (lambda: Catch(render_mode="human"), ["render_mode", "human"]),
        (lambda: CatchBatch(0), ["n", "0"]),
        (lambda: CatchVector(0), ["num_envs", "0"]),
        (lambda: CatchVector(2).reset(seed=[1, 2, 3]), ["seed", "3", "2"]),
        (lambda: CatchVector(2).reset(options={"reset_mask": np.array([True, False])}), ["reset_mask", "True"]),
        (lambda: CatchBatch(3, size=1), ["size", "1"]),
        (lambda: CatchBatch(3).start(ball_x=[0.0, 1.0], dx=[0.0] * 3, paddle_x=[0] * 3), ["ball_x", "(2,)"]),
    ],
)
def test_bad_settings_name_the_field_and_value(make, words):
    with pytest.raises(ValueError) as error:
        make()
    assert all(word in str(error.value) for word in words), str(error.value)


def test_bad_action_and_stepping_a_finished_game_are_errors():
    envs = CatchVector(2)
    with pytest.raises(RuntimeError, match="reset"):
        envs.step(np.array([1, 1]))
    envs.reset(seed=0)
    with pytest.raises(ValueError, match="actions"):
        envs.step(np.array([1, 3]))
    with pytest.raises(ValueError, match="actions"):
        envs.step(np.array([1]))

    env = Catch(size=3)
    env.reset(seed=0)
    with pytest.raises(ValueError, match="action"):
        env.step(3)
    env.step(STAY)
    env.step(STAY)
    with pytest.raises(RuntimeError, match="reset"):
        env.step(STAY)


def test_vector_env_plays_the_games_of_single_envs_seeded_s_plus_i_across_autoresets():
    """make_vec's vector env against Gymnasium's own SyncVectorEnv of N single envs, which reset(seed=s) seeds with
    s + i and which autoresets in the next-step mode: the same frames, rewards, ends and infos at every step, through
    two games, a reseed in the middle of the third, a fourth game from the new seeds and the start of a fifth."""
    n, seed = 6, 11
    envs = gymnasium.make_vec("ram/Catch-v0", num_envs=n, vectorization_mode="vector_entry_point")
    assert isinstance(envs, CatchVector) and envs.metadata["autoreset_mode"] == AutoresetMode.NEXT_STEP
    singles = SyncVectorEnv([Catch for _ in range(n)])
    assert singles.metadata["autoreset_mode"] == AutoresetMode.NEXT_STEP

    def same(ours, theirs):
        assert len(ours) == len(theirs)
        for a, b in zip(ours[:-1], theirs[:-1]):  # observations, then rewards, terminations, truncations on a step
            assert a.dtype == b.dtype and np.array_equal(a, b)
        assert ours[-1].keys() == theirs[-1].keys()
        assert all(np.array_equal(ours[-1][k], theirs[-1][k]) for k in ours[-1])

    rng = np.random.default_rng(0)
    out = envs.reset(seed=seed)
    same(out, singles.reset(seed=seed))
    over, starts, final_rewards = False, 0, []
    for t in range(3 * SIZE + 10):
        if t == 2 * SIZE + 5:  # reseed mid-game: both start over from the new seeds
            out = envs.reset(seed=seed + 100)
            same(out, singles.reset(seed=seed + 100))
        info = out[-1]
        columns = np.clip(info["ball_x"], 0, SIZE - 1).astype(int)
        actions = np.array([chase(c, p) if k % 2 else rng.integers(0, 3)
                            for k, (c, p) in enumerate(zip(columns, info["paddle_x"]))])
        out = envs.step(actions)
        same(out, singles.step(actions))
        _, reward, terminated, _, info = out
        if over:  # the step after the end ignores the moves and starts new games
            starts += 1
            assert (info["ball_row"] == 0).all() and not reward.any() and not terminated.any()
        over = terminated.all()
        if over:
            final_rewards.append(reward)
    assert starts == len(final_rewards) == 3
    assert 0 < np.sum(final_rewards) < 3 * n  # balls caught and balls missed
