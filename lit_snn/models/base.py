"""What every lit-snn model declares, so that metrics and callbacks work without knowing the model."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from lit_snn.neurons import SpikingNeuron

SYNAPTIC_TYPES = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)


@dataclass
class PrunableLayer:
    """A group of neurons that structured (neuron-level) pruning may silence.

    Attributes:
        name: the group's name in logs (usually the qualified name of its synaptic layer).
        inputs: ``(module, parameter names)`` pairs whose dim-0 rows feed the group's neurons, e.g.
            ``(fc, ("weight", "bias"))`` and ``(bn, ("weight", "bias"))``. Zeroing row ``j`` of all of them makes
            neuron ``j``'s input current exactly 0, so it never fires.
        importance: a learned per-neuron score ``[N]`` (higher = keep), or ``None``.
    """

    name: str
    inputs: list[tuple[nn.Module, tuple[str, ...]]]
    importance: torch.Tensor | None = None
    num_neurons: int = field(init=False)

    def __post_init__(self) -> None:
        if not self.inputs:
            raise ValueError(f"PrunableLayer {self.name!r}: inputs must name at least one module")
        sizes = {getattr(m, p).shape[0] for m, names in self.inputs for p in names if getattr(m, p) is not None}
        if len(sizes) != 1:
            raise ValueError(f"PrunableLayer {self.name!r}: inputs disagree on the number of neurons: {sizes}")
        self.num_neurons = sizes.pop()
        if self.importance is not None and self.importance.shape != (self.num_neurons,):
            raise ValueError(
                f"PrunableLayer {self.name!r}: importance must have shape ({self.num_neurons},), "
                f"got {tuple(self.importance.shape)}"
            )


class SNNModel(nn.Module):
    """Base class of lit-snn's models (SNNs and their ANN counterparts).

    Subclasses set ``input_shape`` and ``num_classes`` and implement ``forward(x)`` on time-first input
    ``[T, B, *input_shape]``, returning logits ``[T, B, C]`` (one readout per step) or ``[B, C]``.
    The declarations below default to discovery by type; override them where a model knows better.
    """

    input_shape: tuple[int, ...] = ()
    num_classes: int = 0
    default_num_steps: int | None = None  # the T the model was designed for (the datamodule's num_steps decides)

    def neuron_layers(self) -> dict[str, nn.Module]:
        """Qualified name -> spiking neuron module, in registration (forward) order."""
        return {n: m for n, m in self.named_modules() if isinstance(m, SpikingNeuron)}

    def synaptic_layers(self) -> dict[str, nn.Module]:
        """Qualified name -> synaptic layer (Linear/Conv) module."""
        return {n: m for n, m in self.named_modules() if isinstance(m, SYNAPTIC_TYPES)}

    def prunable_layers(self) -> list[PrunableLayer]:
        """Neuron groups that structured pruning may silence (none unless the model declares them)."""
        return []
