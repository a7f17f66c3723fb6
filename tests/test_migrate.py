"""Configs stored before the loss, policy and task sections (the loss settings inside "train", the policy's and the
baseline inside "model", every task's settings in one "task") load through `config.migrate`: shipped weight files,
run folders' config.json and last.pt, results files."""

import dataclasses
import json

from ram.config import POLICIES, LossConfig, ModelConfig, RunConfig, TrainConfig, migrate, network
from ram.policies import SaccadeConfig
from ram.tasks import CatchConfig, DigitsConfig, ImagesConfig

# mnist-saccade's config as the shipped manifest (src/ram/pretrained/manifest.json) held it, written by the code
# before the loss section: rl_weight, reward, means_weight ... among the recipe's fields.
OLD = json.loads("""{"model": {"actions": 0, "baseline": "batch", "channels": 1, "classes": 10, "core": "lstm",
"detach_location": false, "dropout": 0.7, "elu_logits": false, "first_glimpse": "learned", "glimpse_net":
"pixels+where", "glimpse_size": 256, "glimpses": 20, "hidden": 512, "image_size": 28, "init_downsample": 4, "kind":
"ram", "pad": "zeros", "patch_size": 4, "pixel_mean": 0.0, "pixel_std": 1.0, "policy": "saccade", "policy_hidden":
512, "pool": "mean", "reinforce_core": true, "saccade_step": 2, "scales": 1, "squash": "mean", "state_dropout": 0.5,
"std": 0.1, "what_size": 128, "where_size": 128}, "preset": "mnist-saccade", "task": {"canvas": 28, "class_names":
[], "dataset": "mnist", "epoch_games": 22400, "piece_size": 8, "pieces": 0, "rotate": 0.0, "scale": 0.0, "shift": 2,
"source": "", "test_fraction": 0.2, "train_size": 0, "val_games": 1000, "val_size": 10000}, "train": {"batch_size":
32, "clip_grad": 0.0, "discount": 1.0, "distill_weight": 0.0, "ema": 0.0, "entropy_weight": 0.0, "epochs": 3,
"eval_batch_size": 1000, "eval_mc_samples": 10, "init": "runs/mnist-saccade-phase1", "keep": "best", "lr": 0.0001,
"lr_decay": 0.99, "lr_min": 1e-06, "mc_samples": 1, "means_weight": 1.0, "momentum": 0.9, "optimizer": "adam",
"precision": "fp32", "reward": "prob", "rl_reduction": "mean", "rl_weight": 0.001, "schedule": "cosine", "seed": 0,
"step_weight": 0.0}}""")


def test_a_flat_config_loads_with_its_loss_and_policy_settings_in_their_sections():
    cfg = RunConfig.from_dict(OLD)
    assert cfg.loss == LossConfig(rl_weight=0.001, reward="prob", means_weight=1.0, baseline="batch")
    assert cfg.policy == SaccadeConfig(saccade_step=2, init_downsample=4, policy_hidden=512, dropout=0.7)
    assert cfg.task == DigitsConfig(dataset="mnist", canvas=28, shift=2)
    assert (cfg.train.lr, cfg.train.epochs, cfg.train.mc_samples, cfg.train.init) == (
        1e-4, 3, 1, "runs/mnist-saccade-phase1")
    assert (cfg.model.glimpse_net, cfg.model.state_dropout, cfg.model.hidden) == ("pixels+where", 0.5, 512)
    assert RunConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg  # the new layout round-trips


def test_migrate_moves_each_setting_to_its_section_and_leaves_a_new_config_as_it_is():
    new = migrate(OLD)
    assert set(new["loss"]) == {"rl_weight", "rl_reduction", "discount", "means_weight", "distill_weight",
                                "step_weight", "entropy_weight", "reward", "baseline"}
    assert set(new["train"]) | set(new["loss"]) == set(OLD["train"]) | {"baseline"}
    assert set(new["train"]) <= {f for f in TrainConfig.__dataclass_fields__}
    assert set(new["model"]) == {f.name for f in dataclasses.fields(ModelConfig)}
    assert new["policy"] == {"kind": "saccade", "saccade_step": 2, "init_downsample": 4, "policy_hidden": 512,
                             "dropout": 0.7, "elu_logits": False}
    assert set(new["task"]) == {f.name for f in dataclasses.fields(DigitsConfig)}
    assert set(OLD["task"]) - set(new["task"]) == {"source", "class_names", "test_fraction", "epoch_games", "val_games"}
    assert "loss" not in OLD and "rl_weight" in OLD["train"] and "std" in OLD["model"]  # not changed in place
    assert migrate(new) is new


def test_the_settings_a_flat_config_drops_are_the_other_policys_defaults():
    """A flat config held every policy's settings; those of the policy it did not use are dropped, and in every
    shipped config they held their defaults: nothing a model was trained with is lost."""
    from ram.hub import manifest

    flat = {name: entry for name, entry in manifest().items() if "policy" not in entry["config"]}
    assert len(flat) >= 10  # the weights shipped before the sections and not reshipped since (17 in session 42)
    for name, entry in flat.items():
        stored = entry["config"]["model"]
        cfg = RunConfig.from_dict(entry["config"])
        kept = network(cfg)
        assert {k: stored[k] for k in kept if k in stored} == {k: v for k, v in kept.items() if k in stored}, name
        defaults = {f.name: f.default for variant in POLICIES.values() for f in dataclasses.fields(variant.Config)}
        dropped = set(stored) - set(kept)
        assert dropped and all(stored[k] == defaults[k] for k in dropped), (name, dropped)


def test_every_shipped_config_loads_as_the_same_recipe():
    from ram.hub import manifest

    for name, entry in manifest().items():
        stored = entry["config"]
        cfg = RunConfig.from_dict(stored)
        flat = {**cfg.to_dict()["train"], **cfg.to_dict()["loss"]}
        assert {k: flat[k] for k in stored["train"]} == stored["train"], name


def test_the_task_settings_a_flat_config_drops_are_the_other_tasks_defaults():
    """A flat config's "task" held the settings of every task; those of the tasks it did not learn are dropped (its
    own, named by "dataset", are kept as stored), and in every shipped config they held their defaults: nothing a
    model was trained or tested with is lost."""
    from ram.hub import manifest

    defaults = {f.name: f.default for section in (DigitsConfig, ImagesConfig, CatchConfig)
                for f in dataclasses.fields(section) if f.name not in ("dataset", "canvas")}
    learned = set()
    for name, entry in manifest().items():
        if "policy" in entry["config"]:  # written in sections: nothing dropped
            continue
        stored = entry["config"]["task"]
        task = RunConfig.from_dict(entry["config"]).task
        kept = {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(task).items()}
        assert kept == {k: stored[k] for k in kept}, name
        dropped = set(stored) - set(kept)
        assert dropped and all(stored[k] == (list(defaults[k]) if isinstance(defaults[k], tuple) else defaults[k])
                               for k in dropped), (name, dropped)
        learned.add(type(task))
    assert learned == {DigitsConfig, ImagesConfig, CatchConfig}  # the manifest holds a run of each task


def test_a_convnet_stored_with_rams_section_keeps_the_papers_widths():
    """A convnet once carried RAM's whole model section, whose hidden (the core's units) is not the convnet's own
    hidden: such a config loads as the paper's convnet, 8 and 16 filters and 256 units, whatever RAM's hidden was."""
    from ram.config import ConvNetConfig
    from ram.models import model_of

    old = {**OLD, "preset": "mnist", "model": {**OLD["model"], "kind": "convnet", "policy": "gaussian"}}
    cfg = RunConfig.from_dict(old)
    assert old["model"]["hidden"] == 512 and cfg.model == ConvNetConfig(image_size=28, channels=1, classes=10)
    assert model_of(cfg).head[0].out_features == 256
    wide = dataclasses.replace(cfg, model=dataclasses.replace(cfg.model, conv_channels=(64, 64, 64), hidden=512))
    assert RunConfig.from_dict(json.loads(json.dumps(wide.to_dict()))) == wide  # its own widths round-trip
