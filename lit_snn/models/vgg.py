"""VGG-style convolutional networks for CIFAR-10 and event data: a spiking one and its ReLU counterpart."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from lit_snn.neurons import BACKENDS, SpikingNeuron, make_neuron

from .base import PrunableLayer, SNNModel
from .layers import check_input, check_positive_int, check_shape, over_time
from .mlp import check_time_reduction, reduce_time

VGG11 = (64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M")


def _check_channels(channels: Sequence[int | str], input_shape: tuple[int, ...], input_pooling: int) -> None:
    if len(input_shape) != 3:
        raise ValueError(f"input_shape must be (channels, height, width), got {input_shape!r}")
    items = tuple(channels) if isinstance(channels, Sequence) and not isinstance(channels, str) else ()
    ok = items and all(c == "M" or (isinstance(c, int) and not isinstance(c, bool) and c > 0) for c in items)
    if not ok or not any(c != "M" for c in items):
        raise ValueError(
            f"channels must be a sequence of positive ints (conv widths) and 'M' (2x2 max-pool) with at least one "
            f"conv, got {channels!r}"
        )
    h, w = input_shape[1] // input_pooling, input_shape[2] // input_pooling
    pools = sum(c == "M" for c in items)
    if min(h, w) < 2**pools:
        raise ValueError(
            f"input_shape={input_shape} with input_pooling={input_pooling} is {h}x{w}, too small for {pools} "
            f"max-pools in channels={channels!r}"
        )


class _VGGBase(SNNModel):
    """Shared layout: ``[AvgPool(input_pooling)] -> (Conv3x3 -> BN -> act | MaxPool2x2)* -> flatten -> Linear``."""

    def __init__(
        self,
        input_shape: Sequence[int],
        num_classes: int,
        channels: Sequence[int | str],
        input_pooling: int,
        activation,
    ) -> None:
        super().__init__()
        self.input_shape = check_shape("input_shape", input_shape)
        self.num_classes = check_positive_int("num_classes", num_classes)
        check_positive_int("input_pooling", input_pooling)
        _check_channels(channels, self.input_shape, input_pooling)
        self.input_pool = nn.AvgPool2d(input_pooling) if input_pooling > 1 else nn.Identity()
        layers: list[nn.Module] = []
        c_in, h, w = self.input_shape[0], self.input_shape[1] // input_pooling, self.input_shape[2] // input_pooling
        for c in channels:
            if c == "M":
                layers.append(nn.MaxPool2d(2))
                h, w = h // 2, w // 2
            else:
                layers += [nn.Conv2d(c_in, c, 3, padding=1, bias=False), nn.BatchNorm2d(c), activation()]
                c_in = c
        self.features = nn.Sequential(*layers)
        self.readout = nn.Linear(c_in * h * w, self.num_classes)

    def prunable_layers(self) -> list[PrunableLayer]:
        """One group per conv layer: its output channels (zeroing conv and BN rows silences a whole channel)."""
        mods = list(self.features)
        return [
            PrunableLayer(f"features.{i}", [(m, ("weight",)), (mods[i + 1], ("weight", "bias"))])
            for i, m in enumerate(mods)
            if isinstance(m, nn.Conv2d)
        ]


class SpikingVGG(_VGGBase):
    """Spiking VGG: ``(Conv3x3 -> BN -> LIF | MaxPool2x2)* -> flatten -> Linear``, per-step logits ``[T, B, C]``.

    For every conv layer, over all ``T*B`` frames at once and a LIF scan over T::

        I = BN(conv3x3(s_prev))     # no conv bias (BN's bias replaces it)
        s = LIF(I)                  # tau=2, theta=1, reset by subtraction, ATan
        logits_t = W flatten(s_last,t) + b

    Max-pooling binary spikes gives binary spikes, so every conv after the first receives spikes. The first conv
    sees the encoded input (analog frames for direct coding, event counts for event data). ``channels`` follows
    torchvision's VGG notation (ints are conv widths, ``"M"`` a 2x2 max-pool); the default is VGG-11's
    feature extractor (9.2M parameters for CIFAR-10). Typical ``input_shape``: ``(3, 32, 32)`` (CIFAR-10),
    ``(2, 34, 34)`` (N-MNIST), ``(2, 128, 128)`` (DVS-Gesture, CIFAR10-DVS; use ``input_pooling=4`` or let the
    datamodule downsample). ``input_pooling`` average-pools the input frames first.

    Args:
        backend: neuron backend.
        input_shape: ``(channels, height, width)`` per time step.
        num_classes: number of classes.
        channels: conv widths and ``"M"`` pools.
        input_pooling: average-pool factor applied to the input (1 = none).
        tau: LIF time constant.
        threshold: LIF threshold.
        surrogate: surrogate-gradient name.
    """

    default_num_steps = 4

    def __init__(
        self,
        backend: str = "custom",
        input_shape: Sequence[int] = (3, 32, 32),
        num_classes: int = 10,
        channels: Sequence[int | str] = VGG11,
        input_pooling: int = 1,
        tau: float = 2.0,
        threshold: float = 1.0,
        surrogate: str = "atan",
    ) -> None:
        def lif() -> nn.Module:
            return make_neuron("lif", backend, tau=tau, threshold=threshold, surrogate=surrogate, detach_reset=True)

        super().__init__(input_shape, num_classes, channels, input_pooling, lif)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Per-step logits ``[T, B, num_classes]`` for ``x`` of shape ``[T, B, C, H, W]``."""
        s = over_time(self.input_pool, check_input(self, x))
        for layer in self.features:
            s = layer(s) if isinstance(layer, SpikingNeuron) else over_time(layer, s)
        return self.readout(s.flatten(2))


class VGGANN(_VGGBase):
    """The ReLU counterpart of :class:`SpikingVGG`: same layout, ``ReLU`` for LIF, one pass per sample.

    ::

        x_bar = mean_t x_t   (time_reduction="mean")   or   x_0   ("first")
        a = ReLU(BN(conv3x3(a_prev)))  ...;   logits = W flatten(a_last) + b     # [B, num_classes]

    Takes the same time-first input as the SNN (see :class:`ANNMLP` for the time reduction).

    Args:
        backend: accepted for a uniform interface and validated, unused.
        input_shape, num_classes, channels, input_pooling: as :class:`SpikingVGG`.
        time_reduction: ``"mean"`` or ``"first"``.
    """

    default_num_steps = 1

    def __init__(
        self,
        backend: str = "custom",
        input_shape: Sequence[int] = (3, 32, 32),
        num_classes: int = 10,
        channels: Sequence[int | str] = VGG11,
        input_pooling: int = 1,
        time_reduction: str = "mean",
    ) -> None:
        if backend not in BACKENDS:
            raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
        super().__init__(input_shape, num_classes, channels, input_pooling, nn.ReLU)
        self.time_reduction = check_time_reduction(time_reduction)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``[B, num_classes]`` for ``x`` of shape ``[T, B, C, H, W]``."""
        a = self.features(self.input_pool(reduce_time(check_input(self, x), self.time_reduction)))
        return self.readout(a.flatten(1))
