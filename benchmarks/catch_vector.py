"""Games of Catch per second: the vector env on CatchBatch against Gymnasium's SyncVectorEnv of single envs.

    python benchmarks/catch_vector.py                       # N = 16, 256, 1024 games at once, 1 thread
    python benchmarks/catch_vector.py --envs 8 64 --games-per-env 20 --repeats 5

Both are built by `gymnasium.make_vec("ram/Catch-v0", num_envs=N, vectorization_mode=...)` ("vector_entry_point" and
"sync"), reset with seed 0 and stepped with the same uniformly random moves, drawn before the clock starts. A game is
24 vector steps in Gymnasium's next-step autoreset: 23 moves, then the step that starts the next game. Each number is
the median of --repeats runs; the load average of the machine is printed beside them, as other processes share it.
"""

from __future__ import annotations

import os
import statistics
import time
from dataclasses import dataclass, field

import gymnasium
import numpy as np
import torch
import tyro

import ram  # noqa: F401  (registers ram/Catch-v0)

SIZE = 24
STEPS_PER_GAME = SIZE  # 23 moves and the autoreset step


@dataclass
class Args:
    envs: list[int] = field(default_factory=lambda: [16, 256, 1024])
    """Games played at once (num_envs), one measurement each."""
    games_per_env: int = 10
    """Games each of the N envs plays per run."""
    repeats: int = 3
    """Runs per measurement; the median is printed."""
    threads: int = 1
    """torch threads (CatchBatch's ops)."""


def games_per_second(mode: str, n: int, games_per_env: int) -> float:
    """Games per second of one run: n envs, each playing games_per_env games."""
    envs = gymnasium.make_vec("ram/Catch-v0", num_envs=n, vectorization_mode=mode)
    steps = games_per_env * STEPS_PER_GAME
    moves = np.random.default_rng(0).integers(0, 3, (steps, n))
    envs.reset(seed=0)
    start = time.perf_counter()
    for actions in moves:
        envs.step(actions)
    seconds = time.perf_counter() - start
    envs.close()
    return n * games_per_env / seconds


def main(args: Args) -> None:
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, gymnasium {gymnasium.__version__}, {args.threads} thread(s), "
          f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores\n")
    print("| N | CatchVector games/s | SyncVectorEnv games/s | speed-up | CatchVector steps/s | "
          "SyncVectorEnv steps/s |")
    print("|---|---|---|---|---|---|")
    for n in args.envs:
        ours, theirs = (statistics.median(games_per_second(mode, n, args.games_per_env) for _ in range(args.repeats))
                        for mode in ("vector_entry_point", "sync"))
        print(f"| {n} | {ours:,.0f} | {theirs:,.0f} | {ours / theirs:.0f}x | {ours * STEPS_PER_GAME:,.0f} | "
              f"{theirs * STEPS_PER_GAME:,.0f} |", flush=True)
    print(f"\nload average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main(tyro.cli(Args))
