r"""Progressive neuron-level (structured) sparsity: silence a growing share of each layer's neurons.

A *neuron group* is a :class:`~lit_snn.models.PrunableLayer`: the parameters whose dim-0 rows feed its ``N``
neurons (synaptic weight and bias, BatchNorm affine, a residual layer's rows, ...). Pruning neuron ``j`` zeroes
row ``j`` of every one of them, so its input current is exactly 0 and, thresholds being positive, it never fires,
in training and in evaluation alike.

Schedule (epoch ``e``, set at the start of each training epoch; ``s_i`` initial, ``s_f`` final sparsity, ``e_0``
start and ``e_1`` end epoch, progress ``p = (e - e_0) / (e_1 - e_0)``, ``p = 1`` when ``e_1 = e_0``)::

    s(e) = 0                                   e < e_0      (nothing pruned before the start epoch)
    s(e) = s_i + (s_f - s_i) * p               linear
    s(e) = s_f + (s_i - s_f) * (1 - p)^3       cubic (Zhu & Gupta 2017, "To prune, or not to prune")
    s(e) = s_f                                 e > e_1

Number of pruned neurons of a group of ``N``: ``k(e) = floor(s(e) * N + 1/2)`` (round half up; ``s * N`` is first
rounded to 6 decimals to absorb floating-point noise), so the achieved fraction ``k / N`` is within ``1 / (2N)``
of the schedule. Masks are monotone: a pruned neuron stays pruned; each epoch adds the ``k(e) - k(e-1)``
lowest-scoring living neurons (ties: lower index first). Scores (higher = keep):

- ``magnitude``: ``sum_W ||W[j]||_1`` over the group's synaptic (Linear/Conv) weights, i.e. the L1 norm of the
  incoming weight rows;
- ``importance``: the group's learned ``PrunableLayer.importance`` (an error for a group without one);
- ``auto``: ``importance`` where the group has one, else ``magnitude`` (the choice per group is logged at setup).

Masks are :mod:`torch.nn.utils.prune` re-parametrisations (``custom_from_mask``): each pruned parameter ``p``
becomes ``p_orig`` (the trained parameter) and a ``p_mask`` buffer, so the masks are in the model's
``state_dict`` and in every checkpoint. The callback installs all-ones masks in :meth:`setup` (every stage), i.e.
before Lightning loads a checkpoint, so ``trainer.fit/validate/test(model, ckpt_path=...)`` loads pruned
checkpoints into a fresh model; outside a Trainer use :func:`restore_pruning` before ``load_state_dict``.

Lightning's ``ModelPruning`` does not fit this job: it decides per parameter tensor (a neuron's rows in several
tensors need one decision), has no learned-importance criterion and, by default, saves checkpoints with the pruning
made permanent, which drops the masks that a resumed run needs.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.utils.prune as torch_prune
from lightning.pytorch import LightningModule, Trainer
from lightning.pytorch.callbacks import Callback
from torch import nn

from lit_snn.models.base import SYNAPTIC_TYPES, PrunableLayer

log = logging.getLogger(__name__)

SCHEDULES = ("linear", "cubic")
CRITERIA = ("magnitude", "importance", "auto")


def resolve_net(pl_module: nn.Module, net_attr: str | None) -> nn.Module:
    """The network inside a LightningModule: ``pl_module.<net_attr>`` (dotted path allowed).

    ``net_attr=None`` takes ``pl_module.net`` when the module has an ``nn.Module`` attribute ``net`` (the
    :class:`lit_snn.SpikingClassifier` convention), else ``pl_module`` itself; ``net_attr=""`` is ``pl_module``.
    """
    if net_attr is None:
        net = getattr(pl_module, "net", None)
        return net if isinstance(net, nn.Module) else pl_module
    obj: Any = pl_module
    for part in filter(None, net_attr.split(".")):
        if not hasattr(obj, part):
            raise ValueError(
                f"net_attr={net_attr!r}: {type(obj).__name__} has no attribute {part!r}; pass the attribute path "
                "of the network inside the LightningModule (\"\" for the LightningModule itself)"
            )
        obj = getattr(obj, part)
    if not isinstance(obj, nn.Module):
        raise ValueError(f"net_attr={net_attr!r} names a {type(obj).__name__}, not an nn.Module")
    return obj


def _param_names(module: nn.Module, names: Sequence[str]) -> list[str]:
    """The names of ``module`` whose tensor is not ``None`` (a Linear without bias has ``bias = None``)."""
    return [n for n in names if getattr(module, n, None) is not None]


def _mask_of(module: nn.Module, name: str) -> torch.Tensor:
    mask = getattr(module, f"{name}_mask", None)
    if mask is None:
        raise RuntimeError(f"{type(module).__name__}.{name} has no pruning mask; was the callback's setup() run?")
    return mask


def _ensure_reparametrised(module: nn.Module, name: str) -> None:
    """Give ``module.<name>`` a prune re-parametrisation with an all-ones mask unless it already has one."""
    if hasattr(module, f"{name}_mask"):
        return
    param = getattr(module, name)
    torch_prune.custom_from_mask(module, name, torch.ones_like(param, dtype=torch.bool))


def _refresh(module: nn.Module, name: str) -> None:
    """Recompute ``module.<name> = <name>_orig * <name>_mask`` now (prune does it again at every forward)."""
    with torch.no_grad():
        setattr(module, name, getattr(module, f"{name}_orig") * _mask_of(module, name))


def neuron_mask(layer: PrunableLayer) -> torch.Tensor:
    """``[N]`` bool, True for living neurons: row ``j`` is nonzero in every one of the group's masks."""
    alive = None
    for module, names in layer.inputs:
        for name in _param_names(module, names):
            rows = _mask_of(module, name).reshape(layer.num_neurons, -1).any(dim=1)
            alive = rows if alive is None else alive & rows
    assert alive is not None  # PrunableLayer guarantees at least one parameter
    return alive


def magnitude_scores(layer: PrunableLayer) -> torch.Tensor:
    """``[N]``: the L1 norm of neuron ``j``'s incoming rows, summed over the group's synaptic weights."""
    score = None
    for module, names in layer.inputs:
        if isinstance(module, SYNAPTIC_TYPES) and "weight" in names:
            w = getattr(module, "weight_orig", module.weight) * getattr(module, "weight_mask", 1.0)
            rows = w.detach().reshape(layer.num_neurons, -1).abs().sum(dim=1)
            score = rows if score is None else score + rows
    if score is None:
        raise ValueError(
            f"criterion 'magnitude' needs a Linear/Conv 'weight' among the inputs of prunable layer {layer.name!r}; "
            f"it has {[(type(m).__name__, names) for m, names in layer.inputs]}"
        )
    return score


def num_to_prune(sparsity: float, num_neurons: int) -> int:
    """``floor(sparsity * N + 1/2)`` (round half up), with ``sparsity * N`` rounded to 6 decimals first."""
    return int(math.floor(round(sparsity * num_neurons, 6) + 0.5))


def prune_neurons(layer: PrunableLayer, num_pruned: int, scores: torch.Tensor) -> torch.Tensor:
    """Prune the group down to ``N - num_pruned`` living neurons, keeping every earlier pruning (monotone).

    The already-pruned neurons stay pruned; the remaining ``num_pruned - already`` are the lowest-``scores``
    living neurons (ties: lower index first). Returns the new ``[N]`` living-neuron mask.
    """
    alive = neuron_mask(layer)
    if num_pruned > (~alive).sum().item():
        if not torch.isfinite(scores).all():
            raise ValueError(f"prunable layer {layer.name!r}: the pruning scores contain NaN or inf")
        key = scores.detach().to(torch.float64).cpu().masked_fill(~alive.cpu(), -math.inf)
        order = torch.argsort(key, stable=True)
        alive = torch.ones_like(alive)
        alive[order[:num_pruned].to(alive.device)] = False
    for module, names in layer.inputs:
        for name in _param_names(module, names):
            mask = _mask_of(module, name)
            with torch.no_grad():
                mask.mul_(alive.to(mask.dtype).reshape(-1, *([1] * (mask.dim() - 1))))
            _refresh(module, name)
    return alive


def restore_pruning(module: nn.Module, state_dict: dict[str, torch.Tensor], prefix: str = "") -> list[str]:
    """Re-parametrise ``module`` like the pruned model that wrote ``state_dict``, so that it loads.

    For every ``<path>.<name>_mask`` key (with a matching ``_orig`` key) under ``prefix``, the submodule at
    ``<path>`` gets ``custom_from_mask(submodule, name, mask)``. Call it before ``module.load_state_dict``, e.g. in
    a LightningModule's ``on_load_checkpoint`` with ``checkpoint["state_dict"]``. Returns the re-parametrised
    parameter names.
    """
    done = []
    for key, mask in state_dict.items():
        if not key.startswith(prefix) or not key.endswith("_mask") or key[: -len("_mask")] + "_orig" not in state_dict:
            continue
        path, _, name = key[len(prefix) : -len("_mask")].rpartition(".")
        sub = module.get_submodule(path)
        if not hasattr(sub, f"{name}_mask"):
            torch_prune.custom_from_mask(sub, name, mask)
            done.append(f"{path}.{name}" if path else name)
    return done


class ProgressiveSparsity(Callback):
    r"""Silence a growing share of each targeted neuron group, from ``initial_sparsity`` to ``final_sparsity``.

    See the module docstring for the schedule, the rounding and the criteria. The masks are applied at
    ``on_train_epoch_start`` and logged as ``sparsity/<layer>`` (achieved fraction of pruned neurons) and
    ``sparsity/target`` (the schedule's ``s(e)``).

    Args:
        initial_sparsity: ``s_i``, the share pruned at ``start_epoch`` (``0 <= s_i <= s_f``).
        final_sparsity: ``s_f``, the share pruned from ``end_epoch`` on (``s_f < 1``).
        start_epoch: first epoch (0-based) that prunes; nothing is pruned before it.
        end_epoch: epoch at which ``s_f`` is reached; ``None``: the last epoch, ``trainer.max_epochs - 1``
            (set it explicitly when a resumed run may change ``max_epochs``).
        schedule: ``"linear"`` or ``"cubic"``.
        criterion: ``"magnitude"``, ``"importance"`` or ``"auto"``.
        layers: names of the groups to prune. A name is looked up first among the model's
            ``prunable_layers()``, then as the qualified name of a Linear/Conv module of the network, which is
            pruned by its output rows (``weight`` and ``bias``) — that silences a neuron only if nothing between
            the layer and the neuron adds a constant (e.g. a BatchNorm's shift: declare such groups in
            ``prunable_layers()``). ``None``: every group of ``prunable_layers()``.
        net_attr: where the network lives in the LightningModule (see :func:`resolve_net`).

    Example (the APEX-SNN recipe: 30% -> 90% of the hidden neurons over epochs 0..29)::

        trainer = Trainer(callbacks=[ProgressiveSparsity(0.3, 0.9, start_epoch=0, end_epoch=29)])

    The schedule of the reference code, ``q(e) = 0.2 + 0.5 e / (E + 1)``, is
    ``ProgressiveSparsity(0.2, 0.7, end_epoch=E + 1)``.
    """

    def __init__(
        self,
        initial_sparsity: float = 0.3,
        final_sparsity: float = 0.9,
        start_epoch: int = 0,
        end_epoch: int | None = None,
        schedule: str = "linear",
        criterion: str = "magnitude",
        layers: Sequence[str] | None = None,
        net_attr: str | None = None,
    ) -> None:
        for arg, value in (("initial_sparsity", initial_sparsity), ("final_sparsity", final_sparsity)):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value < 1.0:
                raise ValueError(f"{arg} must be a number in [0, 1), got {value!r}")
        if initial_sparsity > final_sparsity:
            raise ValueError(
                f"initial_sparsity ({initial_sparsity}) must not exceed final_sparsity ({final_sparsity}): "
                "masks are monotone, a pruned neuron is never revived"
            )
        if isinstance(start_epoch, bool) or not isinstance(start_epoch, int) or start_epoch < 0:
            raise ValueError(f"start_epoch must be an int >= 0, got {start_epoch!r}")
        if end_epoch is not None and (
            isinstance(end_epoch, bool) or not isinstance(end_epoch, int) or end_epoch < start_epoch
        ):
            raise ValueError(f"end_epoch must be None or an int >= start_epoch ({start_epoch}), got {end_epoch!r}")
        if schedule not in SCHEDULES:
            raise ValueError(f"schedule must be one of {SCHEDULES}, got {schedule!r}")
        if criterion not in CRITERIA:
            raise ValueError(f"criterion must be one of {CRITERIA}, got {criterion!r}")
        if layers is not None:
            if isinstance(layers, str) or not all(isinstance(n, str) for n in layers) or not layers:
                raise ValueError(f"layers must be None or a non-empty list of names, got {layers!r}")
            if len(set(layers)) != len(layers):
                raise ValueError(f"layers must not repeat a name, got {list(layers)}")
        self.initial_sparsity = float(initial_sparsity)
        self.final_sparsity = float(final_sparsity)
        self.start_epoch = start_epoch
        self.end_epoch = end_epoch
        self.schedule = schedule
        self.criterion = criterion
        self.layers = None if layers is None else list(layers)
        self.net_attr = net_attr
        self._end_epoch: int | None = end_epoch
        self._loaded_state: dict[str, Any] | None = None
        #: after each pruning epoch: layer name -> achieved fraction of pruned neurons
        self.achieved: dict[str, float] = {}
        #: after each pruning epoch: layer name -> number of pruned neurons
        self.num_pruned: dict[str, int] = {}
        self.last_epoch: int | None = None

    # -- schedule ---------------------------------------------------------------------------------------
    def sparsity_at(self, epoch: int) -> float:
        """The target share ``s(epoch)`` of pruned neurons (module docstring); needs ``end_epoch`` resolved."""
        if self._end_epoch is None:
            raise RuntimeError("end_epoch=None is resolved from trainer.max_epochs in setup(); call setup first")
        if epoch < self.start_epoch:
            return 0.0
        span = self._end_epoch - self.start_epoch
        p = 1.0 if span == 0 else min(1.0, (epoch - self.start_epoch) / span)
        s_i, s_f = self.initial_sparsity, self.final_sparsity
        if p == 1.0:
            return s_f
        if self.schedule == "linear":
            return s_i + (s_f - s_i) * p
        return s_f + (s_i - s_f) * (1.0 - p) ** 3

    # -- targets ----------------------------------------------------------------------------------------
    def targets(self, pl_module: nn.Module) -> list[PrunableLayer]:
        """The neuron groups to prune, resolved afresh (so learned importances are current)."""
        net = resolve_net(pl_module, self.net_attr)
        declared_fn = getattr(net, "prunable_layers", None)
        declared = {layer.name: layer for layer in (declared_fn() if callable(declared_fn) else [])}
        if self.layers is None:
            if not declared:
                raise ValueError(
                    f"ProgressiveSparsity: {type(net).__name__} declares no prunable_layers(); pass layers=[...] "
                    "with the names of its Linear/Conv layers to prune"
                )
            return list(declared.values())
        found = []
        for name in self.layers:
            if name in declared:
                found.append(declared[name])
                continue
            try:
                module = net.get_submodule(name)
            except AttributeError:
                module = None
            if not isinstance(module, SYNAPTIC_TYPES):
                what = "no such module" if module is None else f"a {type(module).__name__}, not a Linear/Conv"
                synaptic = sorted(n for n, m in net.named_modules() if isinstance(m, SYNAPTIC_TYPES))
                raise ValueError(
                    f"ProgressiveSparsity: layers entry {name!r} is {what}; accepted: the model's prunable layers "
                    f"{sorted(declared)} or one of its Linear/Conv modules {synaptic}"
                )
            found.append(PrunableLayer(name, [(module, tuple(_param_names(module, ("weight", "bias"))))]))
        return found

    def _criterion_for(self, layer: PrunableLayer) -> str:
        if self.criterion == "auto":
            return "importance" if layer.importance is not None else "magnitude"
        if self.criterion == "importance" and layer.importance is None:
            raise ValueError(
                f"criterion='importance' but prunable layer {layer.name!r} has no learned importance; use "
                "criterion='auto' (importance where available, else magnitude) or 'magnitude'"
            )
        return self.criterion

    def _scores(self, layer: PrunableLayer) -> torch.Tensor:
        if self._criterion_for(layer) == "importance":
            return layer.importance.detach()
        return magnitude_scores(layer)

    # -- hooks ------------------------------------------------------------------------------------------
    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        if self.end_epoch is None and stage == "fit":
            max_epochs = trainer.max_epochs
            if max_epochs is None or max_epochs < 0:
                raise ValueError(
                    f"ProgressiveSparsity(end_epoch=None) takes the last epoch, but trainer.max_epochs={max_epochs}; "
                    "pass end_epoch explicitly"
                )
            self._end_epoch = max(self.start_epoch, max_epochs - 1)
        for layer in self.targets(pl_module):
            self._criterion_for(layer)  # fail early on a missing importance
            for module, names in layer.inputs:
                for name in _param_names(module, names):
                    _ensure_reparametrised(module, name)
            log.info(
                "ProgressiveSparsity: layer %r, %d neurons, criterion %s",
                layer.name, layer.num_neurons, self._criterion_for(layer),
            )

    def on_train_epoch_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        epoch = trainer.current_epoch
        target = self.sparsity_at(epoch)
        layers = self.targets(pl_module)
        if self._loaded_state is not None:
            self._check_resumed_masks(layers)
        self.achieved, self.num_pruned = {}, {}
        for layer in layers:
            alive = prune_neurons(layer, num_to_prune(target, layer.num_neurons), self._scores(layer))
            self.num_pruned[layer.name] = int(layer.num_neurons - alive.sum().item())
            self.achieved[layer.name] = self.num_pruned[layer.name] / layer.num_neurons
        self.last_epoch = epoch
        metrics = {f"sparsity/{name}": value for name, value in self.achieved.items()}
        metrics["sparsity/target"] = target
        pl_module.log_dict(metrics, on_step=False, on_epoch=True)

    def _check_resumed_masks(self, layers: list[PrunableLayer]) -> None:
        """After a resume, the model's masks must be those the checkpoint's callback state recorded."""
        recorded = self._loaded_state["num_pruned"]
        for layer in layers:
            pruned = int((~neuron_mask(layer)).sum().item())
            if layer.name in recorded and recorded[layer.name] != pruned:
                raise RuntimeError(
                    f"ProgressiveSparsity: the checkpoint recorded {recorded[layer.name]} pruned neurons in "
                    f"{layer.name!r} but the loaded model has {pruned}: were the masks (*_mask buffers) dropped "
                    "from the state_dict (strict_loading=False)?"
                )
        self._loaded_state = None

    # -- checkpointing ----------------------------------------------------------------------------------
    @property
    def state_key(self) -> str:
        """Unique per targeted layers, so several instances (one per layer group) keep separate states."""
        return self._generate_state_key(layers=self.layers, net_attr=self.net_attr)

    def state_dict(self) -> dict[str, Any]:
        return {"last_epoch": self.last_epoch, "num_pruned": dict(self.num_pruned), "achieved": dict(self.achieved)}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.last_epoch = state_dict.get("last_epoch")
        self.num_pruned = dict(state_dict.get("num_pruned", {}))
        self.achieved = dict(state_dict.get("achieved", {}))
        self._loaded_state = dict(state_dict)
