"""Event-driven Linear (lit_snn.models.sparse): values and gradients equal F.linear's, for spikes and for any input."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from lit_snn.models import BaselineLIF, TimeFirstLinear
from lit_snn.models.sparse import sparse_input_linear


def _grads(fn, x, w, b, g):
    x, w, b = (t.detach().clone().requires_grad_(True) for t in (x, w, b))
    y = fn(x, w, b)
    return (y, *torch.autograd.grad(y, (x, w, b), g))


@pytest.mark.parametrize("kind", ["spikes", "signed", "empty_rows", "all_zero", "dense"])
def test_equals_f_linear_in_value_and_gradient(kind):
    gen = torch.Generator().manual_seed(0)
    x = (torch.rand(3, 5, 7, generator=gen, dtype=torch.float64) < 0.2).double()
    if kind == "signed":  # any values: each nonzero weighted by its value
        x = x * torch.randn(x.shape, generator=gen, dtype=torch.float64)
    elif kind == "empty_rows":  # first and last rows silent: empty bags at both ends
        x[0], x[-1] = 0, 0
    elif kind == "all_zero":
        x.zero_()
    elif kind == "dense":
        x = torch.randn(x.shape, generator=gen, dtype=torch.float64)
    w = torch.randn(4, 7, generator=gen, dtype=torch.float64)
    b = torch.randn(4, generator=gen, dtype=torch.float64)
    g = torch.randn(3, 5, 4, generator=gen, dtype=torch.float64)
    ours = _grads(sparse_input_linear, x, w, b, g)
    ref = _grads(F.linear, x, w, b, g)
    for a, r in zip(ours, ref, strict=True):
        torch.testing.assert_close(a, r, rtol=0, atol=1e-12)


def test_both_column_orders_of_the_weight_gradient_agree(monkeypatch):
    """Small inputs find the column-major order through the transposed input, large ones by sorting."""
    import lit_snn.models.sparse as sparse

    gen = torch.Generator().manual_seed(3)
    x = (torch.rand(40, 30, generator=gen, dtype=torch.float64) < 0.3).double() * torch.randn(40, 30, generator=gen,
                                                                                             dtype=torch.float64)
    w, b = torch.randn(5, 30, dtype=torch.float64), torch.randn(5, dtype=torch.float64)
    g = torch.randn(40, 5, dtype=torch.float64)
    ref = _grads(F.linear, x, w, b, g)
    for threshold in (10**9, 1):  # transposed, sorted
        monkeypatch.setattr(sparse, "_SORT_FROM", threshold)
        for a, r in zip(_grads(sparse_input_linear, x, w, b, g), ref, strict=True):
            torch.testing.assert_close(a, r, rtol=0, atol=1e-12)


def test_density_above_the_limit_runs_the_dense_product(monkeypatch):
    import lit_snn.models.sparse as sparse

    calls = []
    real = sparse._SparseInputLinear.apply
    monkeypatch.setattr(sparse._SparseInputLinear, "apply", lambda *a: calls.append(1) or real(*a))
    x = torch.zeros(10, 10)
    x.view(-1)[:20] = 1.0  # 20% nonzero
    w = torch.randn(3, 10)
    torch.testing.assert_close(sparse_input_linear(x, w, None, max_density=0.25), x @ w.t())
    assert calls == [1]
    torch.testing.assert_close(sparse_input_linear(x, w, None, max_density=0.15), x @ w.t())
    assert calls == [1]  # 20% > 15%: dense
    with pytest.raises(ValueError, match="max_density must lie in"):
        sparse_input_linear(x, w, None, max_density=1.5)
    with pytest.raises(ValueError, match="max_density must be a number in"):
        TimeFirstLinear(4, 3, sparse_input=True, max_density=-0.1)


def test_baseline_lif_trains_alike_with_the_event_driven_layer(monkeypatch):
    """The same network, one with the event-driven second layer and one without, after three AdamW steps on the
    same batches: parameters equal to float rounding."""
    import lit_snn.models.sparse as sparse

    calls = []
    real = sparse._SparseInputLinear.apply
    monkeypatch.setattr(sparse._SparseInputLinear, "apply", lambda *a: calls.append(1) or real(*a))
    torch.manual_seed(0)
    a = BaselineLIF().double()
    b = BaselineLIF(event_driven=False).double()
    b.load_state_dict(a.state_dict())  # the same parameters: checkpoints move between the two
    assert a.hidden[1].fc.sparse_input and not a.hidden[0].fc.sparse_input and not b.hidden[1].fc.sparse_input
    opts = [torch.optim.AdamW(m.parameters(), lr=1e-3) for m in (a, b)]
    gen = torch.Generator().manual_seed(1)
    for _ in range(3):
        x = torch.randn(16, 784, generator=gen, dtype=torch.float64).expand(4, 16, 784)
        y = torch.randint(0, 10, (16,), generator=gen)
        for m, opt in zip((a, b), opts, strict=True):
            opt.zero_grad()
            F.cross_entropy(m(x).mean(0), y).backward()
            opt.step()
    for (name, p), q in zip(a.named_parameters(), b.parameters(), strict=True):
        torch.testing.assert_close(p, q, rtol=0, atol=1e-9, msg=name)
    assert len(calls) == 3  # every step of `a` took the event-driven path (spike density <= 15%)


def test_compiled_model_runs_the_event_driven_layer_between_graphs(monkeypatch):
    import lit_snn.models.sparse as sparse

    calls = []
    real = sparse._SparseInputLinear.apply
    monkeypatch.setattr(sparse._SparseInputLinear, "apply", lambda *a: calls.append(1) or real(*a))
    torch.manual_seed(0)
    net = BaselineLIF().eval()
    x = torch.randn(8, 784).expand(4, 8, 784)
    with torch.no_grad():
        want = net(x)
        assert calls == [1]
        got = torch.compile(net, backend="eager", fullgraph=False)(x)
    assert calls == [1, 1]  # traced around, not into the graph
    torch.testing.assert_close(got, want, rtol=0, atol=0)


def test_compiled_training_step_equals_eager():
    """torch.compile (aot_eager: dynamo + functionalisation of the BatchNorm buffer updates) trains the direct-coded
    Baseline LIF exactly as eager mode does: the once-normalised first layer and the event-driven second layer."""
    torch.manual_seed(0)
    eager = BaselineLIF().double()
    compiled_net = BaselineLIF().double()
    compiled_net.load_state_dict(eager.state_dict())
    step = torch.compile(compiled_net, backend="aot_eager")
    gen = torch.Generator().manual_seed(2)
    for _ in range(2):
        x = torch.randn(16, 784, generator=gen, dtype=torch.float64).expand(4, 16, 784)
        y = torch.randint(0, 10, (16,), generator=gen)
        for net, fwd in ((eager, eager), (compiled_net, step)):
            net.zero_grad()
            F.cross_entropy(fwd(x).mean(0), y).backward()
            with torch.no_grad():
                for p in net.parameters():
                    p -= 0.1 * p.grad
    for (name, a), b in zip(eager.state_dict().items(), compiled_net.state_dict().values(), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-12, msg=name)
