"""The neuron contract shared by every backend, and the reference (``custom``) neurons in pure PyTorch.

A neuron module maps an input current sequence ``x`` of shape ``[T, B, ...]`` (time first) to a spike
sequence of the same shape. It starts from zero state at every call and keeps nothing between calls: no
membrane in attributes, buffers or the state_dict. Hyper-parameters enter the state_dict only when they are
learnable (``learn_tau``, ``learn_threshold``), so a checkpoint moves between backends.

Decay is given as a time constant ``tau`` (>= 1); the per-step decay is ``beta = 1 - 1/tau``, converted in
exactly one place (:func:`tau_to_beta`). ``tau = inf`` is an integrate-and-fire neuron (``beta = 1``).

Reference LIF, for t = 1..T with ``v_0 = 0``::

    h_t = beta * v_{t-1} + x_t                 # charge; the input is not scaled by (1 - beta)
    s_t = H(h_t - theta)                       # fire on h >= theta; surrogate gradient backward
    v_t = h_t - r_t * theta   (reset="subtract")   or   v_t = (1 - r_t) * h_t   (reset="zero")

with ``r_t = s_t`` or ``r_t = sg(s_t)`` when ``detach_reset=True``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from ._fused import alif_scan, lif_scan
from .surrogate import Surrogate, get_surrogate

RESETS = ("subtract", "zero")
#: a learned threshold is clamped to at least this when the neuron fires (see :attr:`SpikingNeuron.theta`)
MIN_THRESHOLD = 1e-3


def tau_to_beta(tau: torch.Tensor | float) -> torch.Tensor | float:
    """The one conversion from time constant to per-step decay: ``beta = 1 - 1/tau`` (``tau=inf`` -> 1)."""
    if isinstance(tau, torch.Tensor):
        return 1.0 - tau.reciprocal()
    return 1.0 - 1.0 / tau


def beta_to_tau(beta: float) -> float:
    """Inverse of :func:`tau_to_beta`, for users who think in decays: ``tau = 1 / (1 - beta)``."""
    if not 0.0 <= beta <= 1.0:
        raise ValueError(f"beta must lie in [0, 1], got {beta!r}")
    return math.inf if beta == 1.0 else 1.0 / (1.0 - beta)


def _check_positive(name: str, value: float, minimum: float = 0.0, inclusive: bool = False) -> float:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and (
        value >= minimum if inclusive else value > minimum
    )
    if not ok or math.isnan(value):
        rel = ">=" if inclusive else ">"
        raise ValueError(f"{name} must be a number {rel} {minimum}, got {value!r}")
    return float(value)


class SpikingNeuron(nn.Module):
    """Base class of every lit-snn neuron, on every backend.

    Args:
        tau: membrane time constant (>= 1; ``math.inf`` for no leak). ``beta = 1 - 1/tau``.
        threshold: firing threshold (> 0).
        reset: ``"subtract"`` (soft reset) or ``"zero"`` (hard reset).
        detach_reset: stop the gradient through the reset term.
        surrogate: surrogate-gradient name (see :mod:`lit_snn.neurons.surrogate`) or instance.
        slope: the surrogate's slope parameter (its default when ``None``).
        learn_tau: make ``tau`` a trainable parameter.
        learn_threshold: make ``threshold`` a trainable parameter (it fires at ``theta``: clamped to >= 1e-3).
        size: shape of per-neuron learnable parameters (the trailing input dims, e.g. ``512`` or
            ``(64, 1, 1)`` for channels of a conv map); ``None`` shares one scalar across neurons.
    """

    kind: str = ""
    backend: str = "custom"
    #: every output is exactly 0 or 1 (the Heaviside of the surrogate's forward pass, on every backend). The
    #: metric probe relies on it: it counts these spikes without testing them. A subclass that emits graded or
    #: scaled spikes must set it to False.
    binary_spikes: bool = True

    def __init__(
        self,
        tau: float = 2.0,
        threshold: float = 1.0,
        reset: str = "subtract",
        detach_reset: bool = False,
        surrogate: str | Surrogate = "atan",
        slope: float | None = None,
        learn_tau: bool = False,
        learn_threshold: bool = False,
        size: int | Sequence[int] | None = None,
    ) -> None:
        super().__init__()
        tau = _check_positive("tau", tau, 1.0, inclusive=True)
        threshold = _check_positive("threshold", threshold)
        if reset not in RESETS:
            raise ValueError(f"reset must be one of {RESETS}, got {reset!r}")
        if learn_tau and math.isinf(tau):
            raise ValueError("learn_tau=True needs a finite tau, got tau=inf")
        self.reset = reset
        self.detach_reset = bool(detach_reset)
        self.surrogate = get_surrogate(surrogate, slope)
        shape = () if size is None else ((size,) if isinstance(size, int) else tuple(size))
        self.size = shape
        if learn_tau:
            self.tau = nn.Parameter(torch.full(shape, tau))
        else:
            self.tau = tau
        if learn_threshold:
            self.threshold = nn.Parameter(torch.full(shape, threshold))
        else:
            self.threshold = threshold

    # -- hyper-parameters -------------------------------------------------------------------------------
    @property
    def beta(self) -> torch.Tensor | float:
        """Per-step decay ``1 - 1/tau`` (learned tau is clamped to >= 1 so that beta stays in [0, 1])."""
        tau = self.tau.clamp(min=1.0) if isinstance(self.tau, torch.Tensor) else self.tau
        return tau_to_beta(tau)

    @property
    def theta(self) -> torch.Tensor | float:
        """The threshold the neuron fires at: ``threshold``, a learned one clamped to >= :data:`MIN_THRESHOLD`.

        A threshold at or below 0 would fire on zero input, so a neuron silenced by pruning (its input current
        exactly 0) would spike; the clamp keeps ``h = 0 < theta`` true whatever training does to the parameter."""
        th = self.threshold
        return th.clamp(min=MIN_THRESHOLD) if isinstance(th, torch.Tensor) else th

    def extra_repr(self) -> str:
        tau = "learned" if isinstance(self.tau, torch.Tensor) else self.tau
        th = "learned" if isinstance(self.threshold, torch.Tensor) else self.threshold
        return (
            f"kind={self.kind!r}, backend={self.backend!r}, tau={tau}, threshold={th}, reset={self.reset!r}, "
            f"detach_reset={self.detach_reset}, surrogate={self.surrogate!r}"
        )

    # -- forward ----------------------------------------------------------------------------------------
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Spikes ``[T, B, ...]`` for an input current ``x`` of shape ``[T, B, ...]``."""
        return self.forward_with_membrane(self._check_input(x))[0]

    def forward_with_membrane(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Spikes and the charged membrane ``h_t`` (before reset), both ``[T, B, ...]``.

        For monitoring and tests; :meth:`forward` is the training path.
        """
        return self._scan(self._check_input(x))

    def _check_input(self, x: torch.Tensor) -> torch.Tensor:
        if not isinstance(x, torch.Tensor) or x.dim() < 2:
            shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
            raise ValueError(
                f"{type(self).__name__} expects a time-first tensor [T, B, ...] with at least 2 dims, got {shape}"
            )
        if not x.is_floating_point():
            raise ValueError(f"{type(self).__name__} expects a floating-point input, got dtype {x.dtype}")
        return x

    def _scan(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        raise NotImplementedError

    def _reset(self, h: torch.Tensor, s: torch.Tensor, threshold) -> torch.Tensor:
        r = s.detach() if self.detach_reset else s
        if self.reset == "subtract":
            return h - r * threshold
        return h * (1.0 - r)


class LIF(SpikingNeuron):
    """Leaky integrate-and-fire neuron (the reference). See the module docstring for the equations."""

    kind = "lif"

    def _scan(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        # One autograd node per sequence with a hand-written BPTT backward; same result as _scan_reference.
        return lif_scan(x, self.beta, self.theta, self.surrogate, self.reset, self.detach_reset)

    def _scan_reference(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Step-by-step autograd version of :meth:`_scan`: the definition the fused scan is tested against."""
        beta, theta = self.beta, self.theta
        v = torch.zeros_like(x[0])
        spikes, membrane = [], []
        for t in range(x.shape[0]):
            h = beta * v + x[t]
            s = self.surrogate(h - theta)
            v = self._reset(h, s, theta)
            spikes.append(s)
            membrane.append(h)
        return torch.stack(spikes), torch.stack(membrane)


class IF(LIF):
    """Integrate-and-fire: a LIF without leak (``tau = inf``, ``beta = 1``)."""

    kind = "if"

    def __init__(self, threshold: float = 1.0, **kwargs) -> None:
        if "tau" in kwargs or kwargs.get("learn_tau"):
            raise ValueError("IF has no leak: do not pass tau or learn_tau (use kind='lif' for a leaky neuron)")
        super().__init__(tau=math.inf, threshold=threshold, **kwargs)


class AdaptiveLIF(SpikingNeuron):
    """LIF whose threshold follows the neuron's own recent spikes, per sample (Bellec et al., 2018).

    With an adaptation trace ``a_0 = 0`` and ``rho = 1 - 1/tau_adapt``::

        theta_t = threshold + adapt * a_{t-1}
        h_t = beta * v_{t-1} + x_t
        s_t = H(h_t - theta_t)
        v_t = reset(h_t, s_t, theta_t)
        a_t = rho * a_{t-1} + (1 - rho) * s_t

    The trace belongs to each sample and neuron and restarts at zero on every call, so training and
    evaluation run the same neuron.

    Args:
        adapt: strength of the threshold adaptation (>= 0).
        tau_adapt: time constant of the adaptation trace (>= 1).
        **kwargs: as :class:`SpikingNeuron`.
    """

    kind = "alif"

    def __init__(self, tau: float = 2.0, adapt: float = 1.0, tau_adapt: float = 20.0, **kwargs) -> None:
        super().__init__(tau=tau, **kwargs)
        self.adapt = _check_positive("adapt", adapt, 0.0, inclusive=True)
        self.tau_adapt = _check_positive("tau_adapt", tau_adapt, 1.0, inclusive=True)

    @property
    def rho(self) -> float:
        return tau_to_beta(self.tau_adapt)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, adapt={self.adapt}, tau_adapt={self.tau_adapt}"

    def _scan(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        # The fused adaptive-threshold scan; same result as _scan_reference.
        return alif_scan(x, self.beta, self.theta, self.adapt, self.rho, self.surrogate, self.reset,
                         self.detach_reset)

    def _scan_reference(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Step-by-step autograd version of :meth:`_scan`: the definition the fused scan is tested against."""
        beta, rho = self.beta, self.rho
        v = torch.zeros_like(x[0])
        a = torch.zeros_like(x[0])
        spikes, membrane = [], []
        for t in range(x.shape[0]):
            theta = self.theta + self.adapt * a
            h = beta * v + x[t]
            s = self.surrogate(h - theta)
            v = self._reset(h, s, theta)
            a = rho * a + (1 - rho) * s
            spikes.append(s)
            membrane.append(h)
        return torch.stack(spikes), torch.stack(membrane)


class FireOnceLIF(SpikingNeuron):
    """Time-to-first-spike LIF: each neuron fires at most once per sample.

    ::

        h_t = beta * v_{t-1} + x_t
        s_t = H(h_t - theta) * (1 - f_{t-1})      # f: has fired (no gradient through f)
        f_t = f_{t-1} + sg(s_t)
        v_t = reset(h_t, s_t, theta)              # reset="zero" by default

    The time of the single spike carries the information; readouts weigh earlier spikes more.
    """

    kind = "ttfs"

    def __init__(self, tau: float = 2.0, reset: str = "zero", **kwargs) -> None:
        super().__init__(tau=tau, reset=reset, **kwargs)

    def _scan(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        # The fused scan with a fire-once mask; same result as _scan_reference.
        return lif_scan(x, self.beta, self.theta, self.surrogate, self.reset, self.detach_reset, fire_once=True)

    def _scan_reference(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Step-by-step autograd version of :meth:`_scan`: the definition the fused scan is tested against."""
        beta, theta = self.beta, self.theta
        v = torch.zeros_like(x[0])
        fired = torch.zeros_like(x[0])
        spikes, membrane = [], []
        for t in range(x.shape[0]):
            h = beta * v + x[t]
            s = self.surrogate(h - theta) * (1.0 - fired)
            fired = fired + s.detach()
            v = self._reset(h, s, theta)
            spikes.append(s)
            membrane.append(h)
        return torch.stack(spikes), torch.stack(membrane)
