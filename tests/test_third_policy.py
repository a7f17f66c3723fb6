"""A third location policy is one module and one registered class (tests/toy_policy.py): the config's checks and
choices, the model, the trainer, `ram eval` and `ram viz` take it without an edit anywhere else."""

import json
import typing

import pytest
import toy_policy
import toy_task  # registers the squares task the grid is trained on
import torch

from ram.cli import main
from ram import config
from ram.config import ConfigError, ModelConfig, PolicyConfig, RunConfig, TrainConfig
from ram.flags import parse
from ram.model import RAM
from ram.policies import POLICIES, GaussianConfig
from ram.train import fit


def grid_config(**policy) -> RunConfig:
    return RunConfig(
        preset="squares",
        task=toy_task.SquaresConfig(train_size=512),
        model=ModelConfig(image_size=12, classes=4, glimpses=4, patch_size=4, scales=2, hidden=32, what_size=16,
                          where_size=16, glimpse_size=32),
        policy=toy_policy.GridConfig(**policy),
        train=TrainConfig(epochs=2, batch_size=64, lr=3e-3, eval_mc_samples=0),
    ).validate()


def test_the_registry_finds_the_new_policy_and_its_checks_run():
    assert POLICIES["grid"] is toy_policy.GridPolicy
    assert "grid" in typing.get_args(config.PolicyName)  # the command line's choices
    with pytest.raises(ConfigError, match="cells = 13: must be in 1..12, the image side"):
        grid_config(cells=13)
    with pytest.raises(ConfigError, match="policy = 'spiral': must be one of gaussian, grid, saccade"):
        PolicyConfig.of({"kind": "spiral"})
    with pytest.raises(ConfigError, match="policy = 'grid': its settings are a GridConfig, not a GaussianConfig"):
        GaussianConfig(kind="grid").validate(ModelConfig())


def test_a_setting_of_another_policy_is_no_flag_of_the_run(capsys):
    with pytest.raises(SystemExit):
        parse(["--policy", "grid", "--std", "0.3"])  # std is the Gaussian policy's
    assert "--std" in capsys.readouterr().err
    cfg = parse(["--policy", "grid", "--cells", "3", "--glimpses", "9"]).config(progress=False)
    assert cfg.policy == toy_policy.GridConfig(cells=3) and cfg.model.glimpses == 9


def test_the_model_reads_the_grid_in_order():
    cfg = grid_config()
    model = RAM(cfg.model, cfg.policy)
    assert isinstance(model.policy, toy_policy.GridPolicy) and not model.fusable
    ep = model(torch.rand(3, 1, 12, 12))
    corners = [[-0.5, -0.5], [0.5, -0.5], [-0.5, 0.5], [0.5, 0.5]]  # (x, y) row by row
    assert ep.locations[0].tolist() == corners
    assert not ep.log_probs.any() and not ep.entropies.any()  # nothing decided, nothing reinforced


def test_a_new_policy_trains_evaluates_and_draws_through_the_one_trainer_and_cli(tmp_path, capsys):
    out = tmp_path / "run"
    result = fit(grid_config(), out, progress=False, threads=1)
    assert result["task"] == "squares" and result["n"] == 200 and result["error"] < 75  # chance is 75%
    assert main(["eval", "--checkpoint", str(out), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["error"] == result["error"]
    assert main(["viz", "--checkpoint", str(out), "--out", str(tmp_path / "pics"), "--n", "4"]) == 0
    assert (tmp_path / "pics" / "tracks.png").is_file()


def test_the_command_line_offers_the_new_policy(monkeypatch, capsys):
    monkeypatch.setenv("COLUMNS", "200")
    with pytest.raises(SystemExit):
        parse(["train", "--help"])
    assert "--policy {gaussian,saccade,grid}" in capsys.readouterr().out

