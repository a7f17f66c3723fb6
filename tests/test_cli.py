"""The `ram` command end to end, in-process, on small synthetic digits (the real-data path is tested in test_data_*)."""

import csv
import json
import math
import re
import shlex
import warnings
from dataclasses import replace
from pathlib import Path

import pytest
import torch
import tyro

import ram.data.mnist
import ram.flags
import ram.presets
import ram.tasks
from ram.cli import Train, main, parse
from ram.config import SECTIONS, ConfigError
from ram.data import Digits
from ram.flags import defaults, recipe
from ram.tasks import CatchConfig, DigitsConfig, ImagesConfig

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def tiny_digits(monkeypatch):
    """10,300 training images, so the default 10k validation split leaves 300 to train on."""
    g = torch.Generator().manual_seed(0)
    labels = torch.randint(0, 10, (10_300,), generator=g)
    # a learnable signal: the label's brightness in a label-dependent column band
    images = torch.zeros(10_300, 28, 28, dtype=torch.uint8)
    images[torch.arange(10_300), :, labels * 2 + 4] = 255
    test_labels = torch.arange(500) % 10
    test = torch.zeros(500, 28, 28, dtype=torch.uint8)
    test[torch.arange(500), :, test_labels * 2 + 4] = 255
    digits = Digits(images, labels, test, test_labels)
    monkeypatch.setattr(ram.data.mnist, "load", lambda name="mnist", **kw: digits)
    return digits


def test_presets_lists_every_name(capsys):
    assert main(["presets"]) == 0
    out = capsys.readouterr().out
    for name in ("mnist", "mnist-translated", "mnist-cluttered", "mnist-cluttered-100", "fashion"):
        assert re.search(rf"^{re.escape(name)}\s", out, re.M), name


def test_train_then_eval_json(tiny_digits, tmp_path, capsys):
    out = tmp_path / "run"
    code = main(["train", "--epochs", "2", "--glimpses", "2", "--threads", "1", "--out", str(out), "--no-progress"])
    assert code == 0
    for name in ("config.json", "metrics.csv", "model.safetensors", "last.pt", "test.json"):
        assert (out / name).is_file(), name
    rows = list(csv.DictReader((out / "metrics.csv").open()))
    assert len(rows) == 2  # 2 epochs
    # the run's time so far, over every piece it was trained in
    assert float(rows[1]["total_seconds"]) == pytest.approx(float(rows[0]["seconds"]) + float(rows[1]["seconds"]),
                                                            abs=0.2)
    # the preset's precision "auto" is made concrete, and the test result says what ran where
    from ram.speed import native_bf16

    ran = "bf16" if native_bf16(torch.device("cpu")) else "fp32"
    assert json.loads((out / "config.json").read_text())["train"]["precision"] == ran
    test = json.loads((out / "test.json").read_text())
    assert test["precision"] == ran and test["machine"]["device"] == "cpu" and test["machine"]["threads"] == 1
    # RAM's Gaussian has a fixed std: its entropy per decision is a constant, 2 * (log std + log sqrt(2 pi e))
    std = json.loads((out / "config.json").read_text())["policy"]["std"]
    assert float(rows[0]["entropy"]) == pytest.approx(2 * (math.log(std) + 0.5 * math.log(2 * math.pi * math.e)),
                                                      abs=1e-4)
    capsys.readouterr()
    assert main(["eval", "--checkpoint", str(out), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert {"error", "accuracy", "n", "preset", "glimpses"} <= set(result)
    assert result["n"] == 500 and result["preset"] == "mnist" and result["glimpses"] == 2
    assert result["error"] == pytest.approx(100 - result["accuracy"])
    assert result["error"] == json.loads((out / "test.json").read_text())["error"]  # same weights, same set


def test_the_progress_line_shows_what_a_user_reads_and_not_the_hybrid_total(tiny_digits, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", "--epochs", "2", "--glimpses", "2", "--threads", "1", "--out", str(out)]) == 0
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("epoch ")]
    rows = list(csv.DictReader((out / "metrics.csv").open()))
    assert len(lines) == 2 and float(rows[0]["loss"]) != float(rows[0]["classify"])  # the total is in the CSV
    for line, row in zip(lines, rows):
        assert line.startswith(f"epoch {row['epoch']}/2: cross-entropy {float(row['classify']):.3f}  reward "
                               f"{float(row['reward']):.3f}  train error {float(row['train_error']):.2f}%  val error "
                               f"{float(row['val_error']):.2f}%  {float(row['img_per_s']):,.0f} img/s")
        assert "loss" not in line


def test_a_game_has_no_cross_entropy_to_show():
    from ram.train import readable

    row = dict(classify="", reward=0.25, train_error=75.0, img_per_s=1234.5)
    assert readable(row) == "reward 0.250  train error 75.00%  1,234 img/s"  # mid-epoch: no validation yet
    assert readable({**row, "classify": "0.5", "val_error": "70"}).startswith("cross-entropy 0.500  reward")


def test_eval_monte_carlo_is_reproducible(tiny_digits, tmp_path, capsys):
    out = tmp_path / "run"
    main(["train", "--epochs", "1", "--glimpses", "2", "--out", str(out), "--no-progress"])
    capsys.readouterr()
    runs = []
    for _ in range(2):
        main(["eval", "--checkpoint", str(out), "--json", "--mc-samples", "4", "--seed", "3"])
        runs.append(json.loads(capsys.readouterr().out))
    assert runs[0] == runs[1] and runs[0]["mc_samples"] == 4


def test_eval_json_names_both_protocols(tiny_digits, tmp_path, capsys):
    out = tmp_path / "run"
    main(["train", "--epochs", "1", "--glimpses", "2", "--threads", "1", "--out", str(out), "--no-progress"])
    capsys.readouterr()
    main(["eval", "--checkpoint", str(out), "--json", "--mc-samples", "3"])
    both = json.loads(capsys.readouterr().out)
    main(["eval", "--checkpoint", str(out), "--json", "--mc-samples", "0"])
    one = json.loads(capsys.readouterr().out)
    # the headline is one deterministic episode whatever M is; the average of M episodes is its own, named field
    assert both["protocol"] == one["protocol"] == "one episode along the policy means"
    assert both["error"] == one["error"]
    assert both["averaged_protocol"] == "class probabilities of 3 sampled episodes averaged"
    assert 0 <= both["error_averaged"] <= 100 and "error_averaged" not in one


def test_init_starts_from_a_run_and_refuses_another_network(tiny_digits, tmp_path, capsys):
    from ram.checkpoint import load_weights
    from ram.models import model_of
    from ram.train import _initial_weights

    first = tmp_path / "first"
    main(["train", "--epochs", "1", "--glimpses", "2", "--threads", "1", "--out", str(first), "--no-progress"])
    cfg = recipe(glimpses=2, std=0.03, init=str(first)).config()
    model = model_of(cfg)
    load_weights(model, first / "model.safetensors")
    start = _initial_weights(cfg)
    assert all(torch.equal(start[k], v) for k, v in model.state_dict().items())
    second = tmp_path / "second"
    assert main(["train", "--epochs", "1", "--glimpses", "2", "--std", "0.03", "--init", str(first), "--threads", "1",
                 "--out", str(second), "--no-progress"]) == 0
    assert json.loads((second / "config.json").read_text())["train"]["init"] == str(first)
    capsys.readouterr()
    assert main(["train", "--glimpses", "2", "--hidden", "64", "--init", str(first), "--out", str(tmp_path / "x")]) == 2
    assert f"init = '{first}': its network does not have this config's shapes" in capsys.readouterr().err
    assert main(["train", "--glimpses", "2", "--init", "no-such-model", "--out", str(tmp_path / "y")]) == 2
    assert "init = 'no-such-model'" in capsys.readouterr().err
    assert not (tmp_path / "x").exists() and not (tmp_path / "y").exists()  # refused before any work


def test_init_into_a_network_with_a_context_first_glimpse_starts_where_the_init_looked(tiny_digits, tmp_path,
                                                                                         capsys):
    """The init lacks the context network, which starts fresh at zero: the same episodes along the means; a network
    that lacks a weight of the init is still refused."""
    from ram.checkpoint import load_weights
    from ram.data import to_float
    from ram.models import model_of
    from ram.train import _initial_weights

    first = tmp_path / "first"
    main(["train", "--epochs", "1", "--glimpses", "2", "--threads", "1", "--out", str(first), "--no-progress"])
    learned = model_of(recipe(glimpses=2).config())
    load_weights(learned, first / "model.safetensors")
    cfg = recipe(glimpses=2, first_glimpse="context", init=str(first)).config()
    context = model_of(cfg)
    assert context.load_state_dict(_initial_weights(cfg), strict=False).missing_keys == [
        f"policy.context.{i}.{w}" for i in (2, 4) for w in ("weight", "bias")]
    images = to_float(tiny_digits.test_images[:16])
    with torch.no_grad():
        a, b = (m.eval()(images, sample=False) for m in (learned, context))
    torch.testing.assert_close(b.means, a.means)
    torch.testing.assert_close(b.logits, a.logits)

    second = tmp_path / "second"
    capsys.readouterr()
    assert main(["train", "--epochs", "1", "--glimpses", "2", "--first-glimpse", "context", "--init", str(first),
                 "--threads", "1", "--out", str(second), "--no-progress"]) == 0
    assert "init: 4 weights the init lacks, or has for other classes, start fresh (policy.context.2.weight" in capsys.readouterr().err
    assert main(["train", "--glimpses", "2", "--init", str(second), "--out", str(tmp_path / "x")]) == 2
    assert "its network does not have this config's shapes (differs at policy.context" in capsys.readouterr().err


def test_bench_json(tiny_digits, capsys):
    assert main(["bench", "--json", "--seconds", "0.2", "--repeats", "1", "--threads", "1"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["train_images_per_s"] > 0 and result["eval_images_per_s"] > 0
    assert 5 < result["train_mflop_per_image"] < 10  # ~7.4 MFLOP for the 6-glimpse 28x28 model
    # the floor is the FLOPs of an image at the measured matmul rate
    assert result["matmul_gflop_per_s"] > 0
    floor = result["matmul_gflop_per_s"] * 1e3 / result["train_mflop_per_image"]
    assert abs(result["floor_images_per_s"] - floor) <= 0.01 * floor


def test_reproduce_dry_run_prints_commands(capsys):
    assert main(["reproduce", "mnist-cluttered-g6", "--dry-run"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert shlex.split(lines[0])[:6] == ["ram", "train", "--preset", "mnist-cluttered", "--glimpses", "6"]
    assert "results/mnist-cluttered-g6.json" in lines[1]


def test_a_reader_that_stops_early_gets_no_traceback():
    """`ram reproduce all --dry-run | head -1`: the closed pipe ends the command quietly, with the shell's code."""
    import subprocess
    import sys

    shell = f"{shlex.quote(sys.executable)} -m ram reproduce all --dry-run | head -1"
    done = subprocess.run(["bash", "-o", "pipefail", "-c", shell], capture_output=True, text=True)
    assert done.stdout.startswith("ram train") and done.stdout.count("\n") == 1
    assert done.stderr == "" and done.returncode == 141


def test_reproduce_with_seeds_trains_seeds_0_to_n_into_suffixed_folders(capsys):
    assert main(["reproduce", "mnist-g2", "--seeds", "3", "--dry-run"]) == 0
    lines = [shlex.split(line) for line in capsys.readouterr().out.strip().splitlines()]
    assert len(lines) == 6  # a training and an evaluation per seed
    for seed, (train, evaluate) in enumerate(zip(lines[::2], lines[1::2])):
        assert train[train.index("--seed") + 1] == str(seed) and train[-1] == f"runs/mnist-g2-s{seed}"
        assert evaluate[-1] == f"results/seeds/mnist-g2-s{seed}.json"
    assert main(["reproduce", "mnist-g2", "--seeds", "-1", "--dry-run"]) == 2
    assert "seeds = -1: must be >= 0" in capsys.readouterr().err


def test_reproduce_trains_in_the_precision_asked_for_and_otherwise_the_rows(capsys):
    """`--precision fp32` replaces a bf16 row's arithmetic (for a CPU without bfloat16) and leaves the rest of its
    recipe; without it the row's own precision stays, and a row with none gets the one asked for."""
    from ram.results import BY_NAME

    def train_args(*flags):
        assert main(["reproduce", "mnist-cluttered-g6", "--dry-run", *flags]) == 0
        return shlex.split(capsys.readouterr().out.splitlines()[0])[2:]

    own, fp32 = train_args(), train_args("--precision", "fp32")
    assert own.count("--precision") == 1 and own[own.index("--precision") + 1] == "bf16"
    assert fp32.count("--precision") == 1 and fp32[fp32.index("--precision") + 1] == "fp32"
    cfg, row = parse(["train", *fp32[:-2]]).config(), BY_NAME["mnist-cluttered-g6"].config()
    assert cfg.train.precision == "fp32" and cfg.model == row.model and cfg.train == replace(row.train, precision="fp32")
    assert main(["reproduce", "mnist-g6", "--dry-run", "--precision", "bf16"]) == 0
    assert "--precision bf16" in capsys.readouterr().out.splitlines()[0]


def test_ci_runs_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    command = next(line.split("#")[0].strip() for line in readme.splitlines() if "pytest" in line and "pip" in line)
    assert command in ci


def test_size_and_loss_flags_reach_the_config():
    cfg = recipe("mnist-translated", hidden=64, rl_weight=0.5, precision="bf16").config()
    assert cfg.model.hidden == 64 and cfg.loss.rl_weight == 0.5 and cfg.train.precision == "bf16"
    assert cfg.model.scales == 3  # the rest is the preset's


def test_every_ram_command_in_the_readme_and_the_docs_parses():
    """The README's and the docs' commands are what a new user types first: each must be a valid command line
    (parsed here, whether or not tests/test_docs.py runs it)."""

    from ram.cli import COMMANDS

    pages = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
    blocks = [block for page in pages for block in page.read_text().split("```bash")[1:]]
    lines = [part.split("#")[0].strip() for block in blocks for line in block.split("```")[0].splitlines()
             for part in line.split(" && ")]
    commands = [shlex.split(line)[1:] for line in lines if line.startswith("ram ")]
    assert len(commands) >= 20
    for args in commands:
        parsed = parse(args)
        assert isinstance(parsed, tuple(COMMANDS.values())), args


def test_every_config_field_is_one_flag_and_reaches_the_config():
    """The config dataclasses are the schema: every field a user may set is a flag of `ram train` under its own
    name (the model kind as --model, the policy as --policy, whose section's fields are then the flags of that
    policy; the task's section is the preset's, or --data's), declared once, and a value given on the command line
    arrives in its section. The fields that follow from the data (canvas, channels, classes, ...) are set by the
    preset or --data only."""
    import dataclasses
    import typing

    from ram import config, presets
    from ram.flags import with_policy

    derived = {"preset", "dataset", "source", "class_names", "canvas", "val_size", "image_size", "channels", "classes",
               "actions"}
    reached = set()
    for policy, preset in (("gaussian", "mnist"), ("saccade", "mnist"), ("gaussian", "catch")):
        args = ["--preset", preset, "--policy", policy]
        with warnings.catch_warnings():  # get_parser is deprecated in tyro 1.0, and the one way to list the flags
            warnings.simplefilter("ignore", DeprecationWarning)
            parser = tyro.extras.get_parser(Train, default=defaults(Train, args))
        flags = [flag for action in parser._actions for flag in action.option_strings]
        assert len(flags) == len(set(flags)), [f for f in flags if flags.count(f) > 1]  # no flag declared twice
        for section in SECTIONS:
            for f in dataclasses.fields(getattr(with_policy(presets.get(preset), policy), section)):
                if f.name in derived:
                    assert f"--{f.name.replace('_', '-')}" not in flags or f.name in ("image_size", "val_size"), f.name
                    continue
                flag = f"--{section}" if f.name == "kind" else f"--{f.name.replace('_', '-')}"
                assert flag in flags, flag
                if (section, f.name) in reached:  # set under another policy or task already
                    continue
                chosen = [] if flag == "--policy" else ["--policy", policy]
                for other in (preset, "mnist", "mnist-saccade", "catch"):
                    settings = getattr(with_policy(presets.get(other), policy), section)
                    if f.name not in {g.name for g in dataclasses.fields(settings)}:  # another task's section
                        continue
                    old = getattr(settings, f.name)
                    kind = config.PolicyName if flag == "--policy" else typing.get_type_hints(type(settings))[f.name]
                    choices = [c for c in typing.get_args(kind) if c != old] if typing.get_origin(kind) is \
                        typing.Literal else [not old] if isinstance(old, bool) else [old + 1, old * 0.5] \
                        if isinstance(old, (int, float)) else ["mnist-g6"]
                    for value in choices:
                        try:
                            cfg = parse(["train", "--preset", other, *chosen, flag, str(value)]).config()
                        except (ConfigError, SystemExit):  # a value this preset refuses: try the next
                            continue
                        assert getattr(getattr(cfg, section), f.name) == value, (flag, value)
                        reached.add((section, f.name))
                        break
                    if (section, f.name) in reached:
                        break
                assert (section, f.name) in reached, f"no value of {flag} could be set on any preset ({policy})"
    assert len(reached) >= 45, sorted(reached)


@pytest.mark.parametrize("args, flag", [
    (["--preset", "catch", "--pieces", "4"], "--pieces"),
    (["--preset", "catch", "--shift", "2"], "--shift"),
    (["--epoch-games", "64"], "--epoch-games"),
    (["--data", "fashion", "--test-fraction", "0.5"], "--test-fraction"),
    (["--data", "my-images", "--pieces", "4"], "--pieces"),
])
def test_a_setting_of_another_task_is_no_flag_of_the_run(args, flag, capsys):
    """The preset, or --data, picks the task section whose settings are flags: Catch's --epoch-games, the digits'
    --pieces, your own images' --test-fraction. Another task's setting is an unknown flag, not a refusal."""
    with pytest.raises(SystemExit) as stop:
        main(["train", *args])
    assert stop.value.code == 2 and flag in capsys.readouterr().err
    assert ram.flags.parse(["--preset", "catch", "--epoch-games", "64"]).settings.task.epoch_games == 64
    assert ram.flags.parse(["--data", "my-images", "--test-fraction", "0.5", "--shift", "2"]).settings.task == \
        ImagesConfig(test_fraction=0.5, shift=2)  # the images are not read yet: no source, no classes


def test_a_task_section_holds_its_own_settings_and_no_other_tasks():
    for section, name in [(CatchConfig, "pieces"), (CatchConfig, "shift"), (CatchConfig, "train_size"),
                          (ImagesConfig, "pieces"), (ImagesConfig, "epoch_games"), (DigitsConfig, "epoch_games"),
                          (DigitsConfig, "test_fraction"), (DigitsConfig, "source")]:
        with pytest.raises(TypeError, match=name):
            section(**{name: 1})
    with pytest.raises(ConfigError, match="pieces = 4: not a setting of the catch task"):
        recipe("catch", pieces=4)
    with pytest.raises(ConfigError, match="val_size = 100: the catch task has no training set"):
        recipe("catch", val_size=100).config()
    assert recipe("mnist", val_size=100).config().task.val_size == 100
    with pytest.raises(ConfigError, match="train_size = 5: not a setting of preset catch's task section"):
        ram.presets.resolve("catch", task={"train_size": 5})  # `ram sweep --preset catch --train-size 5`


def test_training_says_its_preset_its_run_folder_and_an_estimate_before_the_first_epoch_ends(tiny_digits, tmp_path,
                                                                                            capsys):
    """The estimate is timed over the steps after the first, whose warm-up would make it many times too long."""
    out = tmp_path / "run"
    assert main(["train", "--epochs", "2", "--glimpses", "2", "--threads", "1", "--batch-size", "32",
                 "--out", str(out)]) == 0
    lines = capsys.readouterr().out.splitlines()
    first = next(i for i, line in enumerate(lines) if line.startswith("epoch 1/2:"))
    assert lines[0].startswith("ram train: preset mnist (") and lines[0].endswith(f"2 epochs; run folder {out}")
    estimate = [line for line in lines[:first] if line.startswith("estimate: ")]
    assert len(estimate) == 1 and "an epoch at" in estimate[0] and "for the 2 epoch(s) left" in estimate[0]
    steps = len(list(ram.tasks.make_task(parse(["train", "--glimpses", "2"]).config(), progress=False)
                     .train_batches(0, 32)))
    assert f"timed over {steps - 1} batches after the first" in estimate[0]


def test_an_interrupted_training_run_names_resume(monkeypatch, capsys):
    def interrupt(self):
        raise KeyboardInterrupt

    monkeypatch.setattr(Train, "run", interrupt)
    assert main(["train", "--epochs", "1"]) == 130
    assert "interrupted; the same command with --resume continues" in capsys.readouterr().err


def test_a_convnet_run_is_described_in_its_own_terms(tiny_digits, tmp_path, monkeypatch, capsys):
    """No reward in its progress (nothing is reinforced), no policy means in its protocol, no glimpses in its name,
    and no "sampled episodes averaged", which would be the same pass M times."""
    monkeypatch.chdir(tmp_path)
    assert main(["train", "--model", "convnet", "--epochs", "1", "--threads", "1", "--batch-size", "64"]) == 0
    out = capsys.readouterr().out
    epoch = next(line for line in out.splitlines() if line.startswith("epoch 1/1:"))
    assert "reward" not in epoch and "train error" in epoch
    run = tmp_path / "runs" / "mnist-convnet-s0"
    report = json.loads((run / "test.json").read_text())
    assert run.is_dir() and report["protocol"] == "the whole image read once" and "error_averaged" not in report
    assert main(["eval", "--checkpoint", str(run), "--mc-samples", "10", "--json"]) == 0
    assert "error_averaged" not in json.loads(capsys.readouterr().out)
    assert main(["eval", "--checkpoint", str(run), "--mc-samples", "0"]) == 0
    assert "mnist convnet: test error" in capsys.readouterr().out


def test_help_reflows_each_fields_docstring_instead_of_breaking_it_at_every_source_line(monkeypatch, capsys):
    # Wide enough that no sentence below wraps: tyro sets the five sections' boxes in three columns, about 200 each.
    monkeypatch.setenv("COLUMNS", "600")
    with pytest.raises(SystemExit):
        parse(["train", "--help", "all"])  # tyro's whole help: every flag with its docstring
    text = capsys.readouterr().out
    assert "auto with --data PATH (a recipe derived from your images, which it prints)" in text
    assert re.search(r"seed\s+000's policy gradient", text) and not re.search(r"seed\s*│\n│\s*000's", text)
