r"""An energy report of the tested model: one table, written as markdown and as a W&B Table.

During ``trainer.test`` an :class:`~lit_snn.metrics.SNNProbe` watches the network (hooks removed at the end of
the test epoch); at its end the callback computes, with :mod:`lit_snn.metrics`, per synaptic layer and in total:

- the layer's input: ``spikes`` (every step binary) or ``analog`` (e.g. a direct-coded first layer), and its
  input spike rate ``s`` = nonzero inputs / inputs (per step, over the test set);
- synaptic operations per sample (NeuroBench definitions): effective ACs, effective MACs and dense ops;
- energy model 1, operation counting: ``E_SNN = E_AC ACs + E_MAC MACs`` against the ANN of the same topology
  ``E_ANN = E_MAC sum_l dense_l / T_l``, one ANN pass (:class:`~lit_snn.metrics.OperationEnergy`, preset
  ``operation_preset``);
- energy model 2, compute + data movement against the quantised twin (QNN with ``ceil(log2(T+1))``-bit
  activations), for each hardware preset: ``E_SNN``, ``E_QNN``, their ratio, the dataflow each side chose
  (``sparse``/``dense``) and, in the total row, the break-even spike rate
  (:class:`~lit_snn.metrics.DataMovementEnergy`);

and per neuron layer the spike rate, spikes per sample and the dead-neuron fraction. All energies are pJ per
sample. The equations and constants are those of :mod:`lit_snn.metrics.energy`.

Outputs (rank 0): ``<dirpath>/energy_report_<Model>.md`` (``dirpath`` default: ``trainer.log_dir``) with a summary
and the two tables (numbers with 6 significant digits); for every logger with a W&B-style
``log_table(key, columns, data)`` (:class:`~lightning.pytorch.loggers.WandbLogger`) the tables
``energy_report/<Model>`` and ``energy_report/<Model>/neurons`` with full-precision numbers; for a
:class:`~lightning.pytorch.loggers.TensorBoardLogger` the markdown as text ``energy_report/<Model>``.
The last report stays available as :attr:`EnergyReport.report`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch import LightningModule, Trainer
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.loggers import TensorBoardLogger

from lit_snn.metrics import (
    HARDWARE_PRESETS,
    OPERATION_PRESETS,
    DataMovementEnergy,
    DeadNeuronFraction,
    OperationEnergy,
    SNNProbe,
    SpikeRate,
    SpikesPerSample,
    SynapticOperations,
    operation_costs,
)

from .progressive_sparsity import resolve_net

LAYER_COLUMNS = ("layer", "input", "input spike rate", "ACs", "MACs", "dense ops", "E_SNN ops [pJ]", "E_ANN [pJ]",
                 "SNN/ANN")
HARDWARE_COLUMNS = ("E_SNN {} [pJ]", "E_QNN {} [pJ]", "SNN/QNN {}", "dataflow SNN/QNN {}", "break-even rate {}")
NEURON_COLUMNS = ("neuron layer", "neurons", "spike rate", "spikes / sample", "dead fraction")


@dataclass
class Report:
    """One model's energy report: a summary, the synaptic-layer table (last row: total) and the neuron table."""

    model: str
    summary: dict[str, Any]
    columns: list[str]
    rows: list[list[Any]]
    neuron_columns: list[str] = field(default_factory=lambda: list(NEURON_COLUMNS))
    neuron_rows: list[list[Any]] = field(default_factory=list)

    def markdown(self) -> str:
        lines = [f"# Energy report: {self.model}", ""]
        lines += [f"- {key}: {_fmt(value)}" for key, value in self.summary.items()]
        lines += ["", "## Synaptic layers (per sample; energies in pJ)", "", *_md_table(self.columns, self.rows)]
        lines += ["", "## Neuron layers", "", *_md_table(self.neuron_columns, self.neuron_rows), ""]
        return "\n".join(lines)


def _fmt(value: Any) -> str:
    if isinstance(value, bool) or value is None:
        return "" if value is None else str(value)
    if isinstance(value, (int, float)):
        return "nan" if isinstance(value, float) and math.isnan(value) else f"{value:.6g}"
    return str(value)


def _md_table(columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> list[str]:
    return [
        "| " + " | ".join(columns) + " |",
        "|" + "|".join("---" for _ in columns) + "|",
        *("| " + " | ".join(_fmt(v) for v in row) + " |" for row in rows),
    ]


def build_report(
    model: str,
    synops: dict[str, torch.Tensor],
    op_energy: dict[str, torch.Tensor],
    movement: dict[str, torch.Tensor],
    hardware: Sequence[str],
    spike_rate: dict[str, torch.Tensor],
    spikes_per_sample: dict[str, torch.Tensor],
    dead: dict[str, torch.Tensor],
    synaptic_names: Sequence[str],
    neuron_names: Sequence[str],
    neuron_sizes: Sequence[int],
    num_samples: int,
    summary: dict[str, Any] | None = None,
) -> Report:
    """Assemble the tables from the ``compute()`` results of the :mod:`lit_snn.metrics` metrics.

    ``hardware`` must be non-empty (the input spike rate and ``T`` are read from its first preset's results).
    """

    def f(mapping: dict[str, Any], key: str) -> float:
        value = mapping[key]
        return float(value.item() if isinstance(value, torch.Tensor) else value)

    columns = list(LAYER_COLUMNS) + [c.format(h) for h in hardware for c in HARDWARE_COLUMNS]
    rows = []
    for name in synaptic_names:
        spiking = f(synops, f"effective_macs/{name}") == 0.0
        row = [
            name, "spikes" if spiking else "analog", f(movement, f"{hardware[0]}/input_rate/{name}"),
            f(synops, f"effective_acs/{name}"), f(synops, f"effective_macs/{name}"), f(synops, f"dense/{name}"),
            f(op_energy, f"snn_pj/{name}"), f(op_energy, f"ann_pj/{name}"), f(op_energy, f"ratio/{name}"),
        ]
        for h in hardware:
            flows = [
                "sparse" if f(movement, f"{h}/{side}_sparse_dataflow/{name}") else "dense" for side in ("snn", "qnn")
            ]
            row += [f(movement, f"{h}/snn_pj/{name}"), f(movement, f"{h}/qnn_pj/{name}"),
                    f(movement, f"{h}/ratio/{name}"), "/".join(flows), None]
        rows.append(row)
    total = ["total", "", None, f(synops, "effective_acs"), f(synops, "effective_macs"), f(synops, "dense"),
             f(op_energy, "snn_pj"), f(op_energy, "ann_pj"), f(op_energy, "ratio")]
    for h in hardware:
        total += [f(movement, f"{h}/snn_pj"), f(movement, f"{h}/qnn_pj"), f(movement, f"{h}/ratio"), "",
                  f(movement, f"{h}/break_even_spike_rate")]
    rows.append(total)

    neuron_rows = [
        [name, size, f(spike_rate, f"spike_rate/{name}"), f(spikes_per_sample, f"spikes_per_sample/{name}"),
         f(dead, f"dead_neuron_fraction/{name}")]
        for name, size in zip(neuron_names, neuron_sizes, strict=True)
    ]
    neuron_rows.append(["total", sum(neuron_sizes), f(spike_rate, "spike_rate"),
                        f(spikes_per_sample, "spikes_per_sample"), f(dead, "dead_neuron_fraction")])
    info = {
        "test samples": num_samples,
        "time steps T": int(f(movement, f"{hardware[0]}/num_steps")),
        "twin QNN activation bits": int(f(movement, f"{hardware[0]}/qnn_bits")),
    }
    info.update(summary or {})
    info["SNN/ANN energy, operation counting"] = f(op_energy, "ratio")
    for h in hardware:
        info[f"SNN/QNN energy, {h}"] = f(movement, f"{h}/ratio")
        info[f"break-even spike rate, {h}"] = f(movement, f"{h}/break_even_spike_rate")
    return Report(model, info, columns, rows, list(NEURON_COLUMNS), neuron_rows)


class EnergyReport(Callback):
    """Write an energy report of the network at the end of ``trainer.test`` (see the module docstring).

    Args:
        operation_preset: energy model 1 constants, a name of :data:`~lit_snn.metrics.OPERATION_PRESETS`.
        hardware: energy model 2 presets, names of :data:`~lit_snn.metrics.HARDWARE_PRESETS` (all by default).
        twin: Theorem 2 case for the twin QNN's density: ``"best"``, ``"average"`` or ``"worst"``.
        qnn_density: a fixed twin density instead of one derived from the measured rates.
        net_attr: where the network lives in the LightningModule (see
            :func:`lit_snn.callbacks.progressive_sparsity.resolve_net`).
        batch_dim: batch dim of the network's input (1: time-first ``[T, B, ...]``; 0: ``[B, ...]``).
        dirpath: folder of the markdown file; ``None``: ``trainer.log_dir``.

    Example::

        trainer = Trainer(callbacks=[EnergyReport()]); trainer.test(model, datamodule)  # -> energy_report_<Model>.md
    """

    def __init__(
        self,
        operation_preset: str = "fp32_45nm",
        hardware: Sequence[str] = tuple(HARDWARE_PRESETS),
        twin: str = "average",
        qnn_density: float | None = None,
        net_attr: str | None = None,
        batch_dim: int = 1,
        dirpath: str | None = None,
    ) -> None:
        if operation_preset not in OPERATION_PRESETS:
            raise ValueError(f"operation_preset must be one of {tuple(OPERATION_PRESETS)}, got {operation_preset!r}")
        if isinstance(hardware, str) or not all(h in HARDWARE_PRESETS for h in hardware) or not hardware:
            raise ValueError(
                f"hardware must be a non-empty list of presets from {tuple(HARDWARE_PRESETS)}, got {hardware!r}"
            )
        if batch_dim not in (0, 1):
            raise ValueError(f"batch_dim must be 0 ([B, ...] input) or 1 (time-first [T, B, ...]), got {batch_dim!r}")
        self.operation_preset = operation_preset
        self.hardware = tuple(hardware)
        self.twin, self.qnn_density = twin, qnn_density
        self._movement_kwargs = {"twin": twin, "qnn_density": qnn_density}
        DataMovementEnergy(self.hardware, **self._movement_kwargs)  # validates twin and qnn_density now
        self.net_attr = net_attr
        self.batch_dim = batch_dim
        self.dirpath = dirpath
        self._probe: SNNProbe | None = None
        self._metrics: dict[str, Any] = {}
        #: the last report (after a test epoch)
        self.report: Report | None = None
        #: the markdown file written last
        self.path: Path | None = None

    def on_test_epoch_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        net = resolve_net(pl_module, self.net_attr)
        self._probe = SNNProbe(net, batch_dim=self.batch_dim)
        self._metrics = {
            "synops": SynapticOperations(), "spike_rate": SpikeRate(), "spikes_per_sample": SpikesPerSample(),
            "dead": DeadNeuronFraction(), "op_energy": OperationEnergy(self.operation_preset),
            "movement": DataMovementEnergy(self.hardware, **self._movement_kwargs),
        }
        for metric in self._metrics.values():
            metric.to(pl_module.device)
        self._probe.attach()

    def on_test_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        probe, self._probe = self._probe, None
        if probe is None:
            return
        probe.detach()
        m = self._metrics
        if probe.num_samples:  # the probe kept the epoch's totals: one update gives what one per batch gave
            stats = probe.collect()
            for metric in m.values():
                metric.update(stats)
        results = {key: metric.compute() for key, metric in m.items()}
        costs = operation_costs(self.operation_preset)
        self.report = build_report(
            model=type(probe.network).__name__,
            synops=results["synops"], op_energy=results["op_energy"], movement=results["movement"],
            hardware=self.hardware, spike_rate=results["spike_rate"],
            spikes_per_sample=results["spikes_per_sample"], dead=results["dead"],
            synaptic_names=m["synops"].synaptic_names, neuron_names=m["dead"].neuron_names,
            neuron_sizes=m["dead"].neuron_sizes, num_samples=int(m["synops"].samples),
            summary={
                "operation counting": f"{self.operation_preset}: E_MAC {costs.e_mac} pJ, E_AC {costs.e_ac} pJ",
                "twin QNN density": self.twin if self.qnn_density is None else self.qnn_density,
            },
        )
        self._metrics = {}
        if trainer.is_global_zero:
            self._write(trainer)

    def _write(self, trainer: Trainer) -> None:
        report = self.report
        text = report.markdown()
        folder = Path(self.dirpath or trainer.log_dir or trainer.default_root_dir)
        folder.mkdir(parents=True, exist_ok=True)
        self.path = folder / f"energy_report_{report.model}.md"
        self.path.write_text(text)
        key = f"energy_report/{report.model}"
        for logger in trainer.loggers:
            if isinstance(logger, TensorBoardLogger):
                logger.experiment.add_text(key, text, global_step=trainer.global_step)
            elif callable(getattr(logger, "log_table", None)):
                logger.log_table(key=key, columns=report.columns, data=report.rows)
                logger.log_table(key=f"{key}/neurons", columns=report.neuron_columns, data=report.neuron_rows)

    def on_exception(self, trainer: Trainer, pl_module: LightningModule, exception: BaseException) -> None:
        self.teardown(trainer, pl_module, "")

    def teardown(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        if self._probe is not None:
            self._probe.detach()
            self._probe = None
