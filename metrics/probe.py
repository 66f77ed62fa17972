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

Hooks only count, with no host synchronisation: a synaptic call writes two indicator passes over its input into a
reused buffer (``x != 0`` and ``|x| = 1``, each summed over the batch) and one small matmul with the layer's
nonzero-weight counts (cached per weight tensor and version in eval mode, recomputed per call in training mode);
when a Linear's input is the very tensor a neuron just emitted (same object, unchanged version), the neuron's
per-step counts are reused and only the ``|x| = 1`` pass runs. A lit-snn neuron (any backend) emits exactly 0 or 1
by contract (:attr:`~lit_snn.neurons.SpikingNeuron.binary_spikes`), so its hook is one batch sum of its output, and
the Linear that reads those spikes runs no pass at all (every nonzero input is a spike: ACs only). Per-call results
are kept as small tensors and reduced (with each batch's activation sparsity) every 64 batches and at
:meth:`SNNProbe.collect`, which hands the totals since the last collect to the metrics as :class:`ProbeStats` -- per
batch or once per epoch, with the same values (all counts are integers in float64 or int64; the weighted activation
sparsity is summed in batch order).
Weights are assumed to change only through tensor operations (which bump their version) or by being replaced.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from lit_snn.neurons import SpikingNeuron

from .discovery import MULTI, SINGLE, resolve_neurons, resolve_synaptic_layers
from .discovery import neuron_step_mode as _step_mode
from .functional import dense_operations, layer_input_steps, step_counts, step_operations, weight_counts


@dataclass
class ProbeStats:
    """What a probe counted since its last :meth:`~SNNProbe.collect` (one batch, in the metrics' use).

    Synaptic layers (``[L]`` float64 tensors, in ``synaptic_names`` order): ``effective_acs``, ``effective_macs``,
    ``dense``, ``input_nonzero``, ``input_numel``, ``output_numel``, ``rows`` (samples x steps x positions), and
    ``fan_in`` (python ints). Neuron layers (``[K]`` int64 tensors, in ``neuron_names`` order): ``spikes`` (nonzero
    outputs), ``outputs`` (all outputs = neurons x steps x samples); ``spike_counts``: spikes per neuron, the layers
    concatenated (``neuron_sizes`` neurons each). ``num_samples``: samples (sum of the batch sizes seen).
    ``weighted_sparsity``: ``sum_b B_b * a_b`` over the batches seen (0-dim float64), ``B_b`` the batch size and
    ``a_b = 1 - spikes_b / outputs_b`` the batch's NeuroBench activation sparsity (all neuron layers); ``None`` if a
    batch had no neuron outputs.
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
    weighted_sparsity: torch.Tensor | None = None


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


def _version(t: torch.Tensor) -> int | None:
    """``t._version`` (bumped by every in-place op); inference tensors have none."""
    return None if t.is_inference() else t._version


#: pending calls after which the probe folds its per-call records into running totals (bounds memory)
_FOLD_EVERY = 64


class _LayerTotals:
    """One synaptic layer: per-call records ``[steps, 2]`` (effective ops, nonzero inputs) and ``[steps]`` (analog),
    folded into ``acs``/``macs``/``nonzero`` (0-dim float64) now and then; python sums of the shape figures."""

    __slots__ = ("ran", "steps", "analog", "acs", "macs", "nonzero", "dense", "numel", "out_numel", "rows")

    def __init__(self) -> None:
        self.ran = False
        self.steps: list[torch.Tensor] = []
        self.analog: list[torch.Tensor] = []
        self.acs = self.macs = self.nonzero = None
        self.dense = 0.0
        self.numel = self.out_numel = self.rows = 0

    def fold(self) -> None:
        if not self.steps:
            return
        ops = torch.cat(self.steps) if len(self.steps) > 1 else self.steps[0]
        analog = torch.cat(self.analog) if len(self.analog) > 1 else self.analog[0]
        macs = ops[:, 0] @ analog.to(ops.dtype)  # integers in float64: exact in any order
        acs = ops[:, 0].sum() - macs
        nonzero = ops[:, 1].sum()
        if self.acs is None:
            self.acs, self.macs, self.nonzero = acs, macs, nonzero
        else:
            self.acs, self.macs, self.nonzero = self.acs + acs, self.macs + macs, self.nonzero + nonzero
        self.steps.clear()
        self.analog.clear()


class _NeuronTotals:
    """One neuron layer: per-call spike counts per step and neuron ``[steps, N]`` (float32, exact) with the batch
    each call belongs to, folded into ``counts`` (``[N]`` float64) now and then."""

    __slots__ = ("calls", "batches", "counts", "outputs", "shape")

    def __init__(self) -> None:
        self.calls: list[torch.Tensor] = []
        self.batches: list[int] = []
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

    @property
    def num_samples(self) -> int:
        """Samples seen since the last collect (or attach)."""
        return self._samples

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
        self._shared = None  # drop references to tensors of the last batch; the totals stay for collect
        self._weights = [None] * len(self.synapses)
        self._scratch_buffers = {}
        self._neuron_buffers = {}

    def __enter__(self) -> SNNProbe:
        return self.attach()

    def __exit__(self, *exc) -> None:
        self.detach()

    def _reset_totals(self) -> None:
        self._samples = 0
        self._layers = [_LayerTotals() for _ in self.synapses]
        self._neuron_totals = [_NeuronTotals() for _ in self.neurons]
        self._batch_sizes: list[int] = []  # pending batches (not yet folded): samples and neuron outputs
        self._batch_outputs: list[int] = []
        self._weighted: torch.Tensor | None = None  # sum_b B_b * a_b over folded batches (activation sparsity)
        self._empty_batch = False
        self._shared: tuple | None = None  # last neuron output, version, counts, batch, indicator
        self._weights: list[tuple | None] = [None] * len(self.synapses)
        self._scratch_buffers: dict[tuple, torch.Tensor] = {}
        self._neuron_buffers: dict[int, torch.Tensor] = {}

    def _scratch(self, shape: torch.Size, device: torch.device) -> torch.Tensor:
        """A float32 buffer of ``shape`` reused across calls (indicators are written there, then reduced)."""
        key = (tuple(shape), device)
        buf = self._scratch_buffers.get(key)
        if buf is None:
            if len(self._scratch_buffers) >= 16:
                self._scratch_buffers.clear()
            buf = self._scratch_buffers[key] = torch.empty(shape, dtype=torch.float32, device=device)
        return buf

    def _neuron_buffer(self, i: int, out: torch.Tensor) -> torch.Tensor:
        """Neuron layer ``i``'s own float32 buffer of ``out``'s shape (its spike indicator lives there until the
        layer's next call, for the synaptic layer that reads these spikes)."""
        buf = self._neuron_buffers.get(i)
        if buf is None or buf.shape != out.shape or buf.device != out.device:
            buf = self._neuron_buffers[i] = torch.empty(out.shape, dtype=torch.float32, device=out.device)
        return buf

    def _no_analog(self, steps: int, device: torch.device) -> torch.Tensor:
        """A reused all-False ``[steps]`` AC/MAC decision (a step of binary spikes does only ACs)."""
        key = ("no_analog", steps, device)
        flags = self._scratch_buffers.get(key)
        if flags is None:
            flags = self._scratch_buffers[key] = torch.zeros(steps, dtype=torch.bool, device=device)
        return flags

    def _weight_counts(self, i: int, layer: nn.Module) -> torch.Tensor:
        """:func:`weight_counts` of synaptic layer ``i``, recomputed when its weight is another tensor or was changed
        in place (version counter), and at every call in training mode (weights change between steps)."""
        weight = layer.weight
        cached = self._weights[i]
        if cached is not None and not layer.training and cached[0] is weight and cached[1] == _version(weight):
            return cached[2]
        counts = weight_counts(layer)
        self._weights[i] = (weight, _version(weight), counts)
        return counts

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
        self._batch_sizes.append(self._batch_size)
        self._batch_outputs.append(0)

    def _after_network(self, module, args, output) -> None:
        self._batch_size = None  # layers called outside the network's forward are an error, not a stale count
        self._shared = None
        if len(self._batch_sizes) >= _FOLD_EVERY:
            self._fold()

    def _need_batch(self, where: str) -> int:
        if self._batch_size is None:
            raise RuntimeError(
                f"SNNProbe: {where} ran outside a forward pass of the probed network "
                f"{type(self.network).__name__}; probe the module that is called with the batch"
            )
        return self._batch_size

    def _synapse_hook(self, i: int):
        name = list(self.synapses)[i]
        linear = isinstance(self.synapses[name], nn.Linear)

        def hook(layer, args) -> None:
            batch = self._need_batch(f"synaptic layer {name!r}")
            x_in = args[0]
            with torch.no_grad():
                x, xs, rows = layer_input_steps(layer, x_in, batch, self.batch_dim)
                counts = indicator = None
                shared = self._shared
                if (
                    linear and shared is not None and shared[0] is x_in and xs.shape[1] == shared[3]
                    and shared[2].shape == (xs.shape[0], xs.shape[2]) and shared[1] == _version(x_in)
                ):  # the input is the spike tensor a neuron just emitted: its counts per step are known
                    counts, indicator = shared[2], shared[4]
                    self._shared = (*shared[:4], None, shared[5])  # step_counts overwrites the indicator
                if counts is not None and shared[5]:  # a lit-snn neuron's spikes: 0 or 1 by contract, all ACs
                    analog = self._no_analog(xs.shape[0], xs.device)
                else:
                    counts, analog = step_counts(xs, self._scratch(xs.shape, xs.device), counts, indicator)
                per_step, outputs_per_row = step_operations(layer, counts, self._weight_counts(i, layer))
            t = self._layers[i]
            t.ran = True
            t.steps.append(per_step)
            t.analog.append(analog)
            t.dense += dense_operations(layer, x, rows)
            t.numel += x.numel()
            t.out_numel += rows * outputs_per_row
            t.rows += rows

        return hook

    def _neuron_hook(self, i: int, name: str):
        mode = self._modes[name]
        module = self.neurons[name]
        binary = isinstance(module, SpikingNeuron) and module.binary_spikes

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
                raise ValueError(f"neuron {name!r} changed its shape from {t.shape} to {shape} since the last collect")
            steps, batch = (out.shape[0], out.shape[1]) if mode == MULTI else (1, out.shape[0])
            with torch.no_grad():
                # spikes per step and neuron, summed over the batch (float32 sums of at most B ones: exact)
                o = out.detach()
                if binary:  # 0 or 1 by contract: the output is its own indicator
                    spikes = None
                    counts = o.reshape(steps, batch, math.prod(shape)).sum(1, dtype=torch.float32)
                else:
                    spikes = torch.ne(o, 0, out=self._neuron_buffer(i, o))  # kept for the next Linear's AC/MAC test
                    counts = spikes.view(steps, batch, math.prod(shape)).sum(1)
            t.calls.append(counts)
            t.batches.append(len(self._batch_sizes) - 1)
            t.outputs += out.numel()
            t.shape = shape
            self._batch_outputs[-1] += out.numel()
            if out.dim() == lead + 1:  # [T, B, N] or [B, N]: grouped by step as a Linear reading it groups them
                indicator = None if spikes is None else spikes.view(steps, batch, -1)
                self._shared = (out, _version(out), counts, batch, indicator, binary)
            else:
                self._shared = None

        return hook

    # -- results ----------------------------------------------------------------------------------------------------
    def _fold(self) -> None:
        """Reduce the pending per-call records into running totals (a few vectorised ops for all batches)."""
        for layer in self._layers:
            layer.fold()
        if not self._batch_sizes:
            return
        spikes: torch.Tensor | None = None  # spikes per pending batch, all neuron layers
        for t in self._neuron_totals:
            if not t.calls:
                continue
            calls = torch.cat(t.calls) if len(t.calls) > 1 else t.calls[0]  # [steps of all calls, N]
            per_neuron = calls.sum(0, dtype=torch.float64)
            t.counts = per_neuron if t.counts is None else t.counts + per_neuron
            batch_of_step = torch.tensor(
                [b for b, c in zip(t.batches, t.calls, strict=True) for _ in range(c.shape[0])], device=calls.device
            )
            per_batch = torch.zeros(len(self._batch_sizes), dtype=torch.float64, device=calls.device)
            per_batch.index_add_(0, batch_of_step, calls.sum(1, dtype=torch.float64))
            spikes = per_batch if spikes is None else spikes + per_batch
            t.calls.clear()
            t.batches.clear()
        if spikes is not None:
            if 0 in self._batch_outputs:
                self._empty_batch = True
            else:
                # NeuroBench's batch sparsity a_b = 1 - spikes_b / outputs_b, weighted by the batch size and summed
                # in batch order (cumsum: the same float64 additions as one update per batch)
                outputs = torch.tensor(self._batch_outputs, dtype=torch.float64, device=spikes.device)
                sizes = torch.tensor(self._batch_sizes, dtype=torch.float64, device=spikes.device)
                weighted = sizes * ((outputs - spikes) / outputs)
                if self._weighted is not None:
                    weighted = torch.cat((self._weighted.view(1), weighted))
                self._weighted = weighted.cumsum(0)[-1]
        self._batch_sizes.clear()
        self._batch_outputs.clear()

    def collect(self) -> ProbeStats:
        """Totals since the last collect (or attach), then start again from zero. Raises if nothing ran."""
        if self._samples == 0:
            raise RuntimeError(
                f"SNNProbe.collect: no forward pass of {type(self.network).__name__} since the last collect "
                "(is the probe attached?)"
            )
        silent_neurons = [n for n, t in zip(self.neurons, self._neuron_totals, strict=True) if t.shape is None]
        silent_layers = [n for n, t in zip(self.synapses, self._layers, strict=True) if not t.ran]
        if silent_neurons or silent_layers:
            raise RuntimeError(
                "SNNProbe.collect: modules that never ran in this forward pass: "
                f"neurons {silent_neurons}, synaptic layers {silent_layers}; pass neurons=/synapses= to measure the "
                "modules the model really uses"
            )
        self._fold()
        layers, neurons = self._layers, self._neuron_totals
        device = layers[0].acs.device if layers else neurons[0].counts.device

        def f64(values) -> torch.Tensor:
            return torch.tensor(values, dtype=torch.float64, device=device)

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
            neuron_sizes=tuple(math.prod(t.shape) for t in neurons),
            spikes=torch.stack([t.counts.sum() for t in neurons]).long(),
            outputs=torch.tensor([t.outputs for t in neurons], dtype=torch.long, device=device),
            spike_counts=torch.cat([t.counts for t in neurons]).long(),
            weighted_sparsity=None if self._empty_batch else self._weighted,
        )
        self._reset_totals()
        return stats
