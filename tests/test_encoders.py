"""Encoders: shapes, hand-computed small cases, seeding, bad arguments."""

from __future__ import annotations

import copy
import math
import pickle

import pytest
import torch

from lit_snn.encoders import (
    DirectEncoder,
    LatencyEncoder,
    PopulationEncoder,
    RateEncoder,
    latency_step,
    make_encoder,
)


@pytest.mark.parametrize(
    "name, kw, extra",
    [("direct", {}, ()), ("rate", {"seed": 1}, ()), ("latency", {}, ()), ("population", {"num_neurons": 5}, (5,))],
)
def test_shapes_and_dtypes(name, kw, extra):
    x = torch.rand(3, 1, 4, 4)
    out = make_encoder(name, 6, **kw)(x)
    assert out.shape == (6, 3, 1, 4, 4, *extra)
    assert out.dtype == torch.float32
    assert out.is_contiguous() or name == "direct"  # direct: a stride-0 view over time (test below)
    assert list(make_encoder(name, 6, **kw).state_dict()) == []


def test_direct_repeats_input():
    x = torch.tensor([[0.25, -1.5], [2.0, 0.0]])
    out = DirectEncoder(3)(x)
    for t in range(3):
        assert torch.equal(out[t], x)
    # a view with stride 0 along time, no copy: time-first layers recognise the constant input by it
    assert out.stride(0) == 0 and out.data_ptr() == x.data_ptr()


def test_rate_is_bernoulli_of_the_documented_draw():
    x = torch.tensor([[0.0, 0.3, 0.5, 1.0]])
    out = RateEncoder(5, gain=0.8, seed=123)(x)
    u = torch.rand((5, 1, 4), generator=torch.Generator().manual_seed(123))
    assert torch.equal(out, (u < 0.8 * x).float())
    assert out[:, 0, 0].sum() == 0  # p = 0 never fires


def test_rate_extremes_and_mean():
    assert RateEncoder(4, seed=0)(torch.ones(2, 3)).sum() == 24
    out = RateEncoder(2000, seed=0)(torch.full((1, 50), 0.3))
    assert abs(out.mean().item() - 0.3) < 0.01  # 100k draws: std of the mean ~ 0.0014


def test_rate_seeding():
    x = torch.rand(4, 10)
    a, b = RateEncoder(8, seed=7), RateEncoder(8, seed=7)
    first = a(x)
    assert torch.equal(first, b(x))  # same seed, same spikes
    assert not torch.equal(first, a(x))  # the stream moves on between calls
    assert not torch.equal(first, RateEncoder(8, seed=8)(x))
    g1, g2 = torch.Generator().manual_seed(5), torch.Generator().manual_seed(5)
    assert torch.equal(RateEncoder(8, generator=g1)(x), RateEncoder(8, generator=g2)(x))
    torch.manual_seed(3)
    c = RateEncoder(8)(x)
    torch.manual_seed(3)
    assert torch.equal(c, RateEncoder(8)(x))  # no seed: the global generator decides


def test_rate_copies_and_pickles():
    enc = RateEncoder(4, seed=2)
    x = torch.rand(2, 3)
    enc(x)
    clone, restored = copy.deepcopy(enc), pickle.loads(pickle.dumps(enc))
    expected = enc(x)  # the copies continue the stream from where the original stood
    assert torch.equal(clone(x), expected) and torch.equal(restored(x), expected)


def test_latency_hand_computed():
    # T = 4: (0.75, 1] -> 0, (0.5, 0.75] -> 1, (0.25, 0.5] -> 2, (0, 0.25] -> 3, 0 -> never
    x = torch.tensor([[1.0, 0.875, 0.75, 0.625, 0.5, 0.25, 0.125, 0.0]])
    assert latency_step(x, 4).tolist() == [[0, 0, 1, 1, 2, 3, 3, 3]]
    out = LatencyEncoder(4)(x)
    expected = torch.zeros(4, 1, 8)
    for i, t in enumerate([0, 0, 1, 1, 2, 3, 3]):
        expected[t, 0, i] = 1.0
    assert torch.equal(out, expected)
    assert torch.equal(out.sum(0), (x > 0).float())  # at most one spike each
    # threshold 0.3: 0.25 and 0.125 stay silent
    assert LatencyEncoder(4, threshold=0.3)(x).sum().item() == 5
    # T = 1: everything above threshold fires at step 0
    assert torch.equal(LatencyEncoder(1)(x)[0], (x > 0).float())


def test_population_hand_computed():
    enc = PopulationEncoder(4, num_neurons=3, threshold=0.1)  # centres 0, 0.5, 1; sigma 0.5
    x = torch.tensor([[0.5, 0.0]])
    r = enc.responses(x)
    e = math.exp(-0.5)
    assert torch.allclose(r, torch.tensor([[[e, 1.0, e], [1.0, e, math.exp(-2.0)]]]))
    out = enc(x)
    assert out.shape == (4, 1, 2, 3)
    # x = 0.5: r = e^-0.5 = 0.607 -> floor(4 * 0.393) = 1; centre fires at 0
    assert out[:, 0, 0].tolist() == [[0, 1, 0], [1, 0, 1], [0, 0, 0], [0, 0, 0]]
    # x = 0: field 0 at step 0, field 1 at step 1, field 2 (r = e^-2 = 0.135 > 0.1) at floor(4 * 0.865) = 3
    assert out[:, 0, 1].tolist() == [[1, 0, 0], [0, 1, 0], [0, 0, 0], [0, 0, 1]]
    assert PopulationEncoder(4, num_neurons=3, threshold=0.2)(x)[:, 0, 1, 2].sum() == 0
    assert torch.allclose(PopulationEncoder(2, num_neurons=5, x_min=-1.0, x_max=1.0).centres(),
                          torch.tensor([-1.0, -0.5, 0.0, 0.5, 1.0]))


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: make_encoder("poisson", 4), "encoder must be one of"),
        (lambda: make_encoder("direct", 0), "num_steps"),
        (lambda: make_encoder("direct", 2.0), "num_steps"),
        (lambda: make_encoder("rate", 4, gain=1.5), "gain"),
        (lambda: make_encoder("rate", 4, seed=1, generator=torch.Generator()), "not both"),
        (lambda: make_encoder("latency", 4, threshold=1.0), "threshold"),
        (lambda: make_encoder("population", 4, num_neurons=1), "num_neurons"),
        (lambda: make_encoder("population", 4, x_min=1.0, x_max=0.0), "x_max"),
        (lambda: make_encoder("rate", 4)(torch.tensor([[-0.4, 0.5]])), r"\[0, 1\]"),
        (lambda: make_encoder("latency", 4)(torch.tensor([[1.2]])), "normalize=False"),
    ],
)
def test_bad_arguments(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_unknown_keyword_names_the_encoder():
    with pytest.raises(TypeError, match="'direct' encoder"):
        make_encoder("direct", 4, gain=0.5)
