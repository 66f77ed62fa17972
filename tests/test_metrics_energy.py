"""Energy models: hand-computed small cases and the qualitative results of seeds 000 and 002 (metrics.md)."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from lit_snn.metrics import (
    HARDWARE_PRESETS,
    DataMovementEnergy,
    HardwareModel,
    LayerActivity,
    OperationEnergy,
    SNNProbe,
    SynapticOperations,
    data_movement_energy,
    hardware_model,
    operation_costs,
    operation_energy,
    qnn_bits,
    twin_qnn_density,
)
from lit_snn.neurons import LIF

# -- model 1: operation counting ---------------------------------------------------------------------------------------


def test_operation_energy_presets_and_hand_case():
    synops = {"effective_acs": 100.0, "effective_macs": 10.0, "dense": 1000.0,
              "effective_acs/fc": 100.0, "effective_macs/fc": 10.0, "dense/fc": 1000.0}
    expected = {"fp32_45nm": (4.6, 0.9), "fp16_45nm": (1.5, 0.4), "int8_45nm": (0.23, 0.03)}
    for preset, (mac, ac) in expected.items():
        e = operation_energy(synops, operation_costs(preset), steps=4)
        assert e["snn_pj"] == pytest.approx(100 * ac + 10 * mac)
        assert e["ann_pj"] == pytest.approx(1000 / 4 * mac)  # the ANN twin runs once: dense ops of one step
        assert e["snn_pj/fc"] == e["snn_pj"] and e["ratio"] == pytest.approx(e["snn_pj"] / e["ann_pj"])
    e = operation_energy(synops, operation_costs("fp32_45nm", e_ac=1.0, e_mac=2.0), steps={"fc": 2})
    assert e["snn_pj"] == 120.0 and e["ann_pj"] == 1000.0
    with pytest.raises(ValueError, match="no time steps for layer 'fc'"):
        operation_energy(synops, operation_costs(), steps={"other": 2})
    with pytest.raises(ValueError, match="time steps must be > 0"):
        operation_energy(synops, operation_costs(), steps=0)


def test_ann_twin_is_one_pass_per_layer():
    """Layers that ran for different numbers of steps: each layer's dense ops are divided by its own T_l."""
    synops = {"effective_acs": 50.0, "effective_macs": 400.0, "dense": 1200.0,
              "effective_acs/a": 0.0, "effective_macs/a": 400.0, "dense/a": 400.0,     # ran 4 steps: 100 per pass
              "effective_acs/b": 50.0, "effective_macs/b": 0.0, "dense/b": 800.0}      # ran 1 step: 800 per pass
    e = operation_energy(synops, operation_costs(e_mac=2.0, e_ac=1.0), steps={"a": 4, "b": 1})
    assert e["ann_pj/a"] == 200.0 and e["ann_pj/b"] == 1600.0 and e["ann_pj"] == 1800.0
    assert e["snn_pj"] == 850.0 and e["ratio"] == pytest.approx(850.0 / 1800.0)


def test_seed_000_energy_ratio():
    # 649,765 SOPs against 268,800 ANN MACs with a 5x AC/MAC factor -> 0.483 (the blog's "51.7% lower")
    e = operation_energy({"effective_acs": 649_765.0, "effective_macs": 0.0, "dense": 268_800.0},
                         operation_costs(e_mac=5.0, e_ac=1.0), steps=1)  # 268,800: one ANN pass already
    assert round(e["ratio"], 3) == 0.483


def test_operation_energy_metric_matches_functional():
    net = nn.Sequential(nn.Linear(4, 3, bias=False), LIF())
    probe, ops, energy = SNNProbe(net), SynapticOperations(), OperationEnergy("int8_45nm", e_ac=0.05)
    with probe, torch.no_grad():
        net(torch.rand(3, 2, 4))
        stats = probe.collect()
    ops.update(stats)
    energy.update(stats)
    expected = operation_energy(ops.compute(), operation_costs("int8_45nm", e_ac=0.05), steps=3)  # T = 3
    assert {k: float(v) for k, v in energy.compute().items()} == {k: float(v) for k, v in expected.items()}


def test_bad_constants_raise():
    with pytest.raises(ValueError, match="preset must be one of"):
        operation_costs("fp64")
    with pytest.raises(ValueError, match="e_ac must be a number >= 0"):
        operation_costs(e_ac=-1.0)
    with pytest.raises(ValueError, match="unknown hardware constants"):
        hardware_model("typical_neuromorphic", e_flux=1.0)
    with pytest.raises(ValueError, match="reuse factors"):
        hardware_model("typical_neuromorphic", reuse_snn=0.5)
    with pytest.raises(ValueError, match="twin case"):
        twin_qnn_density(0.1, 4, "median")


# -- model 2: compute + data movement (reconstruction of seed 002) -----------------------------------------------------


def test_twin_bits_and_density():
    assert [qnn_bits(t) for t in (1, 2, 3, 4, 7, 8, 15, 16)] == [1, 2, 2, 3, 3, 4, 4, 5]
    assert twin_qnn_density(0.05, 4, "best") == pytest.approx(0.2)
    assert twin_qnn_density(0.05, 4, "worst") == 0.05
    assert twin_qnn_density(0.05, 4, "average") == pytest.approx(2 * 0.05 * 4 / 5)
    assert twin_qnn_density(0.5, 4, "best") == 1.0


def test_model2_hand_computed_layer():
    hw = HardwareModel("toy", e_sparse_bit=2.0, e_dense_bit=0.5, hops=2.0, e_acc=1.0, e_mac=3.0, e_cmp=0.5,
                       e_sub=0.25, e_clamp=0.5, e_weight_bit=0.1, weight_bits=2, reuse_qnn=2.0, reuse_snn=4.0)
    layer = LayerActivity("l", fan_in=4, outputs=2, inputs=5, steps=3, input_rate=0.25)
    r = data_movement_energy([layer], hw, num_steps=3, output_rate=0.5, qnn_density=0.5)
    # b = ceil(log2 4) = 2
    qnn_c = 2 * (4 * 0.5 * 3.0 + 0.5)                      # 13
    qnn_w = 2 * 4 * 0.5 * 2 * 0.1 / 2.0                    # 0.4
    qnn_a = min(5 * 0.5 * 2 * 2.0 * 2, 5 * 2 * 0.5 * 2)   # min(20, 10) = 10: dense
    snn_c = 2 * 3 * (4 * 0.25 * 1.0 + 0.5 + 0.5 * 0.25)   # 9.75
    snn_w = 2 * 4 * 3 * 0.25 * 2 * 0.1 / 4.0               # 0.3
    snn_a = min(5 * 3 * 0.25 * 2.0 * 2, 5 * 3 * 0.5 * 2)  # min(15, 15) = 15: sparse (ties go sparse)
    assert r["qnn_pj"] == pytest.approx(qnn_c + qnn_w + qnn_a)
    assert r["snn_pj"] == pytest.approx(snn_c + snn_w + snn_a)
    assert r["ratio/l"] == pytest.approx((snn_c + snn_w + snn_a) / (qnn_c + qnn_w + qnn_a))
    assert r["qnn_sparse_dataflow/l"] == 0.0 and r["snn_sparse_dataflow/l"] == 1.0
    assert r["qnn_bits"] == 2.0
    # break-even: E_SNN(s) = 2*3*(4s + 0.5 + 0.25 s) + 2*4*3*s*0.05 + min(60 s, 15) = 3 + 26.7 s (sparse part)
    s = (qnn_c + qnn_w + qnn_a - 3.0) / (6 * 4.25 + 1.2 + 60)
    assert r["break_even_spike_rate"] == pytest.approx(s, abs=1e-12)


def test_analog_layer_is_charged_alike():
    layer = LayerActivity("first", fan_in=784, outputs=512, inputs=784, steps=4, input_rate=0.8, spiking=False)
    r = data_movement_energy([layer], "typical_neuromorphic", num_steps=4, output_rate=0.1)
    assert r["snn_pj"] == r["qnn_pj"] and r["ratio"] == 1.0


def _neuron(t: int, s: float, n: int = 2304) -> LayerActivity:
    """The paper's single output neuron with n inputs (M = 1, A = N)."""
    return LayerActivity("n", fan_in=n, outputs=1, inputs=n, steps=t, input_rate=s)


@pytest.mark.parametrize("steps", [2, 4, 8])
def test_compute_only_break_even_is_k_times_density(steps):
    # Eq. 4: with movement and weights free, the SNN wins iff T*s <= k*(1 - gamma), k = E_MAC / E_ACC (large N)
    hw = hardware_model("theoretical_minimum", e_weight_bit=0.0)
    density = 0.2
    r = data_movement_energy([_neuron(steps, 0.01, n=10**6)], hw, num_steps=steps, output_rate=0.01,
                             qnn_density=density)
    k = hw.mac_energy(qnn_bits(steps)) / hw.e_acc
    assert steps * r["break_even_spike_rate"] == pytest.approx(k * density, rel=1e-4)
    below = data_movement_energy([_neuron(steps, 0.99 * k * density / steps, n=10**6)], hw, num_steps=steps,
                                 output_rate=0.0, qnn_density=density)
    above = data_movement_energy([_neuron(steps, 1.01 * k * density / steps, n=10**6)], hw, num_steps=steps,
                                 output_rate=0.0, qnn_density=density)
    assert below["ratio"] < 1 < above["ratio"]


def test_typical_neuromorphic_break_even_is_a_few_percent():
    # seed 002, Sec. IV-B: against a QNN with 80% sparsity, 8-bit weights, T in 5..10 -> a few percent
    # (the paper: below 6.4% for moderate T, below 5.4% once T > 5)
    rates = {}
    for steps in range(2, 11):
        r = data_movement_energy([_neuron(steps, 0.05)], "typical_neuromorphic", num_steps=steps, output_rate=0.05,
                                 qnn_density=0.2)
        rates[steps] = r["break_even_spike_rate"]
    assert all(0.02 < rates[t] < 0.054 for t in range(6, 11)), rates
    assert 0.03 < rates[5] < 0.064 and 0.03 < rates[4] < 0.064, rates
    assert rates[10] < rates[5] < rates[2]  # larger T -> lower permissible rate
    assert rates[8] > rates[7]  # the QNN's 3 -> 4 bit step at T = 8 (the paper's "local anomaly")


def test_worst_case_sparse_hardware_makes_the_snn_lose():
    # the three software settings of Sec. IV-A with the twin most favourable to the SNN ("best" case)
    for steps, rate in [(4, 0.05), (8, 0.1), (32, 0.2)]:
        ratios = {
            hw: data_movement_energy([_neuron(steps, rate)], hw, num_steps=steps, output_rate=rate, twin="best")[
                "ratio"]
            for hw in ("theoretical_minimum", "typical_neuromorphic", "worst_case_sparse")
        }
        assert ratios["worst_case_sparse"] > 1, (steps, rate, ratios)
    efficient = {
        hw: data_movement_energy([_neuron(4, 0.05)], hw, num_steps=4, output_rate=0.05, twin="best")["ratio"]
        for hw in ("theoretical_minimum", "typical_neuromorphic")
    }
    # the efficient SNN's advantage grows from the theoretical minimum to typical neuromorphic hardware
    assert efficient["typical_neuromorphic"] < efficient["theoretical_minimum"] < 1


def test_vgg16_cifar10_table_ratio_grows_with_steps():
    # seed 002 Table II: (T, QNN density %, SNN spike rate %) -> SNN/QNN energy ratio
    table = [(3, 12.22, 5.49, 0.9823), (4, 16.52, 6.43, 1.0228), (5, 19.89, 7.10, 1.4054),
             (6, 22.98, 7.73, 1.8286), (7, 25.45, 8.19, 2.2529), (8, 27.39, 8.52, 1.9726)]
    ratios = []
    for steps, density, rate, paper in table:
        r = data_movement_energy([_neuron(steps, rate / 100)], "typical_neuromorphic", num_steps=steps,
                                 output_rate=rate / 100, qnn_density=density / 100)
        ratios.append(r["ratio"])
        assert r["ratio"] == pytest.approx(paper, rel=0.1)  # the reconstruction lands within 10% of the table
    assert ratios[0] < ratios[1] < ratios[2] < ratios[3] < ratios[4]
    assert ratios[5] < ratios[4]  # the QNN's 4-bit step at T = 8, as in the paper


def test_data_movement_metric_matches_the_measured_activity():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(4, 3, bias=False), LIF(), nn.Linear(3, 2, bias=False), LIF())
    with torch.no_grad():
        net[0].weight.uniform_(0.0, 2.0)
    x = (torch.rand(2, 5, 4) > 0.5).float()  # T=2, B=5, binary
    probe, metric = SNNProbe(net), DataMovementEnergy(["typical_neuromorphic"], twin="worst")
    with torch.no_grad():
        h = net[1](net[0](x))  # the first layer's spikes, computed without the probe
    with probe, torch.no_grad():
        net(x)
        metric.update(probe.collect())
    layers = [
        LayerActivity("0", 4, 3, 4, 2, float((x != 0).double().mean()), True),
        LayerActivity("2", 3, 2, 3, 2, float((h != 0).double().mean()), True),
    ]
    out_rate = (int((h != 0).sum()) + int((net(x) != 0).sum())) / (h.numel() + 2 * 5 * 2)
    expected = data_movement_energy(layers, "typical_neuromorphic", num_steps=2, output_rate=out_rate, twin="worst")
    got = {k.split("/", 1)[1]: float(v) for k, v in metric.compute().items()}
    for key, value in expected.items():
        assert got[key] == pytest.approx(value, rel=1e-12) or (math.isnan(value) and math.isnan(got[key])), key


@pytest.mark.parametrize("hardware", sorted(HARDWARE_PRESETS))
def test_break_even_equals_a_bisection_on_the_energy_itself(hardware):
    """The closed-form break-even rate against a plain bisection of E_SNN(s) = E_QNN, where E_SNN(s) is the model run
    with every spiking layer's input rate and the output rate set to s (fixed twin density, so E_QNN is fixed)."""
    import dataclasses
    import random

    rng = random.Random(sorted(HARDWARE_PRESETS).index(hardware))
    crossed = 0
    for _ in range(20):
        layers = [
            LayerActivity(f"l{i}", fan_in=rng.choice([9, 64, 784]), outputs=rng.choice([10, 256, 4096]),
                          inputs=rng.choice([100, 784, 8192]), steps=rng.choice([1, 4, 8]),
                          input_rate=rng.random(), spiking=i > 0 or rng.random() < 0.5)
            for i in range(rng.randint(1, 4))
        ]
        steps, density = rng.choice([2, 4, 8]), rng.uniform(0.05, 0.9)

        def at(s, layers=layers, steps=steps, density=density):
            moved = [dataclasses.replace(lay, input_rate=s) if lay.spiking else lay for lay in layers]
            r = data_movement_energy(moved, hardware, num_steps=steps, output_rate=s, qnn_density=density)
            return r["snn_pj"], r["qnn_pj"]

        got = data_movement_energy(layers, hardware, num_steps=steps, output_rate=0.1,
                                   qnn_density=density)["break_even_spike_rate"]
        qnn = at(0.0)[1]
        if at(0.0)[0] > qnn:
            assert math.isnan(got)
            continue
        if at(1.0)[0] <= qnn:
            assert got == 1.0
            continue
        lo, hi = 0.0, 1.0
        for _ in range(60):
            mid = 0.5 * (lo + hi)
            lo, hi = (mid, hi) if at(mid)[0] <= qnn else (lo, mid)
        assert got == pytest.approx(lo, rel=1e-9, abs=1e-12)
        crossed += 1
    assert crossed >= 5  # most draws cross inside (0, 1)
