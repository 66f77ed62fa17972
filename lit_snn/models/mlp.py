"""The energy blog's pair: a 784-256-256-10 ReLU MLP and its LIF twin (T=25)."""

from __future__ import annotations

from collections.abc import Sequence
from itertools import pairwise

import torch
from torch import nn

from lit_snn.neurons import BACKENDS, make_neuron

from .base import PrunableLayer, SNNModel
from .layers import SpikingLinear, check_input, check_positive_int, check_shape, check_sizes

TIME_REDUCTIONS = ("mean", "first")


def reduce_time(x: torch.Tensor, time_reduction: str) -> torch.Tensor:
    """``[T, B, ...] -> [B, ...]``: the mean over T (``"mean"``) or the first step (``"first"``)."""
    return x.mean(0) if time_reduction == "mean" else x[0]


def check_time_reduction(time_reduction: str) -> str:
    if time_reduction not in TIME_REDUCTIONS:
        raise ValueError(f"time_reduction must be one of {TIME_REDUCTIONS}, got {time_reduction!r}")
    return time_reduction


class ANNMLP(SNNModel):
    """The blog's ANN baseline: ``Linear(784,256) -> ReLU -> Linear(256,256) -> ReLU -> Linear(256,10)``.

    269,322 parameters, as in the blog. It takes the same time-first input ``[T, B, *input_shape]`` as the SNNs,
    so one datamodule feeds both, and first reduces time::

        x_bar = mean_t x_t   (time_reduction="mean", default)   or   x_bar = x_0   ("first")
        logits = W_3 relu(W_2 relu(W_1 x_bar + b_1) + b_2) + b_3       # [B, num_classes]

    With direct coding every ``x_t`` is the image, so both reductions give the image exactly; with rate coding the
    mean over T is the estimate of the pixel intensity the spike train encodes ("first" would see one binary
    sample). The network runs once per sample (no time loop), which is what the energy comparison assumes.

    Args:
        backend: accepted for a uniform interface and validated, unused (the ANN has no spiking neurons).
        input_shape: per-sample input shape (flattened).
        num_classes: number of classes.
        hidden_sizes: hidden widths.
        time_reduction: ``"mean"`` or ``"first"``.
    """

    default_num_steps = 1

    def __init__(
        self,
        backend: str = "custom",
        input_shape: Sequence[int] = (784,),
        num_classes: int = 10,
        hidden_sizes: Sequence[int] = (256, 256),
        time_reduction: str = "mean",
    ) -> None:
        super().__init__()
        if backend not in BACKENDS:
            raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
        self.input_shape = check_shape("input_shape", input_shape)
        self.num_classes = check_positive_int("num_classes", num_classes)
        self.time_reduction = check_time_reduction(time_reduction)
        sizes = (int(torch.tensor(self.input_shape).prod()), *check_sizes("hidden_sizes", hidden_sizes))
        self.hidden = nn.ModuleList(nn.Linear(a, b) for a, b in pairwise(sizes))
        self.readout = nn.Linear(sizes[-1], self.num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``[B, num_classes]`` for ``x`` of shape ``[T, B, *input_shape]``."""
        a = reduce_time(check_input(self, x), self.time_reduction).flatten(1)
        for fc in self.hidden:
            a = torch.relu(fc(a))
        return self.readout(a)

    def prunable_layers(self) -> list[PrunableLayer]:
        return [PrunableLayer(f"hidden.{i}", [(fc, ("weight", "bias"))]) for i, fc in enumerate(self.hidden)]


class SNNMLP(SNNModel):
    """The blog's SNN twin: ``Linear(784,256) -> LIF -> Linear(256,256) -> LIF -> Linear(256,10)``, T=25.

    ::

        I_l = W_l s_{l-1} + b_l                       # over all T*B rows at once; s_0 = x
        h_t = beta_j * v_{t-1} + I_{l,t};  s = H(h_t - theta);  v_t = h_t - theta * s
        logits_t = W_3 s_{2,t} + b_3                   # [T, B, num_classes]

    269,834 parameters, as in the blog: its 512 parameters beyond the ANN are one per hidden neuron, which we read
    as a learnable per-neuron time constant (``learn_tau=True``; the blog's Part 2, where the LIF is defined, is
    not among our references). No BatchNorm, as in the blog. ``tau=20`` (``beta=0.95``, snnTorch's tutorial
    value for T=25) is our choice; the blog does not state it. T comes from the datamodule (25 in the recipe).

    Args:
        backend: neuron backend.
        input_shape: per-sample input shape (flattened).
        num_classes: number of classes.
        hidden_sizes: hidden widths.
        tau: initial membrane time constant.
        threshold: firing threshold.
        learn_tau: learn one time constant per neuron.
        surrogate: surrogate-gradient name.
        event_driven: on the CPU, the second hidden layer multiplies only its nonzero inputs (spikes): the dense
            product's result up to float rounding (:mod:`lit_snn.models.sparse`).
    """

    default_num_steps = 25

    def __init__(
        self,
        backend: str = "custom",
        input_shape: Sequence[int] = (784,),
        num_classes: int = 10,
        hidden_sizes: Sequence[int] = (256, 256),
        tau: float = 20.0,
        threshold: float = 1.0,
        learn_tau: bool = True,
        surrogate: str = "atan",
        event_driven: bool = True,
    ) -> None:
        super().__init__()
        self.input_shape = check_shape("input_shape", input_shape)
        self.num_classes = check_positive_int("num_classes", num_classes)
        sizes = (int(torch.tensor(self.input_shape).prod()), *check_sizes("hidden_sizes", hidden_sizes))
        self.hidden = nn.ModuleList(
            SpikingLinear(
                a,
                b,
                make_neuron(
                    "lif", backend, tau=tau, threshold=threshold, surrogate=surrogate, learn_tau=learn_tau,
                    size=b if learn_tau else None,
                ),
                sparse_input=event_driven and i > 0,  # the hidden layers after the first read spikes
            )
            for i, (a, b) in enumerate(pairwise(sizes))
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
