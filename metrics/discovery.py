"""Which modules of a network are spiking neurons and which are synaptic layers.

Order of precedence (for neurons and synaptic layers separately):

1. an explicit list or ``{name: module}`` dict (names are looked up in the network when a list is given);
2. the network's own declaration, ``neuron_layers()`` / ``synaptic_layers()`` (every ``lit_snn.models.SNNModel``);
3. discovery by type, outermost first: a neuron's submodules are not searched (lit-snn's snnTorch adapter wraps an
   ``snn.Leaky``; only the adapter is the neuron).

Neuron types: ``lit_snn.neurons.SpikingNeuron``, snnTorch ``SpikingNeuron`` and SpikingJelly ``BaseNode``. The two
libraries are looked up in ``sys.modules`` only: a model that holds one of their neurons has imported the library
already, so nothing is imported here and neither library is needed.

Synaptic types: ``nn.Linear`` and ``nn.Conv1d/2d/3d``. Discovery raises if the network holds a weight layer we
cannot count (RNNs, transposed convs, ``nn.Bilinear``): counting around it would silently undercount; pass
``synapses=`` explicitly to measure the others.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Mapping

from torch import nn

from lit_snn.neurons import SpikingNeuron

SUPPORTED_SYNAPTIC_TYPES = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)
UNSUPPORTED_WEIGHT_TYPES = (
    nn.RNNBase, nn.RNNCellBase, nn.modules.conv._ConvTransposeNd, nn.Bilinear, nn.MultiheadAttention,
)

#: step mode of a neuron module: "multi" (``[T, B, ...]`` per call) or "single" (``[B, ...]`` per call)
MULTI, SINGLE = "multi", "single"


def neuron_types() -> tuple[type, ...]:
    """Neuron base classes of the backends that are loaded (ours always; snnTorch / SpikingJelly if imported)."""
    types: list[type] = [SpikingNeuron]
    if "snntorch" in sys.modules:
        snntorch = sys.modules["snntorch"]
        if hasattr(snntorch, "SpikingNeuron"):
            types.append(snntorch.SpikingNeuron)
    sj = sys.modules.get("spikingjelly.activation_based.neuron")
    if sj is not None and hasattr(sj, "BaseNode"):
        types.append(sj.BaseNode)
    return tuple(types)


def neuron_step_mode(module: nn.Module, default: str) -> str:
    """``"multi"`` if ``module`` maps ``[T, B, ...]`` to ``[T, B, ...]`` in one call, ``"single"`` for ``[B, ...]``.

    lit-snn neurons are multi-step by contract; snnTorch neurons are single-step; SpikingJelly neurons say so in
    ``step_mode``; other modules (given explicitly, e.g. ``nn.ReLU`` in an ANN) take ``default``.
    """
    if isinstance(module, SpikingNeuron):
        return MULTI
    step_mode = getattr(module, "step_mode", None)
    sj = sys.modules.get("spikingjelly.activation_based.neuron")
    if sj is not None and isinstance(module, sj.BaseNode):
        return MULTI if step_mode == "m" else SINGLE
    snntorch = sys.modules.get("snntorch")
    if snntorch is not None and isinstance(module, snntorch.SpikingNeuron):
        return SINGLE
    return default


def _named(network: nn.Module, modules: Iterable[nn.Module] | Mapping[str, nn.Module], what: str):
    if isinstance(modules, Mapping):
        out = dict(modules)
    else:
        names = {id(m): n for n, m in network.named_modules()}
        out = {}
        for i, m in enumerate(modules):
            if not isinstance(m, nn.Module):
                raise TypeError(f"{what} must be nn.Module instances, got {type(m).__name__} at position {i}")
            out[names.get(id(m), f"{what}{i}")] = m
    for name, m in out.items():
        if not isinstance(m, nn.Module):
            raise TypeError(f"{what}[{name!r}] must be an nn.Module, got {type(m).__name__}")
    return out


def _outermost(network: nn.Module, types: tuple[type, ...]) -> dict[str, nn.Module]:
    found: dict[str, nn.Module] = {}

    def walk(prefix: str, module: nn.Module) -> None:
        for name, child in module.named_children():
            qual = f"{prefix}.{name}" if prefix else name
            if isinstance(child, types):
                if all(child is not m for m in found.values()):  # a module registered twice counts once
                    found[qual] = child
            else:
                walk(qual, child)

    if isinstance(network, types):
        return {"": network}
    walk("", network)
    return found


def resolve_neurons(network: nn.Module, neurons=None) -> dict[str, nn.Module]:
    """Qualified name -> neuron module (explicit, declared by the network, or found by type). Raises if none."""
    if neurons is not None:
        found = _named(network, neurons, "neurons")
        source = "the explicit neurons argument"
    elif callable(getattr(network, "neuron_layers", None)):
        found = dict(network.neuron_layers())
        source = f"{type(network).__name__}.neuron_layers()"
    else:
        found = _outermost(network, neuron_types())
        source = "a search by type for " + ", ".join(t.__module__ + "." + t.__name__ for t in neuron_types())
    if not found:
        raise ValueError(
            f"no spiking neurons found in {type(network).__name__} ({source}): pass neurons=[...] (modules or a "
            "{name: module} dict) or point the probe at the network that holds them"
        )
    return found


def resolve_synaptic_layers(network: nn.Module, synapses=None) -> dict[str, nn.Module]:
    """Qualified name -> Linear/Conv module (explicit, declared or found by type). Raises on none or on a type
    we cannot count."""
    if synapses is not None:
        found = _named(network, synapses, "synapses")
    elif callable(getattr(network, "synaptic_layers", None)):
        found = dict(network.synaptic_layers())
    else:
        skip = tuple(neuron_types())
        found, unsupported = {}, []

        def walk(prefix: str, module: nn.Module) -> None:
            for name, child in module.named_children():
                qual = f"{prefix}.{name}" if prefix else name
                if isinstance(child, skip):
                    continue
                if isinstance(child, SUPPORTED_SYNAPTIC_TYPES):
                    if all(child is not m for m in found.values()):
                        found[qual] = child
                elif isinstance(child, UNSUPPORTED_WEIGHT_TYPES):
                    unsupported.append(f"{qual} ({type(child).__name__})")
                else:
                    walk(qual, child)

        if isinstance(network, SUPPORTED_SYNAPTIC_TYPES):
            found[""] = network
        else:
            walk("", network)
        if unsupported:
            raise TypeError(
                f"{type(network).__name__} holds weight layers whose synaptic operations cannot be counted: "
                f"{', '.join(unsupported)}; supported: Linear, Conv1d/2d/3d. Pass synapses=[...] to measure the "
                "supported layers only"
            )
    for name, m in found.items():
        if not isinstance(m, SUPPORTED_SYNAPTIC_TYPES):
            raise TypeError(
                f"synaptic layer {name!r} is a {type(m).__name__}; synaptic operations can be counted for "
                "nn.Linear and nn.Conv1d/2d/3d only"
            )
    if not found:
        raise ValueError(f"no synaptic (Linear/Conv) layers found in {type(network).__name__}: pass synapses=[...]")
    return found
