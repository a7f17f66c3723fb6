"""Catch (Mnih et al. 2014, section 4.2): a ball falls down a binary size x size screen; catch it with a paddle.

The ball is one pixel. It starts in row 0 at a random column and falls one row per step at a random angle theta in
[45, 135] degrees, moving sideways by dx = cos(theta) / cos(45 deg) (so |dx| <= 1). When it leaves the screen sideways
it bounces. The paddle is two pixels wide in the bottom row and starts at a random column in 0 .. size - 2. Each step
it moves one pixel (0 = left, 1 = stay, 2 = right), clamped to the screen. After size - 1 steps the ball is in the
bottom row and the game ends: reward 1 if the paddle is under the ball, else 0. Every earlier reward is 0.

The rules follow catch.py of samrudhdhirangrej/Recurrent-Model-of-Visual-Attention (seed 002), which played the game
for the paper's Catch experiment. They are written once, in `CatchBatch` (N games as tensors). The Gymnasium env
`Catch` is one such game whose starts are drawn from its own `np_random`; the Gymnasium vector env `CatchVector` is N
of them stepped together in one `CatchBatch`, game i drawing its starts from its own generator. Both show the frame as
the RL ecosystem expects an image (`CatchBatch.image`).
"""

from __future__ import annotations

import math

import gymnasium
import numpy as np
import torch
from gymnasium import spaces
from gymnasium.utils import seeding
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space


def fall_dx(angle: torch.Tensor) -> torch.Tensor:
    """Sideways move per step [N] of balls falling at `angle` [N] degrees: 1 at 45, 0 at 90, -1 at 135."""
    return torch.cos(torch.deg2rad(angle)) / math.cos(math.radians(45))


def draw_starts(rngs: list[np.random.Generator], size: int) -> dict[str, torch.Tensor]:
    """The starts of len(rngs) games, game i's from rngs[i] alone: ball_x [N] and dx [N] float32, paddle_x [N] int64,
    the arguments of `CatchBatch.start`. The ball's column is uniform in 0 .. size - 1, its angle in [45, 135) degrees,
    the paddle's column in 0 .. size - 2, all three from one rng.random(3) per game: a third of the cost of three calls
    (integers, uniform, integers), which would dominate the vector env's resets."""
    u = np.stack([rng.random(3) for rng in rngs])  # [N, 3]
    return {
        "ball_x": torch.from_numpy(np.floor(u[:, 0] * size)).float(),
        "dx": fall_dx(torch.from_numpy(45 + 90 * u[:, 1]).float()),
        "paddle_x": torch.from_numpy(np.floor(u[:, 2] * (size - 1))).long(),
    }


def image_space(size: int) -> spaces.Box:
    """The observation space of one game: a (size, size, 1) uint8 image in [0, 255]."""
    return spaces.Box(0, 255, (size, size, 1), np.uint8)


def _check_size(size: int) -> None:
    if isinstance(size, bool) or not isinstance(size, int) or size < 2:
        raise ValueError(f"size must be an int >= 2 (the paddle is 2 pixels wide), got {size!r}")


MOVES = ("left", "stay", "right")
"""A move's name, by its index."""


class CatchBatch:
    """N games of Catch at once, their state as tensors on `device`; the caller loops over the `steps` moves.

    State: `row` (int, the ball's row, the same for every game since they start together), `ball_x` [N] float32
    (not clamped: see `step`), `dx` [N] float32, `paddle_x` [N] int64 (the paddle's left pixel), and `reward` [N],
    the rewards `act` has collected since the start. Construction draws
    nothing: call reset() (random starts) or start() (given ones) first.
    """

    def __init__(
        self,
        n: int,
        *,
        size: int = 24,
        generator: torch.Generator | None = None,
        device: torch.device | str | None = None,
    ):
        _check_size(size)
        if n < 1:
            raise ValueError(f"n must be >= 1, got {n}")
        self.n, self.size = n, size
        self.steps = size - 1  # moves per game: the ball falls from row 0 to the bottom row
        self.generator = generator
        self.device = torch.device("cpu" if device is None else device)
        self._games = torch.arange(n, device=self.device)
        self.row = self.steps  # no game yet: reset() or start() begins one

    def reset(self) -> torch.Tensor:
        """Start N new games at random (from `generator`) and return their first frames [N, 1, size, size]."""
        # draw where the generator lives (a CUDA generator cannot fill CPU tensors), then move to the device
        draw = {"generator": self.generator, "device": "cpu" if self.generator is None else self.generator.device}
        ball_x = torch.randint(0, self.size, (self.n,), **draw).float()
        angle = 45 + 90 * torch.rand(self.n, **draw)
        paddle_x = torch.randint(0, self.size - 1, (self.n,), **draw)
        return self.start(ball_x=ball_x, dx=fall_dx(angle), paddle_x=paddle_x)

    def start(self, *, ball_x, dx, paddle_x) -> torch.Tensor:
        """Start N games from given states, ball_x [N] and dx [N] (floats), paddle_x [N] (ints), with the ball in
        row 0; return their first frames [N, 1, size, size]."""
        state = {
            "ball_x": torch.as_tensor(ball_x, dtype=torch.float32, device=self.device),
            "dx": torch.as_tensor(dx, dtype=torch.float32, device=self.device),
            "paddle_x": torch.as_tensor(paddle_x, dtype=torch.int64, device=self.device),
        }
        for name, value in state.items():
            if tuple(value.shape) != (self.n,):
                raise ValueError(f"{name} has shape {tuple(value.shape)}, expected ({self.n},)")
        self.row = 0
        self.ball_x, self.dx, self.paddle_x = state.values()
        self.reward = torch.zeros(self.n, device=self.device)
        return self.observe()

    def ball_column(self) -> torch.Tensor:
        """[N] int64: the pixel column the ball is drawn (and caught) in."""
        # seed 002: x clamped to the screen, then truncated (floor, as it is then >= 0)
        return self.ball_x.clamp(0, self.size - 1).long()

    def observe(self) -> torch.Tensor:
        """The current frames [N, 1, size, size] float32: 1 at the ball and the paddle's two pixels, else 0."""
        return self._draw(torch.float32, 1)

    def image(self) -> np.ndarray:
        """The current frames as images [N, size, size, 1] uint8, 255 at the ball and the paddle, else 0, on the CPU:
        channels last and 0-255, the convention of Atari envs, so that stable-baselines3 treats them as images
        (normalised by 1/255). What the Gymnasium envs observe."""
        return self._draw(torch.uint8, 255).movedim(1, -1).cpu().numpy()

    def _draw(self, dtype: torch.dtype, on: int) -> torch.Tensor:
        """[N, 1, size, size] of dtype: `on` at the ball and the paddle's two pixels, else 0. Drawn in the dtype the
        caller wants, as a float frame cast to uint8 would cost the vector env most of its step."""
        frames = torch.zeros(self.n, 1, self.size, self.size, dtype=dtype, device=self.device)
        frames[self._games, 0, self.row, self.ball_column()] = on
        frames[self._games, 0, -1, self.paddle_x] = on
        frames[self._games, 0, -1, self.paddle_x + 1] = on
        return frames

    @property
    def over(self) -> bool:
        """Whether the games have ended (the ball is in the bottom row): moving is an error until reset or start."""
        return self.row == self.steps

    def step(self, actions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, bool]:
        """Move every game once. actions [N] int64 in {0 left, 1 stay, 2 right} (not checked here: no host sync).

        Returns (frames [N, 1, size, size], reward [N] float32, done). Reward is 0 until the last step, where it is
        1 for each game whose paddle is under the ball. Stepping after done is an error: call reset or start.
        """
        reward = self.move(actions)
        return self.observe(), reward, self.over

    def act(self, moves: torch.Tensor) -> None:
        """The episode loop's side of a world (`ram.model.RAM.play`): move, adding the rewards to `reward` [N]. The
        loop reads the next frame with observe(), so none is drawn here."""
        self.reward = self.reward + self.move(moves)

    def move(self, actions: torch.Tensor) -> torch.Tensor:
        """The rules of one step, without drawing a frame: the ball falls and bounces, the paddle moves. Returns the
        rewards [N], as `step` does; the Gymnasium envs draw their images themselves."""
        if self.over:
            raise RuntimeError("the games are over: call reset() or start() before stepping again")
        if tuple(actions.shape) != (self.n,):
            raise ValueError(f"actions has shape {tuple(actions.shape)}, expected ({self.n},)")
        self.row += 1
        self.ball_x = self.ball_x + self.dx
        # seed 002 bounces by flipping dx once x has left [0, size) but leaves x itself outside; it is only drawn
        # clamped. As |dx| <= 1 the next step brings x back to where it was (up to rounding).
        off_screen = (self.ball_x < 0) | (self.ball_x >= self.size)
        self.dx = torch.where(off_screen, -self.dx, self.dx)
        self.paddle_x = (self.paddle_x + actions - 1).clamp(0, self.size - 2)
        if self.row < self.steps:
            return torch.zeros(self.n, device=self.device)
        column = self.ball_column()
        return ((column == self.paddle_x) | (column == self.paddle_x + 1)).float()


class Catch(gymnasium.Env):
    """One game of Catch as a Gymnasium env: observation the frame as an image (size, size, 1) uint8, 255 at the ball
    and the paddle, else 0 (`CatchBatch.image`); actions Discrete(3) (0 left, 1 stay, 2 right). info carries the state:
    ball_row, ball_x, dx, paddle_x.

    zoom > 1 shows each cell as zoom x zoom pixels, (size * zoom, size * zoom, 1): the same game for a convolutional
    agent whose first layers need a larger image (stable-baselines3's CnnPolicy wants at least 36x36: zoom=2)."""

    metadata = {"render_modes": ["rgb_array"], "render_fps": 8}
    render_scale = 8  # pixels per cell in render(): a 24x24 frame is too small to see

    def __init__(self, *, size: int = 24, render_mode: str | None = None, zoom: int = 1):
        _check_size(size)
        if isinstance(zoom, bool) or not isinstance(zoom, int) or zoom < 1:
            raise ValueError(f"zoom must be an int >= 1 (pixels per cell), got {zoom!r}")
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(f"render_mode must be None or one of {self.metadata['render_modes']}, got {render_mode!r}")
        self.size, self.render_mode, self.zoom = size, render_mode, zoom
        self.observation_space = image_space(size * zoom)
        self.action_space = spaces.Discrete(3)
        self._game = CatchBatch(1, size=size)  # the rules; reset() starts it from draws of self.np_random

    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[np.ndarray, dict]:
        super().reset(seed=seed)
        self._game.start(**draw_starts([self.np_random], self.size))
        return self._observe(), self._info()

    def step(self, action) -> tuple[np.ndarray, float, bool, bool, dict]:
        if not self.action_space.contains(action):
            raise ValueError(f"action must be 0 (left), 1 (stay) or 2 (right), got {action!r}")
        reward = self._game.move(torch.tensor([int(action)]))
        return self._observe(), float(reward[0]), self._game.over, False, self._info()

    def _observe(self) -> np.ndarray:
        image = self._game.image()[0]  # (size, size, 1)
        return image if self.zoom == 1 else image.repeat(self.zoom, axis=0).repeat(self.zoom, axis=1)

    def render(self) -> np.ndarray | None:
        """(size * 8, size * 8, 3) uint8, white ball and paddle on black, when render_mode is "rgb_array"."""
        if self.render_mode is None:
            return None
        gray = self._game.image()[0, :, :, 0]
        big = gray.repeat(self.render_scale, axis=0).repeat(self.render_scale, axis=1)
        return np.stack([big, big, big], axis=-1)

    def _info(self) -> dict:
        game = self._game
        return {
            "ball_row": game.row,
            "ball_x": float(game.ball_x[0]),
            "dx": float(game.dx[0]),
            "paddle_x": int(game.paddle_x[0]),
        }


class CatchVector(VectorEnv):
    """num_envs games of Catch as one Gymnasium vector env, stepped together in one `CatchBatch`: what
    `gymnasium.make_vec("ram/Catch-v0", num_envs=N)` builds (vectorization_mode "vector_entry_point", the default once
    registered). Observations [N, size, size, 1] uint8, as `Catch` gives them; actions [N] in {0, 1, 2}; infos the
    state arrays of `Catch`'s info, each with its `_name` mask, as SyncVectorEnv gathers them.

    Autoreset is Gymnasium's next-step mode (`AutoresetMode.NEXT_STEP`, SyncVectorEnv's default): the step after a
    game ends ignores its action and returns the first frame of a new game with reward 0, not terminated. Every game
    lasts size - 1 steps, so all N end on the same step and start again together; a reset of some games only
    (options["reset_mask"]) has nothing to do and is refused.

    Seeding follows SyncVectorEnv: reset(seed=s) seeds game i's generator with s + i (a list seeds each game with its
    own), and game i draws every later start from it, so game i plays exactly the games of a `Catch` reset with seed
    s + i and then reset without one.
    """

    metadata = {"autoreset_mode": AutoresetMode.NEXT_STEP}

    def __init__(self, num_envs: int, *, size: int = 24):
        _check_size(size)
        if isinstance(num_envs, bool) or not isinstance(num_envs, int) or num_envs < 1:
            raise ValueError(f"num_envs must be an int >= 1, got {num_envs!r}")
        self.num_envs, self.size = num_envs, size
        self.single_observation_space = image_space(size)
        self.single_action_space = spaces.Discrete(3)
        self.observation_space = batch_space(self.single_observation_space, num_envs)
        self.action_space = batch_space(self.single_action_space, num_envs)
        self._games = CatchBatch(num_envs, size=size)
        self._rngs: list[np.random.Generator | None] = [None] * num_envs  # game i's, made by the first reset

    def reset(self, *, seed: int | list[int | None] | None = None, options: dict | None = None):
        if options and "reset_mask" in options:
            raise ValueError(f"options['reset_mask'] = {options['reset_mask']!r}: the games start and end together "
                             "(each lasts size - 1 steps), so they are only reset all at once")
        if seed is None:
            seeds = [None] * self.num_envs
        else:
            seeds = [seed + i for i in range(self.num_envs)] if isinstance(seed, int) else list(seed)
        if len(seeds) != self.num_envs:
            raise ValueError(f"seed has {len(seeds)} seeds, expected one per game ({self.num_envs})")
        for i, game_seed in enumerate(seeds):
            if game_seed is not None or self._rngs[i] is None:
                self._rngs[i], _ = seeding.np_random(game_seed)
        return self._start()

    def step(self, actions):
        actions = np.asarray(actions)
        if not self.action_space.contains(actions):
            raise ValueError(f"actions must be {self.num_envs} moves, each 0 (left), 1 (stay) or 2 (right), "
                             f"got {actions!r}")
        if self._rngs[0] is None:
            raise RuntimeError("call reset() before step(): the games have not started")
        n, games = self.num_envs, self._games
        if games.over:  # the last step ended the games: this one starts the next ones
            obs, info = self._start()
            return obs, np.zeros(n), np.zeros(n, bool), np.zeros(n, bool), info
        reward = games.move(torch.tensor(actions, dtype=torch.int64))
        return games.image(), reward.double().numpy(), np.full(n, games.over), np.zeros(n, bool), self._info()

    def _start(self) -> tuple[np.ndarray, dict]:
        self._games.start(**draw_starts(self._rngs, self.size))
        return self._games.image(), self._info()

    def _info(self) -> dict:
        g = self._games
        info = {"ball_row": np.full(self.num_envs, g.row), "ball_x": g.ball_x.double().numpy(),
                "dx": g.dx.double().numpy(), "paddle_x": g.paddle_x.numpy().copy()}
        return {**info, **{f"_{name}": np.ones(self.num_envs, bool) for name in info}}
