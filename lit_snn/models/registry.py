"""Models by name: ``MODELS`` (name -> class) and :func:`build_model`."""

from __future__ import annotations

from .apex import APEXSNN
from .base import SNNModel
from .baseline import BaselineLIF
from .dasnn import DASNN
from .mlp import ANNMLP, SNNMLP
from .nexus import NEXUSSNN
from .spiking_kan import SpikingKAN
from .vgg import VGGANN, SpikingVGG

MODELS: dict[str, type[SNNModel]] = {
    "baseline_lif": BaselineLIF,
    "dasnn": DASNN,
    "spiking_kan": SpikingKAN,
    "nexus": NEXUSSNN,
    "apex": APEXSNN,
    "ann_mlp": ANNMLP,
    "snn_mlp": SNNMLP,
    "spiking_vgg": SpikingVGG,
    "vgg_ann": VGGANN,
}


def build_model(name: str, **kwargs) -> SNNModel:
    """Build the model registered as ``name`` with constructor arguments ``kwargs``.

    >>> build_model("baseline_lif", backend="custom").num_classes
    10
    """
    try:
        cls = MODELS[name]
    except (KeyError, TypeError):
        raise ValueError(f"unknown model {name!r}; available models: {sorted(MODELS)}") from None
    return cls(**kwargs)
