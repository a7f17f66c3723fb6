"""Every bad setting is refused before any work starts, with a message naming the field and the value.

Through `ram.cli.main` (exit code 2, `ram CMD: error: FIELD = VALUE: why` on stderr, no traceback, no run folder), a
couple through a real `ram train` process, and every field of every config class directly.
"""

import dataclasses
import json
import math
import typing
from pathlib import Path

import pytest
import torch

from ram import checkpoint as ckpt
from ram import presets
from ram.cli import main
from ram.config import SECTIONS, ConfigError, ModelConfig, RunConfig
from ram.policies import SaccadeConfig
from ram.models import build_model
from ram.presets import PRESETS
from ram.train import _rng_state, make_optimizer

TRAIN = ["train", "--epochs", "1", "--glimpses", "2", "--no-progress"]

BAD_TRAIN_FLAGS = [
    (["--epochs", "-3"], "epochs = -3: must be >= 1"),
    (["--epochs", "0"], "epochs = 0: must be >= 1"),
    (["--glimpses", "0"], "glimpses = 0: must be >= 1"),
    (["--std", "-0.1"], "std = -0.1: must be a positive number"),
    (["--std", "inf"], "std = inf: must be a positive number"),
    (["--patch-size", "40"], "patch_size = 40: is larger than the 28x28 image"),
    (["--preset", "mnist-translated", "--patch-size", "61"], "patch_size = 61: is larger than the 60x60 image"),
    (["--preset", "mnist-translate"], f"preset = 'mnist-translate': unknown; valid presets are {', '.join(PRESETS)}"),
    (["--lr", "0"], "lr = 0.0: must be a positive number"),
    (["--lr", "nan"], "lr = nan: must be a positive number"),
    (["--lr", "-1e-3"], "lr = -0.001: must be a positive number"),
    (["--lr-min", "0.5"], "lr_min = 0.5: must be in [0, lr]"),
    (["--batch-size", "0"], "batch_size = 0: must be >= 1"),
    (["--mc-samples", "0"], "mc_samples = 0: must be >= 1"),
    (["--clip-grad", "-1"], "clip_grad = -1.0: must be >= 0"),
    (["--hidden", "0"], "hidden = 0: must be >= 1"),
    (["--what-size", "0"], "what_size = 0: must be >= 1"),
    (["--glimpse-size", "-3"], "glimpse_size = -3: must be >= 1"),
    (["--rl-weight", "-0.5"], "rl_weight = -0.5: must be >= 0"),
    (["--step-weight", "nan"], "step_weight = nan: must be >= 0"),
    (["--ema", "1"], "ema = 1.0: must be in [0, 1)"),
    (["--scales", "9"], "scales = 9: must be in 1..8"),
    (["--seed", "-1"], "seed = -1: must be in 0..2**63-1"),
    (["--seed", str(2**64)], f"seed = {2**64}: must be in 0..2**63-1"),
    (["--train-size", "-5"], "train_size = -5: must be in 0..50000"),
    (["--train-size", "50001"], "train_size = 50001: must be in 0..50000"),
    (["--threads", "0"], "threads = 0: must be > 0"),
    (["--threads", "-2"], "threads = -2: must be > 0"),
    (["--checkpoint-every", "0"], "checkpoint_every = 0.0: must be > 0"),
    (["--checkpoint-every", "-1"], "checkpoint_every = -1.0: must be > 0"),
    (["--checkpoint-every", "nan"], "checkpoint_every = nan: must be > 0"),
    (["--device", "tpu"], "device = 'tpu': not a device"),
    (["--device", "meta"], "device = 'meta': cannot train there"),
    (["--device", "cuda:99"], "device = 'cuda:99': "),
]


@pytest.fixture
def no_work(tmp_path, monkeypatch) -> Path:
    """Run from an empty folder; afterwards it must still be empty (no runs/, no --out folder)."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("RAM_DATA_DIR", str(tmp_path / "no-data-needed"))
    monkeypatch.setenv("RAM_MNIST_MIRRORS", "")
    yield tmp_path
    assert list(tmp_path.iterdir()) == [], "work started: files were written"


@pytest.mark.parametrize("flags,message", BAD_TRAIN_FLAGS, ids=[" ".join(f) for f, _ in BAD_TRAIN_FLAGS])
def test_bad_train_flag_is_refused_before_any_work(flags, message, no_work, capsys):
    for out in ([], ["--out", "run"]):  # the default run folder, and a named one
        assert main([*TRAIN, *flags, *out]) == 2
        err = capsys.readouterr().err
        assert err.startswith(f"ram train: error: {message}"), err
        assert err.count("\n") == 1 and "Traceback" not in err


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_cuda_without_cuda_is_refused(no_work, capsys):
    assert main([*TRAIN, "--device", "cuda"]) == 2
    assert "device = 'cuda': CUDA is not available on this machine" in capsys.readouterr().err


@pytest.mark.parametrize("flags", [["--epochs", "abc"], ["--lr", "fast"], ["--model", "transformer"], ["--bogus"]])
def test_unparsable_flag_exits_2(flags, no_work, capsys):
    with pytest.raises(SystemExit) as stop:
        main([*TRAIN, *flags])
    assert stop.value.code == 2
    assert flags[0] in capsys.readouterr().err


BAD_EVAL_FLAGS = [
    (["--batch-size", "0"], "batch_size = 0: must be > 0"),
    (["--mc-samples", "-1"], "mc_samples = -1: must be >= 0"),
    (["--seed", "-1"], "seed = -1: must be >= 0"),
    (["--device", "tpu"], "device = 'tpu': not a device"),
    ([], "checkpoint/pretrained: give exactly one of --checkpoint DIR or --pretrained NAME"),
    (["--checkpoint", "a", "--pretrained", "b"], "checkpoint/pretrained: give exactly one"),
    (["--checkpoint", "missing-run"], "checkpoint = 'missing-run': no such run folder"),
    (["--pretrained", "no-such-model"], "pretrained = 'no-such-model': unknown; shipped models are"),
]


@pytest.mark.parametrize("flags,message", BAD_EVAL_FLAGS, ids=[" ".join(f) or "none" for f, _ in BAD_EVAL_FLAGS])
def test_bad_eval_flag_is_refused(flags, message, no_work, capsys):
    assert main(["eval", *flags]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"ram eval: error: {message}") and "Traceback" not in err, err


def test_out_that_is_a_file_is_refused(tmp_path, capsys):
    (tmp_path / "run").write_text("not a folder")
    assert main([*TRAIN, "--out", str(tmp_path / "run")]) == 2
    assert f"out = '{tmp_path / 'run'}': exists and is not a folder" in capsys.readouterr().err


# ---- a run folder and a command that do not belong together -------------------------------------------------------


def cli_config(**train) -> RunConfig:
    """The config `ram train` builds from TRAIN (plus train overrides)."""
    return presets.resolve("mnist", model={"glimpses": 2}, train={"epochs": 1, **train})


def write_checkpoint(folder: Path, cfg: RunConfig, weights_of: RunConfig | None = None) -> None:
    """A last.pt as `ram train` writes it: its config's precision made concrete for this machine."""
    from dataclasses import replace

    from ram.speed import resolve_precision

    cfg = replace(cfg, train=replace(cfg.train, precision=resolve_precision(cfg.train.precision, torch.device("cpu"))))
    model = build_model((weights_of or cfg).model)
    ckpt.save_state(folder / "last.pt", {
        "config": cfg.to_dict(), "model": model.state_dict(), "optimizer": make_optimizer(model, cfg.train).state_dict(),
        "rng": _rng_state(), "loop": {"epoch": 0, "batch": 1, "step": 1, "best_val_error": math.inf, "history": [],
                                      "sums": None, "elapsed": 0.0},
    })


def test_resume_with_another_config_names_the_differences(tmp_path, capsys):
    folder = tmp_path / "run"
    folder.mkdir()
    write_checkpoint(folder, cli_config(lr=2e-3))
    before = (folder / "last.pt").read_bytes()

    assert main([*TRAIN, "--out", str(folder), "--resume", "--batch-size", "64"]) == 2

    err = capsys.readouterr().err
    assert f"--resume: the run in {folder} was made with another config (train.batch_size: 128 -> 64; " \
           "train.lr: 0.002 -> 0.001)" in err, err
    assert (folder / "last.pt").read_bytes() == before


def test_resume_of_a_run_killed_before_its_first_checkpoint_checks_config_json(tmp_path, capsys):
    folder = tmp_path / "run"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps(cli_config().to_dict()))
    assert main([*TRAIN, "--out", str(folder), "--resume", "--preset", "fashion"]) == 2
    assert "preset: 'mnist' -> 'fashion'; task.dataset: 'mnist' -> 'fashion'" in capsys.readouterr().err


def test_resume_with_weights_that_do_not_fit_the_config(tmp_path, capsys, real_data):
    folder = tmp_path / "run"
    folder.mkdir()
    write_checkpoint(folder, cli_config(), weights_of=presets.resolve("mnist-translated"))
    assert main([*TRAIN, "--out", str(folder), "--resume"]) == 2
    err = capsys.readouterr().err
    assert f"checkpoint {folder / 'last.pt'} does not fit this run: " in err and "size mismatch" in err, err


def test_a_folder_holding_a_run_needs_resume(tmp_path, capsys):
    folder = tmp_path / "run"
    folder.mkdir()
    write_checkpoint(folder, cli_config())
    assert main([*TRAIN, "--out", str(folder)]) == 2
    assert "already holds a run: pass --resume to continue it" in capsys.readouterr().err


def test_28x28_weights_in_a_60x60_run_folder_are_refused(tmp_path, capsys):
    folder = tmp_path / "run"
    small = presets.get("mnist")
    ckpt.export_model(folder, build_model(small.model), small)
    translated = presets.get("mnist-translated")
    (folder / "config.json").write_text(json.dumps(translated.to_dict()))  # the weights and config of two runs

    assert main(["eval", "--checkpoint", str(folder)]) == 2

    err = capsys.readouterr().err
    assert f"ram eval: error: weights {folder / 'model.safetensors'} (saved by a 'mnist' run) do not fit this model " \
           "(wrong shape: glimpse_net.what.weight [128, 64] in the file, [128, 432] in the model" in err, err
    assert "Traceback" not in err


@pytest.mark.parametrize(
    "config,message",
    [
        (b"\x80\x04not json", "is not a valid run config"),
        (b"[1, 2]", "not a recurrent-attention run config"),
        (json.dumps(RunConfig().to_dict() | {"train": {"epochs": "many"}}).encode(), "epochs = 'many': must be an integer"),
        (json.dumps(RunConfig().to_dict() | {"model": {"glimpses": 0}}).encode(), "glimpses = 0: must be >= 1"),
        # issue 61: a RecursionError traceback, and sizes that grew memory until the process was killed
        (b"[" * 100_000 + b"]" * 100_000, "is not a valid run config: its JSON is nested too deep"),
        (json.dumps(RunConfig().to_dict() | {"model": {"hidden": 10**6}}).encode(), "hidden = 1000000: must be <= "),
        (json.dumps(RunConfig().to_dict() | {"model": {"image_size": 10**6}}).encode(),
         "image_size = 1000000: must be <= 4,096"),
        (json.dumps(RunConfig().to_dict() | {"model": {"glimpses": 10**9}}).encode(),
         "glimpses = 1000000000: must be <= 1,000"),
    ],
)
def test_bad_config_json_in_a_run_folder_is_refused(config, message, tmp_path, capsys):
    folder = tmp_path / "run"
    ckpt.export_model(folder, build_model(ModelConfig()), RunConfig())
    (folder / "config.json").write_bytes(config)
    assert main(["eval", "--checkpoint", str(folder)]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err, err


# ---- every field of every config ------------------------------------------------------------------------------------


def _bad_values(kind, default=None) -> list:
    if typing.get_origin(kind) is typing.Literal:
        return ["bogus", 3]
    if kind is int:
        return [-1, "3", 2.5, True, None]
    if kind is float:
        return [-1.0, math.nan, math.inf, "0.1", None, False]
    if kind is bool:
        return [1, "yes", None]
    if kind == tuple[str, ...]:  # class names: JSON's list is turned into a tuple by from_dict, not here
        return [["cat", "dog"], ("cat", 3), "cat", ("cat", "dog")]  # the last: mnist names its own classes
    assert kind is str, kind
    return [3] if default == "" else ["", 3]  # a field whose default is "" takes "" as "none" (train.init)


# Each section's own class (RAM's model section, each policy's), not the base it derives from.
SECTION_CLASSES = [(name, type(getattr(RunConfig(), name))) for name in SECTIONS] + [("policy", SaccadeConfig)]
FIELD_CASES = [
    (section, cls, f.name, value)
    for section, cls in SECTION_CLASSES
    for f in dataclasses.fields(cls)
    for value in _bad_values(typing.get_type_hints(cls)[f.name], f.default)
]
ALIASES = {"kind": ("kind", "model", "policy")}  # the flag for ModelConfig.kind is --model, for a policy's --policy


@pytest.mark.parametrize("section,cls,name,value", FIELD_CASES,
                         ids=[f"{c.__name__}.{n}={v!r}" for s, c, n, v in FIELD_CASES])
def test_every_config_field_refuses_bad_values_naming_itself(section, cls, name, value):
    cfg = dataclasses.replace(RunConfig(), **{section: cls(**{name: value})})
    with pytest.raises(ConfigError) as error:
        cfg.validate()
    assert any(str(error.value).startswith(f"{n} = {value!r}: ") for n in ALIASES.get(name, (name,))), error.value


def test_run_config_level_checks():
    for cfg, message in [
        (RunConfig(preset=""), "preset = ''"),
        (RunConfig(task="centred"), "task = 'centred': must be a TaskConfig"),
        (RunConfig(model=ModelConfig(image_size=60)), "image_size = 60: does not match the 28x28 images"),
        (RunConfig(model=ModelConfig(classes=5)), "classes = 5: mnist has 10 classes"),
        (RunConfig(model=ModelConfig(channels=3)), "channels = 3: mnist images are grey"),
    ]:
        with pytest.raises(ConfigError, match="^" + message.replace("(", r"\(")):
            cfg.validate()


def test_configs_written_before_train_size_still_load():
    d = RunConfig().to_dict()
    del d["task"]["train_size"]
    assert RunConfig.from_dict(d) == RunConfig()
    with pytest.raises(ConfigError, match="not a recurrent-attention run config"):
        RunConfig.from_dict(RunConfig().to_dict() | {"train": {"epochs": 3, "warp": 9}})
    with pytest.raises(ConfigError, match="lr = 'fast'"):
        RunConfig.from_dict(RunConfig().to_dict() | {"train": {"lr": "fast"}})


def test_real_ram_train_refuses_bad_flags_before_any_work(ram, tmp_path):
    """Through the installed command: exit 2, the message on stderr, no traceback, no run folder."""
    cases = {
        "epochs": (["--epochs", "-3"], "ram train: error: epochs = -3: must be >= 1\n"),
        "preset": (["--preset", "cifar"], "ram train: error: preset = 'cifar': unknown; valid presets are mnist, "),
        "patch": (["--preset", "mnist-translated", "--patch-size", "70"],
                  "ram train: error: patch_size = 70: is larger than the 60x60 image\n"),
    }
    procs = {}
    for name, (flags, _) in cases.items():
        (tmp_path / name).mkdir()
        procs[name] = ram.start("train", *flags, "--no-progress", log=tmp_path / f"{name}.log", cwd=tmp_path / name)
    for name, (flags, message) in cases.items():
        assert procs[name].wait(timeout=120) == 2
        output = (tmp_path / f"{name}.log").read_text()
        assert output.startswith(message) and "Traceback" not in output, output
        assert list((tmp_path / name).iterdir()) == [], "a run folder was made"
