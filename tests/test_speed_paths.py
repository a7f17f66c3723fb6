"""The fast paths compute the same numbers as the plain ones, and the checkpoint layout does not move."""

import pytest
import torch

from ram.config import ConvNetConfig, ModelConfig, TrainConfig
from ram.losses import LossSpec, hybrid
from ram.model import RAM
from ram.models import build_model
from ram.policies import GaussianConfig
from ram.tasks import classification_loss
from ram.train import make_optimizer, train_step

# Release weights are trained with this layout: a speed change must never rename or reshape a parameter.
RNN_LAYOUT = {
    "glimpse_net.what.weight": ("what_size", "pixels"),
    "glimpse_net.what.bias": ("what_size",),
    "glimpse_net.where.weight": ("where_size", 2),
    "glimpse_net.where.bias": ("where_size",),
    "glimpse_net.merge.weight": ("glimpse_size", "what_size+where_size"),
    "glimpse_net.merge.bias": ("glimpse_size",),
    "core.linear.weight": ("hidden", "glimpse_size+hidden"),
    "core.linear.bias": ("hidden",),
    "policy.mean.weight": (2, "hidden"),
    "policy.mean.bias": (2,),
    "baseline.weight": (1, "hidden"),
    "baseline.bias": (1,),
    "classifier.weight": ("classes", "hidden"),
    "classifier.bias": ("classes",),
}
GATED_CELL = {"lstm": 4, "gru": 3}


def _size(cfg: ModelConfig, dim) -> int:
    if isinstance(dim, int):
        return dim
    if dim == "pixels":
        return cfg.scales * cfg.channels * cfg.patch_size**2
    return sum(getattr(cfg, part) for part in dim.split("+"))


@pytest.mark.parametrize("core", ["rnn", "lstm", "gru"])
def test_state_dict_layout_is_frozen(core):
    cfg = ModelConfig(image_size=60, patch_size=12, scales=3, glimpses=2, core=core, what_size=96, where_size=32,
                      glimpse_size=160, hidden=64)
    expected = {k: tuple(_size(cfg, d) for d in dims) for k, dims in RNN_LAYOUT.items() if not k.startswith("core.")}
    if core == "rnn":
        expected["core.linear.weight"] = (cfg.hidden, cfg.glimpse_size + cfg.hidden)
        expected["core.linear.bias"] = (cfg.hidden,)
    else:
        gates = GATED_CELL[core] * cfg.hidden
        expected.update({"core.cell.weight_ih": (gates, cfg.glimpse_size), "core.cell.weight_hh": (gates, cfg.hidden),
                         "core.cell.bias_ih": (gates,), "core.cell.bias_hh": (gates,)})
    state = RAM(cfg).state_dict()
    assert {k: tuple(v.shape) for k, v in state.items()} == expected


def _run(model, images, labels, *, use_fused: bool, sample: bool, seed: int = 1):
    model.fused = use_fused
    torch.manual_seed(seed)
    ep = model(images, sample=sample)
    model.zero_grad(set_to_none=True)
    hybrid(ep, labels).total.backward()
    return ep, {n: p.grad.clone() for n, p in model.named_parameters()}


@pytest.mark.parametrize("core", ["rnn", "lstm"])
@pytest.mark.parametrize("sample", [True, False])
@pytest.mark.parametrize(
    "geometry",
    [dict(image_size=28, patch_size=8, scales=1, glimpses=4),  # the mnist preset's shape
     dict(image_size=60, patch_size=12, scales=3, glimpses=3),  # translated: the pyramid path
     dict(image_size=31, patch_size=5, scales=2, glimpses=2)],  # odd sizes: the avg_pool path
)
def test_fused_episode_matches_plain_loop(geometry, sample, core):
    """Same samples, locations, outputs and gradients as the autograd loop, to float64 rounding."""
    torch.manual_seed(0)
    cfg = ModelConfig(**geometry, what_size=48, where_size=16, glimpse_size=40, hidden=24, core=core)
    model = RAM(cfg).double()
    if core == "rnn":
        with torch.no_grad():  # move the identity-initialised core off its special point
            model.core.linear.weight.add_(0.05 * torch.randn_like(model.core.linear.weight))
    images = torch.rand(9, 1, cfg.image_size, cfg.image_size, dtype=torch.float64)
    labels = torch.randint(0, 10, (9,))
    plain, plain_grads = _run(model, images, labels, use_fused=False, sample=sample)
    fast, fast_grads = _run(model, images, labels, use_fused=True, sample=sample)
    assert _uses_fused(fast.logits)
    for field in plain._fields:
        a, b = getattr(plain, field), getattr(fast, field)
        assert a.shape == b.shape, field
        torch.testing.assert_close(b, a, rtol=1e-12, atol=1e-12, msg=field)
    assert plain_grads.keys() == fast_grads.keys()
    for name, g in plain_grads.items():
        torch.testing.assert_close(fast_grads[name], g, rtol=1e-10, atol=1e-12, msg=name)


def _uses_fused(t: torch.Tensor) -> bool:
    return any("FusedEpisodeBackward" in name for name in _graph_names(t))


def _graph_names(t: torch.Tensor) -> set[str]:
    names, seen, stack = set(), set(), [t.grad_fn]
    while stack:
        fn = stack.pop()
        if fn is None or fn in seen:
            continue
        seen.add(fn)
        names.add(fn.name())
        stack.extend(f for f, _ in fn.next_functions)
    return names


@pytest.mark.parametrize("core", ["rnn", "lstm"])
def test_fused_training_steps_track_the_plain_ones(core):
    """Ten float32 Adam steps of the mnist-shaped model: the fused path stays within rounding of the plain one."""
    cfg = ModelConfig(image_size=28, glimpses=3, hidden=32, what_size=32, where_size=16, glimpse_size=32, core=core)
    images, labels = torch.rand(16, 1, 28, 28), torch.randint(0, 10, (16,))
    weights = []
    for use_fused in (False, True):
        torch.manual_seed(0)
        model = RAM(cfg)
        model.fused = use_fused
        optimizer = make_optimizer(model, TrainConfig(lr=1e-3))
        for _ in range(10):
            train_step(model, optimizer, lambda: classification_loss(model, images, labels, LossSpec()),
                       TrainConfig())
        weights.append(model.state_dict())
    for name, w in weights[0].items():
        torch.testing.assert_close(weights[1][name], w, rtol=1e-4, atol=1e-5, msg=name)


@pytest.mark.filterwarnings("ignore:Anomaly Detection has been enabled")
def test_plain_loop_is_used_where_the_fused_one_does_not_apply():
    torch.manual_seed(0)
    images = torch.rand(3, 1, 28, 28)
    gru = build_model(ModelConfig(core="gru", glimpses=2))
    assert not _uses_fused(gru(images).logits)
    rnn = build_model(ModelConfig(glimpses=2))
    with torch.autograd.detect_anomaly():  # anomaly mode must name the op that made a NaN, so no fused Function
        assert not _uses_fused(rnn(images).logits)
    assert _uses_fused(rnn(images).logits)
    random = build_model(ModelConfig(kind="random-glimpses", glimpses=2))
    assert not _uses_fused(random(images).logits)


def test_fused_eval_needs_no_graph():
    model = build_model(ModelConfig(glimpses=2)).eval()
    with torch.no_grad():
        ep = model(torch.rand(4, 1, 28, 28), sample=False)
    assert ep.logits.grad_fn is None
    assert torch.equal(ep.locations, ep.means.clamp(-1, 1))


@pytest.mark.slow
def test_compiled_loops_match_the_eager_ones():
    """torch.compile'd loops (RAM_COMPILE=1) give the eager fused numbers, to float32 rounding. ~30 s of compiling."""
    from ram import fused

    if not fused.compile_available():
        pytest.skip("no C++ compiler for inductor")
    cfg = ModelConfig(image_size=60, patch_size=12, scales=3, glimpses=2, hidden=32, what_size=32, where_size=16,
                      glimpse_size=32)
    torch.manual_seed(0)
    model = RAM(cfg)
    images, labels = torch.rand(8, 1, 60, 60), torch.randint(0, 10, (8,))
    try:
        results = []
        for compiled in (False, True):
            assert fused.set_compile(compiled) == compiled
            results.append(_run(model, images, labels, use_fused=True, sample=True))
    finally:
        fused.set_compile(False)
    (eager, eager_grads), (comp, comp_grads) = results
    for field in eager._fields:
        torch.testing.assert_close(getattr(comp, field), getattr(eager, field), rtol=1e-5, atol=1e-6, msg=field)
    for name, g in eager_grads.items():
        torch.testing.assert_close(comp_grads[name], g, rtol=1e-4, atol=1e-6, msg=name)


def _rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a.double() - b.double()).norm() / b.double().norm()).item()


@pytest.mark.parametrize("core", ["rnn", "lstm"])
def test_bf16_loop_computes_in_bf16_and_stays_near_float32(core):
    """Under bf16 autocast the fused loop's glimpse network and core run in bfloat16: outputs and gradients move off
    the float32 ones by bf16 rounding (not 0, not more), while the policy means and all gradients stay float32."""
    torch.manual_seed(0)
    cfg = ModelConfig(image_size=60, patch_size=12, scales=3, glimpses=4, hidden=64, what_size=48, where_size=16,
                      glimpse_size=64, core=core)
    model = RAM(cfg)
    images, labels = torch.rand(32, 1, 60, 60), torch.randint(0, 10, (32,))
    ref, ref_grads = _run(model, images, labels, use_fused=True, sample=False)
    torch.manual_seed(1)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        ep = model(images, sample=False)
    assert _uses_fused(ep.logits)
    assert ep.means.dtype == ep.logits.dtype == ep.baselines.dtype == torch.float32  # heads and policy: float32
    model.zero_grad(set_to_none=True)
    hybrid(type(ep)(*(t.float() for t in ep)), labels).total.backward()
    err = _rel_err(ep.logits.float(), ref.logits)
    assert 1e-4 < err < 3e-2, err  # bf16 has 8 significant bits: ~0.4% per rounding
    for name, p in model.named_parameters():
        assert p.grad.dtype == torch.float32, name
        if name.startswith("policy."):  # following the means, REINFORCE has nothing to push
            assert not p.grad.any() and not ref_grads[name].any()
        else:  # measured 0.001-0.13: rounding flips a few ReLUs, and where.weight's sum cancels
            assert _rel_err(p.grad, ref_grads[name]) < 0.25, name


def test_bf16_training_steps_track_float32(tmp_path):
    """Twenty Adam steps with precision=bf16 land near the float32 steps, for the fused loop (RNN and LSTM cores) and
    the autocast path (convnet), with float32 weights throughout."""
    torch.manual_seed(2)
    images, labels = torch.rand(32, 1, 28, 28), torch.randint(0, 10, (32,))
    for model_cfg in (ModelConfig(glimpses=3, hidden=32, what_size=32, where_size=16, glimpse_size=32),
                      ModelConfig(glimpses=3, hidden=32, core="lstm"), ConvNetConfig()):
        weights = {}
        for precision in ("fp32", "bf16"):
            torch.manual_seed(0)
            model = build_model(model_cfg)
            start = {k: v.clone() for k, v in model.state_dict().items()}
            tc = TrainConfig(lr=1e-3, precision=precision)
            optimizer = make_optimizer(model, tc)
            for _ in range(20):
                losses, _ = train_step(model, optimizer, lambda: classification_loss(
                    model, images, labels, LossSpec(), precision=tc.precision), tc)
            assert torch.isfinite(losses.total)
            weights[precision] = model.state_dict()
        moved = torch.cat([(w - start[k]).flatten() for k, w in weights["fp32"].items()])
        apart = torch.cat([(weights["bf16"][k] - w).flatten() for k, w in weights["fp32"].items()])
        assert all(w.dtype == torch.float32 for w in weights["bf16"].values())
        # Measured 0.09 (RNN), 0.18 (LSTM), 0.09 (convnet); a wrong gradient lands near 1 or above.
        assert apart.norm() < 0.5 * moved.norm(), (model_cfg.kind, model_cfg.core)


def test_bf16_on_a_cpu_without_native_bf16_is_warned_about_before_any_work(tmp_path, monkeypatch):
    """A CPU with no bfloat16 instructions emulates bf16 many times slower than fp32 (15-21x measured on an AVX2 CPU):
    fit() says so, naming the setting, before it touches the run folder; fp32, or a CPU with bf16, passes silently."""
    import warnings

    from ram import speed, train
    from ram.config import RunConfig

    not_a_folder = tmp_path / "file"
    not_a_folder.write_text("")
    cfg = RunConfig(train=TrainConfig(precision="bf16"))
    monkeypatch.setattr(speed.torch.ops.mkldnn, "_is_mkldnn_bf16_supported", lambda: False)
    with pytest.warns(RuntimeWarning, match="precision = 'bf16'.*--precision fp32"), pytest.raises(Exception,
                                                                                                  match="not a folder"):
        train.fit(cfg, not_a_folder, progress=False)
    for precision, native in (("fp32", False), ("bf16", True)):
        monkeypatch.setattr(speed.torch.ops.mkldnn, "_is_mkldnn_bf16_supported", lambda native=native: native)
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            with pytest.raises(Exception, match="not a folder"):
                train.fit(RunConfig(train=TrainConfig(precision=precision)), not_a_folder, progress=False)


@pytest.mark.parametrize("sample", [True, False])
def test_fused_episode_matches_plain_loop_with_the_first_glimpse_from_the_image(sample):
    """The context network's first mean goes into the fused loop as a constant; its gradient is put back outside."""
    torch.manual_seed(0)
    cfg = ModelConfig(image_size=31, patch_size=5, scales=2, glimpses=3, what_size=48, where_size=16, glimpse_size=40,
                      hidden=24, core="lstm")
    model = RAM(cfg, GaussianConfig(first_glimpse="context", init_downsample=3, policy_hidden=20)).double()
    with torch.no_grad():  # off the zero start, so that the image moves the first glimpse
        model.policy.context[-1].weight.normal_(0, 0.3)
    images = torch.rand(9, 1, cfg.image_size, cfg.image_size, dtype=torch.float64)
    labels = torch.randint(0, 10, (9,))
    plain, plain_grads = _run(model, images, labels, use_fused=False, sample=sample)
    fast, fast_grads = _run(model, images, labels, use_fused=True, sample=sample)
    assert _uses_fused(fast.logits)
    assert plain.means[:, 0].std(0).min() > 0.01  # the first location differs from image to image
    for field in plain._fields:
        torch.testing.assert_close(getattr(fast, field), getattr(plain, field), rtol=1e-12, atol=1e-12, msg=field)
    assert plain_grads.keys() == fast_grads.keys()
    if sample:  # reinforced through the first location (along the means the log-probability has no slope)
        assert plain_grads["policy.context.2.weight"].abs().sum() > 0
    for name, g in plain_grads.items():
        torch.testing.assert_close(fast_grads[name], g, rtol=1e-10, atol=1e-12, msg=name)
