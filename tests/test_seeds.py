"""The founding projects' recipes as written (`--preset mnist-saccade-000`, `--preset catch-002`): each setting they
need, its maths, and the gradients it lets through, proved with .grad."""

import dataclasses

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from ram import presets, sensor
from ram.config import ConfigError, LossConfig, ModelConfig, PolicyConfig, RunConfig, TrainConfig
from ram.envs import CatchBatch
from ram.flags import parse
from ram.losses import LossSpec, game, hybrid, policy_gradient, reinforce
from ram.model import RAM
from ram.policies import Gaussian, GaussianConfig, SaccadeConfig, UniformLocation
from ram.tasks import CatchConfig
from ram.train import fit, learning_rate


def sections(policy: type[PolicyConfig], **kw) -> tuple[ModelConfig, PolicyConfig]:
    """The model section and the policy's of one set of keywords, each keyword in the section it belongs to."""
    own = {f.name for f in dataclasses.fields(policy)}
    return (ModelConfig(**{k: v for k, v in kw.items() if k not in own}),
            policy(**{k: v for k, v in kw.items() if k in own}))


def saccade(*, baseline: str = "batch", **kw) -> RAM:
    """A small seed-000 model: saccades, the raw patch into an LSTM, the batch baseline."""
    base = dict(image_size=28, glimpses=4, patch_size=4, scales=1, glimpse_net="pixels", core="lstm", hidden=24,
                policy_hidden=16, reinforce_core=True)
    return RAM(*sections(SaccadeConfig, **{**base, **kw}), baseline=baseline)


def catch_sections(**kw) -> tuple[ModelConfig, GaussianConfig]:
    """A small seed-002 Catch agent's model and Gaussian policy sections."""
    base = dict(image_size=12, classes=0, actions=3, glimpses=11, patch_size=3, scales=2, what_size=8, where_size=8,
                glimpse_size=16, hidden=16, core="lstm", reinforce_core=True, pool="max")
    return sections(GaussianConfig, **{**base, **kw})


def catch(*, baseline: str = "state", **kw) -> RAM:
    return RAM(*catch_sections(**kw), baseline=baseline)


def reached(model, loss) -> set[str]:
    """The modules (policy.moves, core, ...) whose parameters get a non-zero gradient from loss."""
    model.zero_grad(set_to_none=True)
    loss.backward(retain_graph=True)
    names = {n for n, p in model.named_parameters() if p.grad is not None and p.grad.abs().sum() > 0}
    return {".".join(n.split(".")[:2]) if n.startswith("policy.") else n.split(".")[0] for n in names}


# REINFORCE summed over the batch (seeds 000 and 002) ------------------------------------------------------------------


def test_the_summed_reinforce_and_regression_are_the_batch_times_the_mean():
    torch.manual_seed(0)
    log_probs = torch.randn(6, 4, requires_grad=True)
    baselines, rewards = torch.rand(6, 4), torch.rand(6)
    mean, summed = (reinforce(log_probs, baselines, rewards, reduction=r) for r in ("mean", "sum"))
    torch.testing.assert_close(summed, 6 * mean)
    (g_mean,) = torch.autograd.grad(mean, log_probs)
    (g_sum,) = torch.autograd.grad(summed, log_probs)
    torch.testing.assert_close(g_sum, 6 * g_mean)  # each episode's gradient at full weight, not 1/B of it
    torch.testing.assert_close(g_sum, -(rewards[:, None] - baselines).expand(6, 4))

    model = catch(baseline="scalar")
    world = CatchBatch(8, size=12, generator=torch.Generator().manual_seed(1))
    world.reset()
    ep = model.play(world)
    r = torch.arange(8.0) % 2
    _, base_mean = policy_gradient(ep, r, LossSpec(baseline="scalar"))
    _, base_sum = policy_gradient(ep, r, LossSpec(baseline="scalar", rl_reduction="sum"))
    torch.testing.assert_close(base_sum, ((ep.baselines[:, 0] - r) ** 2).sum())  # seed 002's b_loss
    torch.testing.assert_close(base_sum, 8 * base_mean)


@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_the_reduction_changes_no_gradient_path_of_seed_000s_loss(reduction):
    """Summed or averaged, cross-entropy trains the classifier and core, REINFORCE both policies and the core
    (reinforce_core), and the batch baseline has nothing to fit."""
    torch.manual_seed(0)
    model = saccade()
    images, labels = torch.rand(8, 1, 28, 28), torch.randint(0, 10, (8,))
    ep = model(images)
    labels[:4] = ep.logits.argmax(1)[:4]  # some right, some wrong: the advantage is not zero
    losses = hybrid(ep, labels, LossSpec(reward="prob", baseline="batch", rl_weight=1e-3, rl_reduction=reduction))
    assert reached(model, losses.classify) == {"classifier", "core"}
    assert reached(model, losses.reinforce) == {"policy.moves", "policy.initial", "core"}
    assert losses.baseline.item() == 0.0
    torch.testing.assert_close(losses.total, losses.classify + 1e-3 * losses.reinforce)


def test_seed_000s_summed_policy_gradient_is_a_hundred_times_the_mean_at_batch_100():
    torch.manual_seed(0)
    model = saccade(dropout=0.0)
    images, labels = torch.rand(100, 1, 28, 28), torch.randint(0, 10, (100,))
    ep = model(images)
    labels[:50] = ep.logits.argmax(1)[:50]
    g = {}
    for reduction in ("mean", "sum"):
        losses = hybrid(ep, labels, LossSpec(reward="prob", baseline="batch", rl_weight=1e-3, rl_reduction=reduction))
        model.zero_grad(set_to_none=True)
        (1e-3 * losses.reinforce).backward(retain_graph=True)
        g[reduction] = model.policy.moves[0].weight.grad.clone()
    torch.testing.assert_close(g["sum"], 100 * g["mean"])


# The discount (seed 002's gamma 0: only the last step's decisions) ----------------------------------------------------


@pytest.mark.parametrize("discount", [0.0, 0.5, 1.0])
def test_the_discount_weights_step_t_by_discount_to_the_steps_left(discount):
    torch.manual_seed(0)
    log_probs = torch.randn(5, 4, requires_grad=True)
    baselines, rewards = torch.rand(5, 4), torch.rand(5)
    (g,) = torch.autograd.grad(reinforce(log_probs, baselines, rewards, discount=discount), log_probs)
    weights = torch.tensor([discount**3, discount**2, discount, 1.0])
    torch.testing.assert_close(g, -(rewards[:, None] - baselines) * weights / 5)
    if discount == 0:
        assert (g[:, :-1] == 0).all() and (g[:, -1] != 0).all()


def test_with_discount_0_only_the_last_steps_move_and_location_are_reinforced():
    """Catch with seed 002's gamma 0: the gradient reaches the move head and the location policy through the last
    step's log-probabilities alone, so a game's earlier decisions learn nothing from its reward."""
    torch.manual_seed(0)
    model = catch(baseline="scalar")
    world = CatchBatch(16, size=12, generator=torch.Generator().manual_seed(0))
    world.reset()
    ep = model.play(world)
    rewards = torch.arange(16.0) % 2
    losses = game(ep, rewards, LossSpec(baseline="scalar", discount=0.0, rl_reduction="sum"))
    (g,) = torch.autograd.grad(losses.reinforce, ep.log_probs, retain_graph=True)
    assert (g[:, :-1] == 0).all() and (g[:, -1] != 0).any()
    assert reached(model, losses.reinforce) == {"act", "policy.mean", "core", "glimpse_net"}
    assert reached(model, losses.baseline) == {"baseline"}  # a scalar reads no state


# Seed 002's location: a random first glimpse, tanh of the sample ------------------------------------------------------


def test_the_random_first_glimpse_is_uniform_not_decided_and_the_centre_along_the_means():
    torch.manual_seed(0)
    h = torch.zeros(20000, 4)
    first = UniformLocation(h)
    draws = first.location(first.sample())
    assert draws.min() >= -1 and draws.max() <= 1
    torch.testing.assert_close(draws.mean(0), torch.zeros(2), atol=0.02, rtol=0)
    torch.testing.assert_close(draws.var(0), torch.full((2,), 1 / 3), atol=0.02, rtol=0)  # uniform on [-1, 1]
    assert (first.log_prob(draws) == 0).all() and (first.entropy() == 0).all()

    model = catch(first_glimpse="random")
    assert not model.policy.fuses
    world = CatchBatch(6, size=12, generator=torch.Generator().manual_seed(0))
    world.reset()
    ep = model.play(world, sample=False)
    assert (ep.locations[:, 0] == 0).all() and (ep.means[:, 0] == 0).all()
    world.reset()
    ep = model.play(world)
    assert len({tuple(loc) for loc in ep.locations[:, 0].tolist()}) == 6  # each game its own draw
    assert reached(model, ep.log_probs[:, 0].sum()) == {"act", "core", "glimpse_net"}  # the move, not the location


def test_the_random_first_glimpse_belongs_to_the_gaussian_policy(capsys):
    """The saccade policy's section has no first_glimpse or squash, so neither can be set for it."""
    with pytest.raises(TypeError, match="unexpected keyword argument 'first_glimpse'"):
        SaccadeConfig(first_glimpse="random")
    with pytest.raises(TypeError, match="unexpected keyword argument 'squash'"):
        SaccadeConfig(squash="sample")
    with pytest.raises(SystemExit):
        parse(["--policy", "saccade", "--first-glimpse", "random"])
    assert "--first-glimpse" in capsys.readouterr().err


def test_the_context_first_glimpse_is_decided_by_the_image_and_reinforced_into_its_network():
    """Seed 000's initial-location network under RAM's Gaussian policy: the first mean is tanh(b + c(image)),
    c starts at zero, and the first location's log-probability trains c and b only."""
    torch.manual_seed(0)
    model = RAM(ModelConfig(image_size=28, glimpses=3, hidden=16, what_size=16, where_size=8, glimpse_size=16),
                GaussianConfig(first_glimpse="context", init_downsample=4, policy_hidden=12))
    images = torch.rand(5, 1, 28, 28)
    ep = model(images, sample=False)
    torch.testing.assert_close(ep.means[:, 0], torch.tanh(model.policy.mean.bias).expand(5, 2))  # c(image) = 0
    with torch.no_grad():
        model.policy.context[-1].weight.normal_()
    ep = model(images)
    pooled = torch.nn.functional.max_pool2d(images, 4).flatten(1)  # 7x7: what the network reads
    want = torch.tanh(model.policy.mean.bias + model.policy.context[2:](pooled))
    torch.testing.assert_close(ep.means[:, 0], want)
    assert len({tuple(m) for m in ep.means[:, 0].tolist()}) == 5  # each image its own first location
    assert reached(model, ep.log_probs[:, 0].sum()) == {"policy.context", "policy.mean"}


def test_the_context_first_glimpse_moves_a_mean_and_reads_a_pooled_image_that_exists():
    with pytest.raises(ConfigError, match="^first_glimpse = 'context': needs squash 'mean'"):
        GaussianConfig(first_glimpse="context", squash="sample").validate(ModelConfig())
    with pytest.raises(ConfigError, match="^init_downsample = 40: must be at most the image side 28"):
        GaussianConfig(first_glimpse="context", init_downsample=40).validate(ModelConfig())
    with pytest.raises(ConfigError, match="^first_glimpse = 'ahead': must be 'learned', 'random' or 'context'"):
        GaussianConfig(first_glimpse="ahead").validate(ModelConfig())


def test_the_squashed_location_is_the_tanh_of_a_sample_whose_log_prob_is_taken_before_it():
    torch.manual_seed(0)
    centre = torch.randn(5, 2) * 2
    d = Gaussian(centre, 0.25, squash=True)
    raw = d.sample()
    torch.testing.assert_close(d.location(raw), torch.tanh(raw))
    expected = torch.distributions.Normal(centre, 0.25).log_prob(raw).sum(-1)
    torch.testing.assert_close(d.log_prob(raw), expected)
    torch.testing.assert_close(d.mean, torch.tanh(centre))  # where the mode looks
    assert not torch.equal(d.location(raw), raw.clamp(-1, 1))

    model = catch(squash="sample")
    world = CatchBatch(4, size=12, generator=torch.Generator().manual_seed(0))
    world.reset()
    ep = model.play(world, sample=False)
    h = torch.zeros(4, 16)
    torch.testing.assert_close(ep.locations[:, 0], torch.tanh(model.policy.mean(h)))
    torch.testing.assert_close(ep.means, ep.locations)


# Seed 002's retina: edge padding ------------------------------------------------------------------------------------


def test_edge_padding_repeats_the_border_where_zero_padding_reads_black():
    image = torch.arange(36.0).view(1, 1, 6, 6) + 1
    corner = torch.tensor([[-1.0, -1.0]])  # centred on the top-left corner: 3 of the 4x4 patch's rows are outside
    zeros = sensor.glimpse(image, corner, 4, 1)[0, 0, 0]
    edge = sensor.glimpse(image, corner, 4, 1, pad="edge")[0, 0, 0]
    assert (zeros[:2] == 0).all() and (zeros[:, :2] == 0).all()
    padded = torch.nn.functional.pad(image, (2, 2, 2, 2), mode="replicate")[0, 0]
    assert torch.equal(edge, padded[:4, :4])
    assert torch.equal(edge[:2, :2], torch.full((2, 2), 1.0))

    model = catch(pad="edge")
    frames = torch.zeros(1, 1, 12, 12)
    frames[0, 0, -1, 5:7] = 1  # the paddle in the bottom row
    padded, pad = sensor.pad_images(frames, size=3, scales=2, locations_in_range=True, mode=model.cfg.pad)
    assert (padded[0, 0, -pad:, pad + 5 : pad + 7] == 1).all()  # the rows below the screen repeat it


# Seed 000's model: standardised pixels, an ELU before each softmax ----------------------------------------------------


def test_standardised_pixels_are_what_the_network_reads():
    """A model with pixel_mean and pixel_std gives on x what the same weights give with the defaults on
    (x - mean) / std: the sensor and the initial-location network both read the standardised image."""
    torch.manual_seed(0)
    plain = saccade(dropout=0.0).eval()
    standard = saccade(dropout=0.0, pixel_mean=0.13, pixel_std=0.31).eval()
    standard.load_state_dict(plain.state_dict())
    x = torch.rand(5, 1, 28, 28)
    a, b = standard(x, sample=False), plain((x - 0.13) / 0.31, sample=False)
    torch.testing.assert_close(a.logits, b.logits)
    assert torch.equal(a.locations, b.locations)
    for cfg in (ModelConfig(pixel_mean=0.1, pixel_std=0.3), ModelConfig(glimpses=2)):  # the fused loop too
        fused, reference = RAM(cfg).eval(), RAM(dataclasses.replace(cfg, pixel_mean=0.0, pixel_std=1.0)).eval()
        reference.load_state_dict(fused.state_dict())
        assert fused.uses_fused_loop
        torch.testing.assert_close(fused(x, sample=False).logits,
                                   reference((x - cfg.pixel_mean) / cfg.pixel_std, sample=False).logits)
    with pytest.raises(ConfigError, match="^pixel_std = 0.0: must be a positive number"):
        ModelConfig(pixel_std=0.0).validate()


def test_the_presets_mnist_statistics_are_the_training_images(real_data):
    from ram.data import mnist

    pixels = np.asarray(mnist.load(progress=False).train_images, dtype=np.float64) / 255
    assert presets.MNIST_MEAN == pytest.approx(pixels.mean(), rel=1e-12)
    assert presets.MNIST_STD == pytest.approx(pixels.std(ddof=1), rel=1e-9)


def test_the_elu_before_each_softmax_adds_no_weights_and_bounds_the_logits_below():
    torch.manual_seed(0)
    plain, elu = saccade(dropout=0.0), saccade(dropout=0.0, elu_logits=True)
    assert plain.state_dict().keys() == elu.state_dict().keys()
    elu.load_state_dict(plain.state_dict())
    h = torch.randn(7, 24) * 5
    linear = plain.policy.moves(h)
    torch.testing.assert_close(elu.policy.moves(h), torch.nn.functional.elu(linear))
    assert elu.policy.moves(h).min() >= -1
    images = torch.rand(7, 1, 28, 28)
    first = elu.policy.first(images, torch.zeros(7, 24))
    heads = torch.nn.functional.elu(plain.policy.initial(torch.nn.functional.max_pool2d(images, 4))).view(7, 2, 13)
    torch.testing.assert_close(first.logits, heads.log_softmax(-1))
    with pytest.raises(TypeError, match="unexpected keyword argument 'elu_logits'"):
        GaussianConfig(elu_logits=True)  # a setting of the saccade policy only


# The schedule and the weights kept -----------------------------------------------------------------------------------


def test_the_exponential_schedule_multiplies_by_the_decay_each_epoch_down_to_its_floor():
    tc = TrainConfig(schedule="exponential", lr=1e-4, lr_decay=0.5, lr_min=1e-6, epochs=10)
    per_epoch = 7
    rates = [learning_rate(tc, step, per_epoch * tc.epochs) for step in range(0, 70, 7)]
    assert rates[:3] == [1e-4, 0.5e-4, 0.25e-4] and rates[-1] == 1e-6  # 1e-4 / 2**9 is below the floor
    assert learning_rate(tc, 6, 70) == learning_rate(tc, 0, 70)  # constant within an epoch
    seed = presets.get("catch-002").train
    assert learning_rate(seed, 0, 350 * seed.epochs) == pytest.approx(1e-4 * 0.99)  # seed 002's first epoch
    assert learning_rate(seed, 350 * 9, 350 * seed.epochs) == pytest.approx(1e-4 * 0.99**10)
    with pytest.raises(ConfigError, match="^lr_decay = 1.5: must be in"):
        TrainConfig(lr_decay=1.5).validate()


def test_keep_last_ships_the_last_epochs_weights(tmp_path):
    model, policy = catch_sections()
    cfg = RunConfig(preset="catch-002", task=CatchConfig(canvas=12, epoch_games=64, val_games=32),
                    model=model, policy=policy, loss=LossConfig(baseline="scalar"),
                    train=TrainConfig(epochs=3, batch_size=32, eval_batch_size=64, eval_mc_samples=0,
                                      keep="last")).validate()
    fit(cfg, tmp_path / "run", device="cpu", threads=1, progress=False)
    kept = load_file(str(tmp_path / "run" / "model.safetensors"))
    last = torch.load(tmp_path / "run" / "last.pt", weights_only=True)["model"]
    assert kept.keys() == last.keys() and all(torch.equal(kept[k], last[k]) for k in last)
    with pytest.raises(ConfigError, match="^keep = 'first': must be 'best' or 'last'"):
        TrainConfig(keep="first").validate()


# The presets ----------------------------------------------------------------------------------------------------------


def test_mnist_saccade_000_is_seed_000s_recipe_and_none_of_this_projects():
    cfg = presets.get("mnist-saccade-000").validate()
    m, p, t, tc, lc = cfg.model, cfg.policy, cfg.task, cfg.train, cfg.loss
    assert p.kind == "saccade"
    assert (m.glimpse_net, m.hidden, p.policy_hidden, p.dropout, m.state_dropout, p.elu_logits) == (
        "pixels", 512, 512, 0.7, 0.0, True)
    assert (lc.rl_reduction, lc.rl_weight, lc.reward, lc.baseline, m.reinforce_core) == ("sum", 1e-3, "prob", "batch",
                                                                                       True)
    assert (tc.epochs, tc.batch_size, tc.schedule, tc.lr, tc.keep, t.shift) == (10, 100, "constant", 1e-3, "last", 0)
    assert 60_000 - t.val_size == 59_000  # seed 000 trains on all 60,000; 1,000 are held out to watch the run


def test_catch_002_is_seed_002s_agent_and_loss():
    cfg = presets.get("catch-002").validate()
    m, p, tc, lc = cfg.model, cfg.policy, cfg.train, cfg.loss
    assert (p.first_glimpse, p.squash, m.pad, m.pool, lc.baseline, m.detach_location) == (
        "random", "sample", "edge", "max", "scalar", False)
    assert (lc.discount, lc.rl_reduction, lc.rl_weight, lc.entropy_weight, tc.schedule) == (0.0, "sum", 1.0, 0.0,
                                                                                          "exponential")
    assert cfg.task.epoch_games * tc.epochs == 716_800  # the games the shipped catch agent saw
