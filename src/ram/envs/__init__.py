"""Environments: the world protocol the episode loop plays in, still images, and Catch, as a Gymnasium env
("ram/Catch-v0") and as a batched torch twin."""

import gymnasium

from .catch import MOVES, Catch, CatchBatch
from .world import Recorder, Recording, Still, World

# a reload of this module must not register twice (gymnasium warns on overriding an id)
if "ram/Catch-v0" not in gymnasium.registry:
    gymnasium.register(id="ram/Catch-v0", entry_point="ram.envs.catch:Catch")

__all__ = ["MOVES", "Catch", "CatchBatch", "Recorder", "Recording", "Still", "World"]
