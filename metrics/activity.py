"""torchmetrics ``Metric`` classes fed by an :class:`~lit_snn.metrics.probe.SNNProbe`.

Every metric's ``update(stats)`` takes the :class:`~lit_snn.metrics.probe.ProbeStats` of one batch
(``probe.collect()``) and only adds to its states; ``compute()`` only reduces (with the ``reduce_*`` functions of
:mod:`lit_snn.metrics.functional`, so functional and class give the same numbers). States are declared with
``add_state(..., dist_reduce_fx="sum")``, so under DDP every process adds its own batches and ``compute`` gives the
figure over all of them.

Per-layer states take their length at the first ``update`` (the probe knows the layers; neuron counts per neuron
are known only after a forward pass); later updates must come from the same layers. ``compute`` before any
``update`` raises.

>>> import torch
>>> from torch import nn
>>> from lit_snn.neurons import LIF
>>> from lit_snn.metrics import SNNProbe, SynapticOperations, SpikeRate
>>> net = nn.Sequential(nn.Linear(4, 3, bias=False), LIF())
>>> probe, synops, rate = SNNProbe(net), SynapticOperations(), SpikeRate()
>>> with probe, torch.no_grad():
...     for _ in range(2):
...         _ = net(torch.ones(5, 2, 4))     # T=5, B=2, binary input
...         stats = probe.collect()
...         synops.update(stats); rate.update(stats)
>>> float(synops.compute()["effective_acs"])   # 5 steps x 4 inputs x 3 outputs per sample
60.0
"""

from __future__ import annotations

import torch
from torchmetrics import Metric

from .functional import (
    reduce_dead_neuron_fraction,
    reduce_spike_rate,
    reduce_spikes_per_sample,
    reduce_synaptic_operations,
)
from .probe import ProbeStats


class ProbeMetric(Metric):
    """Base of the probe-fed metrics: lazily sized per-layer states and a strict ``compute``."""

    is_differentiable = False
    higher_is_better = None
    full_state_update = True  # per-layer states are sized at the first update; forward() must see the full state

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self._layouts: dict[str, tuple] = {}

    def _check_stats(self, stats) -> ProbeStats:
        if not isinstance(stats, ProbeStats):
            raise TypeError(
                f"{type(self).__name__}.update expects the ProbeStats of a batch (SNNProbe.collect()), "
                f"got {type(stats).__name__}"
            )
        return stats

    def _layout(self, kind: str, layout: tuple) -> None:
        known = self._layouts.setdefault(kind, layout)
        if known != layout:
            raise ValueError(
                f"{type(self).__name__}: the {kind} layers changed between updates: {known} then {layout}; "
                "use one metric per model"
            )

    def _add(self, attr: str, value: torch.Tensor) -> None:
        state = getattr(self, attr)
        value = value.to(device=state.device, dtype=state.dtype)
        if state.numel() == 0 and value.numel() != 0:
            setattr(self, attr, value.clone())
        else:
            setattr(self, attr, state + value)

    @property
    def synaptic_names(self) -> tuple[str, ...]:
        """Names of the synaptic layers seen (empty before the first update that has them)."""
        return self._layouts.get("synaptic", ((), ()))[0]

    @property
    def neuron_names(self) -> tuple[str, ...]:
        """Names of the neuron layers seen (empty before the first update that has them)."""
        return self._layouts.get("neuron", ((), ()))[0]

    @property
    def neuron_sizes(self) -> tuple[int, ...]:
        """Neurons per neuron layer (per sample and step), in ``neuron_names`` order."""
        return self._layouts.get("neuron", ((), ()))[1]

    def _names(self, kind: str) -> tuple[str, ...]:
        if self._update_count == 0 or kind not in self._layouts:
            raise RuntimeError(f"{type(self).__name__}.compute called before update: no batches seen")
        return self._layouts[kind][0]


def _layer_state(metric: Metric, name: str, dtype: torch.dtype) -> None:
    metric.add_state(name, default=torch.zeros(0, dtype=dtype), dist_reduce_fx="sum")


class SynapticOperations(ProbeMetric):
    """Per-sample effective ACs, effective MACs and dense synaptic operations, total and per synaptic layer.

    ``compute()`` returns ``{"effective_acs", "effective_macs", "dense"}`` and ``"<key>/<layer>"``: each summed over
    every call and time step, divided by the samples seen (NeuroBench 2.3's ``SynapticOperations``; see
    :mod:`lit_snn.metrics.functional` for the definitions and the per-time-step AC/MAC decision).
    """

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        for name in ("acs", "macs", "dense"):
            _layer_state(self, name, torch.float64)
        self.add_state("samples", default=torch.tensor(0, dtype=torch.long), dist_reduce_fx="sum")

    def update(self, stats: ProbeStats) -> None:
        stats = self._check_stats(stats)
        self._layout("synaptic", (stats.synaptic_names, stats.fan_in))
        self._add("acs", stats.effective_acs)
        self._add("macs", stats.effective_macs)
        self._add("dense", stats.dense)
        self.samples += stats.num_samples

    def compute(self) -> dict[str, torch.Tensor]:
        names = self._names("synaptic")
        return reduce_synaptic_operations(names, self.acs, self.macs, self.dense, self.samples)


class SpikeRate(ProbeMetric):
    """Spike rate ``spikes / (neurons x time steps x samples)``: ``spike_rate`` over all neuron layers (weighted by
    their size x steps) and ``spike_rate/<layer>``."""

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        _layer_state(self, "spikes", torch.long)
        _layer_state(self, "outputs", torch.long)

    def update(self, stats: ProbeStats) -> None:
        stats = self._check_stats(stats)
        self._layout("neuron", (stats.neuron_names, stats.neuron_sizes))
        self._add("spikes", stats.spikes)
        self._add("outputs", stats.outputs)

    def compute(self) -> dict[str, torch.Tensor]:
        return reduce_spike_rate(self._names("neuron"), self.spikes, self.outputs)


class SpikesPerSample(ProbeMetric):
    """Spikes per sample: ``spikes_per_sample`` over all neuron layers and ``spikes_per_sample/<layer>`` (the rate
    alone hides that a model with more time steps emits more spikes)."""

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        _layer_state(self, "spikes", torch.long)
        self.add_state("samples", default=torch.tensor(0, dtype=torch.long), dist_reduce_fx="sum")

    def update(self, stats: ProbeStats) -> None:
        stats = self._check_stats(stats)
        self._layout("neuron", (stats.neuron_names, stats.neuron_sizes))
        self._add("spikes", stats.spikes)
        self.samples += stats.num_samples

    def compute(self) -> dict[str, torch.Tensor]:
        return reduce_spikes_per_sample(self._names("neuron"), self.spikes, self.samples)


class ActivationSparsity(ProbeMetric):
    """NeuroBench activation sparsity, weighted by samples seen.

    Per batch ``a_b = 1 - sum(nonzero outputs) / sum(outputs)`` over all neuron layers and time steps (the network's
    input is not included); ``compute() = sum_b B_b * a_b / sum_b B_b`` with ``B_b`` the batch size. NeuroBench
    divides by the dataset length instead, which is biased when batches are dropped. Returns a 0-dim tensor.
    """

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.add_state("weighted", default=torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("samples", default=torch.tensor(0, dtype=torch.long), dist_reduce_fx="sum")

    def update(self, stats: ProbeStats) -> None:
        stats = self._check_stats(stats)
        self._layout("neuron", (stats.neuron_names, stats.neuron_sizes))
        if stats.weighted_sparsity is None:  # a batch without neuron outputs (or stats not made by a probe)
            raise RuntimeError("activation_sparsity: no neuron outputs in a batch")
        self.weighted += stats.weighted_sparsity.to(self.weighted.device)
        self.samples += stats.num_samples

    def compute(self) -> torch.Tensor:
        self._names("neuron")
        return self.weighted / self.samples.double()


class DeadNeuronFraction(ProbeMetric):
    """Fraction of neurons that never fired over all data seen: ``dead_neuron_fraction`` and per layer.

    State: spikes per neuron (all layers concatenated), summed over batches and processes; dead = count 0.
    """

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        _layer_state(self, "spike_counts", torch.long)

    def update(self, stats: ProbeStats) -> None:
        stats = self._check_stats(stats)
        self._layout("neuron", (stats.neuron_names, stats.neuron_sizes))
        self._add("spike_counts", stats.spike_counts)

    def compute(self) -> dict[str, torch.Tensor]:
        names = self._names("neuron")
        return reduce_dead_neuron_fraction(names, self._layouts["neuron"][1], self.spike_counts)
