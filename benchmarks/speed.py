"""Training throughput of the Baseline LIF network on every neuron backend, against native snnTorch/SpikingJelly code
and the ANN with the same matrix products, with and without ``torch.compile``.

Network: 784-512-256-10, ``Linear -> BatchNorm -> LIF`` per hidden layer (tau=2, threshold 1, ATan(2) surrogate,
reset by subtraction with the reset detached), logits averaged over T, cross-entropy, AdamW. Batch 128 of real
MNIST training images (normalised, direct encoding: the same image at every step), all batches in memory.

Configurations (one process, timed side by side):

- ``lit-custom`` / ``lit-snntorch`` / ``lit-spikingjelly``: ``lit_snn.models.BaselineLIF(backend)`` (Linear and BN
  run once over the ``T*B`` rows; the neuron scans the sequence). The input is what the MNIST datamodule gives
  with direct coding: the encoder's stride-0 view over time, so the first layer (``TimeFirstLinear``) computes
  ``W x + b`` once instead of T times.
  On the CPU its second hidden layer reads the first layer's spikes event-driven (``sparse_input``: only the nonzero
  inputs are multiplied, :mod:`lit_snn.models.sparse`).
- ``lit-custom-dense``: ``lit-custom`` with the event-driven layer switched off (dense GEMM on the spikes).
- ``lit-custom-copy``: ``lit-custom-dense`` fed a materialised copy of the same input (``x.contiguous()`` inside the
  step), i.e. without the once-computed first layer either: every matrix product runs over ``T*B`` rows, exactly
  the products of the native codes and of the ANN.
- ``snntorch-native``: the usual snnTorch loop: for each step ``fc -> bn -> snn.Leaky`` (membrane from
  ``init_leaky()``; ``reset_mechanism="subtract"``, ``reset_delay=False``, ``surrogate.atan(alpha=2)``; snnTorch
  detaches the reset itself).
- ``spikingjelly-native``: SpikingJelly multi-step: ``layer.Linear``/``layer.BatchNorm1d`` and ``neuron.LIFNode``
  with ``step_mode="m"`` (``decay_input=False, v_reset=None, detach_reset=True, surrogate.ATan(alpha=2)``),
  ``functional.reset_net`` before every forward.
- ``ann``: ``Linear -> BatchNorm -> ReLU`` with the same shapes over ``T*B`` rows: the floor.
- ``neuron/*``: one neuron layer alone on a ``[T, 128, 512]`` current (``BN(W x + b)`` of the same MNIST batches),
  forward and backward of the spikes' sum: ``custom`` (the fused scan), ``custom-reference`` (the step-by-step
  autograd loop it replaced), ``snntorch-native``, ``spikingjelly-native`` and ``relu`` (the floor). This isolates
  the neuron from the matrix products, which dominate the training step on a CPU.

Timing: per configuration, ``--warmup`` steps, then ``--rounds`` rounds; in each round every configuration runs
``--iters`` training steps (the order rotates each round), so load from other processes hits all alike. Each step
(zero_grad, forward, loss, backward, optimizer step; CUDA synchronised) is timed alone; the table gives the median
and the interquartile range. ``os.getloadavg()`` is recorded before and after. ``torch.compile`` compiles the
model's forward (default inductor); its first call (compilation) is reported separately, and a failure is reported
as such.

Peak memory: on CPU, the peak total size of live torch tensors during one training step (after warm-up), from
the torch.profiler memory timeline (``profile_memory=True``); it counts parameters, gradients, optimizer state,
inputs, saved activations and temporaries, but not the allocator's cache or Python objects. On GPU,
``torch.cuda.max_memory_allocated`` over one step (after ``reset_peak_memory_stats``).

Results go to ``<out>.json`` (one entry per configuration, kept between runs: a run skips configurations already
there unless ``--redo``), ``<out>.md`` and ``<out>.png``.

    python benchmarks/speed.py                        # CPU, T = 4 and 32, eager and compiled
    python benchmarks/speed.py --steps 4 --modes eager --only lit-custom,ann
    python benchmarks/speed.py --device cuda --out benchmarks/results/speed_cuda
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
import traceback
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = (
    "lit-custom", "lit-custom-dense", "lit-custom-copy", "lit-snntorch", "lit-spikingjelly", "snntorch-native",
    "spikingjelly-native", "ann",
)
NEURONS = ("neuron/custom", "neuron/custom-reference", "neuron/snntorch-native", "neuron/spikingjelly-native",
           "neuron/relu")
MODES = ("eager", "compiled")
SIZES = (784, 512, 256, 10)
TAU, THRESHOLD, ALPHA = 2.0, 1.0, 2.0


# -- networks ---------------------------------------------------------------------------------------------------
class ANN(nn.Module):
    """``Linear -> BN -> ReLU`` twice and a Linear readout over the ``T*B`` rows: the same matrix products."""

    def __init__(self) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        for n_in, n_out in zip(SIZES[:-2], SIZES[1:-1], strict=True):
            layers += [nn.Linear(n_in, n_out), nn.BatchNorm1d(n_out), nn.ReLU()]
        self.body = nn.Sequential(*layers, nn.Linear(SIZES[-2], SIZES[-1]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x.flatten(0, 1)).unflatten(0, x.shape[:2])


class SnnTorchNative(nn.Module):
    """The usual snnTorch per-step loop: ``fc -> bn -> Leaky`` for each t, membranes from ``init_leaky()``."""

    def __init__(self) -> None:
        super().__init__()
        import snntorch as snn
        from snntorch import surrogate

        beta = 1.0 - 1.0 / TAU
        self.fc = nn.ModuleList(nn.Linear(a, b) for a, b in zip(SIZES[:-2], SIZES[1:-1], strict=True))
        self.bn = nn.ModuleList(nn.BatchNorm1d(b) for b in SIZES[1:-1])
        self.lif = nn.ModuleList(
            snn.Leaky(beta=beta, threshold=THRESHOLD, spike_grad=surrogate.atan(alpha=ALPHA),
                      reset_mechanism="subtract", reset_delay=False)
            for _ in SIZES[1:-1]
        )
        self.readout = nn.Linear(SIZES[-2], SIZES[-1])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mems = [lif.init_leaky() for lif in self.lif]
        out = []
        for t in range(x.shape[0]):
            s = x[t]
            for i, (fc, bn, lif) in enumerate(zip(self.fc, self.bn, self.lif, strict=True)):
                s, mems[i] = lif(bn(fc(s)), mems[i])
            out.append(self.readout(s))
        return torch.stack(out)


class SpikingJellyNative(nn.Module):
    """SpikingJelly multi-step: ``layer.Linear -> layer.BatchNorm1d -> neuron.LIFNode`` with ``step_mode='m'``."""

    def __init__(self) -> None:
        super().__init__()
        from spikingjelly.activation_based import functional, layer, neuron, surrogate

        self._reset_net = functional.reset_net
        layers: list[nn.Module] = []
        for n_in, n_out in zip(SIZES[:-2], SIZES[1:-1], strict=True):
            layers += [
                layer.Linear(n_in, n_out, step_mode="m"),
                layer.BatchNorm1d(n_out, step_mode="m"),
                neuron.LIFNode(tau=TAU, decay_input=False, v_threshold=THRESHOLD, v_reset=None, detach_reset=True,
                               surrogate_function=surrogate.ATan(alpha=ALPHA), step_mode="m"),
            ]
        self.body = nn.Sequential(*layers, layer.Linear(SIZES[-2], SIZES[-1], step_mode="m"))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self._reset_net(self.body)
        return self.body(x)


class LitStack(nn.Module):
    """Stand-in for ``BaselineLIF`` when it cannot be imported: the same Linear->BN->LIF stack on lit_snn neurons."""

    def __init__(self, backend: str) -> None:
        super().__init__()
        from lit_snn.neurons import make_neuron

        self.fc = nn.ModuleList(nn.Linear(a, b) for a, b in zip(SIZES[:-2], SIZES[1:-1], strict=True))
        self.bn = nn.ModuleList(nn.BatchNorm1d(b) for b in SIZES[1:-1])
        self.lif = nn.ModuleList(
            make_neuron("lif", backend, tau=TAU, threshold=THRESHOLD, surrogate="atan", slope=ALPHA, detach_reset=True)
            for _ in SIZES[1:-1]
        )
        self.readout = nn.Linear(SIZES[-2], SIZES[-1])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = x
        for fc, bn, lif in zip(self.fc, self.bn, self.lif, strict=True):
            s = lif(bn(fc(s.flatten(0, 1))).unflatten(0, s.shape[:2]))
        return self.readout(s)


def lit_model(backend: str, event_driven: bool = True) -> tuple[nn.Module, str]:
    try:
        from lit_snn.models import BaselineLIF
    except Exception as err:  # the models package may be mid-edit; say so in the results
        return LitStack(backend), f"LitStack (BaselineLIF import failed: {type(err).__name__}: {err})"
    return BaselineLIF(backend, surrogate="atan", event_driven=event_driven), "lit_snn.models.BaselineLIF"


class NeuronOnly(nn.Module):
    """One neuron layer alone on a ``[T, B, 512]`` current: ``custom`` (fused scan), ``custom-reference`` (the
    step-by-step autograd loop ``LIF._scan_reference``), snnTorch's ``Leaky`` in its per-step loop, SpikingJelly's
    multi-step ``LIFNode``, or ReLU (the floor)."""

    def __init__(self, which: str) -> None:
        super().__init__()
        self.which = which
        if which in ("custom", "custom-reference"):
            from lit_snn.neurons import make_neuron

            self.neuron = make_neuron("lif", "custom", tau=TAU, threshold=THRESHOLD, surrogate="atan", slope=ALPHA,
                                      detach_reset=True)
        elif which == "snntorch-native":
            self.neuron = SnnTorchNative().lif[0]
        elif which == "spikingjelly-native":
            self.neuron = SpikingJellyNative().body[2]
            from spikingjelly.activation_based import functional

            self._reset_net = functional.reset_net
        elif which != "relu":
            raise ValueError(f"unknown neuron configuration {which!r}")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.which == "custom":
            return self.neuron(x)
        if self.which == "custom-reference":
            return self.neuron._scan_reference(x)[0]
        if self.which == "snntorch-native":
            mem, out = self.neuron.init_leaky(), []
            for t in range(x.shape[0]):
                s, mem = self.neuron(x[t], mem)
                out.append(s)
            return torch.stack(out)
        if self.which == "spikingjelly-native":
            self._reset_net(self.neuron)
            return self.neuron(x)
        return torch.relu(x)


class Materialised(nn.Module):
    """Feeds the wrapped model a contiguous copy of its input (no stride-0 time axis to exploit)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x.contiguous())


def build(name: str) -> tuple[nn.Module, str]:
    if name.startswith("neuron/"):
        return NeuronOnly(name.split("/", 1)[1]), name
    if name == "lit-custom-dense":
        return lit_model("custom", event_driven=False)
    if name == "lit-custom-copy":
        model, source = lit_model("custom", event_driven=False)
        return Materialised(model), source
    if name.startswith("lit-"):
        return lit_model(name[4:])
    return {"snntorch-native": SnnTorchNative, "spikingjelly-native": SpikingJellyNative, "ann": ANN}[name](), name


# -- data -------------------------------------------------------------------------------------------------------
def mnist_batches(data_dir: Path, num_steps: int, batch: int, count: int, device: torch.device):
    """``count`` batches ``(x[T, B, 784], y[B])`` of real MNIST training images, normalised, direct-encoded."""
    from lit_snn.data.mnist import read_idx
    from lit_snn.encoders import make_encoder

    images = torch.from_numpy(read_idx(data_dir / "mnist" / "train-images-idx3-ubyte.gz")[: batch * count].copy())
    labels = torch.from_numpy(read_idx(data_dir / "mnist" / "train-labels-idx1-ubyte.gz")[: batch * count].copy())
    x = ((images.float() / 255.0 - 0.1307) / 0.3081).flatten(1)
    encode = make_encoder("direct", num_steps)
    out = []
    for i in range(count):
        xb = x[i * batch:(i + 1) * batch].to(device)
        # exactly what MNISTDataModule gives: the direct encoder's view of the image at every step
        out.append((encode(xb), labels[i * batch:(i + 1) * batch].long().to(device)))
    return out


def input_currents(batches, device: torch.device):
    """Neuron-layer inputs ``[T, B, 512]``: ``BN(W x + b)`` of the batches through a freshly initialised first layer."""
    torch.manual_seed(0)
    fc, bn = nn.Linear(SIZES[0], SIZES[1]).to(device), nn.BatchNorm1d(SIZES[1]).to(device)
    with torch.no_grad():
        return [(bn(fc(x.flatten(0, 1))).unflatten(0, x.shape[:2]), y) for x, y in batches]


# -- measurement ------------------------------------------------------------------------------------------------
class Runner:
    """One configuration: model, optimizer, (compiled) forward, and its timings."""

    def __init__(self, name: str, mode: str, device: torch.device, batches) -> None:
        self.name, self.mode, self.device, self.batches = name, mode, device, batches
        torch.manual_seed(0)
        model, self.source = build(name)
        self.model = model.to(device).train()
        self.forward = torch.compile(self.model) if mode == "compiled" else self.model
        self.neuron_only = name.startswith("neuron/")
        self.opt = None if self.neuron_only else torch.optim.AdamW(self.model.parameters(), lr=1e-3, weight_decay=1e-4)
        self.times: list[float] = []
        self.k = 0

    def step(self) -> float:
        x, y = self.batches[self.k % len(self.batches)]
        self.k += 1
        sync = torch.cuda.synchronize if self.device.type == "cuda" else (lambda: None)
        sync()
        t0 = time.perf_counter()
        if self.neuron_only:  # x is a current [T, B, 512]: forward and backward of one layer
            self.forward(x.detach().requires_grad_(True)).sum().backward()
        else:
            self.opt.zero_grad(set_to_none=True)
            loss = F.cross_entropy(self.forward(x).mean(0), y)
            loss.backward()
            self.opt.step()
        sync()
        return time.perf_counter() - t0

    def first_layer_spike_density(self) -> float | None:
        """Fraction of nonzero outputs of the first hidden layer's neurons on the current batch (what the
        event-driven second layer of the lit models multiplies), for lit-* configurations; else None."""
        hidden = getattr(self.model, "hidden", None) or getattr(getattr(self.model, "model", None), "hidden", None)
        if hidden is None:
            return None
        x, _ = self.batches[self.k % len(self.batches)]
        with torch.no_grad():
            return float((hidden[0](x.flatten(2)) != 0).float().mean())

    def peak_memory(self) -> float:
        """Peak bytes of live tensors during one training step (see the module docstring)."""
        if self.device.type == "cuda":
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            self.step()
            return float(torch.cuda.max_memory_allocated())
        from torch.profiler import ProfilerActivity, profile
        from torch.profiler._memory_profiler import MemoryProfileTimeline

        with profile(activities=[ProfilerActivity.CPU], profile_memory=True, record_shapes=True, with_stack=True) as p:
            self.step()
        _, sizes = MemoryProfileTimeline(p._memory_profile())._coalesce_timeline(torch.device("cpu"))
        return float(max(sum(row) for row in sizes))


def quartiles(values: list[float]) -> tuple[float, float, float]:
    q = statistics.quantiles(values, n=4) if len(values) > 1 else [values[0]] * 3
    return q[0], statistics.median(values), q[2]


def _dynamo_counts() -> tuple[int, int]:
    """(unique graphs compiled, graph breaks) so far in this process, from dynamo's counters."""
    from torch._dynamo.utils import counters

    return int(counters["stats"]["unique_graphs"]), int(sum(counters["graph_break"].values()))


def _record_failure(results: dict, key: str, entry: dict, err: Exception) -> None:
    entry["error"] = f"{type(err).__name__}: {str(err).splitlines()[0][:300] if str(err) else ''}"
    entry["traceback_tail"] = traceback.format_exc().splitlines()[-6:]
    results[key] = entry
    print(f"{key}: FAILED {entry['error']}", flush=True)


def run_group(num_steps: int, names: list[tuple[str, str]], args, batches, results: dict, save) -> None:
    device = torch.device(args.device)
    currents = input_currents(batches, device)
    torch._dynamo.reset()  # fresh compile caches and recompile counts for every group
    runners: list[Runner] = []
    for name, mode in names:
        key = f"T={num_steps}/{name}/{mode}"
        entry = {"T": num_steps, "config": name, "mode": mode, "batch": args.batch, "command": args.command}
        try:
            r = Runner(name, mode, device, currents if name.startswith("neuron/") else batches)
            entry["model"] = r.source
            graphs, breaks = _dynamo_counts()
            t0 = time.perf_counter()
            r.step()  # compiles, for mode == compiled
            entry["first_step_s"] = time.perf_counter() - t0
            if mode == "compiled":  # how much dynamo captured: a model that compiled nothing ran eager
                entry["graphs_compiled"] = _dynamo_counts()[0] - graphs
                entry["graph_breaks"] = _dynamo_counts()[1] - breaks
            runners.append(r)
            r.key, r.entry = key, entry
            print(f"{key}: ready (first step {entry['first_step_s']:.1f} s)", flush=True)
        except Exception as err:  # report the failure (e.g. compile), do not hide it
            _record_failure(results, key, entry, err)
            save()
    # Warm up once every model exists: a guard invalidated by building the others recompiles here, not while timed.
    for r in list(runners):
        try:
            for _ in range(args.warmup):
                r.step()
        except Exception as err:
            runners.remove(r)
            _record_failure(results, r.key, r.entry, err)
            save()
    if not runners:
        return
    graphs_before = _dynamo_counts()[0]
    load_before = os.getloadavg()
    for rnd in range(args.rounds):
        shift = rnd % len(runners)
        for r in runners[shift:] + runners[:shift]:
            for _ in range(args.iters):
                r.times.append(r.step())
    load_after = os.getloadavg()
    recompiled = _dynamo_counts()[0] - graphs_before
    for r in runners:
        q1, med, q3 = quartiles(r.times)
        r.entry.update(
            ms_per_step=med * 1e3, ms_q1=q1 * 1e3, ms_q3=q3 * 1e3, ms_min=min(r.times) * 1e3,
            steps_timed=len(r.times), threads=torch.get_num_threads(),
            samples_per_s=args.batch / med, loadavg_before=load_before, loadavg_after=load_after,
            peers=[o.key for o in runners], graphs_compiled_while_timed=recompiled,
        )
        try:
            r.entry["peak_mem_mb"] = r.peak_memory() / 2**20
        except Exception as err:
            r.entry["peak_mem_error"] = f"{type(err).__name__}: {err}"
        density = r.first_layer_spike_density()
        if density is not None:
            r.entry["spike_density_hidden0"] = density
        results[r.key] = r.entry
        print(f"{r.key}: {med * 1e3:.1f} ms/step (IQR {q1 * 1e3:.1f}-{q3 * 1e3:.1f}), "
              f"{r.entry.get('peak_mem_mb', float('nan')):.1f} MB", flush=True)
    save()


# -- report -----------------------------------------------------------------------------------------------------
GOALS = {  # level -> (label, numerator config, denominator config, bound, kind), then (custom, SpikingJelly) memory
    "training step": (
        [("custom / ANN floor", "lit-custom", "ann", 1.5, "max"),
         ("snnTorch native / custom", "snntorch-native", "lit-custom", 3.0, "min"),
         ("SpikingJelly multi-step / custom", "spikingjelly-native", "lit-custom", 1.2, "min")],
        ("lit-custom", "spikingjelly-native")),
    "neuron layer alone": (
        [("snnTorch native / custom", "neuron/snntorch-native", "neuron/custom", 3.0, "min"),
         ("SpikingJelly multi-step / custom", "neuron/spikingjelly-native", "neuron/custom", 1.2, "min")],
        ("neuron/custom", "neuron/spikingjelly-native")),
}


def report(results: dict, meta: dict) -> str:
    lines = ["# Training throughput: Baseline LIF (784-512-256-10), batch 128", ""]
    commands = " and ".join(f"`{c}`" for c in sorted({e.get("command", meta["command"]) for e in results.values()}))
    lines += [
        f"Produced by {commands} on {meta['device_name']} ({meta['torch']}, {meta['threads']} torch "
        f"thread(s)). Every configuration of one T ran in the same process, interleaved round by round.",
        "",
        "- `lit-*`: the lit-snn Baseline LIF with the `custom`, `snntorch` or `spikingjelly` neuron backend (first "
        "layer computed once for the direct-coded input, second layer event-driven on the CPU); `lit-custom-dense`: "
        "without the event-driven layer; `lit-custom-copy`: without either (a materialised input, dense products); "
        "`snntorch-native`: the usual snnTorch per-step loop (`fc -> bn -> snn.Leaky` for each t); "
        "`spikingjelly-native`: SpikingJelly multi-step layers; `ann`: Linear -> BN -> ReLU with the same matrix "
        "products (T x batch rows), the floor.",
        "- `neuron/*`: one LIF layer alone on a [T, 128, 512] current (forward + backward of the spikes' sum): "
        "`custom` (fused scan), `custom-reference` (the step-by-step autograd loop it replaced), snnTorch `Leaky` "
        "loop, SpikingJelly multi-step `LIFNode`, and ReLU as the floor.",
        "- ms/step: median training step (zero_grad, forward, cross-entropy, backward, AdamW) with the "
        "interquartile range, and the fastest step; `x floor`: median over the ANN's (networks) or ReLU's (neuron "
        "layer) median.",
        f"- peak MB: {meta['memory_method']} during one step (parameters, gradients, optimizer state, inputs, saved "
        "activations and temporaries; see `benchmarks/speed.py`).",
        "- first step: includes compilation for `compiled` (inductor's on-disk cache can shorten it), with the "
        "number of graphs dynamo compiled and its graph breaks (0 graphs means the model ran eager).",
        "- load: `os.getloadavg()` 1-minute value before -> after the timed rounds (the machine is shared; one "
        "torch thread avoids OpenMP stalls when other processes hold the cores).",
        "",
    ]
    sources = sorted({e["model"] for e in results.values() if "model" in e and e["config"].startswith("lit-")})
    lines += [f"lit-* configurations use: {', '.join(sources) or 'n/a'}.", ""]
    for num_steps in sorted({e["T"] for e in results.values()}):
        lines += [f"## T = {num_steps}", "",
                  "| config | mode | ms/step (IQR) | min ms | samples/s | x floor | peak MB "
                  "| first step s (graphs, breaks) | load |",
                  "|---|---|---|---|---|---|---|---|---|"]
        for mode in MODES:
            for name in CONFIGS + NEURONS:
                floor_name = "neuron/relu" if name.startswith("neuron/") else "ann"
                floor = results.get(f"T={num_steps}/{floor_name}/{mode}", {}).get("ms_per_step")
                e = results.get(f"T={num_steps}/{name}/{mode}")
                if e is None:
                    continue
                if "error" in e:
                    lines.append(f"| {name} | {mode} | failed: {e['error'][:120]} | | | | | | |")
                    continue
                ratio = f"{e['ms_per_step'] / floor:.2f}" if floor else ""
                mem = f"{e['peak_mem_mb']:.1f}" if "peak_mem_mb" in e else "n/a"
                first = f"{e['first_step_s']:.1f}"
                if "graphs_compiled" in e:
                    first += f" ({e['graphs_compiled']} graphs, {e['graph_breaks']} breaks)"
                load = f"{e['loadavg_before'][0]:.1f} -> {e['loadavg_after'][0]:.1f}"
                lines.append(
                    f"| {name} | {mode} | {e['ms_per_step']:.1f} ({e['ms_q1']:.1f}-{e['ms_q3']:.1f}) | "
                    f"{e['ms_min']:.1f} | "
                    f"{e['samples_per_s']:.0f} | {ratio} | {mem} | {first} | {load} |")
        densities = [e["spike_density_hidden0"] for k, e in results.items()
                     if k.startswith(f"T={num_steps}/lit-") and "spike_density_hidden0" in e]
        if densities:
            lines += ["", f"Spike density of the first hidden layer (the input of the event-driven second layer) "
                      f"after the timed steps: {min(densities):.3f}-{max(densities):.3f} (lit-* configurations; the "
                      "event-driven product pays off below ~0.15)."]
        lines += ["", "Goals for the custom backend (ratio of median times; met?):", ""]
        for level, (goals, (mem_a, mem_b)) in GOALS.items():
            for mode in MODES:
                get = {n: results.get(f"T={num_steps}/{n}/{mode}", {}) for n in CONFIGS + NEURONS}
                parts = []
                for label, num, den, bound, kind in goals:
                    a, b = get[num].get("ms_per_step"), get[den].get("ms_per_step")
                    if a and b:
                        ok = a / b <= bound if kind == "max" else a / b >= bound
                        parts.append(f"{label} = {a / b:.2f} ({'<=' if kind == 'max' else '>='} {bound}: "
                                     f"{'met' if ok else 'NOT met'})")
                a, b = get[mem_a].get("peak_mem_mb"), get[mem_b].get("peak_mem_mb")
                if a and b:
                    parts.append(f"peak memory custom / SpikingJelly = {a:.1f} / {b:.1f} MB "
                                 f"({'met' if a <= b else 'NOT met'})")
                if parts:
                    lines.append(f"- {level}, {mode}: " + "; ".join(parts))
        lines += _bounds(results, num_steps) + [""]
    return "\n".join(lines)


def _bounds(results: dict, num_steps: int) -> list[str]:
    """What the goals can reach with the same matrix products, and what doing fewer products adds.

    ``lit-custom-copy`` runs every product over ``T*B`` rows like the native codes and the ANN: a neuron that cost
    nothing would leave the ANN's time, which bounds its ratios. ``lit-custom-dense`` does the first layer's products
    once (the direct-coded input is constant over time) and ``lit-custom`` also multiplies only the nonzero spikes
    of the second layer (on the CPU), so they can pass that bound.
    """
    out = []
    for mode in MODES:
        ms = {n: results.get(f"T={num_steps}/{n}/{mode}", {}).get("ms_per_step") for n in CONFIGS}
        if not all(ms[n] for n in ("ann", "lit-custom", "lit-custom-copy", "snntorch-native", "spikingjelly-native")):
            continue
        dense = ms.get("lit-custom-dense")
        if dense:
            gains = (f"Computing the time-constant first layer once makes lit-custom-dense "
                     f"{ms['lit-custom-copy'] / dense:.2f}x faster than lit-custom-copy, and the event-driven second "
                     f"layer makes lit-custom {dense / ms['lit-custom']:.2f}x faster than lit-custom-dense.")
        else:
            gains = (f"Doing fewer products makes lit-custom {ms['lit-custom-copy'] / ms['lit-custom']:.2f}x faster "
                     "than lit-custom-copy.")
        out.append(
            f"- {mode}: with the same matrix products (lit-custom-copy) the ANN floor is "
            f"{ms['ann'] / ms['lit-custom-copy']:.0%} of the step, so a free neuron would give at most snnTorch native "
            f"/ custom = {ms['snntorch-native'] / ms['ann']:.2f} and SpikingJelly / custom = "
            f"{ms['spikingjelly-native'] / ms['ann']:.2f}; lit-custom-copy reaches "
            f"{ms['snntorch-native'] / ms['lit-custom-copy']:.2f} and "
            f"{ms['spikingjelly-native'] / ms['lit-custom-copy']:.2f}. {gains}"
        )
    return ["", "Bounds from the floor:", "", *out] if out else []


def plot(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = sorted({e["T"] for e in results.values()})
    fig, axes = plt.subplots(1, len(steps), figsize=(7 * len(steps), 5), squeeze=False)
    for ax, num_steps in zip(axes[0], steps, strict=True):
        for j, mode in enumerate(MODES):
            vals = [results.get(f"T={num_steps}/{n}/{mode}", {}).get("ms_per_step", 0.0) for n in CONFIGS + NEURONS]
            ax.bar([i + 0.4 * j for i in range(len(CONFIGS + NEURONS))], vals, width=0.4, label=mode)
        ax.set_xticks([i + 0.2 for i in range(len(CONFIGS + NEURONS))], CONFIGS + NEURONS, rotation=40, ha="right")
        ax.set_ylabel("ms per training step (median)")
        ax.set_yscale("log")
        ax.set_title(f"Baseline LIF, T={num_steps}, batch 128")
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--device", default="cpu", help="torch device (cpu, cuda, cuda:1, ...)")
    p.add_argument("--steps", default="4,32", help="comma-separated time steps T")
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--modes", default=",".join(MODES), help="eager, compiled or both")
    p.add_argument("--only", default=",".join(CONFIGS + NEURONS), help=f"comma-separated subset of {CONFIGS + NEURONS}")
    p.add_argument("--warmup", type=int, default=3, help="untimed steps after the first one")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--iters", type=int, default=3, help="timed steps per configuration per round")
    p.add_argument("--data-dir", type=Path, default=Path(os.environ.get("LIT_SNN_DATA_DIR", ROOT.parent / "shared"
                                                                        / "data")))
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "speed",
                   help="output path without suffix (.json, .md, .png are written)")
    p.add_argument("--threads", type=int, default=None,
                   help="torch intra-op threads (default: torch's choice); 1 avoids OpenMP stalls on a busy machine")
    p.add_argument("--redo", action="store_true", help="re-measure configurations already in the JSON")
    p.add_argument("--report-only", action="store_true", help="only rewrite the .md and .png from the JSON")
    args = p.parse_args(argv)
    args.command = "python benchmarks/speed.py " + " ".join(sys.argv[1:] if argv is None else argv)
    steps = [int(s) for s in args.steps.split(",")]
    modes = args.modes.split(",")
    names = args.only.split(",")
    everything = CONFIGS + NEURONS
    for bad, allowed, what in ((set(modes) - set(MODES), MODES, "--modes"),
                               (set(names) - set(everything), everything, "--only")):
        if bad:
            raise SystemExit(f"{what}: unknown {sorted(bad)}; accepted: {', '.join(allowed)}")
    device = torch.device(args.device)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    # Several models share code objects (the lit layers, snn.Leaky, ...); dynamo's default limit of 8 recompiles
    # per code object would silently run later configurations eager.
    torch._dynamo.config.recompile_limit = 256
    torch._dynamo.config.accumulated_recompile_limit = 4096

    json_path = args.out.with_suffix(".json")
    stored = json.loads(json_path.read_text()) if json_path.exists() else {}
    results: dict = stored.get("results", {})
    meta = {
        "command": args.command,
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else
        f"CPU {platform.processor() or platform.machine()} ({os.cpu_count()} cores)",
        "torch": f"torch {torch.__version__}", "threads": torch.get_num_threads(),
        "memory_method": "torch.cuda.max_memory_allocated" if device.type == "cuda" else
        "torch.profiler memory timeline, live tensor bytes",
    }

    def save() -> None:
        json_path.parent.mkdir(parents=True, exist_ok=True)
        json_path.write_text(json.dumps({"meta": meta, "results": results}, indent=1))
        args.out.with_suffix(".md").write_text(report(results, meta) + "\n")

    if args.report_only:
        meta = stored.get("meta", meta)
        steps = []
    for num_steps in steps:
        todo = [(n, m) for m in modes for n in names if args.redo or f"T={num_steps}/{n}/{m}" not in results]
        if not todo:
            print(f"T={num_steps}: all requested configurations already measured (use --redo)", flush=True)
            continue
        batches = mnist_batches(args.data_dir, num_steps, args.batch, 4, device)
        run_group(num_steps, todo, args, batches, results, save)  # all pending configurations interleaved
    save()
    try:
        plot(results, args.out.with_suffix(".png"))
    except Exception as err:
        print(f"plot failed: {type(err).__name__}: {err}", flush=True)
    print(args.out.with_suffix(".md").read_text())


if __name__ == "__main__":
    main()
