"""DRAM through the one trainer and the CLI: `ram train --preset mnist-pairs` trains it, `ram eval` and `ram viz` take
its run folder, `ram predict` prints the labels it emits in turn, and `--model dram` builds its own section."""

import json

import pytest
from PIL import Image

from ram.cli import main
from ram.dram import DramConfig
from ram.flags import parse

TINY = ["--epochs", "1", "--train-size", "256", "--val-size", "100", "--eval-mc-samples", "0", "--hidden", "8",
        "--glimpse-features", "8", "--classifier-hidden", "8", "--conv-channels", "2", "2", "4", "--context-channels",
        "2", "2", "4", "--threads", "1", "--no-progress"]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("dram") / "run"
    assert main(["train", "--preset", "mnist-pairs", *TINY, "--out", str(out)]) == 0
    return out


def test_a_dram_run_trains_evaluates_and_draws_its_glimpses(run, tmp_path, capsys):
    report = json.loads((run / "test.json").read_text())
    assert report["model"] == "dram" and report["n"] == 10_000 and {"error", "digit_error"} <= set(report)
    assert (run / "glimpses.png").is_file()
    capsys.readouterr()
    assert main(["eval", "--checkpoint", str(run), "--mc-samples", "0", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["error"] == report["error"]
    assert main(["viz", "--checkpoint", str(run), "--out", str(tmp_path / "pics"), "--n", "4"]) == 0
    assert (tmp_path / "pics" / "glimpses.png").is_file()


def test_predict_prints_each_emitted_label_with_its_probability(run, tmp_path, capsys):
    Image.new("L", (100, 100)).save(tmp_path / "pair.png")
    capsys.readouterr()
    assert main(["predict", str(tmp_path / "pair.png"), "--checkpoint", str(run), "--json"]) == 0
    line = json.loads(capsys.readouterr().out)
    assert len(line["labels"]) == 2 and all(0 <= x["label"] <= 9 and 0 < x["probability"] <= 1 for x in line["labels"])
    assert line["class"] == " ".join(str(x["label"]) for x in line["labels"])


def test_model_dram_picks_drams_own_section_and_its_flags(capsys):
    cfg = parse(["--preset", "mnist-pairs", "--coarse", "20", "--context", "False"]).config(progress=False)
    assert isinstance(cfg.model, DramConfig) and (cfg.model.coarse, cfg.model.context) == (20, False)
    with pytest.raises(SystemExit):
        parse(["--preset", "mnist-pairs", "--core", "lstm"])  # RAM's setting: no flag of a DRAM run
    assert "--core" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        parse(["--preset", "mnist", "--coarse", "20"])  # DRAM's setting: no flag of a RAM run


def test_a_model_that_answers_once_learns_the_55_pairs_and_is_scored_on_them(tmp_path, capsys):
    out = tmp_path / "convnet"
    small = ["--epochs", "1", "--train-size", "256", "--val-size", "100", "--eval-mc-samples", "0", "--threads", "1",
             "--no-progress"]
    assert main(["train", "--preset", "mnist-pairs", "--model", "convnet", *small, "--out", str(out)]) == 0
    report = json.loads((out / "test.json").read_text())
    assert report["model"] == "convnet" and report["n"] == 10_000 and 0 <= report["error"] <= 100
    assert report["protocol"] == "the whole image read once"
    assert json.loads((out / "config.json").read_text())["model"]["classes"] == 55


def test_the_sensor_settings_of_the_model_section_reach_drams_glimpses(monkeypatch):
    """pool, pad and the pixel standardisation are settings of every glimpse model: DRAM reads them too."""
    import dataclasses

    import torch

    from ram import presets, sensor
    from ram.models import model_of

    cfg = presets.get("mnist-pairs")
    images = torch.rand(2, 1, 100, 100)
    modes = []
    pad_images = sensor.pad_images
    monkeypatch.setattr(sensor, "pad_images", lambda *a, mode="zeros", **kw: modes.append(mode) or pad_images(
        *a, mode=mode, **kw))
    episodes = []
    for model in ({}, {"pool": "max"}, {"pixel_mean": 0.5, "pixel_std": 0.25}, {"pad": "edge"}):
        torch.manual_seed(0)
        net = model_of(dataclasses.replace(cfg, model=dataclasses.replace(cfg.model, **model))).eval()
        episodes.append(net(images, sample=False).logits)
    assert not torch.equal(episodes[0], episodes[1]) and not torch.equal(episodes[0], episodes[2])
    assert modes == ["zeros", "zeros", "zeros", "edge"]


def test_dram_on_a_task_of_one_label_an_image_is_refused_naming_its_tasks():
    from ram.config import ConfigError

    with pytest.raises(ConfigError, match="model = 'dram': emits a sequence of labels, and mnist has one label"):
        parse(["--preset", "mnist", "--model", "dram"]).config(progress=False)


def test_the_page_offers_a_dram_run_and_shows_the_labels_it_emits(run):
    """`ram serve --checkpoint RUN` of a DRAM run: listed (and opened with) as a model of two drawn digits and two
    labels; a drawing of two boxes side by side gets both labels, and glimpses that lead to each in turn."""
    pytest.importorskip("starlette", reason="the serve extra is not installed: pip install -e '.[serve]'")
    import io

    import numpy as np
    from PIL import ImageDraw
    from starlette.testclient import TestClient

    from ram.serve.app import create_app

    drawing = Image.new("L", (560, 280))
    pen = ImageDraw.Draw(drawing)
    pen.line([(70, 60), (210, 60), (120, 230)], fill=255, width=20)  # a 7 in the left box
    pen.line([(420, 40), (410, 240)], fill=255, width=20)  # a 1 in the right one
    body = io.BytesIO()
    drawing.save(body, format="PNG")
    with TestClient(create_app(checkpoint=run), base_url="http://127.0.0.1:8000") as c:
        listing = c.get("/api/models").json()
        answer = c.post("/api/classify?seed=1", content=body.getvalue()).json()
    entry = {m["name"]: m for m in listing["models"]}["run:run"]
    assert listing["default"] == "run:run" and (entry["drawings"], entry["outputs"]) == (2, 2)
    assert answer["model"] == "run:run" and answer["prepared"] == "digits" and len(answer["labels"]) == 2
    assert all(0 <= a["label"] <= 9 and np.isclose(a["probability"], max(a["probs"])) for a in answer["labels"])
    assert [s["output"] for s in answer["steps"]] == [0, 0, 1, 1]


def test_a_sums_model_starts_from_a_pairs_run_but_for_its_answer_layer(run, capsys):
    """--init from a model of another task's classes: every weight but the answer layer's comes from the init; the
    answer layer (10 classes there, 19 sums here) starts fresh, and the run says so."""
    import torch

    from ram.checkpoint import load_weights
    from ram.flags import recipe
    from ram.models import model_of
    from ram.train import _initial_weights

    small = {"hidden": 8, "glimpse_features": 8, "classifier_hidden": 8, "conv_channels": (2, 2, 4),
             "context_channels": (2, 2, 4)}
    cfg = recipe("mnist-addition", init=str(run), **small).config()
    pairs = model_of(recipe("mnist-pairs", **small).config())
    load_weights(pairs, run / "model.safetensors")
    sums = model_of(cfg)
    missing = sums.load_state_dict(_initial_weights(cfg), strict=False).missing_keys
    assert missing == ["classifier.out.weight", "classifier.out.bias"]
    kept = {k: v for k, v in pairs.state_dict().items() if not k.startswith("classifier.out.")}
    assert all(torch.equal(sums.state_dict()[k], v) for k, v in kept.items())
    assert sums.classifier.out.weight.shape[0] == 19 and pairs.classifier.out.weight.shape[0] == 10


def test_a_model_that_names_one_of_55_pairs_is_read_as_its_pair(tmp_path, capsys):
    """RAM trained on mnist-pairs (`--model ram`) answers one of 55 classes, each an unordered pair: `ram predict`
    prints the pair ("3 7"), its JSON gives it as the class beside the class's index, and the page says the same."""
    import dataclasses

    import numpy as np
    import torch

    from ram import checkpoint as ckpt
    from ram.models import build_model
    from ram.tasks.multi import MnistPairs

    cfg = parse(["--preset", "mnist-pairs", "--model", "ram"]).config(progress=False)
    small = dataclasses.replace(cfg, model=dataclasses.replace(cfg.model, what_size=8, where_size=8, glimpse_size=8,
                                                               hidden=8)).validate()
    assert small.labels == MnistPairs.answer_names and small.labels[:3] == ("0 0", "0 1", "0 2")
    assert len(small.labels) == 55 and small.labels[54] == "9 9"
    torch.manual_seed(0)
    ckpt.export_model(tmp_path / "ram-pairs", build_model(small.model), small)
    canvas = np.zeros((100, 100), np.uint8)
    canvas[20:40, 20:30] = canvas[60:80, 50:70] = 255
    Image.fromarray(canvas).save(tmp_path / "pair.png")
    capsys.readouterr()
    assert main(["predict", str(tmp_path / "pair.png"), "--checkpoint", str(tmp_path / "ram-pairs"), "--json"]) == 0
    line = json.loads(capsys.readouterr().out)
    first, second = map(int, line["class"].split())
    assert 0 <= first <= second <= 9 and line["class"] == small.labels[line["label"]]
    assert main(["predict", str(tmp_path / "pair.png"), "--checkpoint", str(tmp_path / "ram-pairs")]) == 0
    assert capsys.readouterr().out.split("\t")[1] == line["class"]

    pytest.importorskip("starlette", reason="the serve extra is not installed: pip install -e '.[serve]'")
    from starlette.testclient import TestClient

    from ram.serve.app import create_app

    with TestClient(create_app(checkpoint=tmp_path / "ram-pairs"), base_url="http://127.0.0.1:8000") as c:
        answer = c.post("/api/classify", content=(tmp_path / "pair.png").read_bytes()).json()
    assert answer["prepared"] == "as is" and answer["class"] == line["class"]
    assert [a["label"] for a in answer["labels"]] == [line["label"]] and answer["classes"] == list(small.labels)
