"""SpikeMonitor: image sizes, what the loggers receive, rates against a direct count, hooks gone, errors."""

from __future__ import annotations

import lightning.pytorch as pl
import numpy as np
import pytest
import torch
from helpers import mnist_prefix  # noqa: E402  (tests/ on sys.path)
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.loggers import CSVLogger, Logger, TensorBoardLogger
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from lit_snn.callbacks import SpikeMonitor
from lit_snn.models.base import SNNModel
from lit_snn.neurons import make_neuron

T = 3


class TwoLayerSNN(SNNModel):
    input_shape = (784,)
    num_classes = 10

    def __init__(self) -> None:
        super().__init__()
        self.fc1 = nn.Linear(784, 24)
        self.lif1 = make_neuron("lif", tau=2.0, threshold=1.0)
        self.fc2 = nn.Linear(24, 16)
        self.lif2 = make_neuron("alif", tau=2.0, threshold=0.5, learn_threshold=True, size=16)
        self.out = nn.Linear(16, 10)

    def forward(self, x):
        return self.out(self.lif2(self.fc2(self.lif1(self.fc1(x)))))


class LitNet(pl.LightningModule):
    def __init__(self) -> None:
        super().__init__()
        self.net = TwoLayerSNN()

    def _logits(self, x):
        return self.net(x.unsqueeze(0).expand(T, *x.shape)).mean(0)

    def training_step(self, batch, batch_idx):
        return nn.functional.cross_entropy(self._logits(batch[0]), batch[1])

    def validation_step(self, batch, batch_idx):
        self.log("val/loss", nn.functional.cross_entropy(self._logits(batch[0]), batch[1]))

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.01)


class FakeImageLogger(Logger):
    """A W&B-style logger that records ``log_image`` calls."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[dict] = []

    name = "fake"
    version = 0

    def log_metrics(self, metrics, step=None):
        pass

    def log_hyperparams(self, params, *args, **kwargs):
        pass

    def log_image(self, key, images, step=None, **kwargs):
        self.calls.append({"key": key, "images": images, "step": step, **kwargs})


class NoHooksInTraining(Callback):
    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        for m in (pl_module.net.lif1, pl_module.net.lif2):
            assert not m._forward_hooks and not m._forward_pre_hooks


@pytest.fixture(scope="module")
def data(data_dir):
    x, y = mnist_prefix(data_dir, 48)
    train = DataLoader(TensorDataset(x[:16], y[:16]), batch_size=8)
    return train, DataLoader(TensorDataset(x[16:], y[16:]), batch_size=16)


def fit(data, monitor, loggers, max_epochs=2):
    torch.manual_seed(0)
    lit = LitNet()
    trainer = pl.Trainer(
        max_epochs=max_epochs, accelerator="cpu", devices=1, logger=loggers, enable_progress_bar=False,
        enable_model_summary=False, enable_checkpointing=False, num_sanity_val_steps=1,
        callbacks=[monitor, NoHooksInTraining()],
    )
    trainer.fit(lit, *data)
    return lit, trainer


def test_images_sizes_and_loggers(data, tmp_path):
    fake, tb = FakeImageLogger(), TensorBoardLogger(tmp_path, name="tb", version=0)
    monitor = SpikeMonitor(every_n_epochs=2, num_samples=3, num_traces=2, figsize=(4.0, 3.0), dpi=50)
    lit, trainer = fit(data, monitor, [fake, tb], max_epochs=2)

    # monitored only on the 2nd validation epoch (the sanity check does not count): one call per kind
    assert [c["key"] for c in fake.calls] == ["spike_monitor/raster", "spike_monitor/rates", "spike_monitor/membrane"]
    for call in fake.calls:
        assert call["step"] == trainer.global_step == 4
        assert call["caption"] == ["lif1", "lif2"]
        assert [img.shape for img in call["images"]] == [(150, 200, 3)] * 2  # (3 in * 50 dpi, 4 in * 50 dpi)
        assert all(img.dtype == np.uint8 and img.std() > 0 for img in call["images"])  # drawn, not blank
    assert monitor.image_shape == (150, 200, 3)

    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(tmp_path / "tb" / "version_0"), size_guidance={"images": 0})
    events.Reload()
    tags = sorted(events.Tags()["images"])
    assert tags == sorted(f"spike_monitor/{k}/{n}" for k in ("raster", "rates", "membrane") for n in ("lif1", "lif2"))
    for tag in tags:
        (image,) = events.Images(tag)
        assert (image.height, image.width, image.step) == (150, 200, 4)

    # hooks are gone after the monitored epoch
    for m in (lit.net.lif1, lit.net.lif2):
        assert not m._forward_hooks and not m._forward_pre_hooks


def test_rates_equal_a_direct_count(data):
    monitor = SpikeMonitor(every_n_epochs=1, dpi=20, figsize=(3, 2))
    lit, _ = fit(data, monitor, [FakeImageLogger()], max_epochs=1)
    x = data[1].dataset.tensors[0]
    with torch.no_grad():
        h1 = lit.net.lif1(lit.net.fc1(x.unsqueeze(0).expand(T, *x.shape)))
        h2 = lit.net.lif2(lit.net.fc2(h1))
    # rate_j = spikes of neuron j / (samples * T), over the 32 validation samples
    assert torch.equal(monitor.rates["lif1"], h1.double().sum((0, 1)) / (32 * T))
    assert torch.equal(monitor.rates["lif2"], h2.double().sum((0, 1)) / (32 * T))
    assert monitor.rates["lif1"].sum() > 0


def test_other_loggers_warn_once_and_no_image_logger_is_an_error(data, tmp_path):
    with pytest.warns(UserWarning, match="CSVLogger cannot take images") as record:
        fit(data, SpikeMonitor(dpi=20, figsize=(3, 2)), [FakeImageLogger(), CSVLogger(tmp_path)], max_epochs=2)
    assert sum("cannot take images" in str(w.message) for w in record) == 1
    with pytest.raises(ValueError, match="SpikeMonitor logs images, but the trainer has"):
        fit(data, SpikeMonitor(), [CSVLogger(tmp_path)], max_epochs=1)
    with pytest.raises(ValueError, match="not neuron layers"):
        fit(data, SpikeMonitor(layers=["fc1"]), [FakeImageLogger()], max_epochs=1)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"every_n_epochs": 0}, "every_n_epochs"),
        ({"num_samples": 1.5}, "num_samples"),
        ({"dpi": True}, "dpi"),
        ({"figsize": (4, -1)}, "figsize"),
        ({"layers": "lif1"}, "layers"),
    ],
)
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        SpikeMonitor(**kwargs)
