"""Spiking neurons with a swappable backend (``custom`` pure PyTorch, ``snntorch``, ``spikingjelly``).

Use :func:`make_neuron` (``kind`` in ``lif``, ``if``, ``alif``, ``ttfs``); every neuron is a
:class:`SpikingNeuron` mapping ``[T, B, ...]`` currents to ``[T, B, ...]`` spikes.
"""

from .base import IF, LIF, AdaptiveLIF, FireOnceLIF, SpikingNeuron, beta_to_tau, tau_to_beta
from .factory import BACKENDS, KINDS, make_neuron, neuron_class
from .surrogate import SURROGATES, ATan, FastSigmoid, Gaussian, Sigmoid, Surrogate, Triangle, get_surrogate

__all__ = [
    "BACKENDS", "KINDS", "SURROGATES", "IF", "LIF", "ATan", "AdaptiveLIF", "FastSigmoid", "FireOnceLIF",
    "Gaussian", "Sigmoid", "SpikingNeuron", "Surrogate", "Triangle", "beta_to_tau", "get_surrogate",
    "make_neuron", "neuron_class", "tau_to_beta",
]
