"""CIFAR-10 datamodule on a small tarball in the real python-pickle format, written here."""

from __future__ import annotations

import io
import pickle
import tarfile

import pytest
import torch

import lit_snn.data.cifar10 as cifar_mod
import lit_snn.data.download as download_mod
from lit_snn.data import CIFAR10DataModule, DatasetNotFoundError, DownloadError
from lit_snn.data.cifar10 import ChecksumError, random_crop_flip, read_label_names
from lit_snn.data.download import md5sum

PER_BATCH = 4  # images per data_batch_i; test_batch holds 6
NAMES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


def _images(n: int, offset: int) -> torch.Tensor:
    """Distinct uint8 images [n, 3, 32, 32]: value (offset + i + c * 50 + row + col) mod 256."""
    i = torch.arange(n).view(n, 1, 1, 1)
    c = torch.arange(3).view(1, 3, 1, 1)
    r = torch.arange(32).view(1, 1, 32, 1)
    k = torch.arange(32).view(1, 1, 1, 32)
    return ((offset + 7 * i + 50 * c + r + k) % 256).to(torch.uint8)


def _write_tarball(path, images: dict[str, torch.Tensor], labels: dict[str, list[int]]) -> None:
    """The official layout: cifar-10-batches-py/{data_batch_1..5,test_batch,batches.meta}, pickled dicts."""
    with tarfile.open(path, "w:gz") as tar:

        def add(name, obj):
            blob = pickle.dumps(obj, protocol=2)
            info = tarfile.TarInfo(f"cifar-10-batches-py/{name}")
            info.size = len(blob)
            tar.addfile(info, io.BytesIO(blob))

        add("batches.meta", {b"label_names": [n.encode() for n in NAMES], b"num_cases_per_batch": PER_BATCH,
                             b"num_vis": 3072})
        for name, imgs in images.items():
            add(name, {b"batch_label": name.encode(), b"labels": labels[name],
                       b"data": imgs.reshape(len(imgs), 3072).numpy(), b"filenames": [b"x.png"] * len(imgs)})


@pytest.fixture
def tarball(tmp_path, monkeypatch):
    images = {f"data_batch_{i}": _images(PER_BATCH, 40 * i) for i in range(1, 6)}
    images["test_batch"] = _images(6, 3)
    labels = {name: [(j + k) % 10 for k in range(len(imgs))] for j, (name, imgs) in enumerate(images.items())}
    folder = tmp_path / "cifar10"
    folder.mkdir()
    path = folder / "cifar-10-python.tar.gz"
    _write_tarball(path, images, labels)
    monkeypatch.setattr(cifar_mod, "TARBALL_MD5", md5sum(path))  # the small tarball stands in for the real one
    return tmp_path, images, labels


def test_tarball_round_trip(tarball):
    root, images, labels = tarball
    dm = CIFAR10DataModule(data_dir=str(root), val_size=5, num_steps=2, batch_size=8)
    dm.setup("fit")
    dm.setup("test")
    train = torch.cat([images[f"data_batch_{i}"] for i in range(1, 6)])
    train_labels = torch.tensor(sum((labels[f"data_batch_{i}"] for i in range(1, 6)), []))
    all_x = torch.cat([dm.train_set[0], dm.val_set[0]])
    all_y = torch.cat([dm.train_set[1], dm.val_set[1]])
    assert dm.train_set[0].shape == (15, 3, 32, 32) and dm.val_set[0].shape == (5, 3, 32, 32)
    # every written image comes back with its label (channel planes in R, G, B order)
    for img, y in zip(train, train_labels, strict=True):
        match = (all_x == img).flatten(1).all(1)
        assert match.sum() == 1 and all_y[match].item() == y
    assert torch.equal(dm.test_set[0], images["test_batch"])
    assert dm.test_set[1].tolist() == labels["test_batch"] and dm.test_set[1].dtype == torch.long
    assert read_label_names(root / "cifar10" / "cifar-10-python.tar.gz") == NAMES


def test_batch_shapes_and_normalisation(tarball):
    root, images, _ = tarball
    dm = CIFAR10DataModule(data_dir=str(root), val_size=0, num_steps=3, batch_size=6, augment=False)
    dm.setup("test")
    raw, y = next(iter(dm.test_dataloader()))
    x = dm.encode(raw)
    assert x.shape == (3, 6, 3, 32, 32) and dm.input_shape == (3, 32, 32) and x.dtype == torch.float32
    assert y.shape == (6,) and y.dtype == torch.long
    mean = torch.tensor([0.4914, 0.4822, 0.4465]).view(1, 3, 1, 1)
    std = torch.tensor([0.2470, 0.2435, 0.2616]).view(1, 3, 1, 1)
    assert torch.allclose(x[1], (images["test_batch"].float() / 255 - mean) / std, atol=1e-6)
    flat = CIFAR10DataModule(data_dir=str(root), num_steps=2, flatten=True)
    assert flat.input_shape == (3072,) and flat.encode(raw).shape == (2, 6, 3072)


def test_crop_and_flip_match_a_hand_computed_crop():
    x = torch.rand(5, 3, 32, 32)
    generator = torch.Generator().manual_seed(11)
    out = random_crop_flip(x, 4, generator)
    replay = torch.Generator().manual_seed(11)
    offsets = torch.randint(0, 9, (2, 5), generator=replay)
    flips = torch.rand(5, generator=replay) < 0.5
    padded = torch.zeros(5, 3, 40, 40)
    padded[:, :, 4:36, 4:36] = x
    for b in range(5):
        dy, dx = offsets[:, b].tolist()
        crop = padded[b, :, dy : dy + 32, dx : dx + 32]
        assert torch.equal(out[b], crop.flip(-1) if flips[b] else crop)
    only_flips = random_crop_flip(x, 0, torch.Generator().manual_seed(0))  # padding 0: the crop is the image
    assert all(torch.equal(o, i) or torch.equal(o, i.flip(-1)) for o, i in zip(only_flips, x, strict=True))


def test_augmentation_seeded_and_changes_images(tarball):
    root, images, _ = tarball
    batch = images["test_batch"]

    def first(seed):
        dm = CIFAR10DataModule(data_dir=str(root), augment=True, normalize=False, seed=seed, num_steps=1)
        return dm.encode(batch, train=True)[0], dm

    a, dm = first(5)
    assert torch.equal(a, first(5)[0]) and not torch.equal(a, first(6)[0])
    plain = batch.float() / 255
    assert not torch.equal(a, plain)
    assert torch.equal(dm.encode(batch, train=False)[0], plain)  # evaluation batches are never augmented


def test_checksum_mismatch_is_an_error(tarball, monkeypatch):
    root, _, _ = tarball
    monkeypatch.setattr(cifar_mod, "TARBALL_MD5", "c58f30108f718f92721af3b95e74349a")  # the official one
    with pytest.raises(ChecksumError) as err:
        CIFAR10DataModule(data_dir=str(root)).setup("test")
    message = str(err.value)
    assert "cifar-10-python.tar.gz" in message and cifar_mod.URL in message and "expected c58f3" in message


def test_missing_tarball_and_download(tmp_path, monkeypatch, tarball):
    source_root, _, _ = tarball
    empty = tmp_path / "empty"
    with pytest.raises(DatasetNotFoundError, match="download=True") as err:
        CIFAR10DataModule(data_dir=str(empty)).prepare_data()
    assert str(empty / "cifar10" / "cifar-10-python.tar.gz") in str(err.value)

    urls = []

    def fake_fetch(url, destination, timeout=60.0):
        urls.append(url)
        destination.write_bytes((source_root / "cifar10" / "cifar-10-python.tar.gz").read_bytes())

    monkeypatch.setattr(download_mod, "fetch_url", fake_fetch)
    dm = CIFAR10DataModule(data_dir=str(empty), download=True, val_size=0.25)
    dm.prepare_data()
    dm.setup("fit")
    assert urls == ["https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"]
    assert len(dm.train_set[0]) == 15 and len(dm.val_set[0]) == 5

    def corrupt(url, destination, timeout=60.0):
        destination.write_bytes(b"truncated")

    monkeypatch.setattr(download_mod, "fetch_url", corrupt)
    with pytest.raises(DownloadError, match="checksum mismatch") as err:
        CIFAR10DataModule(data_dir=str(tmp_path / "other"), download=True).prepare_data()
    assert cifar_mod.URL in str(err.value) and "by hand" in str(err.value)


@pytest.mark.parametrize(
    "kw, match",
    [
        ({"crop_padding": -1}, "crop_padding"),
        ({"encoder": "latency"}, "normalize=False"),
        ({"num_steps": 0}, "num_steps"),
        ({"encoder": "ttfs"}, "encoder must be one of"),
    ],
)
def test_bad_arguments(kw, match):
    with pytest.raises(ValueError, match=match):
        CIFAR10DataModule(data_dir="/nonexistent", **kw)
