"""`ram sweep`: random search over lr and std on Optuna, resumable, on a tiny synthetic task."""

import json
import sys

import pytest
import torch

from ram import cli, sweep
from ram.config import ConfigError, RunConfig
from ram.data import Digits, mnist

pytest.importorskip("optuna")

TINY = dict(model={"glimpses": 1, "hidden": 16, "what_size": 16, "where_size": 8, "glimpse_size": 16},
            train={"batch_size": 64, "eval_batch_size": 64}, task={"val_size": 64})


@pytest.fixture
def synthetic(monkeypatch):
    """192 random 'digits' instead of MNIST: 128 to train on, 64 to validate, 64 to test."""
    g = torch.Generator().manual_seed(0)
    digits = Digits(torch.randint(0, 256, (192, 28, 28), dtype=torch.uint8, generator=g),
                    torch.randint(0, 10, (192,), generator=g),
                    torch.randint(0, 256, (64, 28, 28), dtype=torch.uint8, generator=g),
                    torch.randint(0, 10, (64,), generator=g))
    monkeypatch.setattr(mnist, "load", lambda *a, **k: digits)


def _run(out, trials):
    return sweep.run("mnist", trials=trials, out=out, epochs=1, threads=1, space=sweep.Space(lr=(1e-4, 1e-2)), **TINY)


def test_trials_train_with_sampled_settings_and_a_rerun_continues(tmp_path, synthetic):
    study = _run(tmp_path, 2)
    assert (tmp_path / "sweep.db").is_file()
    done = [t for t in study.trials if t.state.name == "COMPLETE"]
    assert [t.number for t in done] == [0, 1]
    for t in done:
        assert 1e-4 <= t.params["lr"] <= 1e-2 and 0.03 <= t.params["std"] <= 0.3
        run = tmp_path / f"trial-{t.number}"
        cfg = RunConfig.from_dict(json.loads((run / "config.json").read_text()))
        assert cfg.train.lr == t.params["lr"] and cfg.policy.std == t.params["std"] and cfg.train.epochs == 1
        assert t.value == json.loads((run / "test.json").read_text())["best_val_error"]
    assert done[0].params != done[1].params
    first = (tmp_path / "trial-0" / "metrics.csv").read_text()

    study = _run(tmp_path, 3)  # the same command with more trials: one more, the first two untouched
    assert [t.number for t in study.trials if t.state.name == "COMPLETE"] == [0, 1, 2]
    assert (tmp_path / "trial-0" / "metrics.csv").read_text() == first
    summary = json.loads((tmp_path / "sweep.json").read_text())
    assert len(summary["trials"]) == 3 and summary["best"]["val_error"] == min(t.value for t in study.trials)

    assert _run(tmp_path, 3).trials == study.trials  # nothing left to do


def test_a_retried_trial_resumes_its_own_run_folder(tmp_path, synthetic):
    """What the heartbeat does when a trial's process died: it queues the same parameters again, marked as a retry;
    the retry continues in the dead trial's folder instead of starting a new one."""
    import optuna

    first = _run(tmp_path, 1).trials[0]
    study = optuna.load_study(study_name="mnist", storage=f"sqlite:///{tmp_path / 'sweep.db'}")
    study.add_trial(optuna.trial.create_trial(state=optuna.trial.TrialState.WAITING, params=first.params,
                                              distributions=first.distributions, system_attrs={"failed_trial": 0}))
    retried = _run(tmp_path, 2).trials[1]
    assert retried.params == first.params and retried.user_attrs["run"] == str(tmp_path / "trial-0")
    assert retried.value == first.value  # the finished run was resumed, not trained again
    assert not (tmp_path / "trial-1").exists()


def test_cli_sweep_prints_the_best_trial(tmp_path, synthetic, capsys, monkeypatch):
    real, seen = sweep.run, {}

    def tiny(preset, **kwargs):  # the CLI's settings, plus the tiny model
        seen.update(kwargs, preset=preset)
        return real(preset, **{**kwargs, "model": TINY["model"], "train": TINY["train"], "task": TINY["task"]})

    monkeypatch.setattr(sweep, "run", tiny)
    argv = ["sweep", "--trials", "1", "--epochs", "1", "--threads", "1", "--out", str(tmp_path), "--study", "s1",
            "--lr-range", "0.001", "0.002", "--std-range", "0.1", "0.2"]
    assert cli.main(argv) == 0
    assert "best of 1 trials" in capsys.readouterr().out
    assert seen["study"] == "s1" and seen["space"] == sweep.Space(lr=(0.001, 0.002), std=(0.1, 0.2))
    trial = json.loads((tmp_path / "sweep.json").read_text())["trials"][0]
    assert 0.001 <= trial["params"]["lr"] <= 0.002 and trial["state"] == "COMPLETE"


def test_bad_settings_and_missing_optuna_are_clear_errors(tmp_path, monkeypatch, capsys):
    with pytest.raises(ConfigError, match=r"lr range = \(0.01, 0.001\)"):
        sweep.run("mnist", trials=1, out=tmp_path, space=sweep.Space(lr=(1e-2, 1e-3)))
    assert cli.main(["sweep", "--trials", "0", "--out", str(tmp_path)]) == 2
    assert "trials = 0: must be > 0" in capsys.readouterr().err
    monkeypatch.setitem(sys.modules, "optuna", None)  # import optuna now raises ImportError
    assert cli.main(["sweep", "--trials", "1", "--out", str(tmp_path)]) == 2
    assert "pip install 'recurrent-attention[sweep]'" in capsys.readouterr().err
