"""How long one MNIST training epoch's batches take to produce, on the CPU.

Measures, for the default MNISTDataModule (batch 128, T = 4, direct encoder, normalisation on):
  - reading the four IDX files into tensors (once per run),
  - iterating one training epoch of the loader (55,000 images, 430 batches: the seeded slicing alone),
  - the same plus the on-device pipeline of every batch (to float, normalise, encode to [T, B, 1, 28, 28]),
  - for comparison, a torch DataLoader over a TensorDataset of the same tensors (per-sample __getitem__ + collate).
Each epoch is timed ``--repeats`` times after one warm-up pass (min and median reported), with ``--threads`` torch
threads (default 1: the per-batch ops are tiny, and on a shared 2-core machine extra threads only add contention).
Writes a markdown table to benchmarks/results/data_loading.md.

    python benchmarks/data_loading.py --data-dir ../shared/data
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from pathlib import Path

import torch
from torch.utils.data import DataLoader, TensorDataset

from lit_snn.data import MNISTDataModule


def timings(fn, repeats: int) -> tuple[float, float]:
    """(min, median) seconds of ``repeats`` calls of ``fn`` after one untimed warm-up call."""
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times), statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", default=None, help="folder holding mnist/ (default: $LIT_SNN_DATA_DIR or ./data)")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "data_loading.md"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    dm = MNISTDataModule(data_dir=args.data_dir)
    start = time.perf_counter()
    dm.setup("fit")
    read_s = time.perf_counter() - start
    loader = dm.train_dataloader()
    n_batches = len(loader)

    def slicing_only():
        for _images, _labels in loader:
            pass

    def with_encoding():
        for images, labels in loader:
            dm.on_after_batch_transfer((images, labels), 0)

    dataset = TensorDataset(*dm.train_set)
    per_sample = DataLoader(dataset, batch_size=dm.batch_size, shuffle=True, generator=torch.Generator().manual_seed(0))

    def torch_dataloader():
        for _images, _labels in per_sample:
            pass

    rows = [
        ("epoch of batches: seeded slicing only", timings(slicing_only, args.repeats)),
        ("epoch of batches: slicing + float/normalise/direct encode to [4, 128, 1, 28, 28]",
         timings(with_encoding, args.repeats)),
        ("comparison: torch DataLoader over TensorDataset (per-sample __getitem__ + collate)",
         timings(torch_dataloader, args.repeats)),
    ]
    lines = [
        "# MNIST data loading (CPU)",
        "",
        f"MNISTDataModule defaults: batch {dm.batch_size}, T = {dm.num_steps}, direct encoder, normalize; "
        f"{len(dm.train_set[0])} training images = {n_batches} batches per epoch. Reading the two training IDX "
        f"files into tensors took {read_s:.2f} s (once per run).",
        f"Machine: {platform.machine()}, {os.cpu_count()} cores (shared), torch {torch.__version__}, "
        f"{torch.get_num_threads()} thread(s), {args.repeats} timed epochs after a warm-up. "
        "Command: `python benchmarks/data_loading.py --data-dir ../shared/data`.",
        "",
        "| one training epoch | min s | median s | median ms per batch |",
        "| --- | ---: | ---: | ---: |",
    ]
    for what, (fastest, median) in rows:
        lines.append(f"| {what} | {fastest:.3f} | {median:.3f} | {1000 * median / n_batches:.3f} |")
    text = "\n".join(lines) + "\n"
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(text)
    print(text)


if __name__ == "__main__":
    main()
