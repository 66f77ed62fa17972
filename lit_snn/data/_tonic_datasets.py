"""tonic's dataset readers, made offline and order-stable for the neuromorphic datamodules (imports tonic).

Each class keeps tonic's name (tonic stores a dataset under ``save_to/<class name>``), its directory walk and its
file reader, and changes two things:

- it never downloads: tonic downloads whenever its file-count heuristic fails (it also wants the archive kept next
  to the extracted files); the datamodule checks for the files itself and downloads through tonic's original class;
- its samples are sorted by file path, so index ``i`` (used by the seeded splits and the on-disk frame cache) is
  the same file on every machine (``os.walk`` lists files in file-system order).
"""

from __future__ import annotations

import numpy as np
import tonic
import tonic.datasets
import tonic.transforms


def _sort_by_path(dataset, *parallel: str) -> None:
    order = sorted(range(len(dataset.data)), key=lambda i: dataset.data[i])
    for name in ("data", "targets", *parallel):
        values = getattr(dataset, name)
        setattr(dataset, name, [values[i] for i in order])


def _no_download(self) -> None:
    raise RuntimeError(f"{type(self).__name__}: the datamodule checks for the files and downloads them itself")


class NMNIST(tonic.datasets.NMNIST):
    """tonic's N-MNIST reader (``NMNIST/{Train,Test}/<digit>/*.bin``), offline and sorted by path."""

    download = _no_download

    def _check_exists(self) -> bool:
        return True

    def __init__(self, save_to: str, train: bool = True, transform=None):
        super().__init__(save_to, train=train, transform=transform)
        _sort_by_path(self)


class DVSGesture(tonic.datasets.DVSGesture):
    """tonic's DVS-Gesture reader (``DVSGesture/ibmGesture{Train,Test}/userNN_<lighting>/<label>.npy``)."""

    download = _no_download

    def _check_exists(self) -> bool:
        return True

    def __init__(self, save_to: str, train: bool = True, transform=None):
        super().__init__(save_to, train=train, transform=transform)
        _sort_by_path(self, "users", "lighting")


class CIFAR10DVS(tonic.datasets.CIFAR10DVS):
    """tonic's CIFAR10-DVS reader (``CIFAR10DVS/<class name>/*.aedat4``; reading needs the ``aedat`` package)."""

    download = _no_download

    def _check_exists(self) -> bool:
        return True

    def __init__(self, save_to: str, transform=None):
        super().__init__(save_to, transform=transform)
        _sort_by_path(self)


READERS = {"NMNIST": NMNIST, "DVSGesture": DVSGesture, "CIFAR10DVS": CIFAR10DVS}


class EventsToFrames:
    """events -> optional ``Denoise(filter_time)`` -> optional ``Downsample(spatial_factor)`` ->
    ``ToFrame(n_time_bins=T)``: int16 frames ``[T, P, H, W]`` counting events per bin, polarity and pixel.

    Unlike ``tonic.transforms.Compose``, a recording left empty (e.g. by denoising) still gives all-zero frames
    of the usual shape and dtype.
    """

    def __init__(self, sensor_size: tuple[int, int, int], num_steps: int, denoise_time: float | None,
                 spatial_factor: float):
        self.steps = []
        if denoise_time is not None:
            self.steps.append(tonic.transforms.Denoise(filter_time=denoise_time))
        if spatial_factor != 1.0:
            self.steps.append(tonic.transforms.Downsample(spatial_factor=spatial_factor))
        self.frame_size = scaled_sensor_size(sensor_size, spatial_factor)
        self.num_steps = num_steps
        self.to_frame = tonic.transforms.ToFrame(sensor_size=self.frame_size, n_time_bins=num_steps)

    def __call__(self, events: np.ndarray) -> np.ndarray:
        for step in self.steps:
            events = step(events)
        if len(events) == 0:
            width, height, polarities = self.frame_size
            return np.zeros((self.num_steps, polarities, height, width), dtype=np.int16)
        return self.to_frame(events)


def scaled_sensor_size(sensor_size: tuple[int, int, int], spatial_factor: float) -> tuple[int, int, int]:
    """Sensor ``(W, H, P)`` after ``Downsample(spatial_factor)``, which truncates ``x * f``: ``floor((W-1) f) + 1``."""
    width, height, polarities = sensor_size
    return int((width - 1) * spatial_factor) + 1, int((height - 1) * spatial_factor) + 1, polarities
