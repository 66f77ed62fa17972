"""MNIST from the four standard IDX ``.gz`` files, held in memory as tensors.

Files: ``<data_dir>/mnist/{train,t10k}-{images-idx3,labels-idx1}-ubyte.gz`` (60,000 training and 10,000 test
images, 28x28 uint8, labels 0-9). ``download=True`` fetches missing files from the standard mirrors and checks
their published md5; files already present are checked for structure and size (IDX magic numbers, 28x28,
60,000 / 10,000 samples, labels 0-9), never replaced.

Validation: ``val_size`` (default 5,000) of the 60,000 training images, chosen by a permutation seeded with
``split_seed`` (see :func:`lit_snn.data.tensor.split_indices`); the test set is used only by ``trainer.test``.
"""

from __future__ import annotations

import gzip
import math
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from .download import ensure_file
from .tensor import ImageDataModule

MIRRORS = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
    "http://yann.lecun.com/exdb/mnist/",
)
# file -> md5 of the .gz file as published
FILES = {
    "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
    "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
    "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
    "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
}
SPLIT_FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}
SPLIT_SIZES = {"train": 60_000, "test": 10_000}


def read_idx(path: str | Path) -> np.ndarray:
    """Read a (gzipped) IDX file of unsigned bytes: magic ``0x0000 08 ndim``, ``ndim`` big-endian uint32 sizes, data."""
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        raw = f.read()
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08:
        raise ValueError(f"{path} is not an IDX file of unsigned bytes (magic {raw[:4].hex()}, expected 000008xx)")
    ndim = raw[3]
    shape = tuple(int(d) for d in np.frombuffer(raw, dtype=">u4", count=ndim, offset=4))
    offset = 4 + 4 * ndim
    if len(raw) - offset != math.prod(shape):
        raise ValueError(f"{path}: header says shape {shape} but holds {len(raw) - offset} bytes of data (truncated?)")
    return np.frombuffer(raw, dtype=np.uint8, offset=offset).reshape(shape)


class MNISTDataModule(ImageDataModule):
    """MNIST as time-first batches ``x [T, B, 1, 28, 28]`` (or ``[T, B, 784]`` with ``flatten``), ``y [B]``.

    Args:
        data_dir: folder holding ``mnist/``; default ``$LIT_SNN_DATA_DIR``, else ``./data``.
        batch_size: samples per batch.
        num_steps: T, the number of time steps the encoder produces.
        encoder: ``direct | rate | latency | population`` (see :mod:`lit_snn.encoders`).
        encoder_kwargs: keyword arguments of the encoder (e.g. ``{"seed": 0}`` for ``rate``).
        val_size: validation images taken from the 60,000 training images: a count or a fraction.
        split_seed: seed of the train/validation split.
        seed: seed of the training order and of the augmentation.
        normalize: ``(x - 0.1307) / 0.3081`` on intensities in [0, 1] (direct encoder only).
        flatten: ``[T, B, 784]`` instead of ``[T, B, 1, 28, 28]``.
        augment: random affine on training batches: rotation uniform in ``±max_rotation`` degrees, shift uniform
            in ``±max_translation`` of the image size per axis, zoom uniform in ``scale_range``; bilinear, zero fill.
        drop_last: drop the last, smaller training batch.
        download: fetch missing files from the standard mirrors (md5-checked).
    """

    name = "MNIST"
    image_shape = (1, 28, 28)
    num_classes = 10
    mean = (0.1307,)
    std = (0.3081,)

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
        max_rotation: float = 10.0,
        max_translation: float = 0.1,
        scale_range: tuple[float, float] = (0.9, 1.1),
        drop_last: bool = False,
        download: bool = False,
    ):
        super().__init__(
            data_dir, batch_size, num_steps, encoder, encoder_kwargs, val_size, split_seed, seed, normalize, flatten,
            augment, drop_last, download,
        )
        if not 0.0 <= max_rotation <= 180.0:
            raise ValueError(f"max_rotation must be in [0, 180] degrees, got {max_rotation!r}")
        if not 0.0 <= max_translation < 1.0:
            raise ValueError(f"max_translation must be in [0, 1) (fraction of the image size), got {max_translation!r}")
        if len(scale_range) != 2 or not 0.0 < scale_range[0] <= scale_range[1]:
            raise ValueError(f"scale_range must be (low, high) with 0 < low <= high, got {scale_range!r}")
        self.max_rotation, self.max_translation, self.scale_range = max_rotation, max_translation, tuple(scale_range)

    @property
    def folder(self) -> Path:
        return self.data_dir / "mnist"

    def prepare_data(self) -> None:
        for split in SPLIT_FILES:
            self._files(split)

    def _files(self, split: str) -> list[Path]:
        return [
            ensure_file("MNIST", name, [m + name for m in MIRRORS], FILES[name], self.folder, self.download)
            for name in SPLIT_FILES[split]
        ]

    def _load(self, split: str) -> tuple[torch.Tensor, torch.Tensor]:
        image_file, label_file = self._files(split)
        images, labels = read_idx(image_file), read_idx(label_file)
        n = SPLIT_SIZES[split]
        if images.shape != (n, 28, 28) or labels.shape != (n,):
            raise ValueError(
                f"MNIST {split}: expected {n} images of 28x28 and {n} labels, got images {images.shape} from "
                f"{image_file} and labels {labels.shape} from {label_file}; replace them with the official files"
            )
        if labels.max() > 9:
            raise ValueError(f"MNIST {split}: labels must be 0-9, {label_file} holds {int(labels.max())}")
        return torch.from_numpy(images.copy()).unsqueeze(1), torch.from_numpy(labels.astype(np.int64))

    def _augment(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """Random affine per image (see the class docstring); parameters drawn on the CPU from ``generator``."""
        b = x.shape[0]
        u = torch.rand(b, 4, generator=generator, dtype=torch.float64) * 2 - 1  # uniform in [-1, 1)
        angle = u[:, 0] * math.radians(self.max_rotation)
        shift = u[:, 1:3] * (2 * self.max_translation)  # normalised coordinates span 2 per image size
        lo, hi = self.scale_range
        scale = lo + (u[:, 3] + 1) / 2 * (hi - lo)
        cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
        theta = torch.stack([torch.stack([cos, -sin, shift[:, 0]], 1), torch.stack([sin, cos, shift[:, 1]], 1)], 1)
        grid = F.affine_grid(theta.to(device=x.device, dtype=x.dtype), list(x.shape), align_corners=False)
        return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
