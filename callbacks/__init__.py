"""Lightning callbacks for spiking networks (installed as ``lit_snn.callbacks``).

- :class:`ProgressiveSparsity`: neuron-level structured sparsity growing on a schedule.
"""

from .progressive_sparsity import ProgressiveSparsity, restore_pruning

__all__ = ["ProgressiveSparsity", "restore_pruning"]
