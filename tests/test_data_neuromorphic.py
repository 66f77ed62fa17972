"""Neuromorphic datamodules on small recordings in each dataset's real on-disk format, parsed by tonic's readers."""

from __future__ import annotations

import importlib.util
import urllib.error

import numpy as np
import pytest
import torch

tonic = pytest.importorskip("tonic")

from lit_snn._optional import MissingDependencyError  # noqa: E402
from lit_snn.data import DownloadError  # noqa: E402
from lit_snn.data.neuromorphic import (  # noqa: E402
    CIFAR10DVSDataModule,
    DVSGestureDataModule,
    NMNISTDataModule,
    per_class_split,
)

# (x, y, p, t): with T = 3, tonic's ToFrame(n_time_bins=3) uses bins of floor((90 - 0) / 3) = 30 time units from the
# first event: t = 0 -> bin 0, t = 40 -> bin 1, t = 70 -> bin 2; the last event (t = 90 = 3 * 30) falls outside.
EVENTS = [(1, 2, 1, 0), (3, 4, 0, 40), (5, 6, 1, 70), (7, 8, 0, 90)]
EXPECTED_BINS = [(0, 1, 2, 1), (1, 0, 4, 3), (2, 1, 6, 5)]  # (t, p, y, x) set to 1


def write_nmnist_bin(path, events) -> None:
    """N-MNIST's 40-bit events: x, y, (p << 7) | t[22:16], t[15:8], t[7:0]."""
    raw = bytearray()
    for x, y, p, t in events:
        raw += bytes([x, y, (p << 7) | ((t >> 16) & 0x7F), (t >> 8) & 0xFF, t & 0xFF])
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(bytes(raw))


def shifted(events, dx):
    return [(x + dx, y, p, t) for x, y, p, t in events]


def expected_frames(t_steps, shape, dx=0, bins=EXPECTED_BINS):
    frames = torch.zeros(t_steps, *shape)
    for t, p, y, x in bins:
        frames[t, p, y, x + dx] = 1.0
    return frames


@pytest.fixture
def nmnist_root(tmp_path):
    for split, digits, per in (("Train", range(3), 3), ("Test", range(2), 2)):
        for d in digits:
            for k in range(per):
                write_nmnist_bin(tmp_path / "NMNIST" / split / str(d) / f"{k:05d}.bin", shifted(EVENTS, 3 * d + k))
    return tmp_path


def test_nmnist_batches_frames_and_split(nmnist_root):
    dm = NMNISTDataModule(data_dir=str(nmnist_root), batch_size=4, num_steps=3, val_size=2)
    dm.prepare_data()
    dm.setup("fit")
    assert len(dm.train_set) == 7 and len(dm.val_set) == 2 and len(dm.test_set) == 4
    assert not set(dm.train_set.indices) & set(dm.val_set.indices)
    x, y = dm.on_after_batch_transfer(next(iter(dm.train_dataloader())), 0)
    assert x.shape == (3, 4, 2, 34, 34) == (dm.num_steps, 4, *dm.input_shape) and x.dtype == torch.float32
    assert y.shape == (4,) and y.dtype == torch.long and x.is_contiguous()
    x, y = dm.on_after_batch_transfer(next(iter(dm.test_dataloader())), 0)
    # test recordings in path order: digit 0 files 0, 1, then digit 1 files 0, 1 (x shifted by 3 d + k)
    assert y.tolist() == [0, 0, 1, 1]
    for b, dx in enumerate([0, 1, 3, 4]):
        assert torch.equal(x[:, b], expected_frames(3, (2, 34, 34), dx))
    again = NMNISTDataModule(data_dir=str(nmnist_root), batch_size=4, num_steps=3, val_size=2, flatten=True)
    again.setup("fit")
    assert again.val_set.indices == dm.val_set.indices  # seeded split
    flat, _ = again.on_after_batch_transfer(next(iter(again.test_dataloader())), 0)
    assert again.input_shape == (2312,) and torch.equal(flat, x.flatten(2))


def test_nmnist_predict_runs_on_the_test_recordings(nmnist_root):
    """trainer.predict on an event datamodule: one prediction per test recording, in the test loader's order."""
    import lightning as L

    from lit_snn import SpikingClassifier
    from lit_snn.models import SpikingVGG

    dm = NMNISTDataModule(data_dir=str(nmnist_root), batch_size=3, num_steps=3, val_size=2)
    model = SpikingClassifier(net=lambda backend: SpikingVGG(backend, input_shape=(2, 34, 34), channels=(4, "M")))
    trainer = L.Trainer(accelerator="cpu", logger=False, enable_progress_bar=False, enable_model_summary=False)
    predictions = trainer.predict(model, datamodule=dm)
    assert [p.shape for p in predictions] == [(3, 10), (1, 10)]  # 4 test recordings in batches of 3
    frames = torch.cat([dm.on_after_batch_transfer(b, 0)[0] for b in dm.predict_dataloader()], dim=1)
    model.eval()
    with torch.no_grad():
        torch.testing.assert_close(torch.cat(predictions), model.net(frames).mean(0))


def test_nmnist_cache_serves_later_epochs(nmnist_root, tmp_path):
    cache = tmp_path / "frames"
    dm = NMNISTDataModule(data_dir=str(nmnist_root), batch_size=2, num_steps=3, val_size=0.25, cache_dir=str(cache))
    dm.setup("fit")
    first = [batch[0].clone() for batch in dm.test_dataloader()]
    assert len(list((cache / "NMNIST" / "test" / "T3_denoiseNone_scale1").glob("*.hdf5"))) == 4
    for f in (nmnist_root / "NMNIST" / "Test").glob("**/*.bin"):
        f.write_bytes(b"")  # the recordings are gone: only the cache can give the same frames
    second = [batch[0] for batch in dm.test_dataloader()]
    assert all(torch.equal(a, b) for a, b in zip(first, second, strict=True))


def test_nmnist_downsample_and_denoise(nmnist_root):
    dm = NMNISTDataModule(data_dir=str(nmnist_root), batch_size=4, num_steps=3, spatial_factor=0.5)
    assert dm.input_shape == (2, 17, 17)
    dm.setup("test")
    x, _ = dm.on_after_batch_transfer(next(iter(dm.test_dataloader())), 0)
    assert x.shape == (3, 4, 2, 17, 17)
    halved = [(t, p, y // 2, x // 2) for t, p, y, x in EXPECTED_BINS]  # x=1 (+0) -> 0, y=2 -> 1, ...
    assert torch.equal(x[:, 0], expected_frames(3, (2, 17, 17), bins=halved))
    # isolated events (no neighbour within 1 pixel and 10 us) are all removed: empty recordings, zero frames
    quiet = NMNISTDataModule(data_dir=str(nmnist_root), batch_size=4, num_steps=3, denoise_time=10.0,
                             cache_dir=str(nmnist_root / "cache2"))
    quiet.setup("test")
    x, _ = quiet.on_after_batch_transfer(next(iter(quiet.test_dataloader())), 0)
    assert x.shape == (3, 4, 2, 34, 34) and x.sum() == 0


def test_dvs_gesture_reader_and_shapes(tmp_path):
    root = tmp_path / "DVSGesture"
    # tonic's preprocessed layout: <split>/userNN_<lighting>/<label>.npy, columns x, y, p, t (milliseconds)
    events = np.array([[127, 0, 1, 0], [64, 32, 0, 5], [8, 100, 1, 9], [0, 0, 0, 12]], dtype=np.int64)
    for split, folders in (("ibmGestureTrain", {"user01_fluorescent": [0, 3], "user02_led": [1, 10]}),
                           ("ibmGestureTest", {"user24_natural": [2, 7]})):
        for folder, labels in folders.items():
            (root / split / folder).mkdir(parents=True)
            for label in labels:
                np.save(root / split / folder / f"{label}.npy", events)
    dm = DVSGestureDataModule(data_dir=str(tmp_path), batch_size=2, num_steps=3, val_size=1, spatial_factor=0.25)
    dm.setup("fit")
    assert dm.input_shape == (2, 32, 32) and dm.num_classes == 11
    assert len(dm.train_set) == 3 and len(dm.val_set) == 1
    reader = dm.test_set.dataset.dataset
    assert reader.users == [24, 24] and reader.targets == [2, 7]
    x, y = dm.on_after_batch_transfer(next(iter(dm.test_dataloader())), 0)
    assert x.shape == (3, 2, 2, 32, 32) and y.tolist() == [2, 7]
    # t in us: 0, 5000, 9000, 12000 -> bins of 4000: 0, 1, 2, (12000 outside); pixels divided by 4
    assert torch.equal(x[:, 0], expected_frames(3, (2, 32, 32), bins=[(0, 1, 0, 31), (1, 0, 8, 16), (2, 1, 25, 2)]))


def _cifar10dvs_tree(root, per_class=10):
    for name in tonic.datasets.CIFAR10DVS.classes:
        folder = root / "CIFAR10DVS" / name
        folder.mkdir(parents=True)
        for k in range(per_class):
            (folder / f"cifar10_{name}_{k}.aedat4").write_bytes(b"")


def test_per_class_split_by_hand():
    targets = [0] * 4 + [1] * 10 + [2] * 25
    rest, held = per_class_split(targets, 0.1, seed=0)
    generator = torch.Generator().manual_seed(0)
    expected = []
    for start, n in ((0, 4), (4, 10), (14, 25)):  # round(0.4) = 0, round(1.0) = 1, round(2.5) = 2 (half to even)
        perm = torch.randperm(n, generator=generator)
        expected += (start + perm[: round(0.1 * n)]).tolist()
    assert held.tolist() == sorted(expected) and len(held) == 3
    assert sorted(rest.tolist() + held.tolist()) == list(range(39))


def test_cifar10dvs_fixed_test_split(tmp_path):
    _cifar10dvs_tree(tmp_path)
    dm = CIFAR10DVSDataModule(data_dir=str(tmp_path), val_size=9, split_seed=1)
    dm.prepare_data()
    from lit_snn.data._tonic_datasets import CIFAR10DVS

    reader = CIFAR10DVS(str(tmp_path))
    assert reader.data == sorted(reader.data) and len(reader) == 100
    train, val, test = dm.split(reader.targets)
    assert len(test) == 10 and len(val) == 9 and len(train) == 81
    targets = torch.tensor(reader.targets)
    assert torch.bincount(targets[test], minlength=10).tolist() == [1] * 10  # 9:1 in every class
    assert len(set(train.tolist()) | set(val.tolist()) | set(test.tolist())) == 100  # disjoint, complete
    other = CIFAR10DVSDataModule(data_dir=str(tmp_path), val_size=9, split_seed=2).split(reader.targets)
    assert torch.equal(other[2], test) and not torch.equal(other[1], val)  # the test split ignores split_seed


@pytest.mark.skipif(importlib.util.find_spec("aedat") is not None, reason="aedat is installed")
def test_cifar10dvs_needs_aedat(tmp_path):
    _cifar10dvs_tree(tmp_path, per_class=1)
    with pytest.raises(MissingDependencyError, match="aedat"):
        CIFAR10DVSDataModule(data_dir=str(tmp_path)).setup("fit")


@pytest.mark.parametrize("cls, folder", [(NMNISTDataModule, "Train"), (DVSGestureDataModule, "ibmGestureTrain"),
                                         (CIFAR10DVSDataModule, "")])
def test_missing_recordings_error(tmp_path, cls, folder):
    dm = cls(data_dir=str(tmp_path))
    with pytest.raises(FileNotFoundError) as err:
        dm.prepare_data()
    message = str(err.value)
    assert str(tmp_path / cls.tonic_name / folder) in message and "download=True" in message
    assert "https://" in message
    with pytest.raises(FileNotFoundError):
        dm.setup("fit")


def test_download_failure_names_file_and_url(tmp_path, monkeypatch):
    def unreachable(url, *args, **kwargs):
        raise urllib.error.URLError("no route to host")

    monkeypatch.setattr(tonic.dataset, "download_and_extract_archive", unreachable)
    with pytest.raises(DownloadError) as err:
        NMNISTDataModule(data_dir=str(tmp_path), download=True).prepare_data()
    message = str(err.value)
    assert "train.zip" in message and tonic.datasets.NMNIST.train_url in message and "no route to host" in message
    assert str(tmp_path / "NMNIST") in message


@pytest.mark.parametrize(
    "kw, match",
    [({"num_steps": 0}, "num_steps"), ({"val_size": 2.0}, "val_size"), ({"spatial_factor": 2.0}, "spatial_factor"),
     ({"denoise_time": 0.0}, "denoise_time"), ({"num_workers": -1}, "num_workers"), ({"batch_size": 0}, "batch_size")],
)
def test_bad_arguments(kw, match):
    with pytest.raises(ValueError, match=match):
        NMNISTDataModule(data_dir="/nonexistent", **kw)
