"""The README results table is generated from results/*.json, beside both versions of the paper's numbers."""

import json
import shlex
from pathlib import Path

import pytest

from ram.presets import PRESETS
from ram.results import (
    BY_NAME,
    DISTILLED,
    END,
    NARROWED,
    POLISHED,
    ROWS,
    SEEDS,
    START,
    Row,
    Sci,
    _model,
    _train_time,
    compact_table,
    load_results,
    short_model,
    from_the_image,
    load_seeds,
    median_seed,
    reproduce_commands,
    table,
    update_page,
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
    readme = tmp_path / "results.md"
    readme.write_text(f"intro\n{START}\nold table\n{END}\nrest\n")
    assert update_page(readme, results)
    text = readme.read_text()
    assert "old table" not in text and text.startswith("intro") and text.endswith("rest\n")
    mnist = next(line for line in text.splitlines() if "`mnist-g6`" in line)
    assert "**1.05**" in mnist and "| 0.62 |" in mnist and "| 1.29 | 1.12 |" in mnist and "15 min" in mnist
    assert "| 100 + 8 |" in next(line for line in text.splitlines() if "`mnist-g4`" not in line and "4 glimpses" in line)
    assert "| **0.76** | – |" in next(line for line in text.splitlines() if "convnet, 2 layers" in line)
    clutter = next(line for line in text.splitlines() if "100x100" in line)
    assert "37 of 40" in clutter and "59 s, bf16 on AVX512-BF16" in clutter and "| 8.10 |" in clutter
    assert "15 min |" in mnist  # a results file that does not say where it ran says nothing of it
    assert not update_page(readme, results)  # idempotent


def test_a_row_whose_phases_ran_on_different_cpus_gives_each_cpus_share_of_the_time():
    """The train-time column names every CPU a row's phases ran on, and says so where a phase recorded none: a total
    that names only the last phase's CPU would credit it with the others' minutes."""
    amx = {"cpu_flags": ["avx2", "avx512f", "avx512_bf16", "amx_bf16"]}
    avx2 = {"cpu_flags": ["avx2"]}
    r = {"train_seconds": 1500, "precision": "bf16", "machine": avx2,
         "phases": [{"epochs": 10, "train_seconds": 600}, {"epochs": 5, "train_seconds": 300, "machine": amx},
                    {"epochs": 5, "train_seconds": 600}]}  # the last phase's machine is the file's own
    assert _train_time(r) == "25 min, bf16: 10 on a CPU not recorded, 5 on AMX, 10 on AVX2"
    r["phases"][0]["machine"] = amx
    assert _train_time(r) == "25 min, bf16: 15 on AMX, 10 on AVX2"
    r["phases"][2]["machine"] = r["machine"] = amx
    assert _train_time(r) == "25 min, bf16 on AMX"
    assert _train_time({"train_seconds": 1500, "phases": [{"train_seconds": 1500}]}) == "25 min"


def test_rows_without_results_are_left_out():
    assert table({}).count("\n") == 1  # header and rule only
    assert BY_NAME["mnist-g6"].paper_a == 1.29 and BY_NAME["mnist-g6"].paper_b == 1.12


def test_baseline_rows_replay_their_own_schedule():
    # RAM rows take the preset's recipe; the baselines were trained for their own (shorter) schedule
    assert "--epochs" not in BY_NAME["mnist-cluttered-g6"].train_args()
    args = BY_NAME["mnist-cluttered-random-g8"].train_args()
    assert args == ["--preset", "mnist-cluttered", "--model", "random-glimpses", "--glimpses", "8", "--epochs", "30",
                    "--precision", "fp32"]  # the arithmetic its weights were trained in, whatever the machine


def test_a_rows_config_is_what_ram_train_builds_from_its_arguments():
    row = Row("x", "mnist-cluttered", {"glimpses": 8, "epochs": 500, "precision": "bf16"})
    assert row.train_args()[-4:] == ["--epochs", "500", "--precision", "bf16"]
    cfg = row.config()
    assert (cfg.preset, cfg.model.glimpses, cfg.train.epochs, cfg.train.precision) == ("mnist-cluttered", 8, 500, "bf16")
    assert cfg.policy.std == 0.2  # everything else is the preset's


def test_a_row_can_carry_its_own_glimpse_network_widths():
    row = Row("x", "mnist-translated", {"glimpses": 8, "precision": "bf16", "what_size": 256, "glimpse_size": 512})
    assert row.train_args()[-4:] == ["--what-size", "256", "--glimpse-size", "512"]
    m = row.config().model
    assert (m.what_size, m.where_size, m.glimpse_size, m.hidden) == (256, 128, 512, 256)


def test_the_table_says_when_a_row_was_trained_wider_than_the_paper():
    result = {"error": 1.1, "epochs": 250}
    wide, paper = BY_NAME["mnist-cluttered-100-g4"], BY_NAME["mnist-g6"]
    assert wide.overrides["what_size"] == 256 and "what_size" not in paper.overrides  # wider than the paper, or not
    lines = table({wide.name: result, paper.name: result}).splitlines()[2:]
    assert "RAM, 6 glimpses |" in lines[0]
    assert "RAM, 4 glimpses, glimpse net 256/512, LSTM core," in lines[1]


def test_the_table_and_the_replay_say_when_a_row_was_trained_along_its_means():
    row = BY_NAME["mnist-g3"]
    assert row.train_args()[-2:] == ["--means-weight", "1.0"] and row.config().loss.means_weight == 1.0
    assert "RAM, 3 glimpses, trained along its means too |" in table({row.name: {"error": 1.35}}).splitlines()[2]


def test_the_table_names_a_core_other_than_the_papers():
    lstm = BY_NAME["mnist-cluttered-g8"]
    assert lstm.overrides["core"] == "lstm" and lstm.config().model.core == "lstm"  # shipped with an LSTM core
    assert "--core lstm" in " ".join(lstm.train_args())
    line = table({lstm.name: {"error": 2.2, "epochs": 250}}).splitlines()[2]
    assert "RAM, 8 glimpses, glimpse net 256/512, LSTM core" in line


def test_a_two_phase_row_replays_both_phases_the_second_from_the_firsts_weights():
    then = {"means_weight": 1, "lr": Sci(1e-4), "lr_min": Sci(1e-6), "epochs": 3}
    row = Row("x", "mnist-saccade", {"glimpses": 20}, then=(then,))
    first, second, evaluate = reproduce_commands(row, precision="fp32")
    assert first[:2] == second[:2] == ["ram", "train"] and first[-2:] == ["--out", "runs/x-phase1"]
    assert second[second.index("--init") + 1] == "runs/x-phase1" and second[-2:] == ["--out", "runs/x"]
    assert evaluate[:4] == ["ram", "eval", "--checkpoint", "runs/x"]
    assert all(c[c.index("--precision") + 1] == "fp32" for c in (first, second))
    one, two = row.configs()
    assert (one.train.epochs, one.loss.means_weight, one.train.init) == (30, 0.0, "")
    assert two == row.config() and two.train.init == "runs/x-phase1"
    assert (two.train.epochs, two.train.lr, two.train.lr_min, two.loss.means_weight) == (3, 1e-4, 1e-6, 1.0)
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


def test_the_seed_repo_column_gives_every_founding_projects_number_marked_by_its_seed():
    """Seed 001 and 002 both report 28x28 with 2 glimpses: both numbers, each marked; seed 002's accuracy as an
    error. Below the table, what each cited seed measured."""
    rows = {name: {"error": 1.0, "epochs": 1} for name in ("mnist-g2", "mnist-g3", "mnist-saccade-000")}
    text = table(rows)
    g2 = next(line for line in text.splitlines() if "RAM, 2 glimpses" in line)
    assert "| 7.17 (001) / 10.46 (002) |" in g2
    assert "| 5.52 (002) |" in next(line for line in text.splitlines() if "RAM, 3 glimpses" in line)
    assert "| 4.44 (000) |" in next(line for line in text.splitlines() if "as written" in line)
    for seed in ("000", "001", "002"):
        assert f"- {SEEDS[seed]}." in text
    assert "seed 000" in SEEDS["000"] and "argmax" in SEEDS["000"] and "sampled locations" in SEEDS["002"]
    assert "- `mnist-saccade-000`: as written but for" in text  # the as-written row's note, under the table


def test_every_row_a_founding_project_reports_carries_its_number():
    cited = {row.name: dict(row.seed_repo) for row in ROWS if row.seed_repo}
    assert cited["mnist-g4"] == {"001": 1.89, "002": 3.18} and cited["mnist-g6"] == {"001": 1.57, "002": 2.46}
    assert cited["mnist-translated-g4"] == {"001": 3.32, "002": 10.65} and cited["mnist-cluttered-g8"] == {"002": 14.54}
    assert cited["catch"] == cited["catch-002"] == {"002": 11.0}
    assert cited["mnist-saccade"] == cited["mnist-saccade-000"] == {"000": 4.44}
    assert len(cited) == 16  # six 28x28 rows, three translated, three cluttered, two saccade, two Catch
    assert all(seed in SEEDS for numbers in cited.values() for seed in numbers)


def test_a_row_with_several_seeds_shows_their_mean_and_standard_deviation(tmp_path):
    results = tmp_path / "results"
    (results / "seeds").mkdir(parents=True)
    for seed, (error, averaged) in enumerate([(2.4, 1.3), (2.2, 1.2), (2.9, 1.1)]):
        (results / "seeds" / f"mnist-g2-s{seed}.json").write_text(json.dumps(
            {"error": error, "error_averaged": averaged, "mc_samples": 10, "epochs": 100, "train_seconds": 300 + seed}))
    (results / "mnist-g2.json").write_text(json.dumps(
        {"error": 2.4, "error_averaged": 1.3, "mc_samples": 10, "epochs": 100, "train_seconds": 300,
         "pretrained": "mnist-g2"}))
    seeds = load_seeds(results)
    assert [r["train_seed"] for r in seeds["mnist-g2"]] == [0, 1, 2]
    assert median_seed(seeds["mnist-g2"])["train_seed"] == 0  # 2.2 < 2.4 < 2.9: the shipped weights' seed
    line = table({}, seeds).splitlines()[2]  # no results/mnist-g2.json: the median seed's run stands for the row
    assert "| **2.50 ± 0.36** (3 seeds) | 1.20 ± 0.10 |" in line and "| 5 min |" in line
    readme = tmp_path / "README.md"
    readme.write_text(f"{START}\n{END}\n")
    update_readme(readme, results)
    assert "(`mnist-g2`) | **2.50 ± 0.36** (3 seeds)" in readme.read_text()
    (results / "seeds" / "stray.json").write_text("{}")
    with pytest.raises(ValueError, match="stray.json: not a seed's results file, which is named ROW-sS.json"):
        load_seeds(results)


def test_a_catch_row_with_several_seeds_spreads_its_sampled_rate_too(tmp_path):
    (tmp_path / "seeds").mkdir()
    for seed, (missed, sampled) in enumerate([(1.0, 12.0), (2.0, 10.0), (3.0, 14.0)]):
        (tmp_path / "seeds" / f"catch-s{seed}.json").write_text(json.dumps(
            {"error": missed, "catch_rate": 100 - missed, "catch_rate_sampled": 100 - sampled, "epochs": 32}))
    line = table({}, load_seeds(tmp_path)).splitlines()[2]  # the one row with a result: Catch
    assert line.startswith("| Catch, 24x24")
    assert "| **2.00 ± 1.00** (sampled: 12.00 ± 2.00) (3 seeds) | – |" in line


def test_the_median_of_an_even_number_of_seeds_is_the_lower_middle_and_ties_go_to_the_lower_seed():
    runs = [{"error": e, "train_seed": s} for s, e in enumerate([3.0, 1.0, 2.0, 4.0])]
    assert median_seed(runs)["train_seed"] == 2
    assert median_seed([{"error": 1.0, "train_seed": 1}, {"error": 1.0, "train_seed": 0}])["train_seed"] == 0


def test_reproducing_a_seed_suffixes_every_run_folder_and_writes_its_own_results_file():
    first, second, evaluate = reproduce_commands(BY_NAME["mnist-saccade"], seed=2)
    assert first[first.index("--seed") + 1] == second[second.index("--seed") + 1] == "2"
    assert first[-1] == "runs/mnist-saccade-s2-phase1" and second[-1] == "runs/mnist-saccade-s2"
    assert second[second.index("--init") + 1] == "runs/mnist-saccade-s2-phase1"
    assert evaluate == ["ram", "eval", "--checkpoint", "runs/mnist-saccade-s2", "--json", "--out-file",
                        "results/seeds/mnist-saccade-s2.json"]
    row = BY_NAME["mnist-saccade"]
    assert row.args(row.phases("runs", 2)[0])[-2:] == ["--seed", "2"]


def test_the_as_written_rows_say_so_and_replay_their_founding_recipe():
    saccade, catch = BY_NAME["mnist-saccade-000"], BY_NAME["catch-002"]
    assert _model(saccade).startswith("seed 000's recipe as written: 20 moves of a 4x4 patch, the patch alone")
    assert _model(catch).startswith("seed 002's agent and loss as written: 23 glimpses and moves")
    assert saccade.train_args() == ["--preset", "mnist-saccade-000", "--glimpses", "20", "--precision", "fp32"]
    assert saccade.config().loss.rl_reduction == "sum" and catch.config().loss.discount == 0.0


def test_the_table_says_when_validation_first_reached_the_papers_number():
    """From the run's validation curve: its epoch and time, counted from the first phase's start; a row whose
    validation never got there says so, and one without a curve says nothing of it."""
    curve = [[1, 3.0, 60.0], [2, 1.2, 120.0], [3, 1.1, 180.0]]
    g6 = next(line for line in table({"mnist-g6": {"error": 1.05, "epochs": 3, "val_curve": curve}}).splitlines()
              if "`mnist-g6`" in line or "6 glimpses" in line)
    assert "| 3; val. at paper's 1.12 by epoch 3 (3 min) |" in g6
    g2 = table({"mnist-g2": {"error": 1.05, "epochs": 3, "val_curve": curve}}).splitlines()[2]
    assert "| 3; val. at paper's 3.79 by epoch 1 (1 min) |" in g2  # paper B, not A (6.27)
    two = table({"mnist-g4": {"error": 1.4, "epochs": 103, "val_curve": curve,
                              "phases": [{"epochs": 100, "train_seconds": 600}, {"epochs": 3, "train_seconds": 180}]}})
    assert "by epoch 102 (12 min)" in two  # paper B 1.54: epoch 2 of the second phase
    early = [{"epochs": 100, "train_seconds": 600, "val_curve": [[99, 1.5, 590.0]]}, {"epochs": 3, "train_seconds": 180}]
    assert "by epoch 99 (10 min)" in table({"mnist-g4": {"error": 1.4, "epochs": 103, "val_curve": curve,
                                                          "phases": early}})  # reached in its first phase
    g6_100 = table({"mnist-cluttered-100-g6": {"error": 9.0, "epochs": 3, "val_curve": curve, "phases": [
        {"epochs": 400, "train_seconds": 600, "val_curve": [[1, 9.0, 1.0]]}, {"epochs": 3, "train_seconds": 180}]}})
    assert "val. at paper's 11.58 by epoch 401" in g6_100  # g8's own curve, before g6 started from it, is not g6's
    assert "val. never at paper's 1.12" in table({"mnist-g6": {"error": 1.3, "epochs": 1, "val_curve": curve[:1]}})
    assert "val." not in table({"mnist-g6": {"error": 1.3, "epochs": 1}})
    saccade = table({"mnist-saccade-g10": {"error": 12.0, "epochs": 10, "val_curve": curve}})
    assert "val." not in saccade.split("\n\n")[0]  # no paper number to reach


def test_a_row_can_start_from_another_rows_shipped_weights():
    row = Row("c100-g6", "mnist-cluttered-100", {"glimpses": 6, "epochs": 40, "precision": "bf16", "core": "lstm",
                                                 "means_weight": 1.0, "init": "mnist-cluttered-100-g8", "lr": 3e-4,
                                                 "lr_min": 1e-6})
    args = row.train_args()
    assert args[args.index("--init") + 1] == "mnist-cluttered-100-g8"
    train = row.config().train
    assert (train.init, train.lr, train.lr_min, train.epochs) == ("mnist-cluttered-100-g8", 3e-4, 1e-6, 40)
    assert _model(row) == ("RAM, 6 glimpses, LSTM core, trained along its means too, started from "
                           "`mnist-cluttered-100-g8`'s weights, 40 epochs at lr 0.0003")
    assert "--init" not in BY_NAME["mnist-g2"].train_args()  # rows from scratch name no start
    other = Row("t-g6", "mnist-translated", {"glimpses": 6, "epochs": 40, "init": "mnist-cluttered-g6", "lr": 3e-4})
    assert _model(other).endswith("started from `mnist-cluttered-g6`'s weights, trained on 60x60 cluttered MNIST "
                                  "(4 pieces), then 40 epochs at lr 0.0003")  # a start from another task says so


def test_a_row_started_from_other_weights_can_narrow_its_location_policy():
    row = Row("c100-g4", "mnist-cluttered-100", {"glimpses": 4, "epochs": 40, "core": "lstm",
                                                 "init": "mnist-cluttered-100-g8", "lr": 3e-4, "std": 0.1})
    args = row.train_args()
    assert args[args.index("--std") + 1] == "0.1"
    assert row.config().policy.std == 0.1
    assert _model(row).endswith("started from `mnist-cluttered-100-g8`'s weights, 40 epochs at lr 0.0003 and std 0.1")
    assert "--std" not in BY_NAME["mnist-translated-g4"].train_args()  # unset keeps the preset's
    assert BY_NAME["mnist-translated-g4"].config().policy.std == PRESETS["mnist-translated"][0].policy.std


def test_a_second_phase_that_narrows_the_location_policy_says_so():
    row = Row("c100-g8", "mnist-cluttered-100", {"glimpses": 8, "epochs": 400, "core": "lstm"}, then=(NARROWED,))
    one, two = row.configs()
    assert (one.policy.std, two.policy.std) == (0.2, 0.1) and two.train.init == "runs/c100-g8-phase1"
    assert _model(row).endswith("LSTM core, then 40 epochs at lr 0.0003 and std 0.1 along its means too")


def test_a_row_taught_by_sampled_episodes_trains_and_says_so():
    row = Row("c100-g4", "mnist-cluttered-100", {"glimpses": 4, "means_weight": 1.0, "mc_samples": 2,
                                                 "distill_weight": 1})
    cfg = row.config()
    assert (cfg.train.mc_samples, cfg.loss.distill_weight) == (2, 1.0)
    assert _model(row) == "RAM, 4 glimpses, trained along its means too, taught the average of 2 sampled episodes"
    plain = Row("c100-g4", "mnist-cluttered-100", {"glimpses": 4, "means_weight": 1.0}).config()
    assert (plain.train.mc_samples, plain.loss.distill_weight) == (1, 0.0)


def test_a_second_phase_that_distils_sampled_episodes_says_how_many():
    row = Row("c100-g8", "mnist-cluttered-100", {"glimpses": 8, "epochs": 400, "core": "lstm"}, then=(DISTILLED,))
    one, two = row.configs()
    assert (one.loss.distill_weight, two.loss.distill_weight, two.train.mc_samples) == (0, 1, 2)
    assert _model(row).endswith("along its means too, taught the average of 2 sampled episodes")


def test_a_phase_that_lets_the_image_decide_the_first_glimpse_says_so():
    row = Row("c100-g4", "mnist-cluttered-100", {"glimpses": 4, "epochs": 120, "lr": 3e-4,
                                                 "init": "mnist-cluttered-100-g8"}, then=(from_the_image(60),))
    one, two = row.configs()
    assert (one.policy.first_glimpse, two.policy.first_glimpse) == ("learned", "context")
    assert (two.train.epochs, two.train.lr, two.train.init) == (60, 3e-4, "runs/c100-g4-phase1")
    assert _model(row).endswith("120 epochs at lr 0.0003, then 60 epochs at lr 0.0003, its first glimpse decided by "
                                "the image")
    own = Row("c100-g6", "mnist-cluttered-100", {"glimpses": 6, "core": "lstm", "first_glimpse": "context"})
    assert own.config().policy.first_glimpse == "context"
    assert _model(own) == "RAM, 6 glimpses, LSTM core, its first glimpse decided by the image"


def test_a_third_phase_starts_from_the_seconds_weights_with_both_phases_flags():
    row = Row("c100-g8", "mnist-cluttered-100", {"glimpses": 8, "epochs": 400, "core": "lstm"},
              then=(DISTILLED, POLISHED))
    (one, first), (two, second), (three, last) = [(row.args(phase), phase.out) for phase in row.phases("runs")]
    assert (first, second, last) == ("runs/c100-g8-phase1", "runs/c100-g8-phase2", "runs/c100-g8")
    assert two[two.index("--init") + 1] == first and three[three.index("--init") + 1] == second
    assert three.count("--init") == 1
    a, b, c = row.configs()
    assert (a.train.epochs, b.train.epochs, c.train.epochs) == (400, 80, 40)
    assert (b.train.lr, c.train.lr) == (3e-4, 1e-4)
    assert (c.loss.distill_weight, c.policy.std, c.loss.means_weight) == (1.0, 0.1, 1.0)  # kept from phase 2
    assert _model(row).endswith("taught the average of 2 sampled episodes, then 40 epochs at lr 0.0001")
    g4 = Row("c100-g4", "mnist-cluttered-100", {"glimpses": 4, "epochs": 120, "lr": 3e-4,
                                                "init": "mnist-cluttered-100-g8"}, then=(POLISHED,))
    assert _model(g4).endswith("started from `mnist-cluttered-100-g8`'s weights, 120 epochs at lr 0.0003, "
                               "then 40 epochs at lr 0.0001")
    first_cmd, second_cmd, third_cmd, evaluate = reproduce_commands(row)
    assert third_cmd[-2:] == ["--out", "runs/c100-g8"] and evaluate[3] == "runs/c100-g8"


def across_tasks() -> Row:
    """A row of 60x60 translated MNIST trained first on 60x60 cluttered MNIST, then on its own task from those
    weights: a chain across tasks, each phase on its own preset."""
    return Row("t-g6", "mnist-translated", {"preset": "mnist-cluttered", "glimpses": 6, "epochs": 100,
                                            "precision": "fp32"},
               None, 1.22, then=({"preset": "mnist-translated", "epochs": 3, "lr": Sci(3e-4)},))


def test_a_row_can_train_its_first_phase_on_another_task(monkeypatch, capsys):
    """Each phase trains on its own preset: `ram reproduce` writes it as that phase's --preset (and no field of its
    own), and each phase's config is its preset's with the row's fields; the later one starts from the first's
    folder. The row's first-phase settings are the first preset's."""
    from ram.cli import main
    from ram.flags import parse
    from ram.results import build

    row = across_tasks()
    monkeypatch.setitem(BY_NAME, row.name, row)
    assert main(["reproduce", row.name, "--dry-run"]) == 0
    assert capsys.readouterr().out.splitlines() == [
        "ram train --preset mnist-cluttered --glimpses 6 --epochs 100 --precision fp32 --out runs/t-g6-phase1",
        "ram train --preset mnist-translated --glimpses 6 --epochs 3 --precision fp32 --lr 3e-4 "
        "--init runs/t-g6-phase1 --out runs/t-g6",  # each flag once, with the phase's value
        "ram eval --checkpoint runs/t-g6 --json --out-file results/t-g6.json",
    ]
    one, two = row.configs()
    assert one == build("mnist-cluttered", {"glimpses": 6, "epochs": 100, "precision": "fp32"})
    assert two == row.config() == build("mnist-translated", {"glimpses": 6, "epochs": 3, "precision": "fp32",
                                                             "lr": 3e-4, "init": "runs/t-g6-phase1"})
    assert (one.task.pieces, two.task.pieces) == (4, 0)  # the cluttered canvas, then the translated one
    for phase, cfg in zip(row.phases(), row.configs(), strict=True):
        assert parse(row.args(phase)).config(progress=False) == cfg
    assert (row.setting("pieces"), row.setting("glimpses")) == (4, 6)
    with pytest.raises(ValueError, match="last phase trains on preset 'mnist-cluttered', not the row's"):
        Row("t-g6", "mnist-translated", {"preset": "mnist-cluttered", "glimpses": 6})  # its weights' task is its own


def test_a_row_trained_first_on_another_task_says_so_and_reaches_the_paper_in_its_own(monkeypatch):
    """The table names the first phase's task and length; validation on that task never counts as reaching this
    task's paper number, though its epochs and seconds count towards when this one's did."""
    import ram.results

    row = across_tasks()
    assert _model(row) == ("RAM, 6 glimpses, trained first on 60x60 cluttered MNIST (4 pieces) for 100 epochs, then 3 "
                           "epochs at lr 0.0003")
    started = Row("t-g6", "mnist-translated", {"preset": "mnist-cluttered", "glimpses": 6, "epochs": 40, "lr": 3e-4,
                                               "init": "mnist-cluttered-100-g8"}, then=row.then)
    assert _model(started).endswith("started from `mnist-cluttered-100-g8`'s weights, trained on 100x100 cluttered "
                                    "MNIST (8 pieces), then 40 epochs on 60x60 cluttered MNIST (4 pieces) at lr "
                                    "0.0003, then 3 epochs at lr 0.0003")
    monkeypatch.setattr(ram.results, "ROWS", [row])
    result = {"error": 1.2, "epochs": 103, "val_curve": [[1, 1.1, 60.0]], "phases": [
        {"epochs": 100, "train_seconds": 6000, "val_curve": [[1, 1.0, 60.0]]}, {"epochs": 3, "train_seconds": 180}]}
    line = table({row.name: result}).splitlines()[2]
    assert line.startswith("| 60x60 translated MNIST | RAM, 6 glimpses, trained first on 60x60 cluttered MNIST")
    assert "| 100 + 3; val. at paper's 1.22 by epoch 101 (101 min) |" in line


def test_the_table_is_made_on_a_fresh_clone_without_the_rows_data_folder(tmp_path, monkeypatch):
    """A row trained on a folder of images (`--data data/fashion-images`) is described without reading that folder,
    which a fresh clone does not have: `ram results` runs there."""
    monkeypatch.chdir(tmp_path)
    assert not (tmp_path / BY_NAME["fashion-g6"].data).exists()
    line = table({"fashion-g6": {"error": 12.11, "epochs": 100}}).splitlines()[2]
    assert "RAM, 6 glimpses" in line and "**12.11**" in line


ROOT = Path(__file__).resolve().parents[1]


def test_the_readme_and_the_results_page_are_what_ram_results_makes_of_results(tmp_path):
    """Every number in both tables comes from results/*.json: regenerating them changes nothing."""
    for name in ("README.md", "docs/results.md"):
        copy = tmp_path / Path(name).name
        copy.write_text((ROOT / name).read_text())
        update = update_readme if name == "README.md" else update_page
        assert not update(copy, ROOT / "results"), f"{name} is out of date: run `ram results`"


def test_the_readmes_table_names_each_model_in_at_most_8_words():
    results, seeds = load_results(ROOT / "results"), load_seeds(ROOT / "results")
    lines = [line for line in compact_table(results, seeds).splitlines()[2:] if line.startswith("| ")
             and not line.startswith(("| task ", "|---"))]
    assert len(lines) == len([row for row in ROWS if row.name in results or row.name in seeds]) >= 30
    for line in lines:
        model = line.split(" | ")[1]
        assert len(model.split()) <= 8, model
    assert all(len(short_model(row).split()) <= 7 for row in ROWS)  # and the shipped name besides


def test_the_results_page_gives_every_rows_commands_as_on_a_fresh_clone():
    """Every row with a result has its commands on the page (a row still training has them in
    `ram reproduce --dry-run`, tests/reproduce_dry_run.txt)."""
    text = (ROOT / "docs" / "results.md").read_text()
    assert "ram export-folder --dataset fashion --out data/fashion-images" in text
    results, seeds = load_results(ROOT / "results"), load_seeds(ROOT / "results")
    shown = [row for row in ROWS if row.name in results or row.name in seeds]
    assert len(shown) >= 35
    for row in shown:
        assert f"# {row.name}: " in text, row.name


def pinned_dry_runs() -> dict[tuple[str, ...], str]:
    """tests/reproduce_dry_run.txt: each `$ ram reproduce all --dry-run ...` line's flags, and what it printed."""
    blocks: dict[tuple[str, ...], list[str]] = {}
    for line in (Path(__file__).parent / "reproduce_dry_run.txt").read_text().splitlines():
        if line.startswith("$ "):
            command = blocks.setdefault(tuple(line.split()[4:]), [])
        elif not line.startswith("#"):
            command.append(line)
    return {flags: "\n".join(lines) + "\n" for flags, lines in blocks.items()}


@pytest.mark.parametrize("flags", list(pinned_dry_runs()))
def test_every_rows_reproduce_commands_are_the_pinned_ones(flags, tmp_path, monkeypatch, capsys):
    """`ram reproduce NAME --dry-run` prints, for every row, the commands the results page has always given: a row's
    flags are made from its overrides, and the text of each was pinned before rows stopped being flag strings."""
    from ram.cli import main

    monkeypatch.chdir(tmp_path)  # no data/fashion-images: the fashion row exports its folder first
    assert main(["reproduce", "all", "--dry-run", *flags]) == 0
    assert capsys.readouterr().out == pinned_dry_runs()[flags]
    for row in ROWS:  # alone, a row prints every phase of its own, each into its own folder
        assert main(["reproduce", row.name, "--dry-run", *flags]) == 0
        commands = [shlex.split(line) for line in capsys.readouterr().out.splitlines()]
        outs = [command[command.index("--out") + 1] for command in commands if command[1] == "train"]
        seeds = range(int(flags[flags.index("--seeds") + 1])) if "--seeds" in flags else [None]
        assert outs == ([] if row.script else [phase.out for seed in seeds for phase in row.phases(seed=seed)])


def test_reproduce_all_trains_a_phase_rows_share_once_and_starts_the_next_from_it(monkeypatch, capsys):
    """Two rows that begin with the same phase (60x60 rows that all start on cluttered g6): `ram reproduce all`
    trains it once, and the second row's next phase starts from the first row's folder; alone, each trains its own.
    Over every real row and both seeds: no two training commands are the same, and each --init of a run folder names
    one an earlier command wrote."""
    import ram.results
    from ram.cli import main

    first = across_tasks()
    second = Row("t-g8", "mnist-translated", first.overrides, then=({**first.then[0], "glimpses": 8},))
    monkeypatch.setattr(ram.results, "ROWS", [first, second])
    assert main(["reproduce", "all", "--dry-run"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split("--out ")[-1] for line in lines if line.startswith("ram train")] == [
        "runs/t-g6-phase1", "runs/t-g6", "runs/t-g8"]
    assert "--glimpses 8 --epochs 3 --precision fp32 --lr 3e-4 --init runs/t-g6-phase1 --out runs/t-g8" in lines[3]
    assert lines[4] == "ram eval --checkpoint runs/t-g8 --json --out-file results/t-g8.json"
    monkeypatch.setitem(BY_NAME, second.name, second)
    assert main(["reproduce", second.name, "--dry-run"]) == 0
    assert "--out runs/t-g8-phase1" in capsys.readouterr().out
    monkeypatch.undo()
    for flags in ([], ["--seeds", "2"]):
        assert main(["reproduce", "all", "--dry-run", *flags]) == 0
        commands = [shlex.split(line) for line in capsys.readouterr().out.splitlines()]
        trains = [command[:command.index("--out")] for command in commands if command[1] == "train"]
        assert len(trains) == len({tuple(command) for command in trains}) > 40
        written = set()
        for command in commands:
            if command[1] == "train":
                init = command[command.index("--init") + 1] if "--init" in command else ""
                assert not init.startswith("runs/") or init in written, command
                written.add(command[command.index("--out") + 1])


def test_every_rows_config_is_what_ram_train_builds_from_its_printed_command(tmp_path, monkeypatch):
    """Each phase's config, built from the row's overrides with no flag parsed, is the one `ram train` builds from the
    phase's printed arguments (as rows once built theirs), for every row and a training seed. The fashion row reads
    a stand-in folder of the same layout: both sides read the same one."""
    from test_user_data import folder

    from ram.data import images
    from ram.flags import parse

    monkeypatch.setenv("RAM_DATA_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(images, "_SCANNED", {})
    monkeypatch.chdir(tmp_path)
    folder(tmp_path / "data" / "fashion-images", train=12, test=2)
    for row in ROWS:
        if row.script:  # trained outside `ram train`
            continue
        for seed in (None, 1):
            phases = row.phases(seed=seed)
            for phase, cfg in zip(phases, row.configs(seed), strict=True):
                assert parse(row.args(phase)).config(progress=False) == cfg, (row.name, phase.out)


def test_a_rows_flags_are_its_overrides_by_the_names_ram_train_gives_them():
    """One function writes a config difference as flags: the field's flag name (kind is --model), the value as str()
    writes it, in the order given; a number the later phases spell in scientific notation keeps that spelling and
    builds the same float."""
    from ram.results import build, flag_args

    assert flag_args({"kind": "fc", "what_size": 256, "lr": 3e-4, "lr_min": Sci(1e-6), "means_weight": 1.0}) == [
        "--model", "fc", "--what-size", "256", "--lr", "0.0003", "--lr-min", "1e-6", "--means-weight", "1.0"]
    cfg = build("mnist", {"lr": Sci(3e-4), "distill_weight": 1, "mc_samples": 2})
    assert type(cfg.train.lr) is float and cfg.train.lr == 3e-4 and type(cfg.loss.distill_weight) is float
    with pytest.raises(ValueError, match="glimpse: not a field"):
        flag_args({"glimpse": 6})


def test_the_strings_rows_give_their_flops_beside_the_papers_svhn_numbers():
    """The rows of strings of digits stand in the DRAM table with each model's MFLOPs an image, counted from its
    config (`ram.cost`), beside the paper's SVHN numbers, which the note names as such; the multi-head convnet reads
    the image once and so has no average over episodes."""
    from ram import cost
    from ram.results import BY_NAME, mflops

    dram, convnet = BY_NAME["mnist-numbers"], BY_NAME["mnist-numbers-multihead"]
    assert mflops(dram) == cost.of_run(dram.config())[1] and 50 < mflops(dram) < mflops(convnet)
    result = {"error": 12.0, "error_averaged": 10.0, "mc_samples": 10, "digit_error": 4.0, "epochs": 30}
    text = table({"mnist-numbers": result, "mnist-numbers-multihead": {**result, "error_averaged": 12.0}})
    strings = [line for line in text.splitlines() if line.startswith("| House numbers")]
    assert len(strings) == 2
    assert f"| **12.00** | 10.00 | 4.00 | {mflops(dram):.1f} | 5.10 (SVHN) |" in strings[0]
    assert f"| **12.00** | – | 4.00 | {mflops(convnet):.1f} | 4.11 (SVHN) |" in strings[1]
    assert "multi-head convnet (Goodfellow" in strings[1] and "a stand-in for its SVHN house numbers" in text


def test_rows_beside_the_dram_paper_stand_in_a_table_of_their_own_with_that_papers_column():
    """A DRAM-paper row is not in the RAM paper's A / B columns: it gets its own table, whose paper column is its
    target, with the digits named wrong; a row trained first on another task says which; its notes follow."""
    from ram.results import PAPERS

    result = {"error": 7.3, "error_averaged": 5.9, "mc_samples": 10, "digit_error": 3.7, "epochs": 40,
              "train_seconds": 600.0}
    text = table({"mnist-g6": {"error": 1.0, "error_averaged": 0.7, "mc_samples": 10, "epochs": 100},
                  "mnist-pairs": result, "mnist-addition": {**result, "digit_error": None}})
    ram_part, dram_part = text.split("**More than one object**")
    assert "pairs" not in ram_part and "RAM, 6 glimpses" in ram_part and PAPERS["dram"] in dram_part
    pairs = next(line for line in dram_part.splitlines() if "MNIST pairs" in line)
    assert "| **7.30** | 5.90 | 3.70 | 19.5 | 5.00 |" in pairs and "then 40 epochs at lr 0.0003 and std 0.1" in pairs
    sums = next(line for line in dram_part.splitlines() if "MNIST addition" in line)
    assert "trained first on MNIST pairs, 100x100 cluttered: both digits, either order for 200 epochs, then 100" in sums
    assert "| **7.30** | 5.90 | – | 19.5 | 2.50 |" in sums
    assert "- `mnist-addition`: on sums its answer layer starts fresh" in dram_part
    assert "SVHN" not in dram_part  # no row of strings shown
    compact = compact_table({"mnist-pairs": result})
    assert "beside Ba, Mnih and Kavukcuoglu 2015" in compact and "| **7.30** | 5.90 | 5.00 |" in compact
    assert "beside Ba" not in compact_table({"mnist-g6": {"error": 1.0, "error_averaged": 0.7, "mc_samples": 10}})
