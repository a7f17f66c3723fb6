"""--precision auto: bf16 where the machine computes it natively, fp32 elsewhere, and a resumed run keeps its own."""

import dataclasses
import json

import pytest
import torch

from ram import presets, speed
from ram import train as train_module


@pytest.mark.parametrize("native", [True, False])
def test_auto_takes_bf16_only_where_it_is_native_and_an_explicit_choice_wins(monkeypatch, native):
    monkeypatch.setattr(speed, "native_bf16", lambda device: native)
    cpu = torch.device("cpu")
    assert speed.resolve_precision("auto", cpu) == ("bf16" if native else "fp32")
    assert speed.resolve_precision("fp32", cpu) == "fp32" and speed.resolve_precision("bf16", cpu) == "bf16"


def test_the_projects_presets_default_to_auto_and_the_founders_recipes_as_written_to_float32():
    for name, (cfg, _) in presets.PRESETS.items():
        assert cfg.train.precision == ("fp32" if name.endswith(("-000", "-002")) else "auto"), name


def test_a_resumed_run_keeps_the_arithmetic_it_started_in(tmp_path, monkeypatch):
    """A run started in bf16 on a machine that has it, resumed on one that does not, stays bf16 (its checkpoint and
    its config say so); a new run there takes fp32."""
    cfg = presets.get("mnist")
    started = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, precision="bf16"))
    (tmp_path / "config.json").write_text(json.dumps(started.to_dict()))
    monkeypatch.setattr(train_module, "resolve_precision", lambda precision, device: "fp32")
    cpu = torch.device("cpu")
    assert train_module._arithmetic(cfg, tmp_path, True, cpu).train.precision == "bf16"
    assert train_module._arithmetic(cfg, tmp_path, False, cpu).train.precision == "fp32"
    explicit = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, precision="fp32"))
    assert train_module._arithmetic(explicit, tmp_path, True, cpu).train.precision == "fp32"


def test_machine_names_the_cpu_flags_that_set_the_speed():
    info = speed.machine(torch.device("cpu"))
    assert set(info["cpu_flags"]) <= set(speed.FLAGS) and info["threads"] == torch.get_num_threads()
    assert info["device"] == "cpu"
