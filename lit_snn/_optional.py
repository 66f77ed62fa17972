"""Optional dependencies: import them with an error that names the extra to install."""

from __future__ import annotations

import importlib
from types import ModuleType

# module name -> extra of the lit-snn distribution that installs it
EXTRAS = {
    "snntorch": "snntorch",
    "spikingjelly": "spikingjelly",
    "tonic": "neuromorphic",
    "aedat": "neuromorphic",
    "wandb": "wandb",
    "matplotlib": "plots",
}


class MissingDependencyError(ImportError):
    """An optional dependency of lit-snn is not installed."""


def require(module: str, feature: str) -> ModuleType:
    """Import ``module`` or raise :class:`MissingDependencyError` naming the extra that provides it.

    >>> torch = require("torch", "anything")
    """
    try:
        return importlib.import_module(module)
    except ImportError as err:
        top = module.split(".")[0]
        extra = EXTRAS.get(top)
        hint = f"pip install 'lit-snn[{extra}]'" if extra else f"pip install {top}"
        raise MissingDependencyError(
            f"{feature} needs the package {top!r}, which could not be imported ({err}). Install it with: {hint}"
        ) from err
