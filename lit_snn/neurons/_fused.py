"""Fused LIF scan: the whole time loop of one layer is a single autograd node with a hand-written BPTT backward.

The step-by-step reference (``LIF._scan_reference`` in :mod:`lit_snn.neurons.base`) builds about eight autograd
nodes per time step and keeps their inputs alive. :func:`lif_scan` runs the same arithmetic without recording
a graph and stores only the charged membrane ``h`` (one ``[T, B, ...]`` tensor; the spikes are recomputed from
it as ``h >= theta``, which is bit-exact). The forward uses the reference's operations in the reference's
order, so spikes and membranes are bitwise identical; the backward solves the adjoint recurrence below one
step at a time (a handful of ``[B, ...]`` operations per step, which stay in cache). Eager mode writes into
preallocated buffers; under ``torch.compile`` an equivalent allocation-per-step version is traced instead
(in-place writes into slices would be copied by functionalisation), which inductor fuses.

:func:`alif_scan` does the same for the adaptive-threshold neuron (``AdaptiveLIF``), storing ``h`` and the
per-step threshold.

Forward, for t = 1..T with ``v_0 = 0``::

    h_t = beta * v_{t-1} + x_t
    s_t = H(h_t - theta)
    v_t = h_t - r_t * theta        (subtract)     or     v_t = (1 - r_t) * h_t   (zero)

with ``r_t = s_t`` (gradient flows through the reset) or ``sg(s_t)`` (``detach_reset``).

Backward. Let ``g_t = dL/dh_t`` (total), ``gs_t``/``gm_t`` the incoming gradients of the spike and membrane
outputs, ``sigma_t = surrogate.grad(h_t - theta)`` and ``gv_t = beta * g_{t+1}`` (``gv_T = 0``) the gradient
reaching ``v_t``. With ``a_t = dv_t/dh_t`` and ``b_t = dv_t/ds_t``::

                 subtract          zero
    a_t          1                 1 - s_t
    b_t          -theta            -h_t              (0 when detach_reset)

    g_t      = gm_t + gs_t * sigma_t + (a_t + b_t * sigma_t) * beta * g_{t+1}      (the only loop)
    dL/dx_t  = g_t
    dL/dbeta = sum_t g_t * v_{t-1}
    dL/dtheta = -sum_t [ (gs_t + b_t * gv_t) * sigma_t + gv_t * s_t * (reset == "subtract") ]

Fire-once neurons (``fire_once=True``, the ``ttfs`` kind) multiply the spike by ``alive_t = 1 - sum_{tau<t} s_tau``
(no gradient through ``alive``), so ``s_t`` and ``sigma_t`` above are both multiplied by ``alive_t``.

``beta`` and ``theta`` may be Python floats or tensors broadcasting against ``x[t]`` (per-neuron learnable
parameters); their gradients are summed back to their shapes.
"""

from __future__ import annotations

import torch

from .surrogate import Surrogate


def _forward_buffers(x, beta, theta, zero_reset: bool, fire_once: bool, dtype: torch.dtype):
    """Eager forward: the reference's operations written into preallocated buffers (no allocation per step)."""
    h = torch.empty(x.shape, dtype=dtype, device=x.device)
    s = torch.empty_like(h)
    v = torch.empty_like(h[0])
    alive = torch.ones_like(h[0]) if fire_once else None  # 1 - fired
    last = x.shape[0] - 1
    for t in range(x.shape[0]):
        ht, st = h[t], s[t]
        if t == 0:
            ht.copy_(x[0])  # beta * 0 + x_0 == x_0 exactly
        else:
            torch.mul(v, beta, out=ht)
            ht.add_(x[t])
        torch.ge(ht, theta, out=st)  # == H(h - theta) for finite values
        if fire_once:
            st.mul_(alive)
            alive.sub_(st)
        if t == last:
            break
        if zero_reset:  # h - h*s == (1 - s) * h exactly, as s is 0 or 1
            torch.addcmul(ht, ht, st, value=-1, out=v)
        elif isinstance(theta, torch.Tensor):  # h - s*theta, s*theta exact
            torch.addcmul(ht, st, theta, value=-1, out=v)
        else:
            torch.sub(ht, st, alpha=theta, out=v)
    return s, h


def _forward_functional(x, beta, theta, zero_reset: bool, fire_once: bool, dtype: torch.dtype):
    """The same forward without in-place writes, for torch.compile (writes into slices would be copied)."""
    hs, ss = [], []
    v = alive = None
    for t in range(x.shape[0]):
        h = x[0].to(dtype) if v is None else beta * v + x[t]
        s = (h >= theta).to(dtype)
        if fire_once:
            s = s if alive is None else s * alive
            alive = 1.0 - s if alive is None else alive - s
        v = h - h * s if zero_reset else h - s * theta
        hs.append(h)
        ss.append(s)
    return torch.stack(ss), torch.stack(hs)


def _alive_mask(h: torch.Tensor, theta, functional: bool = False) -> torch.Tensor:
    """Fire-once neurons: ``alive_t = prod_{tau < t} [h_tau < theta]`` (1 until the neuron's first spike)."""
    if functional:
        alive = [torch.ones_like(h[0])]
        for t in range(1, h.shape[0]):
            alive.append(alive[-1] * (h[t - 1] < theta).to(h.dtype))
        return torch.stack(alive)
    alive = torch.empty_like(h)  # a step loop: torch.cummax is ~50x slower on CPU
    alive[0].fill_(1)
    for t in range(1, h.shape[0]):
        torch.lt(h[t - 1], theta, out=alive[t])
        alive[t].mul_(alive[t - 1])
    return alive


def _backward_buffers(h, gs, gm, beta, theta, surrogate, zero_reset, detach_reset, fire_once, need_beta, need_theta):
    """Eager backward: one step at a time from t = T-1 down to 0, so every [B, ...] operand stays in cache.

    Returns ``(dL/dh, sum over time of dL/dbeta terms, sum over time of -dL/dtheta terms)`` (the last two
    ``[B, ...]`` or ``None``).
    """
    g = torch.empty_like(h)  # g_t = dL/dh_t, which is also dL/dx_t
    acc_beta = torch.zeros_like(h[0]) if need_beta else None
    acc_theta = torch.zeros_like(h[0]) if need_theta else None
    spike = torch.empty_like(h[0]) if (zero_reset or need_theta) else None
    alive = _alive_mask(h, theta) if fire_once else None  # s_t = alive_t * H(h_t - theta): sigma_t is masked too
    last = h.shape[0] - 1
    for t in range(last, -1, -1):
        ht, gt = h[t], g[t]
        xth = ht - theta
        sigma = surrogate.grad(xth)
        if spike is not None:
            torch.ge(xth, 0, out=spike)
            if alive is not None:
                spike.mul_(alive[t])
        if alive is not None:
            sigma = sigma * alive[t]
        gst = None if gs is None else gs[t]
        gv = None if t == last else torch.mul(g[t + 1], beta)  # gv_t = dL/dv_t
        # gs_total = gs_t + b_t * gv_t
        if gv is None or detach_reset:
            gs_total = gst
        elif zero_reset:
            gs_total = torch.mul(ht, gv).neg_() if gst is None else torch.addcmul(gst, ht, gv, value=-1)
        elif gst is None:
            gs_total = gv * -theta
        elif isinstance(theta, torch.Tensor):
            gs_total = torch.addcmul(gst, gv, theta, value=-1)
        else:
            gs_total = torch.add(gst, gv, alpha=-theta)
        if need_theta:
            if gs_total is not None:
                acc_theta.addcmul_(gs_total, sigma)
            if gv is not None and not zero_reset:
                acc_theta.addcmul_(gv, spike)
        # g_t = gm_t + gs_total * sigma_t + a_t * gv_t
        if gv is None:
            if gs_total is None:
                gt.zero_()
            else:
                torch.mul(gs_total, sigma, out=gt)
        else:
            if zero_reset:
                gv.addcmul_(gv, spike, value=-1)  # a_t * gv_t = (1 - s_t) * gv_t
            if gs_total is None:
                gt.copy_(gv)
            else:
                torch.addcmul(gv, gs_total, sigma, out=gt)
        if gm is not None:
            gt.add_(gm[t])
        if need_beta and t > 0:
            hp = h[t - 1]  # v_{t-1} = reset(h_{t-1}, s_{t-1}), rebuilt as the forward computed it
            sp = hp.ge(theta).to(h.dtype)
            if alive is not None:
                sp.mul_(alive[t - 1])
            vp = torch.addcmul(hp, hp, sp, value=-1) if zero_reset else hp - sp * theta
            acc_beta.addcmul_(gt, vp)
    return g, acc_beta, acc_theta


def _backward_functional(h, gs, gm, beta, theta, surrogate, zero_reset, detach_reset, fire_once, need_beta,
                         need_theta):
    """The same backward without in-place writes, for torch.compile."""
    zero = torch.zeros_like(h[0])
    alive = _alive_mask(h, theta, functional=True) if fire_once else None
    gs = [zero] * h.shape[0] if gs is None else gs
    grads = []
    acc_beta = acc_theta = zero
    g_next = None
    for t in range(h.shape[0] - 1, -1, -1):
        ht = h[t]
        sigma = surrogate.grad(ht - theta)
        spike = (ht >= theta).to(h.dtype)
        if alive is not None:
            sigma, spike = sigma * alive[t], spike * alive[t]
        gv = zero if g_next is None else g_next * beta
        if detach_reset:
            gs_total = gs[t]
        else:
            gs_total = gs[t] - (ht if zero_reset else theta) * gv
        a_gv = gv - gv * spike if zero_reset else gv
        g = a_gv + gs_total * sigma
        if gm is not None:
            g = g + gm[t]
        if need_theta:
            acc_theta = acc_theta + gs_total * sigma + (0.0 if zero_reset else gv * spike)
        if need_beta and t > 0:
            hp = h[t - 1]
            sp = (hp >= theta).to(h.dtype) if alive is None else (hp >= theta).to(h.dtype) * alive[t - 1]
            acc_beta = acc_beta + g * (hp - hp * sp if zero_reset else hp - sp * theta)
        grads.append(g)
        g_next = g
    grads.reverse()
    return torch.stack(grads), acc_beta, acc_theta


def _result_dtype(x: torch.Tensor, beta, theta) -> torch.dtype:
    """The reference's dtype: that of ``beta * v + x - theta`` with ``v`` of x's dtype (floats never promote x)."""
    if not isinstance(beta, torch.Tensor) and not isinstance(theta, torch.Tensor):
        return x.dtype
    return (x[:1, :1] * beta + x[:1, :1] - theta).dtype


def _functional_path() -> bool:
    """Use the allocation-per-step path: under torch.compile (inductor fuses it); tests force it in eager."""
    return torch.compiler.is_compiling()


class _LIFScan(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, beta, theta, surrogate: Surrogate, zero_reset: bool, detach_reset: bool, fire_once: bool):
        dtype = _result_dtype(x, beta, theta)
        forward = _forward_functional if _functional_path() else _forward_buffers
        s, h = forward(x, beta, theta, zero_reset, fire_once, dtype)
        ctx.set_materialize_grads(False)
        ctx.surrogate, ctx.zero_reset, ctx.detach_reset, ctx.fire_once = surrogate, zero_reset, detach_reset, fire_once
        ctx.beta = None if isinstance(beta, torch.Tensor) else beta
        ctx.theta = None if isinstance(theta, torch.Tensor) else theta
        ctx.x_dtype = x.dtype
        ctx.save_for_backward(h, *(p for p in (beta, theta) if isinstance(p, torch.Tensor)))
        return s, h

    @staticmethod
    def backward(ctx, gs, gm):
        if gs is None and gm is None:
            return None, None, None, None, None, None, None
        saved = list(ctx.saved_tensors)
        h = saved.pop(0)
        beta = saved.pop(0) if ctx.beta is None else ctx.beta
        theta = saved.pop(0) if ctx.theta is None else ctx.theta
        need_x, need_beta, need_theta = ctx.needs_input_grad[:3]
        backward = _backward_functional if _functional_path() else _backward_buffers
        g, acc_beta, acc_theta = backward(
            h, gs, gm, beta, theta, ctx.surrogate, ctx.zero_reset, ctx.detach_reset, ctx.fire_once, need_beta,
            need_theta,
        )
        grad_x = g.to(ctx.x_dtype) if need_x else None
        grad_beta = acc_beta.sum_to_size(beta.shape) if need_beta else None
        grad_theta = acc_theta.neg().sum_to_size(theta.shape) if need_theta else None
        return grad_x, grad_beta, grad_theta, None, None, None, None


def lif_scan(
    x: torch.Tensor,
    beta: torch.Tensor | float,
    theta: torch.Tensor | float,
    surrogate: Surrogate,
    reset: str = "subtract",
    detach_reset: bool = False,
    fire_once: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Spikes and charged membranes ``(s, h)``, both ``[T, B, ...]``, of a LIF layer driven by ``x[T, B, ...]``.

    Same result as the step-by-step reference (bitwise forward; gradients up to rounding), with one autograd
    node for the whole sequence. ``beta``/``theta`` are floats or tensors broadcasting against ``x[t]``.
    ``fire_once=True`` is the time-to-first-spike neuron (``FireOnceLIF``): ``s_t = H(h_t - theta) * alive_t``
    with ``alive_t = 1 - sum_{tau < t} sg(s_tau)``.
    """
    if reset not in ("subtract", "zero"):
        raise ValueError(f"reset must be 'subtract' or 'zero', got {reset!r}")
    return _LIFScan.apply(x, beta, theta, surrogate, reset == "zero", bool(detach_reset), bool(fire_once))


# -- adaptive threshold ---------------------------------------------------------------------------------------
# Forward (AdaptiveLIF), a_0 = 0:  theta_t = threshold + adapt * a_{t-1};  h_t = beta * v_{t-1} + x_t;
#   s_t = H(h_t - theta_t);  v_t = reset(h_t, s_t, theta_t);  a_t = rho * a_{t-1} + (1 - rho) * s_t.
# Backward, with gv_t = beta * g_{t+1} and ga_t = dL/da_t (both 0 at t = T-1), sigma_t = grad(h_t - theta_t):
#   gs_total_t = gs_t + b_t * gv_t + (1 - rho) * ga_t          (the trace sees the spike without detach)
#   g_t        = gm_t + gs_total_t * sigma_t + a_t * gv_t         (a_t, b_t as for the LIF, with theta_t)
#   gth_t      = -gs_total_t * sigma_t - gv_t * s_t * (reset == "subtract")       (= dL/dtheta_t)
#   ga_{t-1}   = rho * ga_t + adapt * gth_t;   dL/dthreshold = sum_t gth_t;   dL/dbeta = sum_t g_t * v_{t-1}


def _alif_forward_buffers(x, beta, threshold, adapt, rho, zero_reset, dtype):
    h = torch.empty(x.shape, dtype=dtype, device=x.device)
    s, th = torch.empty_like(h), torch.empty_like(h)
    v, a = torch.empty_like(h[0]), torch.zeros_like(h[0])
    for t in range(x.shape[0]):
        ht, st, tht = h[t], s[t], th[t]
        if t == 0:
            ht.copy_(x[0])
            tht.copy_(threshold + adapt * a)
        else:
            torch.mul(v, beta, out=ht)
            ht.add_(x[t])
            torch.mul(a, adapt, out=tht)
            tht.add_(threshold)
        torch.ge(ht, tht, out=st)
        if zero_reset:
            torch.addcmul(ht, ht, st, value=-1, out=v)
        else:
            torch.addcmul(ht, st, tht, value=-1, out=v)
        a.mul_(rho).add_(st, alpha=1 - rho)  # (1 - rho) * s is exact, so one rounding as in the reference
    return s, h, th


def _alif_forward_functional(x, beta, threshold, adapt, rho, zero_reset, dtype):
    hs, ss, ths = [], [], []
    v, a = None, torch.zeros_like(x[0], dtype=dtype)
    for t in range(x.shape[0]):
        theta = threshold + adapt * a
        h = x[0].to(dtype) if v is None else beta * v + x[t]
        s = (h >= theta).to(dtype)
        v = h - h * s if zero_reset else h - s * theta
        a = rho * a + (1 - rho) * s
        hs.append(h)
        ss.append(s)
        ths.append(theta.expand_as(h))
    return torch.stack(ss), torch.stack(hs), torch.stack(ths)


def _alif_backward_buffers(h, th, gs, gm, beta, adapt, rho, surrogate, zero_reset, detach_reset, need_beta):
    """Eager backward of :func:`alif_scan`, in place on a few ``[B, ...]`` work buffers.

    Returns ``(dL/dh [T, B, ...], sum_t g_t v_{t-1} [B, ...] or None, sum_t dL/dtheta_t [B, ...])``.
    """
    last = h.shape[0] - 1
    g = torch.empty_like(h)
    xth, spike, gv, gsum, ga, acc_th = (torch.zeros_like(h[0]) for _ in range(6))
    acc_beta = torch.zeros_like(h[0]) if need_beta else None
    for t in range(last, -1, -1):
        ht, tht, gt = h[t], th[t], g[t]
        torch.sub(ht, tht, out=xth)
        sigma = surrogate.grad(xth)
        torch.ge(xth, 0, out=spike)
        if t == last:
            gv.zero_()
        else:
            torch.mul(g[t + 1], beta, out=gv)
        # gs_total_t = gs_t + b_t * gv_t + (1 - rho) * ga_t   (in gsum)
        if gs is None:
            gsum.zero_()
        else:
            gsum.copy_(gs[t])
        if not detach_reset:
            gsum.addcmul_(ht if zero_reset else tht, gv, value=-1)
        gsum.add_(ga, alpha=1 - rho)
        # g_t = gs_total_t * sigma_t + a_t * gv_t + gm_t
        torch.mul(gsum, sigma, out=gt)
        gt.add_(gv)
        if zero_reset:
            gt.addcmul_(gv, spike, value=-1)
        if gm is not None:
            gt.add_(gm[t])
        # -dL/dtheta_t = gs_total_t * sigma_t (+ gv_t * s_t for subtract), in gsum
        gsum.mul_(sigma)
        if not zero_reset:
            gsum.addcmul_(gv, spike)
        acc_th.sub_(gsum)
        ga.mul_(rho).add_(gsum, alpha=-adapt)
        if need_beta and t > 0:
            hp, thp = h[t - 1], th[t - 1]
            torch.ge(hp, thp, out=spike)  # s_{t-1}; v_{t-1} = reset(h_{t-1}, s_{t-1}, theta_{t-1})
            vp = torch.addcmul(hp, hp, spike, value=-1) if zero_reset else torch.addcmul(hp, spike, thp, value=-1)
            acc_beta.addcmul_(gt, vp)
    return g, acc_beta, acc_th


def _alif_backward_functional(h, th, gs, gm, beta, adapt, rho, surrogate, zero_reset, detach_reset, need_beta):
    """The same backward without in-place writes, for torch.compile."""
    zero = torch.zeros_like(h[0])
    grads = []
    acc_beta, acc_th, ga = zero, zero, zero
    g_next = None
    for t in range(h.shape[0] - 1, -1, -1):
        ht, tht = h[t], th[t]
        sigma = surrogate.grad(ht - tht)
        spike = (ht >= tht).to(h.dtype)
        gv = zero if g_next is None else g_next * beta
        gs_total = zero if gs is None else gs[t]
        if not detach_reset:
            gs_total = gs_total - (ht if zero_reset else tht) * gv
        gs_total = gs_total + (1 - rho) * ga
        gt = gs_total * sigma + (gv - gv * spike if zero_reset else gv)
        if gm is not None:
            gt = gt + gm[t]
        gth = gs_total * sigma if zero_reset else gs_total * sigma + gv * spike  # -dL/dtheta_t
        acc_th = acc_th - gth
        ga = rho * ga - adapt * gth
        if need_beta and t > 0:
            hp, thp = h[t - 1], th[t - 1]
            sp = (hp >= thp).to(h.dtype)
            acc_beta = acc_beta + gt * (hp - hp * sp if zero_reset else hp - sp * thp)
        grads.append(gt)
        g_next = gt
    grads.reverse()
    return torch.stack(grads), (acc_beta if need_beta else None), acc_th


class _ALIFScan(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, beta, threshold, adapt, rho, surrogate, zero_reset, detach_reset):
        dtype = _result_dtype(x, beta, threshold)
        forward = _alif_forward_functional if _functional_path() else _alif_forward_buffers
        s, h, th = forward(x, beta, threshold, adapt, rho, zero_reset, dtype)
        ctx.set_materialize_grads(False)
        ctx.args = (adapt, rho, surrogate, zero_reset, detach_reset)
        ctx.beta = None if isinstance(beta, torch.Tensor) else beta
        ctx.threshold_shape = threshold.shape if isinstance(threshold, torch.Tensor) else None
        ctx.x_dtype = x.dtype
        ctx.save_for_backward(h, th, *([beta] if isinstance(beta, torch.Tensor) else []))
        return s, h

    @staticmethod
    def backward(ctx, gs, gm):
        nones = (None,) * 5
        if gs is None and gm is None:
            return (None, None, None) + nones
        h, th, *rest = ctx.saved_tensors
        beta = rest[0] if ctx.beta is None else ctx.beta
        adapt, rho, surrogate, zero_reset, detach_reset = ctx.args
        need_x, need_beta, need_threshold = ctx.needs_input_grad[:3]
        backward = _alif_backward_functional if _functional_path() else _alif_backward_buffers
        g, acc_beta, acc_th = backward(h, th, gs, gm, beta, adapt, rho, surrogate, zero_reset, detach_reset, need_beta)
        grad_x = g.to(ctx.x_dtype) if need_x else None
        grad_beta = acc_beta.sum_to_size(beta.shape) if need_beta else None
        grad_threshold = acc_th.sum_to_size(ctx.threshold_shape) if need_threshold else None
        return (grad_x, grad_beta, grad_threshold) + nones


def alif_scan(
    x: torch.Tensor,
    beta: torch.Tensor | float,
    threshold: torch.Tensor | float,
    adapt: float,
    rho: float,
    surrogate: Surrogate,
    reset: str = "subtract",
    detach_reset: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Spikes and charged membranes ``(s, h)`` of an adaptive-threshold LIF layer (``AdaptiveLIF``), fused.

    ``theta_t = threshold + adapt * a_{t-1}`` with the trace ``a_t = rho * a_{t-1} + (1 - rho) * s_t``; otherwise
    as :func:`lif_scan`. Stores ``h`` and ``theta_t`` (two ``[T, B, ...]`` tensors) for the backward.
    """
    if reset not in ("subtract", "zero"):
        raise ValueError(f"reset must be 'subtract' or 'zero', got {reset!r}")
    return _ALIFScan.apply(x, beta, threshold, float(adapt), float(rho), surrogate, reset == "zero",
                           bool(detach_reset))
