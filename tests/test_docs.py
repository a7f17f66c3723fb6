"""Docs that cannot rot: every shell and Python block of the README and of docs/ runs here, page by page, in a fresh
folder, with small sizes where a block would train or evaluate for long (flags this test adds, which win over the
block's own: the last of a repeated flag counts). A block marked `<!-- illustrative: WHY -->` is not run, and says
why; so are the few commands this test cannot run, each with its reason (`SKIPPED`). The site itself is built with
`mkdocs build --strict`: a broken link, a missing page or a bad reference to the code fails it.
"""

from __future__ import annotations

import glob
import importlib.util
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import ram.config
import ram.data.mnist
from ram.cli import main
from ram.data import Digits

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]

BLOCK = re.compile(r"(?:^<!-- illustrative: (?P<why>.+?) -->\n)?^```(?P<lang>[\w-]*)[^\n]*\n(?P<body>.*?)^```",
                   re.M | re.S)
INCLUDE = re.compile(r'^--8<-- "(?P<path>[^"]+)"$', re.M)
SHELL, PYTHON = {"bash", "sh", "shell"}, {"python", "py"}

SKIPPED = {
    "pip install": "installs packages: the tests run in the installed package, and .ci/run installs it this way",
    "python -m pytest": "the test suite itself",
    "ram serve": "a server that runs until stopped; tests/test_serve.py drives the page",
    "torchrun": "starts several processes; tests/test_ddp.py trains through torchrun",
    "mkdocs": "test_the_site_builds_strictly builds the site",
}
"""Commands this test does not run, by how they start, and why."""


def blocks(page: Path) -> list[tuple[str, str, str | None]]:
    """(language, code, why it is illustrative or None) of every fenced block of a page, includes resolved."""
    found = []
    for m in BLOCK.finditer(page.read_text()):
        body = INCLUDE.sub(lambda i: (ROOT / i["path"]).read_text(), m["body"])
        found.append((m["lang"], body, m["why"]))
    return found


def small(argv: list[str]) -> list[str]:
    """A `ram` command with the flags that keep it short: one epoch on a few images, one episode per test image, a
    few games or pictures, a row's commands printed rather than run."""
    command, args = argv[0], argv[1:]
    if command == "train":
        if "catch" in args:
            return [*argv, "--epochs", "1", "--epoch-games", "64", "--val-games", "16", "--hidden", "16",
                    "--no-progress"]
        if "--data" in args:
            return [*argv, "--epochs", "1", "--eval-mc-samples", "0", "--no-progress"]
        return [*argv, "--epochs", "1", "--train-size", "256", "--val-size", "100", "--eval-mc-samples", "0",
                "--no-progress"]
    if command == "eval":
        return [*argv, "--episodes", "20"] if "catch" in args else [*argv, "--mc-samples", "0"]
    if command == "viz":
        return [*argv, "--n", "2"]
    if command == "bench":
        return [*argv, "--seconds", "0.3", "--repeats", "1"]
    if command == "sweep":
        return [*argv, "--trials", "1", "--epochs", "1", "--train-size", "256"]
    if command == "reproduce":  # its row's commands printed, not its hours of training run
        return [*argv, "--dry-run"]
    return argv


def run_shell(code: str, namespace: dict, skipped: list[str]) -> None:
    """Each command of a shell block, in order: `ram ...` in this process (made small), `python -c` in this process,
    `python FILE` in a child process; the SKIPPED ones noted, not run."""
    for line in code.replace("\\\n", " ").splitlines():
        for part in line.split(" && "):
            argv = shlex.split(part, comments=True)
            if not argv:
                continue
            text = " ".join(argv)
            why = next((why for start, why in SKIPPED.items() if text.startswith(start)), None)
            if argv[:2] == ["ram", "sweep"] and importlib.util.find_spec("optuna") is None:
                why = "needs the sweep extra (optuna), not installed here"
            if why:
                skipped.append(f"{text}: {why}")
                continue
            argv = [expanded for arg in argv for expanded in (sorted(glob.glob(arg)) or [arg] if "*" in arg else [arg])]
            if argv[0] == "ram":
                assert main(small(argv[1:])) == 0, text
            elif argv[:2] == ["python", "-c"]:
                exec(compile(argv[2], "<python -c>", "exec", dont_inherit=True), dict(namespace))
            elif argv[0] == "python":
                subprocess.run([sys.executable, *argv[1:]], check=True, timeout=120)
            else:
                raise AssertionError(f"{text}: a command this test does not know how to run; add it to SKIPPED "
                                     "with its reason, or run it")


def own_images(root: Path) -> None:
    """my-images/{train,test}/{cat,dog}/N.png: what the pages' own-images commands read (16x16 RGB, a colour a class)."""
    rng = np.random.default_rng(0)
    for c, name in enumerate(("cat", "dog")):
        for part, n in (("train", 12), ("test", 3)):
            folder = root / "my-images" / part / name
            folder.mkdir(parents=True)
            for i in range(n):
                pixels = rng.integers(0, 120, (16, 16, 3), dtype=np.uint8)
                pixels[4:12, 4:12, c] = 255
                Image.fromarray(pixels).save(folder / f"{i}.png")


def small_mnist(monkeypatch) -> None:
    """MNIST as 10,300 training images (the default validation split takes 10,000) and 200 test images, so that a
    block that evaluates on the test set is quick: the blocks are run for whether they work, not for their numbers."""
    g = torch.Generator().manual_seed(0)
    digits = Digits(torch.randint(0, 256, (10_300, 28, 28), generator=g, dtype=torch.uint8),
                    torch.randint(0, 10, (10_300,), generator=g),
                    torch.randint(0, 256, (200, 28, 28), generator=g, dtype=torch.uint8), torch.arange(200) % 10)
    monkeypatch.setattr(ram.data.mnist, "load", lambda name="mnist", **kw: digits)


@pytest.mark.parametrize("page", PAGES, ids=[str(p.relative_to(ROOT)) for p in PAGES])
def test_every_block_of_the_page_runs(page, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    small_mnist(monkeypatch)
    monkeypatch.setenv("MPLBACKEND", "Agg")
    # A page may register a task (docs/extending.md runs tests/toy_task.py's source): into a copy of the registry.
    monkeypatch.setattr(ram.config, "TASKS", {k: v for k, v in ram.config.TASKS.items() if k != "squares"})
    own_images(tmp_path)
    namespace = {"__name__": "__main__"}
    skipped: list[str] = []
    for lang, code, why in blocks(page):
        if why is not None:
            assert len(why) > 10, f"an illustrative block of {page.name} says why in a few words"
            skipped.append(f"illustrative block: {why}")
        elif lang in PYTHON:
            # dont_inherit: a block is compiled as its own file would be, not under this file's `from __future__
            # import annotations`: the fields of a dataclass it defines (tests/toy_task.py's section) are read by their
            # types, and a type left a string is looked up in the module its class names (__main__), not the block's.
            exec(compile(code, f"<{page.name}>", "exec", dont_inherit=True), namespace)
        elif lang in SHELL:
            run_shell(code, namespace, skipped)
    with capsys.disabled():
        for line in skipped:
            print(f"\n  {page.relative_to(ROOT)}: not run: {line}", end="")


def test_the_snippet_finder_sees_illustrative_marks_and_includes():
    page = ROOT / "docs" / "extending.md"
    found = blocks(page)
    assert any("class Squares" in code and "@register_task" in code for _, code, _ in found)  # the included file
    assert any(why and "episode loop" in why for _, _, why in found)
    assert all(why for lang, code, why in blocks(ROOT / "docs" / "results.md") if "ram train" in code)


def test_the_readme_fits_two_screens_and_names_no_notebook_entry():
    text = (ROOT / "README.md").read_text()
    assert len(text.splitlines()) <= 150
    assert not re.search(r"\bsessions? \d|NOTES\.md.{0,20}entry|\bentry \d", text)
    tip, install = text.index("--index-url https://download.pytorch.org/whl/cpu"), text.index("pip install -e .")
    assert tip < install  # the CPU-only wheel before the install it saves from CUDA's packages
    assert 'pip install -e ".[test]" && python -m pytest' in text  # .ci/run runs this very line


def test_no_docstring_in_the_package_points_to_a_notebook_entry():
    for path in (ROOT / "src" / "ram").rglob("*.py"):
        assert not re.search(r"\bsessions? \d+\b|\bsession \d+'s|NOTES\.md,? (session|entry)", path.read_text()), path


@pytest.mark.skipif(shutil.which("mkdocs") is None and importlib.util.find_spec("mkdocs") is None,
                    reason="mkdocs is not installed: pip install -e \".[docs]\"")
def test_the_site_builds_strictly(tmp_path):
    """mkdocs build --strict: a broken link, a missing page, a bad docstring reference or a failed include fails."""
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1", "PYTHONPATH": os.pathsep.join(
        [str(ROOT / "src"), *filter(None, [os.environ.get("PYTHONPATH")])])}
    done = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-d", str(tmp_path / "site")],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    for page in ("index.html", "results/index.html", "reference/api/index.html", "reference/cli/index.html",
                 "notebook/index.html"):
        assert (tmp_path / "site" / page).is_file(), page
    cli = (tmp_path / "site" / "reference" / "cli" / "index.html").read_text()
    assert "usage: ram train" in cli and "--glimpses" in cli  # tyro's help, made at build time
    assert "ram.api.Model" in (tmp_path / "site" / "reference" / "api" / "index.html").read_text()
