"""The config flags of `ram train`: a preset, then any field of its config by the field's own name.

The config dataclasses are the schema. tyro reads their fields, types and docstrings, so a field is declared once and
is a flag (`--glimpses`, `--what-size`, `--lr`) with its help text, and the preset's value is the flag's default:
`ram train --preset mnist-translated --help` shows that preset's numbers. The model kind is `--model`. Fields that
follow from the data (the canvas, channels, classes) are set by the preset or `--data`, not by a flag
(`tyro.conf.Suppress` in ram.config).

Parsing takes two steps: `--preset` (and `--data`, which makes the default preset auto) is read first, since the
preset gives every other flag its default, and so is `--policy`, which picks the policy section whose settings are
flags (a Gaussian policy's --std, a saccade policy's --saccade-step: a setting of another policy is no flag of the
run). `--data` picks the task section the same way, and the preset where it is not given: your own images'
--test-fraction, the digits' --pieces, the catch preset's --epoch-games. The auto recipe (`ram.auto`) derives some
fields from the data and keeps those a flag gave: which flags were given is read from the command line too
(`given_in`), as a value alone cannot say whether it came from a flag or from the preset.
"""

from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Annotated, Any, NamedTuple

import tyro

from . import auto, config, presets
from .config import KINDS, SECTIONS, ConfigError, NetConfig, PolicyConfig, RunConfig, task_of
from .data.mnist import BUILT_IN

def _reflowed(helptext: str) -> str:
    """A docstring as one paragraph per blank-line-separated block, a list item ("- ") on its own line.

    tyro's own `remove_single_line_breaks` keeps a line break before every line that does not start with a letter,
    and it runs before the docstring is dedented, so every indented continuation line of a field's docstring broke
    the help mid-sentence ("seed" / "000's policy gradient")."""
    blocks = [[line.strip() for line in block.split("\n")] for block in helptext.strip().split("\n\n")]
    out = []
    for lines in blocks:
        joined = ""
        for line in lines:
            sep = "\n" if line.startswith(("- ", "* ")) and joined else " "
            joined = f"{joined}{sep}{line}" if joined else line
        out.append(joined)
    return "\n\n".join(out)


if hasattr(tyro, "_strings") and hasattr(tyro._strings, "remove_single_line_breaks"):
    tyro._strings.remove_single_line_breaks = _reflowed

# Nested config sections lend their fields to the command line without a prefix (--glimpses, not --model.glimpses),
# and their booleans take a value (--reinforce-core True), as a preset's default may be either.
Section = Annotated[RunConfig, tyro.conf.OmitArgPrefixes, tyro.conf.FlagConversionOff]


BY_NAME = BUILT_IN
"""The datasets --data takes by name, the built-in ones; anything else is a folder or an .npz."""


class Prepared(NamedTuple):
    """What a Recipe resolves to."""

    config: RunConfig
    """The validated config."""
    why: list[str]
    """The lines a run prints first: for the auto recipe, what it chose and why; for a task that reads a folder of
    its own (svhn), what it found there; else none."""
    data: Any = None
    """What --data PATH found (`ram.data.images.Source`), for `fit(cfg, out, data=...)`: the task reads its images
    from it rather than looking at the folder again. None for a dataset by name."""


@dataclass
class Recipe:
    """What to train: a preset, its config's fields by name, and your own images."""

    preset: str = "mnist"
    """Experiment to run (see `ram presets`); its settings are every other flag's default. Default: auto with --data
    PATH (a recipe derived from your images, which it prints), else mnist."""
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
    policy: config.PolicyName = ""
    """Where the model looks next: gaussian (RAM's: any point of the image) or saccade (seed 000's: steps on a
    lattice of windows). Its settings are the flags under "policy options". Default: the preset's."""
    settings: Section = field(default_factory=RunConfig)
    """The preset's config with the flags' changes (each field is its own flag)."""
    given: tyro.conf.Suppress[tuple[str, ...]] = ()
    """The config fields set explicitly (by flag or by keyword): the auto recipe derives only the others."""

    def config(self, *, progress: bool = True) -> RunConfig:
        """The validated config: the preset's, with the flags' changes, trained on --data if given (progress: a bar
        while your images' channels are read)."""
        return self.prepare(progress=progress).config

    def resolve(self, *, progress: bool = True) -> tuple[RunConfig, list[str]]:
        """The validated config, and the lines a run prints first (`Prepared.why`)."""
        return self.prepare(progress=progress)[:2]

    def prepare(self, *, progress: bool = True) -> Prepared:
        """The validated config, the auto recipe's lines, and what --data PATH found, for `fit(data=...)`."""
        cfg = dataclasses.replace(self.settings, preset=self.preset)
        if self.policy and cfg.policy.kind != self.policy:
            cfg = dataclasses.replace(cfg, policy=with_policy(cfg, self.policy).policy)
        cfg = with_data(cfg, self.data)
        by_name = self.data in BY_NAME
        if self.preset == auto.PRESET and (by_name or self.data is None):
            raise ConfigError(f"preset = {self.preset!r}: derives its recipe from your images; give --data PATH "
                              f"(a folder or an .npz){'' if self.data is None else f', or --preset {self.data}'}")
        if reads_folder(cfg) and not by_name:
            if self.data is None:
                raise ConfigError(f"preset = {self.preset!r}: reads a folder of its own; give --data DIR")
            if self.image_size is not None:
                raise ConfigError(f"image_size = {self.image_size}: the {cfg.task.dataset} task crops its images to "
                                  f"{cfg.task.canvas}x{cfg.task.canvas} itself")
            cfg.model.validate()
            cfg.policy.validate(cfg.model)
            cfg.train.validate()
            cfg.loss.validate()
            cfg, found, lines = task_of(cfg.task.dataset).configure(cfg, self.data, val_size=self.val_size,
                                                                    progress=progress)
            return Prepared(cfg, lines, found)
        if by_name or self.data is None:
            if self.image_size is not None:
                raise ConfigError(f"image_size = {self.image_size}: only with --data PATH (your own images)")
            if self.val_size is not None:
                if "val_size" not in {f.name for f in dataclasses.fields(cfg.task)}:
                    raise ConfigError(f"val_size = {self.val_size}: the {cfg.task.dataset} task has no training set to "
                                      "take validation images from")
                cfg = dataclasses.replace(cfg, task=dataclasses.replace(cfg.task, val_size=self.val_size))
            return Prepared(cfg.validate(), [])
        from .data.images import inspect
        from .tasks import images

        if self.image_size is not None and not self.image_size > 0:
            raise ConfigError(f"image_size = {self.image_size!r}: must be > 0")
        # The settings are checked before the folder is listed, as the auto recipe derives its choices around them;
        # the task's, which hold what the images are, once `images.configure` has found them.
        cfg.model.validate()
        cfg.policy.validate(cfg.model)
        cfg.train.validate()
        cfg.loss.validate()
        source = inspect(self.data, size=self.image_size or 0, test_fraction=cfg.task.test_fraction)
        if self.preset != auto.PRESET:
            cfg, source = images.configure(cfg, source, val_size=self.val_size, progress=progress)
            return Prepared(cfg, [], source)
        val = images.default_val_size(source.n_train) if self.val_size is None else self.val_size
        given = {name: getattr(getattr(cfg, section), name) for section in ("model", "policy", "train", "loss")
                 for name in self.given if hasattr(getattr(cfg, section), name)}
        choices = auto.derive(size=source.size, given=given, batch_size=cfg.train.batch_size,
                              train_images=auto.train_images(source.n_train, val, cfg.task.train_size))
        cfg, source = images.configure(auto.apply(cfg, choices), source, val_size=self.val_size, progress=progress)
        return Prepared(cfg, auto.explain(cfg, choices, size_from=source.size_from, total=source.n_train,
                                          val_given=self.val_size is not None), source)


def _flag_in(args: Sequence[str], flag: str) -> str | None:
    """The value of --flag in args (the last one, as argparse takes it), or None: the flags read before tyro builds
    the others (the preset, the data, the model and the policy pick the sections whose settings are flags)."""
    parser = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
    parser.add_argument(f"--{flag}")
    known, _ = parser.parse_known_args(list(args))
    return getattr(known, flag)


def preset_in(args: Sequence[str]) -> str:
    """The --preset named in args; without one, auto for --data PATH, else mnist."""
    preset, data = _flag_in(args, "preset"), _flag_in(args, "data")
    if preset is not None:
        return preset
    return auto.PRESET if data is not None and data not in BY_NAME else Recipe.preset


def policy_in(args: Sequence[str], preset: str) -> str:
    """The --policy named in args, else the preset's."""
    return _flag_in(args, "policy") or presets.get(preset).policy.kind


def model_in(args: Sequence[str], preset: str) -> str:
    """The --model named in args, else the preset's."""
    return _flag_in(args, "model") or presets.get(preset).model.kind


def with_model(cfg: RunConfig, kind: str) -> RunConfig:
    """cfg with a model of kind `kind`: the kind is a setting of the model section when the section is the same
    class (RAM's and its comparison models'), else that kind's own section with its defaults and the settings that
    follow from the data (the image's size and channels, the classes, the moves). An unknown kind is left to the
    flag's parse, which names the choices."""
    if kind not in KINDS:
        return cfg
    task = task_of(cfg.task.dataset)
    answers = task.answers(cfg.task, KINDS[kind]) if hasattr(task, "answers") else {}
    if type(cfg.model) is KINDS[kind].settings:
        return dataclasses.replace(cfg, model=dataclasses.replace(cfg.model, **answers)) if answers else cfg
    data = {f.name: getattr(cfg.model, f.name) for f in dataclasses.fields(NetConfig)
            if f.name in ("image_size", "channels", "classes", "actions")}
    return dataclasses.replace(cfg, model=KINDS[kind].settings(kind=kind, **{**data, **answers}))


def data_in(args: Sequence[str]) -> str | None:
    """The --data named in args, or None."""
    return _flag_in(args, "data")


def with_data(cfg: RunConfig, data: str | None) -> RunConfig:
    """cfg learning what --data names, whose task section then holds the task's flags: a dataset by name (mnist,
    fashion) is its task's section, a folder or an .npz your own images' (`ram.tasks.images`), each holding the
    settings of cfg's it has too (`TaskConfig.for_dataset`); None keeps the preset's task."""
    if data is None or (data not in BY_NAME and reads_folder(cfg)):
        return cfg
    return dataclasses.replace(cfg, task=cfg.task.for_dataset(data if data in BY_NAME else "images"))


def reads_folder(cfg: RunConfig) -> bool:
    """The task of cfg reads a folder of its own format (`configure`, svhn's), which --data DIR names."""
    return hasattr(task_of(cfg.task.dataset), "configure")


def with_policy(cfg: RunConfig, kind: str) -> RunConfig:
    """cfg steered by the policy `kind`: its own section if it has that policy, else that policy's defaults (a
    ConfigError naming the known policies for an unknown one)."""
    if cfg.policy.kind == kind:
        return cfg
    return dataclasses.replace(cfg, policy=PolicyConfig.of({"kind": kind}))


def given_in(args: Sequence[str]) -> tuple[str, ...]:
    """The fields of auto.DERIVED that args set by flag (--patch-size or --patch_size, with its value or =value):
    tyro fills every field, from the preset when no flag gives it, so only the command line tells them apart."""
    parser = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
    for name in auto.DERIVED:
        parser.add_argument(f"--{name.replace('_', '-')}", f"--{name}", dest=name, nargs="?", const="")
    known, _ = parser.parse_known_args(list(args))
    return tuple(name for name in auto.DERIVED if getattr(known, name) is not None)


def defaults(cls: type, args: Sequence[str]):
    """An instance of cls (Recipe or a subclass) holding the defaults of the preset args name and the fields they
    set, its task section the one of the data they name: unknown presets are refused here, with the valid names."""
    name = preset_in(args)
    policy = policy_in(args, name)
    settings = with_data(with_policy(with_model(presets.get(name), model_in(args, name)), policy), data_in(args))
    return cls(preset=name, policy=policy, settings=settings, given=given_in(args))


def parse(args: Sequence[str]) -> Recipe:
    """`ram train`'s config flags -> a Recipe (call .config() for the validated RunConfig)."""
    return tyro.cli(Recipe, args=list(args), default=defaults(Recipe, args))


def recipe(preset: str | None = None, *, data: str | None = None, image_size: int | None = None,
           val_size: int | None = None, **fields) -> Recipe:
    """A Recipe from Python, as its flags would give it: recipe("mnist-translated", hidden=64, lr=3e-4). Each keyword
    is a config field's name, found in its section (task, model, policy, train or loss); kind is the model family
    (--model), policy the location policy (--policy), whose settings the others may then set. preset None: auto for
    data that is a path, else mnist, as on the command line."""
    preset = preset or (auto.PRESET if data is not None and data not in BY_NAME else Recipe.preset)
    cfg = presets.get(preset)
    policy = fields.pop("policy", cfg.policy.kind)
    cfg = with_data(with_policy(with_model(cfg, fields.get("kind", cfg.model.kind)), policy), data)
    sections = {name: {} for name in SECTIONS}
    for name, value in fields.items():
        owner = [s for s in sections if name in {f.name for f in dataclasses.fields(getattr(cfg, s))}]
        if not owner:
            raise ConfigError(f"{name} = {value!r}: not a setting of the {cfg.task.dataset} task, model, "
                              f"{cfg.policy.kind} policy, train or loss config")
        sections[owner[0]][name] = value
    settings = dataclasses.replace(cfg, **{s: dataclasses.replace(getattr(cfg, s), **v) for s, v in sections.items()})
    return Recipe(preset=preset, data=data, image_size=image_size, val_size=val_size, policy=policy,
                  settings=settings, given=tuple(fields))


HELP_SECTIONS = ("task", "model", "policy", "train", "loss")
"""The sections `ram train --help SECTION` explains, in the order the overview lists them."""


def _doc(cls: type, name: str) -> str:
    """A field's docstring, as tyro reads it (tyro's own reader: a field's docstring is the string under it)."""
    try:
        from tyro._docstrings import get_field_docstring

        return get_field_docstring(cls, name, ()) or ""
    except (ImportError, TypeError, AttributeError):  # tyro moved its reader: the help loses its one-line summaries
        return ""


def _first_sentence(text: str, width: int) -> str:
    """The first sentence of text, on one line of at most width characters (cut at a word, with "...")."""
    text = " ".join(text.split())
    end = next((i + 1 for i, c in enumerate(text) if c == "." and (i + 1 == len(text) or text[i + 1] == " ")), len(text))
    first = text[:end]
    if len(first) <= width:
        return first
    return first[: first.rfind(" ", 0, width - 3)].rstrip(",;:") + "..."


def _wrapped(items: list[str], indent: int, width: int) -> list[str]:
    """items joined by spaces, in lines of at most width characters, every line after the first indented."""
    lines, line = [], ""
    for item in items:
        if line and len(line) + 1 + len(item) > width - indent:
            lines.append(line)
            line = item
        else:
            line = f"{line} {item}" if line else item
    return lines + [line] if line else lines


def _shown(value: Any) -> str:
    """A value as its flag takes it: a tuple as its items, one after another."""
    if isinstance(value, tuple):
        return " ".join(map(_shown, value))
    text = str(value)
    return text if text and " " not in text else repr(text)


def overview(command: Any, *, prog: str = "ram train", width: int = 100) -> str:
    """`ram train --help`: the command's own options with the first sentence of each, then every setting of the
    preset's config as the flag that sets it and the preset's value, section by section (`--help SECTION` gives each
    one's full help, `--help all` tyro's whole help)."""
    from .config import _hints

    cls = type(command)
    lines = [f"usage: {prog} [--preset NAME] [--data PATH] [OPTIONS] [--SETTING VALUE ...]", "",
             _first_sentence(cls.__doc__ or "", width), "", "options:"]
    for f in dataclasses.fields(cls):
        if f.name in ("settings", "given"):
            continue
        flag = f"--{f.name.replace('_', '-')}"
        lines.append(f"  {flag:<22} {_first_sentence(_doc(cls, f.name), width - 25)}")
    cfg = command.settings
    header = (f"settings: each is a flag, shown with preset {command.preset}'s value. {prog} --help SECTION explains "
              f"a section's settings, --help all every flag. --data picks the task section (mnist, fashion, or your "
              f"own images), --policy NAME the policy section: {', '.join(config.POLICIES)}.")
    lines += ["", *_wrapped(header.split(), 0, width)]
    for name in HELP_SECTIONS:
        section = getattr(cfg, name)
        hints = _hints(type(section))
        shown = [f"--{hints[f.name][0].replace('_', '-')} {_shown(getattr(section, f.name))}"
                 for f in dataclasses.fields(section) if "Suppress" not in str(f.type)]
        tag = section.dataset if name == "task" else section.kind if name == "policy" else ""  # the tagged sections
        title = f"{name} ({tag})" if tag else name
        body = _wrapped(shown, 20, width)
        body = body or ["(none)"]
        if len(title) > 17:  # a long task or policy name heads its own line
            lines += [f"  {title}"] + [f"{'':<20}{line}" for line in body]
        else:
            lines += [f"  {title:<17} {body[0]}"] + [f"{'':<20}{line}" for line in body[1:]]
    return "\n".join(lines)


def section_help(command: Any, name: str, *, prog: str = "ram train") -> None:
    """Print the full help of one section of the preset's config (its flags, docstrings and the preset's values)
    and exit, as tyro's --help does."""
    section = getattr(command.settings, name)
    tyro.cli(Annotated[type(section), tyro.conf.FlagConversionOff], default=section, args=["--help"],
             prog=f"{prog} ... (settings of the {name} section)", description=type(section).__doc__)
