"""Shared fixtures. Real data comes from ../shared/data (the full MNIST set in IDX form)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("LIT_SNN_DATA_DIR", ROOT.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """The directory holding ``mnist/`` (the four IDX .gz files)."""
    if not (SHARED_DATA / "mnist").is_dir():
        pytest.fail(f"MNIST not found under {SHARED_DATA}: set LIT_SNN_DATA_DIR to the folder that holds mnist/")
    return SHARED_DATA


@pytest.fixture(autouse=True)
def _seed_and_offline(monkeypatch):
    torch.manual_seed(0)
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
