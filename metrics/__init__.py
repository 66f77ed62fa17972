"""SNN metrics for any PyTorch / Lightning project: synaptic operations, spike rate, sparsity, dead neurons, energy.

Needs only torch and torchmetrics. A :class:`SNNProbe` hooks a network's neurons (lit-snn, snnTorch and
SpikingJelly, found by type or given explicitly) and synaptic layers (Linear, Conv1d/2d/3d); the
:mod:`torchmetrics` classes below take what it collected per batch. Functional twins live in
:mod:`lit_snn.metrics.functional`; definitions follow NeuroBench 2.3 (see that module's docstring).

>>> import torch
>>> from torch import nn
>>> from lit_snn.neurons import LIF
>>> from lit_snn.metrics import SNNProbe, SpikeRate, SynapticOperations
>>> net = nn.Sequential(nn.Linear(4, 3), LIF())
>>> probe, synops, rate = SNNProbe(net), SynapticOperations(), SpikeRate()
>>> with probe, torch.no_grad():
...     _ = net(torch.ones(5, 2, 4))
...     stats = probe.collect()
>>> synops.update(stats); rate.update(stats)
>>> sorted(synops.compute())[:3]
['dense', 'dense/0', 'effective_acs']
"""

from .activity import (
    ActivationSparsity,
    DeadNeuronFraction,
    ProbeMetric,
    SpikeRate,
    SpikesPerSample,
    SynapticOperations,
)
from .discovery import SUPPORTED_SYNAPTIC_TYPES, neuron_types, resolve_neurons, resolve_synaptic_layers
from .energy import (
    HARDWARE_PRESETS,
    OPERATION_PRESETS,
    DataMovementEnergy,
    HardwareModel,
    LayerActivity,
    OperationCosts,
    OperationEnergy,
    data_movement_energy,
    hardware_model,
    operation_costs,
    operation_energy,
    qnn_bits,
    twin_qnn_density,
)
from .probe import ProbeStats, SNNProbe

__all__ = [
    "HARDWARE_PRESETS", "OPERATION_PRESETS", "SUPPORTED_SYNAPTIC_TYPES", "ActivationSparsity", "DataMovementEnergy",
    "DeadNeuronFraction", "HardwareModel", "LayerActivity", "OperationCosts", "OperationEnergy", "ProbeMetric",
    "ProbeStats", "SNNProbe", "SpikeRate", "SpikesPerSample", "SynapticOperations", "data_movement_energy",
    "hardware_model", "neuron_types", "operation_costs", "operation_energy", "qnn_bits", "resolve_neurons",
    "resolve_synaptic_layers", "twin_qnn_density",
]
