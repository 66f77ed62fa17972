"""Event-camera datamodules (N-MNIST, DVS-Gesture, CIFAR10-DVS) through tonic's readers and transforms.

Each recording becomes ``T = num_steps`` frames with tonic's ``ToFrame(n_time_bins=T)`` (after optional
``Denoise`` and ``Downsample``): int16 counts ``[T, P, H, W]`` of events per time bin, polarity and pixel. The
frames are cached on disk with tonic's ``DiskCachedDataset`` (one HDF5 file per recording, under
``<cache_dir>/<dataset>/<part>/<transform key>``), so binning happens once; later epochs and runs read the cache.
Delete the cache folder if the recordings change. Batches reach the model as ``x`` float ``[T, B, P, H, W]``,
``y`` long ``[B]`` (stacked by a torch DataLoader, made time-first in ``on_after_batch_transfer``).

Binning is tonic's: with ``t0``/``t1`` the first/last timestamps, bin ``k`` holds the events with
``t0 + k w <= t < t0 + (k + 1) w``, ``w = (t1 - t0) // T`` (integer division), so events at or after
``t0 + T w`` (at least the last one) are not counted.

Where the files live (tonic's layout, under ``<data_dir>``):

- N-MNIST: ``NMNIST/Train/<digit>/*.bin`` and ``NMNIST/Test/<digit>/*.bin`` (from ``train.zip`` / ``test.zip``).
- DVS-Gesture: ``DVSGesture/ibmGestureTrain/userNN_<lighting>/<label>.npy`` and ``.../ibmGestureTest/...``
  (tonic's preprocessed archives ``ibmGestureTrain.tar.gz`` / ``ibmGestureTest.tar.gz``).
- CIFAR10-DVS: ``CIFAR10DVS/<class name>/*.aedat4`` (``CIFAR10DVS.zip`` and the per-class zips inside it);
  reading ``.aedat4`` needs the ``aedat`` package.

Splits: recordings are indexed in sorted path order. Validation takes ``val_size`` (count or fraction) of the
training recordings by a permutation seeded with ``split_seed`` (:func:`lit_snn.data.tensor.split_indices`).
CIFAR10-DVS has no official test split; this module fixes one (:func:`per_class_split`): for each class ``c`` in
order 0..9, the class's recordings (sorted by path) are permuted by one generator seeded with
``CIFAR10DVS_TEST_SEED = 0`` and the first ``round(0.1 * n_c)`` go to the test set: 9:1 per class, 100 test
recordings per class for the full set (1,000 of 10,000), the same on every machine and independent of
``split_seed``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lightning as L
import torch
from torch.utils.data import DataLoader, Subset

from .._optional import require
from .download import DownloadError, resolve_data_dir
from .tensor import check_positive_int, check_seed, check_val_size, split_indices

CIFAR10DVS_TEST_SEED = 0
CIFAR10DVS_TEST_FRACTION = 0.1


def per_class_split(targets: list[int], fraction: float, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(rest, held out): for each class in increasing order, ``randperm(n_c)`` from one generator seeded with
    ``seed`` picks ``round(fraction * n_c)`` of that class's indices (taken in the given order) to hold out."""
    labels = torch.as_tensor(targets)
    generator = torch.Generator().manual_seed(seed)
    held_out = []
    for c in torch.unique(labels).tolist():
        members = torch.nonzero(labels == c).flatten()
        perm = torch.randperm(len(members), generator=generator)
        held_out.append(members[perm[: round(fraction * len(members))]])
    held = torch.cat(held_out).sort().values if held_out else torch.empty(0, dtype=torch.long)
    mask = torch.ones(len(labels), dtype=torch.bool)
    mask[held] = False
    return torch.nonzero(mask).flatten(), held


class EventFramesDataModule(L.LightningDataModule):
    """Base of the tonic-backed datamodules; subclasses set the class attributes below.

    Args:
        data_dir: folder holding tonic's dataset folders; default ``$LIT_SNN_DATA_DIR``, else ``./data``.
        batch_size: recordings per batch.
        num_steps: T, the number of time bins per recording (``ToFrame(n_time_bins=T)``).
        val_size: validation recordings taken from the training recordings: a count or a fraction.
        split_seed: seed of the train/validation split.
        seed: seed of the training order.
        denoise_time: if set, tonic's ``Denoise(filter_time=denoise_time)`` (microseconds) before binning.
        spatial_factor: if not 1, tonic's ``Downsample(spatial_factor=...)``: pixel ``(x, y)`` goes to
            ``(floor(x f), floor(y f))``, so a ``W x H`` sensor gives ``floor((W-1) f) + 1`` columns (and rows).
        flatten: batches ``[T, B, P*H*W]`` instead of ``[T, B, P, H, W]``.
        cache_dir: where the binned frames are cached; default ``<data_dir>/cache``.
        num_workers: DataLoader worker processes.
        drop_last: drop the last, smaller training batch.
        download: fetch missing recordings with tonic's downloader (which checks tonic's published md5).
    """

    tonic_name: str = ""
    title: str = ""
    sensor_size: tuple[int, int, int] = (1, 1, 1)  # (W, H, P), as tonic
    num_classes: int = 0
    file_type: str = ""
    parts: dict[str, str] = {}  # part -> sub-folder holding its recordings

    def __init__(
        self,
        data_dir: str | None = None,
        batch_size: int = 32,
        num_steps: int = 16,
        val_size: int | float = 0.1,
        split_seed: int = 0,
        seed: int = 42,
        denoise_time: float | None = None,
        spatial_factor: float = 1.0,
        flatten: bool = False,
        cache_dir: str | None = None,
        num_workers: int = 0,
        drop_last: bool = False,
        download: bool = False,
    ):
        super().__init__()
        self.data_dir = resolve_data_dir(data_dir)
        self.batch_size = check_positive_int("batch_size", batch_size)
        self.num_steps = check_positive_int("num_steps", num_steps)
        self.val_size = check_val_size(val_size)
        self.split_seed, self.seed = check_seed("split_seed", split_seed), check_seed("seed", seed)
        if denoise_time is not None and not denoise_time > 0:
            raise ValueError(f"denoise_time must be > 0 (microseconds) or None, got {denoise_time!r}")
        if not 0.0 < spatial_factor <= 1.0:
            raise ValueError(f"spatial_factor must be in (0, 1], got {spatial_factor!r}")
        if isinstance(num_workers, bool) or not isinstance(num_workers, int) or num_workers < 0:
            raise ValueError(f"num_workers must be an integer >= 0, got {num_workers!r}")
        self.denoise_time, self.spatial_factor, self.flatten = denoise_time, float(spatial_factor), flatten
        self.cache_dir = Path(cache_dir) if cache_dir else self.data_dir / "cache"
        self.num_workers, self.drop_last, self.download = num_workers, drop_last, download
        self.train_set: Subset | None = None
        self.val_set: Subset | None = None
        self.test_set: Subset | None = None

    @property
    def input_shape(self) -> tuple[int, ...]:
        """``(P, H, W)`` of one frame after downsampling (``(P*H*W,)`` with ``flatten``)."""
        width = int((self.sensor_size[0] - 1) * self.spatial_factor) + 1
        height = int((self.sensor_size[1] - 1) * self.spatial_factor) + 1
        shape = (self.sensor_size[2], height, width)
        return (shape[0] * height * width,) if self.flatten else shape

    @property
    def location(self) -> Path:
        """tonic's folder for this dataset: ``<data_dir>/<tonic class name>``."""
        return self.data_dir / self.tonic_name

    # -- files -------------------------------------------------------------------------------------------------
    def _present(self, part: str) -> bool:
        return any((self.location / self.parts[part]).glob(f"**/*{self.file_type}"))

    # The three hooks below serve datasets with tonic's train/test split (``train=`` argument), found by
    # ``tonic_name`` in tonic.datasets and lit_snn.data._tonic_datasets; other datasets override them.
    def _source(self, part: str) -> tuple[str, str]:
        """(archive file name, URL) of ``part``, from tonic's class."""
        import tonic.datasets

        cls = getattr(tonic.datasets, self.tonic_name)
        return (cls.train_filename, cls.train_url) if part == "train" else (cls.test_filename, cls.test_url)

    def _tonic_download(self, part: str) -> None:
        """Download and extract ``part`` with tonic's original class (its downloader checks the md5)."""
        import tonic.datasets

        getattr(tonic.datasets, self.tonic_name)(str(self.data_dir), train=part == "train")

    def _missing(self, part: str) -> FileNotFoundError:
        filename, url = self._source(part)
        return FileNotFoundError(
            f"{self.title}: no *{self.file_type} recordings under {self.location / self.parts[part]}. Run with "
            f"download=True to fetch them, or download {filename} from {url} and extract it into {self.location} "
            f"(tonic's layout; see lit_snn.data.neuromorphic). The data directory is the data_dir argument, else "
            f"$LIT_SNN_DATA_DIR, else ./data."
        )

    def prepare_data(self) -> None:
        """Download missing parts (``download=True``) or raise an error saying where to put them."""
        require("tonic", f"the {self.title} datamodule")
        for part in self.parts:
            if self._present(part):
                continue
            if not self.download:
                raise self._missing(part)
            filename, url = self._source(part)
            try:
                self._tonic_download(part)
            except Exception as err:  # noqa: BLE001 - any failure of tonic's downloader, reported with the way out
                raise DownloadError(
                    f"{self.title}: could not download {filename} from {url} ({type(err).__name__}: {err}). Download "
                    f"it by hand and extract it into {self.location}."
                ) from err
            if not self._present(part):
                raise DownloadError(f"{self.title}: {filename} from {url} held no *{self.file_type} recordings")

    # -- datasets ----------------------------------------------------------------------------------------------
    def _reader(self, part: str, transform):
        """tonic's (offline, sorted) dataset of ``part``."""
        from . import _tonic_datasets

        return getattr(_tonic_datasets, self.tonic_name)(str(self.data_dir), train=part == "train", transform=transform)

    def _cached(self, part: str):
        from tonic import DiskCachedDataset

        from ._tonic_datasets import EventsToFrames

        transform = EventsToFrames(self.sensor_size, self.num_steps, self.denoise_time, self.spatial_factor)
        key = f"T{self.num_steps}_denoise{self.denoise_time}_scale{self.spatial_factor:g}"
        reader = self._reader(part, transform)
        if len(reader) == 0:
            raise FileNotFoundError(f"{self.title}: no recordings found under {self.location / self.parts[part]}")
        return DiskCachedDataset(reader, cache_path=str(self.cache_dir / self.tonic_name / part / key))

    def _split_parts(self) -> tuple[Any, torch.Tensor, torch.Tensor, Any, torch.Tensor]:
        """(train dataset, train indices, validation indices, test dataset, test indices)."""
        train = self._cached("train")
        test = self._cached("test")
        train_idx, val_idx = split_indices(len(train), self.val_size, self.split_seed)
        return train, train_idx, val_idx, test, torch.arange(len(test))

    def setup(self, stage: str | None = None) -> None:
        if self.train_set is None:
            require("tonic", f"the {self.title} datamodule")
            for part in self.parts:  # prepare_data downloads (once, on rank 0); here only check
                if not self._present(part):
                    raise self._missing(part)
            train, train_idx, val_idx, test, test_idx = self._split_parts()
            self.train_set = Subset(train, train_idx.tolist())
            self.val_set = Subset(train, val_idx.tolist())
            self.test_set = Subset(test, test_idx.tolist())

    def _loader(self, subset: Subset | None, shuffle: bool) -> DataLoader:
        if subset is None:
            raise RuntimeError(f"{type(self).__name__}: call setup() before asking for batches")
        return DataLoader(
            subset,
            batch_size=self.batch_size,
            shuffle=shuffle,
            generator=torch.Generator().manual_seed(self.seed) if shuffle else None,
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
            drop_last=self.drop_last and shuffle,
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader(self.train_set, shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader(self.val_set, shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader(self.test_set, shuffle=False)

    def predict_dataloader(self) -> DataLoader:
        """The test recordings, in order (``lightning predict`` / ``trainer.predict``)."""
        return self._loader(self.test_set, shuffle=False)

    def on_after_batch_transfer(self, batch, dataloader_idx: int):
        """``[B, T, P, H, W]`` int16 counts -> float ``[T, B, P, H, W]`` (contiguous; ``flatten``: ``[T, B, P*H*W]``);
        labels as long."""
        frames, labels = batch
        x = frames.transpose(0, 1).to(torch.get_default_dtype(), memory_format=torch.contiguous_format)
        return (x.flatten(2) if self.flatten else x), labels.long()


class NMNISTDataModule(EventFramesDataModule):
    """N-MNIST (Orchard et al. 2015): 34x34 sensor, 2 polarities, 10 digits; 60,000 training and 10,000 test
    recordings (tonic's ``NMNIST``). Batches ``x [T, B, 2, 34, 34]`` (smaller with ``spatial_factor``)."""

    tonic_name, title = "NMNIST", "N-MNIST"
    sensor_size = (34, 34, 2)
    num_classes = 10
    file_type = ".bin"
    parts = {"train": "Train", "test": "Test"}


class DVSGestureDataModule(EventFramesDataModule):
    """IBM DVS-Gesture (Amir et al. 2017), tonic's preprocessed version: 128x128 sensor, 2 polarities, 11 classes
    (10 gestures + other); 1,077 training and 264 test recordings (users 1-23 / 24-29). Batches
    ``x [T, B, 2, 128, 128]``; ``spatial_factor=0.25`` gives the common 32x32."""

    tonic_name, title = "DVSGesture", "DVS-Gesture"
    sensor_size = (128, 128, 2)
    num_classes = 11
    file_type = ".npy"
    parts = {"train": "ibmGestureTrain", "test": "ibmGestureTest"}


class CIFAR10DVSDataModule(EventFramesDataModule):
    """CIFAR10-DVS (Li et al. 2017): 128x128 sensor, 2 polarities, 10 classes, 10,000 recordings, no official test
    split: the fixed seeded 9:1-per-class split of the module docstring. Batches ``x [T, B, 2, 128, 128]``."""

    tonic_name, title = "CIFAR10DVS", "CIFAR10-DVS"
    sensor_size = (128, 128, 2)
    num_classes = 10
    file_type = ".aedat4"
    parts = {"all": ""}

    def _source(self, part):
        import tonic.datasets

        return tonic.datasets.CIFAR10DVS.filename, tonic.datasets.CIFAR10DVS.url

    def _tonic_download(self, part):
        import tonic.datasets

        tonic.datasets.CIFAR10DVS(str(self.data_dir))

    def _reader(self, part, transform):
        from ._tonic_datasets import CIFAR10DVS

        return CIFAR10DVS(str(self.data_dir), transform=transform)

    def split(self, targets: list[int]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(train, validation, test) indices of the recordings (sorted by path) with labels ``targets``."""
        rest, test_idx = per_class_split(targets, CIFAR10DVS_TEST_FRACTION, CIFAR10DVS_TEST_SEED)
        train_pos, val_pos = split_indices(len(rest), self.val_size, self.split_seed)
        return rest[train_pos], rest[val_pos], test_idx

    def _split_parts(self):
        require("aedat", "reading CIFAR10-DVS recordings (.aedat4)")
        data = self._cached("all")
        train_idx, val_idx, test_idx = self.split(data.dataset.targets)
        return data, train_idx, val_idx, data, test_idx
