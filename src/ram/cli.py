"""The `ram` command. Thin: parse a dataclass with tyro, validate, then call into train/eval/viz.

Every bad setting is reported as `ram CMD: error: FIELD = VALUE: why` with exit code 2, before any work starts.
"""

from __future__ import annotations

import dataclasses
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import tyro

from . import presets
from .checkpoint import CheckpointError
from .config import ConfigError, ModelConfig, RunConfig, TaskConfig, TrainConfig
from .data import DataError
from .train import TrainingError


@dataclass
class Train:
    """Train a model on a preset, evaluate it on the test set, and write a run folder."""

    preset: str = "mnist"
    """Experiment to run (see `ram presets`)."""
    data: str | None = None
    """Train the preset's recipe on other images: a folder (PATH/train/<class>/*.png|jpg and PATH/test/<class>/..., or
    PATH/<class>/... of which 20% of each class is held out for testing), an .npz (x_train, y_train, x_test, y_test,
    optional classes), or a dataset by name (mnist, fashion). Grey or RGB, any size (see --image-size)."""
    image_size: int | None = None
    """--data: the side every image is brought to, scaled to fit keeping its aspect and padded with black. Default:
    the larger side of the first training image."""
    val_size: int | None = None
    """Validation images taken from the end of the training set. Default: 10,000, or for --data PATH a sixth of the
    training images, at most 10,000."""
    model: Literal["ram", "fc", "convnet", "random-glimpses", "screen", "random-agent"] | None = None
    """Model family: RAM or a baseline (the paper's for classification; screen and random-agent for Catch)."""
    glimpses: int | None = None
    patch_size: int | None = None
    """Side of the smallest glimpse patch, in pixels."""
    scales: int | None = None
    """Patches per glimpse, each twice the side of the last."""
    pool: Literal["mean", "max"] | None = None
    """How the sensor shrinks a coarse scale: mean (the paper) or max (seed 002's Catch)."""
    std: float | None = None
    """Standard deviation of the location policy."""
    core: Literal["rnn", "lstm", "gru"] | None = None
    hidden: int | None = None
    """Units of the recurrent core (the paper: 256)."""
    what_size: int | None = None
    """Units of h_g, the glimpse network's reading of the patches (the paper: 128)."""
    glimpse_size: int | None = None
    """Units of g, the glimpse feature fed to the core (the paper: 256)."""
    policy: Literal["gaussian", "saccade"] | None = None
    """Location policy: RAM's Gaussian, or seed 000's discrete saccades on a lattice."""
    saccade_step: int | None = None
    """Saccade policy: pixels per move, the lattice's stride (seed 000: 2)."""
    init_downsample: int | None = None
    """Saccade policy: max-pooling factor of the image the initial-location network reads (seed 000: 4)."""
    dropout: float | None = None
    """Saccade policy: dropout probability in its networks (seed 000: 0.7)."""
    state_dropout: float | None = None
    """Dropout on the core state where the classifier reads it (the mnist-saccade preset: 0.5)."""
    shift: int | None = None
    """Move each training image by a random whole number of pixels up to this, along each axis (augmentation)."""
    rotate: float | None = None
    """Turn each training image by a random angle up to this many degrees either way (augmentation)."""
    scale: float | None = None
    """Resize each training image by a random factor in [1 - scale, 1 + scale] (augmentation)."""
    glimpse_net: Literal["ram", "pixels", "pixels+where"] | None = None
    """What enters the core: RAM's glimpse network, the raw patch (seed 000), or the raw patch and its location."""
    reinforce_core: bool | None = None
    """REINFORCE's gradient also reaches the core and glimpse net (RAM: off)."""
    detach_location: bool | None = None
    """With --reinforce-core, keep the location policy's REINFORCE gradient out of the core (Catch: on)."""
    baseline: Literal["state", "scalar", "batch"] | None = None
    """Reward baseline: RAM's learned b(h_t), one learned number, or the batch's mean reward."""
    reward: Literal["correct", "prob"] | None = None
    """Classification reward: 1 for a right guess (RAM), or the probability of the right guess (seed 000)."""
    lr: float | None = None
    lr_min: float | None = None
    schedule: Literal["cosine", "constant"] | None = None
    """Learning rate: cosine from --lr down to --lr-min over the run (the presets), or constant at --lr."""
    optimizer: Literal["adam", "sgd"] | None = None
    momentum: float | None = None
    """SGD's momentum (0.9 in the presets)."""
    batch_size: int | None = None
    epochs: int | None = None
    mc_samples: int | None = None
    """Monte-Carlo copies of each image per training step."""
    clip_grad: float | None = None
    rl_weight: float | None = None
    """Weight of the REINFORCE term in the hybrid loss (1 in the presets)."""
    means_weight: float | None = None
    """Weight of a cross-entropy on one more episode per image along the policy means (0 in the presets)."""
    step_weight: float | None = None
    """Weight of the mean cross-entropy of the guesses after each earlier glimpse (0 in the presets)."""
    precision: Literal["fp32", "bf16"] | None = None
    """Training arithmetic: bf16 runs the glimpse network and core in bfloat16 (mixed precision)."""
    ema: float | None = None
    """Decay of a moving average of the weights that is validated, kept and tested instead of the last step's (0 in
    the presets: off)."""
    seed: int | None = None
    init: str | None = None
    """Start from these weights: a shipped model's name or a run folder with the same network (a second phase of
    training, e.g. `--init mnist-g6 --std 0.03`)."""
    train_size: int | None = None
    """Train on the first N training images only (0: all). For smoke tests and quick experiments."""
    epoch_games: int | None = None
    """Catch: games per epoch (the preset: 22,400, seed 002's 350 batches of 64)."""
    val_games: int | None = None
    """Catch: games played along the policies' modes after each epoch to choose the best weights."""
    entropy_weight: float | None = None
    """Bonus for the entropy of the policies' choices (0 in the classification presets)."""
    out: Path | None = None
    """Run folder (default runs/PRESET-gG-sSEED)."""
    device: str = "auto"
    """auto picks CUDA when present."""
    threads: int | None = None
    """CPU threads for PyTorch (default: PyTorch's choice)."""
    resume: bool = False
    """Continue the run in --out from its last checkpoint."""
    checkpoint_every: float = 10.0
    """Minutes between mid-epoch checkpoints (the end of every epoch always writes one)."""
    detect_anomaly: bool = False
    """Run under torch.autograd.detect_anomaly to find the op that makes a NaN (slow)."""
    tensorboard: bool = False
    """Also log scalars and pictures for TensorBoard into OUT/tensorboard."""
    progress: bool = True

    def config(self) -> RunConfig:
        model = self._overrides(ModelConfig) | dict(kind=self.model)
        train = self._overrides(TrainConfig)
        task = self._overrides(TaskConfig)
        by_name = self.data in ("mnist", "fashion")
        if by_name or self.data is None:
            if self.image_size is not None:
                raise ConfigError(f"image_size = {self.image_size}: only with --data PATH (your own images)")
            task |= dict(dataset=self.data, val_size=self.val_size)
        cfg = presets.resolve(self.preset, task=task, model=model, train=train)
        if self.data is None or by_name:
            return cfg
        from .data import images

        _positive("image_size", self.image_size)
        source = images.inspect(self.data, size=self.image_size or 0, test_fraction=cfg.task.test_fraction)
        return images.configure(cfg, source, val_size=self.val_size, progress=self.progress)

    def _overrides(self, section: type) -> dict:
        """The flags named after fields of a config section, so that a new field needs one flag and no list to keep
        in step. image_size and val_size are left out: with --data PATH they size your own images instead."""
        names = {f.name for f in dataclasses.fields(section)} & {f.name for f in dataclasses.fields(self)}
        return {name: getattr(self, name) for name in names - {"image_size", "val_size"}}

    def run(self) -> None:
        from .train import fit, resolve_device

        cfg = self.config()
        resolve_device(self.device)
        _positive("threads", self.threads)
        _positive("checkpoint_every", self.checkpoint_every)
        name = cfg.preset if cfg.model.kind == "ram" else f"{cfg.preset}-{cfg.model.kind}"
        out = self.out or Path("runs") / f"{name}-g{cfg.model.glimpses}-s{cfg.train.seed}"
        hooks = []
        if self.tensorboard:
            from .viz import tensorboard_hook

            hooks.append(tensorboard_hook(out))
        try:
            from .viz import run_pictures_hook

            hooks.append(run_pictures_hook)
        except ImportError:
            pass
        result = fit(cfg, out, resume=self.resume, device=self.device, threads=self.threads, progress=self.progress,
                     checkpoint_every=self.checkpoint_every, detect_anomaly=self.detect_anomaly, hooks=hooks)
        if result and "catch_rate" in result:
            print(f"caught {result['catch_rate']:.2f}% of {result['n']} balls; run folder {out}")
        elif result:
            print(f"test error {result['error']:.2f}% on {result['n']} images; run folder {out}")


@dataclass
class Eval:
    """Evaluate a trained model on the test set."""

    checkpoint: Path | None = None
    """A run folder written by `ram train`."""
    pretrained: str | None = None
    """A shipped model (see `ram eval --list`)."""
    mc_samples: int | None = None
    """The headline error is one episode per image along the policy means (the paper's cost); M > 0 also reports
    error_averaged, the class probabilities of M sampled episodes averaged (M times the glimpses). Default: the
    model's recipe (eval_mc_samples, 10 for the presets)."""
    seed: int = 0
    """Seed of the generated test set (translated, cluttered) and of Monte-Carlo sampling; 0 is the standard set."""
    split: Literal["test", "val"] = "test"
    json: bool = False
    """Print one JSON object."""
    device: str = "auto"
    batch_size: int = 1000
    out_file: Path | None = None
    """Also write the JSON result to this file (atomically)."""

    episodes: int | None = None
    """Catch: games played (default 1000; the same games for the same --seed)."""

    def run(self) -> None:
        from .hub import load_run, run_info
        from .tasks import make_task
        from .train import describe, resolve_device, seed_everything

        _positive("batch_size", self.batch_size)
        _positive("episodes", self.episodes)
        if self.mc_samples is not None and self.mc_samples < 0:
            raise ConfigError(f"mc_samples = {self.mc_samples}: must be >= 0")
        if self.seed < 0:
            raise ConfigError(f"seed = {self.seed}: must be >= 0")
        device = resolve_device(self.device)
        model, cfg, source = load_run(checkpoint=self.checkpoint, pretrained=self.pretrained)
        if cfg.task.classifies and self.episodes is not None:
            raise ConfigError(f"episodes = {self.episodes}: only a game is played for a number of episodes; "
                              f"{cfg.preset} is evaluated on its whole {self.split} set")
        if not cfg.task.classifies and self.mc_samples is not None:
            raise ConfigError(f"mc_samples = {self.mc_samples}: Catch reports the catch rate along the policies' modes "
                              "and with sampled moves; set the number of games with --episodes")
        model.to(device)
        task = make_task(cfg, progress=not self.json)
        seed_everything(self.seed)
        metrics = task.report(model, split=self.split, seed=self.seed, device=device, progress=not self.json,
                              mc_samples=self.mc_samples, episodes=self.episodes or 1000, batch_size=self.batch_size)
        result = describe(cfg, metrics, checkpoint=source, test_seed=self.seed, split=self.split,
                          **run_info(self.checkpoint, self.pretrained))
        if self.out_file:
            from .checkpoint import atomic_write

            atomic_write(self.out_file, (json.dumps(result, indent=2) + "\n").encode())
        if self.json:
            print(json.dumps(result))
        elif "catch_rate" in metrics:
            print(f"{cfg.preset} {cfg.model.kind}: caught {metrics['catch_rate']:.2f}% of {metrics['n']} balls "
                  f"({self.split} games, seed {self.seed}, policies' modes); with sampled moves and glimpses: "
                  f"{metrics['catch_rate_sampled']:.2f}%")
        else:
            line = (f"{cfg.preset} {cfg.model.kind} g{cfg.model.glimpses}: {self.split} error {metrics['error']:.2f}% "
                    f"({metrics['n']} images, seed {self.seed}, {metrics['protocol']})")
            if "error_averaged" in metrics:
                line += f"; {metrics['averaged_protocol']}: {metrics['error_averaged']:.2f}%"
            print(line)


@dataclass
class Bench:
    """Measure training and evaluation throughput (images per second; for Catch, games per second) of a preset's model
    at batch 128."""

    preset: str = "mnist"
    model: Literal["ram", "fc", "convnet", "random-glimpses", "screen", "random-agent"] | None = None
    """A baseline instead of the preset's model (e.g. --preset catch --model screen)."""
    json: bool = False
    device: str = "auto"
    threads: int | None = None
    batch_size: int = 128
    seconds: float = 10.0
    """Seconds of timed training (evaluation gets half)."""
    repeats: int = 3
    """Timed repeats; the median is reported."""
    compile: bool | None = None
    """Compile the RAM loop with torch.compile as long training runs do (default: when seconds * repeats >= 10)."""
    precision: Literal["fp32", "bf16"] | None = None
    """Training arithmetic (default: the preset's)."""

    def run(self) -> None:
        from .bench import run as bench

        _positive("batch_size", self.batch_size)
        _positive("seconds", self.seconds)
        _positive("repeats", self.repeats)
        _positive("threads", self.threads)
        cfg = presets.resolve(self.preset, model=dict(kind=self.model), train=dict(precision=self.precision))
        result = bench(cfg, device=self.device, threads=self.threads,
                       batch_size=self.batch_size, seconds=self.seconds, repeats=self.repeats, compile=self.compile)
        if self.json:
            print(json.dumps(result))
        else:
            for k, v in result.items():
                print(f"{k:>24}: {v}")


@dataclass
class Presets:
    """List the named experiments."""

    def run(self) -> None:
        for name, (cfg, about) in presets.PRESETS.items():
            m, t = cfg.model, cfg.train
            policy = f"std {m.std}" if m.policy == "gaussian" else f"saccades of {m.saccade_step} px"
            print(f"{name:<22} {about}\n{'':<22} {policy}, {t.optimizer} lr {t.lr}->{t.lr_min} {t.schedule}, "
                  f"batch {t.batch_size}, M {t.mc_samples}, {t.epochs} epochs")


@dataclass
class Reproduce:
    """Retrain rows of the paper's tables from scratch with their recipes (`ram reproduce all`, or a row name)."""

    row: tyro.conf.Positional[str | None] = None
    """A row name (see --list) or `all`."""
    dry_run: bool = False
    """Print the commands instead of running them."""
    list: bool = False
    """List the rows with the paper's numbers."""
    precision: Literal["fp32", "bf16"] | None = None
    """Train in this arithmetic instead of the row's: fp32 on a CPU without bfloat16 instructions, where the bf16
    rows would run 15-21x slower."""

    def run(self) -> None:
        import shlex
        import subprocess

        from .results import BY_NAME, ROWS, reproduce_commands

        if self.list:
            for r in ROWS:
                print(f"{r.name:<30} paper A {r.paper_a if r.paper_a is not None else '-':>6}  "
                      f"B {r.paper_b if r.paper_b is not None else '-':>6}  {r.note}")
            return
        if self.row is None:
            raise ConfigError("row: give a row name or `all` (see ram reproduce --list)")
        if self.row != "all" and self.row not in BY_NAME:
            raise ConfigError(f"row = {self.row!r}: unknown; rows are all, {', '.join(BY_NAME)}")
        rows = ROWS if self.row == "all" else [BY_NAME[self.row]]
        for row in rows:
            for command in reproduce_commands(row, precision=self.precision):
                print(shlex.join(command), flush=True)
                if not self.dry_run:
                    subprocess.run(command, check=True)


@dataclass
class Results:
    """Regenerate the README's results table from results/*.json."""

    results: Path = Path("results")
    readme: Path = Path("README.md")

    def run(self) -> None:
        from .results import load_results, table, update_readme

        if not self.readme.is_file():
            raise ConfigError(f"readme = {str(self.readme)!r}: no such file")
        changed = update_readme(self.readme, self.results)
        print(table(load_results(self.results)))
        print(f"{self.readme}: {'updated' if changed else 'already up to date'}")


@dataclass
class Viz:
    """Draw where a trained model looks, into --out: tracks.png, glimpses.png and glimpses.gif (a saccade model also
    saccades.png), or for a Catch agent catch.gif and one catch-I.png per game."""

    out: Path
    """Folder for the pictures (made if missing)."""
    checkpoint: Path | None = None
    """A run folder written by `ram train`."""
    pretrained: str | None = None
    """A shipped model."""
    n: int | None = None
    """Images in tracks.png and saccades.png (glimpses.png shows the first 3, glimpses.gif the first 4);
    for Catch, games played and drawn. None: 16 images, or 4 games."""
    split: Literal["test", "val"] = "test"
    """Where the images come from (Catch games come from --seed alone)."""
    seed: int = 0
    """Seed of the generated test set, as in `ram eval`, and of which images are drawn (0: the first n);
    for Catch, of the games' starts."""

    def run(self) -> None:
        if self.n is not None and self.n < 1:
            raise ConfigError(f"n = {self.n}: must be >= 1")
        if self.seed < 0:
            raise ConfigError(f"seed = {self.seed}: must be >= 0")
        from .data import TaskData
        from .hub import load_run
        from .train import seed_everything
        from .viz import render, render_catch

        model, cfg, source = load_run(checkpoint=self.checkpoint, pretrained=self.pretrained)
        if cfg.model.kind not in ("ram", "random-glimpses"):
            field, value = ("pretrained", self.pretrained) if self.pretrained else ("checkpoint", str(self.checkpoint))
            raise ConfigError(f"{field} = {value!r}: a {cfg.model.kind} model reads the whole image and takes no "
                              "glimpses, so there is nothing to draw; viz needs a ram or random-glimpses model")
        if cfg.task.classifies:
            data = TaskData(cfg.task, seed=cfg.train.seed)
            split = data.test(self.seed) if self.split == "test" else data.val()
            seed_everything(self.seed)  # random-glimpses draws its locations from the global generator
            paths = render(model, split, self.out, n=self.n or 16, seed=self.seed, classes=cfg.task.labels)
        else:  # a game has no data set: the games are played here
            seed_everything(self.seed)
            paths = render_catch(model, cfg, self.out, games=self.n or 4, seed=self.seed)
        for path in paths:
            print(path)


@dataclass
class Sweep:
    """Random search over lr and the policy std (log-uniform, like the paper), one training run per trial (Optuna)."""

    preset: str = "mnist"
    trials: int = 20
    """Completed trials the study should hold; rerunning the same command continues an interrupted sweep."""
    storage: str | None = None
    """Optuna database URL (default sqlite:///OUT/sweep.db); a shared server URL lets many machines join a study."""
    study: str | None = None
    """Study name (default: the preset)."""
    epochs: int | None = None
    """Epochs per trial (default: the preset's)."""
    out: Path | None = None
    """Folder for the trials' run folders OUT/trial-N and the summary sweep.json (default sweeps/PRESET)."""
    lr_range: tuple[float, float] = (1e-4, 1e-2)
    std_range: tuple[float, float] = (0.03, 0.3)
    sampler: Literal["random", "tpe"] = "random"
    seed: int = 0
    """Seed of the sampler (each trial trains with the preset's seed)."""
    train_size: int | None = None
    """Train each trial on the first N training images only."""
    device: str = "auto"
    threads: int | None = None

    def run(self) -> None:
        from .sweep import Space, run

        _positive("trials", self.trials)
        _positive("epochs", self.epochs)
        _positive("threads", self.threads)
        out = self.out or Path("sweeps") / self.preset
        study = run(self.preset, trials=self.trials, out=out, storage=self.storage, study=self.study,
                    epochs=self.epochs, space=Space(lr=self.lr_range, std=self.std_range), sampler=self.sampler,
                    seed=self.seed, task={"train_size": self.train_size} if self.train_size is not None else None,
                    device=self.device, threads=self.threads)
        done = [t for t in study.trials if t.value is not None]
        if done:
            best = min(done, key=lambda t: t.value)
            print(f"best of {len(done)} trials: val error {best.value:.2f}% with lr {best.params['lr']:.3g}, "
                  f"std {best.params['std']:.3g} ({best.user_attrs.get('run')}); all trials in {out / 'sweep.json'}")


@dataclass
class ExportFolder:
    """Write a built-in dataset as a folder of PNGs, OUT/train/<class>/NNNNN.png and OUT/test/<class>/NNNNN.png with
    the class names as folder names: the layout `ram train --data OUT` reads, for trying it on real images."""

    out: Path
    """The folder to make; it must not exist."""
    dataset: Literal["fashion", "mnist"] = "fashion"
    progress: bool = True

    def run(self) -> None:
        from .config import TaskConfig
        from .data import images, load

        n = images.export_folder(load(self.dataset, progress=self.progress), TaskConfig(dataset=self.dataset).labels,
                                 self.out, progress=self.progress)
        print(f"wrote {n} images of {self.dataset} into {self.out}")


@dataclass
class Serve:
    """Start a page to play with on http://HOST:PORT: draw a digit and watch a model's glimpses, or watch the Catch
    agent play and play against it. Needs the serve extra: pip install -e ".[serve]"."""

    pretrained: str | None = None
    """The shipped model the page opens with (default mnist-g6; every shipped model can be picked on the page)."""
    checkpoint: Path | None = None
    """A run folder written by `ram train`, offered beside the shipped models and opened with."""
    host: str = "127.0.0.1"
    """Address to listen on. The default keeps the page on this machine; 0.0.0.0 shows it to the network."""
    port: int = 8000

    def run(self) -> None:
        import socket

        if not 1 <= self.port <= 65535:
            raise ConfigError(f"port = {self.port}: must be in 1..65535")
        if self.pretrained is not None and self.checkpoint is not None:
            raise ConfigError("checkpoint/pretrained: give at most one of --checkpoint DIR and --pretrained NAME")
        try:
            import uvicorn

            from .serve import create_app, server
        except ImportError as e:
            raise ConfigError(f"serve needs the serve extra ({e}): pip install -e \".[serve]\"") from None
        app = create_app(default=self.pretrained, checkpoint=self.checkpoint, host=self.host)
        # Bind here rather than in uvicorn, so that a port in use is reported like any other bad setting.
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((self.host, self.port))
        except OSError as e:
            sock.close()
            raise ConfigError(f"host/port = {self.host}:{self.port}: cannot listen there ({e.strerror or e})") from None
        shown = f"[{self.host}]" if family == socket.AF_INET6 else self.host
        print(f"ram serve: http://{shown}:{self.port}/ (Ctrl-C stops)", flush=True)
        uvicorn.Server(server.config(app)).run(sockets=[sock])


def _positive(name: str, value) -> None:
    if value is not None and not value > 0:
        raise ConfigError(f"{name} = {value!r}: must be > 0")


COMMANDS = {"train": Train, "eval": Eval, "bench": Bench, "presets": Presets, "reproduce": Reproduce,
            "results": Results, "viz": Viz, "sweep": Sweep, "export-folder": ExportFolder,
            "serve": Serve}


def main(argv: list[str] | None = None) -> int:
    args = tyro.extras.subcommand_cli_from_dict(
        COMMANDS, prog="ram", args=argv, description="Recurrent Attention Model (Mnih et al. 2014)"
    )
    command = next(name for name, cls in COMMANDS.items() if isinstance(args, cls))
    try:
        args.run()
    except (ConfigError, CheckpointError, DataError, TrainingError) as e:
        print(f"ram {command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"ram {command}: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
