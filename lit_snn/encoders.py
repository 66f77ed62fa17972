"""Input encoders: turn a batch of static inputs ``[B, ...]`` into a time-first sequence ``[T, B, ...]``.

``make_encoder(name, num_steps, **kw)`` builds one by name:

- ``direct``: the same analog input at every step, ``out[t] = x``.
- ``rate``: Bernoulli ("Poisson") rate coding, ``out[t] ~ Bernoulli(gain * x)`` independently per step and element.
- ``latency``: one spike per element at step ``min(floor(T * (1 - x)), T - 1)``, none where ``x <= threshold``.
- ``population``: Gaussian receptive fields over the value range, each field's response latency coded;
  output ``[T, B, ..., N]`` (a trailing axis of ``N`` fields).

Every encoder is an ``nn.Module`` without parameters or buffers (nothing lands in a state_dict). The stochastic
one (``rate``) draws from its own ``torch.Generator`` when given ``seed`` (one generator per device, created on
first use and seeded with ``seed``, so the same seed gives the same spike trains call after call), from a
generator passed in, or else from torch's global generator (seeded by ``lightning.seed_everything``).
"""

from __future__ import annotations

import math

import torch
from torch import nn

ENCODERS = ("direct", "rate", "latency", "population")


def _check_num_steps(num_steps) -> int:
    if isinstance(num_steps, bool) or not isinstance(num_steps, int) or num_steps < 1:
        raise ValueError(f"num_steps (T) must be an integer >= 1, got {num_steps!r}")
    return num_steps


def _check_unit_interval(x: torch.Tensor, encoder: str) -> None:
    """Raise unless every value of ``x`` lies in [0, 1] (intensities; not normalised inputs)."""
    lo, hi = torch.aminmax(x.detach())
    lo, hi = float(lo), float(hi)
    if lo < 0.0 or hi > 1.0:
        raise ValueError(
            f"the {encoder} encoder needs intensities in [0, 1], got values in [{lo:.4g}, {hi:.4g}]; "
            "turn normalisation off (normalize=False) when using it"
        )


class Encoder(nn.Module):
    """Base class: maps ``x[B, ...]`` to ``[T, B, ...]`` (``population`` appends a field axis)."""

    def __init__(self, num_steps: int):
        super().__init__()
        self.num_steps = _check_num_steps(num_steps)

    def extra_repr(self) -> str:
        return f"num_steps={self.num_steps}"


class DirectEncoder(Encoder):
    """Direct (constant-current) coding: ``out[t] = x`` for every ``t``.

    The result is a view of ``x`` with stride 0 along time (no copy), which tells time-first layers
    (:class:`lit_snn.models.TimeFirstLinear`) that the input is constant over time, so they compute it once.
    Operations that need a contiguous tensor copy it as usual (``reshape``, ``contiguous()``); do not modify the
    result in place.

    >>> DirectEncoder(3)(torch.tensor([[0.5]])).flatten().tolist()
    [0.5, 0.5, 0.5]
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.unsqueeze(0).expand(self.num_steps, *x.shape)


class RateEncoder(Encoder):
    """Bernoulli rate coding: ``out[t, i] = 1 if u[t, i] < gain * x[i] else 0`` with ``u ~ U[0, 1)`` i.i.d.

    So each element spikes with probability ``p = gain * x`` per step (mean rate ``p``). ``x`` must lie in [0, 1]
    and ``gain`` in (0, 1]. ``u`` is ``torch.rand((T, *x.shape), generator=g)`` with ``g`` the encoder's generator
    for ``x``'s device (see the module docstring); exactly this draw, so a test can repeat it.

    Args:
        num_steps: T.
        gain: scales the firing probability.
        seed: seed of the encoder's own generators (one per device); ``None`` uses ``generator`` or the global RNG.
        generator: a ``torch.Generator`` to draw from (on the device of the inputs); excludes ``seed``.
    """

    def __init__(self, num_steps: int, gain: float = 1.0, seed: int | None = None, generator=None):
        super().__init__(num_steps)
        if not 0.0 < gain <= 1.0:
            raise ValueError(f"gain must be in (0, 1], got {gain!r}")
        if seed is not None and generator is not None:
            raise ValueError("give either seed or generator to the rate encoder, not both")
        if generator is not None and not isinstance(generator, torch.Generator):
            raise TypeError(f"generator must be a torch.Generator, got {type(generator).__name__}")
        self.gain = float(gain)
        self.seed = seed
        self._generators: dict[torch.device, torch.Generator] = {}
        if generator is not None:
            self._generators[generator.device] = generator

    def generator(self, device: torch.device) -> torch.Generator | None:
        """The generator used for inputs on ``device`` (``None``: torch's global one)."""
        device = torch.device(device)
        if device.type == "cuda" and device.index is None:
            device = torch.device("cuda", torch.cuda.current_device())
        if device not in self._generators:
            if self.seed is None:
                if self._generators:
                    raise ValueError(
                        f"the rate encoder's generator is on {next(iter(self._generators))}, but the input is on "
                        f"{device}; pass a generator on the input's device or a seed"
                    )
                return None
            self._generators[device] = torch.Generator(device=device).manual_seed(self.seed)
        return self._generators[device]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _check_unit_interval(x, "rate")
        u = torch.rand((self.num_steps, *x.shape), generator=self.generator(x.device), device=x.device, dtype=x.dtype)
        return (u < self.gain * x).to(x.dtype)

    def extra_repr(self) -> str:
        return f"num_steps={self.num_steps}, gain={self.gain}, seed={self.seed}"


def latency_step(x: torch.Tensor, num_steps: int) -> torch.Tensor:
    """Step at which intensity ``x`` in [0, 1] fires under linear latency coding: ``min(floor(T (1 - x)), T - 1)``.

    The unit interval is cut into ``T`` equal bins, brightest first: ``x`` in ``(1 - (k+1)/T, 1 - k/T]`` fires at
    step ``k``; so ``x = 1`` fires at step 0. (Whether it fires at all is decided by the threshold, not here.)

    >>> latency_step(torch.tensor([1.0, 0.8, 0.75, 0.5, 0.3, 0.1]), 4).tolist()
    [0, 0, 1, 2, 2, 3]
    """
    return torch.clamp(torch.floor(num_steps * (1.0 - x)), 0, num_steps - 1).long()


def _latency_spikes(x: torch.Tensor, num_steps: int, threshold: float) -> torch.Tensor:
    steps = torch.arange(num_steps, device=x.device).view(num_steps, *([1] * x.dim()))
    return ((steps == latency_step(x, num_steps)) & (x > threshold)).to(x.dtype)


class LatencyEncoder(Encoder):
    """Linear latency (time-to-first-spike) coding: at most one spike per element, brighter fires earlier.

    ``out[t, i] = 1`` iff ``x[i] > threshold`` and ``t == min(floor(T * (1 - x[i])), T - 1)`` (see
    :func:`latency_step`): with ``T = 4``, ``x`` in (0.75, 1] fires at step 0, (0.5, 0.75] at 1, (0.25, 0.5] at 2,
    (threshold, 0.25] at 3; ``x <= threshold`` (default 0: black pixels) never fires. ``x`` must lie in [0, 1].

    >>> LatencyEncoder(4)(torch.tensor([[1.0, 0.6, 0.0]])).squeeze(1).tolist()
    [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 0.0], [0.0, 0.0, 0.0]]
    """

    def __init__(self, num_steps: int, threshold: float = 0.0):
        super().__init__(num_steps)
        if not 0.0 <= threshold < 1.0:
            raise ValueError(f"threshold must be in [0, 1), got {threshold!r}")
        self.threshold = float(threshold)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _check_unit_interval(x, "latency")
        return _latency_spikes(x, self.num_steps, self.threshold)

    def extra_repr(self) -> str:
        return f"num_steps={self.num_steps}, threshold={self.threshold}"


class PopulationEncoder(Encoder):
    """Population coding with Gaussian receptive fields, each field's response latency coded.

    ``N = num_neurons`` fields tile ``[x_min, x_max]`` with centres ``mu_j = x_min + j (x_max - x_min) / (N - 1)``
    and common width ``sigma`` (default: the centre spacing ``(x_max - x_min) / (N - 1)``). Field ``j``'s response
    to a value ``x`` is ``r_j = exp(-(x - mu_j)^2 / (2 sigma^2))`` in (0, 1]; it fires once, at step
    ``min(floor(T (1 - r_j)), T - 1)`` (as :class:`LatencyEncoder`), if ``r_j > threshold`` (default 0.1), else never.

    Output shape: ``[T, B, *x.shape[1:], N]`` (a trailing axis of fields; flatten it into the features if the model
    wants vectors). Values outside ``[x_min, x_max]`` are allowed: they just excite the edge fields less.

    >>> enc = PopulationEncoder(4, num_neurons=3)        # centres 0, 0.5, 1; sigma 0.5
    >>> enc(torch.tensor([[0.5]]))[:, 0, 0].tolist()    # r = [e^-0.5, 1, e^-0.5] -> steps 1, 0, 1
    [[0.0, 1.0, 0.0], [1.0, 0.0, 1.0], [0.0, 0.0, 0.0], [0.0, 0.0, 0.0]]
    """

    def __init__(
        self,
        num_steps: int,
        num_neurons: int = 8,
        x_min: float = 0.0,
        x_max: float = 1.0,
        sigma: float | None = None,
        threshold: float = 0.1,
    ):
        super().__init__(num_steps)
        if isinstance(num_neurons, bool) or not isinstance(num_neurons, int) or num_neurons < 2:
            raise ValueError(f"num_neurons must be an integer >= 2, got {num_neurons!r}")
        if not x_max > x_min:
            raise ValueError(f"x_max must be > x_min, got x_min={x_min!r}, x_max={x_max!r}")
        spacing = (x_max - x_min) / (num_neurons - 1)
        sigma = spacing if sigma is None else sigma
        if not (sigma > 0 and math.isfinite(sigma)):
            raise ValueError(f"sigma must be a positive number, got {sigma!r}")
        if not 0.0 <= threshold < 1.0:
            raise ValueError(f"threshold must be in [0, 1), got {threshold!r}")
        self.num_neurons = num_neurons
        self.x_min, self.x_max, self.sigma, self.threshold = float(x_min), float(x_max), float(sigma), float(threshold)

    def centres(self, device=None, dtype=None) -> torch.Tensor:
        """The ``N`` field centres ``mu_j``."""
        j = torch.arange(self.num_neurons, device=device, dtype=dtype or torch.get_default_dtype())
        return self.x_min + j * ((self.x_max - self.x_min) / (self.num_neurons - 1))

    def responses(self, x: torch.Tensor) -> torch.Tensor:
        """``r[..., j] = exp(-(x - mu_j)^2 / (2 sigma^2))``, shape ``[*x.shape, N]``."""
        mu = self.centres(x.device, x.dtype)
        return torch.exp(-((x.unsqueeze(-1) - mu) ** 2) / (2.0 * self.sigma**2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _latency_spikes(self.responses(x), self.num_steps, self.threshold)

    def extra_repr(self) -> str:
        return (
            f"num_steps={self.num_steps}, num_neurons={self.num_neurons}, x_min={self.x_min}, x_max={self.x_max}, "
            f"sigma={self.sigma}, threshold={self.threshold}"
        )


_CLASSES: dict[str, type[Encoder]] = {
    "direct": DirectEncoder,
    "rate": RateEncoder,
    "latency": LatencyEncoder,
    "population": PopulationEncoder,
}


def make_encoder(name: str, num_steps: int, **kwargs) -> Encoder:
    """Build the encoder ``name`` (one of ``direct | rate | latency | population``) for ``num_steps`` steps.

    ``kwargs`` go to its class: ``rate``: ``gain, seed, generator``; ``latency``: ``threshold``;
    ``population``: ``num_neurons, x_min, x_max, sigma, threshold``; ``direct``: none.

    >>> make_encoder("direct", 2)(torch.ones(1, 3)).shape
    torch.Size([2, 1, 3])
    """
    if name not in _CLASSES:
        raise ValueError(f"encoder must be one of {ENCODERS}, got {name!r}")
    try:
        return _CLASSES[name](num_steps, **kwargs)
    except TypeError as err:
        raise TypeError(f"bad arguments {sorted(kwargs)} for the {name!r} encoder: {err}") from err
