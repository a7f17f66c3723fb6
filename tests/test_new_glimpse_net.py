"""A fourth glimpse net is one module and one registered class (tests/toy_glimpse_net.py): the config's checks and
choices, the model, the trainer, `ram eval` and `ram viz` take it without an edit anywhere else."""

import json

import pytest
import toy_glimpse_net
import toy_task  # registers the squares task it is trained on

from ram.cli import main
from ram.config import ConfigError, ModelConfig, RunConfig, TrainConfig
from ram.flags import parse
from ram.model import RAM
from ram.nets import GLIMPSE_NETS
from ram.train import fit


def brightness_config() -> RunConfig:
    return RunConfig(
        preset="squares",
        task=toy_task.SquaresConfig(train_size=512),
        model=ModelConfig(image_size=12, classes=4, glimpses=4, patch_size=4, scales=2, hidden=32, what_size=16,
                          where_size=16, glimpse_size=32, glimpse_net="brightness"),
        train=TrainConfig(epochs=2, batch_size=64, lr=3e-3, eval_mc_samples=0),
    ).validate()


def test_the_registry_and_the_command_line_find_the_new_glimpse_net(monkeypatch, capsys):
    assert GLIMPSE_NETS["brightness"] is toy_glimpse_net.Brightness
    with pytest.raises(ConfigError, match="glimpse_net = 'x': must be 'ram', 'pixels', 'pixels\\+where' or 'brightness'"):
        ModelConfig(glimpse_net="x").validate()
    monkeypatch.setenv("COLUMNS", "200")
    with pytest.raises(SystemExit):
        parse(["train", "--help"])
    assert "--glimpse-net {ram,pixels,pixels+where,brightness}" in capsys.readouterr().out


def test_a_new_glimpse_net_trains_evaluates_and_draws_with_no_other_edit(tmp_path, capsys):
    cfg = brightness_config()
    model = RAM(cfg.model)
    assert model.core.linear.in_features == 32 + 32 and not model.fusable  # out_size + hidden
    out = tmp_path / "run"
    result = fit(cfg, out, progress=False, threads=1)
    assert result["task"] == "squares" and result["n"] == 200
    assert main(["eval", "--checkpoint", str(out), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["error"] == result["error"]
    assert main(["viz", "--checkpoint", str(out), "--out", str(tmp_path / "pics"), "--n", "4"]) == 0
    assert (tmp_path / "pics" / "tracks.png").is_file()
