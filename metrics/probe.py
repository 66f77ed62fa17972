"""A small probe that watches a network through forward hooks and counts what the SNN metrics need.

Hooks (registered by :meth:`SNNProbe.attach`, removed by :meth:`SNNProbe.detach`; the probe is also a context
manager):

* the network itself (forward pre-hook): reads the batch size ``B`` from dim ``batch_dim`` of its first tensor input
  and adds ``B`` to the samples seen. ``batch_dim=1`` (default) is lit-snn's time-first layout ``[T, B, ...]``;
  use ``batch_dim=0`` for ``[B, ...]`` or ``[B, T, ...]`` input. The network must be called once per batch (a model
  that loops over time inside its ``forward`` -- snnTorch style -- is fine; to measure an outer loop that calls the
  network once per step, wrap the loop in a module). A hooked layer or neuron that runs outside a forward pass of
  the network raises (its samples could not be counted).
* every synaptic layer (forward pre-hook): counts its synaptic operations with
  :func:`~lit_snn.metrics.functional.layer_synaptic_operations`, grouping input rows into time steps of ``B`` rows
  (a time-first layer sees ``[T, B, ...]`` or ``[T*B, ...]`` once; a step-by-step model calls it T times on
  ``[B, ...]``; both give the same counts).
* every neuron module (forward hook): counts nonzero outputs (spikes) in total and per neuron. The neuron's layout
  comes from its type (lit-snn and SpikingJelly ``step_mode='m'`` neurons are ``[T, B, *shape]``, snnTorch and
  SpikingJelly single-step neurons ``[B, *shape]``); other modules given as neurons use ``neuron_step_mode``.
  A tuple output (snnTorch's ``(spk, mem)``) is read as its first element.

Hooks only count (a few elementwise passes and one small matvec/conv per layer, no host synchronisation);
:meth:`SNNProbe.collect` hands the totals since the last collect to the metrics as :class:`ProbeStats`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from .discovery import MULTI, SINGLE, resolve_neurons, resolve_synaptic_layers
from .discovery import neuron_step_mode as _step_mode
from .functional import layer_synaptic_operations


@dataclass
class ProbeStats:
    """What a probe counted since its last :meth:`~SNNProbe.collect` (one batch, in the metrics' use).

    Synaptic layers (``[L]`` float64 tensors, in ``synaptic_names`` order): ``effective_acs``, ``effective_macs``,
    ``dense``, ``input_nonzero``, ``input_numel``, ``output_numel``, ``rows`` (samples x steps x positions), and
    ``fan_in`` (python ints). Neuron layers (``[K]`` int64 tensors, in ``neuron_names`` order): ``spikes`` (nonzero
    outputs), ``outputs`` (all outputs = neurons x steps x samples); ``spike_counts``: spikes per neuron, the layers
    concatenated (``neuron_sizes`` neurons each). ``num_samples``: samples (sum of the batch sizes seen).
    """

    num_samples: int
    synaptic_names: tuple[str, ...]
    fan_in: tuple[int, ...]
    effective_acs: torch.Tensor
    effective_macs: torch.Tensor
    dense: torch.Tensor
    input_nonzero: torch.Tensor
    input_numel: torch.Tensor
    output_numel: torch.Tensor
    rows: torch.Tensor
    neuron_names: tuple[str, ...]
    neuron_sizes: tuple[int, ...]
    spikes: torch.Tensor
    outputs: torch.Tensor
    spike_counts: torch.Tensor


def _fan_in(layer: nn.Module) -> int:
    """Inputs per output neuron: ``in_features`` or ``C_in / groups * prod(kernel)``."""
    if isinstance(layer, nn.Linear):
        return layer.in_features
    return int(layer.weight.shape[1] * math.prod(layer.weight.shape[2:]))


def _first_tensor(args, kwargs) -> torch.Tensor | None:
    for a in list(args) + list(kwargs.values()):
        if isinstance(a, torch.Tensor):
            return a
        if isinstance(a, (tuple, list)) and a and isinstance(a[0], torch.Tensor):
            return a[0]
    return None


class _LayerTotals:
    __slots__ = ("acs", "macs", "dense", "nonzero", "numel", "out_numel", "rows")

    def __init__(self) -> None:
        self.acs = self.macs = self.nonzero = None
        self.dense = 0.0
        self.numel = self.out_numel = self.rows = 0


class _NeuronTotals:
    __slots__ = ("counts", "outputs", "shape")

    def __init__(self) -> None:
        self.counts: torch.Tensor | None = None
        self.outputs = 0
        self.shape: tuple[int, ...] | None = None


class SNNProbe:
    """Forward hooks on a network's neurons and synaptic layers that count spikes and synaptic operations.

    Args:
        network: the module that is called once per batch with the (time-first) input.
        neurons: neuron modules (list or ``{name: module}``); default: ``network.neuron_layers()`` if declared, else
            every lit-snn, snnTorch and SpikingJelly neuron found by type. Raises if none is found.
        synapses: synaptic layers (Linear/Conv1d/2d/3d); default: ``network.synaptic_layers()`` if declared, else
            found by type. Other layer types raise.
        batch_dim: where the batch is in the network's input: 1 for ``[T, B, ...]`` (default), 0 for ``[B, ...]``
            or ``[B, T, ...]``.
        neuron_step_mode: layout of neuron modules of other types (given explicitly): ``"multi"`` (``[T, B, ...]``)
            or ``"single"`` (``[B, ...]``); default ``"multi"`` for ``batch_dim=1``, ``"single"`` for 0.

    >>> from lit_snn.neurons import LIF
    >>> net = nn.Sequential(nn.Linear(4, 3), LIF())
    >>> probe = SNNProbe(net)
    >>> with probe, torch.no_grad():
    ...     _ = net(torch.ones(5, 2, 4))          # T=5 steps, B=2 samples
    >>> stats = probe.collect()
    >>> stats.num_samples, stats.synaptic_names, stats.neuron_names, stats.neuron_sizes
    (2, ('0',), ('1',), (3,))
    """

    def __init__(
        self,
        network: nn.Module,
        neurons=None,
        synapses=None,
        *,
        batch_dim: int = 1,
        neuron_step_mode: str | None = None,
    ) -> None:
        if not isinstance(network, nn.Module):
            raise TypeError(f"network must be an nn.Module, got {type(network).__name__}")
        if batch_dim not in (0, 1):
            raise ValueError(f"batch_dim must be 0 ([B, ...] input) or 1 (time-first [T, B, ...]), got {batch_dim!r}")
        default_mode = neuron_step_mode or (MULTI if batch_dim == 1 else SINGLE)
        if default_mode not in (MULTI, SINGLE):
            raise ValueError(f"neuron_step_mode must be 'multi', 'single' or None, got {neuron_step_mode!r}")
        self.network = network
        self.batch_dim = batch_dim
        self.neurons = resolve_neurons(network, neurons)
        self.synapses = resolve_synaptic_layers(network, synapses)
        self._modes = {name: _step_mode(m, default_mode) for name, m in self.neurons.items()}
        self._handles: list = []
        self._batch_size: int | None = None
        self._reset_totals()

    # -- lifecycle ------------------------------------------------------------------------------------------------
    @property
    def attached(self) -> bool:
        return bool(self._handles)

    def attach(self) -> SNNProbe:
        """Register the hooks (idempotent) and start counting from zero."""
        if self.attached:
            return self
        self._reset_totals()
        self._handles.append(self.network.register_forward_pre_hook(self._on_network, with_kwargs=True))
        self._handles.append(self.network.register_forward_hook(self._after_network))
        for i, layer in enumerate(self.synapses.values()):
            self._handles.append(layer.register_forward_pre_hook(self._synapse_hook(i)))
        for i, (name, module) in enumerate(self.neurons.items()):
            self._handles.append(module.register_forward_hook(self._neuron_hook(i, name)))
        return self

    def detach(self) -> None:
        """Remove every hook; the network runs exactly as before."""
        for h in self._handles:
            h.remove()
        self._handles.clear()
        self._batch_size = None

    def __enter__(self) -> SNNProbe:
        return self.attach()

    def __exit__(self, *exc) -> None:
        self.detach()

    def _reset_totals(self) -> None:
        self._samples = 0
        self._layers = [_LayerTotals() for _ in self.synapses]
        self._neuron_totals = [_NeuronTotals() for _ in self.neurons]

    # -- hooks ------------------------------------------------------------------------------------------------------
    def _on_network(self, module, args, kwargs) -> None:
        x = _first_tensor(args, kwargs)
        if x is None or x.dim() <= self.batch_dim:
            shape = None if x is None else tuple(x.shape)
            raise ValueError(
                f"SNNProbe reads the batch size from dim {self.batch_dim} of {type(module).__name__}'s first tensor "
                f"input, got {shape}; set batch_dim (1 for [T, B, ...], 0 for [B, ...])"
            )
        self._batch_size = int(x.shape[self.batch_dim])
        self._samples += self._batch_size

    def _after_network(self, module, args, output) -> None:
        self._batch_size = None  # layers called outside the network's forward are an error, not a stale count

    def _need_batch(self, where: str) -> int:
        if self._batch_size is None:
            raise RuntimeError(
                f"SNNProbe: {where} ran outside a forward pass of the probed network "
                f"{type(self.network).__name__}; probe the module that is called with the batch"
            )
        return self._batch_size

    def _synapse_hook(self, i: int):
        name = list(self.synapses)[i]

        def hook(layer, args) -> None:
            batch = self._need_batch(f"synaptic layer {name!r}")
            with torch.no_grad():
                ops = layer_synaptic_operations(layer, args[0], batch, self.batch_dim)
            t = self._layers[i]
            if t.acs is None:
                t.acs, t.macs, t.nonzero = ops.effective_acs, ops.effective_macs, ops.input_nonzero
            else:
                t.acs = t.acs + ops.effective_acs
                t.macs = t.macs + ops.effective_macs
                t.nonzero = t.nonzero + ops.input_nonzero
            t.dense += ops.dense
            t.numel += ops.input_numel
            t.out_numel += ops.output_numel
            t.rows += ops.rows

        return hook

    def _neuron_hook(self, i: int, name: str):
        mode = self._modes[name]

        def hook(module, args, output) -> None:
            self._need_batch(f"neuron {name!r}")
            out = output[0] if isinstance(output, (tuple, list)) else output
            if not isinstance(out, torch.Tensor):
                raise TypeError(f"neuron {name!r} returned {type(output).__name__}, expected a spike tensor")
            lead = 2 if mode == MULTI else 1
            if out.dim() < lead:
                raise ValueError(
                    f"neuron {name!r} ({mode}-step) returned shape {tuple(out.shape)}: expected "
                    f"{'[T, B, ...]' if mode == MULTI else '[B, ...]'}"
                )
            shape = tuple(out.shape[lead:])
            t = self._neuron_totals[i]
            if t.shape is not None and t.shape != shape:
                raise ValueError(f"neuron {name!r} changed its shape from {t.shape} to {shape} within one batch")
            with torch.no_grad():
                # float32 sums are exact below 2**24 rows per call; the per-neuron totals are int64
                out = out.detach()
                spikes = torch.ne(out, 0, out=torch.empty(out.shape, dtype=torch.float32, device=out.device))
                counts = spikes.view(-1, math.prod(shape)).sum(0).long()
            t.counts = counts if t.counts is None else t.counts + counts
            t.outputs += out.numel()
            t.shape = shape

        return hook

    # -- results ----------------------------------------------------------------------------------------------------
    def collect(self) -> ProbeStats:
        """Totals since the last collect (or attach), then start again from zero. Raises if nothing ran."""
        if self._samples == 0:
            raise RuntimeError(
                f"SNNProbe.collect: no forward pass of {type(self.network).__name__} since the last collect "
                "(is the probe attached?)"
            )
        silent_neurons = [n for n, t in zip(self.neurons, self._neuron_totals, strict=True) if t.counts is None]
        silent_layers = [n for n, t in zip(self.synapses, self._layers, strict=True) if t.acs is None]
        if silent_neurons or silent_layers:
            raise RuntimeError(
                "SNNProbe.collect: modules that never ran in this forward pass: "
                f"neurons {silent_neurons}, synaptic layers {silent_layers}; pass neurons=/synapses= to measure the "
                "modules the model really uses"
            )
        device = self._layers[0].acs.device

        def f64(values) -> torch.Tensor:
            return torch.tensor(values, dtype=torch.float64, device=device)

        layers = self._layers
        stats = ProbeStats(
            num_samples=self._samples,
            synaptic_names=tuple(self.synapses),
            fan_in=tuple(_fan_in(m) for m in self.synapses.values()),
            effective_acs=torch.stack([t.acs for t in layers]),
            effective_macs=torch.stack([t.macs for t in layers]),
            dense=f64([t.dense for t in layers]),
            input_nonzero=torch.stack([t.nonzero for t in layers]),
            input_numel=f64([t.numel for t in layers]),
            output_numel=f64([t.out_numel for t in layers]),
            rows=f64([t.rows for t in layers]),
            neuron_names=tuple(self.neurons),
            neuron_sizes=tuple(math.prod(t.shape) for t in self._neuron_totals),
            spikes=torch.stack([t.counts.sum() for t in self._neuron_totals]),
            outputs=torch.tensor([t.outputs for t in self._neuron_totals], dtype=torch.long, device=device),
            spike_counts=torch.cat([t.counts for t in self._neuron_totals]),
        )
        self._reset_totals()
        return stats
