"""benchmarks/cost.py's counts: what FlopCounterMode counts, and the two claims the cost table rests on (RAM's FLOPs do
not depend on the canvas, the convnet's grow with it)."""

import dataclasses
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils.flop_counter import FlopCounterMode

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from cost import sensor_flops  # noqa: E402
from ram.cost import count_flops  # noqa: E402

from ram import sensor  # noqa: E402
from ram.config import ConvNetConfig, ModelConfig  # noqa: E402
from ram.models import build_model  # noqa: E402

SMALL = ModelConfig(glimpses=3, patch_size=4, scales=3, what_size=8, where_size=8, glimpse_size=16, hidden=16,
                    image_size=60)


def test_the_counter_counts_two_flops_per_multiply_add_and_not_the_bias():
    layer = nn.Linear(50, 7)
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        layer(torch.rand(3, 50))
    assert counter.get_total_flops() == 3 * 2 * 50 * 7


@pytest.mark.parametrize("core", ["rnn", "lstm"])
def test_ram_flops_are_its_layers_once_a_glimpse_whatever_the_canvas(core):
    gates = 4 if core == "lstm" else 1
    m = dataclasses.replace(SMALL, core=core)
    P, T, H = m.patch_size**2 * m.scales * m.channels, m.glimpses, m.hidden
    # what, where, merge, core on [g, h], policy mean, state baseline, classifier: each once a glimpse in the plain loop
    per_glimpse = 2 * (P * m.what_size + 2 * m.where_size + (m.what_size + m.where_size) * m.glimpse_size
                       + (m.glimpse_size + H) * gates * H + H * 2 + H + H * m.classes)
    # the fused loop skips what multiplies the zero initial state: the core's h-half, the policy, the baseline
    skipped = 2 * (H * gates * H + H * 2 + H)
    for canvas in (28, 60, 100, 200):
        model = build_model(dataclasses.replace(m, image_size=canvas)).eval()
        assert sum(count_flops(model, canvas).values()) == T * per_glimpse
        assert sum(count_flops(model, canvas, fused=True).values()) == T * per_glimpse - skipped


def test_the_convnets_flops_grow_with_the_canvas():
    m = ConvNetConfig(image_size=60)
    flops = [sum(count_flops(build_model(dataclasses.replace(m, image_size=s)).eval(), s).values())
             for s in (60, 100, 200, 400)]
    assert all(b > 3 * a for a, b in zip(flops[1:], flops[2:]))  # doubling the side: about 4x the pixels
    assert flops[0] < flops[1]


class _Arithmetic(TorchDispatchMode):
    """Output elements of the float adds and multiplies on [B, C, h, w] tensors: the pyramid's, not the index
    arithmetic on locations and row offsets."""

    def __init__(self):
        super().__init__()
        self.ops = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        if func.overloadpacket in (torch.ops.aten.add, torch.ops.aten.add_, torch.ops.aten.mul, torch.ops.aten.mul_):
            if out.dim() == 4 and out.is_floating_point():
                self.ops += out.numel()
        return out


@pytest.mark.parametrize("scales", [1, 2, 4])
def test_the_sensor_pyramid_count_is_the_ops_a_read_runs(scales):
    m = dataclasses.replace(SMALL, scales=scales, glimpses=1, image_size=40)
    images = torch.rand(2, 1, 40, 40)
    padded, pad = sensor.pad_images(images, size=m.patch_size, scales=scales, locations_in_range=True)
    with _Arithmetic() as counter:
        sensor.read(padded, pad, torch.zeros(2, 2), size=m.patch_size, scales=scales, height=40, width=40)
    assert counter.ops == 2 * sensor_flops(m)
    assert (sensor_flops(m) > 0) == (scales > 1)


@pytest.mark.slow
def test_the_script_writes_its_table_csv_and_plot(tmp_path):
    subprocess.run([sys.executable, str(ROOT / "benchmarks" / "cost.py"), "--no-pause", "--repeats", "1",
                    "--seconds", "0", "--threads", "1", "--out", str(tmp_path)], check=True, capture_output=True)
    assert (tmp_path / "cost.png").stat().st_size > 0
    table = (tmp_path / "cost.md").read_text()
    assert "mnist-cluttered-100-g8" in table and "mnist-cluttered-100-convnet" in table


def test_the_multi_head_convnets_flops_are_its_convolutions_and_layers():
    """Each 5x5 convolution on the pooled map before it, the fully connected layer and the two kinds of head."""
    from ram.multihead import MultiHeadConfig

    m = MultiHeadConfig(image_size=54, conv_channels=(4, 8), hidden=16, outputs=6, classes=11)
    side, before, expected = 54, 1, 0
    for filters in m.conv_channels:
        expected += 2 * side * side * 25 * before * filters
        side, before = -(-side // 2), filters  # a 2x2 pool of stride 2, rounded up
    expected += 2 * (side * side * before * m.hidden + m.hidden * m.outputs + m.hidden * (m.outputs - 1) * 10)
    model = build_model(m).eval()
    assert sum(count_flops(model, 54).values()) == expected


def test_the_strings_rows_are_counted_from_their_presets():
    from cost import strings_rows

    rows = {r["kind"]: r for r in strings_rows()}
    assert set(rows) == {"dram", "multihead"} and all(r["canvas"] == 54 for r in rows.values())
    assert rows["dram"]["sensor_kflop"] > 0 and rows["multihead"]["sensor_kflop"] == 0
    assert all(r["mflop"] > 0 and r["params"] > 0 for r in rows.values())
