"""lit_snn.metrics against NeuroBench 2.3: its golden values and equal results on pruned snnTorch SNNs.

NeuroBench runs an snnTorch net step by step (``SNNTorchModel``: one call per time step on ``[B, ...]``); our probe
measures the same net inside a module that does that loop over time-first input ``[T, B, ...]``. Counts must be
equal (not close); the activation sparsity is the same float formula accumulated in another order (1e-12).
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

snn = pytest.importorskip("snntorch")
pytest.importorskip("neurobench")

from neurobench.benchmarks import Benchmark  # noqa: E402
from neurobench.metrics.static import ConnectionSparsity, Footprint, ParameterCount  # noqa: E402
from neurobench.metrics.workload import ActivationSparsity as NBActivationSparsity  # noqa: E402
from neurobench.metrics.workload import SynapticOperations as NBSynapticOperations  # noqa: E402
from neurobench.models import SNNTorchModel  # noqa: E402
from snntorch import surrogate  # noqa: E402
from snntorch import utils as snn_utils  # noqa: E402

from lit_snn.metrics import ActivationSparsity, SNNProbe, SynapticOperations  # noqa: E402
from lit_snn.metrics.functional import (  # noqa: E402
    connection_sparsity,
    footprint,
    parameter_count,
    synaptic_operations,
)
from lit_snn.neurons import LIF  # noqa: E402


class StepLoop(nn.Module):
    """Run a step-wise snnTorch net over time-first input ``[T, B, ...]``, as NeuroBench's SNNTorchModel does."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        snn_utils.reset(self.net)
        return torch.stack([self.net(x[t])[0] for t in range(x.shape[0])])


def _prune(net: nn.Module, keep: float = 0.6, scale: float = 3.0) -> None:
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, (nn.Linear, nn.Conv2d)):
                m.weight.mul_((torch.rand_like(m.weight) < keep).float() * scale)


def _leaky(output: bool = False) -> nn.Module:
    return snn.Leaky(beta=0.9, spike_grad=surrogate.fast_sigmoid(), init_hidden=True, output=output)


def _compare(net: nn.Module, x: torch.Tensor, batch_size: int) -> None:
    """x: [N, T, ...] batch-first, as NeuroBench takes it."""
    data = torch.utils.data.TensorDataset(x, torch.zeros(len(x), dtype=torch.long))
    loader = torch.utils.data.DataLoader(data, batch_size=batch_size)
    ours_static = (parameter_count(net), connection_sparsity(net), footprint(net))
    bench = Benchmark(
        SNNTorchModel(net), loader, [], [],
        [[ParameterCount, ConnectionSparsity, Footprint], [NBSynapticOperations, NBActivationSparsity]],
    )
    nb = bench.run(quiet=True)
    bench.workload_metric_manager.cleanup_hooks(bench.model)

    loop = StepLoop(net)
    probe, synops, sparsity = SNNProbe(loop), SynapticOperations(), ActivationSparsity()
    with probe, torch.no_grad():
        for xb, _ in loader:
            loop(xb.transpose(0, 1))
            stats = probe.collect()
            synops.update(stats)
            sparsity.update(stats)
    ours = synops.compute()
    assert ours["effective_macs"].item() > 0 and ours["effective_acs"].item() > 0  # both kinds exercised
    assert ours["effective_macs"].item() == nb["SynapticOperations"]["Effective_MACs"]
    assert ours["effective_acs"].item() == nb["SynapticOperations"]["Effective_ACs"]
    assert ours["dense"].item() == nb["SynapticOperations"]["Dense"]
    assert sparsity.compute().item() == pytest.approx(nb["ActivationSparsity"], rel=1e-12, abs=1e-15)
    assert ours_static[0] == nb["ParameterCount"]
    assert round(ours_static[1], 4) == nb["ConnectionSparsity"]  # NeuroBench rounds to 4 decimals
    assert ours_static[2] == nb["Footprint"]  # fresh net: snnTorch's membrane buffers are still empty
    # after a forward pass NeuroBench would count the membrane (sized by the last batch); we do not
    assert footprint(net) == ours_static[2]


def test_linear_snn_equals_neurobench():
    net = nn.Sequential(nn.Linear(12, 16), _leaky(), nn.Linear(16, 16), _leaky(), nn.Linear(16, 5), _leaky(True))
    _prune(net)
    _compare(net, torch.rand(10, 6, 12), batch_size=4)  # analog input: first layer MACs, the rest ACs


def test_conv_snn_equals_neurobench():
    net = nn.Sequential(
        nn.Conv2d(2, 4, 3, padding=1), _leaky(),
        nn.Conv2d(4, 6, 3, stride=2, padding=2, dilation=2, groups=2), _leaky(),
        nn.Conv2d(6, 4, 3, padding=1, padding_mode="reflect"), _leaky(),
        nn.Flatten(), nn.Linear(4 * 4 * 4, 5), _leaky(True),
    )
    _prune(net)
    x = torch.rand(6, 3, 2, 8, 8)
    x[x < 0.5] = 0.0  # analog and sparse
    _compare(net, x, batch_size=4)


# -- NeuroBench's own golden values (tests/test_metrics.py of NeuroBench), measured with our metric -------------------


def test_golden_linear_relu_1125_macs():
    net = nn.Sequential(nn.Linear(20, 25, bias=False), nn.Sigmoid(), nn.Linear(25, 25, bias=False), nn.ReLU())
    x = torch.ones(1, 20)
    x[:, :10] = 5
    ops = synaptic_operations(net, x, neurons=[net[1], net[3]], batch_dim=0)
    assert ops["effective_macs"].item() == 1125
    assert ops["effective_acs"].item() == 0


@pytest.mark.parametrize(("size", "expected"), [(3, 9), (12, 900)])
def test_golden_conv2d(size, expected):
    net = nn.Sequential(nn.Conv2d(1, 1, 3, bias=False), nn.ReLU())
    x = torch.ones(1, 1, size, size)
    x[0, 0, 0, 0] = 4  # not binary: MACs
    ops = synaptic_operations(net, x, neurons=[net[1]], batch_dim=0)
    assert ops["effective_macs"].item() == expected
    assert ops["effective_acs"].item() == 0


def test_golden_conv1d_150():
    net = nn.Sequential(nn.Conv1d(5, 1, 5, bias=False), nn.ReLU())
    x = torch.ones(1, 5, 10)
    x[0, 0, 0] = 4
    ops = synaptic_operations(net, x, neurons=[net[1]], batch_dim=0)
    assert ops["effective_macs"].item() == 150


def test_golden_snn_1000_acs_per_sample():
    # NeuroBench: Linear(20, 5) + Leaky, input ones [B=5, T=10, 20] -> 10 steps x 100 ops per sample
    net = nn.Sequential(nn.Linear(20, 5, bias=False), _leaky(True))
    ops = synaptic_operations(StepLoop(net), torch.ones(10, 5, 20))
    assert ops["effective_acs"].item() == 1000
    assert ops["effective_macs"].item() == 0
    # the same network time-first with our neuron: one Linear call on [T, B, 20]
    ours = nn.Sequential(nn.Linear(20, 5, bias=False), LIF())
    ops = synaptic_operations(ours, torch.ones(10, 5, 20))
    assert ops["effective_acs"].item() == 1000


def test_dense_counts_padding_as_nothing():
    # metrics.md: a 3x3 pad-1 conv on 4x4 gives Dense = 100, not 144
    net = nn.Sequential(nn.Conv2d(1, 1, 3, padding=1, bias=False), nn.ReLU())
    ops = synaptic_operations(net, torch.ones(1, 1, 4, 4), neurons=[net[1]], batch_dim=0)
    assert ops["dense"].item() == 100
    assert ops["effective_acs"].item() == 100  # binary input, nonzero weights
