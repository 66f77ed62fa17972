"""The fused scans (lit_snn.neurons._fused) against the step-by-step references ``*._scan_reference``.

For LIF/IF, FireOnceLIF (ttfs) and AdaptiveLIF (alif): the reference builds its gradient with autograd, step by
step; the fused scan has a hand-written backward.
Spikes and membranes must be bitwise equal, gradients (input, learnable tau and threshold) equal up to
rounding: 1e-12 in float64 and 1e-6 in float32.
"""

from __future__ import annotations

import itertools
import math

import pytest
import torch

import lit_snn.neurons._fused as fused
from lit_snn.neurons import IF, LIF, SURROGATES, AdaptiveLIF, FireOnceLIF
from lit_snn.neurons._fused import lif_scan

TOL = {torch.float32: 1e-6, torch.float64: 1e-12}


@pytest.fixture(params=["buffers", "functional"])
def path(request, monkeypatch):
    """Run each test on both code paths: eager buffers, and the functional one torch.compile traces."""
    if request.param == "functional":
        monkeypatch.setattr(fused, "_functional_path", lambda: True)
    return request.param


def _run(neuron: LIF, x: torch.Tensor, reference: bool, gs, gm):
    """Spikes, membrane, input gradient and parameter gradients for the loss sum(s*gs) + sum(h*gm)."""
    neuron.zero_grad(set_to_none=True)
    x = x.detach().clone().requires_grad_(True)
    s, h = neuron._scan_reference(x) if reference else neuron._scan(x)
    loss = (s * gs).sum() + (0.0 if gm is None else (h * gm).sum())
    loss.backward()
    grads = {name: p.grad.clone() for name, p in neuron.named_parameters()}
    return s.detach(), h.detach(), x.grad, grads


def _compare(neuron: LIF, x: torch.Tensor, with_membrane: bool = True):
    gen = torch.Generator().manual_seed(1)
    gs = torch.randn(x.shape, generator=gen, dtype=x.dtype)
    gm = torch.randn(x.shape, generator=gen, dtype=x.dtype) if with_membrane else None
    s0, h0, gx0, gp0 = _run(neuron, x, True, gs, gm)
    s1, h1, gx1, gp1 = _run(neuron, x, False, gs, gm)
    assert torch.equal(s0, s1), "spikes differ"
    assert torch.equal(h0, h1), "membranes differ"
    tol = TOL[x.dtype]
    torch.testing.assert_close(gx1, gx0, atol=tol, rtol=tol)
    assert gp0.keys() == gp1.keys()
    for name in gp0:
        torch.testing.assert_close(gp1[name], gp0[name], atol=tol, rtol=tol, msg=lambda m, n=name: f"{n}: {m}")
    return s0


@pytest.mark.parametrize(
    "dtype,reset,detach_reset,surrogate,tau",
    list(itertools.product([torch.float32, torch.float64], ["subtract", "zero"], [False, True], sorted(SURROGATES),
                           [2.0, 3.0])),
)
def test_matches_reference_learnable_per_neuron(path, dtype, reset, detach_reset, surrogate, tau):
    """Learnable per-neuron tau and threshold; dyadic (tau=2, beta=0.5) and non-dyadic (tau=3) decay."""
    torch.manual_seed(0)
    n = LIF(tau=tau, threshold=0.8, reset=reset, detach_reset=detach_reset, surrogate=surrogate,
            learn_tau=True, learn_threshold=True, size=5).to(dtype)
    with torch.no_grad():  # distinct values per neuron
        n.tau.add_(torch.linspace(0.0, 1.5, 5, dtype=dtype))
        n.threshold.add_(torch.linspace(-0.3, 0.3, 5, dtype=dtype))
    x = torch.randn(6, 4, 5, dtype=dtype) * 0.8 + 0.4
    s = _compare(n, x)
    assert 0 < s.mean() < 1  # the regime exercises both firing and silence


@pytest.mark.parametrize(
    "reset,detach_reset,params,with_membrane",
    list(itertools.product(["subtract", "zero"], [False, True], ["fixed", "scalar", "tau", "threshold"],
                           [False, True])),
)
def test_matches_reference_parameter_kinds(path, reset, detach_reset, params, with_membrane):
    """Float hyper-parameters, shared learnable scalars, one learnable at a time; spike-only losses too."""
    torch.manual_seed(0)
    n = LIF(tau=3.0, threshold=1.0, reset=reset, detach_reset=detach_reset, surrogate="atan",
            learn_tau=params in ("scalar", "tau"), learn_threshold=params in ("scalar", "threshold"),
            size=(3, 1) if params in ("tau", "threshold") else None)
    x = torch.randn(7, 2, 3, 4) * 0.8 + 0.5  # conv-like [T, B, C, L] with per-channel parameters
    _compare(n, x, with_membrane)


@pytest.mark.parametrize(
    "dtype,reset,detach_reset,surrogate",
    list(itertools.product([torch.float32, torch.float64], ["subtract", "zero"], [False, True], ["atan", "triangle"])),
)
def test_fire_once_matches_reference(path, dtype, reset, detach_reset, surrogate):
    """FireOnceLIF (ttfs): spikes masked after the first one; learnable per-neuron tau and threshold."""
    torch.manual_seed(0)
    n = FireOnceLIF(tau=3.0, threshold=0.8, reset=reset, detach_reset=detach_reset, surrogate=surrogate,
                    learn_tau=True, learn_threshold=True, size=5).to(dtype)
    with torch.no_grad():
        n.threshold.add_(torch.linspace(-0.3, 0.3, 5, dtype=dtype))
    x = torch.randn(8, 4, 5, dtype=dtype) * 0.8 + 0.4
    s = _compare(n, x)
    assert s.sum(0).max() == 1 and s.sum() > 4  # at most one spike per neuron, and several neurons fire
    with torch.no_grad():  # the mask is exercised: some neurons would fire again without it
        assert ((n._scan_reference(x)[1] >= n.threshold).sum(0) > 1).any()


@pytest.mark.parametrize(
    "dtype,reset,detach_reset,surrogate,learn",
    list(itertools.product([torch.float32, torch.float64], ["subtract", "zero"], [False, True], ["sigmoid"],
                           [False, True])),
)
def test_adaptive_matches_reference(path, dtype, reset, detach_reset, surrogate, learn):
    """AdaptiveLIF (alif): the threshold follows the spike trace, whose gradient flows back through time."""
    torch.manual_seed(0)
    n = AdaptiveLIF(tau=3.0, threshold=0.7, adapt=0.5, tau_adapt=5.0, reset=reset, detach_reset=detach_reset,
                    surrogate=surrogate, learn_tau=learn, learn_threshold=learn, size=5 if learn else None).to(dtype)
    x = torch.randn(8, 4, 5, dtype=dtype) * 0.8 + 0.5
    s = _compare(n, x)
    assert 0 < s.mean() < 1


def test_single_step(path):
    """T = 1: no recurrence at all."""
    for neuron in (LIF(tau=2.0, learn_tau=True, learn_threshold=True), FireOnceLIF(learn_tau=True),
                   AdaptiveLIF(learn_threshold=True)):
        _compare(neuron, torch.randn(1, 3, 2) + 0.8)


def test_exact_threshold_ties_and_if_neuron(path):
    """Integer-valued inputs hit h == theta exactly (fires); the IF neuron (beta = 1) is covered too."""
    x = torch.tensor([[1.0, 0.5, 0.0], [0.0, 0.5, 1.0], [1.0, 0.0, 0.5], [0.5, 0.5, 0.5]]).reshape(4, 1, 3)
    for neuron in (LIF(tau=2.0, threshold=1.0), IF(threshold=1.0), LIF(tau=2.0, reset="zero")):
        s = _compare(neuron, x)
        assert s[0, 0, 0] == 1.0  # h = 1.0 == theta
    assert s.sum() > 0


def test_hand_computed_gradient(path):
    """T=2, tau=2 (beta=0.5), theta=1, ATan(2): sigma(u) = 1 / (1 + (pi u)^2), loss = s_1 + s_2.

    h_1 = 0.6 (no spike, v_1 = 0.6); h_2 = 0.3 + 0.9 = 1.2 (spike). dL/dh_2 = sigma(0.2);
    dL/dh_1 = sigma(-0.4) + beta * (1 - theta * sigma(-0.4)) * dL/dh_2 (the reset's gradient enters).
    """
    x = torch.tensor([0.6, 0.9], dtype=torch.float64).reshape(2, 1, 1).requires_grad_(True)
    s, h = lif_scan(x, 0.5, 1.0, SURROGATES["atan"](2.0))
    s.sum().backward()

    def sigma(u):
        return 1.0 / (1.0 + (math.pi * u) ** 2)

    g2 = sigma(0.2)
    g1 = sigma(-0.4) + 0.5 * (1.0 - sigma(-0.4)) * g2
    assert s.flatten().tolist() == [0.0, 1.0]
    torch.testing.assert_close(h.flatten(), torch.tensor([0.6, 1.2], dtype=torch.float64))
    torch.testing.assert_close(x.grad.flatten(), torch.tensor([g1, g2], dtype=torch.float64), atol=1e-15, rtol=0)


def test_mixed_precision_inputs_follow_reference_dtype(path):
    """A float32 input with float64 per-neuron parameters computes in float64, like the reference."""
    n = LIF(tau=3.0, learn_tau=True, learn_threshold=True, size=4).double()
    x = torch.randn(5, 3, 4) + 0.5
    s0, h0, gx0, _ = _run(n, x, True, torch.ones(5, 3, 4, dtype=torch.float64), None)
    s1, h1, gx1, _ = _run(n, x, False, torch.ones(5, 3, 4, dtype=torch.float64), None)
    assert h1.dtype == h0.dtype == torch.float64 and gx1.dtype == torch.float32
    assert torch.equal(s0, s1) and torch.equal(h0, h1)
    torch.testing.assert_close(gx1, gx0, atol=1e-6, rtol=1e-6)


def test_no_grad_and_unused_outputs():
    """Inference under no_grad runs the same forward; a loss on neither output gives no gradient."""
    n = LIF(tau=2.0)
    x = torch.randn(4, 2, 3) + 0.5
    with torch.no_grad():
        assert torch.equal(n(x), n._scan_reference(x)[0])
    x.requires_grad_(True)
    s, h = n._scan(x)
    (s.sum() * 0.0 + x.sum()).backward()  # s receives a zero gradient; h none
    assert torch.equal(x.grad, torch.ones_like(x))


def test_bad_reset_raises():
    with pytest.raises(ValueError, match="reset must be"):
        lif_scan(torch.zeros(2, 1, 1), 0.5, 1.0, SURROGATES["atan"](), reset="hard")


def test_torch_compile_traces_the_fused_scan():
    """Dynamo traces the autograd.Function whole (fullgraph) and takes the functional path; same gradients."""
    n = LIF(tau=3.0, learn_threshold=True, size=4)
    x = torch.randn(5, 2, 4) + 0.5

    def loss(neuron, inp):
        return (neuron(inp) * torch.arange(4.0)).sum()

    compiled = torch.compile(loss, backend="eager", fullgraph=True)
    xc = x.clone().requires_grad_(True)
    compiled(n, xc).backward()
    got = (xc.grad.clone(), n.threshold.grad.clone())
    n.zero_grad(set_to_none=True)
    xr = x.clone().requires_grad_(True)
    (n._scan_reference(xr)[0] * torch.arange(4.0)).sum().backward()
    torch.testing.assert_close(got[0], xr.grad, atol=1e-6, rtol=1e-6)
    torch.testing.assert_close(got[1], n.threshold.grad, atol=1e-6, rtol=1e-6)
