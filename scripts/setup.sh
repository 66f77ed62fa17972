#!/usr/bin/env bash
# Creates .venv and installs lit-snn with every extra. Safe to re-run: it reinstalls only when
# pyproject.toml or constraints.txt changed.
#   torch is pinned by constraints.txt (2.13.0); on the project's CPU machines pip takes the local CPU build,
#   elsewhere the registry's build for the platform (CUDA on Linux).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
VENV=${VENV:-.venv}
stamp="$VENV/.lit-snn-installed"
want=$(cat pyproject.toml constraints.txt | sha256sum | cut -d' ' -f1)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  exit 0
fi
[ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
"$VENV/bin/python" -m pip install --quiet --upgrade pip
# torch first, alone, so nothing else can pull a different build.
"$VENV/bin/python" -m pip install --quiet -c constraints.txt torch
"$VENV/bin/python" -m pip install --quiet -c constraints.txt -e ".[all,dev]"
# spikingjelly depends on torchvision; lit-snn never uses it. Where the registry's torchvision does not
# match the installed torch (the CPU build here), importing it breaks lightning and torchmetrics: remove it.
if ! "$VENV/bin/python" -c "import torchvision" >/dev/null 2>&1; then
  "$VENV/bin/python" -m pip uninstall --quiet -y torchvision
fi
"$VENV/bin/python" -c "import lit_snn, lit_snn.metrics, lightning, torchmetrics, snntorch, spikingjelly, tonic, wandb"
echo "$want" > "$stamp"
