"""Publishing a run ships its weights with their SHA-256 and says how its test error was measured."""

import dataclasses
import json
from pathlib import Path

import pytest
import torch

from ram import checkpoint as ckpt
from ram import hub, presets
from ram.models import build_model


def _tiny_run(folder, test: dict):
    """A run folder of an untrained 2-glimpse mnist model with this test.json; its config."""
    cfg = presets.resolve("mnist", model={"glimpses": 2})
    ckpt.export_model(folder, build_model(cfg.model), cfg)
    (folder / "test.json").write_text(json.dumps(test))
    return cfg


@pytest.mark.parametrize("test_json, protocol", [
    ({"error": 1.5, "protocol": "one episode along the policy means", "mc_samples": 10, "epochs": 3},
     "one episode along the policy means"),
    ({"error": 2.5, "mc_samples": 10, "epochs": 3}, "mean of 10 sampled episodes"),  # test.json before the protocol
])
def test_publish_records_weights_and_test_protocol(tmp_path, monkeypatch, test_json, protocol):
    monkeypatch.setattr(hub, "PRETRAINED", tmp_path / "pretrained")
    cfg = presets.resolve("mnist", model={"glimpses": 2})
    run = tmp_path / "run"
    ckpt.export_model(run, build_model(cfg.model), cfg)
    (run / "test.json").write_text(json.dumps(test_json))
    entry = hub.publish(run, "tiny")
    assert entry["test_error"] == test_json["error"] and entry["test_protocol"] == protocol
    assert entry["sha256"] == ckpt.sha256(tmp_path / "pretrained" / "tiny.safetensors")
    model, loaded = hub.load_pretrained("tiny")
    assert loaded == cfg


def test_every_shipped_model_was_trained_with_its_rows_command():
    """`ram reproduce NAME` replays the row's `ram train` command: that must be the config the weights came from."""
    from ram.config import RunConfig
    from ram.results import BY_NAME

    for name, entry in hub.manifest().items():
        if BY_NAME[name].data and not Path(BY_NAME[name].data).is_dir():
            continue  # trained on a folder of images this machine has not exported; `ram reproduce` makes it
        cfg = RunConfig.from_dict(entry["config"])
        row = BY_NAME[name]
        seed = None if cfg.train.seed == row.config().train.seed else cfg.train.seed  # a median seed's weights
        want = row.config(seed)
        if row.then and cfg.train.init == name:  # its last phase went on from the row's own shipped earlier phases
            # ... which are the row's phases, after those of the model its first phase started from
            start = row.setting("init")
            before = [p["epochs"] for p in hub.manifest()[start]["phases"]] if start else []
            assert [p["epochs"] for p in entry["phases"]] == before + [c.train.epochs for c in row.configs(seed)], name
            want = dataclasses.replace(want, train=dataclasses.replace(want.train, init=name))
        assert cfg.differences(want) == [], name


def test_a_second_phase_from_a_shipped_model_counts_both_phases(tmp_path, monkeypatch):
    monkeypatch.setattr(hub, "PRETRAINED", tmp_path / "pretrained")
    first = tmp_path / "first"
    _tiny_run(first, {"error": 3.0, "epochs": 100, "train_seconds": 500.0})
    hub.publish(first, "tiny")
    # the second phase continues the shipped model under its own name, which the new weights then replace
    second_cfg = presets.resolve("mnist", model={"glimpses": 2}, policy={"std": 0.05}, train={"init": "tiny"})
    second = tmp_path / "second"
    ckpt.export_model(second, build_model(second_cfg.model), second_cfg)
    (second / "test.json").write_text(json.dumps({"error": 2.0, "epochs": 20, "train_seconds": 100.0}))
    entry = hub.publish(second, "tiny")
    assert entry["phases"] == [{"epochs": 100, "train_seconds": 500.0}, {"epochs": 20, "train_seconds": 100.0}]
    assert entry["epochs"] == 120 and entry["train_seconds"] == 600.0
    assert hub.run_info(pretrained="tiny")["phases"] == entry["phases"]


def test_a_phase_from_a_shipped_model_keeps_the_validation_curve_of_the_phase_that_made_it(tmp_path, monkeypatch):
    """A row's validation may first reach the paper in an earlier phase: that phase's curve must not be lost when a
    later phase replaces the shipped entry, whose own val_curve is then the last phase's."""
    monkeypatch.setattr(hub, "PRETRAINED", tmp_path / "pretrained")
    first = tmp_path / "first"
    _tiny_run(first, {"error": 3.0, "epochs": 2, "train_seconds": 20.0})
    (first / "metrics.csv").write_text("epoch,val_error,seconds\n1,5.0,10\n2,4.0,10\n")
    hub.publish(first, "tiny")
    second = tmp_path / "second"
    cfg = _tiny_run(second, {"error": 2.0, "epochs": 1, "train_seconds": 9.0})
    ckpt.export_model(second, build_model(cfg.model), presets.resolve("mnist", model={"glimpses": 2},
                                                                      train={"init": "tiny"}))
    (second / "metrics.csv").write_text("epoch,val_error,seconds\n1,3.5,9\n")
    entry = hub.publish(second, "tiny")
    assert entry["phases"] == [{"epochs": 2, "train_seconds": 20.0, "val_curve": [[1, 5.0, 10.0], [2, 4.0, 20.0]]},
                               {"epochs": 1, "train_seconds": 9.0}]
    assert entry["val_curve"] == [[1, 3.5, 9.0]]


def test_a_second_phase_from_a_run_folder_counts_both_phases_in_its_test_json_and_the_manifest(tmp_path, monkeypatch):
    """`ram reproduce` of a two-phase row starts phase 2 from phase 1's run folder: the final test.json and the
    shipped entry count both phases, and a phase 1 of two phases itself counts three."""
    from dataclasses import replace

    from ram.data import Digits, TaskData
    from ram.train import fit

    monkeypatch.setattr(hub, "PRETRAINED", tmp_path / "pretrained")
    first = tmp_path / "first"
    cfg = presets.resolve("mnist", model={"glimpses": 1, "hidden": 8}, train={"epochs": 1})
    ckpt.export_model(first, build_model(cfg.model), cfg)
    (first / "test.json").write_text(json.dumps({"error": 3.0, "epochs": 100, "train_seconds": 500.0}))
    assert hub.training_phases(str(first), {"epochs": 2, "train_seconds": 9.0}) == [
        {"epochs": 100, "train_seconds": 500.0}, {"epochs": 2, "train_seconds": 9.0}]
    assert hub.training_phases("", {"epochs": 2, "train_seconds": 9.0}) == [{"epochs": 2, "train_seconds": 9.0}]
    xeon = {"cpu": "a Xeon", "cpu_flags": ["avx2", "amx_bf16"]}  # each phase keeps the machine it ran on
    (first / "test.json").write_text(json.dumps({"error": 3.0, "epochs": 100, "train_seconds": 500.0, "machine": xeon}))
    assert hub.training_phases(str(first), hub.phase_of({"epochs": 2, "train_seconds": 9.0, "error": 1.0})) == [
        {"epochs": 100, "train_seconds": 500.0, "machine": xeon}, {"epochs": 2, "train_seconds": 9.0}]

    g = torch.Generator().manual_seed(0)
    digits = Digits(torch.randint(0, 256, (80, 28, 28), dtype=torch.uint8, generator=g),
                    torch.randint(0, 10, (80,), generator=g),
                    torch.randint(0, 256, (20, 28, 28), dtype=torch.uint8, generator=g),
                    torch.randint(0, 10, (20,), generator=g))
    second_cfg = replace(cfg, task=replace(cfg.task, val_size=20),
                         train=replace(cfg.train, init=str(first), batch_size=30, eval_mc_samples=0))
    result = fit(second_cfg, tmp_path / "second", data=TaskData(second_cfg.task, seed=0, digits=digits),
                 progress=False)
    assert result["phases"][0] == {"epochs": 100, "train_seconds": 500.0, "machine": xeon}
    assert result["phases"][1]["epochs"] == 1 and result["phases"][1]["machine"] == result["machine"]
    entry = hub.publish(tmp_path / "second", "two")
    assert entry["phases"] == result["phases"] and entry["epochs"] == 101
    assert [p["epochs"] for p in hub.training_phases(str(tmp_path / "second"), {"epochs": 5})] == [100, 1, 5]
    assert entry["config"]["train"]["init"] == str(first)  # a folder that is no shipped model stays named

    hub.publish(first, "one")  # the first phase ships after the second was trained from its folder
    entry = hub.publish(tmp_path / "second", "two")
    assert entry["config"]["train"]["init"] == "one"  # the shipped model with those very weights
    assert [p["epochs"] for p in entry["phases"]] == [100, 1]
    hub.publish(first, "one", float16=True)  # shipped as its float16 export: still the same model
    assert hub.publish(tmp_path / "second", "two")["config"]["train"]["init"] == "one"


def test_a_second_phase_trained_from_a_folder_elsewhere_ships_with_the_recipes_init(tmp_path, monkeypatch):
    """Phase 2 of a row trained from phase 1 in a folder outside the work tree ships naming the recipe's folder
    (what `ram reproduce` replays), in the manifest and in the file's own config, and still counts both phases."""
    monkeypatch.setattr(hub, "PRETRAINED", tmp_path / "pretrained")
    first = tmp_path / "elsewhere" / "first"
    _tiny_run(first, {"error": 3.0, "epochs": 30, "train_seconds": 500.0})
    second = tmp_path / "second"
    _tiny_run(second, {"error": 2.0, "epochs": 3, "train_seconds": 50.0})
    cfg = presets.resolve("mnist", model={"glimpses": 2}, train={"init": str(first)})
    ckpt.export_model(second, build_model(cfg.model), cfg)
    for float16 in (False, True):
        entry = hub.publish(second, "two", float16=float16, init="runs/first")
        assert entry["config"]["train"]["init"] == "runs/first"
        assert [p["epochs"] for p in entry["phases"]] == [30, 3] and entry["train_seconds"] == 550.0
        assert entry["sha256"] == ckpt.sha256(tmp_path / "pretrained" / "two.safetensors")
        assert hub.load_pretrained("two")[1].train.init == "runs/first"


def test_the_validation_curve_goes_from_the_run_folder_into_the_manifest_and_the_results(tmp_path, monkeypatch):
    """`ram eval --checkpoint` and `--pretrained` both carry when validation reached each error (for the table)."""
    monkeypatch.setattr(hub, "PRETRAINED", tmp_path / "pretrained")
    run = tmp_path / "run"
    _tiny_run(run, {"error": 1.5, "epochs": 2, "train_seconds": 30.0})
    (run / "metrics.csv").write_text("epoch,val_error,seconds,total_seconds\n1,4.0,10,100\n2,2.5,10,110\n")
    curve = [[1, 4.0, 100.0], [2, 2.5, 110.0]]
    assert hub.run_info(run) == {"epochs": 2, "train_seconds": 30.0, "val_curve": curve}
    hub.publish(run, "tiny")
    assert hub.run_info(pretrained="tiny")["val_curve"] == curve
    assert "[1, 4.0, 100.0]," in (tmp_path / "pretrained" / "manifest.json").read_text()  # a point a line
    (run / "metrics.csv").unlink()
    assert "val_curve" not in hub.run_info(run)


def test_results_and_manifest_json_put_each_list_of_numbers_on_one_line_and_change_no_value():
    """`ram eval --out-file`, the manifest and test.json are written by `json_text`: a curve point is one line, a string
    that looks like a spread-out list keeps its text, and the file parses back to the same values."""
    record = {"val_curve": [[1, 65.47, 32.3], [2, -1.5e-05, 4]], "cpu_flags": ["avx2", "avx512f"], "empty": [],
              "note": "[\n  1,\n  2\n]", "nested": {"phases": [400, 80]}, "nan": float("nan")}
    text = ckpt.json_text(record)
    assert "    [1, 65.47, 32.3],\n    [2, -1.5e-05, 4]\n" in text
    assert '"phases": [400, 80]' in text and '"avx2",\n' in text
    again = json.loads(text)
    assert again["note"] == record["note"] and again["val_curve"] == record["val_curve"]
    assert json.dumps(again, sort_keys=True) == json.dumps(record, sort_keys=True)
    assert text.endswith("}\n")


def test_every_committed_results_file_is_written_as_ram_eval_writes_it():
    """The committed results files are byte for byte what `json_text` makes of their values, so a row evaluated anew
    shows in `git diff` only where a number changed."""
    root = Path(__file__).resolve().parents[1] / "results"
    files = [p for p in root.rglob("*.json") if p.name != "auto-recipe.json"]
    assert len(files) > 40
    for path in files:
        assert path.read_text() == ckpt.json_text(json.loads(path.read_text())), path
