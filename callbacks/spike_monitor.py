r"""Pictures of a spiking network's activity, logged every few validation epochs.

For every monitored neuron layer, at the end of a monitored validation epoch:

- **raster**: the spikes of the first ``num_samples`` samples of the epoch's first validation batch, one panel per
  sample, time step on x, neuron on y (the first ``max_neurons`` neurons of the flattened layer);
- **rates**: a histogram of per-neuron firing rates over the whole validation epoch,
  ``rate_j = (spikes of neuron j) / (samples * T)``, with the mean rate and the share of silent neurons
  (``rate_j = 0``) in the title;
- **membrane**: the charged membrane ``h_t`` of ``num_traces`` neurons for the first sample of the first batch,
  with the (base) threshold and the spike times. The neuron's input is captured by a forward pre-hook and the
  callback calls ``neuron.forward_with_membrane`` on it itself; the neurons shown are the most active ones of that
  sample (ties: lower index first).

Forward hooks are installed on the neurons only during monitored validation epochs (removed at the epoch's end),
so training steps run untouched. Only global rank 0 monitors (its share of the validation data).

Loggers: :class:`~lightning.pytorch.loggers.TensorBoardLogger` gets ``experiment.add_image`` with the tag
``spike_monitor/<kind>/<layer>``; any logger with a W&B-style ``log_image(key, images, step, caption=...)``
(:class:`~lightning.pytorch.loggers.WandbLogger`) gets one call per kind, key ``spike_monitor/<kind>``, one image
per layer with the layer name as caption. A trainer without either raises at setup (a monitor that silently logs
nothing is a bug); other loggers beside a supported one get a one-time warning. Images are RGB ``uint8`` arrays of
``round(figsize[1] * dpi) x round(figsize[0] * dpi)`` pixels, drawn with matplotlib's Agg canvas (no pyplot state).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from lightning.pytorch import LightningModule, Trainer
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.loggers import Logger, TensorBoardLogger
from lightning.pytorch.utilities import rank_zero_warn
from torch import nn

from lit_snn._optional import require
from lit_snn.neurons import SpikingNeuron

from .progressive_sparsity import resolve_net

KINDS = ("raster", "rates", "membrane")


def neuron_layers(net: nn.Module) -> dict[str, nn.Module]:
    """The network's neuron layers: ``net.neuron_layers()`` when declared, else its ``SpikingNeuron`` modules."""
    declared = getattr(net, "neuron_layers", None)
    if callable(declared):
        return dict(declared())
    return {name: m for name, m in net.named_modules() if isinstance(m, SpikingNeuron)}


def _supports_images(logger: Logger) -> bool:
    return isinstance(logger, TensorBoardLogger) or callable(getattr(logger, "log_image", None))


def render(fig) -> np.ndarray:
    """Draw a matplotlib ``Figure`` on an Agg canvas; RGB ``uint8`` array ``[H, W, 3]``."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    return np.asarray(canvas.buffer_rgba())[..., :3].copy()


def _thresholds(neuron: nn.Module, neuron_shape: torch.Size) -> torch.Tensor | None:
    """The neuron's (base) threshold per flattened neuron, or ``None`` when it has no numeric ``threshold``."""
    threshold = getattr(neuron, "threshold", None)
    if not isinstance(threshold, (torch.Tensor, float, int)):
        return None
    return torch.as_tensor(threshold, dtype=torch.float32).detach().cpu().expand(neuron_shape).flatten()


class _Probe:
    """Forward hooks on one neuron module for one validation epoch."""

    def __init__(self, module: nn.Module, num_samples: int) -> None:
        self.module, self.num_samples = module, num_samples
        self.input: torch.Tensor | None = None  # first call's input, first sample: [T, 1, ...]
        self.raster: torch.Tensor | None = None  # first call's spikes, first num_samples samples: [T, S, N]
        self.counts: torch.Tensor | None = None  # per-neuron spike counts over the epoch: [N]
        self.num_samples_seen = 0
        self.num_steps = 0
        self.handles = [module.register_forward_pre_hook(self._pre), module.register_forward_hook(self._post)]

    def _pre(self, module: nn.Module, args: tuple) -> None:
        if self.input is None:
            self.input = args[0].detach()[:, :1].clone()

    def _post(self, module: nn.Module, args: tuple, out: torch.Tensor) -> None:
        spikes = out.detach().flatten(2)  # [T, B, N]
        if self.raster is None:
            self.raster = spikes[:, : self.num_samples].float().cpu()
        counts = spikes.sum(dim=(0, 1), dtype=torch.float64)
        self.counts = counts if self.counts is None else self.counts + counts
        self.num_samples_seen += spikes.shape[1]
        self.num_steps = spikes.shape[0]

    def remove(self) -> None:
        for h in self.handles:
            h.remove()
        self.handles = []


class SpikeMonitor(Callback):
    """Log spike rasters, firing-rate histograms and membrane traces every ``every_n_epochs`` validation epochs.

    See the module docstring for what each picture shows and how it reaches the logger.

    Args:
        every_n_epochs: monitor the validation epochs whose 1-based count (sanity checks excluded) is a
            multiple of this.
        num_samples: samples shown in each raster.
        max_neurons: neurons shown in each raster (the first ones of the flattened layer).
        num_traces: neurons whose membrane is plotted.
        layers: names of the neuron layers to monitor (``None``: all of them, see :func:`neuron_layers`).
        net_attr: where the network lives in the LightningModule (see
            :func:`lit_snn.callbacks.progressive_sparsity.resolve_net`).
        figsize: figure size in inches ``(width, height)``.
        dpi: dots per inch; images are ``round(height * dpi) x round(width * dpi)`` pixels.

    Example::

        trainer = Trainer(logger=TensorBoardLogger("logs"), callbacks=[SpikeMonitor(every_n_epochs=5)])
    """

    def __init__(
        self,
        every_n_epochs: int = 1,
        num_samples: int = 4,
        max_neurons: int = 128,
        num_traces: int = 4,
        layers: Sequence[str] | None = None,
        net_attr: str | None = None,
        figsize: tuple[float, float] = (8.0, 4.0),
        dpi: int = 100,
    ) -> None:
        for arg, value in (
            ("every_n_epochs", every_n_epochs), ("num_samples", num_samples), ("max_neurons", max_neurons),
            ("num_traces", num_traces), ("dpi", dpi),
        ):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{arg} must be an int >= 1, got {value!r}")
        if (
            not isinstance(figsize, (tuple, list)) or len(figsize) != 2
            or not all(isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0 for v in figsize)
        ):
            raise ValueError(f"figsize must be two positive numbers (width, height) in inches, got {figsize!r}")
        if layers is not None and (
            isinstance(layers, str) or not layers or not all(isinstance(n, str) for n in layers)
        ):
            raise ValueError(f"layers must be None or a non-empty list of neuron layer names, got {layers!r}")
        require("matplotlib", "SpikeMonitor")
        self.every_n_epochs = every_n_epochs
        self.num_samples = num_samples
        self.max_neurons = max_neurons
        self.num_traces = num_traces
        self.layers = None if layers is None else list(layers)
        self.net_attr = net_attr
        self.figsize = (float(figsize[0]), float(figsize[1]))
        self.dpi = dpi
        self.validation_epochs = 0
        self._probes: dict[str, _Probe] = {}
        #: images of the last monitored epoch: "<kind>/<layer>" -> RGB uint8 [H, W, 3]
        self.images: dict[str, np.ndarray] = {}
        #: per-neuron firing rates of the last monitored epoch: layer -> [N] (float64, CPU)
        self.rates: dict[str, torch.Tensor] = {}
        self._warned: set[int] = set()

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """``(height, width, 3)`` in pixels."""
        return round(self.figsize[1] * self.dpi), round(self.figsize[0] * self.dpi), 3

    # -- targets ----------------------------------------------------------------------------------------
    def monitored_layers(self, pl_module: nn.Module) -> dict[str, nn.Module]:
        found = neuron_layers(resolve_net(pl_module, self.net_attr))
        if not found:
            raise ValueError(f"SpikeMonitor: {type(pl_module).__name__} has no spiking neuron layers to monitor")
        if self.layers is None:
            return found
        unknown = [n for n in self.layers if n not in found]
        if unknown:
            raise ValueError(f"SpikeMonitor: layers {unknown} are not neuron layers; accepted: {sorted(found)}")
        return {n: found[n] for n in self.layers}

    # -- hooks ------------------------------------------------------------------------------------------
    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        if stage not in ("fit", "validate"):
            return
        self.monitored_layers(pl_module)
        if not any(_supports_images(lg) for lg in trainer.loggers):
            names = [type(lg).__name__ for lg in trainer.loggers] or "no logger"
            raise ValueError(
                f"SpikeMonitor logs images, but the trainer has {names}: add a WandbLogger or TensorBoardLogger "
                "(or any logger with log_image(key, images, step)), or remove the callback"
            )

    def on_validation_epoch_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if trainer.sanity_checking:
            return
        self.validation_epochs += 1
        if self.validation_epochs % self.every_n_epochs or not trainer.is_global_zero:
            return
        self._probes = {
            name: _Probe(module, self.num_samples) for name, module in self.monitored_layers(pl_module).items()
        }

    def on_validation_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if not self._probes:
            return
        probes, self._probes = self._probes, {}
        for probe in probes.values():
            probe.remove()
        self.images, self.rates = {}, {}
        for name, probe in probes.items():
            if probe.counts is None:
                continue  # the layer was not called in this epoch (e.g. an unused branch)
            self.rates[name] = (probe.counts / (probe.num_samples_seen * probe.num_steps)).cpu()
            self.images[f"raster/{name}"] = self._raster(name, probe)
            self.images[f"rates/{name}"] = self._rates(name, probe)
            self.images[f"membrane/{name}"] = self._membrane(name, probe)
        self._log(trainer)

    def on_exception(self, trainer: Trainer, pl_module: LightningModule, exception: BaseException) -> None:
        self.teardown(trainer, pl_module, "")

    def teardown(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        for probe in self._probes.values():
            probe.remove()
        self._probes = {}

    def state_dict(self) -> dict[str, Any]:
        return {"validation_epochs": self.validation_epochs}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.validation_epochs = int(state_dict["validation_epochs"])

    # -- pictures ---------------------------------------------------------------------------------------
    def _figure(self):
        from matplotlib.figure import Figure

        return Figure(figsize=self.figsize, dpi=self.dpi)

    def _raster(self, name: str, probe: _Probe) -> np.ndarray:
        spikes = probe.raster[:, :, : self.max_neurons]  # [T, S, N]
        fig = self._figure()
        axes = fig.subplots(1, spikes.shape[1], sharey=True, squeeze=False)[0]
        for i, ax in enumerate(axes):
            ax.imshow(spikes[:, i].T.numpy(), aspect="auto", cmap="Greys", vmin=0, vmax=1, interpolation="nearest",
                      origin="lower")
            ax.set_title(f"sample {i}", fontsize=8)
            ax.set_xlabel("time step", fontsize=8)
        axes[0].set_ylabel(f"neuron (first {spikes.shape[2]})", fontsize=8)
        fig.suptitle(f"{name}: spike raster", fontsize=9)
        return render(fig)

    def _rates(self, name: str, probe: _Probe) -> np.ndarray:
        rates = self.rates[name].numpy()
        fig = self._figure()
        ax = fig.subplots()
        ax.hist(rates, bins=20, range=(0.0, max(1.0, float(rates.max()))))
        ax.set_xlabel("firing rate (spikes per neuron per step)")
        ax.set_ylabel("neurons")
        ax.set_title(
            f"{name}: {rates.size} neurons, mean rate {rates.mean():.4f}, silent {np.mean(rates == 0):.1%}",
            fontsize=9,
        )
        return render(fig)

    def _membrane(self, name: str, probe: _Probe) -> np.ndarray:
        neuron = probe.module
        with torch.no_grad():
            spikes, h = neuron.forward_with_membrane(probe.input)
        spikes, h = spikes.flatten(1).float().cpu(), h.flatten(1).float().cpu()  # [T, N]
        chosen = torch.argsort(-spikes.sum(0), stable=True)[: self.num_traces]
        threshold = _thresholds(neuron, probe.input.shape[2:])
        steps = np.arange(h.shape[0])
        fig = self._figure()
        ax = fig.subplots()
        for j in chosen.tolist():
            (line,) = ax.plot(steps, h[:, j].numpy(), marker="o", label=f"neuron {j}")
            fired = spikes[:, j].numpy() > 0
            ax.plot(steps[fired], h[fired, j].numpy(), linestyle="none", marker="*", markersize=12,
                    color=line.get_color())
            if threshold is not None:
                ax.axhline(float(threshold[j]), color=line.get_color(), linestyle="--", linewidth=0.8)
        from matplotlib.ticker import MaxNLocator

        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel("time step")
        ax.set_ylabel("membrane h_t (before reset)")
        ax.set_title(f"{name}: membrane of sample 0 (dashed: threshold, star: spike)", fontsize=9)
        ax.legend(fontsize=7)
        return render(fig)

    # -- logging ----------------------------------------------------------------------------------------
    def _log(self, trainer: Trainer) -> None:
        step = trainer.global_step
        for logger in trainer.loggers:
            if isinstance(logger, TensorBoardLogger):
                for key, image in self.images.items():
                    logger.experiment.add_image(f"spike_monitor/{key}", image, global_step=step, dataformats="HWC")
            elif callable(getattr(logger, "log_image", None)):
                for kind in KINDS:
                    keys = [k for k in self.images if k.startswith(f"{kind}/")]
                    if keys:
                        logger.log_image(
                            key=f"spike_monitor/{kind}", images=[self.images[k] for k in keys], step=step,
                            caption=[k.split("/", 1)[1] for k in keys],
                        )
            elif id(logger) not in self._warned:
                self._warned.add(id(logger))
                rank_zero_warn(
                    f"SpikeMonitor: {type(logger).__name__} cannot take images; the spike pictures go only to the "
                    "image-capable loggers"
                )
