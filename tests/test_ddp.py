"""Data-parallel training on CPU: two gloo processes, as `torchrun --nproc_per_node 2 -m ram train` starts them."""

import json
import os
import socket
from pathlib import Path

import torch
import torch.multiprocessing as mp

from ram import models, train
from ram.config import ModelConfig, RunConfig, TrainConfig
from ram.tasks import CatchConfig, DigitsConfig
from ram.data import Digits, TaskData

WORLD = 2


def _config() -> RunConfig:
    return RunConfig(
        preset="ddp-test",
        task=DigitsConfig(val_size=64),
        model=ModelConfig(glimpses=2, what_size=16, where_size=8, glimpse_size=16, hidden=16),
        # 33 batches of 16 -> 16 steps per rank per epoch: step 25 falls in epoch 2, where the ranks agree on a
        # mid-epoch checkpoint (checkpoint_every is tiny below).
        train=TrainConfig(epochs=2, batch_size=16, lr=3e-3, eval_batch_size=64, seed=3),
    ).validate()


def _digits() -> Digits:
    g = torch.Generator().manual_seed(0)
    return Digits(torch.randint(0, 256, (592, 28, 28), dtype=torch.uint8, generator=g),
                  torch.randint(0, 10, (592,), generator=g),
                  torch.randint(0, 256, (64, 28, 28), dtype=torch.uint8, generator=g),
                  torch.randint(0, 10, (64,), generator=g))


def _catch_config() -> RunConfig:
    """A 12x12 game: 64 games an epoch in batches of 16, 2 steps per rank per epoch."""
    return RunConfig(
        preset="ddp-catch",
        task=CatchConfig(canvas=12, epoch_games=64, val_games=32),
        model=ModelConfig(image_size=12, classes=0, actions=3, glimpses=11, patch_size=3, scales=2, what_size=8,
                          where_size=8, glimpse_size=16, hidden=16, core="lstm", reinforce_core=True),
        train=TrainConfig(epochs=2, batch_size=16, lr=3e-3, eval_batch_size=64, seed=3, eval_mc_samples=0),
    ).validate()


def _worker(rank: int, port: int, out: str, results: str, game: bool = False) -> None:
    os.environ.update(RANK=str(rank), WORLD_SIZE=str(WORLD), LOCAL_RANK=str(rank), LOCAL_WORLD_SIZE=str(WORLD),
                      MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    built = []
    build = train.model_of
    train.model_of = lambda cfg: built.append(build(cfg)) or built[-1]  # keep the trained model to inspect it
    cfg = _catch_config() if game else _config()
    saves = []
    save_state = train.ckpt.save_state
    train.ckpt.save_state = lambda path, state: saves.append(state["loop"]["step"]) or save_state(path, state)
    data = None if game else TaskData(cfg.task, seed=cfg.train.seed, digits=_digits())
    result = train.fit(cfg, Path(out), data=data, threads=1, progress=False, checkpoint_every=1e-9)
    torch.save({"state": built[0].state_dict(), "result": result, "saves": saves},
               Path(results) / f"rank{rank}.pt")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_ranks_stay_in_sync_and_only_rank_0_writes(tmp_path):
    out, results = tmp_path / "run", tmp_path / "results"
    results.mkdir()
    mp.spawn(_worker, args=(_free_port(), str(out), str(results)), nprocs=WORLD, join=True)
    ranks = [torch.load(results / f"rank{r}.pt", weights_only=False) for r in range(WORLD)]

    # The same weights on both ranks, bit for bit, and not the initial ones.
    a, b = ranks[0]["state"], ranks[1]["state"]
    assert a.keys() == b.keys()
    for name in a:
        assert torch.equal(a[name], b[name]), name
    train.seed_everything(_config().train.seed)
    initial = models.model_of(_config()).state_dict()
    assert any(not torch.equal(a[n], initial[n]) for n in a)

    # Rank 0 alone wrote the run folder and the result; epoch-end checkpoints and the agreed mid-epoch one at step 25.
    assert ranks[1]["result"] == {} and ranks[1]["saves"] == []
    assert ranks[0]["saves"] == [16, 25, 32]
    assert ranks[0]["result"]["epochs"] == 2
    assert {p.name for p in out.iterdir()} >= {"config.json", "metrics.csv", "model.safetensors", "last.pt", "test.json"}
    rows = (out / "metrics.csv").read_text().splitlines()
    assert len(rows) == 3  # header + one row per epoch
    assert json.loads((out / "test.json").read_text())["n"] == 64
    # 16 steps per rank of 16 images each, summed over both ranks
    assert train.ckpt.load_state(out / "last.pt")["loop"]["history"][0]["step"] == 16


def test_catch_trains_data_parallel_through_the_same_fit(tmp_path):
    """Games go through the model's forward, so DistributedDataParallel averages their gradients too."""
    out, results = tmp_path / "run", tmp_path / "results"
    results.mkdir()
    mp.spawn(_worker, args=(_free_port(), str(out), str(results), True), nprocs=WORLD, join=True)
    a, b = (torch.load(results / f"rank{r}.pt", weights_only=False)["state"] for r in range(WORLD))
    for name in a:
        assert torch.equal(a[name], b[name]), name
    result = json.loads((out / "test.json").read_text())
    assert result["task"] == "catch" and result["n"] == 1000
    assert train.ckpt.load_state(out / "last.pt")["loop"]["history"][0]["step"] == 2  # 4 batches over 2 ranks


def test_weights_digest_sees_any_change():
    torch.manual_seed(0)
    model = models.build_model(ModelConfig(glimpses=1, hidden=8, what_size=8, where_size=8, glimpse_size=8))
    before = train.weights_digest(model)
    assert before == train.weights_digest(model)
    with torch.no_grad():
        model.classifier.bias[3] += 1e-7
    assert train.weights_digest(model) != before
