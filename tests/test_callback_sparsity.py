"""ProgressiveSparsity: schedule values, monotone neuron masks, silent pruned neurons, exact resume, errors."""

from __future__ import annotations

import lightning.pytorch as pl
import pytest
import torch
from helpers import mnist_prefix  # noqa: E402  (tests/ on sys.path)
from lightning.pytorch.callbacks import Callback, ModelCheckpoint
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from lit_snn.callbacks import ProgressiveSparsity
from lit_snn.callbacks.progressive_sparsity import (
    magnitude_scores,
    neuron_mask,
    num_to_prune,
    prune_neurons,
    restore_pruning,
)
from lit_snn.models.base import PrunableLayer, SNNModel
from lit_snn.neurons import make_neuron

T = 2


class TinySNN(SNNModel):
    """784 -> fc1 -> BN -> LIF (20) -> fc2 -> LIF (12) -> readout 10, time first."""

    input_shape = (784,)
    num_classes = 10

    def __init__(self, backend: str = "custom") -> None:
        super().__init__()
        self.fc1 = nn.Linear(784, 20)
        self.bn1 = nn.BatchNorm1d(20)
        self.lif1 = make_neuron("lif", backend, tau=2.0, threshold=1.0)
        self.fc2 = nn.Linear(20, 12)
        self.lif2 = make_neuron("lif", backend, tau=2.0, threshold=0.5)
        self.out = nn.Linear(12, 10)
        # a fixed "learned" score, to check the importance criterion against a known order
        self.register_buffer("importance2", torch.tensor([5.0, 1, 7, 3, 9, 2, 8, 0, 6, 4, 11, 10]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        t, b = x.shape[:2]
        h = self.bn1(self.fc1(x).flatten(0, 1)).view(t, b, -1)
        return self.out(self.lif2(self.fc2(self.lif1(h))))

    def prunable_layers(self) -> list[PrunableLayer]:
        return [
            PrunableLayer("fc1", [(self.fc1, ("weight", "bias")), (self.bn1, ("weight", "bias"))]),
            PrunableLayer("fc2", [(self.fc2, ("weight", "bias"))], importance=self.importance2),
        ]


class LitNet(pl.LightningModule):
    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def training_step(self, batch, batch_idx):
        x, y = batch
        logits = self.net(x.unsqueeze(0).expand(T, *x.shape)).mean(0)
        return nn.functional.cross_entropy(logits, y)

    def configure_optimizers(self):
        return torch.optim.AdamW(self.parameters(), lr=1e-2)


class MaskRecorder(Callback):
    """Records each layer's living-neuron mask after the pruning callback ran for the epoch."""

    def __init__(self) -> None:
        self.masks: list[dict[str, torch.Tensor]] = []

    def on_train_epoch_start(self, trainer, pl_module):
        self.masks.append({layer.name: neuron_mask(layer).clone() for layer in pl_module.net.prunable_layers()})


def make_trainer(max_epochs: int, callbacks, **kw) -> pl.Trainer:
    return pl.Trainer(
        max_epochs=max_epochs, accelerator="cpu", devices=1, logger=False, enable_progress_bar=False,
        enable_model_summary=False, enable_checkpointing=False, callbacks=callbacks, **kw,
    )


@pytest.fixture(scope="module")
def loader(data_dir):
    x, y = mnist_prefix(data_dir, 64)
    return DataLoader(TensorDataset(x, y), batch_size=32, shuffle=False)


def spike_counts(net: nn.Module, x: torch.Tensor) -> dict[str, torch.Tensor]:
    """Per-neuron spike counts of lif1/lif2 for a batch, summed over time and samples."""
    counts, handles = {}, []
    for name in ("lif1", "lif2"):
        handles.append(getattr(net, name).register_forward_hook(
            lambda m, i, o, name=name: counts.__setitem__(name, o.detach().sum(dim=(0, 1)))
        ))
    with torch.no_grad():
        net(x.unsqueeze(0).expand(T, *x.shape))
    for h in handles:
        h.remove()
    return counts


# -- schedule ---------------------------------------------------------------------------------------------
def test_schedule_values_by_hand():
    lin = ProgressiveSparsity(0.3, 0.9, start_epoch=1, end_epoch=4, schedule="linear")
    assert [lin.sparsity_at(e) for e in range(7)] == pytest.approx([0, 0.3, 0.5, 0.7, 0.9, 0.9, 0.9])
    cub = ProgressiveSparsity(0.3, 0.9, start_epoch=1, end_epoch=4, schedule="cubic")
    # s_f + (s_i - s_f) (1 - p)^3 with p = 0, 1/3, 2/3, 1
    expected = [0, 0.3, 0.9 - 0.6 * 8 / 27, 0.9 - 0.6 / 27, 0.9, 0.9]
    assert [cub.sparsity_at(e) for e in range(6)] == pytest.approx(expected)
    one_step = ProgressiveSparsity(0.3, 0.9, start_epoch=2, end_epoch=2)
    assert [one_step.sparsity_at(e) for e in range(4)] == [0, 0, 0.9, 0.9]
    # the reference code's q(e) = 0.2 + 0.5 e / (E + 1), E = 35
    ref = ProgressiveSparsity(0.2, 0.7, end_epoch=36)
    assert [ref.sparsity_at(e) for e in range(35)] == pytest.approx([0.2 + 0.5 * e / 36 for e in range(35)])


def test_rounding_is_half_up():
    assert [num_to_prune(s, 10) for s in (0.0, 0.25, 0.3, 0.35, 0.45, 0.9)] == [0, 3, 3, 4, 5, 9]
    assert num_to_prune(0.7, 12) == 8 and num_to_prune(0.3, 12) == 4  # 8.4 -> 8, 3.6 -> 4


# -- criteria and monotone masks ----------------------------------------------------------------------------
def test_magnitude_prunes_smallest_rows_and_masks_are_monotone():
    fc = nn.Linear(2, 5)
    with torch.no_grad():
        fc.weight.copy_(torch.tensor([[5.0, 0], [0.5, -0.5], [-3, 0], [1, 0], [2, 2]]))  # L1: 5, 1, 3, 1, 4
        fc.bias.fill_(0.25)
    layer = PrunableLayer("fc", [(fc, ("weight", "bias"))])
    torch.nn.utils.prune.custom_from_mask(fc, "weight", torch.ones(5, 2))
    torch.nn.utils.prune.custom_from_mask(fc, "bias", torch.ones(5))
    assert magnitude_scores(layer).tolist() == [5, 1, 3, 1, 4]
    assert prune_neurons(layer, 2, magnitude_scores(layer)).tolist() == [True, False, True, False, True]
    # the effective weights and biases of pruned neurons are zero, the trained values are kept in *_orig
    assert fc.weight[[1, 3]].abs().sum() == 0 and fc.bias[[1, 3]].abs().sum() == 0
    assert fc.weight_orig[1].tolist() == [0.5, -0.5]
    # new scores that would favour the pruned rows do not revive them; one more neuron goes: the lowest living
    assert prune_neurons(layer, 3, torch.tensor([9.0, 9, 2, 9, 1])).tolist() == [True, False, True, False, False]
    # asking for fewer than already pruned keeps them pruned
    assert prune_neurons(layer, 1, torch.zeros(5)).tolist() == [True, False, True, False, False]


def _fit(loader, max_epochs, cb, record=True):
    torch.manual_seed(0)
    lit = LitNet(TinySNN())
    rec = MaskRecorder()
    make_trainer(max_epochs, [cb, rec] if record else [cb]).fit(lit, loader)
    return lit, rec


def test_achieved_fraction_equals_schedule_each_epoch(loader):
    cb = ProgressiveSparsity(0.3, 0.9, start_epoch=1, end_epoch=4, criterion="auto")
    lit, rec = _fit(loader, 5, cb)
    # k = floor(s N + 1/2) with s = 0, .3, .5, .7, .9: N=20 -> 0, 6, 10, 14, 18; N=12 -> 0, 4, 6, 8, 11
    pruned = {name: [int((~m[name]).sum()) for m in rec.masks] for name in ("fc1", "fc2")}
    assert pruned == {"fc1": [0, 6, 10, 14, 18], "fc2": [0, 4, 6, 8, 11]}
    for earlier, later in zip(rec.masks[:-1], rec.masks[1:], strict=True):  # monotone: nothing revived
        for name in earlier:
            assert not (later[name] & ~earlier[name]).any()
    # auto: fc2 has an importance score, so its pruned neurons are the lowest-importance ones
    order = torch.argsort(lit.net.importance2, stable=True)
    assert set(torch.nonzero(~rec.masks[-1]["fc2"]).flatten().tolist()) == set(order[:11].tolist())
    assert lit.trainer.callback_metrics["sparsity/fc1"].item() == pytest.approx(18 / 20)
    assert lit.trainer.callback_metrics["sparsity/fc2"].item() == pytest.approx(11 / 12)
    assert lit.trainer.callback_metrics["sparsity/target"].item() == pytest.approx(0.9)
    assert cb.num_pruned == {"fc1": 18, "fc2": 11}
    # the masks live in the state_dict, for every pruned parameter
    keys = lit.state_dict().keys()
    for p in ("fc1.weight", "fc1.bias", "bn1.weight", "bn1.bias", "fc2.weight", "fc2.bias"):
        assert f"net.{p}_mask" in keys and f"net.{p}_orig" in keys


def test_pruned_neurons_never_fire(loader):
    lit, rec = _fit(loader, 2, ProgressiveSparsity(0.25, 0.5, end_epoch=1, criterion="magnitude"))
    alive = rec.masks[-1]
    x = next(iter(loader))[0]
    for mode in ("train", "eval"):
        getattr(lit.net, mode)()
        counts = spike_counts(lit.net, x)
        for neuron, layer in (("lif1", "fc1"), ("lif2", "fc2")):
            assert counts[neuron][~alive[layer]].sum().item() == 0.0, (mode, neuron)
            assert counts[neuron][alive[layer]].sum().item() > 0, (mode, neuron)  # the test is not vacuous


def test_layers_by_name_prunes_linear_rows(loader):
    """A plain Linear named in ``layers``: output rows and bias are masked, so its neurons go silent."""
    lit, _ = _fit(loader, 2, ProgressiveSparsity(0.5, 0.5, end_epoch=0, layers=["fc2"]), record=False)
    net = lit.net
    alive = net.fc2.weight_mask.any(dim=1)
    assert int((~alive).sum()) == 6 and not hasattr(net.fc1, "weight_mask")
    assert torch.equal(net.fc2.bias_mask.bool(), alive)
    counts = spike_counts(net.eval(), next(iter(loader))[0])
    assert counts["lif2"][~alive].sum().item() == 0.0


# -- checkpoints ------------------------------------------------------------------------------------------
def test_resumed_run_matches_uninterrupted(loader, tmp_path):
    def callback():
        return ProgressiveSparsity(0.3, 0.9, start_epoch=0, end_epoch=3, criterion="magnitude")

    full, _ = _fit(loader, 4, callback())

    ckpt = ModelCheckpoint(dirpath=tmp_path, save_last=True, save_top_k=0)
    torch.manual_seed(0)
    first = LitNet(TinySNN())
    pl.Trainer(
        max_epochs=2, accelerator="cpu", devices=1, logger=False, enable_progress_bar=False,
        enable_model_summary=False, callbacks=[callback(), ckpt],
    ).fit(first, loader)
    torch.manual_seed(123)  # a fresh model with different weights: everything must come from the checkpoint
    resumed = LitNet(TinySNN())
    cb = callback()
    make_trainer(4, [cb]).fit(resumed, loader, ckpt_path=str(tmp_path / "last.ckpt"))

    assert cb.num_pruned == {"fc1": 18, "fc2": 11}
    a, b = full.state_dict(), resumed.state_dict()
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key

    # outside a Trainer: restore_pruning re-parametrises a fresh net so that the checkpoint loads strictly
    state = torch.load(tmp_path / "last.ckpt", weights_only=False)["state_dict"]
    net = TinySNN()
    assert "fc1.weight" in restore_pruning(net, state, prefix="net.")
    net.load_state_dict({k[len("net."):]: v for k, v in state.items()})
    assert torch.equal(net.fc1.weight_mask, first.net.fc1.weight_mask)


# -- errors -------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"initial_sparsity": -0.1}, "initial_sparsity"),
        ({"final_sparsity": 1.0}, "final_sparsity"),
        ({"initial_sparsity": 0.5, "final_sparsity": 0.4}, "must not exceed"),
        ({"start_epoch": -1}, "start_epoch"),
        ({"start_epoch": 3, "end_epoch": 2}, "end_epoch"),
        ({"schedule": "exp"}, "schedule"),
        ({"criterion": "random"}, "criterion"),
        ({"layers": "fc1"}, "layers"),
        ({"layers": ["fc1", "fc1"]}, "repeat"),
    ],
)
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        ProgressiveSparsity(**kwargs)


def test_instances_on_different_layers_keep_separate_checkpoint_states():
    a, b = ProgressiveSparsity(layers=["fc1"]), ProgressiveSparsity(layers=["fc2"])
    assert a.state_key != b.state_key and a.state_key.startswith("ProgressiveSparsity")


def test_bad_targets_fail_at_setup():
    lit = LitNet(TinySNN())
    with pytest.raises(ValueError, match="'lif1' is a LIF, not a Linear/Conv"):
        ProgressiveSparsity(layers=["lif1"], end_epoch=1).setup(None, lit, "fit")
    with pytest.raises(ValueError, match="'nope' is no such module"):
        ProgressiveSparsity(layers=["nope"], end_epoch=1).setup(None, lit, "fit")
    with pytest.raises(ValueError, match="'fc1' has no learned importance"):
        ProgressiveSparsity(criterion="importance", end_epoch=1).setup(None, lit, "fit")
    with pytest.raises(ValueError, match="declares no prunable_layers"):
        ProgressiveSparsity(end_epoch=1).setup(None, LitNet(nn.Sequential(nn.Linear(2, 2))), "fit")
    with pytest.raises(ValueError, match="net_attr='backbone'"):
        ProgressiveSparsity(end_epoch=1, net_attr="backbone").setup(None, lit, "fit")


# -- APEX-SNN -------------------------------------------------------------------------------------------------
def test_apex_pruned_neurons_never_fire(data_dir):
    """On APEX-SNN (its declared prunable layers, learned importance): 90% of the hidden neurons silenced for good."""
    from functools import partial

    from lit_snn.models import APEXSNN
    from lit_snn.module import SpikingClassifier

    x, y = mnist_prefix(data_dir, 32)

    def time_first(batch):
        xb, yb = torch.utils.data.default_collate(batch)
        return xb.unsqueeze(0).expand(2, *xb.shape).contiguous(), yb

    loader = DataLoader(TensorDataset(x, y), batch_size=32, collate_fn=time_first)
    torch.manual_seed(0)
    lit = SpikingClassifier(net=partial(APEXSNN, hidden_sizes=(64, 40, 20)))
    cb = ProgressiveSparsity(0.3, 0.9, start_epoch=0, end_epoch=1, criterion="importance")
    make_trainer(2, [cb]).fit(lit, loader)
    assert cb.num_pruned == {"layer2": 36, "layer3": 18}  # round(0.9 * 40), round(0.9 * 20)

    net, (xb, _) = lit.net, next(iter(loader))
    layers = {layer.name: layer for layer in net.prunable_layers()}
    for mode in ("train", "eval"):
        getattr(net, mode)()
        with torch.no_grad():
            _, s2, s3 = net.spikes(xb)
        for name, spikes in (("layer2", s2), ("layer3", s3)):
            alive = neuron_mask(layers[name])
            assert int((~alive).sum()) == cb.num_pruned[name]
            assert spikes.sum((0, 1))[~alive].sum().item() == 0.0, (mode, name)
        if mode == "train":
            assert s2.sum() + s3.sum() > 0  # the living neurons do fire: the check above is not vacuous


def test_spiking_classifier_loads_a_pruned_checkpoint(loader, tmp_path):
    """load_from_checkpoint of a pruned run rebuilds the masks: pruned neurons stay silent in the loaded model."""
    import functools

    from lit_snn.module import SpikingClassifier

    class Lit(SpikingClassifier):
        def training_step(self, batch, batch_idx):
            x, y = batch
            return super().training_step((x.unsqueeze(0).expand(T, *x.shape), y), batch_idx)

    ckpt = ModelCheckpoint(dirpath=tmp_path, save_last=True, save_top_k=0)
    model = Lit(net=functools.partial(TinySNN))
    cb = ProgressiveSparsity(0.5, 0.5, start_epoch=0, end_epoch=0, criterion="magnitude")
    pl.Trainer(
        max_epochs=1, accelerator="cpu", devices=1, logger=False, enable_progress_bar=False,
        enable_model_summary=False, callbacks=[cb, ckpt],
    ).fit(model, loader)
    loaded = Lit.load_from_checkpoint(tmp_path / "last.ckpt", net=functools.partial(TinySNN), weights_only=False)
    mask = loaded.net.fc1.weight_mask[:, 0]
    assert int((mask == 0).sum()) == 10  # half of fc1's 20 neurons
    x, _ = next(iter(loader))
    counts = spike_counts(loaded.net.eval(), x)
    assert torch.all(counts["lif1"][mask == 0] == 0)
    assert torch.equal(loaded.net.fc1.weight_orig, model.net.fc1.weight_orig)
