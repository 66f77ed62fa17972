"""Small helpers shared by test modules (import as ``from helpers import ...``; pytest puts tests/ on sys.path)."""

from __future__ import annotations

import gzip

import numpy as np
import torch


def mnist_prefix(data_dir, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The first ``n`` MNIST training images (normalised, flattened) and labels, read from the IDX files.

    Reads only the first ``n`` records (``lit_snn.data.mnist.read_idx`` decompresses the whole file), so that tests
    needing a few real images stay fast.
    """
    with gzip.open(data_dir / "mnist" / "train-images-idx3-ubyte.gz") as f:
        f.read(16)
        x = np.frombuffer(f.read(n * 784), dtype=np.uint8).reshape(n, 784)
    with gzip.open(data_dir / "mnist" / "train-labels-idx1-ubyte.gz") as f:
        f.read(8)
        y = np.frombuffer(f.read(n), dtype=np.uint8)
    x = (torch.tensor(x, dtype=torch.float32) / 255 - 0.1307) / 0.3081
    return x, torch.tensor(y, dtype=torch.long)
