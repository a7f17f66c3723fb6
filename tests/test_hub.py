"""Publishing a run ships its weights with their SHA-256 and says how its test error was measured."""

import json

import pytest

from ram import checkpoint as ckpt
from ram import hub, presets
from ram.model import build_model


@pytest.mark.parametrize("test_json, protocol", [({"error": 1.5, "mc_samples": 10, "epochs": 3}, 10),
                                                 ({"error": 2.5, "epochs": 3}, 0)])  # older runs: policy means only
def test_publish_records_weights_and_test_protocol(tmp_path, monkeypatch, test_json, protocol):
    monkeypatch.setattr(hub, "PRETRAINED", tmp_path / "pretrained")
    cfg = presets.resolve("mnist", model={"glimpses": 2})
    run = tmp_path / "run"
    ckpt.export_model(run, build_model(cfg.model), cfg)
    (run / "test.json").write_text(json.dumps(test_json))
    entry = hub.publish(run, "tiny")
    assert entry["test_error"] == test_json["error"] and entry["test_mc_samples"] == protocol
    assert entry["sha256"] == ckpt.sha256(tmp_path / "pretrained" / "tiny.safetensors")
    model, loaded = hub.load_pretrained("tiny")
    assert loaded == cfg


def test_every_shipped_model_was_trained_with_its_rows_command():
    """`ram reproduce NAME` replays the row's `ram train` command: that must be the config the weights came from."""
    from ram.config import RunConfig
    from ram.results import BY_NAME

    for name, entry in hub.manifest().items():
        cfg = RunConfig.from_dict(entry["config"])
        assert cfg.differences(BY_NAME[name].config()) == [], name
