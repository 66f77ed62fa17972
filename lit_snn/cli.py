"""The ``lightning`` / ``lit-snn`` command: LightningCLI over lit-snn's models and datamodules."""

from __future__ import annotations


def main(args=None) -> None:
    from lightning.pytorch.cli import LightningCLI

    LightningCLI(args=args, subclass_mode_model=True, subclass_mode_data=True, auto_configure_optimizers=True)


if __name__ == "__main__":
    main()
