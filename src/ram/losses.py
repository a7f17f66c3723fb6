"""The hybrid loss, as pure functions of an Episode.

- Cross-entropy trains the classifier, core and glimpse net (the locations reaching the sensor are detached samples).
- REINFORCE with reward 1 for a correct final guess (or seed 000's class probability), minus the baseline, trains
  only the location policy: the policy reads a detached state (unless the model's reinforce_core says otherwise), and
  the advantage is detached.
- The baseline learns by regression onto the reward, from a detached state.

Which reward, which baseline and how the terms are weighted is one `LossSpec`, built once from a run's config
(`LossSpec.of`) and handed whole to `hybrid` or `game`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import NamedTuple

import torch
import torch.nn.functional as F

from .config import LossConfig, RunConfig
from .model import Episode


@dataclass(frozen=True, kw_only=True)
class LossSpec(LossConfig):
    """The loss section (`LossConfig`: its settings' meanings and their checks are written there only) with the one
    setting the loss reads from another section: the copies of each input in the batch, which are also the
    evaluation's. The defaults are RAM's: reward 1 for a right guess, a learned baseline b(h_t), one copy, means over
    the batch."""

    mc_samples: int = 1
    """Copies of each input in the batch (copy k of input i at k * B + i): what the "copies" baseline and the
    distillation teacher average over."""

    @classmethod
    def of(cls, cfg: RunConfig) -> LossSpec:
        """A run's loss settings: its loss section and the recipe's copies."""
        loss = {f.name: getattr(cfg.loss, f.name) for f in dataclasses.fields(LossConfig)}
        return cls(mc_samples=cfg.train.mc_samples, **loss)


class Losses(NamedTuple):
    total: torch.Tensor
    classify: torch.Tensor  # [] the cross-entropy; nan for a game, which has none
    reinforce: torch.Tensor
    baseline: torch.Tensor
    reward: torch.Tensor  # [B] the reward REINFORCE was given
    success: torch.Tensor  # [B] 1 where the episode succeeded: a right final guess, a caught ball
    entropy: torch.Tensor  # [] the policies' mean entropy per decision (nan without decisions): near 0, collapsed


def mean_entropy(episode: Episode) -> torch.Tensor:
    """The policies' entropy per step, averaged over the batch and the episode: how far they are from always making
    the same choice. nan for a model that decides nothing (fc, convnet)."""
    e = episode.entropies.detach()
    return e.mean() if e.numel() else e.new_full((), float("nan"))


REWARDS = {
    "correct": lambda logits, right: right.float(),
    "prob": lambda logits, right: torch.where(right, F.softmax(logits.detach(), dim=1).amax(1), 0.0),
}
"""Classification rewards by `LossConfig.reward`: (logits [B, classes], right [B] bool) -> [B] float."""


def reward(logits: torch.Tensor, labels: torch.Tensor, kind: str = "correct") -> torch.Tensor:
    """[B, classes], [B] -> [B] float. correct: 1 for a right final guess, else 0 (RAM). prob: the probability of
    the predicted class when it is right, else 0 (seed 000)."""
    return REWARDS[kind](logits, logits.argmax(1) == labels)


def _over_batch(per_episode: torch.Tensor, reduction: str) -> torch.Tensor:
    """[B] -> scalar: the batch's mean, or its sum (seeds 000 and 002)."""
    return per_episode.sum() if reduction == "sum" else per_episode.mean()


def discounts(steps: int, discount: float, like: torch.Tensor) -> torch.Tensor:
    """[T]: discount**(T-1-t), the weight of step t's advantage; 1 at the last step (0**0 is 1)."""
    return torch.pow(like.new_tensor(discount), torch.arange(steps - 1, -1, -1, device=like.device, dtype=like.dtype))


def reinforce(log_probs: torch.Tensor, baselines: torch.Tensor, rewards: torch.Tensor, *, reduction: str = "mean",
              discount: float = 1.0) -> torch.Tensor:
    """-E[sum_t discount**(T-1-t) log pi(a_t) (R - b_t)] with the advantage held constant, averaged (or summed) over
    the batch. [B, T], [B, T], [B] -> scalar."""
    advantage = (rewards[:, None] - baselines).detach()
    if discount != 1.0:
        advantage = advantage * discounts(log_probs.shape[1], discount, advantage)
    return _over_batch(-(log_probs * advantage).sum(1), reduction)


def copies_baseline(rewards: torch.Tensor, copies: int) -> torch.Tensor:
    """[M * B] rewards of M copies of B inputs (copy k of input i at k * B + i) -> [M * B] the mean reward of the
    other M - 1 copies of the same input: a baseline that knows how hard the input is, and is independent of the
    episode's own choices, so REINFORCE stays unbiased."""
    r = rewards.view(copies, -1)
    return ((r.sum(0, keepdim=True) - r) / (copies - 1)).view(-1)


REWARD_BASELINES = {
    "batch": lambda rewards, copies: rewards.mean().expand_as(rewards),
    "copies": copies_baseline,
}
"""The baselines made of the rewards themselves, by `LossConfig.baseline`: (rewards [M * B], copies M) -> [M * B].
They have nothing to fit; the others are the model's learned heads (`ram.nets.BASELINES`), read from the episode."""


def policy_gradient(episode: Episode, rewards: torch.Tensor,
                    spec: LossSpec = LossSpec()) -> tuple[torch.Tensor, torch.Tensor]:
    """(REINFORCE term, baseline regression) for an episode's rewards [B]. baseline "batch" subtracts the batch's
    mean reward and "copies" the mean reward of the other copies of the same input; neither has anything to fit.
    "state" and "scalar" use the model's learned baselines. entropy_weight > 0 adds the policies' entropy as a bonus
    to the REINFORCE term, against an early collapse onto one move. rl_reduction "sum" sums REINFORCE and the
    regression (each episode's mean squared error over its steps) over the batch instead of averaging them; discount
    weights step t's advantage by discount**(T-1-t) (`reinforce`)."""
    if not episode.log_probs.numel():  # a model that takes no decisions (fc, convnet) has nothing to reinforce
        zero = rewards.new_zeros(())
        return zero, zero
    reduction, discount = spec.rl_reduction, spec.discount
    bonus = spec.entropy_weight * episode.entropies.sum(1).mean() if spec.entropy_weight else 0.0
    if spec.baseline in REWARD_BASELINES:
        b = REWARD_BASELINES[spec.baseline](rewards, spec.mc_samples)
        rl = reinforce(episode.log_probs, b[:, None].expand_as(episode.log_probs), rewards, reduction=reduction,
                       discount=discount)
        return rl - bonus, rewards.new_zeros(())
    target = rewards[:, None].expand_as(episode.baselines)  # [B, T]
    if reduction == "sum":
        base = F.mse_loss(episode.baselines, target, reduction="none").mean(1).sum()
    else:
        base = F.mse_loss(episode.baselines, target)
    rl = reinforce(episode.log_probs, episode.baselines, rewards, reduction=reduction, discount=discount)
    return rl - bonus, base


def hybrid(episode: Episode, labels: torch.Tensor, spec: LossSpec = LossSpec(), *,
           means_logits: torch.Tensor | None = None) -> Losses:
    """Classification: cross-entropy, plus REINFORCE on the reward of the final guess, plus the baseline's fit. With
    step_weight, plus that times the mean cross-entropy of the guesses after each earlier glimpse (the reward is still
    the final guess's). With means_weight, plus that times the cross-entropy of means_logits [B0, classes], the final
    guesses of one more episode of each image along the policy means (the first B0 of the labels, copy 0 of each
    image): it trains the classifier, core and glimpse net on the path the one-episode protocol reads, while the
    policy still learns from REINFORCE on the sampled episodes only. With distill_weight, plus that times the
    cross-entropy of means_logits against the teacher: the class probabilities of the M sampled copies of each image
    (episode.logits [M * B0, classes], copy k of image i at k * B0 + i), averaged and detached."""
    classify = F.cross_entropy(episode.logits, labels)
    if spec.step_weight and episode.step_logits.shape[1] > 1:
        earlier = episode.step_logits[:, :-1]  # [B, T-1, classes]
        classify = classify + spec.step_weight * F.cross_entropy(earlier.flatten(0, 1),
                                                                 labels.repeat_interleave(earlier.shape[1]))
    r = reward(episode.logits, labels, spec.reward)
    rl, base = policy_gradient(episode, r, spec)
    success = (episode.logits.argmax(1) == labels).float()
    total = classify + spec.rl_weight * rl + base
    if means_logits is not None and spec.means_weight > 0:
        means = spec.means_weight * F.cross_entropy(means_logits, labels[: means_logits.shape[0]])
        total, classify = total + means, classify + means
    if means_logits is not None and spec.distill_weight > 0:
        B0 = means_logits.shape[0]
        teacher = F.softmax(episode.logits.detach(), dim=-1).view(-1, B0, episode.logits.shape[-1]).mean(0)
        distill = spec.distill_weight * F.cross_entropy(means_logits, teacher)  # soft targets
        total, classify = total + distill, classify + distill
    return Losses(total=total, classify=classify, reinforce=rl, baseline=base, reward=r, success=success,
                  entropy=mean_entropy(episode))


def game(episode: Episode, rewards: torch.Tensor, spec: LossSpec = LossSpec()) -> Losses:
    """A game (Catch): REINFORCE on the end-of-game rewards [B] for every decision (discounted from the last step
    back by `discount`), plus the baseline's fit. The settings of classification (reward, step, means and distill
    weights) have nothing to act on here; Catch's config checks refuse them."""
    rl, base = policy_gradient(episode, rewards, spec)
    return Losses(total=spec.rl_weight * rl + base, classify=rl.new_full((), float("nan")), reinforce=rl, baseline=base,
                  reward=rewards, success=(rewards > 0).float(), entropy=mean_entropy(episode))


# Sequences of labels (DRAM). Imported here, beside their only users.
from .data.multi import PAD, sequence_reward, upto_first_wrong  # noqa: E402


def glimpse_returns(predicted: torch.Tensor, labels: torch.Tensor,
                    output_of: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """What each glimpse of a sequence episode is reinforced with: (returns [B, T] float, kept [B, T] bool).

    predicted, labels: int64 [B, K], the emitted labels and their targets; output_of: int64 [B, T], the output each
    glimpse leads to. The reward of a string is the number of labels right up to the first wrong one
    (`data.multi.sequence_reward`), earned one label at a time: r_k = 1 when labels 1..k are all right.

    - The return of a glimpse is what is earned from its own output on, r_k + ... + r_K (k = output_of): a glimpse
      leading to output 2 cannot change whether output 1 was right, so that reward is left out of its return (no
      bias, less variance), while a glimpse of output 1 is paid for the later labels too, since where it looked
      steers every glimpse after it.
    - A glimpse is kept when every output before its own was right: Ba et al. cut the gradient at the first wrong
      label. The glimpses of the first wrong output are kept (their return is 0, what a wrong label earns); those of
      the outputs after it are not, since their return is 0 whatever they do.
    """
    reward = sequence_reward(predicted, labels)  # [B, K] cumulative, cut at the first wrong label
    before = torch.cat([torch.zeros_like(reward[:, :1]), reward[:, :-1]], 1)  # earned before output k
    returns = (reward[:, -1:] - before).float().gather(1, output_of)
    kept = upto_first_wrong(predicted, labels).gather(1, output_of)
    return returns, kept


UNUSED_IN_SEQUENCES = {"distill_weight": 0.0, "step_weight": 0.0, "discount": 1.0, "reward": "correct"}
"""The loss settings `sequence_hybrid` has no use for, with the one value it accepts for each."""


def sequence_hybrid(episode, labels: torch.Tensor, spec: LossSpec = LossSpec(),
                    means_logits: torch.Tensor | None = None) -> Losses:
    """The hybrid loss of an episode that emits a sequence of K labels (`ram.dram.SequenceEpisode`).

    labels: int64 [B, L], L >= K, in `ram.data.multi`'s layout (the labels in order, EOS, PAD after it); the first K
    are the targets. With M = spec.mc_samples copies, copy k of input i is row k * B0 + i of both.

    - Cross-entropy of every emitted label against its target, PAD ignored, averaged over the labels.
    - REINFORCE of each glimpse's location with its return minus its baseline, and only up to the first wrong label
      (`glimpse_returns`): summed over the glimpses, averaged (or with rl_reduction "sum", summed) over the batch.
    - The baseline: the model's learned b(r2_t), fit by regression onto the kept glimpses' returns (its mean squared
      error; with "sum", each episode's mean over its kept glimpses, summed over the batch); or with baseline "batch"
      the batch's mean return at each glimpse, with "copies" the mean return of the other copies of the same input
      at each glimpse, which have nothing to fit.
    - entropy_weight adds the location policy's entropy as a bonus, as in `policy_gradient`.
    - With means_weight, plus that times the cross-entropy of means_logits [B0, K, classes], the labels of one episode
      of each input along the policy means (the one episode it is tested on), as `hybrid` does for one answer.

    reward is the string's reward (labels right up to the first wrong one), success 1 where all K are right.
    """
    for name, accepted in UNUSED_IN_SEQUENCES.items():
        if getattr(spec, name) != accepted:
            raise ValueError(f"{name} = {getattr(spec, name)!r}: a sequence of labels has no use for it (only "
                             f"{accepted!r})")
    B, K, C = episode.logits.shape
    if labels.dim() != 2 or labels.shape[0] != B or labels.shape[1] < K:
        raise ValueError(f"labels must be [{B}, at least {K}] for {K} outputs of {B} episodes, got "
                         f"{tuple(labels.shape)}")
    targets = labels[:, :K]
    classify = F.cross_entropy(episode.logits.flatten(0, 1), targets.flatten(), ignore_index=PAD)
    predicted = episode.logits.detach().argmax(-1)  # [B, K]
    returns, kept = glimpse_returns(predicted, targets, episode.output_of)  # [B, T]
    mask = kept.float()
    if spec.baseline in REWARD_BASELINES:
        b = torch.stack([REWARD_BASELINES[spec.baseline](r, spec.mc_samples) for r in returns.unbind(1)], 1)
        base = returns.new_zeros(())
    else:
        b = episode.baselines
        squared = F.mse_loss(b, returns, reduction="none") * mask
        if spec.rl_reduction == "sum":
            base = (squared.sum(1) / mask.sum(1).clamp(min=1)).sum()
        else:
            base = squared.sum() / mask.sum().clamp(min=1)
    advantage = ((returns - b) * mask).detach()
    rl = _over_batch(-(episode.log_probs * advantage).sum(1), spec.rl_reduction)
    if spec.entropy_weight:
        rl = rl - spec.entropy_weight * episode.entropies.sum(1).mean()
    reward = sequence_reward(predicted, targets)[:, -1].float()
    success = (reward == (targets != PAD).sum(1)).float()
    total = classify + spec.rl_weight * rl + base
    if means_logits is not None and spec.means_weight > 0:
        along = targets[: means_logits.shape[0]]
        total = total + spec.means_weight * F.cross_entropy(means_logits.flatten(0, 1), along.flatten(),
                                                            ignore_index=PAD)
    return Losses(total=total, classify=classify, reinforce=rl, baseline=base,
                  reward=reward, success=success, entropy=mean_entropy(episode))
