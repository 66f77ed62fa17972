"""Models: shapes, parameter counts, training on every backend, pruning contract, TTFS, input errors.

Small configurations and a fixed batch of 16 real MNIST test images keep this file fast.
"""

from __future__ import annotations

import gzip
import math

import numpy as np
import pytest
import torch
from torch import nn

from lit_snn.models import (
    ANNMLP,
    APEXSNN,
    DASNN,
    MODELS,
    NEXUSSNN,
    SNNMLP,
    VGGANN,
    BaselineLIF,
    ChebyshevActivation,
    ChebyshevKANLinear,
    DendriticLayer,
    SNNModel,
    SpikingKAN,
    SpikingVGG,
    TemporalAttention,
    build_model,
)
from lit_snn.models.layers import benchmark_bn, chebyshev_basis
from lit_snn.neurons import BACKENDS, SpikingNeuron

SNN_NAMES = ["baseline_lif", "dasnn", "spiking_kan", "nexus", "apex", "snn_mlp", "spiking_vgg"]
ANN_NAMES = ["ann_mlp", "vgg_ann"]
CONV = dict(input_shape=(1, 28, 28), channels=(4, "M", 8, "M"), input_pooling=2)
SMALL = {
    "baseline_lif": dict(hidden_sizes=(32, 16)),
    "dasnn": dict(hidden_size=32, num_neurons=16),
    "spiking_kan": dict(hidden_sizes=(24, 16)),
    "nexus": dict(hidden_sizes=(32, 16), dropout=0.0),
    "apex": dict(hidden_sizes=(32, 24, 16), dropout=0.0),
    "ann_mlp": dict(hidden_sizes=(32, 16)),
    "snn_mlp": dict(hidden_sizes=(32, 16)),
    "spiking_vgg": CONV,
    "vgg_ann": CONV,
}
# prunable group -> its neuron module, per model (small configurations above)
GROUP_NEURONS = {
    "baseline_lif": {"hidden.0": "hidden.0.neuron", "hidden.1": "hidden.1.neuron"},
    "snn_mlp": {"hidden.0": "hidden.0.neuron", "hidden.1": "hidden.1.neuron"},
    "dasnn": {"encoder": "encoder.neuron", "soma": "soma"},
    "spiking_kan": {"kan": "kan_neuron", "hidden.0": "hidden.0.neuron"},
    "nexus": {"encoder": "encoder.neuron", "hidden": "neuron"},
    "apex": {"layer2": "layer2.neuron", "layer3": "layer3.neuron"},
    "spiking_vgg": {"features.0": "features.2", "features.4": "features.6"},
}


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """These tensors are tiny: intra-op threads only add synchronisation (seconds per op on a loaded 2-core box)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def mnist16(data_dir):
    """The first 16 MNIST test images (normalised, flattened) and labels."""
    with gzip.open(data_dir / "mnist" / "t10k-images-idx3-ubyte.gz") as f:
        images = np.frombuffer(f.read(16 + 16 * 784), np.uint8, offset=16).reshape(16, 784)
    with gzip.open(data_dir / "mnist" / "t10k-labels-idx1-ubyte.gz") as f:
        labels = np.frombuffer(f.read(8 + 16), np.uint8, offset=8)
    x = (torch.tensor(images, dtype=torch.float32) / 255 - 0.1307) / 0.3081
    return x, torch.tensor(labels, dtype=torch.long)


def small(name: str, backend: str = "custom") -> SNNModel:
    torch.manual_seed(0)
    return build_model(name, backend=backend, **SMALL[name])


def batch(model: SNNModel, mnist16, num_steps: int = 4) -> torch.Tensor:
    """Direct coding: the image at every step, ``[T, 16, *input_shape]``."""
    x = mnist16[0].reshape(16, *model.input_shape)
    return x.unsqueeze(0).expand(num_steps, *x.shape).contiguous()


def mean_logits(out: torch.Tensor) -> torch.Tensor:
    return out.mean(0) if out.dim() == 3 else out


def calibrate_bn(model: nn.Module, x: torch.Tensor) -> None:
    """Set every BatchNorm's running statistics to the statistics of ``x``'s batch (so eval mode sees activity)."""
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    for bn in norms:
        bn.reset_running_stats()
        bn.momentum = None  # cumulative average: after one batch, exactly that batch's statistics
    mode = model.training
    with torch.no_grad():
        model.train()(x)
    model.train(mode)
    for bn in norms:
        bn.momentum = 0.1


def record_spikes(model: nn.Module) -> tuple[dict[str, torch.Tensor], list]:
    spikes: dict[str, torch.Tensor] = {}
    hooks = [
        m.register_forward_hook(lambda _m, _i, out, n=n: spikes.__setitem__(n, out.detach()))
        for n, m in model.neuron_layers().items()
    ]
    return spikes, hooks


# -- registry -------------------------------------------------------------------------------------------------
def test_registry_names_and_unknown_name():
    assert set(MODELS) == set(SNN_NAMES + ANN_NAMES)
    assert all(issubclass(cls, SNNModel) for cls in MODELS.values())
    assert type(build_model("baseline_lif")) is BaselineLIF
    with pytest.raises(ValueError, match=r"unknown model 'resnet'.*baseline_lif"):
        build_model("resnet")


def test_unknown_backend_is_rejected():
    with pytest.raises(ValueError, match="backend must be one of"):
        BaselineLIF(backend="norse")
    with pytest.raises(ValueError, match="backend must be one of"):
        ANNMLP(backend="norse")


# -- parameter counts -----------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("cls", "documented", "benchmark"),
    [
        (BaselineLIF, 537_354, 537_354),  # Linear 784-512-256-10 + 2 BN, as measured by the benchmark
        (DASNN, 671_754, 668_430),
        (SpikingKAN, 1_198_378, 1_192_715),
        (NEXUSSNN, 670_999, 671_001),
        (APEXSNN, 1_611_239, 1_599_237),
        (ANNMLP, 269_322, 269_322),  # the blog's table
        (SNNMLP, 269_834, 269_834),
    ],
)
def test_parameter_counts(cls, documented, benchmark):
    count = sum(p.numel() for p in cls().parameters())
    assert count == documented
    assert abs(count - benchmark) / benchmark < 0.01


def test_baseline_parameter_count_by_hand():
    by_hand = (784 * 512 + 512) + 2 * 512 + (512 * 256 + 256) + 2 * 256 + (256 * 10 + 10)
    assert by_hand == 537_354 == sum(p.numel() for p in BaselineLIF().parameters())


# -- shapes and declarations ----------------------------------------------------------------------------------
@pytest.mark.parametrize("name", SNN_NAMES + ANN_NAMES)
def test_output_shape_and_declarations(name, mnist16):
    model = small(name)
    out = model(batch(model, mnist16, num_steps=3))
    per_step = name in ("baseline_lif", "dasnn", "spiking_kan", "snn_mlp", "spiking_vgg")
    assert out.shape == ((3, 16, 10) if per_step else (16, 10))
    neurons = model.neuron_layers()
    assert all(isinstance(m, SpikingNeuron) for m in neurons.values())
    assert (len(neurons) > 0) == (name in SNN_NAMES)
    synapses = model.synaptic_layers()
    assert synapses and all(isinstance(m, (nn.Linear, nn.Conv2d)) for m in synapses.values())
    groups = model.prunable_layers()
    assert groups and len({g.name for g in groups}) == len(groups)


def test_models_hold_no_state_between_calls(mnist16):
    """No membrane in buffers or the state_dict: two different batches in a row give independent answers."""
    for name in SNN_NAMES:
        model = small(name).eval()
        x = batch(model, mnist16)
        first = model(x[:, :4])
        model(x[:, 4:12])
        torch.testing.assert_close(model(x[:, :4]), first, rtol=0, atol=0)
        assert not any("mem" in k or k.endswith(".v") for k in model.state_dict()), name


@pytest.mark.parametrize("name", SNN_NAMES)
def test_checkpoint_moves_between_backends(name):
    """Only learnable hyper-parameters are in the state_dict, under the same names on every backend."""
    state = small(name, "custom").state_dict()
    for backend in ("snntorch", "spikingjelly"):
        other = small(name, backend)
        other.load_state_dict(state, strict=True)  # raises on missing or unexpected keys


# -- bad input ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", SNN_NAMES + ANN_NAMES)
def test_bad_input_raises_clear_errors(name, mnist16):
    model = small(name)
    x = batch(model, mnist16, num_steps=2)
    shape = tuple(model.input_shape)
    with pytest.raises(ValueError, match=r"time-first"):
        model(x[0])  # [B, *input_shape]: no time dimension
    wrong = torch.zeros(2, 3, *(d + 1 for d in shape))
    with pytest.raises(ValueError, match=r"input_shape=" + "\\" + str(shape)[:-1]) as err:
        model(wrong)
    assert str(tuple(wrong.shape[2:])) in str(err.value)  # names the expected and the given shape
    with pytest.raises(ValueError, match="floating-point"):
        model(x.long())
    with pytest.raises(TypeError, match="expects a tensor"):
        model(x.numpy())


def test_bad_constructor_arguments():
    with pytest.raises(ValueError, match="hidden_sizes"):
        BaselineLIF(hidden_sizes=())
    with pytest.raises(ValueError, match="num_classes"):
        BaselineLIF(num_classes=0)
    with pytest.raises(ValueError, match="divisible by num_branches"):
        DASNN(hidden_size=30, num_branches=4)
    with pytest.raises(ValueError, match="three entries"):
        APEXSNN(hidden_sizes=(10, 10))
    with pytest.raises(ValueError, match="readout_time_scales"):
        APEXSNN(readout_time_scales=(1.0, -2.0))
    with pytest.raises(ValueError, match="too small for 2 max-pools"):
        SpikingVGG(input_shape=(2, 3, 3), channels=(4, "M", 4, "M"))
    with pytest.raises(ValueError, match="channels must be"):
        VGGANN(channels=("M",))
    with pytest.raises(ValueError, match="time_reduction"):
        ANNMLP(time_reduction="max")


# -- training on every backend --------------------------------------------------------------------------------
@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("name", SNN_NAMES)
def test_snn_trains_on_every_backend(name, backend, mnist16):
    """A fixed batch, a few Adam steps: the loss falls, and every neuron module is of the chosen backend."""
    model = small(name, backend)
    assert {m.backend for m in model.neuron_layers().values()} == {backend}
    _assert_loss_falls(model, mnist16)


@pytest.mark.parametrize("name", ANN_NAMES)
def test_ann_trains(name, mnist16):
    _assert_loss_falls(small(name), mnist16)


def _assert_loss_falls(model: SNNModel, mnist16, steps: int = 10) -> None:
    x, y = batch(model, mnist16), mnist16[1]
    opt = torch.optim.Adam(model.parameters(), lr=3e-2)
    losses = []
    for _ in range(steps):
        loss = nn.functional.cross_entropy(mean_logits(model(x)), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert all(math.isfinite(v) for v in losses)
    assert losses[-1] < 0.75 * losses[0], losses  # measured: 0.17-0.64 on every backend


# -- evaluation is deterministic ------------------------------------------------------------------------------
@pytest.mark.parametrize("name", SNN_NAMES + ANN_NAMES)
def test_eval_forward_is_deterministic(name, mnist16):
    model = small(name).train()
    model(batch(model, mnist16))  # move BN running statistics away from their initial values
    model.eval()
    x = batch(model, mnist16)
    torch.testing.assert_close(model(x), model(x), rtol=0, atol=0)


# -- pruning contract -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", list(GROUP_NEURONS))
def test_zeroing_prunable_rows_silences_exactly_those_neurons(name, mnist16):
    model = small(name)
    x, y = batch(model, mnist16), mnist16[1]
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(2):  # non-trivial weights and BN statistics
        loss = nn.functional.cross_entropy(mean_logits(model(x)), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    groups = {g.name: g for g in model.prunable_layers()}
    assert set(groups) == set(GROUP_NEURONS[name])
    pruned = {}
    with torch.no_grad():
        for g in groups.values():
            rows = torch.arange(0, g.num_neurons, 2)  # every other neuron
            pruned[g.name] = rows
            for module, names in g.inputs:
                for p in names:
                    getattr(module, p)[rows] = 0.0
    calibrate_bn(model, x)
    spikes, hooks = record_spikes(model)
    for mode in ("train", "eval"):
        getattr(model, mode)()
        with torch.no_grad():
            model(x)
        for group, neuron in GROUP_NEURONS[name].items():
            s = spikes[neuron].transpose(0, 2)  # neuron (or channel) axis first
            assert s[pruned[group]].sum().item() == 0.0, (mode, group)
            alive = torch.ones(s.shape[0], dtype=torch.bool)
            alive[pruned[group]] = False
            assert s[alive].sum().item() > 0, (mode, group)  # the check is not vacuous
    for h in hooks:
        h.remove()


def test_ann_prunable_rows_zero_the_hidden_units(mnist16):
    model = small("ann_mlp")
    x = batch(model, mnist16)
    with torch.no_grad():
        for g in model.prunable_layers():
            for module, names in g.inputs:
                for p in names:
                    getattr(module, p)[:3] = 0.0
        a = x.mean(0)
        for fc in model.hidden:
            a = torch.relu(fc(a))
            assert a[:, :3].abs().sum() == 0


# -- APEX: fire once, importance, readout ---------------------------------------------------------------------
@pytest.mark.parametrize("backend", BACKENDS)
def test_apex_neurons_fire_at_most_once(backend, mnist16):
    model = small("apex", backend)
    x = batch(model, mnist16, num_steps=8)
    calibrate_bn(model, x)
    spikes, hooks = record_spikes(model)
    for mode in ("train", "eval"):
        getattr(model, mode)()
        model(x)
        assert len(spikes) == 3
        for name, s in spikes.items():
            counts = s.sum(0)  # spikes per neuron and sample
            assert counts.max().item() == 1.0, (mode, name)  # some fire, none twice
            assert set(s.unique().tolist()) <= {0.0, 1.0}
    for h in hooks:
        h.remove()


def test_apex_importance_trains_and_gates_the_forward(mnist16):
    model = small("apex")
    x, y = batch(model, mnist16), mnist16[1]
    groups = model.prunable_layers()
    assert [g.importance is not None for g in groups] == [True, True]
    nn.functional.cross_entropy(model(x), y).backward()
    for g in groups:
        assert isinstance(g.importance, nn.Parameter) and g.importance.grad is not None
        assert g.importance.grad.abs().sum() > 0, g.name
    calibrate_bn(model, x)
    model.eval()
    before = model(x)
    assert model.spikes(x)[2].sum() > 0
    with torch.no_grad():
        model.layer3.importance.fill_(-30.0)  # gain 2*sigmoid(-30) ~ 2e-13: layer 3 silent
    after_spikes = model.spikes(x)[2]
    assert after_spikes.sum() == 0
    assert not torch.equal(before, model(x))


def test_apex_readout_weighs_earlier_spikes_more():
    model = APEXSNN(hidden_sizes=(8, 8, 8))
    kappa = model.readout_kernels(4)
    # softmax of zeros: a = 1/9 per (layer, time scale); kappa(t) = (e^-t + e^-t/2 + e^-t/4) / 9
    by_hand = [sum(math.exp(-t / tau) for tau in (1.0, 2.0, 4.0)) / 9 for t in range(4)]
    torch.testing.assert_close(kappa, torch.tensor([by_hand] * 3))
    with torch.no_grad():
        model.ensemble_logits.normal_()
    kappa = model.readout_kernels(6)
    assert (kappa[:, 1:] < kappa[:, :-1]).all()


def test_apex_output_is_the_time_weighted_ensemble(mnist16):
    model = small("apex").eval()
    x = batch(model, mnist16, num_steps=3)
    with torch.no_grad():
        model.ensemble_logits.normal_()
        spikes = model.spikes(x)
        a = torch.softmax(model.ensemble_logits.flatten(), 0).view(3, 3)
        expected = 0
        for layer, (head, s) in enumerate(zip(model.heads, spikes, strict=True)):
            feature = sum(
                a[layer, k] * math.exp(-t / tau) * s[t] for k, tau in enumerate((1.0, 2.0, 4.0)) for t in range(3)
            )
            expected = expected + head(feature)
        torch.testing.assert_close(model(x), expected)


# -- building blocks against independent computations ---------------------------------------------------------
def test_chebyshev_basis_is_cos_k_arccos():
    z = torch.linspace(-1, 1, 11, dtype=torch.float64)
    basis = chebyshev_basis(z, 4)
    expected = torch.stack([torch.cos(k * torch.arccos(z)) for k in range(5)], -1)
    torch.testing.assert_close(basis, expected)


def test_chebyshev_activation_matches_numpy_chebval():
    act = ChebyshevActivation(3, degree=4, input_scale=0.3, linear_init=0.25).double()
    with torch.no_grad():
        act.coeffs.normal_()
        act.gain.uniform_(0.5, 2.0)
    x = torch.randn(5, 3, dtype=torch.float64) * 3
    z = np.tanh(0.3 * x.numpy())
    coeffs, gain = act.coeffs.detach().numpy(), act.gain.detach().numpy()
    series = [gain[j] * np.polynomial.chebyshev.chebval(z[:, j], coeffs[j]) for j in range(3)]
    expected = np.stack(series, -1) + 0.25 * x.numpy()
    np.testing.assert_allclose(act(x).detach().numpy(), expected, rtol=1e-12)


def test_chebyshev_kan_linear_is_a_sum_of_edge_series():
    kan = ChebyshevKANLinear(3, 2, degree=4, input_scale=2.0).double()
    x = torch.randn(6, 3, dtype=torch.float64)
    z = np.tanh(x.numpy() / 2.0)
    w = kan.linear.weight.detach().numpy().reshape(2, 3, 4)  # [out, in, k-1]
    expected = np.zeros((6, 2)) + kan.linear.bias.detach().numpy()
    for o in range(2):
        for i in range(3):
            expected[:, o] += np.polynomial.chebyshev.chebval(z[:, i], np.concatenate([[0.0], w[o, i]]))
    np.testing.assert_allclose(kan(x).detach().numpy(), expected, rtol=1e-12)


def test_dendritic_layer_matches_a_per_neuron_loop():
    torch.manual_seed(1)
    layer = DendriticLayer(in_features=4, num_neurons=3, num_branches=2, tau_range=(1.5, 8.0)).double().eval()
    with torch.no_grad():
        layer.branch_weights.normal_()
        for bn in layer.norms:
            bn.running_mean.normal_()
            bn.running_var.uniform_(0.5, 2)
    s = (torch.rand(5, 2, 4) < 0.5).double()
    out = layer(s)
    betas = (1 - 1 / 1.5, 1 - 1 / 8.0)
    for b_idx in range(2):
        for j in range(3):
            got = out[:, b_idx, j]
            expected = torch.zeros(5, dtype=torch.float64)
            for b, beta in enumerate(betas):
                fc, gate, bn = layer.branches[b], layer.gates[b], layer.norms[b]
                d = 0.0
                for t in range(5):
                    xs = s[t, b_idx, 2 * b : 2 * b + 2]
                    f = (fc.weight[j] @ xs - bn.running_mean[j]) / torch.sqrt(bn.running_var[j] + bn.eps)
                    f = f * bn.weight[j] + bn.bias[j]
                    g = torch.sigmoid(gate.weight[j] @ xs + gate.bias[j])
                    d = beta * d + (1 - beta) * f * g
                    expected[t] += layer.branch_weights[j, b] * d
            torch.testing.assert_close(got, expected.detach())


def test_time_batched_batchnorm_uses_all_t_times_b_rows(mnist16):
    model = small("baseline_lif").train()
    x = batch(model, mnist16, num_steps=3) + torch.randn(3, 16, 784)  # different rows at each step
    layer = model.hidden[0]
    rows = layer.fc(x.flatten(0, 1))  # [T*B, N]
    mean, var = rows.mean(0), rows.var(0, unbiased=False)
    expected = (rows - mean) / torch.sqrt(var + layer.norm.eps) * layer.norm.weight + layer.norm.bias
    torch.testing.assert_close(layer.current(x), expected.unflatten(0, (3, 16)))
    assert benchmark_bn(4, tau=2.0).weight.tolist() == [0.5] * 4  # 1 - beta, beta = 1 - 1/tau


def test_temporal_attention_by_hand():
    att = TemporalAttention(2)
    with torch.no_grad():
        att.score.weight.copy_(torch.tensor([[1.0, 0.0]]))
        att.score.bias.zero_()
    logits = torch.tensor([[[0.0, 1.0]], [[math.log(3.0), 2.0]]])  # T=2, B=1, C=2
    # scores 0 and log 3 -> weights 1/4 and 3/4
    torch.testing.assert_close(att(logits), torch.tensor([[0.75 * math.log(3.0), 0.25 + 1.5]]))


def test_ann_mlp_reduces_time_then_runs_once(mnist16):
    model = small("ann_mlp")
    x = batch(model, mnist16) + torch.rand(4, 16, 784)
    a = x.mean(0)
    for fc in model.hidden:
        a = torch.relu(fc(a))
    torch.testing.assert_close(model(x), model.readout(a))
    first = ANNMLP(hidden_sizes=(32, 16), time_reduction="first")
    first.load_state_dict(model.state_dict())
    torch.testing.assert_close(first(x), model(x[:1]))


def test_spiking_vgg_convs_receive_spikes(mnist16):
    model = small("spiking_vgg")
    inputs = []
    hooks = [m.register_forward_pre_hook(lambda _m, a: inputs.append(a[0])) for m in model.synaptic_layers().values()]
    model(batch(model, mnist16))
    for h in hooks:
        h.remove()
    assert len(inputs) == 3  # conv, conv, readout
    for a in inputs[1:]:
        assert set(a.unique().tolist()) <= {0.0, 1.0}


# -- time-constant input computed once ---------------------------------------------------------------------
def test_time_first_linear_computes_a_constant_input_once_with_equal_results_and_gradients():
    from lit_snn.encoders import make_encoder
    from lit_snn.models import TimeFirstLinear

    torch.manual_seed(0)
    fc = TimeFirstLinear(6, 4)
    x = torch.randn(3, 6, dtype=torch.float64, requires_grad=True)
    fc = fc.double()
    static = make_encoder("direct", 5)(x)  # stride-0 view over T
    dense = static.contiguous()            # the same values, materialised: the ordinary path
    calls = []
    handle = fc.register_forward_hook(lambda m, i, o: calls.append(i[0].shape))
    out_static, out_dense = fc(static), fc(dense)
    handle.remove()
    assert out_static.stride(0) == 0  # computed once, expanded
    assert calls == [(5, 3, 6), (5, 3, 6)]  # hooks (the metrics' probe) see every time step
    torch.testing.assert_close(out_static, out_dense, rtol=0, atol=1e-12)
    w = torch.randn(5, 3, 4, dtype=torch.float64)
    g_static = torch.autograd.grad((out_static * w).sum(), (x, fc.weight, fc.bias))
    g_dense = torch.autograd.grad((out_dense * w).sum(), (x, fc.weight, fc.bias))
    for a, b in zip(g_static, g_dense, strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-12)


@pytest.mark.parametrize("momentum", [0.1, None])
def test_spiking_linear_normalises_a_constant_input_once_as_batch_norm_on_every_row(momentum):
    """Direct coding: BatchNorm runs on the B distinct rows, not T*B copies. Spikes, gradients and the running
    statistics (BatchNorm's unbiased variance counts all T*B rows) equal the ordinary path's, over several
    training steps and in evaluation."""
    from lit_snn.encoders import make_encoder
    from lit_snn.models import SpikingLinear
    from lit_snn.neurons import make_neuron

    def layer():
        torch.manual_seed(0)
        return SpikingLinear(6, 5, make_neuron("lif", "custom", threshold=0.5),
                             nn.BatchNorm1d(5, momentum=momentum)).double()

    once, every = layer(), layer()
    encode = make_encoder("direct", 4)
    for step in range(3):
        x = torch.randn(7, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(step))
        static = encode(x)  # stride-0 view over T
        current = once.current(static)
        assert current.stride(0) == 0  # normalised once, expanded
        torch.testing.assert_close(current, every.current(static.contiguous()), rtol=0, atol=1e-12)
        s_once, s_every = once(static), every(static.contiguous())
        assert torch.equal(s_once, s_every) and 0 < s_once.mean() < 1
        w = torch.randn(s_once.shape, dtype=torch.float64)
        g_once = torch.autograd.grad((s_once * w).sum(), list(once.parameters()))
        g_every = torch.autograd.grad((s_every * w).sum(), list(every.parameters()))
        for a, b in zip(g_once, g_every, strict=True):
            torch.testing.assert_close(a, b, rtol=0, atol=1e-12)
    for name in ("running_mean", "running_var", "num_batches_tracked"):
        torch.testing.assert_close(getattr(once.norm, name), getattr(every.norm, name), rtol=0, atol=1e-12)
    one = encode(torch.randn(1, 6, dtype=torch.float64))  # a single sample: its T copies are the batch
    torch.testing.assert_close(once.current(one), every.current(one.contiguous()), rtol=0, atol=1e-12)
    for name in ("running_mean", "running_var", "num_batches_tracked"):
        torch.testing.assert_close(getattr(once.norm, name), getattr(every.norm, name), rtol=0, atol=1e-12)
    once.eval(), every.eval()
    static = encode(torch.randn(3, 6, dtype=torch.float64))
    torch.testing.assert_close(once.current(static), every.current(static.contiguous()), rtol=0, atol=1e-12)


def test_direct_coded_models_count_synaptic_operations_of_every_step():
    """The once-computed first layer still counts T steps of MACs, as a step-by-step simulation would."""
    from lit_snn.encoders import make_encoder
    from lit_snn.metrics.functional import synaptic_operations

    net = BaselineLIF().eval()
    x = torch.rand(2, 784)
    static = make_encoder("direct", 4)(x)
    a = synaptic_operations(net, static)
    b = synaptic_operations(net, static.contiguous())
    assert a["effective_macs/hidden.0.fc"] == b["effective_macs/hidden.0.fc"] == 4 * 784 * 512
    for key in a:
        torch.testing.assert_close(a[key], b[key])
