"""A NaN or Inf in the loss, the gradients or the weights stops training, naming the step, and keeps the last good
checkpoint on disk byte for byte. Faults are injected into the loss (ram.tasks.classify.hybrid) at a chosen step of a real run
through `ram.cli.main`.
"""

import itertools
import shutil
from pathlib import Path

import pytest
import torch

from ram import checkpoint as ckpt
from ram import train as train_module
from ram.cli import main
from ram.tasks import classify as tasks_module

# 1024 images in batches of 64: 16 steps an epoch.
TRAIN = ["train", "--preset", "mnist", "--epochs", "2", "--glimpses", "2", "--batch-size", "64", "--threads", "1",
         "--train-size", "1024", "--no-progress"]
SPE = 16


@pytest.fixture(autouse=True)
def keep_threads():
    """--threads 1 sets torch's global thread count; give the rest of the session its own back."""
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


def inject(monkeypatch, fault: str, at: int) -> list[bool]:
    """Make call `at` (0-based, in this process) of the training loss misbehave. Returns, per call, whether autograd
    anomaly mode was on."""
    real, calls, anomaly = tasks_module.hybrid, itertools.count(), []

    def hybrid(episode, labels, *args, **kw):
        losses = real(episode, labels, *args, **kw)
        anomaly.append(torch.is_anomaly_enabled())
        if next(calls) != at:
            return losses
        if fault == "interrupt":
            raise KeyboardInterrupt
        if fault == "nan loss":
            return losses._replace(total=losses.total * float("nan"))
        if fault == "inf loss":
            return losses._replace(total=losses.total + float("inf"))
        assert fault == "nan gradient"  # a finite loss whose gradient is NaN: d sqrt(z)/dz = inf at z = 0, times 0
        return losses._replace(total=losses.total + torch.sqrt(0 * losses.total))

    monkeypatch.setattr(tasks_module, "hybrid", hybrid)
    return anomaly


@pytest.fixture(scope="module")
def after_one_epoch(tmp_path_factory, mnist_root) -> Path:
    """A run stopped by Ctrl-C at the first step of epoch 2: last.pt is the checkpoint at the end of epoch 1."""
    out = tmp_path_factory.mktemp("one-epoch") / "run"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("RAM_DATA_DIR", str(mnist_root))
        inject(mp, "interrupt", at=SPE)
        threads = torch.get_num_threads()
        assert main([*TRAIN, "--out", str(out)]) == 130
        torch.set_num_threads(threads)
    assert ckpt.load_state(out / "last.pt")["loop"]["step"] == SPE
    return out


@pytest.fixture
def run(after_one_epoch, tmp_path, real_data) -> Path:
    out = tmp_path / "run"
    shutil.copytree(after_one_epoch, out)
    return out


def snapshot(folder: Path) -> dict[str, bytes]:
    # .lock: the run folder's lock (ram.runlock), an empty file that stays, as the data cache's does
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.name != ".lock"}


@pytest.mark.parametrize("fault", ["nan loss", "inf loss", "nan gradient"])
def test_fault_stops_the_run_naming_the_step_and_keeps_the_checkpoint(fault, run, monkeypatch, capsys):
    before = snapshot(run)
    anomaly = inject(monkeypatch, fault, at=3)

    assert main([*TRAIN, "--out", str(run), "--resume"]) == 2

    err = capsys.readouterr().err
    what = "gradient" if fault == "nan gradient" else "loss"
    assert f"ram train: error: non-finite {what} at step {SPE + 3} (epoch 2, batch 4): stopped; " \
           f"the last good checkpoint {run / 'last.pt'} is kept." in err, err
    assert "Traceback" not in err
    assert snapshot(run) == before  # last.pt, model.safetensors, metrics.csv: byte-identical
    assert anomaly == [False] * 4  # anomaly mode is off unless asked for


def test_checkpoints_up_to_the_fault_are_kept_and_the_run_recovers(run, capsys):
    with pytest.MonkeyPatch.context() as mp:
        inject(mp, "nan gradient", at=5)
        # A checkpoint after every step (1e-6 minutes): the last good one is the step before the fault.
        assert main([*TRAIN, "--out", str(run), "--resume", "--checkpoint-every", "1e-6"]) == 2
    assert f"non-finite gradient at step {SPE + 5}" in capsys.readouterr().err
    saved = ckpt.load_state(run / "last.pt")
    assert saved["loop"]["step"] == SPE + 5
    assert all(torch.isfinite(t).all() for t in saved["model"].values())

    # The fault was transient: resumed, the run finishes from the good checkpoint.
    code = main([*TRAIN, "--out", str(run), "--resume"])
    assert code == 0, capsys.readouterr().err
    assert ckpt.load_state(run / "last.pt")["loop"]["step"] == 2 * SPE


def test_non_finite_weights_are_never_checkpointed(run, monkeypatch, capsys):
    """A finite loss whose update overflows the weights: the checkpoint after that step is refused."""
    real, calls, kept = train_module.train_step, itertools.count(), {}

    def overflowing_step(model, optimizer, *args, **kw):
        out = real(model, optimizer, *args, **kw)
        if next(calls) == 2:
            kept["last.pt"] = (run / "last.pt").read_bytes()  # the checkpoint after the step before
            with torch.no_grad():
                next(model.parameters()).view(-1)[0] = float("inf")
        return out

    monkeypatch.setattr(train_module, "train_step", overflowing_step)
    assert main([*TRAIN, "--out", str(run), "--resume", "--checkpoint-every", "1e-6"]) == 2

    err = capsys.readouterr().err
    assert f"non-finite weights or optimiser state after step {SPE + 3}: stopped; the last good checkpoint" in err
    assert (run / "last.pt").read_bytes() == kept["last.pt"]


def test_detect_anomaly_reaches_autograd_and_names_the_op(run, monkeypatch, capsys):
    modes = []
    real = torch.autograd.set_detect_anomaly

    def recording(mode, *args, **kw):
        modes.append(mode)
        return real(mode, *args, **kw)

    monkeypatch.setattr(torch.autograd, "set_detect_anomaly", recording)
    anomaly = inject(monkeypatch, "nan gradient", at=1)
    before = snapshot(run)

    with pytest.warns(UserWarning, match="Traceback of forward call"):  # anomaly mode shows where the op was made
        assert main([*TRAIN, "--out", str(run), "--resume", "--detect-anomaly"]) == 2

    assert modes == [True]
    assert anomaly == [True, True]  # on while the loss was computed, and so during its backward
    err = capsys.readouterr().err
    assert f"ram train: error: anomaly detected at step {SPE + 1} (epoch 2, batch 2): Function '" in err
    assert "returned nan values" in err
    assert snapshot(run) == before
