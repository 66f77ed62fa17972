"""lit-snn: a PyTorch Lightning plugin suite for spiking neural networks.

Importing ``lit_snn`` is cheap and needs only torch: ``lit_snn.metrics`` must stay usable with torch and
torchmetrics alone, so nothing here imports lightning or an SNN library.
"""

__version__ = "0.1.0"
