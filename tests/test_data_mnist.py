"""MNIST datamodule on the full set in ../shared/data/mnist, and its download path with the fetch replaced."""

from __future__ import annotations

import gzip
import shutil
import struct
import urllib.error

import lightning as L
import pytest
import torch

import lit_snn.data.download as download_mod
import lit_snn.data.mnist as mnist_mod
from lit_snn.data import DatasetNotFoundError, DownloadError, MNISTDataModule, TensorBatchLoader
from lit_snn.data.download import md5sum
from lit_snn.data.mnist import read_idx
from lit_snn.data.tensor import epoch_permutation, split_indices

TRAIN_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
TEST_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


@pytest.fixture(scope="module")
def mnist(data_dir):
    dm = MNISTDataModule(data_dir=str(data_dir), batch_size=128, num_steps=4)
    dm.setup("fit")
    dm.setup("test")
    return dm


def test_class_counts_and_sizes(mnist):
    train_x, train_y = mnist.train_set
    val_x, val_y = mnist.val_set
    assert train_x.shape == (55_000, 1, 28, 28) and train_x.dtype == torch.uint8
    assert val_x.shape == (5_000, 1, 28, 28)
    assert torch.bincount(torch.cat([train_y, val_y]), minlength=10).tolist() == TRAIN_COUNTS
    test_x, test_y = mnist.test_set
    assert test_x.shape == (10_000, 1, 28, 28)
    assert torch.bincount(test_y, minlength=10).tolist() == TEST_COUNTS


def test_split_is_disjoint_seeded_and_matches_the_files(mnist, data_dir):
    train_idx, val_idx = split_indices(60_000, 5_000, seed=0)
    assert len(val_idx) == 5_000 and len(train_idx) == 55_000
    assert torch.equal(torch.sort(torch.cat([train_idx, val_idx])).values, torch.arange(60_000))  # disjoint, complete
    again_train, again_val = split_indices(60_000, 5_000, seed=0)
    assert torch.equal(val_idx, again_val) and torch.equal(train_idx, again_train)
    assert not torch.equal(val_idx, split_indices(60_000, 5_000, seed=1)[1])
    assert len(split_indices(60_000, 0.1, seed=0)[1]) == 6_000
    labels = torch.from_numpy(read_idx(data_dir / "mnist" / "train-labels-idx1-ubyte.gz").astype("int64"))
    assert torch.equal(mnist.val_set[1], labels[val_idx]) and torch.equal(mnist.train_set[1], labels[train_idx])


def test_batches_shapes_dtypes_and_values(mnist):
    images, y = next(iter(mnist.train_dataloader()))
    assert images.shape == (128, 1, 28, 28) and images.dtype == torch.uint8 and y.dtype == torch.long
    x = mnist.encode(images)
    assert x.shape == (4, 128, *mnist.input_shape) == (4, 128, 1, 28, 28) and x.dtype == torch.float32
    expected = (images.float() / 255 - 0.1307) / 0.3081
    assert torch.allclose(x[3], expected, atol=1e-6) and torch.equal(x[0], x[3])
    assert mnist.num_classes == 10 and mnist.num_steps == 4
    assert len(mnist.train_dataloader()) == 430 and len(mnist.val_dataloader()) == 40
    assert len(mnist.test_dataloader()) == 79


@pytest.mark.parametrize(
    "kw, shape",
    [
        ({"flatten": True}, (784,)),
        ({"encoder": "rate", "encoder_kwargs": {"seed": 0}, "normalize": False}, (1, 28, 28)),
        ({"encoder": "latency", "normalize": False, "flatten": True}, (784,)),
        ({"encoder": "population", "encoder_kwargs": {"num_neurons": 3}, "normalize": False}, (1, 28, 28, 3)),
    ],
)
def test_encoders_and_flatten(mnist, kw, shape):
    dm = MNISTDataModule(data_dir=str(mnist.data_dir), num_steps=3, **kw)
    assert dm.input_shape == shape
    images = mnist.train_set[0][:5]
    x = dm.encode(images)
    assert x.shape == (3, 5, *shape) and x.dtype == torch.float32
    if kw.get("encoder") in ("rate", "latency", "population"):
        assert set(x.unique().tolist()) <= {0.0, 1.0}


def test_epoch_covers_every_sample_once_in_a_seeded_order(mnist):
    loader = mnist.train_dataloader()
    labels = torch.cat([y for _, y in loader])
    assert torch.equal(torch.bincount(labels), torch.bincount(mnist.train_set[1]))
    loader.sampler.set_epoch(0)
    first = next(iter(loader))[1]
    assert torch.equal(first, mnist.train_set[1][epoch_permutation(55_000, 42, 0)[:128]])
    second = next(iter(loader))[1]  # a pass by hand moves on to epoch 1
    assert torch.equal(second, mnist.train_set[1][epoch_permutation(55_000, 42, 1)[:128]])
    val = torch.cat([y for _, y in mnist.val_dataloader()])
    assert torch.equal(val, mnist.val_set[1])  # in order, unshuffled


def test_augmentation_is_seeded_changes_images_and_is_identity_at_zero(mnist):
    images = mnist.train_set[0][:16]

    def augmented(**kw):
        dm = MNISTDataModule(data_dir=str(mnist.data_dir), augment=True, normalize=False, seed=3, **kw)
        return dm.encode(images, train=True)[0], dm

    a, dm = augmented()
    b, _ = augmented()
    assert torch.equal(a, b)
    plain = images.float() / 255
    assert (a - plain).abs().amax(dim=(1, 2, 3)).min() > 0.05  # every image moved
    assert not torch.equal(dm.encode(images, train=True)[0], a)  # the next batch draws new parameters
    assert torch.equal(dm.encode(images, train=False)[0], plain)  # evaluation batches are never augmented
    still, _ = augmented(max_rotation=0.0, max_translation=0.0, scale_range=(1.0, 1.0))
    assert torch.allclose(still, plain, atol=1e-5)


def test_fit_delivers_time_first_batches(mnist, tmp_path):
    seen = {}

    class Probe(L.LightningModule):
        def __init__(self):
            super().__init__()
            self.layer = torch.nn.Linear(784, 10)

        def training_step(self, batch, batch_idx):
            x, y = batch
            seen["train"] = (tuple(x.shape), x.dtype, y.dtype)
            return torch.nn.functional.cross_entropy(self.layer(x).mean(0), y)

        def validation_step(self, batch, batch_idx):
            seen["val"] = tuple(batch[0].shape)

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.1)

    dm = MNISTDataModule(data_dir=str(mnist.data_dir), batch_size=32, num_steps=2, flatten=True)
    dm.train_set, dm.val_set = mnist.train_set, mnist.val_set  # skip re-reading the files
    trainer = L.Trainer(
        max_epochs=1, limit_train_batches=2, limit_val_batches=1, logger=False, enable_checkpointing=False,
        enable_progress_bar=False, enable_model_summary=False, default_root_dir=tmp_path, accelerator="cpu",
    )
    trainer.fit(Probe(), dm)
    assert seen == {"train": ((2, 32, 784), torch.float32, torch.long), "val": (2, 32, 784)}


def test_missing_file_error(tmp_path):
    dm = MNISTDataModule(data_dir=str(tmp_path))
    with pytest.raises(DatasetNotFoundError) as err:
        dm.prepare_data()
    message = str(err.value)
    assert str(tmp_path / "mnist" / "train-images-idx3-ubyte.gz") in message
    assert "download=True" in message and mnist_mod.MIRRORS[0] in message


def test_data_dir_from_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("LIT_SNN_DATA_DIR", str(tmp_path))
    assert MNISTDataModule().data_dir == tmp_path
    monkeypatch.delenv("LIT_SNN_DATA_DIR")
    assert str(MNISTDataModule().data_dir) == "data"


def test_download_round_trip_with_fetch_replaced(monkeypatch, tmp_path, data_dir):
    source = data_dir / "mnist"
    monkeypatch.setattr(mnist_mod, "FILES", {name: md5sum(source / name) for name in mnist_mod.FILES})
    fetched = []

    def fake_fetch(url, destination, timeout=60.0):
        fetched.append(url)
        shutil.copyfile(source / url.rsplit("/", 1)[1], destination)

    monkeypatch.setattr(download_mod, "fetch_url", fake_fetch)
    dm = MNISTDataModule(data_dir=str(tmp_path), download=True, val_size=0.5)
    dm.prepare_data()
    assert sorted(fetched) == sorted(mnist_mod.MIRRORS[0] + name for name in mnist_mod.FILES)
    assert sorted(p.name for p in (tmp_path / "mnist").iterdir()) == sorted(mnist_mod.FILES)
    dm.setup("test")
    assert torch.bincount(dm.test_set[1]).tolist() == TEST_COUNTS


def test_checksum_mismatch_and_unreachable_server(monkeypatch, tmp_path):
    def corrupt(url, destination, timeout=60.0):
        destination.write_bytes(b"not mnist")

    monkeypatch.setattr(download_mod, "fetch_url", corrupt)
    dm = MNISTDataModule(data_dir=str(tmp_path), download=True)
    with pytest.raises(DownloadError) as err:
        dm.prepare_data()
    message = str(err.value)
    assert "train-images-idx3-ubyte.gz" in message and "checksum mismatch" in message
    assert all(m + "train-images-idx3-ubyte.gz" in message for m in mnist_mod.MIRRORS)
    assert str(tmp_path / "mnist" / "train-images-idx3-ubyte.gz") in message
    assert list((tmp_path / "mnist").iterdir()) == []  # nothing corrupt left behind

    def unreachable(url, destination, timeout=60.0):
        raise urllib.error.URLError("no route to host")

    monkeypatch.setattr(download_mod, "fetch_url", unreachable)
    with pytest.raises(DownloadError, match="no route to host") as err:
        dm.prepare_data()
    assert "by hand" in str(err.value)


def test_truncated_or_partial_files_are_errors(tmp_path):
    folder = tmp_path / "mnist"
    folder.mkdir()
    with gzip.open(folder / "t10k-labels-idx1-ubyte.gz", "wb") as f:
        f.write(struct.pack(">BBBBI", 0, 0, 8, 1, 10_000) + bytes(100))
    with pytest.raises(ValueError, match="truncated"):
        read_idx(folder / "t10k-labels-idx1-ubyte.gz")
    with gzip.open(folder / "t10k-labels-idx1-ubyte.gz", "wb") as f:
        f.write(struct.pack(">BBBBI", 0, 0, 8, 1, 100) + bytes(100))
    with gzip.open(folder / "t10k-images-idx3-ubyte.gz", "wb") as f:
        f.write(struct.pack(">BBBBIII", 0, 0, 8, 3, 100, 28, 28) + bytes(100 * 784))
    with pytest.raises(ValueError, match="expected 10000 images"):
        MNISTDataModule(data_dir=str(tmp_path)).setup("test")


@pytest.mark.parametrize(
    "kw, match",
    [
        ({"encoder": "poisson"}, "encoder must be one of"),
        ({"num_steps": 0}, "num_steps"),
        ({"batch_size": 0}, "batch_size"),
        ({"val_size": -1}, "val_size"),
        ({"val_size": 1.5}, "val_size"),
        ({"val_size": "10"}, "val_size"),
        ({"encoder": "rate"}, "normalize=False"),
        ({"max_translation": 1.0}, "max_translation"),
        ({"scale_range": (1.2, 1.0)}, "scale_range"),
        ({"seed": -1}, "seed must be an integer >= 0"),
        ({"split_seed": 0.5}, "split_seed"),
    ],
)
def test_bad_arguments(kw, match):
    with pytest.raises(ValueError, match=match):
        MNISTDataModule(data_dir="/nonexistent", **kw)


def test_val_size_larger_than_the_set(data_dir):
    with pytest.raises(ValueError, match=r"val_size must be in \[0, 60000\)"):
        MNISTDataModule(data_dir=str(data_dir), val_size=60_000).setup("fit")


def test_loader_shards_ranks_and_drops_last():
    x, y = torch.arange(10).view(10, 1), torch.arange(10)
    shards = [TensorBatchLoader(x, y, 2, shuffle=True, seed=1, rank=r, world_size=3) for r in range(3)]
    seen = [torch.cat([b for _, b in loader]) for loader in shards]
    assert [len(s) for s in seen] == [3, 3, 3] and [len(loader) for loader in shards] == [2, 2, 2]
    assert len(set(torch.cat(seen).tolist())) == 9  # the ranks share one permutation, each a disjoint part
    assert torch.equal(torch.cat(seen).sort().values, epoch_permutation(10, 1, 0)[:9].sort().values)
    loader = TensorBatchLoader(x, y, 4, drop_last=True)
    assert len(loader) == 2 and [b.tolist() for _, b in loader] == [[0, 1, 2, 3], [4, 5, 6, 7]]
    assert len(TensorBatchLoader(x, y, 4)) == 3 and len(TensorBatchLoader(x[:0], y[:0], 4)) == 0
