"""EnergyReport: the markdown and W&B tables hold the metrics computed directly (hand-counted ops, energy models)."""

from __future__ import annotations

import lightning.pytorch as pl
import numpy as np
import pytest
import torch
from helpers import mnist_prefix  # noqa: E402  (tests/ on sys.path)
from lightning.pytorch.loggers import Logger, TensorBoardLogger
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from lit_snn.callbacks import EnergyReport
from lit_snn.metrics import HARDWARE_PRESETS, LayerActivity, data_movement_energy
from lit_snn.models.base import SNNModel
from lit_snn.neurons import make_neuron

T = 3
N_SAMPLES = 32


class ThreeLayerSNN(SNNModel):
    """Direct-coded input (analog, so fc1 does MACs) -> LIF(24) -> fc2 -> LIF(16) -> out, all T steps at once."""

    input_shape = (784,)
    num_classes = 10

    def __init__(self) -> None:
        super().__init__()
        self.fc1 = nn.Linear(784, 24)
        self.lif1 = make_neuron("lif", tau=2.0, threshold=1.0)
        self.fc2 = nn.Linear(24, 16)
        self.lif2 = make_neuron("lif", tau=2.0, threshold=0.3)
        self.out = nn.Linear(16, 10)
        with torch.no_grad():  # a few zero weights, so that fan-outs differ from the dense count
            self.fc2.weight[:, 0] = 0.0
            self.out.weight[:3, :] = 0.0

    def forward(self, x):
        return self.out(self.lif2(self.fc2(self.lif1(self.fc1(x)))))


class LitNet(pl.LightningModule):
    def __init__(self) -> None:
        super().__init__()
        self.net = ThreeLayerSNN()

    def test_step(self, batch, batch_idx):
        x, y = batch
        self.log("test/loss", nn.functional.cross_entropy(self.net(x.unsqueeze(0).expand(T, *x.shape)).mean(0), y))


class FakeTableLogger(Logger):
    """A W&B-style logger that records ``log_table`` calls."""

    def __init__(self, save_dir) -> None:
        super().__init__()
        self._save_dir = str(save_dir)
        self.tables: dict[str, dict] = {}

    name = "fake"
    version = 0

    @property
    def save_dir(self):
        return self._save_dir

    def log_metrics(self, metrics, step=None):
        pass

    def log_hyperparams(self, params, *args, **kwargs):
        pass

    def log_table(self, key, columns=None, data=None, dataframe=None, step=None):
        self.tables[key] = {"columns": columns, "data": data}


def run_test(lit, x, y, logger, tmp_path, **kw):
    cb = EnergyReport(**kw)
    trainer = pl.Trainer(
        accelerator="cpu", devices=1, logger=[logger], default_root_dir=tmp_path, enable_progress_bar=False,
        enable_model_summary=False, callbacks=[cb],
    )
    trainer.test(lit, DataLoader(TensorDataset(x, y), batch_size=N_SAMPLES))
    return cb, trainer


def parse_tables(text: str) -> list[dict[str, dict[str, str]]]:
    """Markdown tables -> [{first cell: {column: cell}}], in order."""
    tables, current, header = [], None, None
    for line in text.splitlines():
        if not line.startswith("|"):
            current = header = None
            continue
        cells = [c.strip() for c in line.strip("|").split("|")]
        if header is None:
            header, current = cells, {}
            tables.append(current)
        elif not set(line) <= set("|-"):
            current[cells[0]] = dict(zip(header, cells, strict=True))
    return tables


def expected_figures(net: ThreeLayerSNN, x: torch.Tensor) -> dict:
    """The report's figures computed by hand from one forward pass (ops counted directly, energy models applied)."""
    xs = x.unsqueeze(0).expand(T, *x.shape)
    with torch.no_grad():
        s1 = net.lif1(net.fc1(xs))
        s2 = net.lif2(net.fc2(s1))
    n = x.shape[0]
    # fanout_i = nonzero weights in input column i; ACs per sample = sum_i spikes_i * fanout_i / samples
    fan2, fan3 = (net.fc2.weight != 0).sum(0).double(), (net.out.weight != 0).sum(0).double()
    fan1 = (net.fc1.weight != 0).sum(0).double()
    ops = {
        "fc1": (0.0, float((xs != 0).double().sum((0, 1)) @ fan1) / n, T * 784 * 24.0),  # analog input: MACs
        "fc2": (float(s1.double().sum((0, 1)) @ fan2) / n, 0.0, T * 24 * 16.0),
        "out": (float(s2.double().sum((0, 1)) @ fan3) / n, 0.0, T * 16 * 10.0),
    }
    rates = {
        "fc1": float((xs != 0).double().mean()), "fc2": float(s1.double().mean()), "out": float(s2.double().mean())
    }
    layers = [
        LayerActivity("fc1", 784, 24, 784, T, rates["fc1"], spiking=False),
        LayerActivity("fc2", 24, 16, 24, T, rates["fc2"]),
        LayerActivity("out", 16, 10, 16, T, rates["out"]),
    ]
    output_rate = float((s1.sum() + s2.sum()) / (s1.numel() + s2.numel()))
    movement = {h: data_movement_energy(layers, h, num_steps=T, output_rate=output_rate) for h in HARDWARE_PRESETS}
    neurons = {
        "lif1": (24, float(s1.mean()), float(s1.sum()) / n, float((s1.sum((0, 1)) == 0).double().mean())),
        "lif2": (16, float(s2.mean()), float(s2.sum()) / n, float((s2.sum((0, 1)) == 0).double().mean())),
    }
    return {"ops": ops, "rates": rates, "movement": movement, "neurons": neurons, "output_rate": output_rate}


def same(cell: str, value: float) -> bool:
    """The markdown cell shows ``value`` to 6 significant digits."""
    return float(cell) == float(f"{value:.6g}")


@pytest.fixture(scope="module")
def mnist(data_dir):
    return mnist_prefix(data_dir, N_SAMPLES)


def test_markdown_and_wandb_table_equal_direct_metrics(mnist, tmp_path):
    x, y = mnist
    torch.manual_seed(0)
    lit = LitNet()
    logger = FakeTableLogger(tmp_path / "fake")
    cb, trainer = run_test(lit, x, y, logger, tmp_path)
    exp = expected_figures(lit.net, x)

    path = tmp_path / "fake" / "energy_report_ThreeLayerSNN.md"
    assert cb.path == path and path.is_file()
    text = path.read_text()
    layers, neurons = parse_tables(text)
    assert list(layers) == ["fc1", "fc2", "out", "total"]
    e_mac, e_ac = 4.6, 0.9  # fp32, 45 nm (Horowitz)
    totals = np.zeros(5)
    for name, (acs, macs, dense) in exp["ops"].items():
        row = layers[name]
        assert row["input"] == ("analog" if name == "fc1" else "spikes")
        assert same(row["input spike rate"], exp["rates"][name])
        assert same(row["ACs"], acs) and same(row["MACs"], macs) and same(row["dense ops"], dense)
        snn, ann = e_ac * acs + e_mac * macs, e_mac * dense / T  # the ANN twin: one pass (dense ops of one step)
        assert same(row["E_SNN ops [pJ]"], snn) and same(row["E_ANN [pJ]"], ann) and same(row["SNN/ANN"], snn / ann)
        totals += [acs, macs, dense, snn, ann]
        for h, mv in exp["movement"].items():
            assert same(row[f"E_SNN {h} [pJ]"], mv[f"snn_pj/{name}"])
            assert same(row[f"E_QNN {h} [pJ]"], mv[f"qnn_pj/{name}"])
            assert same(row[f"SNN/QNN {h}"], mv[f"ratio/{name}"])
            flows = ["sparse" if mv[f"{s}_sparse_dataflow/{name}"] else "dense" for s in ("snn", "qnn")]
            assert row[f"dataflow SNN/QNN {h}"] == "/".join(flows)
    total = layers["total"]
    for col, value in zip(("ACs", "MACs", "dense ops", "E_SNN ops [pJ]", "E_ANN [pJ]"), totals, strict=True):
        assert same(total[col], value), col
    assert same(total["SNN/ANN"], totals[3] / totals[4])
    for h, mv in exp["movement"].items():
        assert same(total[f"E_SNN {h} [pJ]"], mv["snn_pj"]) and same(total[f"E_QNN {h} [pJ]"], mv["qnn_pj"])
        assert same(total[f"break-even rate {h}"], mv["break_even_spike_rate"])
    assert exp["ops"]["fc2"][0] > 0 and exp["ops"]["out"][0] > 0  # the spiking layers really saw spikes

    assert list(neurons) == ["lif1", "lif2", "total"]
    for name, (size, rate, per_sample, dead) in exp["neurons"].items():
        row = neurons[name]
        assert int(row["neurons"]) == size
        assert same(row["spike rate"], rate) and same(row["spikes / sample"], per_sample)
        assert same(row["dead fraction"], dead)
    assert same(neurons["total"]["spike rate"], exp["output_rate"])
    assert f"- time steps T: {T}" in text and f"- test samples: {N_SAMPLES}" in text
    assert "- twin QNN activation bits: 2" in text  # ceil(log2(T + 1)) for T=3

    # the W&B tables hold the same rows at full precision
    table = logger.tables["energy_report/ThreeLayerSNN"]
    assert table["columns"] == cb.report.columns and table["data"] == cb.report.rows
    data = {row[0]: dict(zip(table["columns"], row, strict=True)) for row in table["data"]}
    assert data["fc2"]["ACs"] == pytest.approx(exp["ops"]["fc2"][0], rel=1e-12)
    assert data["total"]["E_SNN typical_neuromorphic [pJ]"] == pytest.approx(
        exp["movement"]["typical_neuromorphic"]["snn_pj"], rel=1e-12
    )
    assert logger.tables["energy_report/ThreeLayerSNN/neurons"]["data"] == cb.report.neuron_rows

    # the probe's hooks are gone
    for m in lit.net.modules():
        assert not m._forward_hooks and not m._forward_pre_hooks


def test_tensorboard_gets_the_markdown_in_its_log_dir(mnist, tmp_path):
    x, y = mnist
    tb = TensorBoardLogger(tmp_path, name="tb", version=0)
    cb, trainer = run_test(LitNet(), x, y, tb, tmp_path, hardware=["theoretical_minimum"])
    assert cb.path.parent == tmp_path / "tb" / "version_0"
    assert "| layer | input |" in cb.path.read_text()
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(tmp_path / "tb" / "version_0"))
    events.Reload()
    assert "energy_report/ThreeLayerSNN/text_summary" in events.Tags()["tensors"]


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"operation_preset": "fp64"}, "operation_preset"),
        ({"hardware": ["gpu"]}, "hardware"),
        ({"hardware": []}, "hardware"),
        ({"twin": "median"}, "twin"),
        ({"batch_dim": 2}, "batch_dim"),
    ],
)
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        EnergyReport(**kwargs)
