"""One training process at a time in a run folder.

Two `ram train --out X` at once both wrote X, both exited 0, and one run's result was silently lost. A run holds
X/.lock, an flock taken through `filelock` (the kernel releases it when the process ends, however it ends), for as long
as it trains; X/.owner names the process holding it, so that a second run is refused naming that process. A process
killed while it held the lock leaves .owner behind but no lock: the next run takes the folder over, and says from whom.
"""

from __future__ import annotations

import contextlib
import os
import sys
from pathlib import Path

import filelock

from .config import ConfigError


@contextlib.contextmanager
def run_lock(out: Path):
    """Hold the lock on the run folder `out` for the block; a folder made for it and left empty is removed again. A
    ConfigError naming the process that holds it if another does."""
    out = Path(out)
    made = not out.exists()
    out.mkdir(parents=True, exist_ok=True)
    lock, owner = filelock.FileLock(out / ".lock", timeout=0), out / ".owner"
    try:
        lock.acquire()
    except filelock.Timeout:
        holder = _holder(owner)
        raise ConfigError(f"out = {str(out)!r}: another ram train ({holder}) is writing this run folder; wait for it "
                          "to end, or pick another --out") from None
    try:
        previous = _pid(owner)
        if previous is not None and previous != os.getpid():
            print(f"ram: notice: {out}: took over the run folder from process {previous}, which ended without "
                  "releasing it (killed?)", file=sys.stderr)
        owner.write_text(f"{os.getpid()}\n")
        yield
    finally:
        owner.unlink(missing_ok=True)
        lock.release()
        if made and [p.name for p in out.iterdir()] == [".lock"]:  # refused before any work: leave no folder
            (out / ".lock").unlink()
            out.rmdir()


def _pid(owner: Path) -> int | None:
    try:
        return int(owner.read_text().strip())
    except (OSError, ValueError):
        return None


def _holder(owner: Path) -> str:
    pid = _pid(owner)
    return f"process {pid}" if pid is not None else "a process that has not yet written its id"
