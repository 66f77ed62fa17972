"""The reference (``custom``) neurons, checked against spike trains and membranes written by hand, and the
neuron contract / factory errors. Inputs are dyadic so every value below is exact in float32."""

from __future__ import annotations

import math

import pytest
import torch

from lit_snn.neurons import (
    BACKENDS,
    IF,
    KINDS,
    LIF,
    AdaptiveLIF,
    FireOnceLIF,
    SpikingNeuron,
    beta_to_tau,
    make_neuron,
    neuron_class,
    tau_to_beta,
)


def _seq(*values: float) -> torch.Tensor:
    return torch.tensor(values).view(-1, 1, 1)


def _run(neuron: SpikingNeuron, x: torch.Tensor) -> tuple[list[float], list[float]]:
    spikes, h = neuron.forward_with_membrane(x)
    return spikes.flatten().tolist(), h.flatten().tolist()


# --- hand-computed trains ---
def test_lif_subtract_by_hand():
    # tau 2 -> beta 0.5, theta 1:  h = 0.5 v + x;  v = h - s
    # t1 h=.75 s0 | t2 h=.375+.5=.875 s0 | t3 h=.4375+.5=.9375 s0 | t4 h=.46875+2.5=2.96875 s1 v=1.96875
    # t5 h=.984375+.25=1.234375 s1 v=.234375 | t6 h=.1171875 s0
    spikes, h = _run(LIF(tau=2.0, reset="subtract"), _seq(0.75, 0.5, 0.5, 2.5, 0.25, 0.0))
    assert spikes == [0, 0, 0, 1, 1, 0]
    assert h == [0.75, 0.875, 0.9375, 2.96875, 1.234375, 0.1171875]


def test_lif_zero_reset_by_hand():
    # same input, v = (1 - s) h:  t4 h=2.96875 s1 v=0 | t5 h=.25 s0 | t6 h=.125 s0
    spikes, h = _run(LIF(tau=2.0, reset="zero"), _seq(0.75, 0.5, 0.5, 2.5, 0.25, 0.0))
    assert spikes == [0, 0, 0, 1, 0, 0]
    assert h == [0.75, 0.875, 0.9375, 2.96875, 0.25, 0.125]


def test_lif_tau4_threshold_half_by_hand():
    # tau 4 -> beta .75, theta .5: t1 h=.25 | t2 h=.1875+.25=.4375 | t3 h=.328125+.25=.578125 s1 v=.078125
    # t4 h=.05859375+.25=.30859375
    spikes, h = _run(LIF(tau=4.0, threshold=0.5), _seq(0.25, 0.25, 0.25, 0.25))
    assert spikes == [0, 0, 1, 0]
    assert h == [0.25, 0.4375, 0.578125, 0.30859375]


def test_fires_when_membrane_equals_threshold():
    # the reference fires on h >= theta
    assert _run(LIF(tau=2.0), _seq(1.0))[0] == [1.0]
    assert _run(IF(threshold=0.75), _seq(0.5, 0.25))[0] == [0.0, 1.0]


def test_if_by_hand():
    # beta 1: t1 h=.5 | t2 h=1 s1 v=0 | t3 h=.5 | t4 h=1 s1 ; zero reset gives the same train here
    for reset in ("subtract", "zero"):
        spikes, h = _run(IF(reset=reset), _seq(0.5, 0.5, 0.5, 0.5))
        assert spikes == [0, 1, 0, 1] and h == [0.5, 1.0, 0.5, 1.0]
    # subtract keeps the excess: t1 h=1.5 s1 v=.5 | t2 h=1 s1 v=0 | t3 h=0
    assert _run(IF(reset="subtract"), _seq(1.5, 0.5, 0.0)) == ([1, 1, 0], [1.5, 1.0, 0.0])
    # zero: t1 h=1.5 s1 v=0 | t2 h=.5 v=.5 | t3 h=.5
    assert _run(IF(reset="zero"), _seq(1.5, 0.5, 0.0)) == ([1, 0, 0], [1.5, 0.5, 0.5])


def test_adaptive_lif_by_hand():
    # tau 2 (beta .5), theta 1, adapt 1, tau_adapt 2 (rho .5): theta_t = 1 + a_{t-1}; a_t = .5 a + .5 s
    # t1 theta=1    h=1                s1 v=0     a=.5
    # t2 theta=1.5  h=1                s0 v=1     a=.25
    # t3 theta=1.25 h=.5+1=1.5         s1 v=.25   a=.125+.5=.625
    # t4 theta=1.625 h=.125+1=1.125    s0         a=.3125
    neuron = AdaptiveLIF(tau=2.0, adapt=1.0, tau_adapt=2.0, reset="subtract")
    assert _run(neuron, _seq(1.0, 1.0, 1.0, 1.0)) == ([1, 0, 1, 0], [1.0, 1.0, 1.5, 1.125])
    assert neuron.rho == 0.5
    # without adaptation it is the LIF: fires every step
    assert _run(AdaptiveLIF(tau=2.0, adapt=0.0), _seq(1.0, 1.0, 1.0, 1.0))[0] == [1, 1, 1, 1]


def test_adaptive_threshold_is_per_sample():
    x = torch.tensor([[1.0, 0.5], [1.0, 0.5], [1.0, 0.5]]).view(3, 2, 1)  # sample 0 drives, sample 1 stays silent
    spikes = AdaptiveLIF(tau=2.0, adapt=1.0, tau_adapt=2.0)(x)
    assert spikes[:, 0].flatten().tolist() == [1, 0, 1]  # t3: theta=1.25, h=.5+1=1.5
    assert spikes[:, 1].flatten().tolist() == [0, 0, 0]  # its own threshold stays 1: h=.5,.75,.875


def test_fire_once_by_hand():
    # tau 2, theta 1, reset zero (default): t1 h=.75 | t2 h=.375+.75=1.125 s1 v=0 | t3 h=.75
    # t4 h=.375+2=2.375 no spike (has fired), no reset | t5 h=1.1875+2=3.1875
    neuron = FireOnceLIF(tau=2.0)
    assert neuron.reset == "zero"
    assert _run(neuron, _seq(0.75, 0.75, 0.75, 2.0, 2.0)) == ([0, 1, 0, 0, 0], [0.75, 1.125, 0.75, 2.375, 3.1875])
    # subtract: t2 v=.125 | t3 h=.0625+.75=.8125 | t4 h=.40625+2=2.40625 | t5 h=1.203125+2=3.203125
    spikes, h = _run(FireOnceLIF(tau=2.0, reset="subtract"), _seq(0.75, 0.75, 0.75, 2.0, 2.0))
    assert (spikes, h) == ([0, 1, 0, 0, 0], [0.75, 1.125, 0.8125, 2.40625, 3.203125])


# --- gradients by hand ---
def _atan2(x: float) -> float:
    """ATan(2) backward: 1 / (1 + (pi x)^2)."""
    return 1.0 / (1.0 + (math.pi * x) ** 2)


@pytest.mark.parametrize("detach_reset", [False, True])
def test_lif_gradient_through_reset_by_hand(detach_reset):
    # x = [1.5, .25], tau 2, theta 1, subtract: h1=1.5 s1 v1=.5 | h2=.25+.25=.5 s0
    # ds2/dx1 = g(h2-1) * beta * dv1/dx1,  dv1/dx1 = 1 - g(h1-1) (or 1 with detach_reset)
    x = _seq(1.5, 0.25).double().requires_grad_()
    spikes = LIF(tau=2.0, detach_reset=detach_reset)(x)
    (grad,) = torch.autograd.grad(spikes[1].sum(), x)
    dv1 = 1.0 if detach_reset else 1.0 - _atan2(0.5)
    assert grad.flatten().tolist() == pytest.approx([_atan2(-0.5) * 0.5 * dv1, _atan2(-0.5)], abs=1e-12)


def test_learnable_threshold_and_tau_gradient_by_hand():
    # x = [.5, .25], tau 2, theta 1: h1=.5 s1=0 v1=h1-s1*theta | h2=(1-1/tau) v1+x2=.5 s2=H(h2-theta)
    # dh2/dtau = v1/tau^2 = .5/4;  dv1/dtheta = -theta*ds1/dtheta = g(h1-1) (the reset term, even without a spike)
    # ds2/dtheta = g(h2-1) * (beta * dv1/dtheta - 1)
    neuron = LIF(tau=2.0, learn_tau=True, learn_threshold=True).double()
    spikes = neuron(_seq(0.5, 0.25).double())
    dtau, dtheta = torch.autograd.grad(spikes[1].sum(), [neuron.tau, neuron.threshold])
    g = _atan2(-0.5)
    assert dtau.item() == pytest.approx(g * 0.5 / 4.0, abs=1e-12)
    assert dtheta.item() == pytest.approx(g * (0.5 * g - 1.0), abs=1e-12)


# --- contract ---
@pytest.mark.parametrize("kind", KINDS)
def test_no_state_between_calls(kind):
    neuron = make_neuron(kind, "custom")
    a, b = torch.rand(6, 3, 5) * 1.5, torch.rand(6, 7, 5) * 1.5
    first, second, again = neuron(a), neuron(b), neuron(a)
    assert torch.equal(first, again)
    assert torch.equal(second, make_neuron(kind, "custom")(b))
    assert neuron.state_dict() == {} and list(neuron.buffers()) == []


@pytest.mark.parametrize("kind", ["lif", "alif", "ttfs"])
def test_learnable_parameters_are_tau_and_threshold_per_neuron(kind):
    neuron = make_neuron(kind, "custom", tau=3.0, threshold=0.5, learn_tau=True, learn_threshold=True, size=(4, 1))
    assert set(neuron.state_dict()) == {"tau", "threshold"}
    assert neuron.tau.shape == (4, 1) and torch.all(neuron.tau == 3.0) and torch.all(neuron.threshold == 0.5)
    assert neuron(torch.rand(3, 2, 4, 5)).shape == (3, 2, 4, 5)


def test_tau_beta_conversion():
    assert tau_to_beta(2.0) == 0.5 and tau_to_beta(4.0) == 0.75 and tau_to_beta(math.inf) == 1.0
    assert beta_to_tau(0.75) == 4.0 and beta_to_tau(1.0) == math.inf and beta_to_tau(0.0) == 1.0
    assert LIF(tau=4.0).beta == 0.75 and IF().beta == 1.0
    with pytest.raises(ValueError, match="beta must lie in"):
        beta_to_tau(1.5)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"tau": 0.5}, "tau must be a number >= 1.0, got 0.5"),
        ({"tau": "2"}, "tau must be a number"),
        ({"threshold": 0.0}, "threshold must be a number > 0.0, got 0.0"),
        ({"reset": "hard"}, r"reset must be one of \('subtract', 'zero'\), got 'hard'"),
        ({"surrogate": "relu"}, "surrogate must be one of"),
        ({"slope": -1.0}, "slope must be a finite number > 0"),
        ({"tau": math.inf, "learn_tau": True}, "learn_tau=True needs a finite tau"),
    ],
)
def test_bad_hyper_parameters_raise(kwargs, message):
    with pytest.raises(ValueError, match=message):
        make_neuron("lif", "custom", **kwargs)


def test_bad_inputs_raise():
    with pytest.raises(ValueError, match=r"time-first tensor \[T, B, ...\] with at least 2 dims, got \(5,\)"):
        LIF()(torch.rand(5))
    with pytest.raises(ValueError, match="floating-point input, got dtype torch.int64"):
        LIF()(torch.ones(3, 2, dtype=torch.long))
    with pytest.raises(ValueError, match="IF has no leak"):
        make_neuron("if", "custom", tau=2.0)
    with pytest.raises(ValueError, match="adapt must be a number >= 0.0"):
        make_neuron("alif", "custom", adapt=-1.0)


def test_factory_names_and_errors():
    assert KINDS == ("lif", "if", "alif", "ttfs") and BACKENDS == ("custom", "snntorch", "spikingjelly")
    assert [neuron_class(k) for k in KINDS] == [LIF, IF, AdaptiveLIF, FireOnceLIF]
    with pytest.raises(ValueError, match=r"neuron kind must be one of \('lif', 'if', 'alif', 'ttfs'\), got 'izh'"):
        make_neuron("izh", "custom")
    with pytest.raises(ValueError, match=r"backend must be one of \('custom', 'snntorch', 'spikingjelly'\), got 'nor"):
        make_neuron("lif", "norse")
    with pytest.raises(TypeError, match="unexpected keyword argument 'beta'"):
        make_neuron("lif", "custom", beta=0.5)
