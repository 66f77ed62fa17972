"""Event-driven ``Linear`` for sparse input (spikes) on the CPU: work in proportion to the nonzero inputs.

A synaptic layer that reads spikes multiplies a mostly-zero matrix: a hidden LIF layer of lit-snn's MNIST models
fires 5-15% of the time. A dense GEMM spends its time on the zeros; :func:`sparse_input_linear` touches only the
nonzero inputs ``(r, k)``:

    forward      y[r]      = b + sum_k x[r, k] * W[:, k]        (an embedding-bag sum of W's columns)
    weight grad  dW[:, k]  = sum_r x[r, k] * g[r]               (an embedding-bag sum of the output gradient's rows)
    input grad   dx        = g @ W                              (dense: every input gets a gradient)

The result is exact for any input values (each nonzero is weighted by its value), equal to ``F.linear`` up to the
order of floating-point additions. Measured on this project's CPU (1 thread; ``tests/test_sparse.py`` checks the
values, ``benchmarks/speed.py`` the training step): for ``4096 x 512`` spikes into 256 outputs at 8.6% density a
training step of the layer (forward and backward) takes 23 ms instead of 33 ms and the forward alone 6 ms instead of
11 ms; at 512 rows the gain is small (3.7 vs 4.1 ms), and above about 15-20% density the dense GEMM wins. So
:class:`~lit_snn.models.TimeFirstLinear` (``sparse_input=True``) takes this path only on the CPU, only when the
input's density is at most ``max_density``; otherwise it runs ``F.linear``. On a GPU the dense GEMM is the fast path.
Under ``torch.compile`` the function runs eagerly between two compiled graphs (its sizes depend on the data): a
graph break that still measured faster than the compiled dense GEMM (``benchmarks/results/speed.md``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch.autograd.function import once_differentiable

#: below this many nonzero entries torch's CPU sort is slow (~45 ns per entry, above it ~6 ns): the backward finds
#: the column-major order through the transposed input instead
_SORT_FROM = 2**15


def _by_column(x: torch.Tensor, flat: torch.Tensor, values: torch.Tensor):
    """The nonzero entries of ``x`` ``[R, K]`` (row-major ``flat`` indices, their ``values``) in column-major order:
    ``(rows, values, offsets)`` with column ``k``'s entries at ``offsets[k]:offsets[k + 1]``."""
    rows, k = x.shape
    if flat.numel() >= _SORT_FROM:
        key = flat.remainder(k) * rows + torch.div(flat, k, rounding_mode="floor")  # c * R + r
        if rows * k < 2**31:
            key = key.int()  # int32 keys sort faster
        key, order = torch.sort(key, stable=True)
        values = values.index_select(0, order)
    else:
        xt = x.t().contiguous().view(-1)
        key = (xt != 0).nonzero().squeeze(1)
        values = xt.index_select(0, key)
    starts = torch.arange(0, k * rows, rows, device=x.device, dtype=key.dtype)
    return key.remainder(rows).long(), values, torch.searchsorted(key, starts)


class _SparseInputLinear(torch.autograd.Function):
    """``F.linear(x, weight, bias)`` for a 2-D ``x`` given the flat indices of its nonzero entries (sorted)."""

    @staticmethod
    def forward(ctx, x, weight, bias, flat):
        rows, k = x.shape
        values = x.reshape(-1).index_select(0, flat)
        starts = torch.arange(0, rows * k, k, device=x.device)
        offsets = torch.searchsorted(flat, starts)  # where each row's nonzero entries begin
        out = F.embedding_bag(flat.remainder(k), weight.t().contiguous(), offsets, mode="sum",
                              per_sample_weights=values)
        if bias is not None:
            out.add_(bias)
        ctx.save_for_backward(x, weight, flat, values)
        ctx.has_bias = bias is not None
        return out

    @staticmethod
    @once_differentiable
    def backward(ctx, grad):
        x, weight, flat, values = ctx.saved_tensors
        grad_x = grad_w = grad_b = None
        if ctx.needs_input_grad[0]:
            grad_x = grad @ weight
        if ctx.needs_input_grad[1]:  # column k of dW sums the output gradients of the rows that input k fed
            rows, weights, offsets = _by_column(x, flat, values)
            grad_w = F.embedding_bag(rows, grad.contiguous(), offsets, mode="sum", per_sample_weights=weights).t()
        if ctx.has_bias and ctx.needs_input_grad[2]:
            grad_b = grad.sum(0)
        return grad_x, grad_w, grad_b, None


@torch.compiler.disable  # data-dependent sizes: torch.compile runs it eagerly between two graphs
def sparse_input_linear(
    x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None, max_density: float = 1.0
) -> torch.Tensor:
    """``F.linear(x, weight, bias)`` computed over the nonzero entries of ``x`` only (see the module docstring).

    ``x``: ``[..., in_features]``. When more than ``max_density`` of ``x`` is nonzero, or ``x`` and ``weight``
    differ in dtype, or ``x`` is empty, the ordinary dense ``F.linear`` runs instead (same result).
    """
    if not 0.0 <= max_density <= 1.0:
        raise ValueError(f"max_density must lie in [0, 1], got {max_density!r}")
    k = x.shape[-1]
    if x.numel() == 0 or x.dtype != weight.dtype or k != weight.shape[1]:
        return F.linear(x, weight, bias)  # (F.linear raises the usual shape error)
    x2 = x.reshape(-1, k)
    mask = x2 != 0
    if max_density < 1.0 and int(mask.sum()) > max_density * mask.numel():
        return F.linear(x, weight, bias)
    flat = mask.view(-1).nonzero().squeeze(1)
    out = _SparseInputLinear.apply(x2, weight, bias, flat)
    return out.view(*x.shape[:-1], weight.shape[0])
