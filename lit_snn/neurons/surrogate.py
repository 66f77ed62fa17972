"""Surrogate gradients: a Heaviside step forward, a smooth pseudo-derivative backward.

Every surrogate is a small picklable object ``f`` with ``f(x) = H(x)`` (``x = h - threshold``, firing on
``x >= 0``) and ``f.grad(x)`` its backward formula. The same object is handed to snnTorch and SpikingJelly by
the backend adapters, so the formula is identical on every backend by construction.

=============  =====================================================  =========================
name           backward ``dH/dx``                                      ``slope`` (default)
=============  =====================================================  =========================
atan           ``a/2 / (1 + (pi/2 * a * x)^2)``                        ``a`` (2.0)
fast_sigmoid   ``1 / (1 + k|x|)^2``                                    ``k`` (25.0)
sigmoid        ``k * sig(kx) * (1 - sig(kx))``                         ``k`` (4.0)
triangle       ``a * max(0, 1 - a|x|)``                                ``a`` (1.0)
gaussian       ``a / sqrt(2 pi) * exp(-(a x)^2 / 2)``                  ``a`` (1.0)
=============  =====================================================  =========================

The ATan, sigmoid and fast-sigmoid formulas are those of snnTorch and SpikingJelly (see backends.md);
triangle and Gaussian are normalised to unit area so that ``slope`` only sharpens them.
"""

from __future__ import annotations

import math

import torch


class _Heaviside(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor, surrogate: Surrogate) -> torch.Tensor:  # noqa: D401
        ctx.save_for_backward(x)
        ctx.surrogate = surrogate
        return (x >= 0).to(x.dtype)

    @staticmethod
    def backward(ctx, grad_output: torch.Tensor):
        (x,) = ctx.saved_tensors
        return grad_output * ctx.surrogate.grad(x), None


class Surrogate:
    """Base class: subclasses set ``name``, ``default_slope`` and implement :meth:`grad`."""

    name: str = ""
    default_slope: float = 1.0

    def __init__(self, slope: float | None = None) -> None:
        slope = self.default_slope if slope is None else slope
        ok = isinstance(slope, (int, float)) and not isinstance(slope, bool)
        if not (ok and math.isfinite(slope) and slope > 0):
            raise ValueError(f"surrogate {self.name!r}: slope must be a finite number > 0, got {slope!r}")
        self.slope = float(slope)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return _Heaviside.apply(x, self)

    def grad(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}(slope={self.slope})"

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and other.slope == self.slope  # type: ignore[attr-defined]

    def __hash__(self) -> int:
        return hash((type(self).__name__, self.slope))


class ATan(Surrogate):
    name = "atan"
    default_slope = 2.0

    def grad(self, x: torch.Tensor) -> torch.Tensor:
        a = self.slope
        return (a / 2) / (1 + (math.pi / 2 * a * x).square())


class FastSigmoid(Surrogate):
    name = "fast_sigmoid"
    default_slope = 25.0

    def grad(self, x: torch.Tensor) -> torch.Tensor:
        return 1.0 / (1.0 + self.slope * x.abs()).square()


class Sigmoid(Surrogate):
    name = "sigmoid"
    default_slope = 4.0

    def grad(self, x: torch.Tensor) -> torch.Tensor:
        s = torch.sigmoid(self.slope * x)
        return self.slope * s * (1 - s)


class Triangle(Surrogate):
    name = "triangle"
    default_slope = 1.0

    def grad(self, x: torch.Tensor) -> torch.Tensor:
        a = self.slope
        return a * (1 - a * x.abs()).clamp(min=0)


class Gaussian(Surrogate):
    name = "gaussian"
    default_slope = 1.0

    def grad(self, x: torch.Tensor) -> torch.Tensor:
        a = self.slope
        return a / math.sqrt(2 * math.pi) * torch.exp(-0.5 * (a * x).square())


SURROGATES: dict[str, type[Surrogate]] = {
    cls.name: cls for cls in (ATan, FastSigmoid, Sigmoid, Triangle, Gaussian)
}


def get_surrogate(surrogate: str | Surrogate = "atan", slope: float | None = None) -> Surrogate:
    """Return a surrogate by name (``atan``, ``fast_sigmoid``, ``sigmoid``, ``triangle``, ``gaussian``).

    >>> get_surrogate("atan", slope=2.0)
    ATan(slope=2.0)
    """
    if isinstance(surrogate, Surrogate):
        if slope is not None and slope != surrogate.slope:
            raise ValueError(f"slope={slope!r} conflicts with the given surrogate {surrogate!r}")
        return surrogate
    try:
        cls = SURROGATES[surrogate]
    except (KeyError, TypeError):
        raise ValueError(
            f"surrogate must be one of {sorted(SURROGATES)} or a Surrogate instance, got {surrogate!r}"
        ) from None
    return cls(slope)
