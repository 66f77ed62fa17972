"""SpikingClassifier: losses and logged values against hand computations, mixup, and early, clear errors.

The toy models and datamodule here are also used by tests/test_cli.py (as ``test_module.<name>`` class paths).
"""

from __future__ import annotations

import math
import sys

import lightning.pytorch as pl
import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset

from lit_snn.module import SpikingClassifier, aggregate_logits, classification_loss
from lit_snn.neurons import make_neuron


class EyeNet(nn.Module):
    """Logits ``z_t = x_t @ W`` per step (``x[T, B, C]``), with ``W`` a ``C x C`` parameter (identity at start)."""

    def __init__(self, backend: str = "custom", num_classes: int = 4) -> None:
        super().__init__()
        self.backend = backend
        self.input_shape = (num_classes,)
        self.num_classes = num_classes
        self.weight = nn.Parameter(torch.eye(num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x @ self.weight


class TinySNN(nn.Module):
    """Linear -> LIF -> Linear, on any backend (for the backend-swap test)."""

    def __init__(self, backend: str = "custom", num_classes: int = 4, hidden: int = 8) -> None:
        super().__init__()
        self.input_shape = (num_classes,)
        self.num_classes = num_classes
        self.fc = nn.Linear(num_classes, hidden)
        self.lif = make_neuron("lif", backend, tau=2.0, threshold=0.5)
        self.out = nn.Linear(hidden, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.lif(self.fc(x)))


class OneHotSet(Dataset):
    """Sample i is ``(onehot(y_i) repeated over T steps [T, C], y_i)``."""

    def __init__(self, labels: list[int], num_classes: int, num_steps: int) -> None:
        self.labels, self.num_classes, self.num_steps = labels, num_classes, num_steps

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        x = F.one_hot(torch.tensor(self.labels[i]), self.num_classes).float()
        return x.expand(self.num_steps, -1), torch.tensor(self.labels[i])


def time_first_collate(items: list) -> tuple[torch.Tensor, torch.Tensor]:
    return torch.stack([x for x, _ in items], 1), torch.stack([y for _, y in items])


class OneHotData(pl.LightningDataModule):
    """Every split holds the ``num_classes`` one-hot samples (labels 0..C-1), batches ``([T, B, C], [B])``."""

    def __init__(self, num_classes: int = 4, num_steps: int = 2, batch_size: int = 4) -> None:
        super().__init__()
        self.num_classes, self.num_steps, self.batch_size = num_classes, num_steps, batch_size
        self.input_shape = (num_classes,)

    def _loader(self) -> DataLoader:
        data = OneHotSet(list(range(self.num_classes)), self.num_classes, self.num_steps)
        return DataLoader(data, batch_size=self.batch_size, collate_fn=time_first_collate)

    train_dataloader = val_dataloader = test_dataloader = predict_dataloader = _loader


def quiet_trainer(**kw) -> pl.Trainer:
    return pl.Trainer(
        accelerator="cpu", logger=False, enable_checkpointing=False, enable_progress_bar=False,
        enable_model_summary=False, **kw,
    )


def ce_by_hand(logits: list[float], target: int, smoothing: float = 0.0) -> float:
    """-sum_c q_c log p_c with q = (1-eps) onehot + eps/C, p = softmax(logits), in plain Python."""
    log_z = math.log(sum(math.exp(v) for v in logits))
    log_p = [v - log_z for v in logits]
    q = [(1 - smoothing) * (c == target) + smoothing / len(logits) for c in range(len(logits))]
    return -sum(qc * lp for qc, lp in zip(q, log_p, strict=True))


# z[t][b] for T=2, B=2, C=3
Z = [[[1.0, 0.0, -1.0], [0.5, 2.0, 0.0]], [[3.0, 1.0, 0.0], [0.0, -1.0, 1.0]]]
Y = [0, 2]


def test_losses_equal_hand_computation() -> None:
    z, y = torch.tensor(Z), torch.tensor(Y)
    mean = [[(Z[0][b][c] + Z[1][b][c]) / 2 for c in range(3)] for b in range(2)]
    total = [[Z[0][b][c] + Z[1][b][c] for c in range(3)] for b in range(2)]
    want_mean = sum(ce_by_hand(mean[b], Y[b]) for b in range(2)) / 2
    want_rate = sum(ce_by_hand(Z[t][b], Y[b]) for t in range(2) for b in range(2)) / 4
    want_count = sum(ce_by_hand(total[b], Y[b]) for b in range(2)) / 2
    want_smooth = sum(ce_by_hand(mean[b], Y[b], 0.1) for b in range(2)) / 2
    assert classification_loss(z, y, "ce_mean").item() == pytest.approx(want_mean, rel=1e-6)
    assert classification_loss(z, y, "ce_rate").item() == pytest.approx(want_rate, rel=1e-6)
    assert classification_loss(z, y, "ce_count").item() == pytest.approx(want_count, rel=1e-6)
    assert classification_loss(z, y, "ce_mean", 0.1).item() == pytest.approx(want_smooth, rel=1e-6)
    # a model that aggregates time itself: [B, C] output, plain cross-entropy
    assert classification_loss(z.mean(0), y).item() == pytest.approx(want_mean, rel=1e-6)
    assert aggregate_logits(z).argmax(-1).tolist() == [0, 1]  # mean logits [2, .5, -.5] and [.25, .5, .5]


def test_loss_options_need_per_step_output() -> None:
    with pytest.raises(ValueError, match=r"ce_rate.*\[T, B, C\].*\[2, 3\]"):
        classification_loss(torch.zeros(2, 3), torch.tensor([0, 1]), "ce_rate")
    with pytest.raises(ValueError, match="loss must be one of"):
        classification_loss(torch.zeros(1, 2, 3), torch.tensor([0, 1]), "mse")


def test_logged_loss_and_accuracy_equal_hand_computation() -> None:
    """val/test loss and acc over two batches of unequal size (3 + 1) are exact epoch means."""
    # W = identity except row 3 -> [2, 0, 0, 0]: samples 0..2 correct, sample 3 predicted as class 0
    model = SpikingClassifier(EyeNet)
    with torch.no_grad():
        model.net.weight[3] = torch.tensor([2.0, 0.0, 0.0, 0.0])
    loader = DataLoader(OneHotSet([0, 1, 2, 3], 4, 3), batch_size=3, collate_fn=time_first_collate)
    rows = [[1.0, 0, 0, 0], [0, 1.0, 0, 0], [0, 0, 1.0, 0], [2.0, 0, 0, 0]]
    want_loss = sum(ce_by_hand(rows[i], i) for i in range(4)) / 4
    trainer = quiet_trainer()
    (val,) = trainer.validate(model, loader, verbose=False)
    (test,) = trainer.test(model, loader, verbose=False)
    assert val["val/acc"] == pytest.approx(0.75) and test["test/acc"] == pytest.approx(0.75)
    assert val["val/loss"] == pytest.approx(want_loss, rel=1e-5)
    assert test["test/loss"] == pytest.approx(want_loss, rel=1e-5)
    (pred,) = trainer.predict(model, DataLoader(OneHotSet([1], 4, 3), collate_fn=time_first_collate))
    assert pred.tolist() == [[0.0, 1.0, 0.0, 0.0]]  # mean over T of the logits


def test_training_step_loss_uses_label_smoothing_and_logs_keys() -> None:
    model = SpikingClassifier(EyeNet, label_smoothing=0.2, optimizer=lambda p: torch.optim.SGD(p, lr=0.0))
    data = OneHotData(num_classes=4, num_steps=2, batch_size=4)
    trainer = quiet_trainer(max_epochs=1, limit_val_batches=0)
    trainer.fit(model, data)
    want = sum(ce_by_hand([float(c == i) for c in range(4)], i, 0.2) for i in range(4)) / 4
    assert trainer.callback_metrics["train/loss"].item() == pytest.approx(want, rel=1e-6)
    assert trainer.callback_metrics["train/acc"].item() == 1.0


def test_mixup_mixes_inputs_and_targets() -> None:
    torch.manual_seed(3)
    model = SpikingClassifier(EyeNet, mixup_alpha=0.4, mixup_prob=1.0)
    x = torch.randn(2, 6, 4)
    y = torch.arange(6)  # distinct labels reveal the permutation
    mixed, y_a, y_b, lam = model._mix(x, y)
    assert 0.0 < lam < 1.0 and sorted(y_b.tolist()) == list(range(6)) and torch.equal(y_a, y)
    torch.testing.assert_close(mixed, lam * x + (1 - lam) * x[:, y_b])
    # the mixed loss equals cross-entropy on the mixed soft targets (an independent formula)
    z = torch.randn(2, 6, 6)
    loss = lam * classification_loss(z, y_a) + (1 - lam) * classification_loss(z, y_b)
    soft = lam * F.one_hot(y_a, 6).float() + (1 - lam) * F.one_hot(y_b, 6).float()
    torch.testing.assert_close(loss, F.cross_entropy(z.mean(0), soft))
    off = SpikingClassifier(EyeNet, mixup_alpha=0.4, mixup_prob=0.0)
    assert off._mix(x, y)[3] == 1.0
    # a direct-coded batch (stride-0 view over time) stays a time-constant view, with the same mixed values
    static = torch.randn(6, 4).unsqueeze(0).expand(3, 6, 4)
    torch.manual_seed(5)
    mixed, _, y_b, lam = model._mix(static, y)
    assert mixed.stride(0) == 0
    torch.testing.assert_close(mixed, lam * static + (1 - lam) * static[:, y_b])


def test_optimizer_and_scheduler_from_arguments() -> None:
    model = SpikingClassifier(
        EyeNet,
        optimizer=lambda p: torch.optim.AdamW(p, lr=0.5, weight_decay=0.1),
        lr_scheduler=lambda o: torch.optim.lr_scheduler.StepLR(o, step_size=1, gamma=0.5),
        lr_scheduler_interval="step",
    )
    config = model.configure_optimizers()
    assert isinstance(config["optimizer"], torch.optim.AdamW) and config["optimizer"].defaults["lr"] == 0.5
    assert config["lr_scheduler"]["interval"] == "step"
    assert isinstance(SpikingClassifier(EyeNet).configure_optimizers(), torch.optim.Adam)


@pytest.mark.parametrize("backend", ["custom", "snntorch", "spikingjelly"])
def test_backend_is_passed_to_the_model(backend: str) -> None:
    model = SpikingClassifier(TinySNN, backend=backend)
    assert model.net.lif.backend == backend
    assert model(torch.rand(3, 2, 4)).shape == (3, 2, 4)


# ------------------------------------------------------------------ bad input fails early and clearly
def test_unknown_backend() -> None:
    expected = r"backend must be one of \('custom', 'snntorch', 'spikingjelly'\), got 'nest'"
    with pytest.raises(ValueError, match=expected):
        SpikingClassifier(EyeNet, backend="nest")


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="loss must be one of"):
        SpikingClassifier(EyeNet, loss="hinge")
    with pytest.raises(ValueError, match="label_smoothing must lie in"):
        SpikingClassifier(EyeNet, label_smoothing=1.0)
    with pytest.raises(ValueError, match="mixup_prob must lie in"):
        SpikingClassifier(EyeNet, mixup_prob=2.0)
    with pytest.raises(TypeError, match="net must build the model from a backend name"):
        SpikingClassifier(EyeNet())


def test_input_shape_mismatch_names_expected_and_given() -> None:
    model = SpikingClassifier(EyeNet)
    with pytest.raises(ValueError, match=r"expects x of shape \[T, B, 4\].*got \[2, 3, 5\]"):
        model(torch.zeros(2, 3, 5))
    with pytest.raises(ValueError, match=r"expects x of shape \[T, B, 4\].*got \[3, 4\]"):
        model(torch.zeros(3, 4))  # forgot the time dimension


def test_zero_time_steps() -> None:
    model = SpikingClassifier(EyeNet)
    with pytest.raises(ValueError, match=r"time steps T .* must be >= 1, got 0"):
        model(torch.zeros(0, 3, 4))
    trainer = quiet_trainer(max_epochs=1)
    with pytest.raises(ValueError, match=r"num_steps\) must be >= 1, got 0"):
        trainer.fit(model, OneHotData(num_steps=0))


def test_datamodule_model_mismatch_fails_before_training() -> None:
    model = SpikingClassifier(lambda backend: EyeNet(backend, num_classes=4))
    with pytest.raises(ValueError, match=r"EyeNet expects samples of shape \[4\], but OneHotData gives \[5\]"):
        quiet_trainer(max_epochs=1).fit(model, OneHotData(num_classes=5))


def test_non_finite_loss_names_the_step() -> None:
    model = SpikingClassifier(EyeNet, optimizer=lambda p: torch.optim.SGD(p, lr=0.0))
    with torch.no_grad():
        model.net.weight[0, 0] = float("nan")
    trainer = quiet_trainer(max_epochs=1, limit_val_batches=0)
    with pytest.raises(FloatingPointError, match=r"non-finite training loss nan at epoch 0, batch 0 \(global step 0\)"):
        trainer.fit(model, OneHotData())


def test_importing_lit_snn_does_not_import_lightning() -> None:
    import subprocess

    code = "import sys, lit_snn; assert not any(m.startswith('lightning') for m in sys.modules), 'lightning loaded'"
    subprocess.run([sys.executable, "-c", code], check=True)
