"""In-memory image datamodules: whole sets as tensors, batches by slicing a seeded permutation.

A :class:`TensorBatchLoader` yields ``(images uint8 [B, C, H, W], labels long [B])`` on the CPU: one index into a
tensor per batch, no per-sample Python work. Lightning moves the batch to the training device, then
:meth:`ImageDataModule.on_after_batch_transfer` turns it into what the model reads, on that device:

    x = images / 255                     float in [0, 1]
    x = augment(x)                       training batches only, if augment=True (subclass-specific, seeded)
    x = (x - mean) / std                 if normalize=True (per channel)
    x = encoder(x)                       [T, B, C, H, W]  (population: [T, B, C, H, W, N])
    x = x.flatten(2)                     if flatten=True: [T, B, C*H*W(*N)]

Shuffling: epoch ``e`` of a training loader visits the samples in the order ``randperm(n)`` drawn from a generator
seeded with ``SeedSequence([seed, e])``; Lightning sets ``e`` (``set_epoch``) before every epoch, and a loader used
by hand moves to the next epoch after each pass. Under DDP each rank takes every ``world_size``-th index of the same
permutation (trimmed to equal length); validation and test batches are not sharded.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import lightning as L
import numpy as np
import torch

from ..encoders import ENCODERS, make_encoder
from .download import resolve_data_dir


def epoch_permutation(n: int, seed: int, epoch: int) -> torch.Tensor:
    """The order in which epoch ``epoch`` visits ``n`` samples: ``randperm(n)`` seeded by ``(seed, epoch)``."""
    state = int(np.random.SeedSequence([seed, epoch]).generate_state(1, dtype=np.uint64)[0] >> 1)
    return torch.randperm(n, generator=torch.Generator().manual_seed(state))


def split_indices(n: int, val_size: int | float, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Seeded split of ``range(n)``: ``p = randperm(n)`` with generator seed ``seed``; validation = the first
    ``n_val`` entries of ``p``, training = the rest (each returned sorted). ``n_val = val_size`` for an int,
    ``round(val_size * n)`` for a fraction in (0, 1)."""
    n_val = validation_count(n, val_size)
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    return perm[n_val:].sort().values, perm[:n_val].sort().values


def check_val_size(val_size: int | float) -> int | float:
    """``val_size`` is a count (int >= 0) or a fraction (float in [0, 1))."""
    if isinstance(val_size, bool) or not isinstance(val_size, (int, float)):
        raise ValueError(f"val_size must be an int count or a float fraction in [0, 1), got {val_size!r}")
    if isinstance(val_size, float) and not 0.0 <= val_size < 1.0:
        raise ValueError(f"val_size as a fraction must be in [0, 1), got {val_size!r}")
    if isinstance(val_size, int) and val_size < 0:
        raise ValueError(f"val_size as a count must be >= 0, got {val_size!r}")
    return val_size


def validation_count(n: int, val_size: int | float) -> int:
    """Number of validation samples out of ``n`` (see :func:`split_indices`)."""
    check_val_size(val_size)
    if isinstance(val_size, float):
        return round(val_size * n)
    if val_size >= n:
        raise ValueError(f"val_size must be in [0, {n}) (the training set has {n} samples), got {val_size!r}")
    return val_size


class _EpochOrder:
    """Sample order of a loader; ``set_epoch`` is what Lightning calls on a loader's ``sampler`` every epoch."""

    def __init__(self, n: int, shuffle: bool, seed: int, rank: int = 0, world_size: int = 1):
        self.n, self.shuffle, self.seed, self.rank, self.world_size = n, shuffle, seed, rank, world_size
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def indices(self) -> torch.Tensor:
        order = epoch_permutation(self.n, self.seed, self.epoch) if self.shuffle else torch.arange(self.n)
        self.epoch += 1
        if self.world_size > 1:
            per_rank = self.n // self.world_size
            order = order[self.rank :: self.world_size][:per_rank]
        return order

    def __len__(self) -> int:
        return self.n // self.world_size if self.world_size > 1 else self.n


class TensorBatchLoader:
    """Iterate ``(x[idx], y[idx])`` batches of in-memory tensors in a seeded order.

    Args:
        x, y: tensors with the same first dimension.
        batch_size: samples per batch.
        shuffle: visit samples in a fresh seeded permutation every epoch (else in order).
        seed: seed of the permutations.
        drop_last: skip the last batch when it is smaller than ``batch_size``.
        rank, world_size: under DDP, this rank's share (see the module docstring).
    """

    def __init__(
        self,
        x: torch.Tensor,
        y: torch.Tensor,
        batch_size: int,
        shuffle: bool = False,
        seed: int = 0,
        drop_last: bool = False,
        rank: int = 0,
        world_size: int = 1,
    ):
        if len(x) != len(y):
            raise ValueError(f"x and y must have the same length, got {len(x)} and {len(y)}")
        self.x, self.y, self.batch_size, self.drop_last = x, y, batch_size, drop_last
        self.sampler = _EpochOrder(len(x), shuffle, seed, rank, world_size)
        self.batch_sampler = None  # Lightning looks for both, as on a torch DataLoader

    def __len__(self) -> int:
        n = len(self.sampler)
        return n // self.batch_size if self.drop_last else math.ceil(n / self.batch_size)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        order = self.sampler.indices()
        stop = len(self) * self.batch_size
        for start in range(0, min(stop, len(order)), self.batch_size):
            idx = order[start : start + self.batch_size]
            yield self.x[idx], self.y[idx]


def check_positive_int(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
    return value


def check_seed(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{name} must be an integer >= 0, got {value!r}")
    return value


class ImageDataModule(L.LightningDataModule):
    """Base of the in-memory image datamodules (MNIST, CIFAR-10); subclasses load the tensors.

    Subclasses set ``name``, ``image_shape``, ``num_classes``, ``mean``, ``std`` and implement
    ``_load(split) -> (images uint8 [N, C, H, W], labels long [N])`` for ``split`` in ``train | test``, and
    ``_augment(x, generator)`` for float batches in [0, 1].
    """

    name: str = ""
    image_shape: tuple[int, int, int] = (1, 1, 1)
    num_classes: int = 0
    mean: tuple[float, ...] = ()
    std: tuple[float, ...] = ()

    def __init__(
        self,
        data_dir: str | None = None,
        batch_size: int = 128,
        num_steps: int = 4,
        encoder: str = "direct",
        encoder_kwargs: dict[str, Any] | None = None,
        val_size: int | float = 5000,
        split_seed: int = 0,
        seed: int = 42,
        normalize: bool = True,
        flatten: bool = False,
        augment: bool = False,
        drop_last: bool = False,
        download: bool = False,
    ):
        super().__init__()
        self.data_dir = resolve_data_dir(data_dir)
        self.batch_size = check_positive_int("batch_size", batch_size)
        self.num_steps = check_positive_int("num_steps", num_steps)
        if encoder not in ENCODERS:
            raise ValueError(f"encoder must be one of {ENCODERS}, got {encoder!r}")
        if encoder != "direct" and normalize:
            raise ValueError(
                f"the {encoder!r} encoder reads intensities in [0, 1]: set normalize=False (normalize=True is "
                "for the direct encoder)"
            )
        self.encoder_name = encoder
        self.encoder = make_encoder(encoder, num_steps, **(encoder_kwargs or {}))
        self.val_size = check_val_size(val_size)  # the bound against the set's size is checked in setup
        self.split_seed, self.seed = check_seed("split_seed", split_seed), check_seed("seed", seed)
        self.normalize, self.flatten, self.augment, self.drop_last = normalize, flatten, augment, drop_last
        self.download = download
        self.train_set: tuple[torch.Tensor, torch.Tensor] | None = None
        self.val_set: tuple[torch.Tensor, torch.Tensor] | None = None
        self.test_set: tuple[torch.Tensor, torch.Tensor] | None = None
        self._augment_generator = torch.Generator().manual_seed(seed)

    # -- what the model sees -------------------------------------------------------------------------------------
    @property
    def input_shape(self) -> tuple[int, ...]:
        """Shape of one encoded sample, without T and B."""
        shape = self.image_shape
        if self.encoder_name == "population":
            shape = (*shape, self.encoder.num_neurons)
        return (math.prod(shape),) if self.flatten else tuple(shape)

    # -- loading ---------------------------------------------------------------------------------------------------
    def _load(self, split: str) -> tuple[torch.Tensor, torch.Tensor]:
        raise NotImplementedError

    def _augment(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        raise NotImplementedError

    def setup(self, stage: str | None = None) -> None:
        if stage in (None, "fit", "validate") and self.train_set is None:
            images, labels = self._load("train")
            train_idx, val_idx = split_indices(len(images), self.val_size, self.split_seed)
            self.train_set = (images[train_idx], labels[train_idx])
            self.val_set = (images[val_idx], labels[val_idx])
        if stage in (None, "test", "predict") and self.test_set is None:
            self.test_set = self._load("test")

    def _ddp(self) -> tuple[int, int]:
        trainer = self.trainer
        return (trainer.global_rank, trainer.world_size) if trainer is not None else (0, 1)

    def _loader(self, split: str, tensors, shuffle: bool) -> TensorBatchLoader:
        if tensors is None:
            raise RuntimeError(f"{type(self).__name__}: call setup() before asking for the {split} batches")
        rank, world = self._ddp() if shuffle else (0, 1)
        drop_last = self.drop_last and shuffle
        loader = TensorBatchLoader(*tensors, self.batch_size, shuffle, self.seed, drop_last, rank, world)
        if shuffle and self.trainer is not None:
            loader.sampler.set_epoch(self.trainer.current_epoch)
        return loader

    def train_dataloader(self) -> TensorBatchLoader:
        return self._loader("train", self.train_set, shuffle=True)

    def val_dataloader(self) -> TensorBatchLoader:
        return self._loader("validation", self.val_set, shuffle=False)

    def test_dataloader(self) -> TensorBatchLoader:
        return self._loader("test", self.test_set, shuffle=False)

    def predict_dataloader(self) -> TensorBatchLoader:
        return self._loader("test", self.test_set, shuffle=False)

    # -- on the device -----------------------------------------------------------------------------------------
    def encode(self, images: torch.Tensor, train: bool = False) -> torch.Tensor:
        """uint8 ``[B, C, H, W]`` -> float ``[T, B, *input_shape]`` (augmented only when ``train``)."""
        x = images.to(torch.get_default_dtype()) / 255.0
        if train and self.augment:
            x = self._augment(x, self._augment_generator)
        if self.normalize:
            mean = torch.tensor(self.mean, device=x.device, dtype=x.dtype).view(1, -1, 1, 1)
            std = torch.tensor(self.std, device=x.device, dtype=x.dtype).view(1, -1, 1, 1)
            x = (x - mean) / std
        x = self.encoder(x)
        return x.flatten(2) if self.flatten else x

    def on_after_batch_transfer(self, batch, dataloader_idx: int):
        images, labels = batch
        training = self.trainer is not None and self.trainer.training
        return self.encode(images, train=training), labels

    def state_dict(self) -> dict[str, Any]:
        return {"augment_generator": self._augment_generator.get_state()}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        if "augment_generator" in state_dict:
            self._augment_generator.set_state(state_dict["augment_generator"])
