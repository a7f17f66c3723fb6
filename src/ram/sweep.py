"""Random search over the learning rate and the location policy's std, as the paper tuned RAM, on Optuna.

Each trial samples lr and std (log-uniform), trains the preset with them into OUT/trial-N with `train.fit`, and
reports the best validation error (the test set stays untouched). The study lives in a database: by default the
SQLite file OUT/sweep.db; any SQLAlchemy URL (postgresql://..., mysql://...) lets several machines work on one
study. `trials` is the number of completed trials the study should reach, so rerunning the same command continues
an interrupted sweep, and a trial whose process died is retried with its parameters (after the heartbeat's grace
period), resuming from its run folder's last checkpoint.

Optuna is an optional dependency: pip install 'recurrent-attention[sweep]'.
"""

from __future__ import annotations

import json
import math
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import checkpoint as ckpt
from . import presets
from .config import ConfigError, RunConfig
from .data import TaskData
from .train import TrainingError, fit

HEARTBEAT_SECONDS = 30
GRACE_SECONDS = 90  # a trial silent for this long is taken as dead and retried


@dataclass(frozen=True, kw_only=True)
class Space:
    """The search space: both parameters log-uniform, like the paper's random search."""

    lr: tuple[float, float] = (1e-4, 1e-2)
    std: tuple[float, float] = (0.03, 0.3)

    def validate(self) -> None:
        for name in ("lr", "std"):
            lo, hi = getattr(self, name)
            if not (0 < lo < hi and math.isfinite(hi)):
                raise ConfigError(f"{name} range = ({lo}, {hi}): must satisfy 0 < low < high")


def _optuna():
    try:
        import optuna
    except ImportError:
        raise ConfigError("ram sweep needs Optuna, an optional dependency: pip install 'recurrent-attention[sweep]'") \
            from None
    return optuna


def _storage(optuna, url: str):
    """An RDB storage with heartbeats, so a trial whose process was killed is failed and queued again."""
    with warnings.catch_warnings():  # heartbeats are "experimental" in optuna since 2.8
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        try:
            from optuna.storages import (
                RetryHeartbeatStaleTrialCallback as Retry,  # optuna >= 4.9
            )
            callback = {"heartbeat_stale_trial_callback": Retry(max_retry=3)}
        except ImportError:
            from optuna.storages import RetryFailedTrialCallback as Retry
            callback = {"failed_trial_callback": Retry(max_retry=3)}
        return optuna.storages.RDBStorage(url, heartbeat_interval=HEARTBEAT_SECONDS, grace_period=GRACE_SECONDS,
                                          **callback)


def _retried_from(trial) -> int | None:
    """The number of the dead trial this one repeats, if any (set by the heartbeat's retry callback)."""
    frozen = next(t for t in trial.study.get_trials(deepcopy=False) if t.number == trial.number)
    return frozen.system_attrs.get("failed_trial")


def run(
    preset: str,
    *,
    trials: int,
    out: Path,
    storage: str | None = None,
    study: str | None = None,
    epochs: int | None = None,
    space: Space = Space(),
    sampler: str = "random",
    seed: int = 0,
    model: dict[str, Any] | None = None,
    train: dict[str, Any] | None = None,
    task: dict[str, Any] | None = None,
    loss: dict[str, Any] | None = None,
    device: str = "auto",
    threads: int | None = None,
    progress: bool = False,
):
    """Run the study until it holds `trials` completed trials; returns the optuna Study.

    model / train / task / loss: fixed overrides of the preset for every trial (e.g. glimpses, batch_size, train_size).
    """
    optuna = _optuna()
    if trials < 1:
        raise ConfigError(f"trials = {trials}: must be >= 1")
    if sampler not in ("random", "tpe"):
        raise ConfigError(f"sampler = {sampler!r}: must be 'random' or 'tpe'")
    space.validate()
    base = presets.resolve(preset, task=task, model=model, train={**(train or {}), "epochs": epochs}, loss=loss)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    url = storage or f"sqlite:///{(out / 'sweep.db').resolve()}"
    name = study or preset
    samplers = {"random": optuna.samplers.RandomSampler, "tpe": optuna.samplers.TPESampler}
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    the_study = optuna.create_study(study_name=name, storage=_storage(optuna, url), direction="minimize",
                                    sampler=samplers[sampler](seed=seed), load_if_exists=True)
    the_study.set_user_attr("preset", preset)
    data = TaskData(base.task, seed=base.train.seed, progress=progress)  # one copy for every trial

    def objective(trial) -> float:
        lr = trial.suggest_float("lr", *space.lr, log=True)
        std = trial.suggest_float("std", *space.std, log=True)
        number = _retried_from(trial)
        folder = out / f"trial-{trial.number if number is None else number}"
        if number is None and (folder / "last.pt").exists():
            raise ConfigError(f"{folder} already holds a run, not trial {trial.number} of study {name!r} in {url}: "
                              "pass that study's --storage/--study, or use another --out")
        cfg = trial_config(base, lr=lr, std=std)
        trial.set_user_attr("run", str(folder))
        try:
            result = fit(cfg, folder, resume=(folder / "last.pt").exists(), device=device, threads=threads,
                         progress=progress, data=data)
        except TrainingError as e:  # a diverging lr is a result of the search, not a crash of it
            trial.set_user_attr("failed", str(e))
            return math.nan  # optuna records the trial as failed, and it does not count towards `trials`
        trial.set_user_attr("test_error", result.get("error"))
        return float(result["best_val_error"])

    complete = optuna.trial.TrialState.COMPLETE
    remaining = trials - len(the_study.get_trials(deepcopy=False, states=(complete,)))
    if remaining > 0:
        the_study.optimize(objective, n_trials=remaining,
                           callbacks=[optuna.study.MaxTrialsCallback(trials, states=(complete,))])
    write_summary(the_study, out / "sweep.json")
    return the_study


def trial_config(base: RunConfig, *, lr: float, std: float) -> RunConfig:
    """The preset with a trial's lr and std. lr_min is scaled with lr so the cosine schedule keeps its shape."""
    import dataclasses

    lr_min = min(base.train.lr_min * lr / base.train.lr, lr)
    return dataclasses.replace(
        base,
        policy=dataclasses.replace(base.policy, std=std),
        train=dataclasses.replace(base.train, lr=lr, lr_min=lr_min),
    ).validate()


def write_summary(study, path: Path) -> None:
    """Every trial of the study (number, state, parameters, validation and test error, run folder) as JSON."""
    rows = [{"number": t.number, "state": t.state.name, "params": t.params, "val_error": t.value,
             "test_error": t.user_attrs.get("test_error"), "run": t.user_attrs.get("run"),
             "failed": t.user_attrs.get("failed")} for t in study.get_trials(deepcopy=False)]
    done = [r for r in rows if r["state"] == "COMPLETE"]
    best = min(done, key=lambda r: r["val_error"]) if done else None
    ckpt.atomic_write(path, json.dumps({"study": study.study_name, "best": best, "trials": rows}, indent=2).encode())
