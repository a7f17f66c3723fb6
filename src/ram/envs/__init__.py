"""Environments: the world protocol the episode loop plays in, still images, and Catch, as a Gymnasium env
("ram/Catch-v0"), as a Gymnasium vector env on its batched torch twin (`gymnasium.make_vec("ram/Catch-v0",
num_envs=N)`), and as that twin."""

import gymnasium

from .catch import MOVES, Catch, CatchBatch, CatchVector
from .world import Recorder, Recording, Still, World

# a reload of this module must not register twice (gymnasium warns on overriding an id)
if "ram/Catch-v0" not in gymnasium.registry:
    gymnasium.register(id="ram/Catch-v0", entry_point="ram.envs.catch:Catch",
                       vector_entry_point="ram.envs.catch:CatchVector")

__all__ = ["MOVES", "Catch", "CatchBatch", "CatchVector", "Recorder", "Recording", "Still", "World"]
