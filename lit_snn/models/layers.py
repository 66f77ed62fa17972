"""Building blocks shared by lit-snn's models.

- :func:`check_input`: the time-first input check every model runs first.
- :func:`over_time`: run a stateless module (Linear, Conv, BatchNorm, ...) once over all ``T*B`` rows of a
  ``[T, B, ...]`` tensor (one large GEMM instead of T small ones).
- :func:`benchmark_bn`: a BatchNorm whose initial gain folds the benchmark's ``(1 - beta)`` input scaling into
  our LIF convention.
- :func:`chebyshev_basis`, :class:`ChebyshevActivation` (per-neuron learnable activation, a "pointwise KAN"),
  :class:`ChebyshevKANLinear` (a full Kolmogorov-Arnold layer with one Chebyshev series per edge).
- :class:`TemporalAttention`: softmax attention over time steps that turns ``[T, B, C]`` logits into ``[B, C]``.
- :class:`TimeFirstLinear`: ``nn.Linear`` that computes an input constant over time (direct coding) once.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
from torch import nn

from lit_snn.neurons import tau_to_beta

from .sparse import sparse_input_linear


def check_input(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Raise a clear error unless ``x`` is a floating tensor ``[T, B, *model.input_shape]``; return ``x``."""
    name = type(model).__name__
    expected = tuple(model.input_shape)
    pretty = "[T, B, " + ", ".join(str(d) for d in expected) + "]"
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name}.forward expects a tensor {pretty}, got {type(x).__name__}")
    if x.dim() != len(expected) + 2:
        raise ValueError(
            f"{name} expects time-first input {pretty} ({len(expected) + 2} dims: time, batch, *input_shape="
            f"{expected}), got shape {tuple(x.shape)} ({x.dim()} dims). Encode the input over time first "
            f"(lit_snn.encoders) or add a time dimension with x.unsqueeze(0)."
        )
    if tuple(x.shape[2:]) != expected:
        raise ValueError(
            f"{name}: input shape mismatch: expected trailing shape input_shape={expected}, got "
            f"{tuple(x.shape[2:])} (x has shape {tuple(x.shape)}, read as [T, B, ...]). Build the model with "
            f"input_shape={tuple(x.shape[2:])} or feed data of shape {pretty}."
        )
    if x.shape[0] < 1 or x.shape[1] < 1:
        raise ValueError(f"{name}: need T >= 1 time steps and B >= 1 samples, got x of shape {tuple(x.shape)}")
    if not x.is_floating_point():
        raise ValueError(f"{name} expects a floating-point input, got dtype {x.dtype}")
    return x


def over_time(module: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    """Apply a stateless ``module`` (or function) to ``x[T, B, ...]`` as one call on ``[T*B, ...]``.

    Returns ``[T, B, ...]``.

    For BatchNorm this is *time-batched* normalisation: one set of batch statistics over all ``T*B`` rows (and
    one running-statistics update per batch), instead of one BN call per time step.
    """
    y = module(x.flatten(0, 1))
    return y.unflatten(0, x.shape[:2])


def check_shape(name: str, value: Sequence[int] | int) -> tuple[int, ...]:
    """Validate a shape argument (an int or a sequence of positive ints) and return it as a tuple."""
    shape = (value,) if isinstance(value, int) else tuple(value) if isinstance(value, Sequence) else None
    if not shape or not all(isinstance(d, int) and not isinstance(d, bool) and d > 0 for d in shape):
        raise ValueError(f"{name} must be a positive int or a non-empty sequence of positive ints, got {value!r}")
    return shape


def check_positive_int(name: str, value: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ValueError(f"{name} must be an int >= 1, got {value!r}")
    return value


def check_sizes(name: str, value: Sequence[int]) -> tuple[int, ...]:
    """A non-empty sequence of positive layer widths."""
    sizes = tuple(value) if isinstance(value, Sequence) and not isinstance(value, str) else ()
    if not sizes or not all(isinstance(d, int) and not isinstance(d, bool) and d > 0 for d in sizes):
        raise ValueError(f"{name} must be a non-empty sequence of positive ints, got {value!r}")
    return sizes


def benchmark_bn(num_features: int, tau: float) -> nn.BatchNorm1d:
    """``BatchNorm1d`` whose gain starts at ``1 - beta`` (``beta = 1 - 1/tau``) instead of 1.

    The benchmark's LIF charges ``v <- beta*v + (1-beta)*I``; lit-snn's neurons charge ``h = beta*v + x`` (input
    not scaled). With ``x = BN(.)`` feeding the neuron, starting BN's gain at ``1-beta`` (its bias starts at 0)
    makes ``x = (1-beta)*I`` exactly, so the network starts from the benchmark's neuron dynamics and firing rates.
    The gain is learned as usual afterwards.
    """
    if not (isinstance(tau, (int, float)) and math.isfinite(tau) and tau >= 1):
        raise ValueError(f"tau must be a finite number >= 1, got {tau!r}")
    bn = nn.BatchNorm1d(num_features)
    nn.init.constant_(bn.weight, 1.0 - tau_to_beta(float(tau)))
    return bn


def chebyshev_basis(z: torch.Tensor, degree: int) -> torch.Tensor:
    """Chebyshev polynomials of the first kind ``T_0..T_degree`` at ``z``, stacked on a new last dim.

    ``T_0 = 1``, ``T_1 = z``, ``T_k = 2 z T_{k-1} - T_{k-2}`` (on ``[-1, 1]``, ``T_k(cos a) = cos(k a)``).
    """
    polys = [torch.ones_like(z), z]
    for _ in range(2, degree + 1):
        polys.append(2 * z * polys[-1] - polys[-2])
    return torch.stack(polys[: degree + 1], dim=-1)


class ChebyshevActivation(nn.Module):
    """A learnable activation per neuron (a "pointwise KAN"), for analog signals such as synaptic currents.

    For neuron ``j`` with input ``x_j``::

        z_j = tanh(input_scale * x_j)                        # normalised into (-1, 1)
        y_j = gain_j * sum_{k=0..degree} coeffs[j, k] * T_k(z_j)  +  linear * x_j

    ``coeffs`` start at ``c_0 = 0``, ``c_1 = 1`` and ``c_k ~ N(0, init_std^2)`` for k >= 2, ``gain`` at 1; the
    scalar ``linear`` term exists only when ``linear_init`` is given. Zeroing row ``j`` of ``coeffs`` (or ``gain``)
    and the input ``x_j`` makes ``y_j = 0`` exactly.

    Args:
        num_features: number of neurons N (the last dim of the input).
        degree: highest polynomial degree (>= 1).
        input_scale: the factor inside ``tanh``.
        linear_init: initial value of a learnable scalar residual ``linear * x``; ``None`` for no such term.
        init_std: standard deviation of the initial higher-order coefficients.
    """

    def __init__(
        self,
        num_features: int,
        degree: int = 4,
        input_scale: float = 0.3,
        linear_init: float | None = None,
        init_std: float = 0.02,
    ) -> None:
        super().__init__()
        check_positive_int("num_features", num_features)
        check_positive_int("degree", degree)
        self.degree = degree
        self.input_scale = float(input_scale)
        coeffs = torch.zeros(num_features, degree + 1)
        coeffs[:, 1] = 1.0
        coeffs[:, 2:] = torch.randn(num_features, degree - 1) * init_std
        self.coeffs = nn.Parameter(coeffs)
        self.gain = nn.Parameter(torch.ones(num_features))
        self.linear = None if linear_init is None else nn.Parameter(torch.tensor(float(linear_init)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        basis = chebyshev_basis(torch.tanh(self.input_scale * x), self.degree)  # [..., N, degree+1]
        y = self.gain * (basis * self.coeffs).sum(-1)
        return y if self.linear is None else y + self.linear * x

    def extra_repr(self) -> str:
        return (
            f"num_features={self.coeffs.shape[0]}, degree={self.degree}, input_scale={self.input_scale}, "
            f"linear={self.linear is not None}"
        )


class ChebyshevKANLinear(nn.Module):
    """Kolmogorov-Arnold layer: one learnable Chebyshev series on every edge ``i -> o``.

    ::

        z_i = tanh(x_i / input_scale)
        y_o = b_o + sum_i sum_{k=1..degree} W[o, i, k] * T_k(z_i)

    (``T_0 = 1`` on every edge would only add ``in_features`` copies of a bias, so it is replaced by one ``b_o``.)
    The coefficients are held by one ``nn.Linear(in_features * degree, out_features)`` over the expanded basis,
    so a single GEMM computes the layer and metrics see it as a synaptic layer with ``in_features * degree`` MACs
    per output (the KAN's true cost). Only meaningful on analog ``x``: on binary ``x`` each ``T_k(z_i)`` takes
    two values and the layer collapses to an affine map.
    """

    def __init__(self, in_features: int, out_features: int, degree: int = 4, input_scale: float = 1.0) -> None:
        super().__init__()
        check_positive_int("in_features", in_features)
        check_positive_int("out_features", out_features)
        check_positive_int("degree", degree)
        if not (isinstance(input_scale, (int, float)) and input_scale > 0):
            raise ValueError(f"input_scale must be a number > 0, got {input_scale!r}")
        self.in_features, self.out_features, self.degree = in_features, out_features, degree
        self.input_scale = float(input_scale)
        self.linear = nn.Linear(in_features * degree, out_features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        basis = chebyshev_basis(torch.tanh(x / self.input_scale), self.degree)[..., 1:]  # [..., in, degree]
        return self.linear(basis.flatten(-2))

    def extra_repr(self) -> str:
        return (
            f"in_features={self.in_features}, out_features={self.out_features}, degree={self.degree}, "
            f"input_scale={self.input_scale}"
        )


class TemporalAttention(nn.Module):
    """Attention over time steps: ``[T, B, C]`` per-step logits -> ``[B, C]``.

    ::

        e_t = w . logits_t + c          (a Linear(C, 1))
        pi  = softmax_t(e)              (per sample, over the T steps)
        out = sum_t pi_t * logits_t
    """

    def __init__(self, num_classes: int) -> None:
        super().__init__()
        self.score = nn.Linear(num_classes, 1)

    def forward(self, logits: torch.Tensor) -> torch.Tensor:
        weights = torch.softmax(self.score(logits), dim=0)  # [T, B, 1]
        return (weights * logits).sum(0)


def is_time_constant(x: torch.Tensor) -> bool:
    """``x[T, B, ...]`` is one tensor repeated over time (a stride-0 view along dim 0, as the direct encoder and
    :class:`TimeFirstLinear` return): ``x[t]`` is ``x[0]`` for every t."""
    return x.dim() >= 3 and x.shape[0] > 1 and x.stride(0) == 0


def repeated_batch_norm(bn: nn.BatchNorm1d, x: torch.Tensor, repeats: int) -> torch.Tensor:
    """``bn(torch.cat([x] * repeats))[:len(x)]``, computed on the ``B`` rows of ``x`` alone.

    The rows of a time-constant input repeat T times, so they have the same batch mean and (biased) variance as
    ``x``: the normalised output is the same (up to float rounding in the mean). What differs is the running
    variance, which BatchNorm updates with the unbiased variance of the rows it saw: ``var * n / (n - 1)`` with
    ``n = repeats * B``, not ``B``. So in training the running statistics are updated here, as ``bn`` would have
    updated them on all ``repeats * B`` rows (``momentum=None``, the cumulative average, included).
    """
    if not (bn.training or bn.running_mean is None):  # evaluation: per-row, nothing to correct
        return bn(x)
    if x.shape[0] < 2:  # one sample: batch statistics need its copies (F.batch_norm refuses a single row)
        return bn(x.repeat(repeats, 1))[: x.shape[0]]
    y = nn.functional.batch_norm(x, None, None, bn.weight, bn.bias, True, 0.0, bn.eps)
    if bn.training and bn.running_mean is not None:
        with torch.no_grad():
            bn.num_batches_tracked.add_(1)
            factor = 1.0 / float(bn.num_batches_tracked) if bn.momentum is None else bn.momentum
            rows = x.detach()
            mean = rows.mean(0)
            var = (rows - mean).square_().mean(0)  # torch.var_mean(dim=0) is ~20x slower on CPU
            n = x.shape[0] * repeats
            bn.running_mean.mul_(1 - factor).add_(mean, alpha=factor)
            bn.running_var.mul_(1 - factor).add_(var, alpha=factor * n / (n - 1))
    return y


class TimeFirstLinear(nn.Linear):
    """``nn.Linear`` on time-first input ``[T, B, ..., F]`` that computes a time-constant input once and, with
    ``sparse_input=True``, a mostly-zero input (spikes) over its nonzero entries only.

    Direct coding feeds the same analog input at every step; the direct encoder returns it as a view with stride 0
    along time (``x.expand(T, ...)``), so ``x[t]`` is ``x[0]`` for every t. This layer then computes
    ``W x[0] + b`` once and returns it expanded over T (again a stride-0 view); autograd sums the T gradients before
    the single backward GEMM. The result is the same as running the GEMM on all ``T*B`` rows, at ``1/T`` of the
    cost. Any other input (rate-coded spikes, a materialised copy) takes the ordinary path.

    ``sparse_input``: the layer reads spikes. On the CPU, when at most ``max_density`` of the input is nonzero, the
    product runs over the nonzero entries only (:func:`lit_snn.models.sparse.sparse_input_linear`: exact for any
    values, faster than the dense GEMM below ~15% density at large ``T*B``; a graph break under ``torch.compile``);
    on a GPU or above ``max_density`` it is the dense GEMM.

    The module is still called with the whole ``[T, B, ..., F]`` input, so forward hooks (the metrics' probe) see
    all T steps and count the synaptic operations a step-by-step simulation performs, as NeuroBench does.
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = True, sparse_input: bool = False,
                 max_density: float = 0.15, device=None, dtype=None) -> None:
        super().__init__(in_features, out_features, bias, device=device, dtype=dtype)
        if not (isinstance(max_density, (int, float)) and 0.0 <= max_density <= 1.0):
            raise ValueError(f"max_density must be a number in [0, 1], got {max_density!r}")
        self.sparse_input = bool(sparse_input)
        self.max_density = float(max_density)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if is_time_constant(x):
            once = super().forward(x[0])
            return once.unsqueeze(0).expand(x.shape[0], *once.shape)
        if self.sparse_input and x.device.type == "cpu":
            return sparse_input_linear(x, self.weight, self.bias, self.max_density)
        return super().forward(x)

    def extra_repr(self) -> str:
        extra = f", sparse_input=True, max_density={self.max_density}" if self.sparse_input else ""
        return super().extra_repr() + extra


class SpikingLinear(nn.Module):
    """``Linear -> [BatchNorm] -> neuron`` on time-first input, the synaptic parts run once over ``T*B`` rows.

    ::

        I = BN(W s + b)     # [T*B, N] at once (time-batched BN)
        s' = neuron(I)      # scan over T

    Args:
        in_features, out_features: sizes of the Linear.
        neuron: the spiking neuron module (from :func:`lit_snn.neurons.make_neuron`).
        norm: a module applied to the Linear's output rows (usually ``BatchNorm1d``), or ``None``.
        sparse_input: the layer reads spikes: see :class:`TimeFirstLinear`.
    """

    def __init__(self, in_features: int, out_features: int, neuron: nn.Module, norm: nn.Module | None = None,
                 sparse_input: bool = False) -> None:
        super().__init__()
        self.fc = TimeFirstLinear(in_features, out_features, sparse_input=sparse_input)
        self.norm = norm
        self.neuron = neuron

    def current(self, x: torch.Tensor) -> torch.Tensor:
        """The input current ``BN(W x + b)``, ``[T, B, out_features]``. For a time-constant ``x`` (direct coding)
        ``W x`` and a ``BatchNorm1d`` run once, on ``B`` rows, and the current stays a stride-0 view over time."""
        y = self.fc(x)
        if is_time_constant(y):
            if self.norm is None:
                return y
            if type(self.norm) is nn.BatchNorm1d and y.dim() == 3:
                return repeated_batch_norm(self.norm, y[0], y.shape[0]).expand_as(y)
        rows = y.flatten(0, 1)
        if self.norm is not None:
            rows = self.norm(rows)
        return rows.unflatten(0, x.shape[:2])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.neuron(self.current(x))

    def prunable_inputs(self) -> list[tuple[nn.Module, tuple[str, ...]]]:
        """The rows feeding each output neuron: the Linear's and the norm's weight and bias."""
        inputs: list[tuple[nn.Module, tuple[str, ...]]] = [(self.fc, ("weight", "bias"))]
        if self.norm is not None:
            inputs.append((self.norm, ("weight", "bias")))
        return inputs
