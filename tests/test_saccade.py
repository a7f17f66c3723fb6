"""Seed 000's hard attention as a variant of RAM: the lattice, the saccade and initial-window distributions, the
gradient paths its settings choose, and dropout."""

import dataclasses
import itertools

import pytest
import torch

from ram import sensor
from ram.config import ConfigError, ModelConfig
from ram.losses import LossSpec, hybrid, reward
from ram.model import RAM
from ram.policies import MOVES, Categorical, InitialWindow, Lattice, Saccade, SaccadeConfig

LATTICE = Lattice(side=28, patch=4, step=2)
SACCADE_SETTINGS = {f.name for f in dataclasses.fields(SaccadeConfig)}


def saccade_cfg(**kw) -> tuple[ModelConfig, SaccadeConfig]:
    """Seed 000's small hard-attention model: its model section and its saccade policy's, each keyword in its own."""
    base = dict(image_size=28, glimpses=5, patch_size=4, scales=1, saccade_step=2, init_downsample=4,
                glimpse_net="pixels", core="lstm", hidden=24, policy_hidden=16, dropout=0.7)
    kw = {**base, **kw}
    return (ModelConfig(**{k: v for k, v in kw.items() if k not in SACCADE_SETTINGS}),
            SaccadeConfig(**{k: v for k, v in kw.items() if k in SACCADE_SETTINGS}))


def saccade_ram(*, baseline: str = "batch", **kw) -> RAM:
    """That model with seed 000's batch baseline unless told otherwise."""
    return RAM(*saccade_cfg(**kw), baseline=baseline)


def test_the_lattice_of_seed_000_has_13_positions_a_side():
    assert LATTICE.n == 13


def test_a_lattice_index_is_the_window_the_sensor_reads():
    """Window (row, col) covers rows 2 row .. 2 row + 3 and columns 2 col .. 2 col + 3: exactly what the sensor reads
    at that index's location."""
    image = torch.arange(28 * 28, dtype=torch.float32).view(1, 1, 28, 28)
    for row, col in itertools.product(range(13), repeat=2):
        loc = LATTICE.location(torch.tensor([[row, col]]))
        read = sensor.glimpse(image, loc, size=4, scales=1)[0, 0, 0]
        assert torch.equal(read, image[0, 0, 2 * row : 2 * row + 4, 2 * col : 2 * col + 4]), (row, col)
        assert LATTICE.index(loc).tolist() == [[row, col]]


@pytest.mark.parametrize("row,col", [(0, 0), (0, 12), (12, 0), (12, 12), (0, 6), (12, 6), (6, 0), (6, 12), (6, 6)])
def test_every_move_from_every_border_and_corner_stays_on_the_lattice(row, col):
    origin = torch.tensor([[row, col]]).expand(8, 2)
    logits = torch.zeros(8, 8)
    locations = Saccade(logits, origin, LATTICE).location(torch.arange(8))
    index = LATTICE.index(locations)
    assert ((index >= 0) & (index <= 12)).all()
    expected = (origin + MOVES).clamp(0, 12)  # each move one step, stopped at the border
    assert torch.equal(index, expected)
    assert torch.equal(LATTICE.location(index), locations)  # on the lattice, not between windows


def test_moves_are_seed_000s_eight_directions_in_order():
    up, up_right, right, down_right, down, down_left, left, up_left = MOVES.tolist()
    assert (up, right, down, left) == ([-1, 0], [0, 1], [1, 0], [0, -1])
    assert (up_right, down_right, down_left, up_left) == ([-1, 1], [1, 1], [1, -1], [-1, -1])


def test_the_initial_heads_map_row_and_column_to_their_window():
    """Head 0 picks the row, head 1 the column: the location is the window at (row, col), i.e. x from the column."""
    logits = torch.full((1, 2, 13), -1e4)
    logits[0, 0, 3] = logits[0, 1, 9] = 0.0  # row 3, column 9
    first = InitialWindow(logits, LATTICE)
    index = first.mode()
    assert index.tolist() == [[3, 9]]
    x, y = first.location(index)[0].tolist()
    assert x == pytest.approx((2 * 9 + 2) / 14 - 1) and y == pytest.approx((2 * 3 + 2) / 14 - 1)
    assert torch.equal(first.sample(), index)  # all the mass on one window


def test_log_probs_and_entropies_match_torch_distributions():
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(6, 8, generator=gen)
    move = torch.randint(0, 8, (6,), generator=gen)
    ours, theirs = Categorical(logits), torch.distributions.Categorical(logits=logits)
    torch.testing.assert_close(ours.log_prob(move), theirs.log_prob(move))
    torch.testing.assert_close(ours.entropy(), theirs.entropy())
    # the initial window: two independent heads, their log-probs and entropies add
    two = torch.randn(6, 2, 13, generator=gen)
    index = torch.randint(0, 13, (6, 2), generator=gen)
    rows, cols = torch.distributions.Categorical(logits=two[:, 0]), torch.distributions.Categorical(logits=two[:, 1])
    first = InitialWindow(two, LATTICE)
    torch.testing.assert_close(first.log_prob(index), rows.log_prob(index[:, 0]) + cols.log_prob(index[:, 1]))
    torch.testing.assert_close(first.entropy(), rows.entropy() + cols.entropy())


def test_samples_follow_the_softmax():
    torch.manual_seed(0)
    probs = torch.tensor([0.1, 0.6, 0.3])
    draws = Categorical(probs.log().expand(20_000, 3)).sample()
    torch.testing.assert_close(torch.bincount(draws, minlength=3) / 20_000.0, probs, atol=0.015, rtol=0)


def test_an_episode_walks_the_lattice_one_step_at_a_time():
    torch.manual_seed(0)
    model = saccade_ram(glimpses=12)
    ep = model(torch.rand(4, 1, 28, 28))
    index = LATTICE.index(ep.locations.view(-1, 2)).view(4, 12, 2)
    assert torch.equal(LATTICE.location(index.view(-1, 2)).view(4, 12, 2), ep.locations)
    steps = (index[:, 1:] - index[:, :-1]).abs()
    assert (steps <= 1).all()  # one lattice step (or none, at a border) in each direction


def grads(model, loss) -> dict[str, bool]:
    model.zero_grad()
    loss.backward(retain_graph=True)
    return {n: p.grad is not None and bool(p.grad.abs().sum() > 0) for n, p in model.named_parameters()}


def groups(reached: dict[str, bool]) -> set[str]:
    return {name.split(".")[0] + ("." + name.split(".")[1] if name.startswith("policy.") else "")
            for name, hit in reached.items() if hit}


@pytest.mark.parametrize("reinforce_core", [False, True])
def test_each_loss_reaches_only_its_own_parameters(reinforce_core):
    """Cross-entropy trains the classifier and core; REINFORCE trains the two policies, and the baseline's regression
    the baseline; each reaches the core only when reinforce_core says so."""
    torch.manual_seed(0)
    model = saccade_ram(reinforce_core=reinforce_core, baseline="state", dropout=0.0)
    images, labels = torch.rand(8, 1, 28, 28), torch.randint(0, 10, (8,))
    ep = model(images)
    losses = hybrid(ep, labels, LossSpec(reward="prob", baseline="state"))
    # a reward that varies, so the advantage is not zero everywhere
    rl = -(ep.log_probs * (torch.arange(8.0)[:, None] - ep.baselines).detach()).sum(1).mean()
    assert groups(grads(model, losses.classify)) == {"classifier", "core"}
    policy = {"policy.moves", "policy.initial"}
    assert groups(grads(model, rl)) == (policy | {"core"} if reinforce_core else policy)
    # the baseline reads the state the policies read: its regression reaches the core with them
    assert groups(grads(model, losses.baseline)) == ({"baseline", "core"} if reinforce_core else {"baseline"})


def test_the_prob_reward_is_the_probability_of_a_right_guess():
    logits = torch.tensor([[2.0, 0.0], [0.0, 1.0], [3.0, 0.0]])
    labels = torch.tensor([0, 0, 0])
    expected = torch.tensor([torch.softmax(logits[0], 0)[0], 0.0, torch.softmax(logits[2], 0)[0]])
    torch.testing.assert_close(reward(logits, labels, "prob"), expected)
    assert reward(logits, labels, "correct").tolist() == [1.0, 0.0, 1.0]


def test_the_batch_baseline_subtracts_the_mean_reward():
    torch.manual_seed(0)
    model = saccade_ram()
    ep = model(torch.rand(8, 1, 28, 28))
    labels = ep.logits.argmax(1).clone()
    labels[:3] = (labels[:3] + 1) % 10  # 5 right, 3 wrong
    losses = hybrid(ep, labels, LossSpec(reward="correct", baseline="batch"))
    r = (ep.logits.argmax(1) == labels).float()
    expected = -(ep.log_probs * (r - r.mean())[:, None]).sum(1).mean()
    torch.testing.assert_close(losses.reinforce, expected)
    assert losses.baseline.item() == 0.0


def test_dropout_is_on_in_training_and_off_in_eval():
    torch.manual_seed(0)
    model = saccade_ram(dropout=0.7)
    images = torch.rand(4, 1, 28, 28)
    model.eval()
    a, b = model(images, sample=False), model(images, sample=False)
    assert torch.equal(a.logits, b.logits) and torch.equal(a.locations, b.locations)
    model.train()
    h = torch.rand(64, 24)
    assert not torch.equal(model.policy.moves(h), model.policy.moves(h))  # a new dropout mask each call
    model.eval()
    assert torch.equal(model.policy.moves(h), model.policy.moves(h))


@pytest.mark.parametrize("policy", ["saccade", "gaussian"])
def test_state_dropout_reaches_the_classifier_only_in_training(policy):
    """state_dropout masks the core state where the classifier reads it: in training the same episode's logits
    change with the mask while its path does not; in eval() it is off."""
    model = saccade_ram(state_dropout=0.5, dropout=0.0) if policy == "saccade" else RAM(ModelConfig(
        image_size=28, glimpses=3, patch_size=4, scales=1, hidden=24, state_dropout=0.5))
    images = torch.rand(8, 1, 28, 28)
    model.train()
    a = model(images, sample=False)
    b = model(images, sample=False)
    assert torch.equal(a.locations, b.locations) and not torch.equal(a.logits, b.logits)
    model.eval()
    a, b = model(images, sample=False), model(images, sample=False)
    assert torch.equal(a.logits, b.logits)
    with pytest.raises(ConfigError, match="state_dropout = 1: must be in"):
        ModelConfig(state_dropout=1).validate()
    with pytest.raises(ConfigError, match="state_dropout = 0.5: drops the state a classifier reads"):
        ModelConfig(classes=0, actions=3, state_dropout=0.5).validate()


def test_the_core_reads_the_raw_patch_with_or_without_its_location():
    for net, width in (("pixels", 16), ("pixels+where", 18)):
        model = saccade_ram(glimpse_net=net)
        assert model.core.cell.input_size == width == model.glimpse_net.out_size
        assert not list(model.glimpse_net.parameters())  # no glimpse network: nothing to learn before the core


@pytest.mark.parametrize("policy", ["gaussian", "saccade"])
@pytest.mark.parametrize("reward_kind", ["correct", "prob"])
@pytest.mark.parametrize("baseline", ["state", "batch"])
def test_every_reward_and_baseline_trains_either_policy(policy, reward_kind, baseline):
    from ram.tasks import classification_loss

    torch.manual_seed(0)
    common = dict(image_size=28, glimpses=3, hidden=16)
    model = saccade_ram(**common, baseline=baseline) if policy == "saccade" else RAM(
        ModelConfig(**common, what_size=8, where_size=8, glimpse_size=16), baseline=baseline)
    images, labels = torch.rand(8, 1, 28, 28), torch.randint(0, 10, (8,))
    losses = classification_loss(model, images, labels, LossSpec(reward=reward_kind, baseline=baseline))
    losses.total.backward()
    assert torch.isfinite(losses.total)
    policy_grads = [p.grad for n, p in model.named_parameters() if n.startswith("policy.")]
    assert policy_grads and all(g is not None for g in policy_grads)
    assert (model.baseline is None) == (baseline == "batch")


def test_the_logged_entropy_is_the_policies_mean_entropy_per_decision():
    """metrics.csv's entropy column: the initial window's two heads at step 0 and the moves' softmax after, averaged
    over batch and steps; it reaches 0 when a policy always makes the same choice (its collapse)."""
    torch.manual_seed(0)
    model = saccade_ram(glimpses=3, dropout=0.0)
    images, labels = torch.rand(4, 1, 28, 28), torch.randint(0, 10, (4,))
    ep = model(images)
    pooled = torch.nn.functional.max_pool2d(images, 4)
    heads = model.policy.initial(pooled).view(4, 2, 13)
    first = sum(torch.distributions.Categorical(logits=heads[:, k]).entropy() for k in (0, 1))
    torch.testing.assert_close(ep.entropies[:, 0], first)
    losses = hybrid(ep, labels, LossSpec(baseline="batch"))
    torch.testing.assert_close(losses.entropy, ep.entropies.mean())
    assert 0 < losses.entropy < 2 * torch.log(torch.tensor(13.0))  # below the most a step can have
    with torch.no_grad():  # a policy that always picks the same move has no entropy left
        model.policy.moves[-1].bias.copy_(torch.tensor([1e4, 0, 0, 0, 0, 0, 0, 0]))
        model.policy.moves[-1].weight.zero_()
    assert model(images).entropies[:, 1:].abs().max() < 1e-6
