"""Datamodules for MNIST, CIFAR-10 and the neuromorphic benchmarks.

Every datamodule yields batches ``(x, y)`` with ``x`` float ``[T, B, *input_shape]`` (time first, encoded on the
training device in ``on_after_batch_transfer``) and ``y`` long ``[B]``, and exposes ``input_shape``,
``num_classes`` and ``num_steps``. Data lives under ``data_dir`` (else ``$LIT_SNN_DATA_DIR``, else ``./data``).
"""

from .cifar10 import CIFAR10DataModule
from .download import DatasetNotFoundError, DownloadError
from .mnist import MNISTDataModule
from .neuromorphic import CIFAR10DVSDataModule, DVSGestureDataModule, EventFramesDataModule, NMNISTDataModule
from .tensor import ImageDataModule, TensorBatchLoader

__all__ = [
    "CIFAR10DVSDataModule",
    "CIFAR10DataModule",
    "DVSGestureDataModule",
    "EventFramesDataModule",
    "NMNISTDataModule",
    "DatasetNotFoundError",
    "DownloadError",
    "ImageDataModule",
    "MNISTDataModule",
    "TensorBatchLoader",
]
