"""recurrent-attention: the Recurrent Attention Model of Mnih, Heess, Graves and Kavukcuoglu (NIPS 2014)."""

from . import (
           envs,  # registers ram/Catch-v0
           tasks,  # registers the tasks with the config (ram.config.register_task)
)
from .api import Model, Prediction, load
from .config import ModelConfig, RunConfig, TaskConfig, TrainConfig
from .model import RAM, Episode
from .models import build_model
from .sensor import glimpse

__version__ = "0.1.0"
__all__ = ["RAM", "Episode", "Model", "ModelConfig", "Prediction", "RunConfig", "TaskConfig", "TrainConfig", "build_model",
           "glimpse", "load"]
