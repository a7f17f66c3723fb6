"""RAM's glimpse loop with a ReLU RNN or LSTM core as one autograd Function: the same maths as `RAM`'s plain loop,
with a hand-written backward through time.

Why: at batch 128 one glimpse is a dozen small ops forward and twice as many backward, and on a CPU the autograd
engine's per-op bookkeeping costs about as much as the matmuls. Here the loop runs without autograd, the backward
through time is three matmuls per glimpse, and every weight gradient is one matmul over all T*B rows (the sum over
time happens inside the matmul, which then runs near the machine's matmul rate).

The Function reads the parameters of `RAM`'s own modules (glimpse_net.what/where/merge, core.linear or core.cell,
policy.mean), so parameter names and shapes, and with them checkpoints, are unchanged. Only the order of
floating-point sums differs from autograd's; tests/test_speed_paths.py checks outputs and gradients against the plain
loop.

Both loops are plain functions of tensors, so `torch.compile` can turn each into one C++ function
(`set_compile`): that removes most of the remaining per-op overhead, at the price of a one-off compile.
"""

from __future__ import annotations

import os
import shutil
import sys
import time
import warnings
from typing import NamedTuple

import torch
from torch.autograd.function import once_differentiable

from . import sensor


class Geometry(NamedTuple):
    glimpses: int
    pad: int
    size: int
    scales: int
    height: int
    width: int


class Weights(NamedTuple):
    """The parameters the loop computes with, by name (built by keyword in `episode_loop`; a gradient of each comes
    back from `backward_loop` in the same structure). G glimpse features, H hidden units, P patch values."""

    what_w: torch.Tensor  # [what, P] glimpse_net.what: the patch's features h_g
    what_b: torch.Tensor  # [what]
    where_w: torch.Tensor  # [where, 2] glimpse_net.where: the location's features h_l
    where_b: torch.Tensor  # [where]
    merge_w: torch.Tensor  # [G, what + where] glimpse_net.merge: g_t from [h_g, h_l]
    merge_b: torch.Tensor  # [G]
    core_w: torch.Tensor  # [H or 4 H, G + H] the core's one Linear on [g_t, h_{t-1}] (`one_linear`)
    core_b: torch.Tensor  # [H or 4 H]
    policy_w: torch.Tensor  # [2, H] the location policy's mean (`fused_weights`)
    policy_b: torch.Tensor  # [2]


class Loop(NamedTuple):
    """The glimpse loop's results, time-major. Heads that do not feed the loop (classifier, baseline) are applied
    by the caller with ordinary autograd."""

    hs: torch.Tensor  # [T, B, hidden] core states h_0 .. h_{T-1} (differentiable)
    means: torch.Tensor  # [T, B, 2] policy means (differentiable w.r.t. the policy only)
    raws: torch.Tensor  # [T, B, 2] unclamped samples (the means when not sampling)
    locations: torch.Tensor  # [T, B, 2] where each glimpse was read: raws clamped to [-1, 1]


def forward_loop(padded, noise, weights: Weights, *, geo: Geometry, dtype: torch.dtype, lstm: bool = False,
                 first=None):
    """The T glimpses. padded [B, C, Hp, Wp] from `sensor.pad_images`; noise [T, B, 2] (std already applied) or None
    to follow the means; first [B, 2] the first glimpse's mean when the image decides it (a constant here: the caller
    puts its gradient back), None for the policy on the zero state. weights.core_w, core_b: the core's one Linear on
    [g_t, h_{t-1}], for the LSTM ([W_ih, W_hh], b_ih + b_hh) giving the four gates i, f, g, o. Returns what the
    backward needs and the caller reads: patches [T, B, P], locations [T, B, 2], merge_in [T, B, what+where]
    ([h_g, h_l] after ReLU), core_in [T, B, glimpse+hidden] ([g_t, h_{t-1}]), hs [T, B, hidden], means [T, B, 2],
    raws [T, B, 2], and for the LSTM gates [T, B, 4 hidden] (after their nonlinearities) and cells [T, B, hidden]
    (empty for the RNN).

    dtype is that of the glimpse network and the core: their weights, the patches and the states are cast to it (bf16
    for mixed precision). The policy, its noise and the locations stay in the inputs' own dtype, and so does the
    multi-scale sensor, whose pyramid runs slower in bf16 on a CPU (a 1-scale read is a plain gather: cast first).
    The LSTM's gates and cell state are computed in at least float32, as autograd's LSTMCell does under autocast."""
    w = weights  # the maths below in the usual letters: g glimpse (what), l location (where), m merge, c core, p policy
    Wg, bg, Wl, bl = w.what_w.to(dtype), w.what_b.to(dtype), w.where_w.to(dtype), w.where_b.to(dtype)
    Wm, bm, Wc, bc = w.merge_w.to(dtype), w.merge_b.to(dtype), w.core_w.to(dtype), w.core_b.to(dtype)
    Wp, bp = w.policy_w, w.policy_b
    if geo.scales == 1:
        padded = padded.to(dtype)
    B = padded.shape[0]
    G = Wm.shape[0]
    H = Wc.shape[1] - G
    cell_dtype = torch.promote_types(dtype, torch.float32)
    rows = sensor.row_offsets(padded, geo.size * 2 ** (geo.scales - 1))
    h = padded.new_zeros(B, H, dtype=dtype)
    c = None
    patches, locs, merge_in, core_in, hs, means, raws, gates, cells = [], [], [], [], [], [], [], [], []
    for t in range(geo.glimpses):
        # The policy reads the state before the glimpse; on the zero state W h + b is b.
        if t == 0:
            mean = torch.tanh(bp.expand(B, 2)) if first is None else first
        else:
            mean = torch.tanh(torch.addmm(bp, h.to(Wp.dtype), Wp.t()))
        raw = mean if noise is None else mean + noise[t]
        loc = raw.clamp(-1.0, 1.0)
        p = sensor.read(padded, geo.pad, loc, size=geo.size, scales=geo.scales, height=geo.height, width=geo.width,
                        rows=rows).view(B, -1).to(dtype)
        m = torch.cat((torch.addmm(bg, p, Wg.t()).relu_(), torch.addmm(bl, loc.to(dtype), Wl.t()).relu_()), dim=1)
        g = torch.addmm(bm, m, Wm.t()).relu_()
        x = torch.cat((g, h), dim=1)
        # h_{-1} = 0: at t = 0 skip its half of the matmul
        z = torch.addmm(bc, g, Wc[:, :G].t()) if t == 0 else torch.addmm(bc, x, Wc.t())
        if lstm:
            i, f, u, o = z.to(cell_dtype).chunk(4, dim=1)
            i, f, u, o = i.sigmoid(), f.sigmoid(), u.tanh(), o.sigmoid()
            c = i * u if c is None else torch.addcmul(i * u, f, c)
            h = (o * c.tanh()).to(dtype)
            gates.append(torch.cat((i, f, u, o), dim=1))
            cells.append(c)
        else:
            h = z.relu_()
        for store, value in ((patches, p), (locs, loc), (merge_in, m), (core_in, x), (hs, h), (means, mean),
                             (raws, raw)):
            store.append(value)
    empty = padded.new_empty(0, dtype=cell_dtype)
    return (*(torch.stack(s) for s in (patches, locs, merge_in, core_in, hs, means, raws)),
            torch.stack(gates) if lstm else empty, torch.stack(cells) if lstm else empty)


def _lstm_cell_backward(d_h, d_c, gates, c, c_prev):
    """Through c_t = f c_{t-1} + i u, h_t = o tanh(c_t): dL/dh_t and the dL/dc_t carried from t+1 (None at the last
    step) give the gradient of the gates' pre-activations [B, 4 hidden] and dL/dc_{t-1}."""
    i, f, u, o = gates.chunk(4, dim=1)
    tanh_c = c.tanh()
    d_h = d_h.to(c.dtype)
    d_c = d_h * o * (1 - tanh_c * tanh_c) + (0 if d_c is None else d_c)
    d_f = d_c * c_prev * f * (1 - f) if c_prev is not None else torch.zeros_like(f)
    dz = torch.cat((d_c * u * i * (1 - i), d_f, d_c * i * (1 - u * u), d_h * tanh_c * o * (1 - o)), dim=1)
    return dz, d_c * f


def backward_loop(patches, locs, merge_in, core_in, hs, means, gates, cells, Wm, Wc, d_hs, d_means, what_size: int,
                  lstm: bool = False):
    """The gradients of `Weights`, as Weights, from dL/dhs [T, B, hidden] and dL/dmeans [T, B, 2], in
    the dtype of `forward_loop`'s saved tensors (patches ...) except the policy's (that of means). The weights Wm, Wc
    are the parameters; d_hs and d_means come in the parameters' dtype."""
    dtype = patches.dtype
    Wm, Wc, d_hs = Wm.to(dtype), Wc.to(dtype), d_hs.to(dtype)
    T, B, P = patches.shape
    G, Hg = Wm.shape[0], what_size
    H = Wc.shape[1] - G
    TB = T * B
    h_prev = core_in[:, :, G:].reshape(TB, H)  # the policy's input, h_{t-1} (zero at t = 0)

    # Policy: mean_t = tanh(W_p h_{t-1} + b_p), h detached, so its gradient stops here.
    d_pre = torch.ops.aten.tanh_backward(d_means, means).reshape(TB, 2)
    dWp = d_pre.t() @ h_prev.to(d_pre.dtype)

    # Backward through time. d_state is dL/dh_t: the loss's own gradient plus what flows back from step t+1.
    threshold = torch.ops.aten.threshold_backward
    Wc_g, Wc_h = Wc[:, :G], Wc[:, G:]
    d_core, d_merge, d_first = [], [], []
    d_state, d_cell = d_hs[T - 1], None
    for t in range(T - 1, -1, -1):
        if lstm:  # dz: through the gates
            dz, d_cell = _lstm_cell_backward(d_state, d_cell, gates[t], cells[t], cells[t - 1] if t > 0 else None)
            dz = dz.to(dtype)
        else:  # through h_t = ReLU(z_t)
            dz = threshold(d_state, hs[t], 0)
        if t > 0:
            d_state = torch.addmm(d_hs[t - 1], dz, Wc_h)
        dy = threshold(dz @ Wc_g, core_in[t, :, :G], 0)  # through g_t = ReLU(y_t)
        d_core.append(dz)
        d_merge.append(dy)
        d_first.append(threshold(dy @ Wm, merge_in[t], 0))  # through [h_g, h_l] = ReLU(...)
    d_core, d_merge, d_first = (torch.stack(d[::-1]).view(TB, -1) for d in (d_core, d_merge, d_first))

    # Every weight gradient is one matmul over all T*B rows.
    dWc = d_core.t() @ core_in.view(TB, -1)
    dWm = d_merge.t() @ merge_in.view(TB, -1)
    dWg = d_first[:, :Hg].t() @ patches.view(TB, P)
    dWl = (locs.view(TB, 2).to(dtype).t() @ d_first[:, Hg:]).t()  # this way round: MKL is 6x faster with 2 rows than 2 columns
    return Weights(what_w=dWg, what_b=d_first[:, :Hg].sum(0), where_w=dWl, where_b=d_first[:, Hg:].sum(0),
                   merge_w=dWm, merge_b=d_merge.sum(0), core_w=dWc, core_b=d_core.sum(0), policy_w=dWp,
                   policy_b=d_pre.sum(0))


class _Compiled:
    """The loops as torch.compile'd functions, with a fallback to the eager ones if compiling fails."""

    enabled = False
    forward = staticmethod(forward_loop)
    backward = staticmethod(backward_loop)
    seconds = 0.0  # time spent in calls that compiled something


def set_compile(enabled: bool) -> bool:
    """Run the loops compiled by torch.compile (inductor) from now on. Returns whether that is possible here.

    Compiling costs ~10-30 s per batch shape on first use (inductor caches it on disk for later processes) and
    saves ~10% of a training step and ~15% of an evaluation at batch 128 on a 2-core CPU.
    """
    if enabled and not compile_available():
        enabled = False
    if enabled and not _Compiled.enabled:
        _Compiled.forward = torch.compile(forward_loop, dynamic=False)
        _Compiled.backward = torch.compile(backward_loop, dynamic=False)
    elif not enabled:
        _Compiled.forward, _Compiled.backward = forward_loop, backward_loop
    _Compiled.enabled = enabled
    return enabled


def compile_available() -> bool:
    """Inductor on a CPU needs a C++ compiler; Windows and Python 3.13t builds are left eager."""
    return sys.platform.startswith("linux") and shutil.which(os.environ.get("CXX", "g++")) is not None


def configure_compile(total_steps: int, device: torch.device) -> bool:
    """The `RAM_COMPILE` setting: 1 compiles, 0 does not, auto (the default) compiles CPU runs of >= 5000 steps,
    where the one-off compile is under 1% of the run."""
    mode = os.environ.get("RAM_COMPILE", "auto").lower()
    want = mode in ("1", "true", "yes") or (mode == "auto" and device.type == "cpu" and total_steps >= 5000)
    return set_compile(want)


def _call(fn_name: str, *args, **kwargs):
    fn = getattr(_Compiled, fn_name)
    if not _Compiled.enabled:
        return fn(*args, **kwargs)
    start = time.perf_counter()
    try:
        with torch.no_grad():
            return fn(*args, **kwargs)
    except Exception as e:  # noqa: BLE001 - any compiler failure: fall back to the eager loops for good
        warnings.warn(f"torch.compile of the RAM loop failed ({type(e).__name__}: {e}); running it eagerly",
                      RuntimeWarning, stacklevel=3)
        set_compile(False)
        return getattr(_Compiled, fn_name)(*args, **kwargs)
    finally:
        _Compiled.seconds += time.perf_counter() - start


class _FusedEpisode(torch.autograd.Function):
    """The loop as one autograd node. Its weights come in as `Weights`' fields in their declared order (autograd
    sees only tensors passed directly to `apply`), and are named again as Weights at once."""

    @staticmethod
    def forward(ctx, padded, noise, first, geo: Geometry, dtype: torch.dtype, lstm: bool, *fields: torch.Tensor):
        weights = Weights._make(fields)
        patches, locs, merge_in, core_in, hs, means, raws, gates, cells = _call(
            "forward", padded, noise, weights, geo=geo, dtype=dtype, lstm=lstm, first=first)
        ctx.save_for_backward(patches, locs, merge_in, core_in, hs, means, gates, cells, weights.merge_w,
                              weights.core_w)
        ctx.what_size = weights.what_w.shape[0]
        ctx.lstm = lstm
        ctx.param_dtypes = [w.dtype for w in weights]
        ctx.mark_non_differentiable(raws, locs)
        return hs.to(weights.core_w.dtype), means, raws, locs

    @staticmethod
    @once_differentiable
    def backward(ctx, d_hs, d_means, _d_raws, _d_locs):
        grads = _call("backward", *ctx.saved_tensors, d_hs.contiguous(), d_means.contiguous(), ctx.what_size,
                      ctx.lstm)
        return (None, None, None, None, None, None, *(g.to(dt) for g, dt in zip(grads, ctx.param_dtypes)))


def loop_dtype(device: torch.device, dtype: torch.dtype) -> torch.dtype:
    """The dtype the loop computes in: bf16 (or fp16) under torch.autocast for the device, else the model's."""
    if torch.is_autocast_enabled(device.type):
        return torch.get_autocast_dtype(device.type)
    return dtype


def episode_loop(model, padded: torch.Tensor, pad: int, *, sample: bool, first: torch.Tensor | None = None) -> Loop:
    """Run the glimpse loop of a RAM with a ReLU RNN or LSTM core and a Gaussian policy. padded from
    `sensor.pad_images`; first [B, 2] the first glimpse's mean when the image decides it (`GaussianPolicy.first_mean`).
    The loop's means[0] is then `first` itself, so its gradient reaches whatever made it."""
    cfg, gn, core = model.cfg, model.glimpse_net, model.core
    Wp, bp, std = model.policy.fused_weights()
    B, _, H, W = padded.shape
    geo = Geometry(glimpses=cfg.glimpses, pad=pad, size=cfg.patch_size, scales=cfg.scales, height=H - 2 * pad,
                   width=W - 2 * pad)
    noise = None
    if sample:  # drawn step by step, as GaussianPolicy draws it, so that both loops see the same samples
        noise = torch.stack([torch.randn(B, 2, dtype=padded.dtype, device=padded.device)
                             for _ in range(cfg.glimpses)]).mul_(std)
    # Under autocast the loop casts exactly what it computes in low precision, so autocast is off inside it.
    dtype = loop_dtype(padded.device, padded.dtype)
    with torch.autocast(padded.device.type, enabled=False):
        Wc, bc = core.one_linear()
        first_mean = None if first is None else first.detach().to(padded.dtype)
        weights = Weights(what_w=gn.what.weight, what_b=gn.what.bias, where_w=gn.where.weight,
                          where_b=gn.where.bias, merge_w=gn.merge.weight, merge_b=gn.merge.bias, core_w=Wc,
                          core_b=bc, policy_w=Wp, policy_b=bp)
        hs, means, raws, locs = _FusedEpisode.apply(
            padded, noise, first_mean, geo, dtype, core.fused_cell == "lstm", *weights)
    if first is not None:  # the loop's first mean was a constant; the one with a graph goes in its place
        means = torch.cat((first[None].to(means.dtype), means[1:]))
    return Loop(hs=hs, means=means, raws=raws, locations=locs)
