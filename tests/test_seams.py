"""The seams: one table of model kinds, one registry of policies and of tasks, and the bugs found while making them."""

import dataclasses
import typing

import pytest
import torch
import torch.nn.functional as F

from ram import config, presets
from ram.config import KINDS, ConfigError, LossConfig, ModelConfig, ModelKind, PolicyConfig, RunConfig, TrainConfig
from ram.losses import LossSpec, hybrid
from ram.model import RAM
from ram.models import MODELS
from ram.policies import POLICIES, GaussianConfig, SaccadeConfig
from ram.tasks import classification_loss


def tiny_batch() -> tuple[RAM, torch.Tensor, torch.Tensor]:
    """A small RAM and 4 random images with labels, the same on every call."""
    torch.manual_seed(0)
    model = RAM(ModelConfig(glimpses=2, hidden=32, what_size=16, where_size=16, glimpse_size=32))
    return model, torch.rand(4, 1, 28, 28), torch.tensor([1, 2, 3, 4])


def test_every_kind_is_named_once_and_built_by_the_registry():
    assert set(typing.get_args(ModelKind)) == set(KINDS) == set(MODELS)
    assert set(typing.get_args(config.PolicyName)) == set(POLICIES)
    for name, policy in POLICIES.items():  # each policy's section names it, so a stored one reads back as it
        assert issubclass(policy.Config, PolicyConfig) and policy.Config().kind == name
    for name, kind in KINDS.items():  # a kind that plays has an action head; one that is drawn has a policy
        assert kind.classifies or kind.plays, name


def test_a_copies_baseline_needs_copies_and_then_gives_a_finite_loss():
    """baseline "copies" subtracts the mean reward of the other Monte-Carlo copies: with one copy there are none (it
    divided by zero: every baseline was NaN), and with two the loss is finite and differs from the batch mean's."""
    cfg = presets.get("mnist")
    with pytest.raises(ConfigError, match="baseline = 'copies': .* mc_samples = 1 leaves none"):
        dataclasses.replace(cfg, loss=dataclasses.replace(cfg.loss, baseline="copies")).validate()
    torch.manual_seed(0)
    model = RAM(ModelConfig(glimpses=2, hidden=32, what_size=16, where_size=16, glimpse_size=32), baseline="copies")
    images, labels = torch.rand(8, 1, 28, 28), torch.arange(8) % 10
    losses = classification_loss(model, images, labels, LossSpec(mc_samples=2, baseline="copies"))
    assert torch.isfinite(losses.total) and torch.isfinite(losses.reinforce)


def test_catch_refuses_monte_carlo_copies_it_would_ignore():
    cfg = presets.get("catch")
    with pytest.raises(ConfigError, match="mc_samples = 2: catch plays each batch's games once"):
        dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, mc_samples=2)).validate()


def _literal_settings():
    for cls in (ModelConfig, GaussianConfig, SaccadeConfig, TrainConfig, LossConfig):
        for f in dataclasses.fields(cls):
            hint = typing.get_type_hints(cls)[f.name]
            if typing.get_origin(hint) is typing.Literal:
                yield pytest.param(cls, f.name, id=f"{cls.__name__}.{f.name}")


@pytest.mark.parametrize("cls, name", list(_literal_settings()))
def test_every_literal_setting_refuses_a_value_outside_its_set_by_its_flags_name(cls, name):
    """A config read from JSON may hold any string: the one type check names the field as users know it (the
    --model flag sets `kind`) and every allowed value, for each Literal, with no second list of the values. The
    values are read when the test runs: a policy registered since collection (tests/toy_policy.py) is one of them."""
    allowed = typing.get_args(typing.get_type_hints(cls)[name])
    with pytest.raises(ConfigError) as e:
        cfg = dataclasses.replace(cls(), **{name: "nonsense"})
        if isinstance(cfg, PolicyConfig):  # a policy's settings are checked against the model it steers
            cfg.validate(ModelConfig())
        else:
            cfg.validate()
    shown = "model" if name == "kind" else name
    quoted = [repr(v) for v in allowed]
    assert str(e.value) == f"{shown} = 'nonsense': must be {', '.join(quoted[:-1])} or {quoted[-1]}"


def test_the_loss_spec_is_read_from_the_run_config_in_one_place():
    """LossSpec.of takes every loss setting under its config name (the loss section whole, baseline included, the
    copies from the recipe), and its defaults are a default run's, so hybrid(episode, labels) is the default recipe's
    loss."""
    loss = LossConfig(rl_weight=0.5, reward="prob", baseline="copies", entropy_weight=0.1, step_weight=0.2,
                      means_weight=0.3, distill_weight=0.4, rl_reduction="sum", discount=0.9)
    cfg = RunConfig(train=TrainConfig(mc_samples=2), loss=loss)
    assert LossSpec.of(cfg) == LossSpec(
        rl_weight=0.5, reward="prob", baseline="copies", mc_samples=2, entropy_weight=0.1, step_weight=0.2,
        means_weight=0.3, distill_weight=0.4, rl_reduction="sum", discount=0.9)
    assert LossSpec.of(RunConfig()) == LossSpec()
    with pytest.raises(dataclasses.FrozenInstanceError):
        LossSpec().rl_weight = 2.0


def test_the_means_copy_is_part_of_the_hybrid_loss():
    """means_weight adds its cross-entropy to the total and to the classification term, inside losses.hybrid (it
    was patched on afterwards), on the first copy's labels."""
    model, images, labels = tiny_batch()
    episode = model(images.repeat(2, 1, 1, 1))
    means = model(images, sample=False).logits
    plain = hybrid(episode, labels.repeat(2))
    with_means = hybrid(episode, labels.repeat(2), LossSpec(means_weight=0.5), means_logits=means)
    extra = 0.5 * F.cross_entropy(means, labels)
    assert torch.allclose(with_means.total, plain.total + extra)
    assert torch.allclose(with_means.classify, plain.classify + extra)
    assert torch.equal(with_means.reinforce, plain.reinforce)


def test_distillation_teaches_the_means_path_the_averaged_sampled_copies_and_nothing_else():
    """distill_weight: cross-entropy of the means episode against the mean class probabilities of the M sampled
    copies. The teacher is held constant: its gradient reaches the network only through the means path."""
    model, images, labels = tiny_batch()
    episode = model(images.repeat(3, 1, 1, 1))
    means = model(images, sample=False).logits
    plain = hybrid(episode, labels.repeat(3))
    distilled = hybrid(episode, labels.repeat(3), LossSpec(distill_weight=2.0), means_logits=means)
    teacher = F.softmax(episode.logits, -1).view(3, 4, 10).mean(0)
    expected = 2.0 * -(teacher * F.log_softmax(means, -1)).sum(-1).mean()
    assert torch.allclose(distilled.total - plain.total, expected, atol=1e-6)
    extra = (distilled.total - plain.total)
    grad_episode, grad_means = torch.autograd.grad(extra, [episode.logits, means])
    assert grad_episode.abs().sum() == 0 and grad_means.abs().sum() > 0  # the teacher is detached
    with pytest.raises(ConfigError, match="distill_weight = 1.0: distils the average .* mc_samples = 1"):
        RunConfig(loss=LossConfig(distill_weight=1.0)).validate()
