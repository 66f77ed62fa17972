"""SNN architectures and their ANN counterparts (plain nn.Modules, time-first).

Every model subclasses :class:`SNNModel`, takes the neuron ``backend`` by name as its first argument and maps
``x[T, B, *input_shape]`` to logits ``[T, B, C]`` (one readout per step) or ``[B, C]`` (time aggregated by the
model). Build one by name with :func:`build_model` (names in :data:`MODELS`).
"""

from .apex import APEXSNN, APEXLayer
from .base import PrunableLayer, SNNModel
from .baseline import BaselineLIF
from .dasnn import DASNN, DendriticLayer
from .layers import ChebyshevActivation, ChebyshevKANLinear, SpikingLinear, TemporalAttention, TimeFirstLinear
from .mlp import ANNMLP, SNNMLP
from .nexus import NEXUSSNN
from .registry import MODELS, build_model
from .spiking_kan import SpikingKAN
from .vgg import VGGANN, SpikingVGG

__all__ = [
    "ANNMLP", "APEXLayer", "APEXSNN", "DASNN", "MODELS", "NEXUSSNN", "SNNMLP", "VGGANN", "BaselineLIF",
    "ChebyshevActivation", "ChebyshevKANLinear", "DendriticLayer", "PrunableLayer", "SNNModel", "SpikingKAN",
    "SpikingLinear", "SpikingVGG", "TemporalAttention", "TimeFirstLinear", "build_model",
]
