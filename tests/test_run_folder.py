"""The run folder against careless hands (issue 61): two runs into one folder, a changed config.json under --resume,
weights that do not fit their config, a full disk, stale temp files. Each test failed before its fix."""

import json
import subprocess
import sys
import textwrap

import pytest

from ram.cli import main
from ram.runlock import run_lock

TRAIN = ["train", "--epochs", "1", "--glimpses", "2", "--no-progress"]

HOLD = textwrap.dedent("""
    import sys, time
    from ram.runlock import run_lock
    with run_lock(sys.argv[1]):
        print("held", flush=True)
        time.sleep(120)
""")


def test_a_second_run_into_a_folder_in_use_is_refused_naming_the_process(tmp_path, capsys):
    """Two `ram train --out X` at once both exited 0, and one run's result was lost."""
    out = tmp_path / "run"
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(out)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        assert main([*TRAIN, "--out", str(out), "--seed", "1"]) == 2
        err = capsys.readouterr().err
        assert f"ram train: error: out = {str(out)!r}: another ram train (process {holder.pid}) is writing this " \
               "run folder" in err, err
    finally:
        holder.kill()  # as kill -9 would: the kernel frees the lock, the owner file stays
        holder.wait()
    with run_lock(out):
        assert (out / ".owner").read_text().strip() != str(holder.pid)
    assert f"took over the run folder from process {holder.pid}, which ended without releasing it" \
           in capsys.readouterr().err
    assert not (out / ".owner").exists()  # released: nobody holds it


# ---- in process, on small synthetic data ----------------------------------------------------------------------------

import errno  # noqa: E402
import os  # noqa: E402
from pathlib import Path  # noqa: E402

import torch  # noqa: E402

from ram import checkpoint as ckpt  # noqa: E402
from ram.config import ModelConfig, RunConfig, TrainConfig  # noqa: E402
from ram.tasks import DigitsConfig  # noqa: E402
from ram.data import Digits, TaskData  # noqa: E402
from ram.hub import load_checkpoint  # noqa: E402
from ram.models import build_model  # noqa: E402
from ram.train import fit  # noqa: E402


@pytest.fixture(scope="module")
def digits() -> Digits:
    """Noise 'digits': nothing here cares what the pixels show."""
    g = torch.Generator().manual_seed(0)
    return Digits(torch.randint(0, 256, (150, 28, 28), dtype=torch.uint8, generator=g),
                  torch.randint(0, 10, (150,), generator=g),
                  torch.randint(0, 256, (40, 28, 28), dtype=torch.uint8, generator=g),
                  torch.randint(0, 10, (40,), generator=g))


def small(glimpses: int = 2) -> RunConfig:
    model = ModelConfig(glimpses=glimpses, patch_size=8, scales=1, what_size=8, where_size=8, glimpse_size=16,
                        hidden=16)
    train = TrainConfig(epochs=1, batch_size=50, mc_samples=1, seed=7, eval_batch_size=64, precision="fp32")
    return RunConfig(preset="test", task=DigitsConfig(val_size=50), model=model, train=train).validate()


@pytest.fixture
def run(digits, tmp_path, monkeypatch):
    """fit(cfg, folder, resume=...) of a small config on the noise digits, one thread, no fsync."""
    monkeypatch.setattr(ckpt.os, "fsync", lambda fd: None)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)

    def go(cfg: RunConfig, out: Path, **kw):
        return fit(cfg, out, data=TaskData(cfg.task, seed=cfg.train.seed, digits=digits), progress=False, **kw)

    yield go
    torch.set_num_threads(threads)


@pytest.mark.parametrize("damage", ["truncated", "edited"])
def test_resume_writes_a_changed_config_json_again_from_the_checkpoint(run, tmp_path, capsys, damage):
    """A finished run's config.json truncated, or edited to glimpses 6 -> 2: --resume exited 0 and left it, and
    `ram eval` then failed, or built another model around the weights."""
    cfg, out = small(glimpses=3), tmp_path / "run"
    run(cfg, out)
    path = out / "config.json"
    path.write_text(path.read_text()[:40] if damage == "truncated"
                    else json.dumps(small(glimpses=2).to_dict()))
    capsys.readouterr()
    run(cfg, out, resume=True)
    err = capsys.readouterr().err
    assert f"ram: notice: {path} " in err and f"written again from {out / 'last.pt'}" in err, err
    if damage == "edited":
        assert "model.glimpses: 2 -> 3" in err
    assert ckpt.read_config(out) == cfg and load_checkpoint(out)[1] == cfg


def test_eval_refuses_weights_saved_with_another_model_config(tmp_path, capsys):
    """A g2 config over g6 weights: the same shapes, so they loaded silently and evaluated to 49.86%."""
    folder = tmp_path / "run"
    ckpt.export_model(folder, build_model(small(glimpses=6).model), small(glimpses=6))
    (folder / "config.json").write_text(json.dumps(small(glimpses=2).to_dict()))
    assert main(["eval", "--checkpoint", str(folder)]) == 2
    err = capsys.readouterr().err
    assert f"weights {folder / 'model.safetensors'} were saved with another model config than the one given " \
           "(model.glimpses: 6 in the weights, 2 in the config)" in err and "Traceback" not in err, err


@pytest.mark.parametrize("loop", [{"epoch": "1"}, {"history": None}, {"sums": {"loss": "x"}}, {"step": -1}],
                         ids=["epoch-str", "history-none", "sums-str", "step-negative"])
def test_a_last_pt_whose_loop_state_has_wrong_types_is_refused(run, tmp_path, loop):
    cfg, out = small(), tmp_path / "run"
    run(cfg, out)
    state = ckpt.load_state(out / "last.pt")
    state["loop"] = {**state["loop"], **loop}
    ckpt.save_state(out / "last.pt", state)
    with pytest.raises(ckpt.CheckpointError, match=r"last.pt is not a training state written by ram train \(bad loop"):
        run(cfg, out, resume=True)


def full_disk_at(name: str, monkeypatch) -> None:
    """Writing a file called `name` fails as a full disk fails it: at the flush to disk (the page cache takes the
    bytes, the disk then has no room for them)."""
    def fsync(fd):
        if os.readlink(f"/proc/self/fd/{fd}").split("/")[-1].startswith(f".{name}."):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(ckpt.os, "fsync", fsync)


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="names the file being written through /proc")
@pytest.mark.parametrize("when", ["train", "resume"])
def test_a_full_disk_is_one_error_naming_the_folder_and_the_bytes(run, tmp_path, monkeypatch, when):
    cfg, out = small(), tmp_path / "run"
    if when == "resume":
        run(cfg, out)
        before = (out / "last.pt").read_bytes()
        full_disk_at("config.json", monkeypatch)  # a resume writes config.json again when it was damaged
        (out / "config.json").write_text("{")
    else:
        full_disk_at("last.pt", monkeypatch)
    with pytest.raises(ckpt.DiskFull) as e:
        run(cfg, out, resume=when == "resume")
    name = "config.json" if when == "resume" else "last.pt"
    assert str(e.value).startswith(f"{out}: no space left on the disk (No space left on device): writing {name} "
                                   "needs "), e.value
    assert f"{name} is as it was before" in str(e.value) and not list(out.glob(".*.tmp"))
    if when == "resume":
        assert (out / "last.pt").read_bytes() == before
    else:
        load_checkpoint(out)  # the epoch's weights and config.json, written before, still load


def test_a_stale_config_temp_file_is_removed_when_a_run_killed_before_its_first_checkpoint_resumes(run, tmp_path):
    cfg, out = small(), tmp_path / "run"
    out.mkdir()
    (out / "config.json").write_text(json.dumps(cfg.to_dict()))
    stale = out / ".config.json.x1y2z3.tmp"  # a kill inside the first write of config.json leaves this
    stale.write_text("{")
    run(cfg, out, resume=True)
    assert not stale.exists() and (out / "last.pt").is_file()
