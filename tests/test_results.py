"""The README results table is generated from results/*.json, beside both versions of the paper's numbers."""

import json

from ram.results import (
    BY_NAME,
    END,
    START,
    Row,
    _model,
    reproduce_commands,
    table,
    update_readme,
)


def test_table_rows_come_from_result_files(tmp_path):
    results = tmp_path / "results"
    results.mkdir()
    (results / "mnist-g6.json").write_text(json.dumps(
        {"error": 1.05, "error_averaged": 0.62, "mc_samples": 10, "epochs": 100, "train_seconds": 900,
         "pretrained": "mnist-g6"}))
    (results / "mnist-g4.json").write_text(json.dumps(  # two phases: the second started from the first's weights
        {"error": 1.49, "error_averaged": 0.72, "mc_samples": 10, "epochs": 108, "train_seconds": 600,
         "phases": [{"epochs": 100, "train_seconds": 540}, {"epochs": 8, "train_seconds": 60}]}))
    (results / "mnist-convnet.json").write_text(json.dumps(
        {"error": 0.76, "error_averaged": 0.76, "mc_samples": 10, "epochs": 30, "train_seconds": 60}))
    (results / "mnist-cluttered-100-g8.json").write_text(json.dumps(
        {"error": 20.5, "epochs": 37, "planned_epochs": 40, "train_seconds": 59, "precision": "bf16",
         "machine": {"cpu": "a Xeon", "cpu_flags": ["avx2", "avx512f", "avx512_bf16"], "threads": 1}}))
    readme = tmp_path / "README.md"
    readme.write_text(f"intro\n{START}\nold\n{END}\nrest\n")
    assert update_readme(readme, results)
    text = readme.read_text()
    assert "old" not in text and text.startswith("intro") and text.endswith("rest\n")
    mnist = next(line for line in text.splitlines() if "`mnist-g6`" in line)
    assert "**1.05**" in mnist and "| 0.62 |" in mnist and "| 1.29 | 1.12 |" in mnist and "15 min" in mnist
    assert "| 100 + 8 |" in next(line for line in text.splitlines() if "`mnist-g4`" not in line and "4 glimpses" in line)
    assert "| **0.76** | – |" in next(line for line in text.splitlines() if "convnet, 2 layers" in line)
    clutter = next(line for line in text.splitlines() if "100x100" in line)
    assert "37 of 40" in clutter and "59 s, bf16 on AVX512-BF16" in clutter and "| 8.10 |" in clutter
    assert "15 min |" in mnist  # a results file that does not say where it ran says nothing of it
    assert not update_readme(readme, results)  # idempotent


def test_rows_without_results_are_left_out():
    assert table({}).count("\n") == 1  # header and rule only
    assert BY_NAME["mnist-g6"].paper_a == 1.29 and BY_NAME["mnist-g6"].paper_b == 1.12


def test_baseline_rows_replay_their_own_schedule():
    # RAM rows take the preset's recipe; the baselines were trained for their own (shorter) schedule
    assert "--epochs" not in BY_NAME["mnist-translated-g8"].train_args()
    args = BY_NAME["mnist-cluttered-random-g8"].train_args()
    assert args == ["--preset", "mnist-cluttered", "--model", "random-glimpses", "--glimpses", "8", "--epochs", "30",
                    "--precision", "fp32"]  # the arithmetic its weights were trained in, whatever the machine


def test_a_rows_config_is_what_ram_train_builds_from_its_arguments():
    row = Row("x", "mnist-cluttered", glimpses=8, epochs=500, precision="bf16")
    assert row.train_args()[-4:] == ["--epochs", "500", "--precision", "bf16"]
    cfg = row.config()
    assert (cfg.preset, cfg.model.glimpses, cfg.train.epochs, cfg.train.precision) == ("mnist-cluttered", 8, 500, "bf16")
    assert cfg.model.std == 0.2  # everything else is the preset's


def test_a_row_can_carry_its_own_glimpse_network_widths():
    row = Row("x", "mnist-translated", glimpses=8, precision="bf16", what_size=256, glimpse_size=512)
    assert row.train_args()[-4:] == ["--what-size", "256", "--glimpse-size", "512"]
    m = row.config().model
    assert (m.what_size, m.where_size, m.glimpse_size, m.hidden) == (256, 128, 512, 256)


def test_the_table_says_when_a_row_was_trained_wider_than_the_paper():
    result = {"error": 1.1, "epochs": 250}
    wide, paper = BY_NAME["mnist-cluttered-100-g4"], BY_NAME["mnist-cluttered-100-g6"]
    assert wide.what_size == 256 and paper.what_size == 0  # shipped with the wider glimpse network, or not
    lines = table({wide.name: result, paper.name: result}).splitlines()[2:]
    assert "RAM, 4 glimpses, glimpse net 256/512 |" in lines[0]
    assert "RAM, 6 glimpses |" in lines[1]


def test_the_table_and_the_replay_say_when_a_row_was_trained_along_its_means():
    row = BY_NAME["mnist-g3"]
    assert row.train_args()[-2:] == ["--means-weight", "1.0"] and row.config().train.means_weight == 1.0
    assert "RAM, 3 glimpses, trained along its means too |" in table({row.name: {"error": 1.35}}).splitlines()[2]


def test_the_table_names_a_core_other_than_the_papers():
    lstm = BY_NAME["mnist-cluttered-g8"]
    assert lstm.core == "lstm" and lstm.config().model.core == "lstm"  # shipped with an LSTM core
    assert "--core lstm" in " ".join(lstm.train_args())
    line = table({lstm.name: {"error": 2.2, "epochs": 250}}).splitlines()[2]
    assert "RAM, 8 glimpses, glimpse net 256/512, LSTM core" in line


def test_a_two_phase_row_replays_both_phases_the_second_from_the_firsts_weights():
    then = ("--means-weight", "1", "--lr", "1e-4", "--lr-min", "1e-6", "--epochs", "3")
    row = Row("x", "mnist-saccade", "ram", 20, then=then)
    first, second, evaluate = reproduce_commands(row, precision="fp32")
    assert first[:2] == second[:2] == ["ram", "train"] and first[-2:] == ["--out", "runs/x-phase1"]
    assert second[second.index("--init") + 1] == "runs/x-phase1" and second[-2:] == ["--out", "runs/x"]
    assert evaluate[:4] == ["ram", "eval", "--checkpoint", "runs/x"]
    assert all(c[c.index("--precision") + 1] == "fp32" for c in (first, second))
    one, two = row.configs()
    assert (one.train.epochs, one.train.means_weight, one.train.init) == (30, 0.0, "")
    assert two == row.config() and two.train.init == "runs/x-phase1"
    assert (two.train.epochs, two.train.lr, two.train.lr_min, two.train.means_weight) == (3, 1e-4, 1e-6, 1.0)
    assert two.model == one.model
    assert _model(row).endswith("LSTM of 512, then 3 epochs at lr 0.0001 along its modes too")
    assert _model(BY_NAME["mnist-g3"]).endswith("trained along its means too")  # one phase: nothing added


def test_catch_rows_give_the_sampled_rate_and_an_outside_agents_row_its_games_and_its_script():
    ram = {"error": 1.1, "catch_rate_sampled": 87.8, "epochs": 32, "planned_epochs": 80, "train_seconds": 1803.9}
    ppo = {"error": 4.5, "catch_rate_sampled": 93.0, "train_games": 81_250, "train_seconds": 2400}
    lines = table({"catch": ram, "catch-sb3-ppo": ppo}).splitlines()[2:]
    assert "| **1.10** (sampled: 12.20) |" in lines[0] and "| 32 of 80 |" in lines[0]
    assert "stable-baselines3 PPO" in lines[1] and "| **4.50** (sampled: 7.00) |" in lines[1]
    assert "| 81,250 games | 40 min |" in lines[1]
    assert reproduce_commands(BY_NAME["catch-sb3-ppo"], results_root="out") == [
        ["python", "examples/catch_sb3.py", "--out-file", "out/catch-sb3-ppo.json"]]
