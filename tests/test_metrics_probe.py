"""SNNProbe and the probe-fed metrics: layouts, batch splits, backends, DDP, hand-computed values, misuse."""

from __future__ import annotations

import math

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn

from lit_snn.metrics import (
    ActivationSparsity,
    DataMovementEnergy,
    DeadNeuronFraction,
    SNNProbe,
    SpikeRate,
    SpikesPerSample,
    SynapticOperations,
)
from lit_snn.metrics.functional import (
    dead_neuron_fraction,
    layer_synaptic_operations,
    spike_rate,
    spikes_per_sample,
    step_counts,
    synaptic_operations,
)
from lit_snn.neurons import LIF, make_neuron


def _suite():
    return {
        "synops": SynapticOperations(),
        "rate": SpikeRate(),
        "per_sample": SpikesPerSample(),
        "sparsity": ActivationSparsity(),
        "dead": DeadNeuronFraction(),
        "energy": DataMovementEnergy(),
    }


def _run(net: nn.Module, batches, probe: SNNProbe | None = None, **probe_kwargs) -> dict[str, dict[str, float]]:
    probe = probe or SNNProbe(net, **probe_kwargs)
    suite = _suite()
    with probe, torch.no_grad():
        for x in batches:
            net(x)
            stats = probe.collect()
            for m in suite.values():
                m.update(stats)
    out = {}
    for key, m in suite.items():
        res = m.compute()
        out[key] = {"value": float(res)} if isinstance(res, torch.Tensor) else {k: float(v) for k, v in res.items()}
    return out


def _by_position(results: dict[str, dict[str, float]]) -> dict[str, list[float]]:
    """Per-layer keys renamed to their position, so models with different module names compare."""
    return {group: list(values.values()) for group, values in results.items()}


class TimeFirstNet(nn.Module):
    """Conv over [T*B, ...] (one call), LIF over [T, B, ...], Linear over [T, B, F] (one call), LIF."""

    def __init__(self, neuron=LIF) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3, stride=2, padding=1)
        self.lif1 = neuron()
        self.fc = nn.Linear(4 * 4 * 4, 6)
        self.lif2 = neuron()

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # [T, B, 1, 8, 8]
        t, b = x.shape[:2]
        h = self.conv(x.flatten(0, 1)).unflatten(0, (t, b))
        s = self.lif1(h)
        return self.lif2(self.fc(s.flatten(2)))


class StepLIF(nn.Module):
    """The reference LIF (tau=2, threshold 1, subtract) one step per call, state kept between calls."""

    def __init__(self) -> None:
        super().__init__()
        self.v: torch.Tensor | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = 0.5 * (self.v if self.v is not None else torch.zeros_like(x)) + x
        s = (h >= 1.0).float()
        self.v = h - s
        return s


class StepLoopNet(nn.Module):
    """The same network written snnTorch-style: a loop over time, each layer called on [B, ...] per step."""

    def __init__(self, tf: TimeFirstNet) -> None:
        super().__init__()
        self.conv, self.fc = tf.conv, tf.fc
        self.lif1, self.lif2 = StepLIF(), StepLIF()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.lif1.v = self.lif2.v = None
        out = []
        for t in range(x.shape[0]):
            s = self.lif1(self.conv(x[t]))
            out.append(self.lif2(self.fc(s.flatten(1))))
        return torch.stack(out)


def _prune(net: nn.Module) -> None:
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, (nn.Linear, nn.Conv2d)):
                m.weight.mul_((torch.rand_like(m.weight) < 0.7).float() * 2.0)


def _images(n: int, t: int = 4) -> torch.Tensor:
    x = torch.rand(t, n, 1, 8, 8)
    x[x < 0.4] = 0.0
    x[1::2] = (x[1::2] > 0.6).float()  # odd steps binary, even steps analog: ACs and MACs in one layer call
    return x


def test_time_first_equals_step_loop():
    tf = TimeFirstNet()
    _prune(tf)
    loop = StepLoopNet(tf)
    x = _images(10)
    batches = list(x.split(4, dim=1))
    a = _run(tf, batches)
    b = _run(loop, batches, neurons=[loop.lif1, loop.lif2], neuron_step_mode="single")
    assert a["synops"]["effective_acs"] > 0 and a["synops"]["effective_macs"] > 0
    assert 0 < a["rate"]["spike_rate"] < 1
    assert _by_position(a) == _by_position(b)


def test_batch_splits_give_the_same_results():
    tf = TimeFirstNet()
    _prune(tf)
    x = _images(11)
    a = _run(tf, list(x.split(4, dim=1)))  # 4 + 4 + 3 (ragged last batch)
    b = _run(tf, list(x.split(11, dim=1)))
    for group in a:
        for key in a[group]:
            assert a[group][key] == pytest.approx(b[group][key], rel=1e-12, abs=1e-15), (group, key)
    for group in ("synops", "rate", "per_sample", "dead"):
        assert a[group] == b[group]  # integer counts: exactly equal


def _backend_neuron(backend: str) -> nn.Module:
    try:
        return make_neuron("lif", backend, tau=2.0, threshold=1.0, reset="zero")
    except (ImportError, ModuleNotFoundError):
        if backend != "spikingjelly":
            raise
    from spikingjelly.activation_based import neuron  # the adapter is not in yet: the raw multi-step node

    return neuron.LIFNode(tau=2.0, decay_input=False, v_threshold=1.0, v_reset=0.0, step_mode="m")


class BackendNet(TimeFirstNet):
    def __init__(self, backend: str) -> None:
        super().__init__(neuron=lambda: _backend_neuron(backend))

    def forward(self, x):
        for m in (self.lif1, self.lif2):
            if hasattr(m, "reset") and callable(m.reset) and not isinstance(m.reset, str):
                m.reset()  # SpikingJelly keeps its membrane between calls
        return super().forward(x)


def test_three_backends_give_equal_counts():
    pytest.importorskip("snntorch")
    pytest.importorskip("spikingjelly")
    x = _images(6)
    batches = list(x.split(3, dim=1))
    results = {}
    for backend in ("custom", "snntorch", "spikingjelly"):
        torch.manual_seed(1)
        net = BackendNet(backend)
        _prune(net)
        probe = SNNProbe(net)
        assert list(probe.neurons) == ["lif1", "lif2"]  # the snnTorch adapter's inner cell is not a second neuron
        results[backend] = _run(net, batches, probe)
    assert results["custom"]["rate"]["spike_rate"] > 0
    assert results["custom"] == results["snntorch"] == results["spikingjelly"]


def test_hand_computed_small_case():
    # one Linear 3 -> 2 with a zero weight, T=2 steps, B=2 samples; a LIF with threshold 1 after it
    fc = nn.Linear(3, 2, bias=False)
    with torch.no_grad():
        fc.weight.copy_(torch.tensor([[1.0, 0.0, 0.5], [0.0, 0.0, 2.0]]))  # fan-out per input: 1, 0, 2
    net = nn.Sequential(fc, LIF(tau=2.0, threshold=1.0))
    x = torch.tensor([[[1.0, 1.0, 0.0], [0.0, 1.0, 1.0]],     # step 0: binary -> ACs: 1*1 + 1*2 = 3
                      [[0.5, 0.0, 0.0], [0.0, 0.0, 0.0]]])    # step 1: analog -> MACs: 1*1 = 1
    ops = synaptic_operations(net, x)
    assert ops["effective_acs"].item() == 3 / 2
    assert ops["effective_macs"].item() == 1 / 2
    assert ops["dense"].item() == 2 * 2 * 3 * 2 / 2
    # currents: step 0: [1, 0] and [0.5, 2]; step 1: [0.5, 0] and [0, 0] -> h: 1, 0 | 0.5, 2 | 0.5(+0.5*0)...
    # spikes: step 0 sample 0 neuron 0 (h=1 >= 1), sample 1 neuron 1 (h=2); step 1: s0n0 h=0.5*0+0.5 no;
    # s1n0 h=0.25+0 no; s1n1 h=0.5*(2-1)=0.5 no -> 2 spikes of 8 outputs
    rate = spike_rate(net, x)
    assert rate["spike_rate"].item() == 2 / 8
    assert spikes_per_sample(net, x)["spikes_per_sample"].item() == 1.0
    assert dead_neuron_fraction(net, x)["dead_neuron_fraction"].item() == 0.0


def test_dead_neurons_over_batches():
    fc = nn.Linear(2, 3, bias=False)
    with torch.no_grad():
        fc.weight.copy_(torch.tensor([[2.0, 0.0], [0.0, 2.0], [0.0, 0.0]]))  # neuron 2 never fires
    net = nn.Sequential(fc, LIF())
    dead, probe = DeadNeuronFraction(), SNNProbe(net)
    with probe, torch.no_grad():
        for x in (torch.tensor([[[1.0, 0.0]]]), torch.tensor([[[0.0, 1.0]]])):  # each batch fires one neuron
            net(x)
            dead.update(probe.collect())
    res = dead.compute()
    assert res["dead_neuron_fraction"].item() == pytest.approx(1 / 3)
    assert res["dead_neuron_fraction/1"].item() == pytest.approx(1 / 3)


def test_layer_ops_time_first_equals_per_step_calls():
    conv = nn.Conv1d(4, 6, 3, stride=2, padding=1, dilation=2, groups=2)
    with torch.no_grad():
        conv.weight[0].zero_()
    x = (torch.rand(5, 3, 4, 11) > 0.5).float()  # [T, B, C, L]
    x[2] *= 0.5  # step 2 analog
    whole = layer_synaptic_operations(conv, x.flatten(0, 1), batch_size=3)
    steps = [layer_synaptic_operations(conv, x[t], batch_size=3) for t in range(5)]
    assert whole.effective_acs.item() == sum(s.effective_acs.item() for s in steps)
    assert whole.effective_macs.item() == steps[2].effective_macs.item() > 0
    assert whole.dense == sum(s.dense for s in steps)
    # brute force: effective ops = sum of conv(indicator input, indicator weight)
    brute = nn.functional.conv1d((x.flatten(0, 1) != 0).double(), (conv.weight != 0).double(), None, 2, 1, 2, 2)
    assert whole.effective_acs.item() + whole.effective_macs.item() == brute.sum().item()


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float64])
def test_layer_ops_in_other_dtypes(dtype):
    fc = nn.Linear(6, 4)
    with torch.no_grad():
        fc.weight[:, 0] = 0.0
    x = (torch.rand(3, 5, 6) > 0.5).float()
    x[1, 0, 2] = 0.5
    ref = layer_synaptic_operations(fc, x, 5)
    got = layer_synaptic_operations(fc.to(dtype), x.to(dtype), 5)
    assert (got.effective_acs.item(), got.effective_macs.item(), got.dense) == (
        ref.effective_acs.item(), ref.effective_macs.item(), ref.dense)
    assert ref.effective_macs.item() > 0


def test_large_linear_counts_stay_exact():
    fc = nn.Linear(5000, 4000, bias=False)  # in*out > 2**24: float64 pass
    x = torch.ones(1, 5000)
    ops = layer_synaptic_operations(fc, x, 1)
    assert ops.effective_acs.item() == int((fc.weight != 0).sum())  # ~2e7, one init weight may be exactly 0
    assert ops.dense == 5000 * 4000


# -- misuse raises -----------------------------------------------------------------------------------------------------


def test_no_neurons_raises():
    with pytest.raises(ValueError, match="no spiking neurons"):
        SNNProbe(nn.Sequential(nn.Linear(2, 2), nn.ReLU()))


def test_unsupported_layer_types_raise():
    net = nn.Sequential(nn.ConvTranspose2d(1, 1, 3), LIF())
    with pytest.raises(TypeError, match="ConvTranspose2d"):
        SNNProbe(net)
    with pytest.raises(TypeError, match="LSTM"):
        SNNProbe(nn.Sequential(nn.Linear(2, 2), LIF()), synapses=[nn.LSTM(2, 2)])
    with pytest.raises(TypeError, match="Bilinear"):
        layer_synaptic_operations(nn.Bilinear(2, 2, 2), torch.ones(1, 2))


@pytest.mark.filterwarnings("ignore:The ``compute`` method")  # torchmetrics warns first; we then raise
def test_compute_before_update_raises():
    for metric in _suite().values():
        with pytest.raises(RuntimeError, match="before update"):
            metric.compute()


def test_collect_without_forward_and_wrong_layout_raise():
    net = nn.Sequential(nn.Linear(4, 3), LIF())
    probe = SNNProbe(net)
    with pytest.raises(RuntimeError, match="no forward pass"):
        probe.collect()
    with probe, pytest.raises(RuntimeError, match="outside a forward pass"):
        net[0](torch.ones(3, 4))  # a layer called on its own: no batch size known

    class TimeInFeatures(nn.Module):  # [T=2, B=3, 4] -> Linear over [B, T*4]
        def __init__(self) -> None:
            super().__init__()
            self.fc, self.lif = nn.Linear(8, 3), LIF()

        def forward(self, x):
            return self.lif(self.fc(x.transpose(0, 1).flatten(1)).unsqueeze(0))

    net = TimeInFeatures()
    probe = SNNProbe(net, batch_dim=0)  # wrong: the batch is dim 1
    with probe, pytest.raises(ValueError, match="not a multiple of the batch size 2"), torch.no_grad():
        net(torch.ones(2, 3, 4))
    assert not probe.attached and not net.fc._forward_pre_hooks and not net._forward_pre_hooks


# -- DDP: two processes on gloo give the single-process results --------------------------------------------------------


def _ddp_data():
    torch.manual_seed(3)
    net = TimeFirstNet()
    _prune(net)
    return net, list(_images(12).split(3, dim=1))  # 4 batches


def _ddp_worker(rank: int, world: int, init_file: str, out: str) -> None:
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    try:
        net, batches = _ddp_data()
        res = _run(net, batches[rank::world])
        if rank == 0:
            torch.save(res, out)
    finally:
        dist.destroy_process_group()


def test_ddp_two_processes_equal_one(tmp_path):
    out = str(tmp_path / "ddp.pt")
    mp.spawn(_ddp_worker, args=(2, str(tmp_path / "init"), out), nprocs=2, join=True)
    net, batches = _ddp_data()
    single = _run(net, batches)
    ddp = torch.load(out)
    for group in single:
        for key, value in single[group].items():
            if math.isnan(value):
                assert math.isnan(ddp[group][key])
            else:
                assert ddp[group][key] == pytest.approx(value, rel=1e-12, abs=1e-15), (group, key)



# -- the probe's fast paths give the per-call definition's values -----------------------------------------------------


def _per_call_reference(net: nn.Module, batches) -> dict[str, float]:
    """Effective ACs/MACs of every synaptic call, each counted on its own by layer_synaptic_operations."""
    acs = macs = 0.0
    calls: list[tuple[nn.Module, torch.Tensor]] = []
    hooks = [m.register_forward_pre_hook(lambda m, a: calls.append((m, a[0].clone()))) for m in net.modules()
             if isinstance(m, (nn.Linear, nn.Conv2d))]
    with torch.no_grad():
        for x in batches:
            calls.clear()
            net(x)
            for layer, inp in calls:
                ops = layer_synaptic_operations(layer, inp, x.shape[1])
                acs, macs = acs + ops.effective_acs.item(), macs + ops.effective_macs.item()
    for h in hooks:
        h.remove()
    return {"effective_acs": acs, "effective_macs": macs}


class SpikesIntoLinear(nn.Module):
    """LIF spikes fed straight into a Linear (the probe reuses the neuron's counts), then a spike tensor changed in
    place before the next Linear (the probe must count it afresh)."""

    def __init__(self) -> None:
        super().__init__()
        self.fc1, self.lif1 = nn.Linear(6, 5), LIF()
        self.fc2, self.lif2 = nn.Linear(5, 4), LIF()
        self.fc3, self.lif3 = nn.Linear(4, 3), LIF()

    def forward(self, x):
        s = self.lif1(self.fc1(x))
        s2 = self.lif2(self.fc2(s))
        s2[..., 0] = 0.5  # changed in place after the neuron: more nonzero inputs, and these steps are MACs
        return self.lif3(self.fc3(s2))


@pytest.mark.parametrize("binary", [True, False])
def test_shared_neuron_counts_and_in_place_changes_count_right(monkeypatch, binary):
    """A Linear reading a neuron's untouched spikes reuses the neuron's counts: a lit-snn neuron (binary by contract)
    needs no test at all, a neuron that does not declare binary spikes gets only the AC/MAC test; a spike tensor
    changed in place is counted afresh. Either way the counts equal the per-call reference."""
    import lit_snn.metrics.probe as probe_module

    reused = []

    def spy(xs, scratch=None, counts=None, indicator=None):
        reused.append(counts is not None)
        return step_counts(xs, scratch, counts, indicator)

    monkeypatch.setattr(probe_module, "step_counts", spy)
    torch.manual_seed(1)
    net = SpikesIntoLinear()
    if not binary:
        for lif in (net.lif1, net.lif2, net.lif3):
            lif.binary_spikes = False
    with torch.no_grad():
        net.fc1.weight.mul_(4.0)
        net.fc2.weight.mul_(4.0)
        net.fc2.weight[:, 1] = 0.0
    batches = [(torch.rand(3, 4, 6) > 0.3).float() for _ in range(2)]
    ref = _per_call_reference(net, batches)
    got = _run(net, batches)["synops"]
    assert got["effective_acs"] * 8 == ref["effective_acs"] > 0  # per sample x 8 samples
    assert got["effective_macs"] * 8 == ref["effective_macs"] > 0
    if binary:  # fc2 takes lif1's counts without calling step_counts; fc3's input changed after lif2
        assert reused == [False, False] * len(batches)
    else:
        assert reused == [False, True, False] * len(batches)


def test_one_collect_over_many_batches_equals_one_per_batch(monkeypatch):
    import lit_snn.metrics.probe as probe_module

    monkeypatch.setattr(probe_module, "_FOLD_EVERY", 2)  # fold the pending records twice within 5 batches
    torch.manual_seed(2)
    net = TimeFirstNet()
    _prune(net)
    batches = list(_images(10).split(2, dim=1))
    per_batch = _run(net, batches)
    probe, suite = SNNProbe(net), _suite()
    with probe, torch.no_grad():
        for x in batches:
            net(x)
    stats = probe.collect()
    for m in suite.values():
        m.update(stats)
    once = {k: m.compute() for k, m in suite.items()}
    once = {k: {"value": float(v)} if isinstance(v, torch.Tensor) else {n: float(f) for n, f in v.items()}
            for k, v in once.items()}
    for group, values in per_batch.items():
        for key, value in values.items():
            assert once[group][key] == value or (math.isnan(value) and math.isnan(once[group][key])), (group, key)


def test_weights_changed_between_batches_are_counted_with_their_values():
    torch.manual_seed(3)
    net = nn.Sequential(nn.Linear(6, 5), LIF()).eval()
    batches = [(torch.rand(2, 3, 6) > 0.5).float() for _ in range(3)]
    probe, ops = SNNProbe(net), SynapticOperations()
    expected = 0.0
    with probe, torch.no_grad():
        for i, x in enumerate(batches):
            net[0].weight[:, i] = 0.0  # in place: a new version of the same parameter
            expected += layer_synaptic_operations(net[0], x, 3).effective_acs.item()
            net(x)
    ops.update(probe.collect())
    assert ops.compute()["effective_acs"].item() * 9 == expected


def test_ac_mac_decision_at_the_edges():
    fc = nn.Linear(4, 2)
    one = torch.tensor(1.0)
    for value, analog in [
        (-1.0, False), (1.0, False), (0.0, False), (torch.nextafter(one, one * 2).item(), True),
        (torch.nextafter(one, one * 0).item(), True), (1e-45, True), (float("nan"), True), (float("inf"), True),
        (2.0, True), (0.5, True),
    ]:
        x = torch.tensor([[[1.0, 0.0, -1.0, value]], [[1.0, 1.0, 0.0, 0.0]]])  # [T=2, B=1, 4]; step 1 binary
        ops = layer_synaptic_operations(fc, x, 1)
        per_step = 2 if value == 0.0 else 3
        assert ops.effective_macs.item() == (per_step * 2 if analog else 0.0), value
        assert ops.effective_acs.item() == 2 * 2 + (0 if analog else per_step * 2), value


def test_step_counts_shortcuts_agree_with_the_definition():
    nan = float("nan")
    cases = {
        "all steps above 1": [[[2.0, 0.0], [0.0, 0.5]], [[3.0, 1.0], [0.0, 0.0]]],
        "above 1 and NaN": [[[2.0, 0.0], [0.0, 0.5]], [[3.0, nan], [0.0, 0.0]]],
        "spikes": [[[1.0, 0.0], [0.0, 1.0]], [[0.0, 0.0], [1.0, 1.0]]],
        "ternary": [[[1.0, 0.0], [0.0, -1.0]], [[0.0, 0.0], [1.0, 1.0]]],
        "one graded spike": [[[1.0, 0.0], [0.0, 1.0]], [[0.0, 0.5], [1.0, 1.0]]],
        "NaN among spikes": [[[1.0, 0.0], [nan, 1.0]], [[0.0, 0.0], [1.0, 1.0]]],
        "above 1 in one step": [[[1.0, 0.0], [0.0, 1.0]], [[0.0, 1.5], [1.0, 1.0]]],
    }
    for name, values in cases.items():
        xs = torch.tensor(values)  # [T=2, B=2, F=2]
        unit_or_zero = (xs == 0) | (xs == 1) | (xs == -1)
        want_analog = (~unit_or_zero).flatten(1).any(1)
        want_counts = (xs != 0).float().sum(1)
        counts, analog = step_counts(xs)
        assert torch.equal(analog, want_analog) and torch.equal(counts, want_counts), name
        indicator = (xs != 0).float()  # as a neuron hook hands it over
        counts, analog = step_counts(xs.clone(), None, want_counts.clone(), indicator)
        assert torch.equal(analog, want_analog) and torch.equal(counts, want_counts), name


def test_time_constant_input_counted_once_gives_the_same_ops():
    fc = nn.Linear(5, 3)
    with torch.no_grad():
        fc.weight[:, 2] = 0.0
    for image in (torch.tensor([[0.0, 2.0, 1.0, 0.0, -0.5], [1.0, 0.0, 0.0, 1.0, 1.0]]), torch.eye(5)[:2]):
        view = image.unsqueeze(0).expand(4, -1, -1)  # [T=4, B=2, 5], stride 0 over time (direct coding)
        assert view.stride(0) == 0
        got, want = layer_synaptic_operations(fc, view, 2), layer_synaptic_operations(fc, view.contiguous(), 2)
        assert (got.effective_acs.item(), got.effective_macs.item(), got.input_nonzero.item()) == (
            want.effective_acs.item(), want.effective_macs.item(), want.input_nonzero.item())
        assert got.effective_acs.item() + got.effective_macs.item() > 0
