"""The multi-object tasks (mnist-pairs, mnist-addition): what they teach, how they score an answer (a pair in either
order, a sum), their batches and reports, and a small DRAM that learns on them."""

import dataclasses
from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from ram import presets
from ram.config import ConfigError
from ram.data import mnist
from ram.data.multi import EOS, Layout
from ram.dram import DRAM
from ram.losses import LossSpec
from ram.tasks.multi import MnistAddition, MnistPairs, either_order

CPU = torch.device("cpu")


def digits(n_train=300, n_val=100, n_test=200) -> mnist.Digits:
    """Stand-in digits: noise, labelled 0..9 in turn."""
    gen = torch.Generator().manual_seed(0)
    n = n_train + n_val
    return mnist.Digits(torch.randint(0, 256, (n, 28, 28), dtype=torch.uint8, generator=gen), torch.arange(n) % 10,
                        torch.randint(0, 256, (n_test, 28, 28), dtype=torch.uint8, generator=gen),
                        torch.arange(n_test) % 10)


def run_config(Task=MnistPairs, *, canvas=100, pieces=8, val_size=100, train_size=0, mc_samples=1):
    """The task's preset, on a canvas of `canvas` with `pieces` of clutter, `mc_samples` copies of each canvas."""
    cfg = presets.get(Task.name)
    return dataclasses.replace(
        cfg,
        task=dataclasses.replace(cfg.task, canvas=canvas, pieces=pieces, val_size=val_size, train_size=train_size),
        model=dataclasses.replace(cfg.model, image_size=canvas),
        train=dataclasses.replace(cfg.train, eval_mc_samples=0, mc_samples=mc_samples, precision="fp32"),
    ).validate()


def make(Task=MnistPairs, **kw):
    return Task(run_config(Task, **kw), data=digits(), progress=False)


class Constant(nn.Module):
    """Emits the same labels for every canvas, and records what it was shown."""

    def __init__(self, answer: list[int], classes: int):
        super().__init__()
        self.logits = nn.Parameter(10.0 * F.one_hot(torch.tensor(answer), classes).float())  # [K, classes]
        self.seen = []

    def forward(self, images, *, sample=True):
        self.seen.append(images)
        return SimpleNamespace(logits=self.logits.expand(images.shape[0], -1, -1))


def test_a_pair_is_right_in_either_order_and_each_digit_counts_once():
    labels = torch.tensor([[7, 3, EOS]] * 4 + [[3, 3, EOS]] * 2)
    predicted = torch.tensor([[7, 3], [3, 7], [3, 3], [1, 2], [3, 3], [3, 1]])
    score = either_order(predicted, labels)
    assert score["right"].tolist() == [1, 1, 0, 0, 1, 0]
    assert score["digits"].tolist() == [1, 1, 0.5, 0, 1, 0.5]  # (3, 3) names one of 7 and 3, not both
    assert score["in_order"].tolist() == [1, 0, 0, 0, 1, 0]


@pytest.mark.parametrize("answer", [[0, 1], [1, 0], [4, 4]])
def test_pairs_errors_are_counted_over_the_canvases(answer):
    task = make()
    val = task.data.val()
    got = task.evaluate(Constant(answer, 10), val, batch_size=30)  # batches of 30: a ragged last one
    truth = [sorted(pair) for pair in val.labels[:, :2].tolist()]
    wrong = sum(pair != sorted(answer) for pair in truth)
    in_order = sum(pair != answer for pair in val.labels[:, :2].tolist())
    assert got["n"] == 100
    assert got["error"] == pytest.approx(wrong)
    assert got["error_in_order"] == pytest.approx(in_order)
    assert wrong <= in_order


def test_addition_teaches_and_scores_the_sum():
    task = make(MnistAddition)
    assert (task.outputs, task.classes) == (1, 19)
    batch = next(task.train_batches(0, 50))
    assert torch.equal(task.targets(batch), batch.sums[:, None])
    val = task.data.val()
    got = task.evaluate(Constant([9], 19), val)
    assert got["error"] == pytest.approx(100 * (val.sums != 9).float().mean().item())
    assert set(got) == {"error", "n"}


def test_pairs_teach_the_digits_in_reading_order():
    task = make()
    assert (task.outputs, task.classes) == (2, 10)
    batch = next(task.train_batches(0, 50))
    assert torch.equal(task.targets(batch), batch.labels)


def test_the_loss_runs_m_copies_of_each_canvas_as_copy_k_of_canvas_i_at_k_times_b_plus_i():
    task = make(mc_samples=3)
    batch = next(task.train_batches(0, 4))
    model = small_dram()
    shown = []
    model.register_forward_pre_hook(lambda m, args: shown.append(args[0]))
    out = task.loss(model, batch, CPU)
    (images,) = shown
    assert images.shape == (12, 1, 100, 100) and out.reward.shape == (12,)
    for k in range(3):
        assert torch.equal(images[4 * k : 4 * k + 4, 0], batch.images.float() / 255)
    out.total.backward()  # one graph through the 12 episodes


def test_means_weight_also_runs_one_episode_of_each_canvas_along_the_means():
    """With --means-weight and M copies, the model sees the M sampled copies, then each canvas once more along the
    means, whose labels' cross-entropy joins the loss."""
    task = make(mc_samples=2)
    task.loss_spec = dataclasses.replace(task.loss_spec, means_weight=1.0)
    batch = next(task.train_batches(0, 4))
    model = small_dram()
    shown = []
    model.register_forward_pre_hook(lambda m, args, kwargs: shown.append((args[0], kwargs["sample"])),
                                    with_kwargs=True)
    out = task.loss(model, batch, CPU)
    assert [(images.shape[0], sample) for images, sample in shown] == [(8, True), (4, False)]
    assert torch.equal(shown[1][0][:, 0], batch.images.float() / 255)
    with torch.no_grad():
        along = model(shown[1][0], sample=False).logits
    ce = F.cross_entropy(along.flatten(0, 1), task.targets(batch)[:, :2].flatten())
    assert torch.allclose(out.total - ce, out.classify + out.reinforce + out.baseline, atol=1e-6)


def small_dram(task=MnistPairs, **kw) -> DRAM:
    torch.manual_seed(0)
    return DRAM(**(dict(image_size=100, patch_size=10, conv_channels=(2, 2, 4), glimpse_features=8, hidden=8,
                        classifier_hidden=8, outputs=task.outputs, classes=task.classes, coarse=12,
                        context_channels=(4, 4, 8)) | kw))


def test_batches_cover_an_epoch_of_the_training_digits():
    task = make()
    assert task.batches_per_epoch(64) == 5  # 300 training digits
    sizes = [task.episodes(b) for b in task.train_batches(0, 64)]
    assert sizes == [64, 64, 64, 64, 44]
    assert [task.episodes(b) for b in task.warm_batches(64)] == [64, 44]


def test_the_report_follows_the_means_and_averages_m_seeded_sampled_episodes():
    task = make()
    model = small_dram()
    one = task.report(model, split="test", seed=3, mc_samples=2)
    assert one["n"] == 200 and one["mc_samples"] == 2
    assert {"error", "digit_error", "error_in_order", "error_averaged", "digit_error_averaged"} <= set(one)
    assert one == task.report(model, split="test", seed=3, mc_samples=2)  # seeded: the same sampled episodes
    line = task.summary(one, split="test", seed=3)
    assert line.startswith(f"mnist-pairs: test error {one['error']:.2f}% (200 canvases, seed 3, one episode")
    assert f"{one['digit_error']:.2f}% of the digits" in line and "2 sampled episodes averaged" in line
    assert task.headline(one) == f"test error {one['error']:.2f}% on 200 canvases"
    without = task.report(model, split="val", mc_samples=0)
    assert without["n"] == 100 and "error_averaged" not in without


def test_a_number_of_episodes_is_refused():
    with pytest.raises(ConfigError, match="episodes = 5"):
        make().check_report(episodes=5)


def test_a_small_dram_learns_pairs_well_below_chance(real_data):
    """About 2,900 steps (30 s on one thread) on 1,000 training digits, two digits on a 64x64 canvas without clutter:
    the loss falls and the error on new canvases of those digits drops below chance (about 98% for the pair, 82% for
    a digit named). Learning where to look is the slow part, and when it takes off varies with the seed: this one
    ends near 87% and 60%, others of the same run between 67% and 92%, 40% and 66%. With the digits' true places
    given, the cross-entropy is at 0.2 after 300 steps."""
    torch.set_num_threads(1)
    task = MnistPairs(run_config(canvas=64, pieces=0, train_size=1000, val_size=1000),
                      data=mnist.load("mnist", progress=False), progress=False)
    model = small_dram(image_size=64, patch_size=12, scales=3, conv_channels=(8, 8, 16), glimpse_features=64,
                       hidden=64, classifier_hidden=64, glimpses_per_output=2)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    canvases = next(task.train_batches(99, 500))  # training digits, placed afresh
    before = task.evaluate(model, canvases)
    losses = []
    for epoch in range(90):
        for batch in task.train_batches(epoch, 32):
            out = task.loss(model, batch, CPU)
            opt.zero_grad()
            out.total.backward()
            opt.step()
            losses.append(out.classify.item())
    after = task.evaluate(model, canvases)
    assert sum(losses[-100:]) / 100 < sum(losses[:100]) / 100 - 0.4
    assert before["error"] > 95 and before["digit_error"] > 85
    assert after["error"] < 93 and after["digit_error"] < 70
