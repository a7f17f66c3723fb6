"""RAM's structure and the hybrid loss's stop-gradients, proved with .grad."""

import dataclasses

import pytest
import torch

from ram.config import ConfigError, ModelConfig
from ram.losses import LossSpec, hybrid, reinforce
from ram.model import RAM
from ram.models import build_model
from ram.policies import GaussianConfig


def small(**kw) -> ModelConfig:
    return ModelConfig(**{"image_size": 28, "glimpses": 3, "patch_size": 8, "scales": 2, **kw})


def grads(model, loss):
    model.zero_grad(set_to_none=True)
    loss.backward(retain_graph=True)
    return {n: p.grad for n, p in model.named_parameters()}


def nonzero(g):
    return g is not None and g.abs().sum() > 0


@pytest.mark.parametrize("core", ["rnn", "lstm", "gru"])
def test_episode_shapes(core):
    torch.manual_seed(0)
    model = RAM(small(core=core))
    ep = model(torch.rand(5, 1, 28, 28))
    assert ep.logits.shape == (5, 10)
    assert ep.step_logits.shape == (5, 3, 10)
    assert torch.equal(ep.logits, ep.step_logits[:, -1])
    assert ep.log_probs.shape == ep.baselines.shape == (5, 3)
    assert ep.locations.shape == ep.means.shape == (5, 3, 2)
    assert ep.locations.abs().max() <= 1


def test_deterministic_mode_follows_the_mean():
    torch.manual_seed(0)
    model = RAM(small())
    x = torch.rand(4, 1, 28, 28)
    a, b = model(x, sample=False), model(x, sample=False)
    assert torch.equal(a.locations, a.means.clamp(-1, 1))
    assert torch.equal(a.logits, b.logits)
    sampled = model(x, sample=True)
    assert not torch.equal(sampled.locations, sampled.means)


def test_stop_gradients():
    """CE -> classifier, core, glimpse net only; REINFORCE -> policy only; baseline loss -> baseline only."""
    torch.manual_seed(0)
    model = RAM(small())
    ep = model(torch.rand(8, 1, 28, 28))
    labels = torch.randint(0, 10, (8,))
    losses = hybrid(ep, labels)

    g = grads(model, losses.classify)
    for name, grad in g.items():
        if name.startswith(("classifier", "core", "glimpse_net")):
            assert nonzero(grad), name
        else:
            assert grad is None or grad.abs().sum() == 0, name

    g = grads(model, losses.reinforce)
    for name, grad in g.items():
        if name.startswith("policy"):
            assert nonzero(grad), name
        else:
            assert grad is None or grad.abs().sum() == 0, name

    g = grads(model, losses.baseline)
    for name, grad in g.items():
        if name.startswith("baseline"):
            assert nonzero(grad), name
        else:
            assert grad is None or grad.abs().sum() == 0, name


@pytest.mark.parametrize("core", ["rnn", "lstm", "gru"])  # rnn and lstm run the fused loop, gru the plain one
def test_the_means_episodes_cross_entropy_trains_the_classifier_path_only(core):
    """means_weight adds the cross-entropy of an episode along the policy means: it reaches the classifier, core and
    glimpse net, and neither the policy (the means are detached) nor the baseline."""
    from ram.tasks import classification_loss

    torch.manual_seed(0)
    model = RAM(small(core=core))
    images, labels = torch.rand(8, 1, 28, 28), torch.randint(0, 10, (8,))
    with_means = LossSpec(means_weight=1.0, rl_weight=0.0)
    torch.manual_seed(1)
    plain = classification_loss(model, images, labels, LossSpec(rl_weight=0.0))
    torch.manual_seed(1)
    both = classification_loss(model, images, labels, with_means)
    extra = both.classify - plain.classify
    expected = torch.nn.functional.cross_entropy(model(images, sample=False).logits, labels)
    assert torch.allclose(extra, expected, atol=1e-5)
    for name, grad in grads(model, extra).items():
        if name.startswith(("classifier", "core", "glimpse_net")):
            assert nonzero(grad), name
        else:
            assert grad is None or grad.abs().sum() == 0, name


@pytest.mark.parametrize("core", ["rnn", "lstm"])
def test_the_earlier_guesses_cross_entropy_is_their_mean_and_trains_the_classifier_path_only(core):
    """step_weight adds the mean cross-entropy of the guesses after glimpses 1..T-1. It reaches the classifier, core
    and glimpse net, and neither the policy nor the baseline; the reward stays the final guess's."""
    torch.manual_seed(0)
    model = RAM(small(core=core))
    ep = model(torch.rand(8, 1, 28, 28))
    labels = torch.randint(0, 10, (8,))
    plain, stepped = hybrid(ep, labels), hybrid(ep, labels, LossSpec(step_weight=0.5))
    earlier = [torch.nn.functional.cross_entropy(ep.step_logits[:, t], labels) for t in range(model.cfg.glimpses - 1)]
    assert torch.allclose(stepped.classify - plain.classify, 0.5 * torch.stack(earlier).mean(), atol=1e-6)
    assert torch.equal(stepped.reward, plain.reward) and torch.equal(stepped.reinforce, plain.reinforce)
    for name, grad in grads(model, stepped.classify - plain.classify).items():
        if name.startswith(("classifier", "core", "glimpse_net")):
            assert nonzero(grad), name
        else:
            assert grad is None or grad.abs().sum() == 0, name


def test_reinforce_sign():
    """A rewarded action above the baseline has its log-probability pushed up."""
    log_probs = torch.zeros(2, 1, requires_grad=True)
    loss = reinforce(log_probs, torch.full((2, 1), 0.5), torch.tensor([1.0, 0.0]))
    loss.backward()
    assert log_probs.grad[0, 0] < 0 < log_probs.grad[1, 0]


def test_reward_is_final_correctness():
    torch.manual_seed(0)
    model = RAM(small())
    ep = model(torch.rand(6, 1, 28, 28))
    labels = ep.logits.argmax(1).clone()
    labels[:3] = (labels[:3] + 1) % 10
    assert hybrid(ep, labels).reward.tolist() == [0, 0, 0, 1, 1, 1]


@pytest.mark.parametrize("kind", ["fc", "convnet", "random-glimpses"])
def test_baselines_train_with_the_same_loss(kind):
    from ram.config import KINDS

    torch.manual_seed(0)
    cfg = small(kind=kind, image_size=60, patch_size=12) if KINDS[kind].glimpses else \
        KINDS[kind].settings(kind=kind, image_size=60)
    model = build_model(cfg)
    ep = model(torch.rand(4, 1, 60, 60))
    assert ep.logits.shape == (4, 10)
    losses = hybrid(ep, torch.randint(0, 10, (4,)))
    assert torch.isfinite(losses.total)
    losses.total.backward()
    assert any(nonzero(p.grad) for p in model.parameters())


@pytest.mark.parametrize(
    "field,value,needle",
    [("glimpses", 0, "glimpses = 0"), ("std", -0.1, "std = -0.1"), ("patch_size", 40, "larger than the 28x28"),
     ("core", "transformer", "core = 'transformer'"), ("scales", 0, "scales = 0")],
)
def test_bad_model_config_names_field_and_value(field, value, needle):
    in_policy = field in {f.name for f in dataclasses.fields(GaussianConfig)}  # std: the location policy's setting
    model = small() if in_policy else small(**{field: value})
    policy = GaussianConfig(**{field: value}) if in_policy else GaussianConfig()
    with pytest.raises(ConfigError, match=needle.replace("(", r"\(")):
        RAM(model, policy)


def test_many_sampled_episodes_run_in_groups_and_average_all_of_them():
    """`ram eval --mc-samples 100` must not build 100 copies of the test batch at once (it ran out of memory on 100x100
    images); the groups' probabilities still average every episode."""
    from ram.tasks import predict

    torch.manual_seed(0)
    model = RAM(small()).eval()
    images = torch.rand(6, 1, 28, 28)
    seen = []
    model.register_forward_pre_hook(lambda m, args: seen.append(args[0].shape[0]))
    with torch.no_grad():
        torch.manual_seed(1)
        grouped = predict(model, images, mc_samples=7, max_episodes=18)
        torch.manual_seed(1)
        by_hand = torch.cat([torch.softmax(model(images.repeat(k, 1, 1, 1), sample=True).logits, 1).view(k, 6, -1)
                             for k in (3, 3, 1)]).mean(0)
        torch.manual_seed(1)
        at_once = predict(model, images, mc_samples=7)
    assert seen[:3] == [18, 18, 6] and seen[-1] == 42
    assert torch.equal(grouped, by_hand)
    assert grouped.shape == (6, 10) and torch.allclose(grouped.sum(1), torch.ones(6))
    assert not torch.equal(grouped, at_once)  # other episodes were drawn, so the two are different estimates


def test_a_convnet_takes_its_widths_from_its_section():
    """The paper's convnet by default (8 and 16 filters, 256 units, the weights it always had); the DRAM paper's
    sums convnet with --conv-channels 64 64 64 --hidden 512: a 3x3 third layer that keeps the second's size."""
    from ram.config import ConvNetConfig

    paper = build_model(ConvNetConfig(image_size=100, classes=19))
    assert [m.out_channels for m in paper.features if isinstance(m, torch.nn.Conv2d)] == [8, 16]
    assert paper.head[0].out_features == 256 and paper.head[2].out_features == 19
    wide = build_model(ConvNetConfig(image_size=100, classes=19, conv_channels=(64, 64, 64), hidden=512))
    convs = [m for m in wide.features if isinstance(m, torch.nn.Conv2d)]
    assert [(m.out_channels, m.kernel_size) for m in convs] == [(64, (10, 10)), (64, (5, 5)), (64, (3, 3))]
    assert wide.head[0].in_features == 64 * 8 * 8 and wide.head[0].out_features == 512
    assert wide(torch.rand(2, 1, 100, 100)).logits.shape == (2, 19)
    with pytest.raises(ConfigError, match="conv_channels"):
        ConvNetConfig(image_size=100, classes=19, conv_channels=()).validate()
