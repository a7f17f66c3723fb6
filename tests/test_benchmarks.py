"""The benchmark scripts' own logic: reading a run's time to accuracy, parsing version specs, which runs it pauses."""

import dataclasses
import json
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from bench import PAUSE, parse_version  # noqa: E402
from ram.hub import val_curve  # noqa: E402
from ram.results import first_reached  # noqa: E402


def _metrics(folder, errors, seconds=10.0, extra=()):
    lines = [f"{i + 1},{e},{seconds}," for i, e in enumerate(errors)] + list(extra)
    (folder / "metrics.csv").write_text("epoch,val_error,seconds,total_seconds\n" + "\n".join(lines) + "\n")
    return folder


def test_first_epoch_at_or_below_the_target_and_the_time_until_then(tmp_path):
    curve = val_curve(_metrics(tmp_path, [3.0, 1.6, 1.5, 1.1, 1.4]))
    assert curve[:2] == [[1, 3.0, 10.0], [2, 1.6, 20.0]]
    assert first_reached(curve, 1.5) == (3, 30.0)
    assert first_reached(curve, 1.2) == (4, 40.0)
    assert first_reached(curve, 1.0) is None


def test_time_is_counted_over_every_piece_of_a_resumed_run(tmp_path):
    curve = val_curve(_metrics(tmp_path, [3.0, 1.4], extra=["3,1.0,10,500"]))
    assert first_reached(curve, 1.0) == (3, 500.0)  # total_seconds, where the run wrote it, counts earlier pieces


def test_a_folder_without_a_readable_metrics_file_has_no_curve(tmp_path):
    assert val_curve(tmp_path) == []
    (tmp_path / "metrics.csv").write_text("epoch,val_error,seconds\n1,not a number,10\n")
    assert val_curve(tmp_path) == []


def test_a_run_of_a_rows_recipe_is_timed_to_the_papers_number(tmp_path):
    """The target defaults to the paper's number for the row whose recipe the run is, whatever arithmetic it ran in."""
    import dataclasses
    import json

    from ram.results import BY_NAME

    cfg = BY_NAME["mnist-g6"].config()
    cfg = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, precision="bf16"))
    (tmp_path / "config.json").write_text(json.dumps(cfg.to_dict()))
    rows = [("1", "3.0", "60", "60"), ("2", "1.1", "60", "120")]
    (tmp_path / "metrics.csv").write_text("epoch,val_error,seconds,total_seconds\n" + "\n".join(map(",".join, rows)))
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "time_to_accuracy.py"), str(tmp_path)],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "row mnist-g6: paper 1.12%" in done.stdout and "| 1.12% | 2 | 120 s" in done.stdout
    assert "still training" in done.stdout and "bf16" in done.stdout


def test_a_run_that_is_no_rows_recipe_needs_targets(tmp_path):
    """Every row is tried, those trained outside `ram train` (stable-baselines3) included, without a crash."""
    import dataclasses
    import json

    from ram.results import BY_NAME

    cfg = BY_NAME["mnist-g6"].config()
    cfg = dataclasses.replace(cfg, model=dataclasses.replace(cfg.model, hidden=100))
    (tmp_path / "config.json").write_text(json.dumps(cfg.to_dict()))
    _metrics(tmp_path, [3.0])
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "time_to_accuracy.py"), str(tmp_path)],
                          capture_output=True, text=True)
    assert done.returncode == 2 and "no results row's" in done.stderr, done.stderr


def _phase(folder, cfg, errors, seconds):
    """A run folder of a phase: its config.json (a RunConfig) and a metrics.csv of `seconds` an epoch."""
    folder.mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps(cfg.to_dict()))
    return _metrics(folder, errors, seconds)


def _started_from(cfg, init):
    return dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, init=str(init)))


def test_a_later_phase_counts_the_earlier_phases_whole_training_along_init(tmp_path):
    """A run started from an earlier phase's folder, itself started from another's, is timed from the first phase's
    start: each earlier phase's seconds, then this run's to the target, which only its own curve is searched for."""
    from ram.results import BY_NAME

    cfg = BY_NAME["mnist-g6"].config()
    first = _phase(tmp_path / "first", cfg, [9.0, 0.5], 1000.0)  # 0.5: another task's validation, not searched
    second = _phase(tmp_path / "second", _started_from(cfg, first), [2.0], 500.0)
    last = _phase(tmp_path / "last", _started_from(cfg, second), [3.0, 1.1, 1.0], 60.0)
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "time_to_accuracy.py"), str(last), "--targets",
                           "1.1", "0.5"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert f"after 2 earlier phase(s) along init: {first} 2000 s (2 epochs), {second} 500 s (1 epochs)" in done.stdout
    assert "| 1.1% | 2 | 2620 s (0.73 h) |" in done.stdout  # 2000 + 500 + 2 epochs of 60 s
    assert "| 0.5% | not reached in 3 epochs | – |" in done.stdout
    alone = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "time_to_accuracy.py"), str(first), "--targets",
                            "0.5"], capture_output=True, text=True)
    assert "earlier phase" not in alone.stdout and "| 0.5% | 2 | 2000 s" in alone.stdout  # a first phase: its own
    assert "started from" not in done.stdout + alone.stdout
    shipped = _phase(tmp_path / "from-shipped", _started_from(cfg, "mnist-cluttered-g6"), [1.0], 60.0)
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "time_to_accuracy.py"), str(shipped), "--targets",
                           "1.1"], capture_output=True, text=True)
    assert "started from mnist-cluttered-g6: no run folder with a metrics.csv there" in done.stdout  # not counted
    assert "| 1.1% | 1 | 60 s" in done.stdout


def test_the_last_phase_of_a_row_across_tasks_is_found_wherever_its_first_phase_ran(tmp_path, monkeypatch, capsys):
    """A later phase matches its row when it started from the folder the row names, or from any folder holding a run
    of the row's phase before (a run trained by hand elsewhere); not from a run of another recipe."""
    from test_results import across_tasks
    from time_to_accuracy import main, row_of

    import ram.results

    row = across_tasks()
    monkeypatch.setattr(ram.results, "ROWS", [row])
    one, two = row.configs()
    first = _phase(tmp_path / "elsewhere" / "c60", one, [9.0, 0.5], 1000.0)
    last = _phase(tmp_path / "t60", _started_from(two, first), [3.0, 1.2], 60.0)
    assert row_of(_phase(tmp_path / "named", two, [1.0], 60.0)) is row  # init runs/t-g6-phase1, as the row says
    assert row_of(last) is row
    other = _phase(tmp_path / "c60-g8", dataclasses.replace(one, model=dataclasses.replace(one.model, glimpses=8)),
                   [1.0], 60.0)
    assert row_of(_phase(tmp_path / "t60-from-g8", _started_from(two, other), [1.0], 60.0)) is None
    seed = dataclasses.replace(one, train=dataclasses.replace(one.train, seed=1))  # another training seed: the recipe
    seeded = _phase(tmp_path / "c60-s1", seed, [1.0], 60.0)
    then = _started_from(two, seeded)
    assert row_of(_phase(tmp_path / "t60-s1", dataclasses.replace(then, train=dataclasses.replace(then.train, seed=1)),
                         [1.0], 60.0)) is row
    (last / "test.json").write_text('{"error": 1.25, "machine": {}}')
    monkeypatch.setattr(sys, "argv", ["time_to_accuracy.py", str(last)])
    assert main() == 0
    out = capsys.readouterr().out
    assert "row t-g6: paper 1.22%" in out and "| 1.22% | 2 | 2120 s (0.59 h) |" in out


def test_cli_names_a_folder_without_metrics(tmp_path):
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "time_to_accuracy.py"), str(tmp_path)],
                          capture_output=True, text=True)
    assert done.returncode == 2 and "no metrics.csv" in done.stderr and str(tmp_path) in done.stderr


def test_version_spec():
    assert parse_version("now=.") == ("now", None, {}, [])
    assert parse_version("before=/tmp/old:RAM_COMPILE=0,X=1") == ("before", "/tmp/old", {"RAM_COMPILE": "0", "X": "1"},
                                                                  [])
    assert parse_version("bf16=.:RAM_COMPILE=1,--precision=bf16") == ("bf16", None, {"RAM_COMPILE": "1"},
                                                                      ["--precision=bf16"])


def test_the_runs_paused_during_a_benchmark_are_training_runs_however_started():
    # pkill -f matches PAUSE (a plain literal, so the same in POSIX ERE and Python re) against full command lines
    started = ["/usr/bin/python /usr/local/bin/ram train --preset mnist-translated --glimpses 4",
               "python -m ram train --threads 1 --no-progress --out runs/x --preset mnist"]
    others = ["/usr/bin/python /usr/local/bin/ram bench --preset mnist --json", "python -m ram eval --pretrained mnist-g6"]
    assert all(re.search(PAUSE, c) for c in started)
    assert not any(re.search(PAUSE, c) for c in others)


def test_catch_vector_benchmark_prints_a_row_per_size():
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "catch_vector.py"), "--envs", "2", "3",
                           "--games-per-env", "1", "--repeats", "1"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    rows = [line for line in done.stdout.splitlines() if line.startswith(("| 2 |", "| 3 |"))]
    assert len(rows) == 2 and all(row.count("|") == 7 for row in rows)


def test_a_row_meets_the_paper_only_when_both_test_sets_do(tmp_path, monkeypatch):
    import json

    import paper_check
    from ram.results import BY_NAME

    (tmp_path / "mnist-translated-g4.json").write_text(json.dumps({"error": 1.48, "error_averaged": 1.10}))
    errors = {0: 1.48, 1: 1.70}  # translated g4 before session 23: under 1.54 on one set, over on the other
    monkeypatch.setattr(paper_check, "one_episode", lambda name, seed: errors[seed])
    r = paper_check.check(BY_NAME["mnist-translated-g4"], tmp_path)
    assert (r["paper"], r["ratio"], r["meets_paper"]) == (1.54, 1.35, False)
    errors[1] = 1.54
    assert paper_check.check(BY_NAME["mnist-translated-g4"], tmp_path)["meets_paper"]


def test_the_paper_check_names_rows_it_does_not_know():
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "paper_check.py"), "mnist-fc", "nope"],
                          capture_output=True, text=True)
    assert done.returncode == 2 and "rows = ['mnist-fc', 'nope']: not RAM rows with a paper number" in done.stderr


def test_the_paper_check_updates_named_rows_and_keeps_the_others(tmp_path):
    import paper_check

    record = {"command": "all", "rows": [{"row": "a", "one_episode": 2.0}, {"row": "b", "one_episode": 3.0}]}
    fresh = [{"row": "b", "one_episode": 1.0}, {"row": "c", "one_episode": 4.0}]
    out = paper_check.merged(record, fresh, "b c")
    assert [(r["row"], r["one_episode"]) for r in out["rows"]] == [("a", 2.0), ("b", 1.0), ("c", 4.0)]
    assert out["command"] == "all" and out["updates"] == ["b c"]
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "paper_check.py"), "mnist-g3", "--update",
                           "--out-file", str(tmp_path / "missing.json")], capture_output=True, text=True)
    assert done.returncode == 2 and "--update needs row names and an existing --out-file" in done.stderr


def test_catch_recipes_are_set_side_by_side_at_the_most_games_every_run_reached(tmp_path):
    import json

    from ram.results import BY_NAME

    header = "epoch,step,seconds,train_error,val_error\n"
    curves = {"ours-s0": "1,350,9,90,80\n2,700,9,20,10\n3,1050,9,10,2\n", "ours-s1": "1,350,9,80,70\n2,700,9,30,20\n",
              "theirs": "1,350,9,92,90\n2,700,9,91,88\n"}
    for name, lines in curves.items():
        (tmp_path / name).mkdir()
        (tmp_path / name / "config.json").write_text(json.dumps(BY_NAME["catch"].config().to_dict()))
        (tmp_path / name / "metrics.csv").write_text(header + lines)
    png = tmp_path / "curves.png"
    script = [sys.executable, str(ROOT / "benchmarks" / "catch_curves.py")]
    done = subprocess.run([*script, "--run", "ours", str(tmp_path / "ours-s0"), str(tmp_path / "ours-s1"),
                           "--run", "theirs", str(tmp_path / "theirs"), "--out", str(png)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert png.stat().st_size > 0
    assert (tmp_path / "curves.csv").read_text().splitlines()[1] == "ours,ours-s0,1,22400,20.0,10.000"
    assert "at 44,800 games" in done.stdout  # epoch 2 of 350 steps of 64 games: the last all three reached
    assert "ours: 85.0 ± 7.1% caught (validation, modes; 2 runs)" in done.stdout
    assert "theirs: 9.0% caught (training, sampled; 1 run)" in done.stdout
    done = subprocess.run([*script, "--run", "x", str(tmp_path / "nothing"), "--out", str(png)],
                          capture_output=True, text=True)
    assert done.returncode == 2 and "has no metrics.csv" in done.stderr and "nothing" in done.stderr


def test_the_oracle_finds_each_test_digit_where_place_put_it():
    """benchmarks/first_glimpse_oracle.py mirrors `place`'s first draws; it checks the pixels, and so does this."""
    import pytest
    import torch

    from first_glimpse_oracle import digit_centres
    from ram.tasks import DigitsConfig
    from ram.data import Digits, TaskData

    g = torch.Generator().manual_seed(0)
    train = torch.randint(0, 256, (400, 28, 28), generator=g).to(torch.uint8)
    test = torch.zeros(50, 28, 28, dtype=torch.uint8)
    test[:, 13:15, 13:15] = 255  # a dot at the digit's centre
    digits = Digits(train, torch.zeros(400, dtype=torch.long), test, torch.zeros(50, dtype=torch.long))
    data = TaskData(DigitsConfig(dataset="mnist", canvas=60, pieces=0, val_size=100), seed=0, progress=False,
                    digits=digits)
    centres = digit_centres(data, seed=0)
    pixel = ((centres + 1) * 30).round().long()  # (x, y) -> the pixel the sensor centres on
    images = data.test(0).images
    assert (images[torch.arange(50), pixel[:, 1], pixel[:, 0]] == 255).all()
    data.test(0).images.zero_()  # no digit anywhere: the check must refuse
    with pytest.raises(SystemExit, match="not where place"):
        digit_centres(data, seed=0)


def test_cross_task_refuses_an_unknown_model_and_weights_that_cannot_read_the_tasks_glimpses():
    script = str(ROOT / "benchmarks" / "cross_task.py")
    done = subprocess.run([sys.executable, script, "mnist-cluttered-g6", "nope"], capture_output=True, text=True)
    assert done.returncode == 2 and "'nope' is not a shipped model" in done.stderr
    done = subprocess.run([sys.executable, script, "mnist-cluttered-100-g8", "mnist-translated-g6"],
                          capture_output=True, text=True)
    assert done.returncode == 2 and "at 4 scales, mnist-translated-g6 at 3" in done.stderr


def test_the_context_probe_tells_a_saturated_context_from_one_that_steers():
    """benchmarks/dram_context.py: a context network grown large pins the first glimpse to one place on every image
    (its spread 0); the freshly made one moves it from image to image."""
    import torch
    from dram_context import probe

    from ram.flags import parse
    from ram.models import model_of

    torch.manual_seed(0)
    net = model_of(parse(["--preset", "mnist-numbers"]).config(progress=False)).eval()
    images = torch.rand(16, 1, 54, 54)
    fresh = probe(net, images)
    assert fresh["r2_first_abs"] < 5 and min(fresh["locations"][0]["spread"]) > 0
    with torch.no_grad():
        net.context_net.out.weight.mul_(1e4)
    pinned = probe(net, images)
    assert pinned["r2_first_abs"] > 50 and max(pinned["locations"][0]["spread"]) == 0
    assert len(pinned["locations"]) == 3 and all(abs(v) == 1 for v in pinned["locations"][0]["mean"])
