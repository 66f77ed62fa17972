"""Energy estimates of an SNN against an ANN twin, two models. Every figure is in picojoules (pJ) per sample.

Model 1 -- operation counting (seeds 000 and 003)
-------------------------------------------------
::

    E_SNN = E_AC * effective ACs + E_MAC * effective MACs     (MACs: layers fed analog values, e.g. direct coding)
    E_ANN = E_MAC * sum_l dense_l / T_l                        (the same topology run ONCE as an ANN)

with the synaptic operations of :class:`~lit_snn.metrics.SynapticOperations` (per sample, summed over time steps;
each layer charged for its real input events) and ``T_l`` the time steps layer ``l`` ran per sample. NeuroBench's
dense count of an SNN sums all T steps; the ANN twin does one pass, so its dense ops are divided by ``T_l``
(seed 000 compares against the 268,800 MACs of one ANN pass). A direct-coded first layer does analog MACs at every
step, so at large T the SNN can cost more than its ANN even when its hidden layers are sparse.

Presets :data:`OPERATION_PRESETS` (Horowitz, "Computing's energy problem", ISSCC 2014, 45 nm): fp32 MAC 4.6 pJ
(3.7 mult + 0.9 add), AC 0.9; fp16 MAC 1.5, AC 0.4; int8 MAC 0.23, AC 0.03. Either constant can be overridden.

Model 2 -- compute + data movement against the quantised twin (seed 002)
-----------------------------------------------------------------------
Reconstruction. Seed 002 (Yan et al., "Reconsidering the energy efficiency of spiking neural networks inference
from analytical perspectives") lost its equations in our copy; the equations below are reconstructed from its prose
(Sections II-IV), not copied. Per synaptic layer with fan-in ``N`` (inputs per output neuron), ``M`` output neurons
and ``A`` input activations per sample and step, run for ``T_l`` steps per sample, measured input spike rate ``s``
(nonzero inputs / inputs per step), the network's spike rate ``s_out`` (reset subtractions) and time steps ``T``.
The twin QNN (Theorem 1) has ``b = ceil(log2(T + 1))``-bit activations of density ``d = 1 - gamma``; both use
``b_w``-bit weights::

    compute      E_QNN_c = M * (N * d * E_MAC + E_clamp)                  (Eq. 2)
                 E_SNN_c = M * T_l * (N * s * E_ACC + E_cmp + s_out * E_sub)  (Eq. 3)
    weights      E_QNN_w = M * N * d * b_w * E_w / R_QNN                  (Eq. 15-18: reuse R, 1 <= R_SNN <= T)
                 E_SNN_w = M * N * T_l * s * b_w * E_w / R_SNN
    activations  E_QNN_a = min(A * d * b * E_sparse * h,  A * b * E_dense * h)      (Eq. 5, 6 with hops h)
                 E_SNN_a = min(A * T_l * s * E_sparse * h,  A * T_l * E_dense * h)  (Eq. 7, 8)
    E = E_c + E_w + E_a   (control energy excluded, as in the paper)

Each side takes the cheaper of sparse (event) and dense activation movement (reported as the layer's dataflow).
The paper models one output neuron (``M = 1``, ``A = N``); for a layer we charge compute and weights per output
neuron and move each input activation once to the layer's core (weight-stationary mapping, §III-B). Layers fed
analog values (a direct-coded first layer) are charged with the QNN formulas on both sides (the twins share the
input encoding), so they add the same energy to both.

Twin density (Theorem 2: ``(1 - gamma) / T <= s <= 1 - gamma``): ``qnn_density`` given, else derived from the
measured ``s`` per layer for the chosen case: ``"best"`` (for the SNN) ``d = min(1, s T)``, ``"average"``
``d = min(1, 2 s T / (T + 1))`` (``s = (1 - gamma)(1 + 1/T) / 2``), ``"worst"`` ``d = s``.

Break-even spike rate: the largest uniform spike rate ``s`` (all spiking layers, ``s_out = s``) at the measured
``T`` with ``E_SNN(s) <= E_QNN`` for the fixed twin (the paper's sensitivity analysis fixes the QNN's sparsity);
found by bisection of the non-decreasing ``E_SNN(s)``; ``nan`` if even ``s = 0`` loses.

Compute-only special case (all movement and weight energies 0, large ``N``): the SNN wins iff
``T * s <= k * (1 - gamma)`` with ``k = E_MAC / E_ACC`` (the paper's Eq. 4).

Constants (:data:`HARDWARE_PRESETS`), pJ. Arithmetic at 22 nm: the paper's 22-nm add, ``E_ACC = 0.054``; Horowitz's
45-nm 32-bit add is 0.1 pJ, so we scale his other 45-nm figures by 0.54 to 22 nm: multiply ``0.2 pJ / 64 bit^2``
(his 8x8-bit multiply; his 32x32-bit 3.1 pJ fits the same per-bit^2 cost) -> ``E_MAC = 0.00169 * b_w * b + E_ACC``
(so higher weight precision raises the QNN's MAC more than the SNN's ACC, as the paper observes); comparator,
subtractor and clamp one add each; weight read from an 8-KB local SRAM, 10 pJ per 64 bits at 45 nm ->
``E_w = 0.0844 pJ/bit``. Activation movement per bit and hop: theoretical minimum 0 / 0; typical neuromorphic
``E_sparse = 3.0`` (Loihi average incl. routing metadata), ``E_dense = 0.25`` (22-nm circuit-switched NoC), ``h = 1``;
worst case for sparse processing: each 1-bit spike a 64-bit DRAM read, ``E_sparse = 1300``, ``E_dense = 1300 / 64``.
Defaults ``b_w = 8``, ``R_QNN = R_SNN = 1`` (no reuse). Every field can be overridden.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields, replace

import torch

from .activity import ProbeMetric, SynapticOperations
from .probe import ProbeStats

# ---------------------------------------------------------------------------------------------------------------
# model 1: operation counting
# ---------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class OperationCosts:
    """Energy per operation in pJ: ``e_mac`` (multiply-accumulate) and ``e_ac`` (accumulate)."""

    e_mac: float
    e_ac: float

    def __post_init__(self) -> None:
        for f in fields(self):
            v = getattr(self, f.name)
            if not isinstance(v, (int, float)) or isinstance(v, bool) or not v >= 0:
                raise ValueError(f"{f.name} must be a number >= 0 (pJ), got {v!r}")


#: Horowitz (ISSCC 2014), 45 nm.
OPERATION_PRESETS: dict[str, OperationCosts] = {
    "fp32_45nm": OperationCosts(e_mac=4.6, e_ac=0.9),
    "fp16_45nm": OperationCosts(e_mac=1.5, e_ac=0.4),
    "int8_45nm": OperationCosts(e_mac=0.23, e_ac=0.03),
}


def operation_costs(preset: str | OperationCosts = "fp32_45nm", **overrides: float) -> OperationCosts:
    """A preset (name or instance) with ``e_mac`` / ``e_ac`` overridden where given (``None`` keeps the preset)."""
    if isinstance(preset, str):
        if preset not in OPERATION_PRESETS:
            raise ValueError(f"operation energy preset must be one of {tuple(OPERATION_PRESETS)}, got {preset!r}")
        preset = OPERATION_PRESETS[preset]
    elif not isinstance(preset, OperationCosts):
        raise TypeError(f"preset must be a preset name or OperationCosts, got {type(preset).__name__}")
    unknown = set(overrides) - {"e_mac", "e_ac"}
    if unknown:
        raise ValueError(f"unknown operation energy constants {sorted(unknown)}; accepted: e_mac, e_ac")
    return replace(preset, **{k: v for k, v in overrides.items() if v is not None})


def operation_energy(
    synops: Mapping[str, torch.Tensor | float], costs: OperationCosts, steps: float | Mapping[str, float]
) -> dict[str, torch.Tensor]:
    """Model 1 from a synaptic-operations result (keys ``effective_acs``, ``effective_macs``, ``dense`` and per layer).

    Args:
        synops: per-sample operations summed over time steps, total and ``<key>/<layer>``.
        costs: the energy per operation.
        steps: ``T_l``, the time steps each synaptic layer ran per sample: one number for every layer, or a mapping
            layer name -> ``T_l`` (needed for every layer in ``synops``). The ANN twin runs once:
            ``E_ANN = E_MAC * sum_l dense_l / T_l``.

    Returns ``snn_pj``, ``ann_pj``, ``ratio`` (``E_SNN / E_ANN``) and the same per layer (``snn_pj/<layer>``, ...).

    >>> operation_energy({"effective_acs": 100.0, "effective_macs": 10.0, "dense": 1000.0}, operation_costs(), steps=4)
    {'snn_pj': 136.0, 'ann_pj': 1150.0, 'ratio': 0.11826086956521739}
    """
    if "effective_acs" not in synops:
        raise ValueError("operation_energy needs the keys effective_acs, effective_macs and dense")
    layers = [k[len("effective_acs/"):] for k in synops if k.startswith("effective_acs/")]

    def layer_steps(name: str | None) -> float:
        t = steps.get(name) if isinstance(steps, Mapping) else steps
        if t is None:
            raise ValueError(
                f"operation_energy: steps gives no time steps for layer {name!r}; give a number or a mapping with "
                f"every layer of synops ({layers})"
            )
        if not float(t) > 0:
            raise ValueError(f"operation_energy: time steps must be > 0, got {t!r} for layer {name!r}")
        return float(t)

    out = {}
    for name in layers:
        snn = costs.e_ac * synops[f"effective_acs/{name}"] + costs.e_mac * synops[f"effective_macs/{name}"]
        ann = costs.e_mac * synops[f"dense/{name}"] / layer_steps(name)
        out[f"snn_pj/{name}"], out[f"ann_pj/{name}"], out[f"ratio/{name}"] = snn, ann, snn / ann
    snn = costs.e_ac * synops["effective_acs"] + costs.e_mac * synops["effective_macs"]
    if layers:
        ann = sum(out[f"ann_pj/{name}"] for name in layers)
    else:
        if isinstance(steps, Mapping):
            raise ValueError("operation_energy: a mapping of steps needs per-layer keys (<key>/<layer>) in synops")
        ann = costs.e_mac * synops["dense"] / layer_steps(None)
    out.update(snn_pj=snn, ann_pj=ann, ratio=snn / ann)
    return out


class OperationEnergy(SynapticOperations):
    """Energy model 1 (operation counting) per sample: ``snn_pj``, ``ann_pj``, ``ratio``, total and per layer.

    Args:
        preset: ``"fp32_45nm"`` (default), ``"fp16_45nm"``, ``"int8_45nm"`` or an :class:`OperationCosts`.
        e_mac, e_ac: override the preset's constants (pJ).
    """

    def __init__(
        self, preset: str | OperationCosts = "fp32_45nm", e_mac: float | None = None, e_ac: float | None = None,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        self.costs = operation_costs(preset, e_mac=e_mac, e_ac=e_ac)
        self.add_state("rows", default=torch.zeros(0, dtype=torch.float64), dist_reduce_fx="sum")

    def update(self, stats: ProbeStats) -> None:
        super().update(stats)
        self._add("rows", stats.rows)

    def compute(self) -> dict[str, torch.Tensor]:
        synops = super().compute()
        # rows = samples x steps for every synaptic layer (Linear and Conv alike), so T_l = rows_l / samples
        samples = float(self.samples)
        steps = {name: r / samples for name, r in zip(self.synaptic_names, self.rows.tolist(), strict=True)}
        return operation_energy(synops, self.costs, steps)


# ---------------------------------------------------------------------------------------------------------------
# model 2: compute + data movement against the QNN twin (reconstruction of seed 002)
# ---------------------------------------------------------------------------------------------------------------

_SCALE_45_TO_22 = 0.054 / 0.1  # the paper's 22-nm add over Horowitz's 45-nm 32-bit add
_E_ACC_22 = 0.054
_E_MUL_BIT2_22 = 0.2 / 64 * _SCALE_45_TO_22
_E_W_BIT_22 = 10.0 / 64 * _SCALE_45_TO_22


@dataclass(frozen=True)
class HardwareModel:
    """Constants of energy model 2 (pJ; see the module docstring for their sources).

    Attributes:
        name: preset name.
        e_sparse_bit: sparse (event-driven) activation movement, per bit and hop.
        e_dense_bit: dense activation movement, per bit and hop.
        hops: average NoC hops per transfer (``h``).
        e_acc: one accumulate (SNN synaptic event).
        e_mul_bit2: multiplier energy per bit^2 (``E_MAC = e_mul_bit2 * b_w * b + e_acc`` unless ``e_mac`` given).
        e_mac: fixed MAC energy, or ``None`` to derive it from the bit widths.
        e_cmp, e_sub, e_clamp: threshold compare, reset subtraction, QNN clamp.
        e_weight_bit: reading one weight bit.
        weight_bits: ``b_w``.
        reuse_qnn, reuse_snn: weight reuse factors ``R_QNN``, ``R_SNN`` (>= 1).
    """

    name: str
    e_sparse_bit: float
    e_dense_bit: float
    hops: float = 1.0
    e_acc: float = _E_ACC_22
    e_mul_bit2: float = _E_MUL_BIT2_22
    e_mac: float | None = None
    e_cmp: float = _E_ACC_22
    e_sub: float = _E_ACC_22
    e_clamp: float = _E_ACC_22
    e_weight_bit: float = _E_W_BIT_22
    weight_bits: int = 8
    reuse_qnn: float = 1.0
    reuse_snn: float = 1.0

    def __post_init__(self) -> None:
        for f in fields(self):
            v = getattr(self, f.name)
            if f.name == "name" or (f.name == "e_mac" and v is None):
                continue
            if not isinstance(v, (int, float)) or isinstance(v, bool) or not v >= 0 or math.isinf(v):
                raise ValueError(f"{f.name} must be a finite number >= 0, got {v!r}")
        if self.weight_bits < 1 or int(self.weight_bits) != self.weight_bits:
            raise ValueError(f"weight_bits must be a positive integer, got {self.weight_bits!r}")
        if self.reuse_qnn < 1 or self.reuse_snn < 1:
            raise ValueError(f"reuse factors must be >= 1, got reuse_qnn={self.reuse_qnn}, reuse_snn={self.reuse_snn}")

    def mac_energy(self, activation_bits: int) -> float:
        """``E_MAC`` for ``b_w``-bit weights times ``activation_bits``-bit activations."""
        if self.e_mac is not None:
            return self.e_mac
        return self.e_mul_bit2 * self.weight_bits * activation_bits + self.e_acc


HARDWARE_PRESETS: dict[str, HardwareModel] = {
    "theoretical_minimum": HardwareModel("theoretical_minimum", e_sparse_bit=0.0, e_dense_bit=0.0),
    "typical_neuromorphic": HardwareModel("typical_neuromorphic", e_sparse_bit=3.0, e_dense_bit=0.25),
    "worst_case_sparse": HardwareModel("worst_case_sparse", e_sparse_bit=1300.0, e_dense_bit=1300.0 / 64),
}

TWIN_CASES = ("best", "average", "worst")


def hardware_model(preset: str | HardwareModel = "typical_neuromorphic", **overrides) -> HardwareModel:
    """A hardware preset (name or instance) with any field overridden (``None`` keeps the preset's value)."""
    if isinstance(preset, str):
        if preset not in HARDWARE_PRESETS:
            raise ValueError(f"hardware preset must be one of {tuple(HARDWARE_PRESETS)}, got {preset!r}")
        preset = HARDWARE_PRESETS[preset]
    elif not isinstance(preset, HardwareModel):
        raise TypeError(f"hardware must be a preset name or HardwareModel, got {type(preset).__name__}")
    known = {f.name for f in fields(HardwareModel)} - {"name"}
    unknown = set(overrides) - known
    if unknown:
        raise ValueError(f"unknown hardware constants {sorted(unknown)}; accepted: {sorted(known)}")
    return replace(preset, **{k: v for k, v in overrides.items() if v is not None})


def qnn_bits(num_steps: int) -> int:
    """Theorem 1: the twin QNN of a T-step SNN needs ``ceil(log2(T + 1))``-bit activations."""
    if num_steps < 1:
        raise ValueError(f"num_steps must be >= 1, got {num_steps!r}")
    return math.ceil(math.log2(num_steps + 1))


def twin_qnn_density(spike_rate: float, num_steps: float, case: str = "average") -> float:
    """QNN activation density ``d = 1 - gamma`` of the twin of an SNN with input spike rate ``s`` (Theorem 2)."""
    if case not in TWIN_CASES:
        raise ValueError(f"twin case must be one of {TWIN_CASES}, got {case!r}")
    if not 0.0 <= spike_rate <= 1.0:
        raise ValueError(f"spike_rate must lie in [0, 1], got {spike_rate!r}")
    if case == "best":
        return min(1.0, spike_rate * num_steps)
    if case == "average":
        return min(1.0, 2.0 * spike_rate * num_steps / (num_steps + 1.0))
    return spike_rate


@dataclass(frozen=True)
class LayerActivity:
    """What energy model 2 needs of one synaptic layer (per sample).

    Attributes:
        name: layer name.
        fan_in: ``N``, inputs per output neuron.
        outputs: ``M``, output neurons per step.
        inputs: ``A``, input activations per step.
        steps: ``T_l``, steps the layer runs per sample.
        input_rate: ``s``, fraction of nonzero inputs per step.
        spiking: the input is spikes (binary); ``False`` for analog input.
    """

    name: str
    fan_in: float
    outputs: float
    inputs: float
    steps: float
    input_rate: float
    spiking: bool = True


def _layer_energy(layer: LayerActivity, s: float, s_out: float, d: float, bits: int, hw: HardwareModel):
    """(E_SNN, E_QNN, snn_sparse, qnn_sparse) of one layer at input rate ``s`` and twin density ``d``."""
    n, m, a = layer.fan_in, layer.outputs, layer.inputs
    e_mac = hw.mac_energy(bits)
    q_c = m * (n * d * e_mac + hw.e_clamp)
    q_w = m * n * d * hw.weight_bits * hw.e_weight_bit / hw.reuse_qnn
    q_sparse = a * d * bits * hw.e_sparse_bit * hw.hops
    q_dense = a * bits * hw.e_dense_bit * hw.hops
    qnn = q_c + q_w + min(q_sparse, q_dense)
    if not layer.spiking:  # analog input: the twins share it; charged alike
        return qnn, qnn, q_sparse <= q_dense, q_sparse <= q_dense
    t = layer.steps
    s_c = m * t * (n * s * hw.e_acc + hw.e_cmp + s_out * hw.e_sub)
    s_w = m * n * t * s * hw.weight_bits * hw.e_weight_bit / hw.reuse_snn
    s_sparse = a * t * s * hw.e_sparse_bit * hw.hops
    s_dense = a * t * hw.e_dense_bit * hw.hops
    return s_c + s_w + min(s_sparse, s_dense), qnn, s_sparse <= s_dense, q_sparse <= q_dense


def data_movement_energy(
    layers: Sequence[LayerActivity],
    hardware: str | HardwareModel = "typical_neuromorphic",
    *,
    num_steps: int,
    output_rate: float,
    twin: str = "average",
    qnn_density: float | None = None,
) -> dict[str, float]:
    """Energy model 2 (reconstruction of seed 002; equations in the module docstring), per sample, in pJ.

    Args:
        layers: the synaptic layers' activity.
        hardware: a preset name (:data:`HARDWARE_PRESETS`) or a :class:`HardwareModel`.
        num_steps: the SNN's time steps ``T`` (sets the twin's activation bits).
        output_rate: ``s_out``, the neurons' spike rate (reset subtractions).
        twin: Theorem 2 case deriving the twin's density from each layer's measured rate.
        qnn_density: the twin's activation density ``d`` for every layer instead (e.g. 0.2 for 80% sparsity).

    Returns:
        ``snn_pj``, ``qnn_pj``, ``ratio`` (``E_SNN / E_QNN``), ``break_even_spike_rate``, ``qnn_bits``,
        ``num_steps`` and per layer ``snn_pj/<l>``, ``qnn_pj/<l>``, ``ratio/<l>``, ``qnn_density/<l>``,
        ``input_rate/<l>``, ``snn_sparse_dataflow/<l>`` and ``qnn_sparse_dataflow/<l>`` (1.0 sparse, 0.0 dense).
    """
    hw = hardware_model(hardware)
    if not layers:
        raise ValueError("data_movement_energy needs at least one layer")
    if qnn_density is not None and not 0.0 <= qnn_density <= 1.0:
        raise ValueError(f"qnn_density must lie in [0, 1], got {qnn_density!r}")
    if not 0.0 <= output_rate <= 1.0:
        raise ValueError(f"output_rate must lie in [0, 1], got {output_rate!r}")
    bits = qnn_bits(num_steps)

    def density(layer: LayerActivity) -> float:
        if not layer.spiking:  # analog input: the twin QNN reads what the SNN reads
            return layer.input_rate
        return qnn_density if qnn_density is not None else twin_qnn_density(layer.input_rate, num_steps, twin)

    densities = [density(layer) for layer in layers]
    out: dict[str, float] = {}
    snn_total = qnn_total = 0.0
    for layer, d in zip(layers, densities, strict=True):
        e_snn, e_qnn, snn_sparse, qnn_sparse = _layer_energy(layer, layer.input_rate, output_rate, d, bits, hw)
        snn_total += e_snn
        qnn_total += e_qnn
        out[f"snn_pj/{layer.name}"] = e_snn
        out[f"qnn_pj/{layer.name}"] = e_qnn
        out[f"ratio/{layer.name}"] = e_snn / e_qnn if e_qnn > 0 else math.nan
        out[f"qnn_density/{layer.name}"] = d
        out[f"input_rate/{layer.name}"] = layer.input_rate
        out[f"snn_sparse_dataflow/{layer.name}"] = float(snn_sparse)
        out[f"qnn_sparse_dataflow/{layer.name}"] = float(qnn_sparse)

    def snn_at(s: float) -> float:
        return sum(_layer_energy(lay, s, s, d, bits, hw)[0] for lay, d in zip(layers, densities, strict=True))

    # E_SNN(s) is continuous, nondecreasing and piecewise linear in s: every term is linear in s except each spiking
    # layer's min(sparse, dense) dataflow, whose two lines cross at s = e_dense_bit / e_sparse_bit for every layer.
    # So the break-even rate is found exactly on the segment between the kinks where E_SNN passes E_QNN.
    points = [0.0, 1.0]
    if hw.e_sparse_bit > 0 and 0.0 < hw.e_dense_bit / hw.e_sparse_bit < 1.0:
        points.insert(1, hw.e_dense_bit / hw.e_sparse_bit)
    values = [snn_at(p) for p in points]
    if values[0] > qnn_total:
        break_even = math.nan
    elif values[-1] <= qnn_total:
        break_even = 1.0
    else:
        i = next(i for i, v in enumerate(values) if v > qnn_total)
        (s0, s1), (e0, e1) = points[i - 1:i + 1], values[i - 1:i + 1]
        break_even = s0 + (qnn_total - e0) * (s1 - s0) / (e1 - e0)
    out.update(
        snn_pj=snn_total, qnn_pj=qnn_total, ratio=snn_total / qnn_total if qnn_total > 0 else math.nan,
        break_even_spike_rate=break_even, qnn_bits=float(bits), num_steps=float(num_steps),
    )
    return out


class DataMovementEnergy(ProbeMetric):
    """Energy model 2 (compute + data movement vs the quantised twin) from the measured activity, per sample (pJ).

    Args:
        hardware: preset names and/or :class:`HardwareModel` instances; results are keyed ``<preset>/<figure>``.
        twin: Theorem 2 case for the twin's density (``"best"``, ``"average"``, ``"worst"``).
        qnn_density: a fixed twin density instead.
        num_steps: ``T``; default: the time steps the neuron layers ran (their outputs / (neurons x samples)).
        **overrides: constants replacing those of every preset (see :class:`HardwareModel`).

    A synaptic layer counts as spiking when all of its input steps were binary (no effective MACs).
    """

    def __init__(
        self,
        hardware: Sequence[str | HardwareModel] | str | HardwareModel = tuple(HARDWARE_PRESETS),
        twin: str = "average",
        qnn_density: float | None = None,
        num_steps: int | None = None,
        metric_kwargs: dict | None = None,
        **overrides,
    ) -> None:
        super().__init__(**(metric_kwargs or {}))
        presets = [hardware] if isinstance(hardware, (str, HardwareModel)) else list(hardware)
        self.hardware = {hw.name: hw for hw in (hardware_model(p, **overrides) for p in presets)}
        if twin not in TWIN_CASES:
            raise ValueError(f"twin must be one of {TWIN_CASES}, got {twin!r}")
        if num_steps is not None and (not isinstance(num_steps, int) or num_steps < 1):
            raise ValueError(f"num_steps must be a positive int or None, got {num_steps!r}")
        self.twin, self.qnn_density, self.num_steps = twin, qnn_density, num_steps
        for name in ("macs", "input_nonzero", "input_numel", "output_numel", "rows"):
            self.add_state(name, default=torch.zeros(0, dtype=torch.float64), dist_reduce_fx="sum")
        for name in ("spikes", "outputs"):
            self.add_state(name, default=torch.zeros(0, dtype=torch.long), dist_reduce_fx="sum")
        self.add_state("samples", default=torch.tensor(0, dtype=torch.long), dist_reduce_fx="sum")

    def update(self, stats: ProbeStats) -> None:
        stats = self._check_stats(stats)
        self._layout("synaptic", (stats.synaptic_names, stats.fan_in))
        self._layout("neuron", (stats.neuron_names, stats.neuron_sizes))
        self._add("macs", stats.effective_macs)
        for name in ("input_nonzero", "input_numel", "output_numel", "rows", "spikes", "outputs"):
            self._add(name, getattr(stats, name))
        self.samples += stats.num_samples

    def layer_activity(self) -> list[LayerActivity]:
        """The measured activity of every synaptic layer, as energy model 2 takes it."""
        names, fan_in = self._layouts["synaptic"]
        samples = float(self.samples)
        rows = self.rows.tolist()
        return [
            LayerActivity(
                name=name, fan_in=fan_in[i], outputs=float(self.output_numel[i]) / rows[i],
                inputs=float(self.input_numel[i]) / rows[i], steps=rows[i] / samples,
                input_rate=float(self.input_nonzero[i] / self.input_numel[i]), spiking=float(self.macs[i]) == 0.0,
            )
            for i, name in enumerate(names)
        ]

    def measured_steps(self) -> int:
        """Time steps of the neuron layers: outputs / (neurons x samples), the largest over layers."""
        sizes = torch.tensor(self._layouts["neuron"][1], dtype=torch.float64, device=self.outputs.device)
        steps = self.outputs.double() / (sizes * float(self.samples))
        return int(round(float(steps.max())))

    def compute(self) -> dict[str, torch.Tensor]:
        self._names("synaptic")
        layers = self.layer_activity()
        steps = self.num_steps or self.measured_steps()
        output_rate = float(self.spikes.sum()) / float(self.outputs.sum())
        out = {}
        for name, hw in self.hardware.items():
            res = data_movement_energy(
                layers, hw, num_steps=steps, output_rate=output_rate, twin=self.twin, qnn_density=self.qnn_density
            )
            out.update({f"{name}/{k}": torch.tensor(v, dtype=torch.float64) for k, v in res.items()})
        return out
