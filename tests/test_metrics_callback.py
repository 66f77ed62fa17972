"""SNNMetricsCallback: logs every figure on validation/test, equal to the metrics by hand; hooks only when measuring."""

from __future__ import annotations

import lightning as L
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from lit_snn.callbacks.snn_metrics import SNNMetricsCallback
from lit_snn.metrics import SNNProbe, SpikeRate, SynapticOperations
from lit_snn.neurons import LIF


def _hooks(module: nn.Module) -> int:
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in module.modules())


class Tiny(L.LightningModule):
    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(8, 6), LIF(), nn.Linear(6, 3), LIF())
        with torch.no_grad():
            self.net[0].weight.mul_(3.0)
            self.net[2].weight[0].zero_()
        self.hooks_in_training: list[int] = []

    def _step(self, batch):
        x, y = batch
        return F.cross_entropy(self.net(x.transpose(0, 1)).mean(0), y)  # data [B, T, 8] -> time-first

    def training_step(self, batch, batch_idx):
        self.hooks_in_training.append(_hooks(self.net))
        return self._step(batch)

    def validation_step(self, batch, batch_idx):
        self.log("val/loss", self._step(batch))

    def test_step(self, batch, batch_idx):
        self._step(batch)

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


def _loader(n: int = 10, batch_size: int = 4, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, 3, 8, generator=g)  # T = 3, analog input
    y = torch.randint(0, 3, (n,), generator=g)
    return torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=batch_size)


def _trainer(callback, tmp_path, **kw) -> L.Trainer:
    return L.Trainer(
        accelerator="cpu", devices=1, callbacks=[callback], logger=L.pytorch.loggers.CSVLogger(tmp_path),
        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False, **kw,
    )


def _by_hand(net: nn.Module, loader) -> tuple[dict, dict]:
    probe, ops, rate = SNNProbe(net), SynapticOperations(), SpikeRate()
    with probe, torch.no_grad():
        for x, _ in loader:
            net(x.transpose(0, 1))
            stats = probe.collect()
            ops.update(stats)
            rate.update(stats)
    return ops.compute(), rate.compute()


def test_validate_logs_every_figure_and_removes_hooks(tmp_path):
    model, loader = Tiny(), _loader()
    callback = SNNMetricsCallback()
    trainer = _trainer(callback, tmp_path)
    trainer.validate(model, dataloaders=loader, verbose=False)
    logged = trainer.callback_metrics
    ops, rate = _by_hand(model.net, loader)
    assert logged["val/synops/effective_acs"].item() == pytest.approx(ops["effective_acs"].item(), rel=1e-6)
    assert logged["val/synops/effective_macs/0"].item() == pytest.approx(ops["effective_macs/0"].item(), rel=1e-6)
    assert logged["val/spike_rate/1"].item() == pytest.approx(rate["spike_rate/1"].item(), rel=1e-6)
    for key in ("val/spike_rate", "val/spikes_per_sample/3", "val/activation_sparsity", "val/dead_neuron_fraction",
                "val/dead_neuron_fraction/3", "val/connection_sparsity", "val/parameter_count", "val/footprint_bytes",
                "val/energy/fp32_45nm/ratio", "val/energy/int8_45nm/snn_pj/2",
                "val/energy_movement/typical_neuromorphic/ratio",
                "val/energy_movement/worst_case_sparse/break_even_spike_rate",
                "val/energy_movement/theoretical_minimum/qnn_sparse_dataflow/2"):
        assert key in logged, key
    assert logged["val/connection_sparsity"].item() == pytest.approx(6 / (8 * 6 + 6 * 3))
    assert logged["val/parameter_count"].item() == 8 * 6 + 6 + 6 * 3 + 3
    assert _hooks(model.net) == 0
    # the logger got every figure, per layer too, with the values of callback_metrics and callback.results
    import csv

    (path,) = (tmp_path / "lightning_logs").glob("version_*/metrics.csv")
    rows = list(csv.DictReader(path.open()))
    written = {k: float(v) for row in rows for k, v in row.items() if v not in ("", None)}
    results = callback.results["val"]
    assert len(results) > 100 and set(results) <= set(written) and set(results) <= set(logged)
    for key in ("val/synops/effective_macs/0", "val/energy_movement/theoretical_minimum/qnn_sparse_dataflow/2"):
        assert written[key] == pytest.approx(results[key], rel=1e-6)
        assert logged[key].item() == pytest.approx(results[key], rel=1e-6)
    assert results["val/synops/effective_acs"] == pytest.approx(ops["effective_acs"].item(), rel=1e-12)


def test_headline_figures_are_returned_by_validate(tmp_path):
    model, loader = Tiny(), _loader()
    trainer = _trainer(SNNMetricsCallback(headline=("synops/effective_acs", "spike_rate/3")), tmp_path)
    (returned,) = trainer.validate(model, dataloaders=loader, verbose=False)
    ops, rate = _by_hand(model.net, loader)
    assert set(returned) == {"val/loss", "val/synops/effective_acs", "val/spike_rate/3"}
    assert returned["val/synops/effective_acs"] == pytest.approx(ops["effective_acs"].item(), rel=1e-6)
    assert returned["val/spike_rate/3"] == pytest.approx(rate["spike_rate/3"].item(), rel=1e-6)
    (plain,) = _trainer(SNNMetricsCallback(), tmp_path).validate(model, dataloaders=loader, verbose=False)
    assert set(plain) == {"val/loss"}  # by default the figures skip Lightning's per-key log
    with pytest.raises(ValueError, match=r"no figure named \['spike_rates'\]; accepted: .*'spike_rate'"):
        _trainer(SNNMetricsCallback(headline=("spike_rates",)), tmp_path).validate(model, dataloaders=loader,
                                                                                   verbose=False)
    with pytest.raises(TypeError, match="headline must be a sequence"):
        SNNMetricsCallback(headline="spike_rate")


def test_fit_measures_validation_only(tmp_path):
    model = Tiny()
    callback = SNNMetricsCallback()
    trainer = _trainer(callback, tmp_path, max_epochs=1, limit_train_batches=2, num_sanity_val_steps=1)
    trainer.fit(model, train_dataloaders=_loader(seed=1), val_dataloaders=_loader())
    assert model.hooks_in_training == [0, 0]  # training ran without a single hook
    ops, _ = _by_hand(model.net, _loader())  # every validation batch once: the sanity check is not counted
    assert trainer.callback_metrics["val/synops/dense"].item() == pytest.approx(ops["dense"].item(), rel=1e-6)
    assert not any(k.startswith("train/") for k in trainer.callback_metrics)
    assert _hooks(model.net) == 0


def test_train_and_test_stages(tmp_path):
    model = Tiny()
    callback = SNNMetricsCallback(stages=("train", "validate", "test"), hardware=())
    trainer = _trainer(callback, tmp_path, max_epochs=1, limit_train_batches=2, num_sanity_val_steps=0)
    trainer.fit(model, train_dataloaders=_loader(seed=1), val_dataloaders=_loader())
    assert all(n > 0 for n in model.hooks_in_training)
    assert "train/spike_rate" in trainer.callback_metrics and "val/spike_rate" in trainer.callback_metrics
    assert not any("energy_movement" in k for k in trainer.callback_metrics)
    trainer.test(model, dataloaders=_loader(), verbose=False)
    assert trainer.callback_metrics["test/synops/dense"].item() > 0
    assert _hooks(model.net) == 0


def test_one_callback_two_models(tmp_path):
    callback = SNNMetricsCallback()
    trainer = _trainer(callback, tmp_path)
    trainer.validate(Tiny(), dataloaders=_loader(), verbose=False)
    second = Tiny()
    trainer.validate(second, dataloaders=_loader(), verbose=False)
    ops, _ = _by_hand(second.net, _loader())
    assert trainer.callback_metrics["val/synops/effective_macs"].item() == pytest.approx(
        ops["effective_macs"].item(), rel=1e-6)


def test_totals_only(tmp_path):
    trainer = _trainer(SNNMetricsCallback(per_layer=False), tmp_path)
    trainer.validate(Tiny(), dataloaders=_loader(), verbose=False)
    logged = trainer.callback_metrics
    assert "val/synops/effective_acs" in logged and "val/energy_movement/typical_neuromorphic/ratio" in logged
    assert not any(k.endswith(("/0", "/1", "/2", "/3")) for k in logged)


def test_misuse_raises(tmp_path):
    with pytest.raises(ValueError, match="stages"):
        SNNMetricsCallback(stages=("predict",))
    with pytest.raises(ValueError, match="hardware"):
        SNNMetricsCallback(hardware=("gpu",))

    class NoNeurons(Tiny):
        def __init__(self) -> None:
            super().__init__()
            self.net = nn.Sequential(nn.Linear(8, 3), nn.ReLU())

    with pytest.raises(ValueError, match="no spiking neurons"):
        _trainer(SNNMetricsCallback(), tmp_path).validate(NoNeurons(), dataloaders=_loader(), verbose=False)
    with pytest.raises(AttributeError, match="no attribute 'backbone'"):
        _trainer(SNNMetricsCallback(net_attr="backbone"), tmp_path).validate(Tiny(), dataloaders=_loader(),
                                                                             verbose=False)


def test_metrics_import_without_lightning_or_snn_libraries():
    import subprocess
    import sys

    code = ("import sys, lit_snn.metrics, lit_snn.metrics.functional; "
            "bad = [m for m in ('lightning', 'pytorch_lightning', 'snntorch', 'spikingjelly') if m in sys.modules]; "
            "assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_model_checkpoint_can_monitor_a_figure(tmp_path):
    """The figures are in trainer.callback_metrics by the time ModelCheckpoint decides (validation end)."""
    from lightning.pytorch.callbacks import Callback, ModelCheckpoint

    seen: list[float] = []

    class Record(Callback):
        def on_validation_end(self, trainer, pl_module):
            seen.append(trainer.callback_metrics["val/spike_rate"].item())

    metrics = SNNMetricsCallback()
    checkpoint = ModelCheckpoint(dirpath=tmp_path / "ckpt", monitor="val/spike_rate", mode="min")
    trainer = L.Trainer(accelerator="cpu", callbacks=[metrics, Record(), checkpoint], logger=False,
                        enable_progress_bar=False, enable_model_summary=False, max_epochs=3, limit_train_batches=2,
                        num_sanity_val_steps=0)
    trainer.fit(Tiny(), train_dataloaders=_loader(seed=1), val_dataloaders=_loader())
    assert len(seen) == 3 and len(set(seen)) > 1  # training changed the spikes between epochs
    assert checkpoint.best_model_score.item() == pytest.approx(min(seen), rel=1e-6)
    assert seen[-1] == pytest.approx(metrics.results["val"]["val/spike_rate"], rel=1e-6)
