"""The `ram` command. Thin: parse a dataclass with tyro, validate, then call into train/eval/viz.

Every bad setting is reported as `ram CMD: error: FIELD = VALUE: why` with exit code 2, before any work starts.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import sys
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Literal, Union

import tyro

from . import presets
from .checkpoint import CheckpointError
from .config import ConfigError, ModelKind
from .data import DataError
from .printable import encodable, shown
from .flags import HELP_SECTIONS, Recipe, defaults, overview, section_help
from .train import TrainingError


@dataclass
class Train(Recipe):
    """Train a model on a preset, evaluate it on the test set, and write a run folder."""

    out: Path | None = None
    """Run folder (default runs/PRESET-gG-sSEED; runs/PRESET-KIND-sSEED for a model without glimpses)."""
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
    """Progress bars for the epochs and the evaluation."""

    def run(self) -> None:
        from .train import fit, resolve_device

        cfg, why, data = self.prepare(progress=self.progress)  # data: what --data PATH found, read by the task
        resolve_device(self.device)
        _positive("threads", self.threads)
        _positive("checkpoint_every", self.checkpoint_every)
        for line in why:  # the auto recipe's choices or what svhn found, before any image is decoded or step taken
            print(line, flush=True)
        name = f"{cfg.preset}-{cfg.model.kind}" if cfg.model.about.compared else cfg.preset
        glimpses = f"-g{cfg.model.glimpses}" if cfg.model.about.glimpses else ""
        out = self.out or Path("runs") / f"{name}{glimpses}-s{cfg.train.seed}"
        about = presets.PRESETS[cfg.preset][1] if cfg.preset in presets.PRESETS else ""
        print(f"ram train: preset {cfg.preset}{f' ({about})' if about else ''}, {cfg.model.kind} model, "
              f"{cfg.train.epochs} epochs; run folder {out}", flush=True)
        hooks = []
        if self.tensorboard:
            from .viz import tensorboard_hook

            hooks.append(tensorboard_hook(out))
        try:
            from .viz import run_pictures_hook

            hooks.append(run_pictures_hook)
        except ImportError:
            pass
        # The headline is the trained task's: a new one would read the data again, and a folder changed during
        # training then failed a finished run.
        finished = {}
        hooks.append(lambda event, *, task, **_: finished.update(task=task) if event == "end" else None)
        result = fit(cfg, out, resume=self.resume, device=self.device, threads=self.threads, progress=self.progress,
                     checkpoint_every=self.checkpoint_every, detect_anomaly=self.detect_anomaly, data=data, hooks=hooks)
        if result:
            print(f"{finished['task'].headline(result)}; run folder {out}")


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
        task = make_task(cfg, progress=not self.json)
        task.check_report(mc_samples=self.mc_samples, episodes=self.episodes, split=self.split)
        model.to(device)
        seed_everything(self.seed)
        metrics = task.report(model, split=self.split, seed=self.seed, device=device, progress=not self.json,
                              mc_samples=self.mc_samples, episodes=self.episodes, batch_size=self.batch_size)
        result = describe(cfg, metrics, checkpoint=source, test_seed=self.seed, split=self.split,
                          **run_info(self.checkpoint, self.pretrained))
        if self.out_file:
            from .checkpoint import atomic_write, json_text

            atomic_write(self.out_file, json_text(result).encode())
        print(json.dumps(result) if self.json else task.summary(metrics, split=self.split, seed=self.seed))


@dataclass
class Predict:
    """Classify image files with a trained model: for each, the file, the class and its probability (one episode
    along the policy means). Each image is read and fitted to the model as `ram train --data` read its images; a file
    that cannot be read is named on stderr and skipped (exit code 1 when any was)."""

    files: tyro.conf.Positional[tuple[Path, ...]]
    """Image files, and folders whose image files (and their subfolders') are all read."""
    checkpoint: Path | None = None
    """A run folder written by `ram train`."""
    pretrained: str | None = None
    """A shipped classifier (mnist-g6, fashion-g6, ...; an unknown name lists them)."""
    json: bool = False
    """One JSON object per line: file, class, label, probability."""
    tracks: Path | None = None
    """Also draw each image's gaze into this folder: NAME.png per file, under its path in a folder given."""
    batch_size: int = 256

    def run(self) -> int:
        from . import files as f
        from .api import DARK_ON_LIGHT, Model
        from .hub import load_run

        _positive("batch_size", self.batch_size)
        module, cfg, source = load_run(checkpoint=self.checkpoint, pretrained=self.pretrained)
        model = Model(module, cfg, source)
        if self.tracks is not None and self.tracks.exists() and not self.tracks.is_dir():
            raise ConfigError(f"tracks = {shown(self.tracks)!r}: exists and is not a folder; give a folder to draw "
                              "the gaze pictures into")
        if self.tracks is not None:
            cfg.model.require_drawn("tracks", str(self.tracks))
        listed = f.listed(self.files)
        pictures = dict(zip(listed, f.picture_names(listed)))
        skipped = 0
        for batch in f.batches(listed, size=model.image_size, channels=cfg.model.channels,
                               batch_size=self.batch_size):
            for file, why in batch.skipped:
                print(f"ram predict: skipped {shown(file.path)}: {shown(why)}", file=sys.stderr)
            skipped += len(batch.skipped)
            if not batch.files:
                continue
            for file, light in zip(batch.files, model.light_background(batch.images).tolist()):
                if light:
                    print(f"ram predict: warning: {shown(file.path)}: {DARK_ON_LIGHT}",
                          file=sys.stderr)
            with warnings.catch_warnings():  # said above, file by file
                warnings.simplefilter("ignore")
                out = model.predict(batch.images)
            reads = out.read if out.sequence else [1] * len(batch.files)
            for file, label, name, probs, read in zip(batch.files, out.labels.tolist(), out.names, out.probs, reads):
                if out.sequence:  # several labels in turn, up to a string's end: each with its probability
                    label = label[:read]
                    ps = [round(float(probs[k, c]), 4) for k, c in enumerate(label)]
                    print(json.dumps({"file": encodable(file.path), "class": name, "labels": [
                        {"label": c, "probability": p} for c, p in zip(label, ps)]}) if self.json else
                          f"{shown(file.path)}\t{name}\t{' '.join(f'{p:.4f}' for p in ps)}", flush=True)
                    continue
                p = round(float(probs[label]), 4)
                print(json.dumps({"file": encodable(file.path), "class": name, "label": label, "probability": p})
                      if self.json else f"{shown(file.path)}\t{name}\t{p:.4f}", flush=True)
            if self.tracks is not None:
                self._draw(model, batch, {file: self.tracks / pictures[file] for file in batch.files})
        if skipped:
            print(f"ram predict: {skipped} of {len(listed)} file(s) skipped", file=sys.stderr)
        return 1 if skipped else 0

    @staticmethod
    def _draw(model, batch, where: dict) -> None:
        from . import viz

        trace = viz.trace(model, batch.images)
        for i, file in enumerate(batch.files):
            where[file].parent.mkdir(parents=True, exist_ok=True)
            viz.save(viz.tracks(trace.only(i), n=1), where[file])


@dataclass
class Bench:
    """Measure training and evaluation throughput (images per second; for Catch, games per second) of a preset's model
    at batch 128."""

    preset: str = "mnist"
    model: ModelKind | None = None
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
    precision: Literal["auto", "fp32", "bf16"] | None = None
    """Training arithmetic (default: the preset's, auto: bf16 where this machine computes it natively)."""

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
            t = cfg.train
            policy = cfg.policy.describe()
            print(f"{name:<22} {about}\n{'':<22} {policy}, {t.optimizer} lr {t.lr}->{t.lr_min} {t.schedule}, "
                  f"batch {t.batch_size}, M {t.mc_samples}, {t.epochs} epochs")


@dataclass
class Reproduce:
    """Retrain rows of the paper's tables from scratch with their recipes (`ram reproduce all`, or a row name)."""

    row: tyro.conf.Positional[str | None] = None
    """A row name (see --list) or `all` (which trains a phase several rows begin with once)."""
    dry_run: bool = False
    """Print the commands instead of running them."""
    list: bool = False
    """List the rows with the paper's numbers."""
    precision: Literal["fp32", "bf16"] | None = None
    """Train in this arithmetic instead of the row's: fp32 on a CPU without bfloat16 instructions, where the bf16
    rows would run 15-21x slower."""
    seeds: int = 0
    """Train each row with training seeds 0..N-1, into runs/NAME-sS, its results in results/seeds/NAME-sS.json (the
    table then shows their mean ± standard deviation), and name the median seed, whose weights are the ones to ship.
    0: one run with the preset's seed, into runs/NAME and results/NAME.json."""

    def run(self) -> None:
        import shlex
        import subprocess

        from .results import BY_NAME, ROWS, load_seeds, median_seed, reproduce_commands

        if self.list:
            for r in ROWS:
                papers = (f"paper A {r.paper_a if r.paper_a is not None else '-':>6}  "
                          f"B {r.paper_b if r.paper_b is not None else '-':>6}" if r.paper == "ram" else
                          f"DRAM paper {r.target if r.target is not None else '-':>6}")
                print(f"{r.name:<30} {papers}  {r.note}")
            return
        if self.row is None:
            raise ConfigError("row: give a row name or `all` (see ram reproduce --list)")
        if self.row != "all" and self.row not in BY_NAME:
            raise ConfigError(f"row = {self.row!r}: unknown; rows are all, {', '.join(BY_NAME)}")
        if self.seeds < 0:
            raise ConfigError(f"seeds = {self.seeds}: must be >= 0 (0 trains once with the preset's seed)")
        rows = ROWS if self.row == "all" else [BY_NAME[self.row]]
        trained: dict[tuple[str, ...], str] = {}  # a phase several rows share trains once
        for row in rows:
            for seed in range(self.seeds) if self.seeds else [None]:
                for command in reproduce_commands(row, precision=self.precision, seed=seed, trained=trained):
                    print(shlex.join(command), flush=True)
                    if not self.dry_run:
                        subprocess.run(command, check=True)
            if self.seeds and not self.dry_run:
                runs = load_seeds(Path("results")).get(row.name, [])
                median = median_seed(runs)
                print(f"{row.name}: median of {len(runs)} seeds is seed {median['train_seed']} (one episode "
                      f"{median['error']:.2f}%): ship the weights of runs/{row.name}-s{median['train_seed']}")


@dataclass
class Results:
    """Regenerate the results tables from results/*.json: the README's compact one, and the docs' full one with every
    row's recipe, epochs, time and commands."""

    results: Path = Path("results")
    readme: Path = Path("README.md")
    page: Path = Path("docs/results.md")
    """The docs' results page."""

    def run(self) -> None:
        from .results import compact_table, load_results, load_seeds, update_page, update_readme

        for field, path in (("readme", self.readme), ("page", self.page)):
            if not path.is_file():
                raise ConfigError(f"{field} = {str(path)!r}: no such file")
        changed = {self.readme: update_readme(self.readme, self.results), self.page: update_page(self.page, self.results)}
        print(compact_table(load_results(self.results), load_seeds(self.results)))
        for path, was in changed.items():
            print(f"{path}: {'updated' if was else 'already up to date'}")


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
        from .hub import load_run
        from .tasks import make_task
        from .train import seed_everything

        model, cfg, source = load_run(checkpoint=self.checkpoint, pretrained=self.pretrained)
        field, value = ("pretrained", self.pretrained) if self.pretrained else ("checkpoint", str(self.checkpoint))
        cfg.model.require_drawn(field, value)
        task = make_task(cfg)
        seed_everything(self.seed)  # random-glimpses draws its locations from the global generator
        paths = task.draw(model, self.out, n=self.n, seed=self.seed, split=self.split)
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
        from .data import images, load
        from .tasks.classify import class_names

        n = images.export_folder(load(self.dataset, progress=self.progress), class_names(self.dataset), self.out,
                                 progress=self.progress)
        print(f"wrote {n} images of {self.dataset} into {self.out}")


@dataclass
class Serve:
    """Start a page to play with on http://HOST:PORT: draw a digit (two for mnist-pairs, a number of 1 to 5 digits for
    mnist-numbers) and watch a model's glimpses, or watch the Catch agent play and play against it. Needs the serve
    extra: pip install -e ".[serve]"."""

    pretrained: str | None = None
    """The shipped model the page opens with (default mnist-g6; every shipped model that takes glimpses can be picked
    on the page)."""
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


COMMANDS = {"train": Train, "eval": Eval, "predict": Predict, "bench": Bench, "presets": Presets, "reproduce": Reproduce,
            "results": Results, "viz": Viz, "sweep": Sweep, "export-folder": ExportFolder,
            "serve": Serve}


def parse(argv: Sequence[str]):
    """The command argv names, parsed. `ram train`'s flags take their defaults from the preset it names. `ram train
    --help` is an overview (`flags.overview`); `--help SECTION` a section's help, `--help all` tyro's whole help."""
    train = [] if not argv or argv[0] != "train" else list(argv[1:])
    asks = [i for i, a in enumerate(train) if a in ("-h", "--help")]
    if asks:
        topic = train[asks[0] + 1] if asks[0] + 1 < len(train) else ""
        rest = [a for i, a in enumerate(train) if i not in (asks[0], asks[0] + 1)]
        if topic in HELP_SECTIONS:
            section_help(defaults(Train, rest), topic)
        elif topic != "all":
            print(overview(defaults(Train, [a for i, a in enumerate(train) if i != asks[0]]),
                           width=max(60, min(120, shutil.get_terminal_size().columns))))
            raise SystemExit(0)
        train = rest
        argv = ["train", *rest, "--help"]
    commands = [
        Annotated[cls, tyro.conf.subcommand(name=name, default=defaults(Train, train) if cls is Train else None)]
        for name, cls in COMMANDS.items()
    ]
    return tyro.cli(Union[tuple(commands)], prog="ram", args=argv,  # noqa: UP007 - a Union of a tuple of types
                    description="Recurrent Attention Model (Mnih et al. 2014)")


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    command = argv[0] if argv else "ram"
    try:
        args = parse(argv)
        code = args.run() or 0  # a command that did part of its work says so by its code (ram predict: 1)
    except (ConfigError, CheckpointError, DataError, TrainingError) as e:
        print(f"ram {command}: error: {shown(str(e))}", file=sys.stderr)  # a file's name may hold terminal escapes
        return 2
    except BrokenPipeError:  # the reader of stdout went away (`ram reproduce all --dry-run | head`): stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # so the exit's flush writes nowhere
        return 141  # 128 + SIGPIPE, as a shell reports a command a closed pipe stopped
    except OSError as e:  # a full disk where no writer of the package names it (a picture, a cache file)
        if e.errno not in (errno.ENOSPC, errno.EDQUOT):
            raise
        print(f"ram {command}: error: no space left on the disk writing {shown(str(e.filename or 'a file'))}; free "
              "some space and run again", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        resume = "; the same command with --resume continues from the last checkpoint" if command == "train" else ""
        print(f"ram {command}: interrupted{resume}", file=sys.stderr)
        return 130
    return code


if __name__ == "__main__":
    sys.exit(main())
