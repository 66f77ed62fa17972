"""One factory for every neuron of every backend: ``make_neuron(kind, backend, **hyper_parameters)``.

Backends (every kind ``lif``, ``if``, ``alif``, ``ttfs`` on each):

* ``custom``: the pure-PyTorch reference neurons of :mod:`lit_snn.neurons.base`.
* ``snntorch``: adapters on ``snntorch.Leaky`` (:mod:`lit_snn.neurons.snntorch_backend`); equal to the reference
  for ``reset="zero"`` and ``ttfs`` on every input, for ``reset="subtract"`` while the charged membrane stays
  below twice the threshold.
* ``spikingjelly``: adapters on SpikingJelly's multi-step ``LIFNode`` / ``IFNode``
  (:mod:`lit_snn.neurons.spikingjelly_backend`); equal to the reference on every input (within ulps of the leak
  for non-dyadic ``tau``); needs ``tau > 1``.

The same hyper-parameters give the same neuron and the same state_dict keys (``tau`` / ``threshold``, only when
learnable) on every backend, so a checkpoint moves between backends. A backend whose library is not installed
raises :class:`lit_snn._optional.MissingDependencyError` naming the extra to install.
"""

from __future__ import annotations

import importlib

from .base import IF, LIF, AdaptiveLIF, FireOnceLIF, SpikingNeuron

KINDS = ("lif", "if", "alif", "ttfs")
BACKENDS = ("custom", "snntorch", "spikingjelly")

_CUSTOM: dict[str, type[SpikingNeuron]] = {"lif": LIF, "if": IF, "alif": AdaptiveLIF, "ttfs": FireOnceLIF}

# backend -> module that defines NEURONS: dict[kind, class]; imported only when that backend is asked for,
# so a missing library fails with an error naming the extra to install.
_ADAPTER_MODULES = {
    "snntorch": "lit_snn.neurons.snntorch_backend",
    "spikingjelly": "lit_snn.neurons.spikingjelly_backend",
}


def neuron_class(kind: str = "lif", backend: str = "custom") -> type[SpikingNeuron]:
    """The class implementing ``kind`` on ``backend``; raises ``ValueError`` for unknown or unsupported pairs."""
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    if kind not in KINDS:
        raise ValueError(f"neuron kind must be one of {KINDS}, got {kind!r}")
    if backend == "custom":
        return _CUSTOM[kind]
    table: dict[str, type[SpikingNeuron]] = importlib.import_module(_ADAPTER_MODULES[backend]).NEURONS
    if kind not in table:
        raise ValueError(
            f"neuron kind {kind!r} is not available on backend {backend!r}; it supports {tuple(table)}"
        )
    return table[kind]


def make_neuron(kind: str = "lif", backend: str = "custom", **hyper_parameters) -> SpikingNeuron:
    """Build a neuron: the same ``hyper_parameters`` give the same neuron on every backend.

    >>> import torch
    >>> n = make_neuron("lif", "custom", tau=2.0, threshold=1.0)
    >>> n(torch.full((3, 1, 1), 0.6)).flatten().tolist()   # h = 0.6, 0.9, 1.05
    [0.0, 0.0, 1.0]
    """
    return neuron_class(kind, backend)(**hyper_parameters)
