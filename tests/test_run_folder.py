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
