"""The ``lightning`` / ``lit-snn`` command: LightningCLI over :class:`~lit_snn.module.SpikingClassifier`.

::

    lightning fit      --config recipes/apex.yaml                      # train; keeps the best checkpoint on val/acc
    lightning test     --config recipes/apex.yaml                      # test that best checkpoint
    lightning fit      --config recipes/apex.yaml --model.backend snntorch
    lightning fit      --config recipes/dasnn.yaml --config recipes/protocol.yaml   # the shared protocol

What this CLI adds to a plain ``LightningCLI(SpikingClassifier, LightningDataModule, subclass_mode_data=True)``:

- a ``ModelCheckpoint`` that is always there (``--checkpoint.*``, a :class:`BestCheckpoint`): ``monitor="val/acc"``,
  ``mode="max"``, ``save_top_k=1``, ``save_last=True``, written to ``<trainer.default_root_dir>/checkpoints`` unless
  ``--checkpoint.dirpath`` is given; ``--checkpoint.min_epoch N`` leaves epochs before N out of the choice;
- ``validate``, ``test`` and ``predict`` default to ``--ckpt_path best``: the best checkpoint (on ``val/acc``) of
  the last ``fit`` that wrote to the same checkpoint folder, found through that fit's ``last.ckpt``. The model is
  built from the given config (so ``--model.backend`` may differ from the one trained with: checkpoints move
  between backends) and the weights are loaded from the checkpoint. ``--ckpt_path PATH`` tests a given file,
  ``--ckpt_path null`` the model's initial weights;
- the optimiser and LR scheduler are constructor arguments of the model (``--model.optimizer``,
  ``--model.lr_scheduler``), so LightningCLI's top-level ``--optimizer``/``--lr_scheduler`` are not offered;
- the config is saved (overwritten) as ``config.yaml`` in the trainer's log directory.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch import LightningDataModule
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI
from lightning.pytorch.utilities import rank_zero_only

from lit_snn.module import SpikingClassifier


@rank_zero_only
def _say(message: str) -> None:
    """Print a one-line status message (on rank 0 only)."""
    print(message, flush=True)

EVAL_SUBCOMMANDS = ("validate", "test", "predict")
CHECKPOINT_DEFAULTS = {
    "checkpoint.monitor": "val/acc",
    "checkpoint.mode": "max",
    "checkpoint.save_top_k": 1,
    "checkpoint.save_last": True,
    "checkpoint.filename": "best-epoch{epoch:03d}-val_acc{val/acc:.4f}",
    "checkpoint.auto_insert_metric_name": False,
    "checkpoint.enable_version_counter": False,
}


def best_checkpoint(dirpath: str | os.PathLike) -> Path:
    """The best checkpoint of the last fit that wrote ``<dirpath>/last.ckpt`` (its ModelCheckpoint state).

    Raises ``FileNotFoundError`` naming the folder when there is no ``last.ckpt`` or its best file is gone.
    """
    last = Path(dirpath) / f"{ModelCheckpoint.CHECKPOINT_NAME_LAST}{ModelCheckpoint.FILE_EXTENSION}"
    if not last.is_file():
        raise FileNotFoundError(
            f"ckpt_path='best' needs the checkpoints of a previous `lightning fit` in {Path(dirpath)}, but there is "
            "no last.ckpt there: run fit first (with the same --config and --trainer.default_root_dir), or pass "
            "--ckpt_path PATH (or --ckpt_path null for the model's initial weights)"
        )
    state = torch.load(last, map_location="cpu", weights_only=True).get("callbacks", {})
    best = [
        s["best_model_path"]
        for k, s in state.items()
        if k.startswith(("ModelCheckpoint", "BestCheckpoint")) and s.get("best_model_path")
    ]
    if not best:
        raise FileNotFoundError(f"{last} records no best checkpoint (was a validation metric ever logged?)")
    path = Path(best[0])
    if not path.is_file():
        raise FileNotFoundError(f"{last} names {path} as the best checkpoint, but that file is gone")
    return path


class BestCheckpoint(ModelCheckpoint):
    """``ModelCheckpoint`` that can leave early epochs out of the choice of the best checkpoint.

    Args:
        min_epoch: epochs (0-based) before it are never kept as "best" (``last.ckpt`` is still written). A model
            whose training changes what it is, such as APEX-SNN under progressive sparsity, is then chosen only among
            epochs at its final form (e.g. ``min_epoch`` = the sparsity schedule's ``end_epoch``).
        **kwargs: as :class:`~lightning.pytorch.callbacks.ModelCheckpoint`.
    """

    def __init__(self, *args: Any, min_epoch: int = 0, **kwargs: Any) -> None:
        if not isinstance(min_epoch, int) or isinstance(min_epoch, bool) or min_epoch < 0:
            raise ValueError(f"min_epoch must be an integer >= 0, got {min_epoch!r}")
        super().__init__(*args, **kwargs)
        self.min_epoch = min_epoch

    def _save_topk_checkpoint(self, trainer, monitor_candidates) -> None:
        if trainer.current_epoch < self.min_epoch:
            # Not eligible as best. ModelCheckpoint writes last.ckpt only after a save at this step, so mark the step
            # as handled: save_last still keeps a resumable last.ckpt during the early epochs.
            self._last_global_step_saved = trainer.global_step
            return
        super()._save_topk_checkpoint(trainer, monitor_candidates)


class LitSNNCLI(LightningCLI):
    """LightningCLI with lit-snn's checkpoint defaults and ``--ckpt_path best`` for evaluation (module docstring)."""

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        parser.add_lightning_class_args(BestCheckpoint, "checkpoint")
        parser.set_defaults(CHECKPOINT_DEFAULTS)

    def _prepare_subcommand_parser(self, klass: type, subcommand: str, **kwargs: Any) -> LightningArgumentParser:
        # the subcommand's own arguments (ckpt_path, ...) are added after add_arguments_to_parser, so their
        # defaults can only be changed here
        parser = super()._prepare_subcommand_parser(klass, subcommand, **kwargs)
        if subcommand in EVAL_SUBCOMMANDS:
            parser.set_defaults(ckpt_path="best")
        return parser

    def before_instantiate_classes(self) -> None:
        config = self.config[self.subcommand] if self.subcommand else self.config
        if config.checkpoint.dirpath is None:
            root = config.trainer.default_root_dir or os.getcwd()
            config.checkpoint.dirpath = os.path.join(root, "checkpoints")

    def _resolve_best(self, subcommand: str) -> None:
        kwargs = self.config_init[subcommand]
        callback = self.trainer.checkpoint_callback
        if kwargs.get("ckpt_path") != "best" or (callback is not None and callback.best_model_path):
            return
        dirpath = self.config_init[subcommand]["checkpoint"].dirpath
        path = best_checkpoint(dirpath)
        kwargs["ckpt_path"] = str(path)
        _say(f"{subcommand}: using the best checkpoint (on val/acc) of the last fit: {path}")

    def before_validate(self) -> None:
        self._resolve_best("validate")

    def before_test(self) -> None:
        self._resolve_best("test")

    def before_predict(self) -> None:
        self._resolve_best("predict")


def build_cli(args: list[str] | None = None, run: bool = True) -> LitSNNCLI:
    """Parse ``args`` (as on the command line; ``None``: ``sys.argv``), build everything and run the subcommand."""
    return LitSNNCLI(
        SpikingClassifier,
        LightningDataModule,
        subclass_mode_data=True,
        auto_configure_optimizers=False,
        save_config_kwargs={"overwrite": True},
        args=args,
        run=run,
    )


def main(args: list[str] | None = None) -> None:
    """Entry point of the ``lightning`` and ``lit-snn`` commands."""
    build_cli(args)


if __name__ == "__main__":
    main()
