"""The snnTorch and SpikingJelly adapters equal the reference neurons (in their documented regimes), keep the
neuron contract, and move checkpoints between backends."""

from __future__ import annotations

import copy
import io
import itertools
import pickle
import sys

import pytest
import torch
from torch import nn

from lit_snn._optional import MissingDependencyError
from lit_snn.neurons import BACKENDS, KINDS, SpikingNeuron, make_neuron, neuron_class

pytest.importorskip("snntorch")
pytest.importorskip("spikingjelly")

ADAPTERS = ("snntorch", "spikingjelly")
SURROGATES = [("atan", 2.0), ("sigmoid", 4.0), ("fast_sigmoid", 5.0), ("triangle", 1.0), ("gaussian", 2.0)]
TAUS = (2.0, 4.0, 3.0, 1.5)  # dyadic decays (beta .5, .75) and non-dyadic ones (beta 2/3, 1/3)
T, B, N = 12, 4, 8


def _hyper(kind: str, tau: float | None, reset: str, detach_reset: bool, threshold: float, surrogate) -> dict:
    hp = dict(threshold=threshold, reset=reset, detach_reset=detach_reset, surrogate=surrogate[0], slope=surrogate[1])
    if kind != "if":
        hp["tau"] = tau
    if kind == "alif":
        hp.update(adapt=0.5, tau_adapt=3.0)
    return hp


def _cases():
    surrogates = itertools.cycle(SURROGATES)
    for kind, reset, detach_reset in itertools.product(KINDS, ("subtract", "zero"), (False, True)):
        for tau in TAUS if kind != "if" else (None,):
            surrogate = next(surrogates)
            threshold = 1.0 if tau != 4.0 else 0.75
            yield pytest.param(
                kind, _hyper(kind, tau, reset, detach_reset, threshold, surrogate),
                id=f"{kind}-{reset}-{'detach' if detach_reset else 'attach'}-tau{tau}-{surrogate[0]}",
            )


def _in_regime_input(threshold: float, dtype=torch.float32, shape=(T, B, N)) -> torch.Tensor:
    """x in [-0.5, 0.95) * theta keeps h_t < 2 theta (by induction v_{t-1} < theta, so h_t < 1.95 theta):
    the regime in which snnTorch's subtractive reset equals the reference."""
    return ((torch.rand(shape, dtype=torch.float64) * 1.45 - 0.5) * threshold).to(dtype)


def _forward_and_grad(neuron: SpikingNeuron, x: torch.Tensor, cotangents, params=()):
    x = x.clone().requires_grad_()
    spikes, h = neuron.forward_with_membrane(x)
    loss = (spikes * cotangents[0]).sum() + (h * cotangents[1]).sum()
    grads = torch.autograd.grad(loss, [x, *params])
    return spikes.detach(), h.detach(), grads


def _assert_grads_close(ours, reference, dtype):
    for g, g_ref in zip(ours, reference, strict=True):
        if dtype == torch.float64:  # the same formula: equal up to summation order
            torch.testing.assert_close(g, g_ref, rtol=0, atol=1e-12)
        else:  # float32: within 1e-6 of the reference, relative to the gradient's scale when that exceeds 1
            torch.testing.assert_close(g, g_ref, rtol=0, atol=1e-6 * max(1.0, g_ref.abs().max().item()))


# --- equivalence in the documented regime ---
@pytest.mark.parametrize("backend", ADAPTERS)
@pytest.mark.parametrize("kind, hp", list(_cases()))
def test_equals_reference_in_regime(backend, kind, hp):
    reference, adapter = make_neuron(kind, "custom", **hp), make_neuron(kind, backend, **hp)
    assert isinstance(adapter, SpikingNeuron) and adapter.backend == backend and adapter.kind == kind
    for dtype in (torch.float32, torch.float64):
        x = _in_regime_input(hp["threshold"], dtype)
        cotangents = (torch.randn_like(x), torch.randn_like(x))
        s_ref, h_ref, g_ref = _forward_and_grad(reference, x, cotangents)
        s, h, g = _forward_and_grad(adapter, x, cotangents)
        if kind != "ttfs":  # inside the regime the test claims (ttfs stops resetting after its spike; any input)
            assert h_ref.max() < 2 * hp["threshold"]
        assert s.dtype == dtype and s.shape == x.shape
        assert s_ref.sum() > 0 and torch.equal(s, s_ref)  # 0 mismatches
        dyadic = hp.get("tau", 2.0) in (2.0, 4.0)
        if backend == "snntorch" or dyadic:
            assert torch.equal(h, h_ref)
        else:  # SpikingJelly's leak v - v/tau is within ulps of beta * v
            torch.testing.assert_close(h, h_ref, rtol=0, atol=1e-6 if dtype == torch.float32 else 1e-14)
        _assert_grads_close(g, g_ref, dtype)


@pytest.mark.parametrize("backend", ADAPTERS)
@pytest.mark.parametrize("surrogate", SURROGATES, ids=[s[0] for s in SURROGATES])
@pytest.mark.parametrize("kind", KINDS)
def test_every_surrogate(backend, kind, surrogate):
    hp = _hyper(kind, 3.0, "subtract", False, 1.0, surrogate)
    x = _in_regime_input(1.0)
    cotangents = (torch.randn_like(x), torch.randn_like(x))
    s_ref, _, g_ref = _forward_and_grad(make_neuron(kind, "custom", **hp), x, cotangents)
    s, _, g = _forward_and_grad(make_neuron(kind, backend, **hp), x, cotangents)
    assert torch.equal(s, s_ref)
    _assert_grads_close(g, g_ref, torch.float32)


def _learnable(kind: str, backend: str, tau: float = 3.0) -> SpikingNeuron:
    hp = dict(threshold=1.0, learn_threshold=True, size=N, reset="subtract")
    if kind != "if":
        hp.update(tau=tau, learn_tau=True)
    return make_neuron(kind, backend, **hp)


def _perturb(neuron: SpikingNeuron) -> SpikingNeuron:
    """Per-neuron values as after training: tau in [tau, tau+2), threshold in [0.8, 1.2)."""
    with torch.no_grad():
        if isinstance(neuron.tau, nn.Parameter):
            neuron.tau.add_(torch.rand_like(neuron.tau) * 2)
        neuron.threshold.copy_(0.8 + 0.4 * torch.rand_like(neuron.threshold))
    return neuron


@pytest.mark.parametrize("tau", [2.0, 3.0])
@pytest.mark.parametrize("backend", ADAPTERS)
@pytest.mark.parametrize("kind", KINDS)
def test_learnable_tau_and_threshold(kind, backend, tau):
    reference = _perturb(_learnable(kind, "custom", tau))
    adapter = _learnable(kind, backend, tau)
    expected_keys = {"threshold"} if kind == "if" else {"tau", "threshold"}
    assert set(adapter.state_dict()) == set(reference.state_dict()) == expected_keys
    adapter.load_state_dict(reference.state_dict())
    for dtype in (torch.float32, torch.float64):
        ref, ada = copy.deepcopy(reference).to(dtype), copy.deepcopy(adapter).to(dtype)
        x = _in_regime_input(0.8, dtype)
        cotangents = (torch.randn_like(x), torch.randn_like(x))
        s_ref, _, g_ref = _forward_and_grad(ref, x, cotangents, list(ref.parameters()))
        s, _, g = _forward_and_grad(ada, x, cotangents, list(ada.parameters()))
        assert torch.equal(s, s_ref)
        _assert_grads_close(g, g_ref, dtype)  # input, then tau and threshold gradients


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("kind", KINDS)
def test_learned_threshold_below_zero_never_fires_on_zero_input(kind, backend):
    """A learned threshold driven to or below 0 fires at theta = MIN_THRESHOLD, so a neuron with no input current
    (one silenced by pruning) stays silent; inputs above that floor still fire, and the parameter keeps its value."""
    from lit_snn.neurons.base import MIN_THRESHOLD

    neuron = make_neuron(kind, backend, threshold=1.0, learn_threshold=True, size=3)
    with torch.no_grad():
        neuron.threshold.copy_(torch.tensor([-0.5, 0.0, 0.5]))
    assert torch.equal(neuron.theta, torch.tensor([MIN_THRESHOLD, MIN_THRESHOLD, 0.5]))
    assert not neuron(torch.zeros(4, 2, 3)).any()
    spikes = neuron(torch.full((4, 2, 3), 0.01))
    assert spikes[0, :, :2].all() and not spikes[0, :, 2].any()  # 0.01 >= 1e-3 fires; below 0.5 it does not
    assert neuron.threshold.tolist() == [-0.5, 0.0, 0.5]


# --- the limits of the regime ---
@pytest.mark.parametrize("kind", ["lif", "if", "alif"])
def test_snntorch_subtract_differs_only_where_membrane_reaches_twice_threshold(kind):
    hp = _hyper(kind, 4.0, "subtract", False, 1.0, SURROGATES[0])
    x = torch.rand(20, 16, 16) * 2.5
    with torch.no_grad():
        s_ref, h_ref = make_neuron(kind, "custom", **hp).forward_with_membrane(x)
        s = make_neuron(kind, "snntorch", **hp)(x)
    mismatching = (s != s_ref).any(0)
    assert mismatching.any()  # outside the regime it is a different neuron ...
    assert not (mismatching & ~(h_ref >= 2.0).any(0)).any()  # ... but only for neurons that reached h >= 2 theta
    # the boundary: h == 2 theta already triggers snnTorch's second reset (our surrogate fires on >=)
    boundary = torch.tensor([2.0, 0.0, 0.0]).view(3, 1, 1)
    assert make_neuron("if", "custom")(boundary).flatten().tolist() == [1, 1, 0]
    assert make_neuron("if", "snntorch")(boundary).flatten().tolist() == [1, 0, 0]


@pytest.mark.parametrize(
    "backend, kind, reset",
    [("snntorch", k, "zero") for k in KINDS] + [("snntorch", "ttfs", "subtract")]
    + [("spikingjelly", k, r) for k in KINDS for r in ("subtract", "zero")],
)
def test_equal_for_strong_inputs_where_documented(backend, kind, reset):
    hp = _hyper(kind, 4.0, reset, False, 1.0, SURROGATES[0])
    x = torch.rand(16, 8, 8) * 3.0
    s_ref, h_ref = make_neuron(kind, "custom", **hp).forward_with_membrane(x)
    s, h = make_neuron(kind, backend, **hp).forward_with_membrane(x)
    assert (h_ref >= 2.0).any()
    assert torch.equal(s, s_ref) and torch.equal(h, h_ref)


@pytest.mark.parametrize("backend", ADAPTERS)
@pytest.mark.parametrize("kind", KINDS)
def test_fires_at_membrane_equal_to_threshold(backend, kind):
    # quantised inputs with beta .5 make h == theta exactly at many steps; every backend fires there (>=)
    hp = _hyper(kind, 2.0, "zero", False, 1.0, SURROGATES[0])
    x = torch.randint(0, 5, (T, B, N)).float() / 4
    s_ref, h_ref = make_neuron(kind, "custom", **hp).forward_with_membrane(x)
    assert (h_ref == 1.0).sum() > 10 and s_ref[h_ref == 1.0].any()
    assert torch.equal(make_neuron(kind, backend, **hp)(x), s_ref)


# --- contract: state, copies, checkpoints ---
@pytest.mark.parametrize("backend", ADAPTERS)
@pytest.mark.parametrize("kind", KINDS)
def test_no_state_leaks_between_calls(backend, kind):
    neuron = make_neuron(kind, backend)
    a, b = torch.rand(6, 3, 5) * 1.5, torch.rand(6, 7, 5) * 1.5
    first = neuron(a.requires_grad_())
    first.sum().backward()
    second = neuron(b.requires_grad_())
    second.sum().backward()  # no "backward through the graph a second time": no state from the first call
    assert torch.equal(second, make_neuron(kind, backend)(b))
    assert torch.equal(neuron(a), first)
    assert neuron.state_dict() == {}


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("kind", KINDS)
def test_copy_pickle_and_save_after_forward(backend, kind, tmp_path):
    hp = {"learn_threshold": True} if kind == "if" else {"learn_tau": True, "learn_threshold": True}
    model = nn.Sequential(nn.Linear(6, 5), make_neuron(kind, backend, **hp))
    x = torch.rand(8, 3, 6) * 2
    model(x).sum().backward()  # a training step's forward and backward leave nothing behind
    expected = model(x)
    path = tmp_path / "model.pt"
    torch.save(model, path)
    copies = [
        copy.deepcopy(model),
        pickle.loads(pickle.dumps(model)),
        torch.load(path, weights_only=False),
    ]
    for clone in copies:
        assert torch.equal(clone(x), expected)
    torch.save(model.state_dict(), path)
    fresh = nn.Sequential(nn.Linear(6, 5), make_neuron(kind, backend, **hp))
    fresh.load_state_dict(torch.load(path, weights_only=True))
    assert torch.equal(fresh(x), expected)


@pytest.mark.parametrize("source, target", list(itertools.permutations(BACKENDS, 2)))
@pytest.mark.parametrize("kind", KINDS)
def test_state_dict_moves_between_backends(kind, source, target):
    trained = _perturb(_learnable(kind, source))
    buffer = io.BytesIO()
    torch.save(trained.state_dict(), buffer)
    buffer.seek(0)
    loaded = _learnable(kind, target)
    loaded.load_state_dict(torch.load(buffer, weights_only=True), strict=True)
    x = _in_regime_input(0.8)
    assert torch.equal(loaded(x), trained(x))


@pytest.mark.parametrize("backend", ADAPTERS)
def test_library_buffers_stay_out_of_the_state_dict(backend):
    neuron = make_neuron("lif", backend, tau=3.0)
    assert neuron.state_dict() == {}
    neuron(torch.rand(4, 2, 3))
    assert neuron.state_dict() == {}
    if backend == "snntorch":
        import snntorch

        assert neuron.cell.mem.numel() == 0  # membrane released after the call
        assert not any(n is neuron.cell for n in snntorch.SpikingNeuron.instances)  # not kept alive by snnTorch


# --- errors ---
@pytest.mark.parametrize("backend", ADAPTERS)
def test_bad_hyper_parameters_raise_on_adapters(backend):
    with pytest.raises(ValueError, match="reset must be one of"):
        make_neuron("lif", backend, reset="hard")
    with pytest.raises(ValueError, match="IF has no leak"):
        make_neuron("if", backend, tau=2.0)
    with pytest.raises(ValueError, match="adapt must be a number >= 0.0"):
        make_neuron("alif", backend, adapt=-1.0)


def test_spikingjelly_rejects_tau_one():
    assert make_neuron("lif", "custom", tau=1.0).beta == 0.0
    with pytest.raises(ValueError, match="backend 'spikingjelly' needs tau > 1"):
        make_neuron("lif", "spikingjelly", tau=1.0)


def test_unsupported_pair_names_supported_kinds(monkeypatch):
    module = sys.modules[neuron_class("lif", "snntorch").__module__]
    monkeypatch.setattr(module, "NEURONS", {k: v for k, v in module.NEURONS.items() if k != "ttfs"})
    message = r"'ttfs' is not available on backend 'snntorch'; it supports \('lif', 'if', 'alif'\)"
    with pytest.raises(ValueError, match=message):
        make_neuron("ttfs", "snntorch")


@pytest.mark.parametrize("backend, extra", [("snntorch", "snntorch"), ("spikingjelly", "spikingjelly")])
def test_missing_library_names_the_extra(monkeypatch, backend, extra):
    for name in [m for m in sys.modules if m == backend or m.startswith(backend + ".")]:
        monkeypatch.setitem(sys.modules, name, None)  # importing it now raises ImportError
    monkeypatch.setitem(sys.modules, backend, None)
    monkeypatch.delitem(sys.modules, f"lit_snn.neurons.{backend}_backend", raising=False)
    with pytest.raises(MissingDependencyError, match=rf"pip install 'lit-snn\[{extra}\]'"):
        make_neuron("lif", backend)
