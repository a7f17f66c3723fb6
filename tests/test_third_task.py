"""A third task is one module and one registered class (tests/toy_task.py): the trainer, `ram eval`, `ram viz` and
the config's checks take it without an edit anywhere else."""

import json
from dataclasses import replace

import pytest
import toy_task

from ram.cli import main
from ram.config import (
    ConfigError,
    ModelConfig,
    RunConfig,
    TrainConfig,
    task_of,
)
from ram.policies import GaussianConfig
from ram.train import fit


def toy_config(**train) -> RunConfig:
    return RunConfig(
        preset="squares",
        task=toy_task.SquaresConfig(train_size=512),
        model=ModelConfig(image_size=12, classes=4, glimpses=2, patch_size=4, scales=2, hidden=32, what_size=16,
                          where_size=16, glimpse_size=32),
        policy=GaussianConfig(std=0.2),
        train=TrainConfig(**{"epochs": 2, "batch_size": 64, "lr": 3e-3, "eval_mc_samples": 0, **train}),
    ).validate()


def test_the_registry_finds_the_new_task_and_its_checks_run():
    assert task_of("squares") is toy_task.Squares
    cfg = toy_config()
    assert cfg.labels == toy_task.QUADRANTS and cfg.task.name == "squares"
    with pytest.raises(ConfigError, match="canvas = 16: the squares are drawn on 12x12"):
        replace(cfg, task=replace(cfg.task, canvas=16), model=replace(cfg.model, image_size=16)).validate()
    with pytest.raises(ConfigError, match="dataset = 'circles': must be one of"):
        replace(cfg.task, dataset="circles").validate()


def test_a_new_task_trains_evaluates_and_draws_through_the_one_trainer_and_cli(tmp_path, capsys):
    out = tmp_path / "run"
    result = fit(toy_config(), out, progress=False, threads=1)
    assert result["task"] == "squares" and result["n"] == 200 and result["error"] < 75  # chance is 75%
    assert main(["eval", "--checkpoint", str(out), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["error"] == result["error"]
    assert main(["eval", "--checkpoint", str(out)]) == 0
    assert capsys.readouterr().out.startswith("squares: test error")
    assert main(["eval", "--checkpoint", str(out), "--episodes", "5"]) == 2
    assert "the squares are images, not games" in capsys.readouterr().err
    assert main(["viz", "--checkpoint", str(out), "--out", str(tmp_path / "pics"), "--n", "4"]) == 0
    assert (tmp_path / "pics" / "tracks.png").is_file()
