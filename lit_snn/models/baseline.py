"""The benchmark's Baseline LIF network (784-512-256-10)."""

from __future__ import annotations

from collections.abc import Sequence
from itertools import pairwise

import torch
from torch import nn

from lit_snn.neurons import make_neuron

from .base import PrunableLayer, SNNModel
from .layers import SpikingLinear, benchmark_bn, check_input, check_positive_int, check_shape, check_sizes


class BaselineLIF(SNNModel):
    """Baseline LIF MLP: ``784 -> 512 -> 256 -> 10``, ``Linear -> BatchNorm -> LIF`` per hidden layer, T=4.

    For hidden layers ``l = 1, 2`` with ``s_0 = x`` (the flattened input) and every step ``t``::

        I_l = BN_l(W_l s_{l-1} + b_l)                      # over all T*B rows at once
        h_t = beta * v_{t-1} + I_{l,t};  s_{l,t} = H(h_t - theta);  v_t = h_t - theta * sg(s_{l,t})
        logits_t = W_out s_{2,t} + b_out                   # returned as [T, B, num_classes]

    with ``beta = 1 - 1/tau`` (tau=2), ``theta = 1``, the ATan surrogate. 537,354 parameters (as measured).

    Departures from the benchmark's code (``run_triple_comparison.py``):

    - *Time-batched BatchNorm*: BN normalises the ``T*B`` rows of a batch in one call (one set of batch
      statistics, one running-stats update per batch); the benchmark called BN at every time step (T updates
      per batch). With direct coding the first layer's rows repeat over t, so its statistics are the same.
    - The neuron charges ``h = beta*v + x`` (lit-snn's convention); the benchmark's ``(1-beta)`` input factor is
      folded into BN's initial gain (``1 - beta = 0.5``), so both start identical (see :func:`benchmark_bn`).
    - On the CPU the second hidden layer reads its spikes event-driven (``sparse_input``: only the nonzero inputs
      are multiplied; :mod:`lit_snn.models.sparse`), with the dense GEMM's result up to float rounding.
    - ATan is lit-snn's (``a/2 / (1 + (pi a x / 2)^2)``, a=2, peak 1); the benchmark's "ATan" was a scaled-down
      variant with peak ``1/pi``.

    Args:
        backend: neuron backend (``custom``, ``snntorch``, ``spikingjelly``).
        input_shape: per-sample input shape; flattened to ``prod(input_shape)`` features.
        num_classes: number of output classes.
        hidden_sizes: widths of the hidden layers.
        tau: membrane time constant of every LIF (``beta = 1 - 1/tau``).
        threshold: firing threshold.
        surrogate: surrogate-gradient name.
        event_driven: on the CPU, the hidden layers after the first multiply only their nonzero inputs (spikes):
            the dense product's result up to float rounding, faster at low spike rates (:mod:`lit_snn.models.sparse`).
    """

    default_num_steps = 4

    def __init__(
        self,
        backend: str = "custom",
        input_shape: Sequence[int] = (784,),
        num_classes: int = 10,
        hidden_sizes: Sequence[int] = (512, 256),
        tau: float = 2.0,
        threshold: float = 1.0,
        surrogate: str = "atan",
        event_driven: bool = True,
    ) -> None:
        super().__init__()
        self.input_shape = check_shape("input_shape", input_shape)
        self.num_classes = check_positive_int("num_classes", num_classes)
        sizes = (int(torch.tensor(self.input_shape).prod()), *check_sizes("hidden_sizes", hidden_sizes))
        self.hidden = nn.ModuleList(
            SpikingLinear(
                n_in,
                n_out,
                make_neuron("lif", backend, tau=tau, threshold=threshold, surrogate=surrogate, detach_reset=True),
                benchmark_bn(n_out, tau),
                sparse_input=event_driven and i > 0,  # the hidden layers after the first read spikes
            )
            for i, (n_in, n_out) in enumerate(pairwise(sizes))
        )
        self.readout = nn.Linear(sizes[-1], self.num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Per-step logits ``[T, B, num_classes]`` for ``x`` of shape ``[T, B, *input_shape]``."""
        s = check_input(self, x).flatten(2)
        for layer in self.hidden:
            s = layer(s)
        return self.readout(s)

    def prunable_layers(self) -> list[PrunableLayer]:
        return [PrunableLayer(f"hidden.{i}", layer.prunable_inputs()) for i, layer in enumerate(self.hidden)]
