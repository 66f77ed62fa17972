"""lit-snn: a PyTorch Lightning plugin suite for spiking neural networks.

Importing ``lit_snn`` is cheap and needs only torch: ``lit_snn.metrics`` must stay usable with torch and
torchmetrics alone, so nothing here imports lightning or an SNN library. The Lightning parts are loaded on
first use (``lit_snn.SpikingClassifier`` imports :mod:`lit_snn.module`, and so lightning, only then).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# public name -> module that defines it, imported on first attribute access (PEP 562)
_LAZY = {
    "SpikingClassifier": "lit_snn.module",
    "WandbLogger": "lit_snn.logging",
}

__all__ = ["SpikingClassifier", "WandbLogger", "__version__"]

if TYPE_CHECKING:
    from lit_snn.logging import WandbLogger
    from lit_snn.module import SpikingClassifier


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'lit_snn' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
