"""An outside baseline on Catch: stable-baselines3's PPO trained on `ram/Catch-v0`, tested on the RAM agent's games.

    pip install -e '.[rl]'
    python examples/catch_sb3.py                  # the results row: writes results/catch-sb3-ppo.json
    ram results                                   # the README table, with the row beside the RAM agent's

The agent is SB3's PPO with all of SB3's default hyperparameters and its `MlpPolicy` (two tanh layers of 64 for the
policy and two for the value, on the whole 24x24 screen, which SB3 scales by 1/255 as the observation is an image),
trained on 8 single envs in SB3's own DummyVecEnv, as a new user would set it up: an anchor no one here tuned. Not
`CnnPolicy`: its default NatureCNN's 8x8 stride-4 and 4x4 stride-2 convolutions shrink 24x24 to 1x1 before its 3x3 one,
which is the one warning SB3's checker gives on this env ("the minimal resolution for an image is 36x36").

The test is the RAM agent's: the 1000 games of `ram eval --pretrained catch --seed 0`, drawn by `ram.tasks.catch_games`
and played in CatchBatch, on the images the env gives (`CatchBatch.image`). The headline follows the policy's modes
(`predict(deterministic=True)`), as the RAM agent's does; the second rate samples its moves, torch seeded with the test
seed as `ram eval` seeds its sampled games. Training runs on --threads torch threads (1 for the results row, beside
other work on the 2-core machine); the games trained on are the episodes SB3's Monitor counted.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

import stable_baselines3
import torch
import tyro
from stable_baselines3 import PPO
from stable_baselines3.common.env_util import make_vec_env

from ram import presets
from ram.data import TEST
from ram.speed import machine
from ram.tasks import catch_games, seeded

CATCH = presets.get("catch")
GAME_STEPS = CATCH.task.canvas - 1  # a game lasts size - 1 moves


@dataclass
class Args:
    games: int = 64_000
    """Games to train on (23 steps each); PPO collects whole rollouts of n_envs x n_steps steps, so it plays up to one
    rollout more. 64,000 is the results row's: 16 minutes on 1 thread of an AMD EPYC beside one other run (about 1,600
    steps/s); 55 minutes on session 21's machine at a load average of about 11."""
    n_envs: int = 8
    """Single envs PPO collects its rollouts from."""
    n_steps: int = 2048
    """Steps per env per rollout (SB3's default; the smoke test takes fewer)."""
    seed: int = 0
    """Seeds PPO's weights and sampling, and the training envs (env i with seed + i)."""
    test_games: int = 1000
    test_seed: int = 0
    """The test games are those of `ram eval --pretrained catch --episodes TEST_GAMES --seed TEST_SEED`."""
    threads: int = 1
    """torch threads, for training and the test."""
    verbose: int = 0
    """SB3's log: 1 prints its table after every rollout."""
    out_file: Path = Path("results/catch-sb3-ppo.json")
    """The results file, a row of `ram results`'s table."""


def catch_rate(model: PPO, *, games: int, seed: int, deterministic: bool) -> float:
    """Balls caught (%) by the policy in the test games of (games, seed), batches of the preset's eval size as `ram
    eval` plays them."""
    caught = 0
    for world in catch_games(games=games, size=CATCH.task.canvas, seed=seed, stream=TEST,
                             batch_size=CATCH.train.eval_batch_size):
        while not world.over:
            moves, _ = model.predict(world.image(), deterministic=deterministic)  # [n] for images [n, 24, 24, 1]
            world.act(torch.as_tensor(moves))
        caught += int(world.reward.sum())
    return 100.0 * caught / games


def main(args: Args) -> dict:
    torch.set_num_threads(args.threads)
    envs = make_vec_env("ram/Catch-v0", n_envs=args.n_envs, seed=args.seed, env_kwargs={"size": CATCH.task.canvas})
    model = PPO("MlpPolicy", envs, n_steps=args.n_steps, seed=args.seed, device="cpu", verbose=args.verbose)
    start = time.perf_counter()
    model.learn(total_timesteps=args.games * GAME_STEPS)
    train_seconds = time.perf_counter() - start
    train_games = sum(len(rewards) for rewards in envs.env_method("get_episode_rewards"))

    start = time.perf_counter()
    modes = catch_rate(model, games=args.test_games, seed=args.test_seed, deterministic=True)
    with seeded(args.test_seed):
        sampled = catch_rate(model, games=args.test_games, seed=args.test_seed, deterministic=False)
    test_seconds = time.perf_counter() - start

    result = {
        "catch_rate": round(modes, 4), "error": round(100.0 - modes, 4), "n": args.test_games,
        "protocol": "one game per ball along the policy's modes (predict(deterministic=True))",
        "catch_rate_sampled": round(sampled, 4), "preset": "catch", "model": "sb3-ppo", "task": "catch",
        "canvas": CATCH.task.canvas, "test_seed": args.test_seed, "split": "test",
        "library": f"stable-baselines3 {stable_baselines3.__version__}, torch {torch.__version__}",
        "agent": "PPO, MlpPolicy, SB3's default hyperparameters", "n_envs": args.n_envs, "n_steps": args.n_steps,
        "seed": args.seed, "threads": args.threads, "train_games": train_games, "train_steps": model.num_timesteps,
        "train_seconds": round(train_seconds, 1), "precision": "fp32", "machine": machine(torch.device("cpu")),
    }
    args.out_file.parent.mkdir(parents=True, exist_ok=True)
    args.out_file.write_text(json.dumps(result, indent=2) + "\n")
    print(f"PPO (stable-baselines3 {stable_baselines3.__version__}, MlpPolicy) trained on {train_games:,} games "
          f"({model.num_timesteps:,} steps) in {train_seconds / 60:.1f} min on {args.threads} thread(s)")
    print(f"{args.test_games} test games (seed {args.test_seed}): caught {modes:.1f}% along the policy's modes, "
          f"{sampled:.1f}% sampled ({test_seconds:.0f} s); wrote {args.out_file}")
    return result


if __name__ == "__main__":
    main(tyro.cli(Args))
