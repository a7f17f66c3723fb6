"""DRAM and its loss: the episode's shapes, the stop-gradients proved with .grad, and the reward cut at the first wrong
label."""

import pytest
import torch
import torch.nn.functional as F

from ram.data.multi import EOS, PAD
from ram.dram import DRAM, SequenceEpisode
from ram.losses import LossSpec, copies_baseline, glimpse_returns, sequence_hybrid

B, K, N, CLASSES = 4, 3, 2, 11


def small(seed=0, **kw) -> DRAM:
    torch.manual_seed(seed)
    sizes = dict(image_size=40, patch_size=10, scales=2, conv_channels=(4, 4, 8), glimpse_features=16, hidden=16,
                 classifier_hidden=8, outputs=K, glimpses_per_output=N, classes=CLASSES, coarse=12,
                 context_channels=(4, 4, 8), std=0.2)
    return DRAM(**(sizes | kw))


def images(seed=1, n=B, side=40):
    return torch.rand(n, 1, side, side, generator=torch.Generator().manual_seed(seed))


def labels(n=B):
    return torch.tensor([[3, 1, EOS], [7, 7, EOS], [0, 9, EOS], [5, 2, EOS]])[:n]


def test_an_episode_has_k_outputs_of_n_glimpses_each():
    model = small()
    ep = model(images())
    T = K * N
    assert isinstance(ep, SequenceEpisode)
    assert ep.logits.shape == (B, K, CLASSES)
    assert ep.step_logits.shape == (B, T, CLASSES)
    assert ep.log_probs.shape == ep.baselines.shape == ep.entropies.shape == (B, T)
    assert ep.locations.shape == ep.means.shape == (B, T, 2)
    assert ep.output_of.tolist() == [[0, 0, 1, 1, 2, 2]] * B
    # the classifier emits after glimpses N, 2N, ..., KN
    assert torch.equal(ep.logits, ep.step_logits[:, [1, 3, 5]])
    assert (ep.locations.abs() <= 1).all()
    assert model.glimpses == T


def test_the_locations_reaching_the_sensor_are_detached_samples_and_the_means_are_followed_without_sampling():
    model = small()
    x = images()
    sampled = model(x)
    assert not sampled.locations.requires_grad
    assert not torch.equal(sampled.locations, model(x).locations)  # a new draw each episode
    one, two = model(x, sample=False), model(x, sample=False)
    assert torch.equal(one.locations, two.locations) and torch.equal(one.logits, two.logits)
    assert torch.equal(one.locations, one.means.clamp(-1, 1))


def test_the_context_sets_the_first_location_and_without_it_every_image_starts_alike():
    x = images(n=2)
    with_context = small(context=True)(x, sample=False).means[:, 0]
    assert not torch.allclose(with_context[0], with_context[1])
    model = small(context=False)
    assert model.context_net is None
    first = model(x, sample=False).means[:, 0]
    assert torch.equal(first[0], first[1])
    assert torch.allclose(first[0], torch.tanh(model.emission.mean.bias))  # the emission on r2 = 0


PARTS = ("glimpse_net", "lower", "classifier", "upper", "context_net", "emission", "baseline")


def grads(model: DRAM, loss: torch.Tensor) -> dict[str, bool]:
    """For each part of the model, whether the loss reaches it: {part: every weight of it has a nonzero gradient},
    with an assertion that a part it does not reach has no gradient at all."""
    model.zero_grad(set_to_none=True)
    loss.backward()
    modules = {"lower": model.core.lower, "upper": model.core.upper}
    reached = {}
    for part in PARTS:
        ps = list((modules.get(part) or getattr(model, part)).parameters())
        if any(p.grad is not None and p.grad.abs().sum() > 0 for p in ps):
            assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in ps), f"{part} is reached only in part"
            reached[part] = True
        else:
            reached[part] = False
    return reached


def test_each_term_of_the_loss_reaches_only_its_own_parts():
    model = small()
    x = images()

    def losses():
        return sequence_hybrid(model(x), labels(), LossSpec())

    # Cross-entropy: the classifier, the lower layer and the glimpse net; never the context network or the upper layer.
    assert grads(model, losses().classify) == {"glimpse_net": True, "lower": True, "classifier": True,
                                               "upper": False, "context_net": False, "emission": False,
                                               "baseline": False}
    # REINFORCE: the location pathway only, emission head, upper layer and context network.
    assert grads(model, losses().reinforce) == {"glimpse_net": False, "lower": False, "classifier": False,
                                                "upper": True, "context_net": True, "emission": True,
                                                "baseline": False}
    # The baseline's regression: its own weights only.
    assert grads(model, losses().baseline) == {p: p == "baseline" for p in PARTS}


# The loss -------------------------------------------------------------------------------------------------------------

OUTPUT_OF = torch.tensor([0, 0, 1, 1, 2, 2]).expand(4, -1)


def test_each_glimpse_is_paid_what_its_output_and_the_later_ones_earn_up_to_the_first_wrong_label():
    target = torch.tensor([[1, 2, EOS], [1, 2, EOS], [1, 2, EOS], [4, EOS, PAD]])
    predicted = torch.tensor([[1, 2, EOS], [1, 5, EOS], [6, 2, EOS], [4, EOS, 3]])
    returns, kept = glimpse_returns(predicted, target, OUTPUT_OF)
    assert returns.tolist() == [[3, 3, 2, 2, 1, 1],  # all right: each glimpse earns its label and the later ones
                                [1, 1, 0, 0, 0, 0],  # the second wrong: the third earns nothing though it is right
                                [0, 0, 0, 0, 0, 0],  # the first wrong: nothing
                                [2, 2, 1, 1, 0, 0]]  # PAD earns nothing, whatever is emitted there
    assert kept.tolist() == [[True] * 6,
                             [True] * 4 + [False] * 2,  # cut after the first wrong label's own glimpses
                             [True] * 2 + [False] * 4,
                             [True] * 4 + [False] * 2]  # nothing to learn after EOS


def episode_of(predicted: torch.Tensor, *, baselines: torch.Tensor, log_probs: torch.Tensor) -> SequenceEpisode:
    """A stand-in episode emitting `predicted` [B, K] for sure (logits 0 or 10), with the given heads' outputs."""
    b, k = predicted.shape
    logits = 10.0 * F.one_hot(predicted, CLASSES).float()
    T = log_probs.shape[1]
    return SequenceEpisode(logits=logits.requires_grad_(), step_logits=logits.repeat_interleave(T // k, 1),
                           log_probs=log_probs, baselines=baselines, locations=torch.zeros(b, T, 2),
                           means=torch.zeros(b, T, 2), entropies=torch.zeros(b, T),
                           output_of=torch.arange(T).div(T // k, rounding_mode="floor").expand(b, -1))


def test_reinforce_stops_at_the_first_wrong_label_and_subtracts_the_baseline():
    target = torch.tensor([[1, 2, EOS], [1, 2, EOS]])
    predicted = torch.tensor([[1, 2, EOS], [1, 5, EOS]])
    log_probs = torch.zeros(2, 6, requires_grad=True)
    baselines = torch.full((2, 6), 0.5, requires_grad=True)
    out = sequence_hybrid(episode_of(predicted, baselines=baselines, log_probs=log_probs), target)
    out.reinforce.backward(retain_graph=True)
    # d/d log pi of -(1/B) sum (R - b): the advantages, with a zero where the gradient is cut
    assert torch.allclose(log_probs.grad, -torch.tensor([[2.5, 2.5, 1.5, 1.5, 0.5, 0.5],
                                                        [0.5, 0.5, -0.5, -0.5, 0, 0]]) / 2)
    assert baselines.grad is None  # the advantage is a constant
    out.baseline.backward()
    # the regression: its mean squared error over the 10 kept glimpses
    assert torch.allclose(baselines.grad, 2 * torch.tensor([[-2.5, -2.5, -1.5, -1.5, -0.5, -0.5],
                                                            [-0.5, -0.5, 0.5, 0.5, 0, 0]]) / 10)
    assert out.reward.tolist() == [3, 1] and out.success.tolist() == [1, 0]


def test_the_cross_entropy_ignores_pad_and_the_weights_and_reductions_are_the_spec_s():
    target = torch.tensor([[1, 2, EOS], [4, EOS, PAD]])
    predicted = torch.tensor([[1, 2, EOS], [4, EOS, 7]])
    log_probs = torch.randn(2, 6, requires_grad=True)
    ep = episode_of(predicted, baselines=torch.rand(2, 6), log_probs=log_probs)
    mean = sequence_hybrid(ep, target)
    mean.classify.backward()
    assert (ep.logits.grad[1, 2] == 0).all() and (ep.logits.grad[1, 1] != 0).any()
    assert torch.allclose(mean.classify, F.cross_entropy(ep.logits.flatten(0, 1)[:5], target.flatten()[:5]))
    weighted = sequence_hybrid(ep, target, LossSpec(rl_weight=0.25))
    assert torch.allclose(weighted.total, weighted.classify + 0.25 * weighted.reinforce + weighted.baseline)
    summed = sequence_hybrid(ep, target, LossSpec(rl_reduction="sum"))
    assert torch.allclose(summed.reinforce, 2 * mean.reinforce)
    assert torch.allclose(summed.classify, mean.classify)  # the cross-entropy stays a mean, as in `hybrid`


def test_the_copies_baseline_is_the_other_copies_mean_return_at_each_glimpse():
    M, B0 = 3, 2
    target = torch.tensor([[1, 2, EOS]]).repeat(M * B0, 1)
    predicted = torch.tensor([[1, 2, EOS], [1, 5, EOS], [6, 2, EOS], [1, 2, EOS], [1, 2, 3], [1, 2, EOS]])
    log_probs = torch.zeros(M * B0, 6, requires_grad=True)
    ep = episode_of(predicted, baselines=torch.zeros(M * B0, 6), log_probs=log_probs)
    out = sequence_hybrid(ep, target, LossSpec(baseline="copies", mc_samples=M))
    out.reinforce.backward()
    returns, kept = glimpse_returns(predicted, target, ep.output_of)
    b = torch.stack([copies_baseline(r, M) for r in returns.unbind(1)], 1)
    assert torch.allclose(log_probs.grad, -((returns - b) * kept) / (M * B0))
    assert out.baseline == 0  # nothing to fit


def test_means_weight_adds_the_cross_entropy_of_the_episode_along_the_means():
    target = torch.tensor([[1, 2, EOS], [4, EOS, PAD]])
    ep = episode_of(torch.tensor([[1, 2, EOS], [4, EOS, 7]]), baselines=torch.rand(2, 6), log_probs=torch.randn(2, 6))
    means = torch.randn(2, 3, ep.logits.shape[-1], requires_grad=True)
    plain = sequence_hybrid(ep, target)
    along = sequence_hybrid(ep, target, LossSpec(means_weight=0.5), means)
    expected = F.cross_entropy(means.flatten(0, 1)[:5], target.flatten()[:5])  # PAD ignored
    assert torch.allclose(along.total, plain.total + 0.5 * expected)
    assert torch.equal(along.classify, plain.classify)  # the sampled episodes' cross-entropy is reported as before
    assert torch.equal(sequence_hybrid(ep, target, LossSpec(), means).total, plain.total)  # weight 0: unused


@pytest.mark.parametrize("spec,message", [
    (LossSpec(discount=0.5), "discount = 0.5"),
    (LossSpec(reward="prob"), "reward = 'prob'"),
])
def test_settings_a_sequence_has_no_use_for_are_refused_by_name(spec, message):
    ep = episode_of(torch.tensor([[1, 2, EOS]]), baselines=torch.zeros(1, 6), log_probs=torch.zeros(1, 6))
    with pytest.raises(ValueError, match=message):
        sequence_hybrid(ep, torch.tensor([[1, 2, EOS]]), spec)


def test_labels_shorter_than_the_outputs_are_refused():
    ep = episode_of(torch.tensor([[1, 2, EOS]]), baselines=torch.zeros(1, 6), log_probs=torch.zeros(1, 6))
    with pytest.raises(ValueError, match=r"labels must be \[1, at least 3\]"):
        sequence_hybrid(ep, torch.tensor([[1, 2]]))


@pytest.mark.parametrize("kw,message", [
    (dict(outputs=0), "outputs = 0"),
    (dict(glimpses_per_output=0), "glimpses_per_output = 0"),
    (dict(classes=1), "classes = 1"),
    (dict(std=0.0), "std = 0.0"),
    (dict(coarse=60), "coarse 60 is larger than the 40x40 image"),
    (dict(patch_size=8), "patch_size 8 is too small.*at least 9"),
])
def test_sizes_that_cannot_work_are_named(kw, message):
    with pytest.raises(ValueError, match=message):
        small(**kw)


def test_images_of_another_size_are_named():
    with pytest.raises(ValueError, match=r"images must be \[B, 1, 40, 40\].*got \(2, 1, 60, 60\)"):
        small()(torch.rand(2, 1, 60, 60))
