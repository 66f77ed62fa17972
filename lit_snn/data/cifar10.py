"""CIFAR-10 from the official python-pickle tarball, held in memory as tensors.

File: ``<data_dir>/cifar10/cifar-10-python.tar.gz`` (md5 ``c58f30108f718f92721af3b95e74349a``), read in place
(no extraction). Its members ``cifar-10-batches-py/data_batch_1..5`` and ``test_batch`` are pickled dicts with
``b'data'`` (uint8 ``[N, 3072]``: 1024 red, 1024 green, 1024 blue values, each plane row-major 32x32) and
``b'labels'`` (N ints 0-9); ``batches.meta`` holds ``b'label_names'``. The tarball's md5 is checked every time
it is read (about half a second), so a partial or altered file is an error, never a smaller data set.

Validation: ``val_size`` (default 5,000) of the 50,000 training images, chosen by a permutation seeded with
``split_seed``; the test set (10,000) is used only by ``trainer.test``.
"""

from __future__ import annotations

import pickle
import tarfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .download import ensure_file, md5sum
from .tensor import ImageDataModule

URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
TARBALL = "cifar-10-python.tar.gz"
TARBALL_MD5 = "c58f30108f718f92721af3b95e74349a"
MEMBERS = {
    "train": [f"cifar-10-batches-py/data_batch_{i}" for i in range(1, 6)],
    "test": ["cifar-10-batches-py/test_batch"],
}
META = "cifar-10-batches-py/batches.meta"


class ChecksumError(ValueError):
    """A dataset file on disk does not have the published checksum."""


def read_cifar_tarball(path: str | Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    """Images uint8 ``[N, 3, 32, 32]`` and labels int64 ``[N]`` of ``split`` (``train | test``) from the tarball."""
    images, labels = [], []
    with tarfile.open(path, "r:gz") as tar:
        for member in MEMBERS[split]:
            try:
                f = tar.extractfile(member)
            except KeyError:
                raise ValueError(f"{path} has no member {member}: not the CIFAR-10 python tarball") from None
            batch = pickle.load(f, encoding="bytes")
            data = np.asarray(batch[b"data"], dtype=np.uint8)
            images.append(data.reshape(-1, 3, 32, 32))
            labels.append(np.asarray(batch[b"labels"], dtype=np.int64))
    return np.concatenate(images), np.concatenate(labels)


def read_label_names(path: str | Path) -> list[str]:
    with tarfile.open(path, "r:gz") as tar:
        meta = pickle.load(tar.extractfile(META), encoding="bytes")
    return [name.decode() for name in meta[b"label_names"]]


class CIFAR10DataModule(ImageDataModule):
    """CIFAR-10 as time-first batches ``x [T, B, 3, 32, 32]`` (or ``[T, B, 3072]`` with ``flatten``), ``y [B]``.

    Args: as :class:`lit_snn.data.MNISTDataModule` (``data_dir`` holds ``cifar10/``), and
        normalize: per channel ``(x - mean) / std`` with the standard CIFAR-10 training-set statistics
            mean (0.4914, 0.4822, 0.4465), std (0.2470, 0.2435, 0.2616) (direct encoder only).
        augment: on training batches, random crop with zero padding ``crop_padding`` (pad each side, then cut a
            32x32 window at a uniform offset in ``[0, 2 * padding]`` per axis) and horizontal flip with
            probability 1/2; offsets and flips are drawn per image from a generator seeded with ``seed``.
    """

    name = "CIFAR-10"
    image_shape = (3, 32, 32)
    num_classes = 10
    mean = (0.4914, 0.4822, 0.4465)
    std = (0.2470, 0.2435, 0.2616)

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
        augment: bool = True,
        crop_padding: int = 4,
        drop_last: bool = False,
        download: bool = False,
    ):
        super().__init__(
            data_dir, batch_size, num_steps, encoder, encoder_kwargs, val_size, split_seed, seed, normalize, flatten,
            augment, drop_last, download,
        )
        if isinstance(crop_padding, bool) or not isinstance(crop_padding, int) or crop_padding < 0:
            raise ValueError(f"crop_padding must be an integer >= 0, got {crop_padding!r}")
        self.crop_padding = crop_padding
        self._verified: Path | None = None

    @property
    def folder(self) -> Path:
        return self.data_dir / "cifar10"

    def prepare_data(self) -> None:
        self._tarball()

    def _tarball(self) -> Path:
        path = ensure_file("CIFAR-10", TARBALL, [URL], TARBALL_MD5, self.folder, self.download)
        if self._verified != path:
            actual = md5sum(path)
            if actual != TARBALL_MD5:
                raise ChecksumError(
                    f"CIFAR-10: {path} has md5 {actual}, expected {TARBALL_MD5} (partial or altered file). "
                    f"Delete it and run with download=True, or download {TARBALL} by hand from {URL} and put it at "
                    f"{path}."
                )
            self._verified = path
        return path

    def _load(self, split: str) -> tuple[torch.Tensor, torch.Tensor]:
        images, labels = read_cifar_tarball(self._tarball(), split)
        return torch.from_numpy(images), torch.from_numpy(labels)

    def _augment(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """Random crop with zero padding and horizontal flip, batched (see the class docstring)."""
        return random_crop_flip(x, self.crop_padding, generator)


def random_crop_flip(x: torch.Tensor, padding: int, generator: torch.Generator) -> torch.Tensor:
    """Per image: pad by ``padding`` zeros, cut an ``H x W`` window at offsets ``(dy, dx)`` uniform in
    ``[0, 2 * padding]``, then mirror left-right if a fair coin says so. Draws, on the CPU from ``generator``:
    ``dy, dx = randint(0, 2p + 1, (2, B))``, then ``flip = rand(B) < 0.5``.

    ``out[b, c, i, j] = padded[b, c, dy[b] + i, dx[b] + j]`` (before the flip).
    """
    b, _, h, w = x.shape
    offsets = torch.randint(0, 2 * padding + 1, (2, b), generator=generator).to(x.device)
    flip = (torch.rand(b, generator=generator) < 0.5).to(x.device)
    padded = torch.nn.functional.pad(x, (padding, padding, padding, padding))
    rows = offsets[0].view(b, 1, 1) + torch.arange(h, device=x.device).view(1, h, 1)
    cols = offsets[1].view(b, 1, 1) + torch.arange(w, device=x.device).view(1, 1, w)
    batch = torch.arange(b, device=x.device).view(b, 1, 1)
    out = padded[batch, :, rows, cols].permute(0, 3, 1, 2)  # advanced indices first: [B, H, W, C] -> [B, C, H, W]
    return torch.where(flip.view(b, 1, 1, 1), out.flip(-1), out).contiguous()
