"""CIFAR10-DVS datamodule on small ``.aedat4`` recordings in the real AEDAT 4.0 format (tests/aedat4_writer.py),
read through tonic's ``CIFAR10DVS`` reader and the ``aedat`` package, in tonic's layout
``CIFAR10DVS/<class name>/*.aedat4``."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest
import torch

tonic = pytest.importorskip("tonic")
pytest.importorskip("aedat")

from aedat4_writer import EVENT, MAGIC, write_aedat4  # noqa: E402

from lit_snn.data.neuromorphic import CIFAR10DVSDataModule  # noqa: E402

EVENT_DTYPE = np.dtype([("t", "<u8"), ("x", "<u2"), ("y", "<u2"), ("p", "?")])
CLASSES = ("airplane", "cat", "truck")  # labels 0, 3, 9 in tonic's CIFAR10DVS.classes
PER_CLASS = 6  # round(0.1 * 6) = 1 test recording per class


def random_events(rng: np.random.Generator, n: int) -> np.ndarray:
    """``n`` events with increasing timestamps (microseconds, starting late like real recordings) on 128x128."""
    events = np.zeros(n, EVENT_DTYPE)
    events["t"] = 1_000_000 + np.cumsum(rng.integers(1, 200, n))
    events["x"], events["y"] = rng.integers(0, 128, n), rng.integers(0, 128, n)
    events["p"] = rng.integers(0, 2, n).astype(bool)
    return events


def write_cifar10dvs_tree(root, classes=CLASSES, per_class=PER_CLASS, seed=0) -> dict[str, np.ndarray]:
    """Recordings ``<root>/CIFAR10DVS/<class>/cifar10_<class>_<k>.aedat4`` (tonic's layout), 40-120 events each,
    written in packets of 16 events. Returns {path: events}."""
    rng = np.random.default_rng(seed)
    written = {}
    for name in classes:
        for k in range(per_class):
            path = root / "CIFAR10DVS" / name / f"cifar10_{name}_{k}.aedat4"
            events = random_events(rng, int(rng.integers(40, 121)))
            write_aedat4(path, events, packet_size=16)
            written[str(path)] = events
    return written


def expected_frames(events: np.ndarray, num_steps: int, factor: int = 1) -> torch.Tensor:
    """Event counts ``[T, 2, 128 // factor, 128 // factor]``, computed independently of tonic: bin width
    ``w = (t_last - t_0) // T``, event at ``t`` in bin ``(t - t_0) // w`` if that is < T (so at least the last event
    is dropped), pixel ``(x // factor, y // factor)``."""
    t0, t_last = int(events["t"][0]), int(events["t"][-1])
    width = (t_last - t0) // num_steps
    frames = torch.zeros(num_steps, 2, 128 // factor, 128 // factor)
    for t, x, y, p in events[["t", "x", "y", "p"]].tolist():
        k = (t - t0) // width
        if k < num_steps:
            frames[k, int(p), y // factor, x // factor] += 1
    return frames


@pytest.fixture(scope="module")
def cifar_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("cifar10dvs")
    return root, write_cifar10dvs_tree(root)


def test_writer_bytes_by_hand(tmp_path):
    events = np.array([(1234567, 127, 5, True)], EVENT_DTYPE)
    path = tmp_path / "one.aedat4"
    write_aedat4(path, events)
    raw = path.read_bytes()
    assert raw.startswith(b"#!AER-DAT4.0\r\n") and MAGIC == b"#!AER-DAT4.0\r\n"
    (header_size,) = struct.unpack_from("<I", raw, 14)
    header = raw[18:18 + header_size]
    assert header[4:8] == b"IOHE" and b'<attr key="typeIdentifier" type="string">EVTS</attr>' in header
    packet = raw[18 + header_size:]
    stream_id, size, inner_size = struct.unpack_from("<iII", packet)
    assert (stream_id, size, inner_size) == (0, len(packet) - 8, len(packet) - 12)
    assert packet[16:20] == b"EVTS"
    # the single Event is the packet's last 16 bytes: t int64, x int16, y int16, on bool, 3 padding bytes
    assert packet[-16:] == (1234567).to_bytes(8, "little") + bytes([127, 0, 5, 0, 1, 0, 0, 0])
    assert EVENT.size == 16


def test_reader_verifies_the_event_packets(tmp_path):
    """``aedat`` runs the flatbuffers verifier on each event packet (offsets in range, alignment, sizes): the
    writer's packets pass it, the same packet with its vector offset pushed out of the buffer does not."""
    import aedat

    events = np.array([(5, 1, 2, False), (9, 3, 4, True)], EVENT_DTYPE)
    good, bad = tmp_path / "good.aedat4", tmp_path / "bad.aedat4"
    write_aedat4(good, events)
    raw = bytearray(good.read_bytes())
    packet = 18 + struct.unpack_from("<I", raw, 14)[0] + 8  # the size-prefixed EventPacket buffer
    vector = packet + 24  # uint32 offset of the elements vector, after the table's int32 vtable offset at 20
    struct.pack_into("<I", raw, vector, struct.unpack_from("<I", raw, vector)[0] + 200)
    bad.write_bytes(bytes(raw))
    (decoded,) = list(aedat.Decoder(good))
    assert decoded["events"][["t", "x", "y"]].tolist() == [(5, 1, 2), (9, 3, 4)]
    assert decoded["events"]["on"].tolist() == [False, True]
    with pytest.raises(RuntimeError):
        list(aedat.Decoder(bad))


def test_writer_rejects_bad_events(tmp_path):
    with pytest.raises(ValueError, match="at least one event"):
        write_aedat4(tmp_path / "empty.aedat4", np.zeros(0, EVENT_DTYPE))
    with pytest.raises(ValueError, match="128x128 sensor"):
        write_aedat4(tmp_path / "off.aedat4", np.array([(0, 128, 0, True)], EVENT_DTYPE))
    with pytest.raises(ValueError, match="fields t, x, y, p"):
        write_aedat4(tmp_path / "plain.aedat4", np.zeros(3))


def test_reader_returns_the_written_events(cifar_root):
    from lit_snn.data._tonic_datasets import CIFAR10DVS

    root, written = cifar_root
    reader = CIFAR10DVS(str(root))
    assert reader.data == sorted(written)
    assert reader.targets == [tonic.datasets.CIFAR10DVS.classes[c] for c in CLASSES for _ in range(PER_CLASS)]
    for i, path in enumerate(reader.data):
        events, target = reader[i]
        for field in ("t", "x", "y", "p"):
            np.testing.assert_array_equal(events[field], written[path][field])


@pytest.mark.parametrize("spatial_factor, factor", [(1.0, 1), (0.5, 2)])
def test_batches_count_the_written_events(cifar_root, tmp_path, spatial_factor, factor):
    root, written = cifar_root
    num_steps, size = 5, 128 // factor
    dm = CIFAR10DVSDataModule(data_dir=str(root), batch_size=4, num_steps=num_steps, val_size=3,
                              spatial_factor=spatial_factor, cache_dir=str(tmp_path / "cache"))
    dm.prepare_data()
    dm.setup("fit")
    assert dm.input_shape == (2, size, size)
    sizes = (len(dm.train_set), len(dm.val_set), len(dm.test_set))
    assert sizes == (len(written) - 3 - 3, 3, 3)  # one test recording per class, 3 for validation
    paths = dm.test_set.dataset.dataset.data  # the reader's files, sorted by path
    for subset, loader in ((dm.val_set, dm.val_dataloader()), (dm.test_set, dm.test_dataloader())):
        batches = [dm.on_after_batch_transfer(batch, 0) for batch in loader]
        x = torch.cat([b[0] for b in batches], dim=1)
        y = torch.cat([b[1] for b in batches])
        assert batches[0][0].shape == (num_steps, min(4, len(subset)), 2, size, size)
        assert x.dtype == torch.get_default_dtype() and y.dtype == torch.long
        for j, i in enumerate(subset.indices):
            events = written[paths[i]]
            expected = expected_frames(events, num_steps, factor)
            torch.testing.assert_close(x[:, j], expected, rtol=0, atol=0)
            last_bin_start = events["t"][0] + num_steps * ((events["t"][-1] - events["t"][0]) // num_steps)
            assert x[:, j].sum() == np.sum(events["t"] < last_bin_start) <= len(events) - 1
            assert y[j] == tonic.datasets.CIFAR10DVS.classes[Path(paths[i]).parent.name]
    train = next(iter(dm.train_dataloader()))
    assert dm.on_after_batch_transfer(train, 0)[0].shape == (num_steps, 4, 2, size, size)
