"""W&B logging that never prompts and never needs an account: online when logged in, otherwise offline.

:class:`WandbLogger` is Lightning's ``WandbLogger`` with one more argument, ``mode``. With ``mode="auto"``
(the default) the mode is decided here, before ``wandb.init``, and printed:

1. ``WANDB_MODE`` set in the environment (``online``, ``offline``, ``disabled``; wandb's old names ``run`` and
   ``dryrun`` mean online and offline) wins;
2. otherwise ``online`` when credentials are found (:func:`wandb_credentials`: ``WANDB_API_KEY``,
   ``WANDB_IDENTITY_TOKEN_FILE``, or a ``.netrc`` entry for the W&B host, which ``wandb login`` writes);
3. otherwise ``offline``: the run is written to ``<save_dir>/wandb/offline-run-*`` and can be uploaded later
   with ``wandb sync <that directory>``.

In a recipe::

    trainer:
      logger:
        class_path: lit_snn.logging.WandbLogger
        init_args: {project: lit-snn, name: apex}
"""

from __future__ import annotations

import json
import netrc
import os
import struct
import zlib
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlparse

from lightning.pytorch.loggers import WandbLogger as _LightningWandbLogger
from lightning.pytorch.utilities import rank_zero_only

from lit_snn._optional import require


@rank_zero_only
def _say(message: str) -> None:
    """Print a one-line status message (on rank 0 only)."""
    print(message, flush=True)

MODES = ("auto", "online", "offline", "disabled")
_ENV_MODES = {"online": "online", "run": "online", "offline": "offline", "dryrun": "offline", "disabled": "disabled"}
DEFAULT_HOST = "https://api.wandb.ai"


def _netrc_files() -> list[Path]:
    if os.environ.get("NETRC"):
        return [Path(os.environ["NETRC"]).expanduser()]
    return [Path("~/.netrc").expanduser(), Path("~/_netrc").expanduser()]


def wandb_credentials() -> str | None:
    """Where W&B credentials are found without asking anyone, or ``None``.

    Looks at ``WANDB_API_KEY``, ``WANDB_IDENTITY_TOKEN_FILE`` and the ``.netrc`` file (``$NETRC``, ``~/.netrc``,
    ``~/_netrc``) for the host of ``WANDB_BASE_URL`` (default ``api.wandb.ai``), the places ``wandb.init`` reads.
    The credentials are not verified (that needs the network).
    """
    for var in ("WANDB_API_KEY", "WANDB_IDENTITY_TOKEN_FILE"):
        if os.environ.get(var):
            return var
    host = urlparse(os.environ.get("WANDB_BASE_URL", DEFAULT_HOST)).hostname
    for path in _netrc_files():
        if not path.is_file():
            continue
        try:
            entry = netrc.netrc(path).authenticators(host)
        except (netrc.NetrcParseError, OSError):
            continue
        if entry and entry[2]:
            return str(path)
    return None


def resolve_wandb_mode(mode: str = "auto") -> tuple[str, str]:
    """``(mode, reason)``: the W&B mode to run in (``online``, ``offline`` or ``disabled``) and why.

    >>> resolve_wandb_mode("offline")
    ('offline', 'mode=offline was asked for')
    """
    if mode not in MODES:
        raise ValueError(f"W&B mode must be one of {MODES}, got {mode!r}")
    if mode != "auto":
        return mode, f"mode={mode} was asked for"
    env = os.environ.get("WANDB_MODE")
    if env:
        if env not in _ENV_MODES:
            raise ValueError(f"WANDB_MODE must be one of {tuple(_ENV_MODES)}, got {env!r}")
        return _ENV_MODES[env], f"WANDB_MODE={env}"
    source = wandb_credentials()
    if source is not None:
        return "online", f"W&B credentials found in {source}"
    return "offline", "no W&B credentials found (WANDB_API_KEY or ~/.netrc from `wandb login`)"


class WandbLogger(_LightningWandbLogger):
    """Lightning's ``WandbLogger`` that picks online or offline mode itself and says which.

    Args:
        project: W&B project.
        name: display name of the run (W&B picks one when ``None``).
        save_dir: folder under which wandb writes its ``wandb/`` run directories (created if missing).
        mode: ``auto`` (see the module docstring), ``online``, ``offline`` or ``disabled``.
        log_model: upload checkpoints as W&B artifacts (``True`` at the end, ``"all"`` as they are written).
        tags: run tags.
        group: run group (e.g. one benchmark's runs).
        **kwargs: passed to ``lightning.pytorch.loggers.WandbLogger`` and from there to ``wandb.init``.
    """

    def __init__(
        self,
        project: str = "lit-snn",
        name: str | None = None,
        save_dir: str = ".",
        mode: Literal["auto", "online", "offline", "disabled"] = "auto",
        log_model: bool | Literal["all"] = False,
        tags: list[str] | None = None,
        group: str | None = None,
        **kwargs: Any,
    ) -> None:
        require("wandb", "W&B logging (lit_snn.logging.WandbLogger)")
        if kwargs.pop("offline", False):
            raise ValueError("WandbLogger: use mode='offline' (or 'auto', 'online', 'disabled'), not offline=True")
        self.mode, self.mode_reason = resolve_wandb_mode(mode)
        Path(save_dir).mkdir(parents=True, exist_ok=True)
        super().__init__(
            project=project, name=name, save_dir=save_dir, log_model=log_model, tags=tags, group=group,
            mode=self.mode, **kwargs,
        )
        if self._wandb_init.get("anonymous") is None:  # wandb 0.2x+ warns about the key even when it is None
            self._wandb_init.pop("anonymous", None)
        _say(f"W&B: {self.mode} run ({self.mode_reason})")
        self._announced = False

    @property
    def experiment(self) -> Any:
        run = super().experiment
        if not self._announced and self.mode == "offline" and getattr(run, "dir", None):
            self._announced = True
            run_dir = Path(run.dir).parent
            _say(f"W&B: offline run in {run_dir}; upload it later with: wandb sync {run_dir}")
        return run


_BLOCK = 32768  # LevelDB log block size
_FULL, _FIRST, _MIDDLE, _LAST = 1, 2, 3, 4


def _wandb_records(path: Path) -> list[bytes]:
    """The records of a ``.wandb`` transaction log (LevelDB log format, W&B header), CRC-checked.

    File: a 7-byte header ``b":W&B"``, magic ``0xBEE1`` (uint16 LE), version 0 (uint8); then 32 KiB blocks of
    chunks ``crc32 (uint32 LE) | length (uint16 LE) | type (uint8) | data``, with ``crc32 = crc32(type || data)``;
    a record is one FULL chunk or FIRST, MIDDLE..., LAST; a block tail shorter than 7 bytes is padding.
    """
    raw = path.read_bytes()
    if raw[:7] != struct.pack("<4sHB", b":W&B", 0xBEE1, 0):
        raise ValueError(f"{path} is not a W&B transaction log (header {raw[:7]!r})")
    records, pending, pos = [], b"", 7
    while pos + 7 <= len(raw):
        if _BLOCK - pos % _BLOCK < 7:
            pos += _BLOCK - pos % _BLOCK
            continue
        crc, length, kind = struct.unpack("<IHB", raw[pos : pos + 7])
        if kind == 0 and length == 0:  # zero padding at the end of a file still being written
            break
        data = raw[pos + 7 : pos + 7 + length]
        if zlib.crc32(data, zlib.crc32(bytes([kind]))) != crc or len(data) != length:
            raise ValueError(f"{path}: corrupt chunk at byte {pos} (checksum or length mismatch)")
        pos += 7 + length
        if kind == _FULL:
            records.append(data)
        elif kind == _FIRST:
            pending = data
        elif kind == _MIDDLE:
            pending += data
        elif kind == _LAST:
            records.append(pending + data)
    return records


def offline_run_history(run_dir: str | os.PathLike) -> list[dict[str, Any]]:
    """The rows an (offline) W&B run logged, read from its ``run-<id>.wandb`` file: ``[{key: value}, ...]``.

    ``run_dir`` is the run's folder (``.../wandb/offline-run-<date>-<id>``). Each row is one ``log`` call
    (Lightning logs a metric dict per step with ``trainer/global_step`` and ``epoch``); values are decoded from
    JSON. Reads the protobuf records with wandb's own message types; nothing is uploaded.
    """
    from wandb.proto import wandb_internal_pb2

    files = sorted(Path(run_dir).glob("run-*.wandb"))
    if len(files) != 1:
        raise FileNotFoundError(f"expected one run-*.wandb file in {run_dir}, found {[f.name for f in files]}")
    rows = []
    for data in _wandb_records(files[0]):
        record = wandb_internal_pb2.Record()
        record.ParseFromString(data)
        if record.WhichOneof("record_type") == "history":
            rows.append(
                {item.key or "/".join(item.nested_key): json.loads(item.value_json) for item in record.history.item}
            )
    return rows


__all__ = ["MODES", "WandbLogger", "offline_run_history", "resolve_wandb_mode", "wandb_credentials"]
