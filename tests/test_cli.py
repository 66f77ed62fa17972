"""The ``lightning`` command: help, backend swap, best checkpoint on val/acc, W&B offline runs and modes."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from lightning.pytorch import Callback

from lit_snn.cli import BestCheckpoint, best_checkpoint, build_cli
from lit_snn.logging import offline_run_history, resolve_wandb_mode, wandb_credentials
from lit_snn.module import SpikingClassifier
from lit_snn.neurons import neuron_class

pytestmark = pytest.mark.filterwarnings("ignore:LightningCLI's args parameter is intended")

ROOT = Path(__file__).resolve().parents[1]
RECIPES = ROOT / "recipes"

# EyeNet weights per epoch (see test_best_checkpoint_is_chosen_on_val_acc): on the 4 one-hot samples they give
#   epoch 0: diag(1, 1, 0, 0)          acc 0.5   loss (2 log(1 + 3/e) + 2 log 4) / 4 = 1.064
#   epoch 1: 0.1 * I                   acc 1.0   loss log(1 + 3 e^-0.1)              = 1.297
#   epoch 2: 10 * I, row 3 = 2 e_0     acc 0.75  loss ~ log(e^2 + 3) / 4             = 0.585
# so val/acc picks epoch 1 while val/loss would pick epoch 2.
SCHEDULE = [torch.diag(torch.tensor([1.0, 1.0, 0.0, 0.0])), 0.1 * torch.eye(4), 10 * torch.eye(4)]
SCHEDULE[2][3] = torch.tensor([2.0, 0.0, 0.0, 0.0])


class SetWeights(Callback):
    """Sets EyeNet's weight to ``SCHEDULE[epoch]`` before each validation (training uses lr 0)."""

    def on_validation_epoch_start(self, trainer, pl_module) -> None:
        with torch.no_grad():
            pl_module.net.weight.copy_(SCHEDULE[trainer.current_epoch])


def toy_args(root: Path, *extra: str) -> list[str]:
    return [
        "--model.net", "test_module.EyeNet",
        "--model.optimizer", "torch.optim.SGD", "--model.optimizer.lr", "0.0",
        "--data", "test_module.OneHotData",
        "--trainer.default_root_dir", str(root),
        "--trainer.logger", "false", "--trainer.enable_progress_bar", "false",
        "--trainer.enable_model_summary", "false",
        *extra,
    ]


def test_help_of_the_installed_command(capsys) -> None:
    command = Path(sys.executable).with_name("lightning")
    out = subprocess.run([str(command), "--help"], capture_output=True, text=True, check=True).stdout
    assert "{fit,validate,test,predict}" in out
    with pytest.raises(SystemExit) as exit_info:
        build_cli(["test", "--help"])
    assert exit_info.value.code == 0
    test_help = capsys.readouterr().out
    assert "--model.backend" in test_help and "--checkpoint.monitor" in test_help
    assert "default: best)" in test_help.split("  --ckpt_path CKPT_PATH")[1].split("  --verbose")[0]


def test_best_checkpoint_is_chosen_on_val_acc(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    cli = build_cli(["fit", *toy_args(tmp_path, "--trainer.max_epochs=3", "--trainer.callbacks+=test_cli.SetWeights")])
    callback = cli.trainer.checkpoint_callback
    assert callback.monitor == "val/acc" and callback.mode == "max"
    assert Path(callback.dirpath) == tmp_path / "checkpoints"
    assert callback.best_model_score.item() == 1.0
    best = torch.load(callback.best_model_path, weights_only=True)
    assert best["epoch"] == 1
    torch.testing.assert_close(best["state_dict"]["net.weight"], SCHEDULE[1])
    assert best_checkpoint(callback.dirpath) == Path(callback.best_model_path)
    # the checkpoint rebuilds itself from the CLI config it stores (no net argument needed)
    restored = SpikingClassifier.load_from_checkpoint(callback.best_model_path)
    assert type(restored.net).__name__ == "EyeNet"
    torch.testing.assert_close(restored.net.weight, SCHEDULE[1])

    # `lightning test` in a fresh process: ckpt_path defaults to "best", found through the fit's last.ckpt
    test_cli = build_cli(["test", *toy_args(tmp_path)])
    assert test_cli.trainer.ckpt_path == callback.best_model_path
    assert test_cli.trainer.callback_metrics["test/acc"].item() == 1.0


def test_min_epoch_leaves_early_epochs_out_of_the_best(tmp_path, monkeypatch) -> None:
    """--checkpoint.min_epoch 2: epoch 1 (val/acc 1.0) is not eligible; epoch 2 (0.75) becomes the best."""
    monkeypatch.chdir(tmp_path)
    cli = build_cli(["fit", *toy_args(
        tmp_path, "--trainer.max_epochs=3", "--trainer.callbacks+=test_cli.SetWeights", "--checkpoint.min_epoch=2"
    )])
    callback = cli.trainer.checkpoint_callback
    assert callback.best_model_score.item() == 0.75
    assert torch.load(callback.best_model_path, weights_only=True)["epoch"] == 2
    assert best_checkpoint(callback.dirpath) == Path(callback.best_model_path)
    with pytest.raises(ValueError, match="min_epoch must be an integer >= 0, got -1"):
        BestCheckpoint(min_epoch=-1)


def test_min_epoch_still_writes_a_resumable_last_checkpoint(tmp_path, monkeypatch) -> None:
    """Before min_epoch nothing is 'best', but last.ckpt is written every epoch so that the run can resume."""
    monkeypatch.chdir(tmp_path)
    cli = build_cli(["fit", *toy_args(tmp_path, "--trainer.max_epochs=2", "--checkpoint.min_epoch=5")])
    callback = cli.trainer.checkpoint_callback
    assert callback.best_model_path == ""
    last = torch.load(tmp_path / "checkpoints" / "last.ckpt", weights_only=True)
    assert last["epoch"] == 1
    with pytest.raises(FileNotFoundError, match="records no best checkpoint"):
        best_checkpoint(tmp_path / "checkpoints")


def test_evaluating_best_without_a_fit_says_what_to_do(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(FileNotFoundError, match=r"no last.ckpt there: run fit first .* or pass --ckpt_path PATH"):
        build_cli(["validate", *toy_args(tmp_path)])
    # an explicit null evaluates the initial weights (EyeNet starts at the identity: all correct)
    cli = build_cli(["validate", *toy_args(tmp_path), "--ckpt_path", "null"])
    assert cli.trainer.callback_metrics["val/acc"].item() == 1.0


@pytest.mark.parametrize("backend", ["snntorch", "spikingjelly"])
def test_model_backend_swaps_the_neurons_of_a_recipe(backend, tmp_path, monkeypatch, data_dir) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("LIT_SNN_DATA_DIR", str(data_dir))
    cli = build_cli([
        "fit", "--config", str(RECIPES / "baseline_lif.yaml"), "--model.backend", backend,
        "--trainer.fast_dev_run", "true", "--trainer.default_root_dir", str(tmp_path),
        "--trainer.enable_progress_bar", "false",
    ])
    neurons = cli.model.net.neuron_layers()
    assert len(neurons) == 2
    assert all(type(n) is neuron_class("lif", backend) for n in neurons.values())
    assert torch.isfinite(cli.trainer.callback_metrics["train/loss"])


def test_offline_wandb_run_holds_the_logged_keys(tmp_path, monkeypatch, data_dir, capsys) -> None:
    import wandb

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("LIT_SNN_DATA_DIR", str(data_dir))
    monkeypatch.delenv("WANDB_SILENT", raising=False)
    cli = build_cli([
        "fit", "--config", str(RECIPES / "baseline_lif.yaml"),
        "--trainer.max_epochs", "1", "--trainer.limit_train_batches", "3", "--trainer.limit_val_batches", "2",
        "--trainer.log_every_n_steps", "1", "--trainer.enable_progress_bar", "false",
        "--trainer.default_root_dir", str(tmp_path), "--trainer.logger.init_args.save_dir", str(tmp_path),
    ])
    metrics = {k: v.item() for k, v in cli.trainer.callback_metrics.items()}
    wandb.finish()
    runs = list((tmp_path / "wandb").glob("offline-run-*"))
    assert len(runs) == 1
    rows = _history_when_written(runs[0], "val/acc")
    logged = {key for row in rows for key in row}
    assert {"train/loss_step", "train/acc_step", "train/loss_epoch", "train/acc_epoch", "val/loss", "val/acc",
            "lr-AdamW", "trainer/global_step", "epoch"} <= logged
    assert [r["train/loss_step"] for r in rows if "train/loss_step" in r].__len__() == 3
    (val,) = [r for r in rows if "val/acc" in r]
    assert val["val/acc"] == pytest.approx(metrics["val/acc"]) and val["val/loss"] == pytest.approx(metrics["val/loss"])
    (epoch,) = [r for r in rows if "train/loss_epoch" in r]
    assert epoch["train/loss_epoch"] == pytest.approx(metrics["train/loss_epoch"])
    err = capsys.readouterr()
    assert "W&B: offline run (WANDB_MODE=offline)" in err.out + err.err
    assert f"wandb sync {runs[0]}" in err.out + err.err


def _history_when_written(run_dir: Path, key: str, timeout: float = 60.0) -> list[dict]:
    """The run's history once a row holds ``key``: wandb's service writes the file shortly after finish()."""
    deadline = time.monotonic() + timeout
    while True:
        rows = offline_run_history(run_dir)
        if any(key in row for row in rows) or time.monotonic() > deadline:
            return rows
        time.sleep(0.2)


def _no_credentials(monkeypatch, tmp_path) -> None:
    # WANDB_SERVICE: a run started earlier in this process leaves its service's address; a child would attach to it
    for var in ("WANDB_MODE", "WANDB_API_KEY", "WANDB_IDENTITY_TOKEN_FILE", "WANDB_BASE_URL", "WANDB_SERVICE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("NETRC", str(tmp_path / "netrc"))


def test_wandb_mode_is_decided_without_asking(monkeypatch, tmp_path) -> None:
    _no_credentials(monkeypatch, tmp_path)
    assert wandb_credentials() is None
    assert resolve_wandb_mode()[0] == "offline"
    (tmp_path / "netrc").write_text("machine example.org login user password abc\n")
    assert resolve_wandb_mode()[0] == "offline"  # an entry for another host does not count
    (tmp_path / "netrc").write_text("machine api.wandb.ai login user password " + "a" * 40 + "\n")
    assert wandb_credentials() == str(tmp_path / "netrc")
    assert resolve_wandb_mode() == ("online", f"W&B credentials found in {tmp_path / 'netrc'}")
    monkeypatch.setenv("WANDB_MODE", "dryrun")
    assert resolve_wandb_mode() == ("offline", "WANDB_MODE=dryrun")
    monkeypatch.delenv("WANDB_MODE")
    (tmp_path / "netrc").unlink()
    monkeypatch.setenv("WANDB_API_KEY", "x" * 40)
    assert resolve_wandb_mode() == ("online", "W&B credentials found in WANDB_API_KEY")
    assert resolve_wandb_mode("disabled")[0] == "disabled"
    with pytest.raises(ValueError, match="W&B mode must be one of"):
        resolve_wandb_mode("cloud")
    monkeypatch.setenv("WANDB_MODE", "sometimes")
    with pytest.raises(ValueError, match="WANDB_MODE must be one of"):
        resolve_wandb_mode()


def test_logger_without_account_runs_offline_without_prompting(monkeypatch, tmp_path) -> None:
    """No credentials, no WANDB_MODE, stdin closed: a real (offline) run starts and finishes."""
    _no_credentials(monkeypatch, tmp_path)
    code = (
        "from lit_snn.logging import WandbLogger\n"
        "logger = WandbLogger(project='p', save_dir='.')\n"
        "assert logger.mode == 'offline', logger.mode\n"
        "logger.log_metrics({'x': 1.0}, step=0)\n"
        "logger.experiment.finish()\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, stdin=subprocess.DEVNULL, capture_output=True, text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    (run,) = (tmp_path / "wandb").glob("offline-run-*")
    assert _history_when_written(run, "x")[0]["x"] == 1.0
