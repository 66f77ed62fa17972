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

import netrc
import os
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlparse

from lightning.pytorch.loggers import WandbLogger as _LightningWandbLogger
from lightning.pytorch.utilities import rank_zero_info

from lit_snn._optional import require

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
        rank_zero_info(f"W&B: {self.mode} run ({self.mode_reason})")
        self._announced = False

    @property
    def experiment(self) -> Any:
        run = super().experiment
        if not self._announced and self.mode == "offline" and getattr(run, "dir", None):
            self._announced = True
            run_dir = Path(run.dir).parent
            rank_zero_info(f"W&B: offline run in {run_dir}; upload it later with: wandb sync {run_dir}")
        return run


__all__ = ["MODES", "WandbLogger", "resolve_wandb_mode", "wandb_credentials"]
