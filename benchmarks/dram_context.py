"""Whether a DRAM's context network steers its first glimpses: the size of r2's first state, the emission network's
pre-activation for the first location, and how far each of the first glimpses moves from image to image.

    python benchmarks/dram_context.py mnist-pairs                     # a shipped model, or a run folder
    python benchmarks/dram_context.py ~/ram-runs/numbers-dram --images 500

A healthy context gives r2 a first state inside an LSTM state's (-1, 1) and first locations that differ between
images. A saturated one gives the same locations on every image (a spread of 0): the emission network's tanh is flat
there, REINFORCE's gradient through it vanishes, and those glimpses stop learning. Read on the validation images,
one episode along the means.
"""

from __future__ import annotations

import argparse

import torch

import ram
from ram.data import to_float
from ram.tasks import make_task


def probe(net: torch.nn.Module, images: torch.Tensor, glimpses: int = 3) -> dict:
    """images [N, C, H, W] in [0, 1] -> r2's first state's mean absolute value, the first location's pre-activation
    (mean over the images), and the mean and spread (std over the images) of each of the first `glimpses`
    locations."""
    with torch.no_grad():
        context = net.context_net(images) if net.context_net is not None else None
        state = net.core.initial(images.shape[0], images.device, images.dtype, context=context)
        pre = net.emission.mean(state.h2)
        locations = net(images, sample=False).locations  # [N, T, 2]
    return {"r2_first_abs": state.h2.abs().mean().item(), "pre_activation": pre.mean(0).tolist(),
            "locations": [{"mean": locations[:, t].mean(0).tolist(), "spread": locations[:, t].std(0).tolist()}
                          for t in range(min(glimpses, locations.shape[1]))]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model", help="a shipped DRAM's name or a DRAM run folder")
    parser.add_argument("--images", type=int, default=500, help="validation images to read")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    model = ram.load(args.model)
    if model.cfg.model.kind != "dram":
        raise SystemExit(f"{args.model}: a {model.cfg.model.kind} model; this reads a DRAM's context network")
    net = model.module.eval()
    images = to_float(make_task(model.cfg, progress=False).data.val().images[: args.images])
    got = probe(net, images if images.dim() == 4 else images[:, None])
    pair = lambda xy: f"({xy[0]:.2f}, {xy[1]:.2f})"  # noqa: E731
    print(f"{args.model}: r2's first state {got['r2_first_abs']:.3f} in absolute value on average; the first "
          f"location's pre-activation {pair(got['pre_activation'])}")
    for t, where in enumerate(got["locations"], 1):
        print(f"  glimpse {t}: at {pair(where['mean'])} on average, spread {pair(where['spread'])} over "
              f"{images.shape[0]} images")


if __name__ == "__main__":
    main()
