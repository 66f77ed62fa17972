"""SpikingJelly backend: lit-snn neurons built on ``spikingjelly.activation_based.neuron.LIFNode`` / ``IFNode``.

Each adapter is a :class:`~lit_snn.neurons.SpikingNeuron` with the reference's constructor and contract
(``[T, B, ...]`` currents in, spikes out, zero state at every call, nothing kept between calls). It owns one
SpikingJelly node (``self.node``) in multi-step mode (``step_mode="m"``), which runs the whole sequence: the
library charges (``h = v - (v - v_reset) / tau + x`` with ``decay_input=False``; ``h = v + x`` for IF), fires
(``surrogate_function(h - v_threshold)``), resets and loops over time.

* ``lif`` / ``if``: the library's own ``LIFNode`` / ``IFNode`` unchanged (``functional.lif_multi_step`` /
  ``if_multi_step``). ``store_v_seq=True`` keeps the post-reset voltages, from which the adapter recomputes the
  charged membrane ``h_t`` with the library's charge function for :meth:`forward_with_membrane`.
* ``alif`` / ``ttfs``: subclasses of ``LIFNode`` that override SpikingJelly 2.0's per-step hook
  ``single_step_functional_forward`` (the 2.0 successor of ``neuronal_charge`` / ``neuronal_fire`` /
  ``neuronal_reset``) and add a memory (``register_memory``) for the adaptation trace or the fired mask. The
  step still uses the library's charge (``functional.lif_charge``) and reset (``functional.voltage_reset``), and
  the library's generic multi-step loop and state handling (``MemoryModule.multi_step_functional_forward``,
  ``materialize_states``, ``reset()``) drive it.

Every node argument is passed explicitly: ``tau`` and ``v_threshold`` as Python floats (SpikingJelly 2.0 asserts
it), ``decay_input=False`` (the reference does not scale the input), ``v_reset=None`` for ``reset="subtract"``
and ``0.0`` for ``reset="zero"``, ``detach_reset``, ``surrogate_function`` = our surrogate object (same forward
``x >= 0`` and backward formula as the reference), ``step_mode="m"``, ``store_v_seq``.

Hyper-parameters. SpikingJelly keeps ``tau`` / ``v_threshold`` as plain attributes (nothing in the state_dict).
Before every call the adapter binds them from its own (possibly learnable, per-neuron) ``tau`` (clamped to >= 1
as in the reference) and ``threshold``, and restores the constructed values afterwards, so only the adapter's
``tau`` / ``threshold`` Parameters are in the state_dict. SpikingJelly's fused CPU/CUDA kernels accept only its own
surrogate classes; with our surrogate object it always runs its Torch reference path (on CPU it does so anyway).

State. The node's memories are reset with its own ``reset()`` at the start and at the end of every call
(SpikingJelly otherwise keeps ``v`` between calls), so nothing survives a call and ``copy.deepcopy`` / pickling
work after a forward pass.

Regime in which the adapters equal the reference (tested in ``tests/test_backends.py``): every input, for all
four kinds and both resets.

* Firing at ``h == threshold``: SpikingJelly fires on ``surrogate_function(h - v_threshold)``; its own surrogates
  and ours both fire on ``h - v_threshold >= 0``, i.e. on ``h >= theta`` like the reference.
* Values: SpikingJelly computes the leak as ``v - v / tau`` instead of ``beta * v``. For dyadic decays
  (tau 2, 4: beta 0.5, 0.75) both are the correctly rounded ``beta * v`` and results are bitwise equal; for other
  tau they differ by about one ulp per step, so gradients agree to ~1e-7 and a spike can differ only when ``h``
  lies within a few ulps of the threshold (never seen with continuous random inputs).
* ``tau`` must be > 1: SpikingJelly's ``LIFNode`` rejects ``tau = 1`` (``beta = 0``); use ``custom`` or
  ``snntorch`` for a memoryless neuron.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from lit_snn._optional import require

from .base import SpikingNeuron, _check_positive, tau_to_beta

_sj_neuron = require("spikingjelly.activation_based.neuron", "The SpikingJelly neuron backend (backend='spikingjelly')")
_sj_functional = require("spikingjelly.activation_based.functional", "The SpikingJelly neuron backend")
_sj_base = require("spikingjelly.activation_based.base", "The SpikingJelly neuron backend")


class _SteppedLIFNode(_sj_neuron.LIFNode):
    """``LIFNode`` driven by the library's generic multi-step loop over an overridden single-step hook.

    Subclasses add memories after ``v`` and implement :meth:`step`; the functional forward outputs
    ``(spike, h)`` per step, so the multi-step call returns ``(spikes, charged membranes)``.
    """

    def step(self, x: torch.Tensor, v: torch.Tensor, extra: torch.Tensor) -> tuple[torch.Tensor, ...]:
        raise NotImplementedError

    def charge(self, x: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """The library's LIF charge (``decay_input=False``): ``h = v - (v - v_reset) / tau + x``."""
        return _sj_functional.lif_charge(x, v, self.tau, self.decay_input, self.v_reset)

    def fire_and_reset(self, h: torch.Tensor, spike: torch.Tensor, threshold) -> torch.Tensor:
        """The library's reset: ``h - spike * threshold`` (``v_reset=None``) or ``(1 - spike) * h + spike * v_reset``.
        """
        return _sj_functional.voltage_reset(h, spike, threshold, self.v_reset, self.detach_reset)

    def materialize_states(self, inputs, states, step_mode):
        v, extra = super().materialize_states(inputs, states, step_mode)
        if not isinstance(extra, torch.Tensor) or extra.shape != v.shape:
            extra = torch.zeros_like(v)
        return v, extra

    def single_step_functional_forward(self, inputs, states, **kwargs):
        (x,) = inputs
        v, extra = states
        spike, h, v, extra = self.step(x, v, extra)
        return (spike, h), (v, extra)

    def multi_step_functional_forward(self, inputs, states, **kwargs):
        # LIFNode's fused sequence kernel knows no adaptation / fire-once: use the library's generic loop.
        return _sj_base.MemoryModule.multi_step_functional_forward(self, inputs, states, **kwargs)


class _AdaptiveLIFNode(_SteppedLIFNode):
    """``LIFNode`` with an adaptive threshold ``theta_t = v_threshold + adapt * a_{t-1}`` (memory ``a``)."""

    def __init__(self, adapt: float, rho: float, **lif_kwargs) -> None:
        super().__init__(**lif_kwargs)
        self.adapt = adapt
        self.rho = rho
        self.register_memory("a", 0.0)

    def step(self, x, v, a):
        theta = self.v_threshold + self.adapt * a
        h = self.charge(x, v)
        spike = self.surrogate_function(h - theta)
        v = self.fire_and_reset(h, spike, theta)
        a = self.rho * a + (1 - self.rho) * spike
        return spike, h, v, a


class _FireOnceLIFNode(_SteppedLIFNode):
    """``LIFNode`` that fires at most once: ``s_t = H(h_t - theta) * (1 - f_{t-1})`` (memory ``fired``)."""

    def __init__(self, **lif_kwargs) -> None:
        super().__init__(**lif_kwargs)
        self.register_memory("fired", 0.0)

    def step(self, x, v, fired):
        h = self.charge(x, v)
        spike = self.surrogate_function(h - self.v_threshold) * (1.0 - fired)
        fired = fired + spike.detach()
        v = self.fire_and_reset(h, spike, self.v_threshold)
        return spike, h, v, fired


def _initial(value: torch.Tensor | float) -> float:
    """The scalar a hyper-parameter was created with (a learnable one starts as ``torch.full(size, value)``)."""
    return float(value.detach().reshape(-1)[0]) if isinstance(value, torch.Tensor) else float(value)


def _plain(value: torch.Tensor | float) -> torch.Tensor | float:
    """A value to bind into the node: a Parameter is viewed, so its gradient flows but the node does not
    register it as its own parameter."""
    return value.view_as(value) if isinstance(value, torch.Tensor) else value


class _SpikingJellyNeuron(SpikingNeuron):
    """Shared machinery of the SpikingJelly adapters: build the node, bind hyper-parameters, run it."""

    backend = "spikingjelly"

    def _node_kwargs(self) -> dict:
        return dict(
            v_threshold=_initial(self.threshold),
            v_reset=None if self.reset == "subtract" else 0.0,
            surrogate_function=self.surrogate,
            detach_reset=self.detach_reset,
            step_mode="m",
        )

    def _lif_kwargs(self, store_v_seq: bool) -> dict:
        tau = _initial(self.tau)
        if not tau > 1.0:
            raise ValueError(
                f"backend 'spikingjelly' needs tau > 1 (SpikingJelly's LIFNode rejects tau=1, beta=0), got tau={tau}; "
                "use backend 'custom' or 'snntorch' for tau=1"
            )
        return dict(tau=tau, decay_input=False, store_v_seq=store_v_seq, **self._node_kwargs())

    def _bindings(self) -> dict:
        tau = self.tau.clamp(min=1.0) if isinstance(self.tau, torch.Tensor) else self.tau
        return {"tau": tau, "v_threshold": _plain(self.theta)}

    def _scan(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        node = self.node
        bindings = self._bindings()
        saved = {name: getattr(node, name) for name in bindings}
        for name, value in bindings.items():
            setattr(node, name, value)
        node.reset()
        try:
            return self._run(x)
        finally:
            for name, value in saved.items():
                setattr(node, name, value)
            node.reset()

    def _run(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.node(x)


class _PlainNodeNeuron(_SpikingJellyNeuron):
    """``lif`` / ``if``: the library's node unchanged; ``h_t`` is recomputed from the stored voltages."""

    _charge: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]

    def _run(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        spikes = self.node(x)
        v_prev = torch.cat([torch.zeros_like(x[:1]), self.node.v_seq[:-1]])
        return spikes, self._charge(x, v_prev)


class SpikingJellyLIF(_PlainNodeNeuron):
    """Leaky integrate-and-fire on SpikingJelly's ``LIFNode`` (``decay_input=False``); equals
    :class:`lit_snn.neurons.LIF` for every input (see the module docstring for ulps at non-dyadic tau)."""

    kind = "lif"

    def __init__(self, tau: float = 2.0, threshold: float = 1.0, **kwargs) -> None:
        super().__init__(tau=tau, threshold=threshold, **kwargs)
        self.node = _sj_neuron.LIFNode(**self._lif_kwargs(store_v_seq=True))

    def _charge(self, x: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        node = self.node
        return _sj_functional.lif_charge(x, v, node.tau, node.decay_input, node.v_reset)


class SpikingJellyIF(_PlainNodeNeuron):
    """Integrate-and-fire on SpikingJelly's ``IFNode``; equals :class:`lit_snn.neurons.IF` for every input."""

    kind = "if"

    def __init__(self, threshold: float = 1.0, **kwargs) -> None:
        if "tau" in kwargs or kwargs.get("learn_tau"):
            raise ValueError("IF has no leak: do not pass tau or learn_tau (use kind='lif' for a leaky neuron)")
        super().__init__(tau=math.inf, threshold=threshold, **kwargs)
        self.node = _sj_neuron.IFNode(store_v_seq=True, **self._node_kwargs())

    def _bindings(self) -> dict:
        return {"v_threshold": _plain(self.theta)}

    def _charge(self, x: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        return v + x  # IFNode's charge


class SpikingJellyAdaptiveLIF(_SpikingJellyNeuron):
    """Adaptive-threshold LIF on a ``LIFNode`` subclass (equations of :class:`lit_snn.neurons.AdaptiveLIF`);
    equals the reference for every input."""

    kind = "alif"

    def __init__(self, tau: float = 2.0, adapt: float = 1.0, tau_adapt: float = 20.0, **kwargs) -> None:
        super().__init__(tau=tau, **kwargs)
        self.adapt = _check_positive("adapt", adapt, 0.0, inclusive=True)
        self.tau_adapt = _check_positive("tau_adapt", tau_adapt, 1.0, inclusive=True)
        self.node = _AdaptiveLIFNode(adapt=self.adapt, rho=self.rho, **self._lif_kwargs(store_v_seq=False))

    @property
    def rho(self) -> float:
        return tau_to_beta(self.tau_adapt)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, adapt={self.adapt}, tau_adapt={self.tau_adapt}"

    def _bindings(self) -> dict:
        return {**super()._bindings(), "adapt": self.adapt, "rho": self.rho}


class SpikingJellyFireOnceLIF(_SpikingJellyNeuron):
    """Time-to-first-spike LIF on a ``LIFNode`` subclass (equations of :class:`lit_snn.neurons.FireOnceLIF`);
    equals the reference for every input."""

    kind = "ttfs"

    def __init__(self, tau: float = 2.0, reset: str = "zero", **kwargs) -> None:
        super().__init__(tau=tau, reset=reset, **kwargs)
        self.node = _FireOnceLIFNode(**self._lif_kwargs(store_v_seq=False))


NEURONS: dict[str, type[SpikingNeuron]] = {
    "lif": SpikingJellyLIF,
    "if": SpikingJellyIF,
    "alif": SpikingJellyAdaptiveLIF,
    "ttfs": SpikingJellyFireOnceLIF,
}

__all__ = ["NEURONS", "SpikingJellyAdaptiveLIF", "SpikingJellyFireOnceLIF", "SpikingJellyIF", "SpikingJellyLIF"]
