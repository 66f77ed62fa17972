"""snnTorch backend: lit-snn neurons built on ``snntorch.Leaky``.

Each adapter is a :class:`~lit_snn.neurons.SpikingNeuron` with the reference's constructor and contract
(``[T, B, ...]`` currents in, spikes out, zero state at every call, nothing kept between calls). It owns one
``snn.Leaky`` (``self.cell``) and steps it over time; snnTorch charges (``mem = beta * mem + x``), fires
(``spike_grad(mem - threshold)``) and resets. The cell is a small subclass of ``snn.Leaky`` that only overrides
the library's hooks ``fire`` / ``mem_reset`` / ``reset_mem`` (to record the step, honour ``detach_reset`` and,
for ``alif`` / ``ttfs``, adapt the threshold or fire once).

Every ``snn.Leaky`` argument is passed explicitly: ``reset_delay=False`` (the reference resets in the step it
fires; snnTorch's default ``True`` is a different neuron), ``reset_mechanism`` = our ``reset``,
``spike_grad`` = our surrogate object (same forward ``x >= 0`` and same backward formula as the reference),
``init_hidden=False``, ``inhibition=False``, ``state_quant=False``, ``output=False``, ``surrogate_disable=False``,
``graded_spikes_factor=1.0`` and no library-side learning (``learn_beta`` / ``learn_threshold`` /
``learn_graded_spikes_factor`` False).

Hyper-parameters. snnTorch keeps ``beta`` and ``threshold`` (and its ``mem`` state) as buffers. Here they are
non-persistent, so the state_dict holds only the adapter's ``tau`` / ``threshold`` Parameters (when learnable),
exactly as the reference does; before every call the adapter binds ``beta = 1 - 1/tau`` and ``threshold`` from
its own (possibly learnable) values, and restores the cell afterwards. The cell is removed from snnTorch's
class-level ``SpikingNeuron.instances`` list (only used with ``init_hidden=True``), so it is not kept alive forever.

State. The membrane is zeroed at the start of each call with the module's own ``reset_mem()`` (never
``snntorch.utils.reset``) and released at the end of the call, so nothing survives it (``copy.deepcopy`` and
pickling work after a forward pass).

Regime in which the adapters equal the reference (tested in ``tests/test_backends.py``):

* ``reset="zero"``: every input, for ``lif``, ``if``, ``alif`` and ``ttfs``.
* ``reset="subtract"``: while the charged membrane stays below twice the threshold, ``h_t < 2 * theta_t`` at every
  step (``ttfs``: every input). With ``reset_delay=False`` snnTorch first applies a "pending" reset
  ``r_t = H(v_{t-1} - theta)`` (no gradient) computed from the previous *post-reset* membrane, then fires on
  ``beta * v_{t-1} + x_t - r_t * theta``. ``r_t`` is 1 only when ``v_{t-1} = h_{t-1} - theta >= theta``, i.e.
  ``h_{t-1} >= 2 * theta``; the library then subtracts ``theta`` twice and fires less than the reference.
  Because our surrogate fires on ``x >= 0``, ``h_{t-1} == 2 * theta`` exactly is already outside the regime.
* Firing at ``h == threshold``: snnTorch's own surrogates fire on ``mem > threshold``; here the library calls our
  surrogate on ``mem - threshold``, which fires on ``mem - threshold >= 0``, i.e. on ``h >= theta`` like the
  reference (``h - theta == 0`` exactly when ``h == theta`` in IEEE arithmetic).
* Values: inside the regime the library runs the reference's float operations in the same order, so spikes and
  membranes are bitwise equal for every ``tau``; gradients agree to float rounding (the autograd graph sums the
  same terms in another order: within ~1e-15 in float64, ~1e-7 relative in float32).
"""

from __future__ import annotations

import math

import torch

from lit_snn._optional import require

from .base import SpikingNeuron, _check_positive, tau_to_beta
from .surrogate import Surrogate

snntorch = require("snntorch", "The snnTorch neuron backend (backend='snntorch')")


class _Leaky(snntorch.Leaky):
    """``snn.Leaky`` whose ``fire`` hook records ``(spike, membrane, threshold)`` and applies ``detach_reset``.

    snnTorch's ``forward`` resets with the tensor that ``fire`` returns; when ``detach_reset`` is set, the hook
    returns the spike detached (so the reset carries no gradient) and the adapter emits the recorded spike, which
    keeps its surrogate gradient.
    """

    def __init__(self, beta: float, threshold: float, surrogate: Surrogate, reset: str, detach_reset: bool) -> None:
        super().__init__(
            beta=beta,
            threshold=threshold,
            spike_grad=surrogate,
            surrogate_disable=False,
            init_hidden=False,
            inhibition=False,
            learn_beta=False,
            learn_threshold=False,
            reset_mechanism=reset,
            state_quant=False,
            output=False,
            graded_spikes_factor=1.0,
            learn_graded_spikes_factor=False,
            reset_delay=False,
        )
        self.detach_reset = detach_reset
        self.last: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None
        instances = snntorch.SpikingNeuron.instances  # class-level registry: keep this cell out of it
        instances[:] = [n for n in instances if n is not self]
        for name, buffer in list(self._buffers.items()):  # hyper-parameters and state stay out of the state_dict
            self.register_buffer(name, buffer, persistent=False)

    def spike(self, mem: torch.Tensor) -> torch.Tensor:
        """The spike of this step: the library's ``fire`` (``spike_grad(mem - threshold) * 1.0``)."""
        return super().fire(mem)

    def fire(self, mem: torch.Tensor) -> torch.Tensor:
        spike = self.spike(mem)
        self.last = (spike, mem, self.threshold)
        return spike.detach() if self.detach_reset else spike

    def reset_mem(self) -> torch.Tensor:
        self.last = None
        return super().reset_mem()

    def release(self) -> None:
        """Drop everything a call left behind (membrane, pending-reset flag, last step)."""
        self.mem = self.mem.new_zeros(0)
        self.__dict__.pop("reset", None)  # snnTorch's pending-reset flag of the last step
        self.last = None


class _AdaptiveLeaky(_Leaky):
    """``snn.Leaky`` for the adaptive threshold: the adapter binds ``threshold = theta_t`` before each step.

    snnTorch's pending-reset check (``mem_reset``) compares the previous post-reset membrane with the threshold
    that step fired against (``theta_{t-1}``), so the regime stays ``h_t < 2 theta_t`` as for the plain LIF.
    """

    def mem_reset(self, mem: torch.Tensor) -> torch.Tensor:
        threshold = self.threshold if self.last is None else self.last[2]
        return self.spike_grad(mem - threshold).clone().detach()


class _FireOnceLeaky(_Leaky):
    """``snn.Leaky`` that fires at most once per sample and neuron: ``s_t = H(h_t - theta) * (1 - f_{t-1})``.

    The fired mask ``f`` (no gradient) is state of the cell, created like snnTorch's ``mem`` at the first step
    of a call; it also masks the library's pending reset, so a neuron that has fired is never reset again.
    """

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fired: torch.Tensor | None = None

    def reset_mem(self) -> torch.Tensor:
        self.fired = None
        return super().reset_mem()

    def release(self) -> None:
        super().release()
        self.fired = None

    def mem_reset(self, mem: torch.Tensor) -> torch.Tensor:
        if self.fired is None:
            self.fired = torch.zeros_like(mem)
        return super().mem_reset(mem) * (1.0 - self.fired)

    def spike(self, mem: torch.Tensor) -> torch.Tensor:
        spike = super().spike(mem) * (1.0 - self.fired)
        self.fired = self.fired + spike.detach()
        return spike


def _as_tensor(value: torch.Tensor | float, like: torch.Tensor) -> torch.Tensor:
    """A plain tensor to bind into the cell (a Parameter is viewed, so its gradient flows but it is not
    registered as a parameter of the cell)."""
    if isinstance(value, torch.Tensor):
        return value.view_as(value)
    return torch.as_tensor(value, dtype=like.dtype, device=like.device)


def _initial(value: torch.Tensor | float) -> float:
    """The scalar a hyper-parameter was created with (a learnable one starts as ``torch.full(size, value)``)."""
    return float(value.detach().reshape(-1)[0]) if isinstance(value, torch.Tensor) else float(value)


class _SnnTorchNeuron(SpikingNeuron):
    """Shared machinery of the snnTorch adapters: build the cell, bind hyper-parameters, step it over time."""

    backend = "snntorch"
    _cell_class: type[_Leaky] = _Leaky

    def _build_cell(self) -> None:
        # Constructed with the initial values; they are re-bound from tau / threshold at every call.
        self.cell = self._cell_class(
            beta=tau_to_beta(_initial(self.tau)),
            threshold=_initial(self.threshold),
            surrogate=self.surrogate,
            reset=self.reset,
            detach_reset=self.detach_reset,
        )

    def _scan(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        cell = self.cell
        saved = (cell.beta, cell.threshold)
        cell.beta = _as_tensor(self.beta, x)
        cell.threshold = _as_tensor(self.theta, x)
        cell.reset_mem()
        try:
            return self._steps(x)
        finally:
            cell.beta, cell.threshold = saved
            cell.release()

    def _steps(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        spikes, membrane = [], []
        for t in range(x.shape[0]):
            self.cell(x[t])
            spike, h, _ = self.cell.last
            spikes.append(spike)
            membrane.append(h)
        return torch.stack(spikes), torch.stack(membrane)


class SnnTorchLIF(_SnnTorchNeuron):
    """Leaky integrate-and-fire on ``snn.Leaky``; equals :class:`lit_snn.neurons.LIF` in the regime of the
    module docstring (``reset="zero"``: always; ``reset="subtract"``: while ``h_t < 2 * threshold``)."""

    kind = "lif"

    def __init__(self, tau: float = 2.0, threshold: float = 1.0, **kwargs) -> None:
        super().__init__(tau=tau, threshold=threshold, **kwargs)
        self._build_cell()


class SnnTorchIF(_SnnTorchNeuron):
    """Integrate-and-fire on ``snn.Leaky`` with ``beta = 1``; equals :class:`lit_snn.neurons.IF` in the regime of
    the module docstring (``reset="zero"``: always; ``reset="subtract"``: while ``h_t < 2 * threshold``)."""

    kind = "if"

    def __init__(self, threshold: float = 1.0, **kwargs) -> None:
        if "tau" in kwargs or kwargs.get("learn_tau"):
            raise ValueError("IF has no leak: do not pass tau or learn_tau (use kind='lif' for a leaky neuron)")
        super().__init__(tau=math.inf, threshold=threshold, **kwargs)
        self._build_cell()


class SnnTorchAdaptiveLIF(_SnnTorchNeuron):
    """Adaptive-threshold LIF on ``snn.Leaky`` (equations of :class:`lit_snn.neurons.AdaptiveLIF`).

    The adapter keeps the adaptation trace ``a`` (a local of the call, zero at its start) and binds the cell's
    threshold to ``theta_t = threshold + adapt * a_{t-1}`` before each step; snnTorch charges, fires against
    ``theta_t`` and resets by ``theta_t``. Equal to the reference with ``reset="zero"`` for every input, with
    ``reset="subtract"`` while ``h_t < 2 * theta_t``.
    """

    kind = "alif"
    _cell_class = _AdaptiveLeaky

    def __init__(self, tau: float = 2.0, adapt: float = 1.0, tau_adapt: float = 20.0, **kwargs) -> None:
        super().__init__(tau=tau, **kwargs)
        self.adapt = _check_positive("adapt", adapt, 0.0, inclusive=True)
        self.tau_adapt = _check_positive("tau_adapt", tau_adapt, 1.0, inclusive=True)
        self._build_cell()

    @property
    def rho(self) -> float:
        return tau_to_beta(self.tau_adapt)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, adapt={self.adapt}, tau_adapt={self.tau_adapt}"

    def _steps(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        rho = self.rho
        a = torch.zeros_like(x[0])
        spikes, membrane = [], []
        for t in range(x.shape[0]):
            self.cell.threshold = _as_tensor(self.theta + self.adapt * a, x)
            self.cell(x[t])
            spike, h, _ = self.cell.last
            a = rho * a + (1 - rho) * spike
            spikes.append(spike)
            membrane.append(h)
        return torch.stack(spikes), torch.stack(membrane)


class SnnTorchFireOnceLIF(_SnnTorchNeuron):
    """Time-to-first-spike LIF on ``snn.Leaky`` (equations of :class:`lit_snn.neurons.FireOnceLIF`).

    Equal to the reference for every input, with both resets: the fired mask also silences snnTorch's pending
    reset, which could otherwise act only on a neuron that has already fired.
    """

    kind = "ttfs"
    _cell_class = _FireOnceLeaky

    def __init__(self, tau: float = 2.0, reset: str = "zero", **kwargs) -> None:
        super().__init__(tau=tau, reset=reset, **kwargs)
        self._build_cell()


NEURONS: dict[str, type[SpikingNeuron]] = {
    "lif": SnnTorchLIF,
    "if": SnnTorchIF,
    "alif": SnnTorchAdaptiveLIF,
    "ttfs": SnnTorchFireOnceLIF,
}

__all__ = ["NEURONS", "SnnTorchAdaptiveLIF", "SnnTorchFireOnceLIF", "SnnTorchIF", "SnnTorchLIF"]

