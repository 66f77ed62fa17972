"""Functional SNN metrics: synaptic operations, spike rate, sparsity, dead neurons, static model figures.

Two levels:

* **Per layer call** -- :func:`layer_synaptic_operations` counts the synaptic operations of one Linear/Conv call
  (what the probe's hooks run).
* **Per model** -- :func:`synaptic_operations`, :func:`spike_rate`, :func:`spikes_per_sample`,
  :func:`activation_sparsity`, :func:`dead_neuron_fraction` run one forward pass of ``model`` on ``x`` under an
  :class:`~lit_snn.metrics.probe.SNNProbe` and return that batch's figures; :func:`connection_sparsity`,
  :func:`parameter_count` and :func:`footprint` read the model only. The ``reduce_*`` functions turn accumulated
  totals into figures and are shared with the :mod:`torchmetrics` classes, so both give the same numbers.

Definitions (NeuroBench 2.3 where it defines the figure):

* Synaptic operations of one call of a layer on input ``x``: effective ops
  ``sum_rows sum_j sum_i 1[x_i != 0] * 1[W_ji != 0]`` for a Linear; for a Conv the same through the layer's
  stride / padding / dilation / groups, zero padding contributing nothing. Dense ops: the same with every input
  and weight set to 1. Bias, pooling and normalisation are not counted. A time step counts as **AC** (accumulate)
  if every input element of that step lies in {-1, 0, 1}, else as **MAC**. NeuroBench decides per layer call, and
  its snnTorch loop makes one call per time step on ``[B, ...]``; our models call a layer once on all T steps
  (``[T, B, ...]`` or ``[T*B, ...]``), so the decision is made per time step inside the call (rows grouped into
  blocks of B, the batch size): the numbers equal NeuroBench's for both styles. Totals are divided by the number
  of samples (per sample, summed over time steps).
* Spike: a nonzero neuron output. Spike rate = spikes / (neurons x time steps x samples), per layer and over all
  layers (weighted by their size x steps). Spikes per sample = spikes / samples.
* Activation sparsity (NeuroBench): per batch ``1 - nonzero outputs / all outputs`` over every neuron layer and
  time step, averaged over batches weighted by batch size (samples seen, so ``drop_last`` does not bias it).
* Dead-neuron fraction: neurons that never fire over the evaluated data / all neurons (the seed benchmark's
  "activation sparsity").
* Connection sparsity: zero weights / all weights of the synaptic (Linear/Conv) layers (NeuroBench rounds to 4
  decimals; we do not). Parameter count: sum of ``numel``. Footprint: bytes of parameters and *persistent* buffers
  (what a checkpoint holds); state kept as non-persistent buffers (snnTorch's ``mem``, ``syn``) is not counted,
  while NeuroBench counts it with the size of the last batch.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from torch import nn

from .discovery import SUPPORTED_SYNAPTIC_TYPES, resolve_synaptic_layers

if TYPE_CHECKING:  # pragma: no cover
    from .probe import ProbeStats

_CONV_DIMS = {nn.Conv1d: 1, nn.Conv2d: 2, nn.Conv3d: 3}


@dataclass
class LayerOps:
    """Synaptic operations and input activity of one layer call (0-dim float64 tensors; ints for shapes).

    Attributes:
        effective_acs: effective ops of the time steps whose input is binary ({-1, 0, 1}).
        effective_macs: effective ops of the other time steps.
        dense: ops with all inputs and weights nonzero.
        input_nonzero: nonzero input elements.
        input_numel: input elements.
        output_numel: output elements (neurons driven x rows).
        rows: samples x time steps (x positions, for a Linear over extra dims) in the call.
    """

    effective_acs: torch.Tensor
    effective_macs: torch.Tensor
    dense: float
    input_nonzero: torch.Tensor
    input_numel: int
    output_numel: int
    rows: int


def _conv_dims(layer: nn.Module) -> int:
    for cls, d in _CONV_DIMS.items():
        if isinstance(layer, cls):
            return d
    raise TypeError(
        f"cannot count synaptic operations of {type(layer).__name__}: supported layers are "
        f"{', '.join(t.__name__ for t in SUPPORTED_SYNAPTIC_TYPES)}"
    )


def _group_by_step(x: torch.Tensor, feature_dims: int, batch_size: int, batch_dim: int) -> torch.Tensor:
    """View ``x`` (leading dims = rows, trailing ``feature_dims`` = one input) as ``[steps, batch_size, *features]``.

    Rows are all leading dims flattened; ``steps = rows / batch_size``. Time-first (``batch_dim=1``) rows are
    ordered (step, sample) -- true for ``[T, B, ...]``, ``[T*B, ...]`` and a step call ``[B, ...]``; batch-first
    (``batch_dim=0``) rows are ordered (sample, step) -- ``[B, T, ...]`` and ``[B, ...]``. Totals do not depend on
    the grouping; only the per-step AC/MAC decision does.
    """
    features = tuple(x.shape[x.dim() - feature_dims:])
    rows = x.numel() // max(1, math.prod(features)) if x.numel() else 0
    if rows % batch_size:
        raise ValueError(
            f"input of shape {tuple(x.shape)} has {rows} rows, not a multiple of the batch size {batch_size}: "
            f"the probe reads the batch size from dim {batch_dim} of the network's input (batch_dim={batch_dim}); "
            "pass the batch_dim that matches your data layout"
        )
    steps = rows // batch_size
    if batch_dim == 1:
        return x.reshape(steps, batch_size, *features)
    return x.reshape(batch_size, steps, *features).transpose(0, 1)


def layer_synaptic_operations(
    layer: nn.Module, x: torch.Tensor, batch_size: int | None = None, batch_dim: int = 1
) -> LayerOps:
    """Synaptic operations of one call ``layer(x)`` (see the module docstring for the definitions).

    Args:
        layer: ``nn.Linear`` or ``nn.Conv1d/2d/3d``; anything else raises ``TypeError``.
        x: the layer's input: ``[*rows, in_features]`` for a Linear, ``[rows, C, *spatial]`` (or unbatched
            ``[C, *spatial]``) for a Conv.
        batch_size: samples per time step, used to group rows into time steps for the AC/MAC decision;
            ``None`` = all rows form one step (one NeuroBench call).
        batch_dim: 1 if rows are ordered (step, sample) (time-first), 0 if (sample, step).

    The counts are computed on indicator tensors, summed over the batch first (the layer is linear in its input):
    Linear ``ops_t = sum_i c_ti * fanout_i`` with ``c_ti`` the samples with ``x_tbi != 0`` and
    ``fanout_i = sum_j 1[W_ji != 0]``; Conv: ``conv(c_t, W_g)`` with ``W_g`` the indicator weight summed over the
    output channels of each group (so the conv has one output channel per group). float64 keeps counts exact.

    >>> fc = nn.Linear(3, 2, bias=False)
    >>> with torch.no_grad():
    ...     _ = fc.weight.copy_(torch.tensor([[1.0, 0.0, 2.0], [0.0, 0.0, 3.0]]))
    >>> ops = layer_synaptic_operations(fc, torch.tensor([[1.0, 1.0, 1.0], [0.0, 0.0, 1.0]]))
    >>> float(ops.effective_acs), float(ops.effective_macs), ops.dense   # rows: 1+0+2, 0+0+2
    (5.0, 0.0, 12.0)
    """
    x, xs, rows = layer_input_steps(layer, x, batch_size, batch_dim)
    counts, analog = step_counts(xs)
    per_step, outputs_per_row = step_operations(layer, counts, weight_counts(layer))
    macs = per_step[:, 0] @ analog.to(per_step.dtype)
    acs = per_step[:, 0].sum() - macs
    dense = dense_operations(layer, x, rows)
    return LayerOps(acs, macs, dense, per_step[:, 1].sum(), x.numel(), rows * outputs_per_row, rows)


def layer_input_steps(
    layer: nn.Module, x: torch.Tensor, batch_size: int | None, batch_dim: int
) -> tuple[torch.Tensor, torch.Tensor, int]:
    """Check a synaptic layer's input and group it by time step.

    Returns ``(x, xs, rows)``: ``x`` detached (an unbatched conv input gets its batch dim), ``xs`` its view
    ``[steps, batch_size, *features]`` (see :func:`_group_by_step`) and ``rows`` = steps x batch_size.
    """
    if batch_dim not in (0, 1):
        raise ValueError(f"batch_dim must be 0 (batch-first) or 1 (time-first), got {batch_dim!r}")
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{type(layer).__name__} input must be a tensor to count synaptic operations, got {type(x)}")
    x = x.detach()
    if isinstance(layer, nn.Linear):
        if x.dim() < 1 or x.shape[-1] != layer.in_features:
            raise ValueError(f"Linear({layer.in_features}, ...) got input of shape {tuple(x.shape)}")
        feature_dims = 1
    else:
        d = _conv_dims(layer)
        if x.dim() == d + 1:  # unbatched conv input
            x = x.unsqueeze(0)
        if x.dim() != d + 2:
            raise ValueError(f"{type(layer).__name__} got input of shape {tuple(x.shape)}")
        feature_dims = d + 1
    rows = x.numel() // max(1, math.prod(x.shape[x.dim() - feature_dims:])) if x.numel() else 0
    return x, _group_by_step(x, feature_dims, batch_size or max(rows, 1), batch_dim), rows


def step_counts(
    xs: torch.Tensor,
    scratch: torch.Tensor | None = None,
    counts: torch.Tensor | None = None,
    indicator: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-step nonzero counts and the per-step AC/MAC decision of a grouped input ``xs = [steps, B, *features]``.

    Returns ``(counts, analog)``: ``counts[t, f] = sum_b 1[xs_tbf != 0]`` (float32: exact, B < 2**24) and
    ``analog[t]`` (bool): some input of step ``t`` lies outside {-1, 0, 1}. The decision, exact in every case:
    since ``|x| = 1`` implies ``x != 0``, ``c1[t, f] = sum_b 1[|xs_tbf| = 1] <= counts[t, f]``, with equality for
    every ``f`` iff every nonzero input of the step is +-1; a NaN counts as nonzero and not +-1, so it makes its step
    analog. On the CPU (where reading a result on the host costs nothing) two shortcuts come first: every step whose
    largest input exceeds 1 is analog (one read pass); and with the indicator ``1[xs != 0]`` at hand, ``xs`` equal to
    it everywhere means every input is 0 or 1, so no step is analog. Otherwise the exact test above decides.

    ``scratch``: an optional float32 tensor of ``xs``'s shape to write the indicators into (saves allocating tensors
    of the input's size per call); ``counts`` and ``indicator`` (float32, ``xs``'s shape; overwritten): the counts
    and the indicator when already known (from the neuron that produced ``xs``). An input constant over time (a
    stride-0 view along the steps, as the direct encoder returns) is counted on its first step only.
    """
    steps = xs.shape[0]
    if steps > 1 and xs.stride(0) == 0:  # constant over time (direct coding's x.expand(T, ...)): every step is step 0
        first = step_counts(
            xs[:1], None if scratch is None else scratch[:1], None if counts is None else counts[:1],
            None if indicator is None else indicator[:1],
        )
        return first[0].expand(steps, *first[0].shape[1:]), first[1].expand(steps)
    buf = scratch if scratch is not None else torch.empty(xs.shape, dtype=torch.float32, device=xs.device)
    given = counts is not None  # counts of a neuron's output: most likely spikes, so skip the "> 1" shortcut
    if counts is None:
        # indicator 1[x != 0] in float32, written by one comparison kernel (float outputs are the fast kernels)
        indicator = torch.ne(xs, 0, out=buf)
        counts = indicator.sum(1)
    if xs.device.type == "cpu" and xs.numel():
        dims = tuple(range(1, xs.dim()))
        if not given and bool((xs.amax(dims) > 1).all()):  # NaN > 1 is False: such a step gets the exact test
            return counts, torch.ones(steps, dtype=torch.bool, device=xs.device)
        if indicator is not None and not bool(torch.ne(xs, indicator, out=indicator).amax(dims).any()):
            return counts, torch.zeros(steps, dtype=torch.bool, device=xs.device)
    if xs.dtype == torch.float32:
        magnitude = torch.abs(xs, out=buf)
    else:
        magnitude = xs.abs()
    unit = torch.eq(magnitude, 1, out=buf).sum(1)
    analog = (unit != counts).flatten(1).any(1)
    return counts, analog


def weight_counts(layer: nn.Module) -> torch.Tensor:
    """The nonzero-weight counts a layer's effective operations need (float64, exact).

    Linear: ``[in_features, 2]``, columns ``fanout_i = sum_j 1[W_ji != 0]`` and 1 (so that ``counts @ w`` gives the
    effective ops and the nonzero inputs of every step in one product). Conv: ``W_g = [G, C_in/G, *kernel]``, the
    indicator weight summed over the output channels of each group.
    """
    weight = layer.weight.detach()
    w_nonzero = torch.ne(weight, 0, out=torch.empty(weight.shape, dtype=torch.float32, device=weight.device))
    if isinstance(layer, nn.Linear):
        fanout = w_nonzero.sum(0).double()  # float32 sums of at most out_features ones: exact below 2**24
        return torch.stack((fanout, torch.ones_like(fanout)), 1)
    return w_nonzero.to(torch.float64).unflatten(0, (layer.groups, -1)).sum(1)


def step_operations(layer: nn.Module, counts: torch.Tensor, wcounts: torch.Tensor) -> tuple[torch.Tensor, int]:
    """Per-step effective ops and nonzero inputs ``[steps, 2]`` (float64) of ``counts`` (:func:`step_counts`) through
    ``layer`` with its :func:`weight_counts` ``wcounts``; also the layer's output elements per input row."""
    counts = counts.double()
    if isinstance(layer, nn.Linear):
        return counts @ wcounts, layer.out_features
    out = layer._conv_forward(counts, wcounts, None)  # [steps, G, *out_spatial]
    per_step = torch.stack((out.flatten(1).sum(1), counts.flatten(1).sum(1)), 1)
    return per_step, layer.out_channels * math.prod(out.shape[2:])


def dense_operations(layer: nn.Module, x: torch.Tensor, rows: int) -> float:
    """Dense ops of a call on ``x`` (``rows`` rows): every input and weight counted as nonzero."""
    if isinstance(layer, nn.Linear):
        return float(rows * layer.in_features * layer.out_features)
    return float(rows) * _conv_dense_per_row(layer, tuple(x.shape[1:]))


_DENSE_CACHE: dict[tuple, float] = {}


def _conv_dense_per_row(layer: nn.Module, input_shape: tuple[int, ...]) -> float:
    """Dense ops of one input row ``[C, *spatial]``: the conv of all-ones input and weights (padding adds 0)."""
    key = (
        type(layer), input_shape, layer.out_channels, layer.groups, tuple(layer.weight.shape), layer.stride,
        layer.padding, layer.dilation, layer.padding_mode,
    )
    if key not in _DENSE_CACHE:
        groups = layer.groups
        w = torch.full((groups, *layer.weight.shape[1:]), layer.out_channels / groups, dtype=torch.float64)
        ones = torch.ones((1, *input_shape), dtype=torch.float64)
        _DENSE_CACHE[key] = float(layer._conv_forward(ones, w, None).sum())
    return _DENSE_CACHE[key]


# ---------------------------------------------------------------------------------------------------------------
# reductions shared by the functional API and the Metric classes
# ---------------------------------------------------------------------------------------------------------------


def _require_samples(samples: torch.Tensor | int, what: str) -> float:
    n = float(samples)
    if n <= 0:
        raise RuntimeError(f"{what}: no samples seen (compute before update, or a probe that saw no forward pass)")
    return n


def reduce_synaptic_operations(
    names: Sequence[str], acs: torch.Tensor, macs: torch.Tensor, dense: torch.Tensor, samples: torch.Tensor | int
) -> dict[str, torch.Tensor]:
    """Per-sample synaptic operations from per-layer totals: keys ``effective_acs``, ``effective_macs``,
    ``dense`` and ``<key>/<layer>``."""
    n = _require_samples(samples, "synaptic_operations")
    out = {"effective_acs": acs.sum() / n, "effective_macs": macs.sum() / n, "dense": dense.sum() / n}
    for i, name in enumerate(names):
        out[f"effective_acs/{name}"] = acs[i] / n
        out[f"effective_macs/{name}"] = macs[i] / n
        out[f"dense/{name}"] = dense[i] / n
    return out


def reduce_spike_rate(names: Sequence[str], nonzero: torch.Tensor, numel: torch.Tensor) -> dict[str, torch.Tensor]:
    """Spike rate ``spikes / (neurons x steps x samples)`` over all layers (``spike_rate``) and per layer."""
    if int(numel.sum()) == 0:
        raise RuntimeError("spike_rate: no neuron outputs seen (compute before update?)")
    nonzero, numel = nonzero.double(), numel.double()
    out = {"spike_rate": nonzero.sum() / numel.sum()}
    for i, name in enumerate(names):
        out[f"spike_rate/{name}"] = nonzero[i] / numel[i]
    return out


def reduce_spikes_per_sample(
    names: Sequence[str], nonzero: torch.Tensor, samples: torch.Tensor | int
) -> dict[str, torch.Tensor]:
    """Spikes per sample over all layers (``spikes_per_sample``) and per layer."""
    n = _require_samples(samples, "spikes_per_sample")
    nonzero = nonzero.double()
    out = {"spikes_per_sample": nonzero.sum() / n}
    for i, name in enumerate(names):
        out[f"spikes_per_sample/{name}"] = nonzero[i] / n
    return out


def batch_activation_sparsity(nonzero: torch.Tensor, numel: torch.Tensor) -> torch.Tensor:
    """One batch's NeuroBench activation sparsity ``1 - sum(nonzero) / sum(numel)`` over all neuron layers."""
    total = numel.sum()
    if int(total) == 0:
        raise RuntimeError("activation_sparsity: no neuron outputs in this batch")
    return (total - nonzero.sum()).double() / total.double()


def reduce_dead_neuron_fraction(
    names: Sequence[str], sizes: Sequence[int], spike_counts: torch.Tensor
) -> dict[str, torch.Tensor]:
    """Fraction of neurons with zero spikes, over all layers and per layer (``spike_counts``: layers concatenated)."""
    if spike_counts.numel() == 0 or spike_counts.numel() != sum(sizes):
        raise RuntimeError("dead_neuron_fraction: no neuron outputs seen (compute before update?)")
    dead = spike_counts == 0
    out = {"dead_neuron_fraction": dead.double().mean()}
    for name, part in zip(names, dead.split(list(sizes)), strict=True):
        out[f"dead_neuron_fraction/{name}"] = part.double().mean()
    return out


# ---------------------------------------------------------------------------------------------------------------
# per-model functional API: one forward pass under a probe
# ---------------------------------------------------------------------------------------------------------------


def probe_forward(model: nn.Module, x, **probe_kwargs) -> ProbeStats:
    """Run ``model(x)`` once without gradients under an :class:`SNNProbe` and return what it saw."""
    from .probe import SNNProbe

    probe = SNNProbe(model, **probe_kwargs)
    with probe, torch.no_grad():
        model(x)
    return probe.collect()


def synaptic_operations(model: nn.Module, x, **probe_kwargs) -> dict[str, torch.Tensor]:
    """Per-sample effective ACs, effective MACs and dense ops of one forward pass ``model(x)``, total and per layer.

    ``probe_kwargs`` go to :class:`~lit_snn.metrics.probe.SNNProbe` (``neurons``, ``synapses``, ``batch_dim``).
    """
    s = probe_forward(model, x, **probe_kwargs)
    return reduce_synaptic_operations(s.synaptic_names, s.effective_acs, s.effective_macs, s.dense, s.num_samples)


def spike_rate(model: nn.Module, x, **probe_kwargs) -> dict[str, torch.Tensor]:
    """Spike rate of one forward pass, over all neuron layers and per layer."""
    s = probe_forward(model, x, **probe_kwargs)
    return reduce_spike_rate(s.neuron_names, s.spikes, s.outputs)


def spikes_per_sample(model: nn.Module, x, **probe_kwargs) -> dict[str, torch.Tensor]:
    """Spikes per sample of one forward pass, over all neuron layers and per layer."""
    s = probe_forward(model, x, **probe_kwargs)
    return reduce_spikes_per_sample(s.neuron_names, s.spikes, s.num_samples)


def activation_sparsity(model: nn.Module, x, **probe_kwargs) -> torch.Tensor:
    """NeuroBench activation sparsity of one batch: ``1 - nonzero / all`` neuron outputs (all layers and steps)."""
    s = probe_forward(model, x, **probe_kwargs)
    return batch_activation_sparsity(s.spikes, s.outputs)


def dead_neuron_fraction(model: nn.Module, x, **probe_kwargs) -> dict[str, torch.Tensor]:
    """Fraction of neurons that never fire during one forward pass, over all layers and per layer."""
    s = probe_forward(model, x, **probe_kwargs)
    return reduce_dead_neuron_fraction(s.neuron_names, s.neuron_sizes, s.spike_counts)


def connection_sparsity(model: nn.Module, synapses=None) -> float:
    """Zero weights / all weights over the synaptic layers (model declarations, discovery or explicit list)."""
    layers = resolve_synaptic_layers(model, synapses)
    total = sum(m.weight.numel() for m in layers.values())
    nonzero = sum(int(torch.count_nonzero(m.weight.detach())) for m in layers.values())
    return (total - nonzero) / total


def parameter_count(model: nn.Module) -> int:
    """Number of parameters (shared parameters once)."""
    return sum(p.numel() for p in model.parameters())


def footprint(model: nn.Module) -> int:
    """Bytes of parameters plus persistent buffers (what a checkpoint holds), without membrane state.

    Non-persistent buffers -- snnTorch keeps ``mem`` / ``syn`` there, sized by the last batch -- are excluded.
    """
    seen: set[int] = set()
    size = 0
    for p in model.parameters():
        if id(p) not in seen:
            seen.add(id(p))
            size += p.numel() * p.element_size()
    for module in model.modules():
        for name, b in module._buffers.items():
            if b is None or name in module._non_persistent_buffers_set or id(b) in seen:
                continue
            seen.add(id(b))
            size += b.numel() * b.element_size()
    return size
