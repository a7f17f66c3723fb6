"""Nothing is executed from a checkpoint, and nothing corrupt is used from one.

Each hostile file carries a pickle whose __reduce__ runs `touch MARKER`. The tests first prove the payload is live (an
unsafe loader does create the marker), then that our loaders refuse the file with a clear message and the marker
never appears.
"""

import hashlib
import json
import os
import pickle
import random
import re
import shlex
from pathlib import Path

import pytest
import torch

from ram import checkpoint as ckpt
from ram import hub
from ram.cli import main
from ram.config import ModelConfig, RunConfig, TrainConfig
from ram.tasks import DigitsConfig
from ram.models import build_model
from ram.train import _rng_state, make_optimizer

SRC = Path(__file__).parents[1] / "src" / "ram"


class Payload:
    """Unpickling this runs a shell command that creates `marker`."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return os.system, (f"touch {shlex.quote(self.marker)}",)


@pytest.fixture
def marker(tmp_path) -> Path:
    return tmp_path / "MARKER"


def small_config() -> RunConfig:
    return RunConfig(preset="mnist", task=DigitsConfig(), model=ModelConfig(glimpses=2, hidden=32, glimpse_size=32,
                     what_size=16, where_size=16), train=TrainConfig(epochs=1)).validate()


# The same run, as `ram train` flags.
TRAIN = ["train", "--preset", "mnist", "--epochs", "1", "--glimpses", "2", "--no-progress"]


def training_state(cfg: RunConfig) -> dict:
    model = build_model(cfg.model)
    optimizer = make_optimizer(model, cfg.train)
    loop = {"epoch": 0, "batch": 3, "step": 3, "best_val_error": float("inf"), "history": [], "sums": None,
            "elapsed": 0.0}
    return {"config": cfg.to_dict(), "model": model.state_dict(), "optimizer": optimizer.state_dict(),
            "rng": _rng_state(), "loop": loop}


def run_folder(tmp_path: Path, cfg: RunConfig | None = None) -> Path:
    """A run folder as `ram train` leaves it after an epoch: config.json and model.safetensors (untrained weights)."""
    cfg = cfg or small_config()
    folder = tmp_path / "run"
    ckpt.export_model(folder, build_model(cfg.model), cfg)
    return folder


def folder_snapshot(folder: Path) -> dict[str, bytes]:
    # .lock: the run folder's lock (ram.runlock), an empty file that stays, as the data cache's does
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.name != ".lock"}


def test_the_payload_is_live(tmp_path, marker):
    """Loaded unsafely, the hostile files below do run code: the marker is a real witness."""
    pickle.loads(pickle.dumps(Payload(marker)))
    assert marker.exists()
    marker.unlink()
    torch.save({"model": Payload(marker)}, tmp_path / "last.pt")
    torch.load(tmp_path / "last.pt", weights_only=False)
    assert marker.exists()


@pytest.mark.parametrize("fmt", ["torch.save zip", "raw pickle"])
def test_resume_refuses_a_hostile_last_pt_before_running_it(fmt, tmp_path, marker, capsys, real_data):
    folder = tmp_path / "run"
    folder.mkdir()
    state = training_state(small_config()) | {"model": Payload(marker)}
    if fmt == "raw pickle":
        (folder / "last.pt").write_bytes(pickle.dumps(state, protocol=2))
    else:
        torch.save(state, folder / "last.pt")
    before = folder_snapshot(folder)

    assert main([*TRAIN, "--out", str(folder), "--resume"]) == 2

    err = capsys.readouterr().err
    assert f"ram train: error: checkpoint {folder / 'last.pt'} refused" in err
    assert "could run code" in err and "system" in err, err  # names the refused global (posix.system)
    assert "weights_only` set to `False`" not in err  # torch's advice to load it unsafely is not passed on
    assert "Traceback" not in err
    assert not marker.exists()
    assert folder_snapshot(folder) == before  # nothing written, nothing started


def _flip_tensor_byte(path: Path) -> None:
    """Flip one bit inside the first tensor record of a torch.save zip archive (zip structure left intact)."""
    import zipfile

    with zipfile.ZipFile(path) as z:
        info = next(i for i in z.infolist() if "/data/" in i.filename and i.file_size > 0)
    data = bytearray(path.read_bytes())
    header = data[info.header_offset : info.header_offset + 30]
    start = info.header_offset + 30 + int.from_bytes(header[26:28], "little") + int.from_bytes(header[28:30], "little")
    data[start + info.file_size // 2] ^= 0x10
    path.write_bytes(bytes(data))


@pytest.mark.parametrize(
    "damage,needle",
    [
        ("flipped bit in a tensor", "fails its CRC-32 check"),
        ("truncated", "unreadable or truncated"),
        ("random bytes", "unreadable or truncated"),
        ("empty", "unreadable or truncated"),
        ("a list, not a state", "not a training state written by ram train"),
        ("state without its optimiser", "missing ['optimizer']"),
    ],
)
def test_resume_refuses_a_corrupt_last_pt(damage, needle, tmp_path, capsys, real_data):
    folder = tmp_path / "run"
    folder.mkdir()
    last = folder / "last.pt"
    state = training_state(small_config())
    ckpt.save_state(last, state)
    assert ckpt.load_state(last)["loop"] == state["loop"]  # undamaged, it loads
    good = last.read_bytes()
    if damage == "flipped bit in a tensor":
        _flip_tensor_byte(last)
    elif damage == "truncated":
        last.write_bytes(good[: len(good) // 2])
    elif damage == "random bytes":
        last.write_bytes(random.Random(0).randbytes(len(good)))
    elif damage == "empty":
        last.write_bytes(b"")
    elif damage == "a list, not a state":
        ckpt.save_state(last, [1, 2, 3])
    else:
        ckpt.save_state(last, {k: v for k, v in state.items() if k != "optimizer"})

    assert main([*TRAIN, "--out", str(folder), "--resume"]) == 2

    err = capsys.readouterr().err
    assert needle in err and str(last) in err, err
    assert "Traceback" not in err


def _safetensors_damage(good: bytes, damage: str, marker: Path) -> bytes:
    if damage == "hostile pickle":
        return pickle.dumps({"weights": Payload(marker)}, protocol=2)
    if damage == "hostile torch.save":
        path = marker.with_name("hostile.pt")
        torch.save({"weights": Payload(marker)}, path)
        return path.read_bytes()
    if damage == "random bytes":
        return random.Random(1).randbytes(4096)
    if damage == "empty":
        return b""
    if damage == "header claims 2**60 bytes":
        return (2**60).to_bytes(8, "little") + b'{"__metadata__": {}}'
    if damage == "truncated":
        return good[: len(good) // 2]
    data = bytearray(good)  # flipped bit in the last tensor's bytes, header intact
    data[-3] ^= 0x01
    return bytes(data)


@pytest.mark.parametrize(
    "damage,needle",
    [
        ("hostile pickle", "not a valid safetensors file"),
        ("hostile torch.save", "not a valid safetensors file"),
        ("random bytes", "not a valid safetensors file"),
        ("empty", "not a valid safetensors file"),
        ("header claims 2**60 bytes", "not a valid safetensors file"),
        ("truncated", "not a valid safetensors file"),
        ("flipped bit", "are corrupt: their tensors hash to SHA-256"),
    ],
)
def test_eval_refuses_hostile_or_damaged_weights(damage, needle, tmp_path, marker, capsys):
    folder = run_folder(tmp_path)
    weights = folder / "model.safetensors"
    weights.write_bytes(_safetensors_damage(weights.read_bytes(), damage, marker))

    assert main(["eval", "--checkpoint", str(folder)]) == 2

    err = capsys.readouterr().err
    assert err.startswith(f"ram eval: error: weights {weights} ") and needle in err, err
    assert "Traceback" not in err
    assert not marker.exists()


def test_eval_refuses_weights_holding_nan(tmp_path, capsys):
    cfg = small_config()
    model = build_model(cfg.model)
    name, param = next(iter(model.named_parameters()))
    with torch.no_grad():
        param[0] = float("nan")
    ckpt.export_model(tmp_path / "run", model, cfg)

    assert main(["eval", "--checkpoint", str(tmp_path / "run")]) == 2
    assert f"hold NaN or infinite values ({name}" in capsys.readouterr().err


def test_eval_of_the_undamaged_folder_works(tmp_path, capsys, real_data):
    """The control for the tests above: the same folder, untouched, evaluates."""
    assert main(["eval", "--checkpoint", str(run_folder(tmp_path)), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["n"] == 10_000 and 0 <= result["error"] <= 100


def test_weights_round_trip_and_carry_their_hash(tmp_path):
    cfg = small_config()
    model = build_model(cfg.model)
    path = ckpt.export_model(tmp_path, model, cfg)
    header = json.loads(path.read_bytes()[8 : 8 + int.from_bytes(path.read_bytes()[:8], "little")])
    assert header["__metadata__"]["sha256"] == ckpt.tensors_sha256(model.state_dict())
    again = build_model(cfg.model)
    ckpt.load_weights(again, path)
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), again.state_dict().values()))


def test_real_processes_refuse_hostile_files_without_a_traceback(ram, tmp_path, marker):
    """The same refusals through the installed command: exit 2, one line on stderr, no code run."""
    eval_folder = run_folder(tmp_path / "eval")
    (eval_folder / "model.safetensors").write_bytes(pickle.dumps(Payload(marker), protocol=2))
    train_folder = tmp_path / "train"
    train_folder.mkdir()
    torch.save(training_state(small_config()) | {"loop": Payload(marker)}, train_folder / "last.pt")

    logs = {name: tmp_path / f"{name}.log" for name in ("eval", "train")}
    procs = {
        "eval": ram.start("eval", "--checkpoint", eval_folder, log=logs["eval"]),
        "train": ram.start(*TRAIN, "--out", train_folder, "--resume", log=logs["train"]),
    }
    for name, proc in procs.items():
        assert proc.wait(timeout=120) == 2, logs[name].read_text()
        # `ram train` first says which preset and run folder it starts; then the one line of the refusal
        output = "".join(line for line in logs[name].read_text().splitlines(keepends=True)
                         if not line.startswith("ram train: preset "))
        assert output.startswith(f"ram {name}: error: ") and output.count("\n") == 1, output
        assert "Traceback" not in output
    assert "refused" in logs["train"].read_text()
    assert "not a valid safetensors file" in logs["eval"].read_text()
    assert not marker.exists()


# ---- shipped weights: checked against the manifest's SHA-256 -------------------------------------------------------


@pytest.fixture
def shipped(tmp_path, monkeypatch) -> Path:
    """A pretrained/ folder holding one model, `tiny`, listed in its manifest."""
    folder = tmp_path / "pretrained"
    cfg = small_config()
    path = ckpt.export_model(folder, build_model(cfg.model), cfg, name="tiny")
    (folder / "config.json").unlink()  # the manifest carries the config
    manifest = {"tiny": {"file": path.name, "sha256": ckpt.sha256(path), "config": cfg.to_dict()}}
    (folder / "manifest.json").write_text(json.dumps(manifest))
    monkeypatch.setattr(hub, "PRETRAINED", folder)
    return folder


def test_pretrained_with_the_manifest_hash_loads(shipped):
    model, cfg = hub.load_pretrained("tiny")
    assert not model.training and cfg == small_config()


def test_tampered_pretrained_weights_are_refused_naming_both_hashes(shipped, capsys):
    path = shipped / "tiny.safetensors"
    listed = json.loads((shipped / "manifest.json").read_text())["tiny"]["sha256"]
    data = bytearray(path.read_bytes())
    data[-1] ^= 0x01
    path.write_bytes(bytes(data))
    actual = hashlib.sha256(data).hexdigest()

    with pytest.raises(ckpt.CheckpointError) as error:
        hub.load_pretrained("tiny")
    assert actual in str(error.value) and listed in str(error.value) and actual != listed

    assert main(["eval", "--pretrained", "tiny"]) == 2
    err = capsys.readouterr().err
    assert actual in err and listed in err and "Traceback" not in err


def test_manifest_cannot_point_outside_its_folder_or_vouch_for_a_pickle(shipped, tmp_path, marker):
    manifest = json.loads((shipped / "manifest.json").read_text())
    outside = tmp_path / "elsewhere.safetensors"
    outside.write_bytes((shipped / "tiny.safetensors").read_bytes())
    manifest["tiny"]["file"] = "../elsewhere.safetensors"
    (shipped / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ckpt.CheckpointError, match="is outside"):
        hub.load_pretrained("tiny")

    # A manifest that vouches for a hostile file (both replaced): the hash matches, and still nothing runs.
    hostile = pickle.dumps(Payload(marker), protocol=2)
    (shipped / "tiny.safetensors").write_bytes(hostile)
    manifest["tiny"] |= {"file": "tiny.safetensors", "sha256": hashlib.sha256(hostile).hexdigest()}
    (shipped / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ckpt.CheckpointError, match="not a valid safetensors file"):
        hub.load_pretrained("tiny")
    assert not marker.exists()


def test_broken_manifest_is_a_clear_error(shipped):
    (shipped / "manifest.json").write_text('{"tiny": {"file": 3}}')
    with pytest.raises(ckpt.CheckpointError, match="is not a manifest"):
        hub.load_pretrained("tiny")
    (shipped / "manifest.json").write_text("{not json")
    with pytest.raises(ckpt.CheckpointError, match="unreadable"):
        hub.load_pretrained("tiny")


def test_every_torch_load_in_the_package_is_weights_only():
    """A guard against a future `torch.load(path)`: the default has changed across torch versions."""
    calls = [(p.name, call) for p in SRC.rglob("*.py") for call in re.findall(r"torch\.load\((.*?)\)", p.read_text())]
    assert calls, "no torch.load found: the pattern is stale"
    for name, call in calls:
        assert "weights_only=True" in call, f"{name}: torch.load({call})"


def test_weights_published_in_float16_take_half_the_bytes_and_load_as_float32(tmp_path, monkeypatch):
    # hidden 64: the tensors outweigh the file's metadata (its model config, about 1 KB), which float16 does not halve
    cfg = RunConfig(model=ModelConfig(glimpses=2, hidden=64, what_size=8, where_size=8, glimpse_size=16))
    model = build_model(cfg.model)
    run = tmp_path / "run"
    ckpt.export_model(run, model, cfg)
    (run / "test.json").write_text(json.dumps({"error": 1.0}))
    monkeypatch.setattr(hub, "PRETRAINED", tmp_path / "shipped")
    entry = hub.publish(run, "small", float16=True)
    assert entry["float16"] is True
    shipped = tmp_path / "shipped" / "small.safetensors"
    assert shipped.stat().st_size < 0.6 * (run / "model.safetensors").stat().st_size
    loaded, _ = hub.load_pretrained("small")
    for name, weight in model.state_dict().items():
        got = loaded.state_dict()[name]
        assert got.dtype == torch.float32 and torch.equal(got, weight.half().float()), name
