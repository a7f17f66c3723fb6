"""How much a model's one episode owes to where its first glimpse goes: its test error along the policy means as
trained, and with the first glimpse put on the digit's centre (an oracle no model has), with no retraining.

    python benchmarks/first_glimpse_oracle.py mnist-cluttered-100-g4          # a shipped model, or a run folder
    python benchmarks/first_glimpse_oracle.py runs/x --seed 1 --threads 2

Only for the tasks that place one 28x28 digit on a larger canvas (translated and cluttered MNIST). The digit's
position is the first draw `ram.data.tasks.place` makes from the test set's generator; the script checks every
digit is where it says before it measures.
"""

from __future__ import annotations

import argparse

import torch

import ram
from ram.data import TEST, TaskData, to_float
from ram.data.tasks import DIGIT, generator
from ram.policies import Gaussian


def digit_centres(data: TaskData, seed: int) -> torch.Tensor:
    """(x, y) [N, 2] in [-1, 1] of each test digit's centre, as `place` drew it for `data.test(seed)`."""
    test, canvas = data.test(seed), data.task.canvas
    n = test.images.shape[0]
    gen = generator(seed, TEST)
    top = torch.randint(0, canvas - DIGIT + 1, (n,), generator=gen)
    left = torch.randint(0, canvas - DIGIT + 1, (n,), generator=gen)
    digits = data._test_digits.images
    rows = top[:, None] + torch.arange(DIGIT)
    cols = left[:, None] + torch.arange(DIGIT)
    placed = test.images[torch.arange(n)[:, None, None], rows[:, :, None], cols[:, None, :]]
    if not (placed >= digits).all():  # clutter only adds: the square must hold at least the digit
        raise SystemExit("the digits are not where place() drew them: this script no longer mirrors ram.data.tasks")
    centre = torch.stack((left, top), 1).float() + DIGIT / 2
    return centre * (2.0 / canvas) - 1.0


def error(model, images: torch.Tensor, labels: torch.Tensor, first: torch.Tensor | None, batch: int = 500) -> float:
    """One episode along the means (%); first [N, 2] puts the first glimpse there instead of where the policy would."""
    net = model.module
    policy_first = net.policy.first
    wrong = 0
    try:
        for i in range(0, images.shape[0], batch):
            if first is not None:
                where = first[i:i + batch]
                net.policy.first = lambda frame, h: Gaussian(where, net.policy_cfg.std)
            with torch.no_grad():
                logits = net(to_float(images[i:i + batch]), sample=False).logits
            wrong += (logits.argmax(-1) != labels[i:i + batch]).sum().item()
    finally:
        net.policy.first = policy_first
    return 100 * wrong / images.shape[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model", help="a shipped model's name or a run folder")
    parser.add_argument("--seed", type=int, default=0,
                        help="the test set `ram eval --seed` draws (0: the standard one)")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    model = ram.load(args.model)
    task = model.cfg.task
    if task.dataset != "mnist" or task.canvas <= DIGIT:
        raise SystemExit(f"{args.model}: task {task.dataset} on a {task.canvas}x{task.canvas} canvas has no digit "
                         "placed on a larger canvas")
    model.module.eval()
    model.module.fused = False  # the plain loop asks the policy for the first location
    data = TaskData(task, seed=model.cfg.train.seed, progress=False)
    test = data.test(args.seed)
    as_trained = error(model, test.images, test.labels, None)
    oracle = error(model, test.images, test.labels, digit_centres(data, args.seed))
    print(f"{args.model}, test set {args.seed}, one episode along the means: {as_trained:.2f}% with its own first "
          f"glimpse, {oracle:.2f}% with the first glimpse on the digit's centre")


if __name__ == "__main__":
    main()
