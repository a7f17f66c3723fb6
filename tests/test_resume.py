"""A run killed at any moment and resumed with --resume ends bit-identical (CPU) to one that never stopped.

Every file of a run folder is replaced atomically, so a SIGKILL leaves the folder as it was after the first k writes,
for some k. The in-process test crashes a run before each of its writes in turn, which visits every state a kill can
leave, and resumes it. The subprocess tests SIGKILL real `ram train` processes at the named moments.
"""

import contextlib
import dataclasses
import csv
import json
import math
import os
import random
import signal
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from ram import checkpoint as ckpt
from ram import train as train_module
import ram.data.mnist
from ram.cli import main
from ram.config import ConfigError, ModelConfig, RunConfig, TrainConfig
from ram.data import Digits, TaskData
from ram.tasks import DigitsConfig
from ram.train import _rng_state, _set_rng_state, fit

TIMING = {"seconds", "img_per_s", "total_seconds"}  # wall-clock columns; the only things allowed to differ


def _assert_equal(a, b, where: str) -> None:
    """Nested dicts, lists and tensors equal: tensors bit for bit (torch.equal), floats exactly."""
    assert type(a) is type(b), f"{where}: {type(a).__name__} vs {type(b).__name__}"
    if isinstance(a, dict):
        assert list(a) == list(b), f"{where}: keys {list(a)} vs {list(b)}"
        for k in a:
            _assert_equal(a[k], b[k], f"{where}.{k}")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), f"{where}: length {len(a)} vs {len(b)}"
        for i, (x, y) in enumerate(zip(a, b)):
            _assert_equal(x, y, f"{where}[{i}]")
    elif isinstance(a, torch.Tensor):
        assert a.dtype == b.dtype and torch.equal(a, b), f"{where}: tensors differ"
    else:
        assert a == b or (isinstance(a, float) and math.isnan(a) and math.isnan(b)), f"{where}: {a!r} vs {b!r}"


def _untimed(rows: list[dict]) -> list[dict]:
    return [{k: v for k, v in row.items() if k not in TIMING} for row in rows]


def assert_same_run(reference: Path, run: Path) -> None:
    """The final weights, the whole final training state, metrics.csv and the test result are identical."""
    ref_w, run_w = load_file(reference / "model.safetensors"), load_file(run / "model.safetensors")
    assert ref_w.keys() == run_w.keys()
    for name in ref_w:
        assert torch.equal(ref_w[name], run_w[name]), f"model.safetensors: {name} differs"
    ref, got = ckpt.load_state(reference / "last.pt"), ckpt.load_state(run / "last.pt")
    assert ref.keys() == got.keys()
    for part in ("config", "model", "optimizer", "rng", "average"):
        if part in ref:
            _assert_equal(ref[part], got[part], f"last.pt {part}")
    ref_loop, got_loop = dict(ref["loop"]), dict(got["loop"])
    _assert_equal(_untimed(ref_loop.pop("history")), _untimed(got_loop.pop("history")), "last.pt history")
    ref_loop.pop("elapsed"), got_loop.pop("elapsed")
    _assert_equal(ref_loop, got_loop, "last.pt loop")
    with open(reference / "metrics.csv") as a, open(run / "metrics.csv") as b:
        assert _untimed(list(csv.DictReader(a))) == _untimed(list(csv.DictReader(b)))
    ref_test, run_test = (json.loads((folder / "test.json").read_text()) for folder in (reference, run))
    for result in (ref_test, run_test):
        del result["checkpoint"], result["train_seconds"]  # the run folder and wall time
    assert ref_test == run_test


# ---- in process: a crash before each write, on small synthetic data ---------------------------------------------


class Killed(BaseException):
    """Stands in for SIGKILL. A BaseException, so that no `except Exception` on the way can swallow it."""


@pytest.fixture(scope="module")
def digits() -> Digits:
    """Noise 'digits': the maths of a training step does not care what the pixels show."""
    g = torch.Generator().manual_seed(0)
    return Digits(torch.randint(0, 256, (214, 28, 28), dtype=torch.uint8, generator=g),
                  torch.randint(0, 10, (214,), generator=g),
                  torch.randint(0, 256, (40, 28, 28), dtype=torch.uint8, generator=g),
                  torch.randint(0, 10, (40,), generator=g))


TASKS = {
    "centred": DigitsConfig(val_size=64),
    "cluttered": DigitsConfig(val_size=64, canvas=40, pieces=2),  # placement and clutter drawn per (seed, epoch, batch)
}


def small_config(task: DigitsConfig) -> RunConfig:
    """150 training images in batches of 48: 4 steps an epoch, the last one short; M = 2 sampled episodes each."""
    model = ModelConfig(image_size=task.canvas, glimpses=2, patch_size=8, scales=2, what_size=16, where_size=16,
                        glimpse_size=32, hidden=32)
    train = TrainConfig(epochs=2, batch_size=48, mc_samples=2, seed=7, eval_batch_size=64)
    return RunConfig(preset="test", task=task, model=model, train=train).validate()


@contextlib.contextmanager
def killed_before_write(k: int):
    """The (k+1)-th atomic write raises Killed before it touches the disk. Yields the paths written until then."""
    real, written = ckpt.atomic_write, []

    def write(path, data):
        if len(written) == k:
            raise Killed(f"killed before writing {path}")
        written.append(Path(path))
        real(path, data)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(ckpt, "atomic_write", write)
        yield written


@pytest.fixture
def fast(monkeypatch):
    """fsync makes a write survive a power cut; a killed process needs only the atomic rename, so the ~40 small runs
    below skip it. One thread: their tensors are too small to share."""
    monkeypatch.setattr(ckpt.os, "fsync", lambda fd: None)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_crash_before_every_write_then_resume_is_bit_identical(digits, tmp_path, fast):
    cfg = small_config(TASKS["cluttered"])  # the subprocess tests below cover the centred task
    data = TaskData(cfg.task, seed=cfg.train.seed, digits=digits)
    reference = tmp_path / "reference"
    with killed_before_write(-1) as writes:  # never killed: lists the writes of a whole run
        fit(cfg, reference, data=data, progress=False, checkpoint_every=0.0)  # checkpoint_every 0: after every step
    assert sum(p.name == "last.pt" for p in writes) == 2 * 4 + 2  # every step and every epoch end

    for k in range(len(writes)):
        out = tmp_path / f"killed-{k}"
        with killed_before_write(k) as written, pytest.raises(Killed):
            fit(cfg, out, data=data, progress=False, checkpoint_every=0.0)
        assert written == [out / p.name for p in writes[:k]]
        # Resumed with other checkpoint timing (never mid-epoch): timing must not change the maths.
        fit(cfg, out, resume=True, data=data, progress=False, checkpoint_every=math.inf)
        assert_same_run(reference, out)


def test_the_weights_average_is_kept_and_resumed_exactly(digits, tmp_path, monkeypatch, fast):
    """With --ema D the kept weights are the moving average of every step's weights (avg = D avg + (1 - D) w, the
    first step's weights to start), not the last step's; a run killed mid-epoch resumes it bit for bit."""
    from dataclasses import replace

    cfg = small_config(TASKS["centred"])
    cfg = replace(cfg, train=replace(cfg.train, epochs=1, ema=0.6))
    data = TaskData(cfg.task, seed=cfg.train.seed, digits=digits)
    steps, real = [], train_module.train_step

    def recorded(model, *args, **kwargs):
        out = real(model, *args, **kwargs)
        steps.append({k: v.detach().clone() for k, v in model.state_dict().items()})
        return out

    monkeypatch.setattr(train_module, "train_step", recorded)
    fit(cfg, tmp_path / "reference", data=data, progress=False, checkpoint_every=math.inf)
    assert len(steps) == 4
    average = steps[0]
    for w in steps[1:]:
        average = {k: 0.6 * average[k] + 0.4 * w[k] for k in w}
    kept = load_file(tmp_path / "reference" / "model.safetensors")  # epoch 1 always improves on no epoch
    for k, w in steps[-1].items():
        torch.testing.assert_close(kept[k], average[k], rtol=1e-6, atol=1e-7)
        assert not torch.equal(kept[k], w), k  # not the last step's weights
    assert "average" in ckpt.load_state(tmp_path / "reference" / "last.pt")

    out = tmp_path / "run"
    with killed_before_write(3), pytest.raises(Killed):  # config.json and steps 1-2, then killed
        fit(cfg, out, data=data, progress=False, checkpoint_every=0.0)
    fit(cfg, out, resume=True, data=data, progress=False, checkpoint_every=math.inf)
    assert_same_run(tmp_path / "reference", out)


@pytest.mark.parametrize("sabotage", ["rng not restored", "batches restart at 0"])
def test_the_comparison_catches_a_resume_that_forgets_state(sabotage, digits, tmp_path, monkeypatch, fast):
    """Without the RNG states or the batch position, a mid-epoch resume is not identical: the test above has teeth."""
    cfg = small_config(TASKS["centred"])
    data = TaskData(cfg.task, seed=cfg.train.seed, digits=digits)
    fit(cfg, tmp_path / "reference", data=data, progress=False, checkpoint_every=math.inf)
    out = tmp_path / "run"
    with killed_before_write(4), pytest.raises(Killed):  # config.json, steps 1-3 of epoch 1, then killed
        fit(cfg, out, data=data, progress=False, checkpoint_every=0.0)
    assert ckpt.load_state(out / "last.pt")["loop"]["batch"] == 3
    if sabotage == "rng not restored":
        monkeypatch.setattr(train_module, "_set_rng_state", lambda state: None)
    else:
        real = TaskData.train_batches
        monkeypatch.setattr(TaskData, "train_batches", lambda self, *a, start=0, **kw: real(self, *a, start=0, **kw))
    fit(cfg, out, resume=True, data=data, progress=False, checkpoint_every=math.inf)
    with pytest.raises(AssertionError):
        assert_same_run(tmp_path / "reference", out)


def test_rng_state_round_trip_restores_every_generator():
    torch.manual_seed(1), np.random.seed(2), random.seed(3)
    saved = _rng_state()
    first = (torch.rand(4), np.random.rand(4), [random.random() for _ in range(4)], np.random.randn(3))
    torch.manual_seed(9), np.random.seed(9), random.seed(9)
    _set_rng_state(saved)
    again = (torch.rand(4), np.random.rand(4), [random.random() for _ in range(4)], np.random.randn(3))
    assert torch.equal(first[0], again[0]) and np.array_equal(first[1], again[1]) and first[2] == again[2]
    assert np.array_equal(first[3], again[3])


def test_batches_from_a_mid_epoch_start_are_the_tail_of_the_epoch(digits):
    data = TaskData(TASKS["cluttered"], seed=5, digits=digits)
    whole = list(data.train_batches(1, 48))
    tail = list(data.train_batches(1, 48, start=2))
    assert len(whole) == 4 and len(tail) == 2
    for (xa, ya), (xb, yb) in zip(whole[2:], tail):
        assert torch.equal(xa, xb) and torch.equal(ya, yb)
    assert not torch.equal(whole[0][1], next(iter(data.train_batches(0, 48)))[1])  # epochs are shuffled anew


def test_stale_temp_files_of_a_killed_write_are_removed_on_resume(digits, tmp_path, fast):
    cfg = small_config(TASKS["centred"])
    data = TaskData(cfg.task, seed=cfg.train.seed, digits=digits)
    out = tmp_path / "run"
    fit(cfg, out, data=data, progress=False, checkpoint_every=math.inf)
    stale = out / ".last.pt.abc123.tmp"  # what a SIGKILL between mkstemp and os.replace leaves
    stale.write_bytes(b"half a checkpoint")
    fit(cfg, out, resume=True, data=data, progress=False)
    assert not stale.exists()
    assert not list(out.glob(".*.tmp"))


# ---- real processes, killed with SIGKILL ---------------------------------------------------------------------------

# 4096 images in batches of 64: 64 steps an epoch, long enough (a fraction of a second) to be killed inside one.
TRAIN = ["train", "--preset", "mnist", "--epochs", "2", "--glimpses", "2", "--batch-size", "64", "--threads", "1",
         "--train-size", "4096", "--seed", "3", "--no-progress"]
STEPS_PER_EPOCH = 64


class Uninterrupted:
    """The reference run, trained in the background while the tests kill and resume theirs."""

    def __init__(self, ram, folder: Path):
        self.out, self.log = folder / "run", folder / "log"
        self.proc = ram.start(*TRAIN, "--out", self.out, log=self.log)

    def result(self) -> Path:
        assert self.proc.wait(timeout=600) == 0, self.log.read_text()
        return self.out


@pytest.fixture(scope="module")
def reference(ram, tmp_path_factory):
    run = Uninterrupted(ram, tmp_path_factory.mktemp("uninterrupted"))
    yield run
    if run.proc.poll() is None:
        os.kill(run.proc.pid, signal.SIGKILL)
        run.proc.wait()


def kill_when(proc, ready, *, log: Path, timeout: float = 240) -> None:
    """SIGKILL the process `proc` (and only it) as soon as ready() holds; fail if it ends first."""
    deadline = time.monotonic() + timeout
    try:
        while not ready():
            assert proc.poll() is None, f"the run ended (exit {proc.returncode}) before the kill point:\n" \
                                        f"{log.read_text()}"
            assert time.monotonic() < deadline, "the kill point never came"
            time.sleep(0.005)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    assert proc.returncode == -signal.SIGKILL


def test_sigkill_at_each_kill_point_then_resume_ends_bit_identical(ram, reference, tmp_path):
    """One run killed three times (before its first checkpoint, right after an epoch-end one, mid-epoch) and resumed
    with the same command each time ends with the very weights of the run that was never killed."""
    out, log, last = tmp_path / "run", tmp_path / "log", tmp_path / "run" / "last.pt"
    args = [*TRAIN, "--out", out, "--resume"]  # --resume of a folder without last.pt starts the run

    # 1. Before the first checkpoint: the folder and config.json exist, last.pt does not.
    kill_when(ram.start(*args, "--checkpoint-every", "100", log=log), lambda: (out / "config.json").exists(), log=log)
    assert not last.exists()

    # 2. It starts over; killed right after the checkpoint at the end of epoch 1.
    kill_when(ram.start(*args, "--checkpoint-every", "100", log=log), last.exists, log=log)
    assert "resuming" not in log.read_text()
    loop = ckpt.load_state(last)["loop"]
    assert (loop["epoch"], loop["batch"], loop["step"]) == (1, 0, STEPS_PER_EPOCH)

    # 3. Resumed at epoch 2 with a checkpoint every 0.002 minutes (0.12 s); killed after the first one appears.
    epoch_end = os.stat(last).st_ino  # os.replace puts a new file (inode) in place
    kill_when(ram.start(*args, "--checkpoint-every", "0.002", log=log),
              lambda: last.exists() and os.stat(last).st_ino != epoch_end, log=log)
    assert f"resuming {out} at step {STEPS_PER_EPOCH} (epoch 2, batch 0)" in log.read_text()
    loop = ckpt.load_state(last)["loop"]
    assert loop["epoch"] == 1 and 0 < loop["batch"] < STEPS_PER_EPOCH, f"the kill was not mid-epoch: {loop}"
    assert loop["sums"]["n"] == loop["batch"]  # the epoch's running sums are saved with it

    # 4. Resumed mid-epoch, to the end.
    result = ram.run(*args, "--checkpoint-every", "0.002")
    assert result.returncode == 0, result.stderr
    assert f"resuming {out} at step {loop['step']} (epoch 2, batch {loop['batch']})" in result.stderr
    assert_same_run(reference.result(), out)


def test_metrics_of_a_run_resumed_by_a_newer_version_keep_every_column(tmp_path):
    """A run started before a column existed (entropy) and resumed after: the old rows leave it blank."""
    from ram.train import _write_metrics

    _write_metrics(tmp_path / "metrics.csv", [{"epoch": 1, "loss": 0.5}, {"epoch": 2, "loss": 0.4, "entropy": 1.2}])
    lines = (tmp_path / "metrics.csv").read_text().splitlines()
    assert lines == ["epoch,loss,entropy", "1,0.5,", "2,0.4,1.2"]


def test_a_model_that_decides_nothing_logs_no_entropy():
    from ram.losses import mean_entropy
    from ram.model import Episode

    none = torch.zeros(3, 0)
    ep = Episode(*(none,) * len(Episode._fields))
    assert math.isnan(mean_entropy(ep))  # written as a blank cell, not as a made-up 0


def test_an_epoch_resumed_from_sums_without_entropy_leaves_its_entropy_blank(digits, tmp_path, fast):
    """A run saved mid-epoch by a version that did not sum the entropy: that epoch's cell is blank, not the average
    of a part of the epoch; the next epoch has it again."""
    cfg = small_config(TASKS["centred"])
    data = TaskData(cfg.task, seed=cfg.train.seed, digits=digits)
    out = tmp_path / "run"
    with killed_before_write(4), pytest.raises(Killed):  # config.json, steps 1-3 of epoch 1, then killed
        fit(cfg, out, data=data, progress=False, checkpoint_every=0.0)
    saved = ckpt.load_state(out / "last.pt")
    assert saved["loop"]["batch"] == 3 and "entropy" in saved["loop"]["sums"]
    del saved["loop"]["sums"]["entropy"]  # as the older version wrote it
    ckpt.save_state(out / "last.pt", saved)
    fit(cfg, out, resume=True, data=data, progress=False, checkpoint_every=math.inf)
    rows = list(csv.DictReader((out / "metrics.csv").open()))
    assert [r["entropy"] == "" for r in rows] == [True, False]
    assert math.isfinite(float(rows[1]["entropy"]))


# ---- stopping when learned, and validating every K steps ---------------------------------------------------------


def test_a_run_that_has_learned_what_it_can_stops_and_says_why(digits, tmp_path, fast, capsys):
    data = TaskData(TASKS["centred"], seed=7, digits=digits)
    first = tmp_path / "first"
    fit(small_config(TASKS["centred"]), first, data=data, progress=False)
    # Started from those weights at a rate too small to move a float32 weight: its validation error cannot improve.
    cfg = small_config(TASKS["centred"])
    cfg = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, epochs=20, lr=1e-12, lr_min=0.0,
                                                             init=str(first), patience=2))
    out = tmp_path / "second"
    result = fit(cfg.validate(), out, data=data, progress=False)
    assert result["epochs"] == 3 and result["planned_epochs"] == 20
    assert "in 2 validations (--patience 2)" in result["stopped"]
    assert "stopped after epoch 3 of 20" in capsys.readouterr().err
    saved = json.loads((out / "test.json").read_text())
    assert saved["stopped"] == result["stopped"]
    with open(out / "metrics.csv") as f:
        assert [row["epoch"] for row in csv.DictReader(f)] == ["1", "2", "3"]
    fit(cfg, out, resume=True, data=data, progress=False)  # a resumed stopped run does not train on
    assert ckpt.load_state(out / "last.pt")["loop"]["epoch"] == 3


def test_plateaus_are_counted_from_the_best_error_or_the_plateau_before():
    from ram.train import plateaus

    assert plateaus([], 2) == 0
    assert plateaus([5, 4, 4, 4], 2) == 1  # two validations no better than 4
    assert plateaus([5, 4, 4, 3, 3], 2) == 0  # 3 was better: the count started again
    assert plateaus([5, 4, 4, 4, 4, 4], 2) == 2  # a second plateau counts from the end of the first
    assert plateaus([5, 4, 4, 4, 4, 4, 3.9], 2) == 2  # a better error later undoes no plateau


def test_the_plateau_schedule_lowers_the_lr_at_each_plateau_down_to_lr_min():
    from ram.train import learning_rate, lowest_level

    tc = TrainConfig(schedule="plateau", lr=1e-3, lr_min=1e-5, lr_decay=0.1, patience=2)
    assert lowest_level(tc) == 2
    flat = [5.0] * 9  # the first is the best; plateaus after validations 3, 5, 7 and 9
    got = [learning_rate(tc, 0, 100, flat[:n]) for n in range(10)]
    assert got == pytest.approx([1e-3] * 3 + [1e-4] * 2 + [1e-5] * 5)
    with pytest.raises(ConfigError, match="patience"):
        dataclasses.replace(tc, patience=0).validate()
    with pytest.raises(ConfigError, match="lr_decay"):
        dataclasses.replace(tc, lr_decay=1.0).validate()


def test_a_plateau_schedule_run_lowers_its_lr_then_stops_at_the_lowest(digits, tmp_path, fast, capsys):
    data = TaskData(TASKS["centred"], seed=7, digits=digits)
    first = tmp_path / "first"
    fit(small_config(TASKS["centred"]), first, data=data, progress=False)
    # Started from those weights at rates too small to move a float32 weight: its validation error cannot improve.
    cfg = small_config(TASKS["centred"])
    cfg = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, epochs=20, lr=1e-12, lr_min=1e-14,
                                                             lr_decay=0.1, schedule="plateau", init=str(first),
                                                             patience=1))
    out = tmp_path / "second"
    result = fit(cfg.validate(), out, data=data, progress=False)
    # epoch 1 is the best; epochs 2, 3 and 4 each a plateau of one: lr 1e-12, 1e-13, 1e-14, then the stop
    assert result["epochs"] == 4 and result["planned_epochs"] == 20
    assert "plateau of 1 validations at the lowest lr, 1e-14" in result["stopped"]
    assert "stopped after epoch 4 of 20" in capsys.readouterr().err
    with open(out / "metrics.csv") as f:
        assert [float(row["lr"]) for row in csv.DictReader(f)] == pytest.approx([1e-12, 1e-12, 1e-13, 1e-14])


@pytest.mark.parametrize(("epochs", "validated"), [(6, ["2", "4", "6"]), (5, ["2", "4", "5"])])
def test_validation_every_k_steps_sums_the_epochs_between(digits, tmp_path, fast, epochs, validated):
    data = TaskData(TASKS["centred"], seed=7, digits=digits)
    cfg = small_config(TASKS["centred"])  # 4 steps an epoch
    cfg = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, epochs=epochs))
    every = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, val_every=8)).validate()
    result = fit(every, tmp_path / "run", data=data, progress=False)
    with open(tmp_path / "run" / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    assert [row["epoch"] for row in rows] == validated  # and the last epoch always
    assert [int(row["step"]) for row in rows] == [4 * int(e) for e in validated]
    assert result["epochs"] == epochs
    # Validation draws no training randomness, so the same steps run as in a run validating every epoch; each row
    # averages the steps since the previous one, 4 an epoch.
    fit(cfg, tmp_path / "each", data=data, progress=False)
    with open(tmp_path / "each" / "metrics.csv") as f:
        each = {row["epoch"]: float(row["loss"]) for row in csv.DictReader(f)}
    assert float(rows[0]["loss"]) == pytest.approx((each["1"] + each["2"]) / 2, rel=1e-5)


def test_a_run_validating_every_k_steps_killed_anywhere_resumes_bit_identical(digits, tmp_path, fast):
    cfg = small_config(TASKS["centred"])
    cfg = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, epochs=3, val_every=8)).validate()
    data = TaskData(cfg.task, seed=cfg.train.seed, digits=digits)
    reference = tmp_path / "reference"
    fit(cfg, reference, data=data, progress=False, checkpoint_every=0.0)
    for k in range(0, 14, 3):
        out = tmp_path / f"killed-{k}"
        with killed_before_write(k), pytest.raises(Killed):
            fit(cfg, out, data=data, progress=False, checkpoint_every=0.0)
        fit(cfg, out, resume=True, data=data, progress=False, checkpoint_every=math.inf)
        assert_same_run(reference, out)


def test_a_run_folder_written_before_the_sections_resumes_bit_identical_and_evaluates(digits, tmp_path, fast, capsys,
                                                                                      monkeypatch):
    """A run killed mid-epoch, its config.json and last.pt's config rewritten in the layout of the code before the
    loss, policy and task sections (rl_weight, means_weight ... inside "train"; the policy's settings, every
    policy's, and the baseline inside "model"; every task's settings in one "task"), resumes through
    `config.migrate` and ends as a run that never stopped; config.json says the same run, so it is not written again.
    A finished run folder of that layout evaluates as the run does."""
    cfg = small_config(TASKS["centred"])
    cfg = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, epochs=1),
                              loss=dataclasses.replace(cfg.loss, rl_weight=0.5, means_weight=0.3))
    data = TaskData(cfg.task, seed=cfg.train.seed, digits=digits)
    reference = tmp_path / "reference"
    fit(cfg, reference, data=data, progress=False, checkpoint_every=0.0)

    def flat(d: dict) -> dict:
        loss = {k: v for k, v in d["loss"].items() if k != "baseline"}
        policy = {k: v for k, v in d["policy"].items() if k != "kind"}
        others = {"saccade_step": 2, "elu_logits": False}  # the saccade policy's settings, at their defaults
        tasks = {"source": "", "class_names": [], "test_fraction": 0.2, "epoch_games": 22400, "val_games": 1000}
        model = {**d["model"], **policy, **others, "policy": d["policy"]["kind"], "baseline": d["loss"]["baseline"]}
        d = {**d, "train": {**d["train"], **loss}, "task": {**d["task"], **tasks}, "model": model}
        del d["loss"], d["policy"]
        return d

    out = tmp_path / "run"
    with killed_before_write(3), pytest.raises(Killed):  # config.json, steps 1-2 of the epoch, then killed
        fit(cfg, out, data=data, progress=False, checkpoint_every=0.0)
    saved = ckpt.load_state(out / "last.pt")
    assert saved["loop"]["batch"] == 2
    saved["config"] = flat(saved["config"])
    ckpt.save_state(out / "last.pt", saved)
    old = json.dumps(flat(json.loads((out / "config.json").read_text())), indent=2)
    (out / "config.json").write_text(old)
    assert "loss" not in ckpt.load_state(out / "last.pt")["config"]
    capsys.readouterr()
    fit(cfg, out, resume=True, data=data, progress=False, checkpoint_every=math.inf)
    assert "notice" not in capsys.readouterr().err
    assert_same_run(reference, out)
    (out / "config.json").write_text(old)  # a finished run folder of that code
    monkeypatch.setattr(ram.data.mnist, "load", lambda name="mnist", **kw: digits)
    evaluated = []
    for folder in (reference, out):
        assert main(["eval", "--checkpoint", str(folder), "--json", "--mc-samples", "0"]) == 0
        evaluated.append(json.loads(capsys.readouterr().out.splitlines()[-1]))
    assert evaluated[0]["error"] == evaluated[1]["error"]
