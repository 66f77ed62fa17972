"""Surrogate gradients: forward is the step ``x >= 0``; backward is checked against independent computations
(finite differences of a smooth primitive, and snnTorch's / SpikingJelly's own surrogate classes)."""

from __future__ import annotations

import copy
import math
import pickle

import pytest
import torch

from lit_snn.neurons import SURROGATES, ATan, FastSigmoid, Gaussian, Sigmoid, Triangle, get_surrogate


def _primitive(name: str, a: float, x: torch.Tensor) -> torch.Tensor:
    """A smooth function whose derivative is the surrogate's backward formula (written independently)."""
    if name == "atan":
        return torch.atan(math.pi / 2 * a * x) / math.pi + 0.5
    if name == "fast_sigmoid":
        return x / (1 + a * x.abs())
    if name == "sigmoid":
        return torch.sigmoid(a * x)
    if name == "triangle":
        inside = 0.5 + a * x - a * a * x * x.abs() / 2
        return torch.where(x.abs() < 1 / a, inside, (x > 0).to(x.dtype))
    if name == "gaussian":
        return 0.5 * (1 + torch.erf(a * x / math.sqrt(2)))
    raise AssertionError(name)


# points away from the kinks of the primitives' second derivatives (0 and +-1/a)
GRID = torch.linspace(-3, 3, 601, dtype=torch.float64) + 0.00123
SLOPES = (0.5, 1.0, 2.0, 4.0, 25.0)


def _surrogate_grad(surrogate, x: torch.Tensor) -> torch.Tensor:
    x = x.clone().requires_grad_()
    (grad,) = torch.autograd.grad(surrogate(x).sum(), x)
    return grad


@pytest.mark.parametrize("name", sorted(SURROGATES))
@pytest.mark.parametrize("slope", SLOPES)
def test_backward_is_derivative_of_primitive(name, slope):
    s = get_surrogate(name, slope)
    eps = 1e-5
    finite_difference = (_primitive(name, slope, GRID + eps) - _primitive(name, slope, GRID - eps)) / (2 * eps)
    torch.testing.assert_close(_surrogate_grad(s, GRID), finite_difference, rtol=0, atol=1e-6)
    torch.testing.assert_close(s.grad(GRID), finite_difference, rtol=0, atol=1e-6)


@pytest.mark.parametrize("name", sorted(SURROGATES))
def test_forward_is_step_firing_at_zero(name):
    x = torch.tensor([-1.0, -1e-7, 0.0, 1e-7, 2.0])
    assert get_surrogate(name)(x).tolist() == [0.0, 0.0, 1.0, 1.0, 1.0]
    assert get_surrogate(name)(x.double()).dtype == torch.float64


@pytest.mark.parametrize("name", ["atan", "sigmoid", "triangle", "gaussian"])
def test_unit_area(name):
    # these four are normalised so that the slope only sharpens them: integral of the backward formula is 1
    s = get_surrogate(name, 2.0)
    x = torch.linspace(-2000, 2000, 4_000_001, dtype=torch.float64)
    area = torch.trapezoid(s.grad(x), x).item()
    tail = 1 - 2 / math.pi * math.atan(math.pi * 2000) if name == "atan" else 0.0  # atan's heavy tails
    assert area == pytest.approx(1 - tail, abs=1e-6)


def test_fast_sigmoid_area_is_two_over_slope():
    # not normalised: the integral over [-L, L] is 2L / (1 + kL) -> 2 / k
    x = torch.linspace(-100, 100, 2_000_001, dtype=torch.float64)
    area = torch.trapezoid(FastSigmoid(4.0).grad(x), x).item()
    assert area == pytest.approx(2 * 100 / (1 + 4.0 * 100), abs=1e-6)


def test_defaults_and_closed_forms_at_zero():
    # backward at x = 0, from the closed forms in backends.md
    zero = torch.zeros(1, dtype=torch.float64)
    assert ATan().slope == 2.0 and ATan().grad(zero).item() == 1.0  # a/2
    assert FastSigmoid().slope == 25.0 and FastSigmoid().grad(zero).item() == 1.0
    assert Sigmoid().slope == 4.0 and Sigmoid().grad(zero).item() == 1.0  # k/4
    assert Triangle().slope == 1.0 and Triangle().grad(zero).item() == 1.0  # a
    assert Gaussian().slope == 1.0 and Gaussian().grad(zero).item() == pytest.approx(1 / math.sqrt(2 * math.pi))


# --- against the libraries' own surrogate classes ----------------------------------------------------------------
X = torch.linspace(-2, 2, 401)


@pytest.mark.parametrize("slope", [0.5, 2.0, 5.0])
@pytest.mark.parametrize(
    "name, factory",
    [("atan", "atan"), ("fast_sigmoid", "fast_sigmoid"), ("sigmoid", "sigmoid")],
)
def test_matches_snntorch_surrogates(name, factory, slope):
    snn_surrogate = pytest.importorskip("snntorch.surrogate")
    theirs = getattr(snn_surrogate, factory)(slope)  # atan(alpha), fast_sigmoid(slope), sigmoid(slope)
    torch.testing.assert_close(_surrogate_grad(get_surrogate(name, slope), X), _surrogate_grad(theirs, X))
    # forward: snnTorch fires on x > 0, ours on x >= 0; they differ only at x == 0
    nonzero = X != 0
    assert torch.equal(get_surrogate(name, slope)(X)[nonzero], theirs(X)[nonzero])
    assert theirs(torch.zeros(1)).item() == 0.0 and get_surrogate(name, slope)(torch.zeros(1)).item() == 1.0


@pytest.mark.parametrize("slope", [0.5, 2.0, 5.0])
@pytest.mark.parametrize(
    "name, make_theirs, scale",
    [
        ("atan", lambda sj, a: sj.ATan(alpha=a), lambda a: 1.0),
        ("sigmoid", lambda sj, a: sj.Sigmoid(alpha=a), lambda a: 1.0),
        ("triangle", lambda sj, a: sj.PiecewiseQuadratic(alpha=a), lambda a: 1.0),
        # Erf(alpha) backward: alpha/sqrt(pi) exp(-(alpha x)^2); our Gaussian(a) is Erf(a / sqrt 2)
        ("gaussian", lambda sj, a: sj.Erf(alpha=a / math.sqrt(2)), lambda a: 1.0),
        # SoftSign(alpha) backward: (alpha/2) / (1 + alpha|x|)^2, i.e. fast_sigmoid(alpha) * alpha / 2
        ("fast_sigmoid", lambda sj, a: sj.SoftSign(alpha=a), lambda a: 2.0 / a),
    ],
)
def test_matches_spikingjelly_surrogates(name, make_theirs, scale, slope):
    sj = pytest.importorskip("spikingjelly.activation_based.surrogate")
    theirs = make_theirs(sj, slope)
    ours = get_surrogate(name, slope)
    torch.testing.assert_close(_surrogate_grad(ours, X), scale(slope) * _surrogate_grad(theirs, X))
    assert torch.equal(ours(X), theirs(X))  # SpikingJelly's heaviside also fires on x >= 0


# --- objects ------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", sorted(SURROGATES))
def test_picklable_and_copyable(name):
    s = get_surrogate(name, 3.0)
    for clone in (pickle.loads(pickle.dumps(s)), copy.deepcopy(s)):
        assert clone == s and type(clone) is type(s) and hash(clone) == hash(s)
        torch.testing.assert_close(_surrogate_grad(clone, X), _surrogate_grad(s, X), rtol=0, atol=0)
    assert repr(s) == f"{type(s).__name__}(slope=3.0)"


def test_get_surrogate_by_name_and_instance():
    assert get_surrogate("atan") == ATan(2.0)
    assert get_surrogate("triangle", 3) == Triangle(3.0)
    instance = Gaussian(2.0)
    assert get_surrogate(instance) is instance
    assert get_surrogate(instance, 2.0) is instance
    assert set(SURROGATES) == {"atan", "fast_sigmoid", "sigmoid", "triangle", "gaussian"}


@pytest.mark.parametrize("slope", [0, -1.0, float("nan"), float("inf"), "2", True])
def test_bad_slope_raises(slope):
    with pytest.raises(ValueError, match="slope must be a finite number > 0"):
        get_surrogate("atan", slope)


def test_bad_name_and_conflicting_slope_raise():
    with pytest.raises(ValueError, match=r"surrogate must be one of \['atan', 'fast_sigmoid'.*got 'relu'"):
        get_surrogate("relu")
    with pytest.raises(ValueError, match="surrogate must be one of"):
        get_surrogate(None)
    with pytest.raises(ValueError, match="conflicts with the given surrogate"):
        get_surrogate(ATan(2.0), slope=3.0)
