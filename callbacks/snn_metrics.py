"""``SNNMetricsCallback``: the lit-snn metric suite on any LightningModule, logged per epoch.

::

    trainer = Trainer(callbacks=[SNNMetricsCallback()])          # validation and test; training untouched

At the start of each measured epoch the callback attaches an :class:`~lit_snn.metrics.SNNProbe` to the network
(hooks on its neurons and synaptic layers); at the end of the epoch it removes the hooks, hands what the probe
counted to the metrics (one update with the epoch's totals: nothing but the hooks runs per batch) and logs every
figure to whatever loggers the trainer has, at the step of Lightning's own epoch-end logging, and into
``trainer.callback_metrics`` (so ``ModelCheckpoint``/``EarlyStopping`` can monitor any of them);
``callback.results[<stage>]`` holds the last epoch's figures as floats. The figures named in ``headline`` also go
through ``pl_module.log``, so that ``trainer.validate``/``test`` return and print them. ``<stage>`` is ``train``,
``val`` or ``test``; ``<layer>`` a qualified module name::

    <stage>/synops/{effective_acs,effective_macs,dense}[/<layer>]       per sample, summed over time steps
    <stage>/spike_rate[/<layer>]    <stage>/spikes_per_sample[/<layer>]  <stage>/dead_neuron_fraction[/<layer>]
    <stage>/activation_sparsity     (NeuroBench's, weighted by samples seen)
    <stage>/connection_sparsity     <stage>/parameter_count              <stage>/footprint_bytes
    <stage>/energy/<preset>/{snn_pj,ann_pj,ratio}[/<layer>]             energy model 1 (operation counting)
    <stage>/energy_movement/<hardware>/{snn_pj,qnn_pj,ratio,break_even_spike_rate,...}[/<layer>]   model 2

Outside the measured stages no hook is registered, so training runs at full speed unless ``stages`` includes
``"train"``. The sanity-check validation run is not measured. Metrics are torchmetrics objects whose states are
reduced across processes in ``compute``, so under DDP the logged figures cover every process's batches.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from lightning.pytorch import LightningModule, Trainer
from lightning.pytorch.callbacks import Callback
from torch import nn

from lit_snn.metrics import (
    HARDWARE_PRESETS,
    OPERATION_PRESETS,
    ActivationSparsity,
    DataMovementEnergy,
    DeadNeuronFraction,
    OperationEnergy,
    SNNProbe,
    SpikeRate,
    SpikesPerSample,
    SynapticOperations,
    resolve_neurons,
)
from lit_snn.metrics.functional import connection_sparsity, footprint, parameter_count

STAGES = ("train", "validate", "test")
PREFIXES = {"train": "train", "validate": "val", "test": "test"}


class SNNMetricsCallback(Callback):
    """Measure synaptic operations, spike activity, sparsity and energy of a LightningModule's network.

    Args:
        net_attr: dotted attribute path of the network inside the LightningModule (``"net"``, ``"model.snn"``);
            ``""`` for the LightningModule itself; ``None`` (default): ``pl_module.net`` if present, else the one
            child module that holds all the neurons, else the LightningModule. The network must be the module
            called with the batch input.
        neurons, synapses: explicit neuron / synaptic modules for the probe (default: declared by the network or
            found by type; see :class:`~lit_snn.metrics.SNNProbe`).
        batch_dim: batch dim of the network's input: 1 for time-first ``[T, B, ...]`` (default), 0 for ``[B, ...]``.
        stages: which loops to measure, from ``"train"``, ``"validate"``, ``"test"`` (default: validate and test).
        operation_presets: energy model 1 presets (names of :data:`~lit_snn.metrics.OPERATION_PRESETS`).
        hardware: energy model 2 hardware presets (names of :data:`~lit_snn.metrics.HARDWARE_PRESETS`); empty to skip.
        twin: Theorem 2 case for the twin QNN's density (``"best"``, ``"average"``, ``"worst"``).
        qnn_density: a fixed twin density instead of one derived from the measured rates.
        per_layer: also log the per-layer figures (``.../<layer>``); ``False`` logs the network totals only.
        headline: figures (names without the stage prefix, e.g. ``"synops/effective_acs"``, ``"spike_rate"``) to log
            through ``pl_module.log`` as well, so that ``trainer.validate``/``test`` return and print them. Off by
            default: Lightning's ``log`` builds a result object per key, about 1 ms per key and epoch on a CPU
            (3% of a Baseline LIF validation epoch for four keys), where every other figure costs microseconds.
    """

    def __init__(
        self,
        net_attr: str | None = None,
        neurons: Sequence[nn.Module] | dict[str, nn.Module] | None = None,
        synapses: Sequence[nn.Module] | dict[str, nn.Module] | None = None,
        batch_dim: int = 1,
        stages: Sequence[str] = ("validate", "test"),
        operation_presets: Sequence[str] = tuple(OPERATION_PRESETS),
        hardware: Sequence[str] = tuple(HARDWARE_PRESETS),
        twin: str = "average",
        qnn_density: float | None = None,
        per_layer: bool = True,
        headline: Sequence[str] = (),
    ) -> None:
        super().__init__()
        if net_attr is not None and not isinstance(net_attr, str):
            raise TypeError(f"net_attr must be a dotted attribute path or None, got {net_attr!r}")
        if batch_dim not in (0, 1):
            raise ValueError(f"batch_dim must be 0 or 1, got {batch_dim!r}")
        stages = tuple(stages)
        bad = [s for s in stages if s not in STAGES]
        if bad or not stages:
            raise ValueError(f"stages must be a non-empty subset of {STAGES}, got {stages!r}")
        for p in operation_presets:
            if p not in OPERATION_PRESETS:
                raise ValueError(f"operation_presets: unknown preset {p!r}; accepted: {tuple(OPERATION_PRESETS)}")
        for h in hardware:
            if h not in HARDWARE_PRESETS:
                raise ValueError(f"hardware: unknown preset {h!r}; accepted: {tuple(HARDWARE_PRESETS)}")
        self.net_attr, self.neurons, self.synapses, self.batch_dim = net_attr, neurons, synapses, batch_dim
        self.stages = stages
        self.operation_presets, self.hardware = tuple(operation_presets), tuple(hardware)
        # validated here so that a typo fails before training starts
        DataMovementEnergy(hardware=self.hardware or "theoretical_minimum", twin=twin, qnn_density=qnn_density)
        self.twin, self.qnn_density, self.per_layer = twin, qnn_density, bool(per_layer)
        if isinstance(headline, str) or not all(isinstance(h, str) for h in headline):
            raise TypeError(f"headline must be a sequence of figure names, got {headline!r}")
        self.headline = tuple(headline)
        self.network: nn.Module | None = None
        self._probes: dict[str, SNNProbe] = {}
        self._metrics: dict[str, dict[str, Any]] = {}
        self._paused: str | None = None
        #: the last measured epoch's figures per stage prefix (``"val"``, ``"test"``, ``"train"``), as floats
        self.results: dict[str, dict[str, float]] = {}

    # -- setup ------------------------------------------------------------------------------------------------------
    def _resolve_network(self, pl_module: LightningModule) -> nn.Module:
        if self.net_attr is not None:
            module: Any = pl_module
            for part in [p for p in self.net_attr.split(".") if p]:
                if not hasattr(module, part):
                    raise AttributeError(
                        f"SNNMetricsCallback(net_attr={self.net_attr!r}): {type(module).__name__} has no attribute "
                        f"{part!r}"
                    )
                module = getattr(module, part)
            if not isinstance(module, nn.Module):
                raise TypeError(f"net_attr={self.net_attr!r} is a {type(module).__name__}, not an nn.Module")
            return module
        if isinstance(getattr(pl_module, "net", None), nn.Module):
            return pl_module.net
        all_neurons = {id(m) for m in resolve_neurons(pl_module, self.neurons).values()}
        holders = [c for c in pl_module.children() if all_neurons <= {id(m) for m in c.modules()}]
        return holders[0] if len(holders) == 1 else pl_module

    def _build_metrics(self) -> dict[str, Any]:
        metrics: dict[str, Any] = {
            "synops": SynapticOperations(),
            "spike_rate": SpikeRate(),
            "spikes_per_sample": SpikesPerSample(),
            "activation_sparsity": ActivationSparsity(),
            "dead_neuron_fraction": DeadNeuronFraction(),
        }
        for preset in self.operation_presets:
            metrics[f"energy/{preset}"] = OperationEnergy(preset)
        if self.hardware:
            metrics["energy_movement"] = DataMovementEnergy(self.hardware, twin=self.twin, qnn_density=self.qnn_density)
        return metrics

    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        network = self._resolve_network(pl_module)
        if network is not self.network:  # a new model: new probes and metrics
            self._detach_all()
            self._probes.clear()
            self._metrics.clear()
        self.network = network
        for s in self.stages:
            if s not in self._probes:
                self._probes[s] = SNNProbe(self.network, self.neurons, self.synapses, batch_dim=self.batch_dim)
                self._metrics[s] = self._build_metrics()

    # -- the measured loop ------------------------------------------------------------------------------------------
    def _start(self, stage: str, trainer: Trainer, pl_module: LightningModule) -> None:
        if stage not in self._probes or trainer.sanity_checking:
            return
        for metric in self._metrics[stage].values():
            metric.reset()
            if metric.device != pl_module.device:
                metric.to(pl_module.device)
        self._probes[stage].attach()

    def _batch(self, stage: str) -> None:
        """Nothing per batch: the probe keeps its totals (and each batch's activation sparsity) on the device and the
        metrics get them once, at the end of the epoch (the metrics only add, so one update with the epoch's totals
        gives what one update per batch gave)."""

    def _update(self, stage: str) -> None:
        probe = self._probes[stage]
        if probe.num_samples == 0:  # no batch ran: compute() raises as it should
            return
        stats = probe.collect()
        for metric in self._metrics[stage].values():
            metric.update(stats)

    def _end(self, stage: str, trainer: Trainer, pl_module: LightningModule) -> None:
        probe = self._probes.get(stage)
        if probe is None or not probe.attached:
            return
        probe.detach()
        self._update(stage)
        prefix = PREFIXES[stage]
        logs: dict[str, torch.Tensor | float] = {}
        for group, metric in self._metrics[stage].items():
            result = metric.compute()
            if isinstance(result, torch.Tensor):
                logs[f"{prefix}/{group}"] = result
                continue
            if not self.per_layer:  # per-layer keys are "<figure>/<layer>" ("<hardware>/<figure>/<layer>")
                depth = 1 if group == "energy_movement" else 0
                result = {k: v for k, v in result.items() if k.count("/") <= depth}
            head = f"{prefix}/{group}/" if group in ("synops", "energy_movement") or "/" in group else f"{prefix}/"
            logs.update({head + k: v for k, v in result.items()})
        logs[f"{prefix}/connection_sparsity"] = connection_sparsity(self.network, self._probes[stage].synapses)
        logs[f"{prefix}/parameter_count"] = parameter_count(self.network)
        logs[f"{prefix}/footprint_bytes"] = footprint(self.network)
        self._publish(trainer, pl_module, prefix, logs)

    def _publish(self, trainer: Trainer, pl_module: LightningModule, prefix: str, logs: dict[str, Any]) -> None:
        """Hand the epoch's figures to the trainer: straight to its loggers (at the step Lightning's own epoch-end
        logging uses) and into ``trainer.callback_metrics``; the ``headline`` figures through ``pl_module.log``
        instead. Lightning's ``log`` builds a result object per key (~1 ms per key and epoch on a CPU, with its
        teardown): for ~150 figures that cost more than the measurement itself."""
        figures = {k: float(v) for k, v in logs.items()}
        self.results[prefix] = figures
        missing = [h for h in self.headline if f"{prefix}/{h}" not in figures]
        if missing:
            known = sorted(k.removeprefix(prefix + "/") for k in figures)
            raise ValueError(f"SNNMetricsCallback(headline=...): no figure named {missing}; accepted: {known}")
        headline = {f"{prefix}/{h}": figures[f"{prefix}/{h}"] for h in self.headline}
        rest = {k: v for k, v in figures.items() if k not in headline}
        for key, value in headline.items():
            pl_module.log(key, value, on_step=False, on_epoch=True, sync_dist=False, add_dataloader_idx=False)
        trainer.callback_metrics.update({k: torch.tensor(v, dtype=torch.float32) for k, v in rest.items()})
        if trainer.loggers:
            # Lightning's own epoch-end call: the same step (and "epoch" key) as the logged val/test figures
            trainer._logger_connector.log_metrics(rest)

    # training (opt-in); a validation run inside a training epoch pauses the training probe
    def on_train_epoch_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._start("train", trainer, pl_module)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self._batch("train")

    def on_train_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._end("train", trainer, pl_module)

    def on_validation_epoch_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        train_probe = self._probes.get("train")
        if train_probe is not None and train_probe.attached:
            train_probe.detach()
            self._update("train")  # attach() restarts the probe's totals
            self._paused = "train"
        self._start("validate", trainer, pl_module)

    def on_validation_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0) -> None:
        self._batch("validate")

    def on_validation_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._end("validate", trainer, pl_module)
        if self._paused == "train":
            self._probes["train"].attach()
            self._paused = None

    def on_test_epoch_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._start("test", trainer, pl_module)

    def on_test_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0) -> None:
        self._batch("test")

    def on_test_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._end("test", trainer, pl_module)

    # -- never leave hooks behind -----------------------------------------------------------------------------------
    def _detach_all(self) -> None:
        for probe in self._probes.values():
            probe.detach()
        self._paused = None

    def on_exception(self, trainer: Trainer, pl_module: LightningModule, exception: BaseException) -> None:
        self._detach_all()

    def teardown(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        self._detach_all()
