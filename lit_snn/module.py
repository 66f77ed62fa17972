"""``SpikingClassifier``: one LightningModule that trains any lit-snn model (SNN or ANN) as a classifier.

The model is built by the classifier from a *model factory* and a neuron *backend* name::

    SpikingClassifier(net=functools.partial(APEXSNN, hidden=800), backend="snntorch")   # calls net("snntorch")

and in a recipe (jsonargparse "callable with remaining arguments": ``init_args`` hold every constructor
argument except the first, ``backend``, which the classifier supplies, so ``--model.backend`` swaps the neurons
of any recipe)::

    model:
      net: {class_path: lit_snn.models.APEXSNN, init_args: {hidden: 800}}
      backend: custom

Batches are ``(x, y)`` with ``x`` float ``[T, B, *input_shape]`` (time first) and ``y`` long ``[B]``. The model
returns logits ``[T, B, C]`` (one readout per step) or ``[B, C]`` (it aggregates time itself).

Loss (``loss=``), with ``z_t`` the logits at step t and ``CE`` the cross-entropy (label smoothing ``eps`` in
training only; validation and test losses are plain cross-entropy so that recipes compare):

- ``"ce_mean"`` (default): ``CE(mean_t z_t, y)``, cross-entropy on the time-averaged logits. For a ``[B, C]``
  output, ``CE(z, y)``. With a linear readout this equals the readout of the mean spike rates.
- ``"ce_rate"``: ``mean_t CE(z_t, y)``, cross-entropy at every step (snnTorch's ``ce_rate_loss``).
- ``"ce_count"``: ``CE(sum_t z_t, y)``, cross-entropy on summed outputs, e.g. output spike counts
  (snnTorch's ``ce_count_loss``).

``"ce_rate"`` and ``"ce_count"`` need the per-step output ``[T, B, C]``. The prediction is always
``argmax_c mean_t z_t`` (or ``argmax_c z`` for ``[B, C]``).

Mixup (``mixup_alpha > 0``): with probability ``mixup_prob`` a training batch becomes
``x' = lam * x + (1 - lam) * x[:, perm]`` with ``lam ~ Beta(alpha, alpha)`` and a random permutation ``perm`` of
the batch, and the loss becomes ``lam * L(x', y) + (1 - lam) * L(x', y[perm])`` (equal to cross-entropy on the
mixed soft targets, as the loss is linear in the target). Mixing acts on the encoded input: binary (rate or
event) inputs become non-binary. ``train/acc`` on a mixed batch counts the label with the larger share.

Logged: ``train/loss``, ``train/acc`` (per step and per epoch), ``val/loss``, ``val/acc``, ``test/loss``,
``test/acc`` (per epoch; accuracies are batch-size-weighted means, i.e. exact over the epoch).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

import torch
import torch.nn.functional as F
from lightning.pytorch import LightningModule
from lightning.pytorch.cli import LRSchedulerCallable, OptimizerCallable
from torch import nn

from lit_snn.neurons import BACKENDS

LOSSES = ("ce_mean", "ce_rate", "ce_count")
Backend = Literal["custom", "snntorch", "spikingjelly"]
LossName = Literal["ce_mean", "ce_rate", "ce_count"]


def aggregate_logits(output: torch.Tensor) -> torch.Tensor:
    """Time-aggregated logits ``[B, C]``: ``mean_t z_t`` for ``[T, B, C]`` output, the output itself for ``[B, C]``."""
    return output.mean(0) if output.dim() == 3 else output


def classification_loss(
    output: torch.Tensor, target: torch.Tensor, loss: str = "ce_mean", label_smoothing: float = 0.0
) -> torch.Tensor:
    """The classifier's loss on a model output ``[T, B, C]`` or ``[B, C]`` (definitions in the module docstring).

    >>> z = torch.tensor([[[2.0, 0.0]], [[0.0, 0.0]]])           # T=2, B=1, C=2
    >>> round(classification_loss(z, torch.tensor([0])).item(), 4)  # CE([1, 0], 0) = log(1 + e^-1)
    0.3133
    """
    if loss not in LOSSES:
        raise ValueError(f"loss must be one of {LOSSES}, got {loss!r}")
    if output.dim() == 2:
        if loss != "ce_mean":
            raise ValueError(
                f"loss={loss!r} needs the per-step output [T, B, C], but the model returned {list(output.shape)} "
                "(it aggregates time itself); use loss='ce_mean'"
            )
        return F.cross_entropy(output, target, label_smoothing=label_smoothing)
    if loss == "ce_mean":
        return F.cross_entropy(output.mean(0), target, label_smoothing=label_smoothing)
    if loss == "ce_rate":
        steps = output.shape[0]
        return F.cross_entropy(output.flatten(0, 1), target.repeat(steps), label_smoothing=label_smoothing)
    return F.cross_entropy(output.sum(0), target, label_smoothing=label_smoothing)


class SpikingClassifier(LightningModule):
    """Classifier over any time-first model, with the neuron backend chosen by name.

    Args:
        net: builds the model from a backend name: ``net(backend) -> nn.Module``. A model class whose first
            constructor argument is ``backend`` (all lit-snn models), a ``functools.partial`` of one, or any
            callable. It must be picklable (a class or partial, not a lambda) for checkpoints to store it.
        backend: neuron backend passed to ``net``: ``custom`` (pure PyTorch), ``snntorch`` or ``spikingjelly``.
        loss: ``ce_mean`` (default), ``ce_rate`` or ``ce_count``; see the module docstring.
        label_smoothing: label smoothing of the training cross-entropy, in ``[0, 1)``.
        mixup_alpha: ``alpha`` of the mixup ``Beta(alpha, alpha)``; 0 disables mixup.
        mixup_prob: probability that a training batch is mixed (when ``mixup_alpha > 0``).
        optimizer: ``params -> Optimizer`` (default ``torch.optim.Adam`` with its defaults). In YAML:
            ``optimizer: {class_path: torch.optim.AdamW, init_args: {lr: 1e-3, weight_decay: 1e-4}}``.
        lr_scheduler: ``optimizer -> LRScheduler`` or ``None``; stepped every ``lr_scheduler_interval``.
            ``ReduceLROnPlateau`` monitors ``val/loss``.
        lr_scheduler_interval: ``epoch`` or ``step``.
    """

    def __init__(
        self,
        net: Callable[[str], nn.Module],
        backend: Backend = "custom",
        loss: LossName = "ce_mean",
        label_smoothing: float = 0.0,
        mixup_alpha: float = 0.0,
        mixup_prob: float = 0.5,
        optimizer: OptimizerCallable = torch.optim.Adam,
        lr_scheduler: LRSchedulerCallable | None = None,
        lr_scheduler_interval: Literal["epoch", "step"] = "epoch",
    ) -> None:
        super().__init__()
        if backend not in BACKENDS:
            raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
        if loss not in LOSSES:
            raise ValueError(f"loss must be one of {LOSSES}, got {loss!r}")
        if not 0.0 <= label_smoothing < 1.0:
            raise ValueError(f"label_smoothing must lie in [0, 1), got {label_smoothing!r}")
        if not mixup_alpha >= 0.0:
            raise ValueError(f"mixup_alpha must be >= 0 (0 disables mixup), got {mixup_alpha!r}")
        if not 0.0 <= mixup_prob <= 1.0:
            raise ValueError(f"mixup_prob must lie in [0, 1], got {mixup_prob!r}")
        if lr_scheduler_interval not in ("epoch", "step"):
            raise ValueError(f"lr_scheduler_interval must be 'epoch' or 'step', got {lr_scheduler_interval!r}")
        if isinstance(net, nn.Module) or not callable(net):
            raise TypeError(
                "net must build the model from a backend name (a model class or functools.partial, called as "
                f"net(backend)), got {type(net).__name__}; to wrap a ready model use net=lambda backend: model"
            )
        self.save_hyperparameters()
        self.backend = backend
        self.loss_name = loss
        self.label_smoothing = label_smoothing
        self.mixup_alpha = mixup_alpha
        self.mixup_prob = mixup_prob
        self._optimizer_factory = optimizer
        self._lr_scheduler_factory = lr_scheduler
        self.lr_scheduler_interval = lr_scheduler_interval
        self.net = net(backend)
        if not isinstance(self.net, nn.Module):
            raise TypeError(f"net({backend!r}) must return an nn.Module, got {type(self.net).__name__}")

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Re-apply the prune masks of a pruned checkpoint (ProgressiveSparsity) before its weights load.

        A pruned layer stores ``weight_orig`` and ``weight_mask`` instead of ``weight``; without this,
        ``SpikingClassifier.load_from_checkpoint`` of a pruned run fails on those keys.
        """
        from lit_snn.callbacks.progressive_sparsity import restore_pruning

        restore_pruning(self, checkpoint["state_dict"])

    # ------------------------------------------------------------------ checks
    @property
    def input_shape(self) -> tuple[int, ...] | None:
        """The model's per-sample input shape (without T and B), when it declares one."""
        shape = getattr(self.net, "input_shape", None)
        return tuple(shape) if shape else None

    def setup(self, stage: str) -> None:
        """Fail before the first batch when the datamodule and the model disagree (shape, classes, T)."""
        datamodule = getattr(self.trainer, "datamodule", None) if self._trainer is not None else None
        if datamodule is None:
            return
        steps = getattr(datamodule, "num_steps", None)
        if steps is not None and steps < 1:
            raise ValueError(f"the datamodule's number of time steps T (num_steps) must be >= 1, got {steps!r}")
        data_shape = getattr(datamodule, "input_shape", None)
        if data_shape is not None and self.input_shape is not None and tuple(data_shape) != self.input_shape:
            raise ValueError(
                f"input shape mismatch: {type(self.net).__name__} expects samples of shape {list(self.input_shape)}, "
                f"but {type(datamodule).__name__} gives {list(data_shape)}"
            )
        data_classes = getattr(datamodule, "num_classes", None)
        net_classes = getattr(self.net, "num_classes", None)
        if data_classes and net_classes and data_classes != net_classes:
            raise ValueError(
                f"class count mismatch: {type(self.net).__name__} has {net_classes} outputs, "
                f"but {type(datamodule).__name__} has {data_classes} classes"
            )

    def _check_input(self, x: torch.Tensor) -> None:
        shape = self.input_shape
        if shape is not None and (x.dim() != len(shape) + 2 or tuple(x.shape[2:]) != shape):
            expected = ", ".join(["T", "B", *map(str, shape)])
            raise ValueError(
                f"input shape mismatch: {type(self.net).__name__} expects x of shape [{expected}] (time first), "
                f"got {list(x.shape)}"
            )
        if x.dim() < 2:
            raise ValueError(f"x must be time-first [T, B, ...], got shape {list(x.shape)}")
        if x.shape[0] < 1:
            raise ValueError(f"the number of time steps T (x.shape[0]) must be >= 1, got {x.shape[0]}")

    def _check_output(self, output: torch.Tensor, batch_size: int) -> None:
        if output.dim() not in (2, 3) or output.shape[-2] != batch_size:
            raise ValueError(
                f"{type(self.net).__name__} must return logits [T, B, C] or [B, C] with B={batch_size}, "
                f"got {list(output.shape)}"
            )

    # ------------------------------------------------------------------ steps
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The model's output on ``x[T, B, *input_shape]``: logits ``[T, B, C]`` or ``[B, C]``."""
        self._check_input(x)
        output = self.net(x)
        self._check_output(output, x.shape[1])
        return output

    def _mix(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, float]:
        """Mixup of a time-first batch: ``(x', y, y[perm], lam)``; ``lam = 1`` when the batch is not mixed."""
        if self.mixup_alpha <= 0 or torch.rand(()).item() >= self.mixup_prob:
            return x, y, y, 1.0
        lam = float(torch.distributions.Beta(self.mixup_alpha, self.mixup_alpha).sample())
        perm = torch.randperm(x.shape[1], device=x.device)
        if x.stride(0) == 0:  # a time-constant (direct-coded) view: mix one step, keep it constant over time
            step = lam * x[0] + (1.0 - lam) * x[0, perm]
            return step.unsqueeze(0).expand_as(x), y, y[perm], lam
        return lam * x + (1.0 - lam) * x[:, perm], y, y[perm], lam

    def _check_loss(self, loss: torch.Tensor, stage: str, batch_idx: int) -> None:
        if not torch.isfinite(loss):
            raise FloatingPointError(
                f"non-finite {stage} loss {loss.item()} at epoch {self.current_epoch}, batch {batch_idx} "
                f"(global step {self.global_step}); lower the learning rate or enable gradient clipping "
                "(trainer.gradient_clip_val)"
            )

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor:
        x, y = batch
        x, y_a, y_b, lam = self._mix(x, y)
        output = self(x)
        loss = lam * classification_loss(output, y_a, self.loss_name, self.label_smoothing)
        if lam < 1.0:
            loss = loss + (1.0 - lam) * classification_loss(output, y_b, self.loss_name, self.label_smoothing)
        self._check_loss(loss, "training", batch_idx)
        target = y_a if lam >= 0.5 else y_b
        acc = (aggregate_logits(output).argmax(-1) == target).float().mean()
        self.log("train/loss", loss, on_step=True, on_epoch=True, prog_bar=True, batch_size=y.shape[0])
        self.log("train/acc", acc, on_step=True, on_epoch=True, prog_bar=True, batch_size=y.shape[0])
        return loss

    def _evaluate(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int, stage: str) -> torch.Tensor:
        x, y = batch
        output = self(x)
        loss = classification_loss(output, y, self.loss_name, 0.0)
        self._check_loss(loss, stage, batch_idx)
        acc = (aggregate_logits(output).argmax(-1) == y).float().mean()
        self.log(f"{stage}/loss", loss, on_epoch=True, prog_bar=True, batch_size=y.shape[0], sync_dist=True)
        self.log(f"{stage}/acc", acc, on_epoch=True, prog_bar=True, batch_size=y.shape[0], sync_dist=True)
        return loss

    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor:
        return self._evaluate(batch, batch_idx, "val")

    def test_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor:
        return self._evaluate(batch, batch_idx, "test")

    def predict_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        """Time-aggregated logits ``[B, C]`` (``mean_t z_t``); the predicted class is their argmax."""
        x = batch[0] if isinstance(batch, (tuple, list)) else batch
        return aggregate_logits(self(x))

    # ------------------------------------------------------------------ optimisation
    def configure_optimizers(self) -> Any:
        optimizer = self._optimizer_factory(self.parameters())
        if self._lr_scheduler_factory is None:
            return optimizer
        scheduler = self._lr_scheduler_factory(optimizer)
        config: dict[str, Any] = {"scheduler": scheduler, "interval": self.lr_scheduler_interval}
        if isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
            config["monitor"] = "val/loss"
        return {"optimizer": optimizer, "lr_scheduler": config}


__all__ = ["LOSSES", "SpikingClassifier", "aggregate_logits", "classification_loss"]
