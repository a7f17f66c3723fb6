"""The DRAM networks on their own: shapes, "what times where", and the context reaching r2 but never r1."""

import pytest
import torch

from ram.dram_nets import ClassifierHead, ContextNet, ConvGlimpseNet, StackedLSTM
from ram.sensor import glimpse

B, HIDDEN = 5, 32


def nets(seed=0):
    torch.manual_seed(seed)
    return (
        ConvGlimpseNet(glimpse_size=12, scales=2, image_channels=1, channels=(8, 8, 16), out_size=HIDDEN),
        ContextNet(coarse=12, image_channels=1, channels=(4, 4, 8), out_size=HIDDEN),
        StackedLSTM(input_size=HIDDEN, hidden_size=HIDDEN),
        ClassifierHead(in_size=HIDDEN, hidden_size=16, classes=11),
    )


def episode(images, locations, glimpse_net, context_net, core):
    """Three steps at fixed locations: r1 and r2 of each step."""
    state = core.initial(B, images.device, context=context_net(images))
    r1s, r2s = [], []
    for loc in locations:
        g = glimpse_net(glimpse(images, loc, size=12, scales=2).flatten(1), loc)
        r1, r2, state = core(g, state)
        r1s.append(r1)
        r2s.append(r2)
    return torch.stack(r1s), torch.stack(r2s)


def test_shapes_on_glimpses_of_a_100x100_canvas():
    glimpse_net, context_net, core, head = nets()
    images = torch.rand(B, 1, 100, 100)
    locations = torch.rand(3, B, 2) * 2 - 1
    r1, r2 = episode(images, locations, glimpse_net, context_net, core)
    assert r1.shape == r2.shape == (3, B, HIDDEN)
    assert context_net(images).shape == (B, HIDDEN)
    assert head(r1[-1]).shape == (B, 11)


def test_the_glimpse_vector_is_what_times_where():
    glimpse_net, *_ = nets()
    patches, locations = torch.rand(B, 2 * 12 * 12), torch.rand(B, 2)
    what = torch.relu(glimpse_net.what(glimpse_net.convs(patches.view(B, 2, 12, 12))))
    where = torch.relu(glimpse_net.where(locations))
    assert torch.allclose(glimpse_net(patches, locations), what * where)
    with torch.no_grad():  # nowhere to look: nothing passes, whatever is seen
        glimpse_net.where.weight.zero_()
        glimpse_net.where.bias.fill_(-1.0)
    assert (glimpse_net(patches, locations) == 0).all()


def test_the_context_reaches_r2_and_never_r1():
    glimpse_net, context_net, core, head = nets()
    images = torch.rand(B, 1, 100, 100)
    locations = torch.rand(3, B, 2) * 2 - 1  # sampled locations carry no gradient (REINFORCE)
    r1, r2 = episode(images, locations, glimpse_net, context_net, core)
    head(r1[-1]).sum().backward(retain_graph=True)  # the classifier's loss, through every step of r1
    assert all(p.grad is None for p in context_net.parameters())
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in glimpse_net.parameters())
    r2.sum().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in context_net.parameters())


def test_without_a_context_r2_starts_at_zero_and_r1_is_the_same():
    glimpse_net, context_net, core, _ = nets()
    images, locations = torch.rand(B, 1, 60, 60), torch.rand(2, B, 2) - 0.5
    state = core.initial(B, images.device)
    assert all((t == 0).all() for t in state)
    with_context, _ = episode(images, locations, glimpse_net, context_net, core)
    state = core.initial(B, images.device)
    r1s = []
    for loc in locations:
        r1, _, state = core(glimpse_net(glimpse(images, loc, size=12, scales=2).flatten(1), loc), state)
        r1s.append(r1)
    assert torch.allclose(with_context[:2], torch.stack(r1s)[:2])


@pytest.mark.parametrize("make,message", [
    (lambda: ConvGlimpseNet(glimpse_size=8, scales=1, image_channels=1, channels=(4, 4, 4), out_size=8),
     "glimpse_size 8 is too small"),
    (lambda: ContextNet(coarse=6, image_channels=1, channels=(4, 4, 4), out_size=8), "coarse 6 is too small"),
    (lambda: ContextNet(coarse=12, image_channels=1, channels=(4, 4), out_size=8), r"channels \(4, 4\)"),
])
def test_sizes_that_cannot_work_are_named(make, message):
    with pytest.raises(ValueError, match=message):
        make()


def test_a_context_of_the_wrong_size_is_named():
    core = StackedLSTM(input_size=4, hidden_size=8)
    with pytest.raises(ValueError, match=r"context must be \[3, 8\]"):
        core.initial(3, torch.device("cpu"), context=torch.zeros(3, 4))
