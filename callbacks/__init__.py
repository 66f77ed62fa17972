"""Lightning callbacks for spiking networks (installed as ``lit_snn.callbacks``).

- :class:`SNNMetricsCallback`: synaptic operations, spike activity, sparsity and energy, logged per epoch.
- :class:`ProgressiveSparsity`: neuron-level structured sparsity growing on a schedule.
- :class:`SpikeMonitor`: spike rasters, firing-rate histograms and membrane traces, logged as images.
- :class:`EnergyReport`: per-layer spike rates, synaptic operations and energy estimates after testing.
"""

from .energy_report import EnergyReport
from .progressive_sparsity import ProgressiveSparsity, restore_pruning
from .snn_metrics import SNNMetricsCallback
from .spike_monitor import SpikeMonitor

__all__ = ["EnergyReport", "ProgressiveSparsity", "SNNMetricsCallback", "SpikeMonitor", "restore_pruning"]
