"""MNIST accuracy and energy table: the five architectures under one protocol, and the energy blog's pair.

Every run trains through the same LightningCLI as ``lightning fit`` (the model's recipe, plus
``recipes/protocol.yaml`` for the five architectures), picks the best epoch on the validation split
(``val/acc``, 5,000 images held out of the 60,000 training images), tests that checkpoint once on the test set
and measures it with :class:`lit_snn.callbacks.SNNMetricsCallback`. Runs are kept under ``--runs`` (one JSON per
model and seed), so an interrupted table resumes where it stopped; ``--report-only`` rebuilds the tables from them.

::

    python benchmarks/accuracy.py                                   # the full table: 7 models x 3 seeds (hours on CPU)
    python benchmarks/accuracy.py --max-epochs 1 --seeds 0          # a quick, clearly labelled short protocol
    python benchmarks/accuracy.py --report-only                     # tables from the runs kept so far
    python benchmarks/accuracy.py --max-epochs 1 --retest           # test the kept checkpoints again (new metrics)

Results: ``benchmarks/results/accuracy_<protocol>.md`` and ``.json`` (``<protocol>`` is ``full`` or ``e<N>`` for
``--max-epochs N``, with ``_custom`` appended when further overrides are given after ``--``).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
FIVE = ("baseline_lif", "dasnn", "spiking_kan", "nexus", "apex")
BLOG = ("ann_mlp", "snn_mlp")
MODELS = FIVE + BLOG

# What each source published (MNIST test accuracy, %), to set beside our measurement.
PUBLISHED_ACC = {
    "baseline_lif": (98.53, "benchmark README (max over epochs on the test set, 1 seed)"),
    "dasnn": (98.54, "benchmark README"),
    "spiking_kan": (98.60, "benchmark README"),
    "nexus": (99.09, "benchmark README"),
    "apex": (99.21, "benchmark README"),
    "ann_mlp": (97.92, "energy blog (10 epochs, final epoch)"),
    "snn_mlp": (97.45, "energy blog (10 epochs, final epoch)"),
}

# Why a published accuracy differs from ours where ours is lower (from the reading of the benchmark's code in
# ../shared/design/architectures.md).
WHY_LOWER = {
    "spiking_kan": "the benchmarked Spiking-KAN applied its KAN to binary spikes, where it is an affine map, i.e. an "
                   "over-parameterised Linear layer (architectures.md 2.3); ours applies the README's Chebyshev KAN "
                   "to an analog quantity, as the README describes: a different network",
    "apex": "the benchmarked APEX passed clamped analog values between its layers, kept the masked neurons' residual "
            "paths, and masked at most 67% of the neurons, softly in training (architectures.md 2.5 and 3: its "
            "30% -> 90% schedule was never used); ours passes spikes and is measured with 90% of its hidden neurons "
            "pruned in training and evaluation, residual paths included",
}

# The benchmark README's other figures (its MNIST table): spike rate, and "energy efficiency", which its README calls
# 1 / energy ratio (0.9 pJ per AC against 4.6 pJ per MAC) but its code computes as best_acc% / (spike_rate + 0.01).
PUBLISHED_RATE_EFF = {
    "baseline_lif": (0.108, 835.6),
    "dasnn": (0.101, 887.2),
    "spiking_kan": (0.103, 872.5),
    "nexus": (0.123, 747.6),
    "apex": (0.139, 664.9),
}

# Figures picked out of the test metrics for the table: (column title, metric key, scale, format)
COLUMNS = [
    ("test acc %", "test/acc", 100.0, "{:.2f}"),
    ("val acc % (best)", "val_acc_best", 100.0, "{:.2f}"),
    ("spike rate", "test/spike_rate", 1.0, "{:.4f}"),
    ("spikes/sample", "test/spikes_per_sample", 1.0, "{:.0f}"),
    ("ACs/sample", "test/synops/effective_acs", 1.0, "{:.3g}"),
    ("MACs/sample", "test/synops/effective_macs", 1.0, "{:.3g}"),
    ("dense ops", "test/synops/dense", 1.0, "{:.3g}"),
    ("dead neurons", "test/dead_neuron_fraction", 1.0, "{:.3f}"),
    ("E/E_ANN (fp32 45nm)", "test/energy/fp32_45nm/ratio", 1.0, "{:.3f}"),
    ("E/E_QNN (typical neuromorphic)", "test/energy_movement/typical_neuromorphic/ratio", 1.0, "{:.3f}"),
    ("break-even rate (typical)", "test/energy_movement/typical_neuromorphic/break_even_spike_rate", 1.0, "{:.4f}"),
    ("train min", "train_minutes", 1.0, "{:.1f}"),
]


def run_one(
    model: str, seed: int, run_dir: Path, max_epochs: int | None, extra: list[str], retest: dict | None = None
) -> dict:
    """Train ``model`` with ``seed``, test its best-on-validation checkpoint, return every logged test figure.

    With ``retest`` (a kept run's result), nothing is trained: its best checkpoint is tested again (e.g. after a
    metric changed) and its training figures are kept.
    """
    from lit_snn.callbacks import SNNMetricsCallback, SpikeMonitor
    from lit_snn.cli import build_cli
    from lit_snn.neurons import SpikingNeuron

    args = ["--config", str(ROOT / "recipes" / f"{model}.yaml")]
    if model in FIVE:
        args += ["--config", str(ROOT / "recipes" / "protocol.yaml")]
    args += [
        "--seed_everything", str(seed),
        "--trainer.default_root_dir", str(run_dir),
        # a local CSV log instead of the recipes' W&B run: the table is the output here
        "--trainer.logger", json.dumps(
            {"class_path": "lightning.pytorch.loggers.CSVLogger", "init_args": {"save_dir": str(run_dir)}}
        ),
        "--trainer.enable_progress_bar", "false",
    ]
    if max_epochs is not None:
        # a shortened run may end before a recipe's checkpoint.min_epoch (APEX: the end of its sparsity ramp)
        args += ["--trainer.max_epochs", str(max_epochs), "--checkpoint.min_epoch", "0"]
    args += extra
    cli = build_cli(args=args, run=False)
    trainer = cli.trainer
    # pictures are for dashboards, not for the table (and need an image logger)
    trainer.callbacks[:] = [c for c in trainer.callbacks if not isinstance(c, SpikeMonitor)]
    spiking = any(isinstance(m, SpikingNeuron) for m in cli.model.modules())
    if spiking and not any(isinstance(c, SNNMetricsCallback) for c in trainer.callbacks):
        trainer.callbacks.append(SNNMetricsCallback(stages=("test",)))
    if retest is not None:
        trainer.test(cli.model, datamodule=cli.datamodule, ckpt_path=str(ROOT / retest["best_checkpoint"]),
                     verbose=False)
        return {**retest, **_test_figures(trainer)}
    start = time.perf_counter()
    trainer.fit(cli.model, datamodule=cli.datamodule)
    minutes = (time.perf_counter() - start) / 60
    best = trainer.checkpoint_callback
    trainer.test(cli.model, datamodule=cli.datamodule, ckpt_path="best", verbose=False)
    out = _test_figures(trainer)
    out.update(
        val_acc_best=float(best.best_model_score),
        best_checkpoint=os.path.relpath(best.best_model_path, ROOT),
        epochs=trainer.current_epoch,
        train_minutes=minutes,
        seed=seed,
        model=model,
        device=str(next(cli.model.parameters()).device),
        torch=torch.__version__,
        machine=f"{platform.machine()} {os.cpu_count()} cpus",
    )
    return out


def _test_figures(trainer) -> dict[str, float]:
    """Every ``test/`` figure of the last ``trainer.test``: the module's own logs and the SNN metrics, which
    SNNMetricsCallback puts into ``trainer.callback_metrics`` (and the logger) rather than the returned dict."""
    return {k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith("test/")}


def mean_std(values: list[float]) -> tuple[float, float]:
    m = sum(values) / len(values)
    s = math.sqrt(sum((v - m) ** 2 for v in values) / (len(values) - 1)) if len(values) > 1 else float("nan")
    return m, s


def report(runs: dict[str, list[dict]], protocol: str, command: str) -> str:
    lines = [
        f"# MNIST accuracy and energy ({protocol})",
        "",
        f"Table written by `{command}`; every run trains, selects and tests as `run_one` in that script does (runs "
        f"kept in `benchmarks/runs/accuracy_{protocol}/`, with each run's seed, epochs, time and machine in "
        f"`accuracy_{protocol}.json`).",
        "Model chosen on the validation split (best `val/acc`), tested once; mean ± std over seeds (n = seeds).",
        "The five architectures share `recipes/protocol.yaml`; the blog's pair uses its own recipe settings.",
    ]
    fewest = min((len(rs) for rs in runs.values() if rs), default=0)
    if fewest < 3:
        lines += ["", f"**Seeds so far: {fewest} for some models, where the table calls for 3 (n column); the runs "
                  "resume where they stopped: `python benchmarks/accuracy.py` trains only the missing ones.**"]
    if protocol != "full":
        lines += [
            "",
            f"**A shortened protocol ({protocol}: the recipes' settings but `--max-epochs` cut short, so learning-rate "
            "schedules and APEX's sparsity ramp are truncated and APEX's best checkpoint may come from any epoch). Its "
            "accuracies are not comparable with the published ones; the spike and energy figures describe these "
            "briefly trained networks.**",
        ]
    lines += [
        "",
        "Energy columns: `E/E_ANN`, operation counting (effective ACs x 0.9 pJ + MACs x 4.6 pJ against the dense MACs "
        "of ONE pass of the same topology as an ANN); `E/E_QNN`, compute + data movement against the quantised twin "
        "on typical neuromorphic hardware (metrics.md, energy model 2), with the break-even spike rate at the "
        "measured T. Direct coding makes every model's first layer do analog MACs at every step.",
        "",
        "| model | n | " + " | ".join(c[0] for c in COLUMNS) + " |",
        "|---|---|" + "---|" * len(COLUMNS),
    ]
    for model in MODELS:
        rs = runs.get(model, [])
        if not rs:
            continue
        cells = []
        for _, key, scale, fmt in COLUMNS:
            vals = [r[key] * scale for r in rs if key in r]
            if not vals:
                cells.append("n/a")
                continue
            m, s = mean_std(vals)
            cells.append(fmt.format(m) + ("" if math.isnan(s) else " ± " + fmt.format(s)))
        lines.append(f"| {model} | {len(rs)} | " + " | ".join(cells) + " |")
    lines += ["", "## Published claims beside our measurement", "",
              "| model | published test acc % | source | ours (test acc %, mean over seeds) |", "|---|---|---|---|"]
    for model in MODELS:
        pub, source = PUBLISHED_ACC[model]
        rs = runs.get(model, [])
        ours = f"{mean_std([r['test/acc'] * 100 for r in rs])[0]:.2f}" if rs else "not run"
        lines.append(f"| {model} | {pub:.2f} | {source} | {ours} |")
    lines += ["", "Why they differ: each published accuracy is the maximum over epochs on the test set of a "
              "single run, each model under its own settings (15-35 epochs, T 2-6, its own optimiser, schedule "
              "and augmentation); ours are chosen on a validation split, tested once and averaged over seeds, "
              "the five architectures under one shared protocol."]
    for model, why in WHY_LOWER.items():
        rs = runs.get(model, [])
        if rs and mean_std([r["test/acc"] * 100 for r in rs])[0] < PUBLISHED_ACC[model][0]:
            lines += ["", f"Ours is lower for {model}: {why}."]
    rows, ac_effs, full_effs = [], [], []
    for model, (pub_rate, pub_eff) in PUBLISHED_RATE_EFF.items():
        rs = [r for r in runs.get(model, []) if "test/energy/fp32_45nm/ratio" in r]
        if not rs:
            continue
        rate = mean_std([r["test/spike_rate"] for r in rs])[0]
        ac_only = mean_std([r["test/energy/fp32_45nm/ann_pj"] / (0.9 * r["test/synops/effective_acs"]) for r in rs])[0]
        full = mean_std([1.0 / r["test/energy/fp32_45nm/ratio"] for r in rs])[0]
        ac_effs.append(ac_only)
        full_effs.append(full)
        formula = mean_std([r["test/acc"] * 100 / (r["test/spike_rate"] + 0.01) for r in rs])[0]
        rows.append(f"| {model} | {pub_rate:.3f} | {rate:.3f} | {pub_eff:.1f} | {formula:.1f} | {ac_only:.1f} | "
                    f"{full:.3f} |")
    if rows:
        lines += [
            "", "The benchmark README's spike rates and \"energy efficiency\" beside ours (mean over seeds):", "",
            "| model | published spike rate | ours | published efficiency | ours, by its code's formula | ours as "
            "energy, ACs only | ours as energy, with the first layer's MACs |", "|---|---|---|---|---|---|---|",
            *rows, "",
            "Its README calls the efficiency the inverse energy ratio (0.9 pJ per AC against 4.6 pJ per MAC), which "
            "would make each SNN spend about 1/800 of its ANN twin's energy; its code computes best_acc% / "
            "(spike_rate + 0.01) instead (98.53 / 0.1179 = 835.6; architectures.md 4), which involves no energy "
            "(`ours, by its code's formula`: the same formula on our numbers). As energy (1 / E_SNN/E_ANN, 45 nm "
            "fp32), counting only the hidden layers' spike-driven ACs against one dense pass of the same "
            f"topology gives {min(ac_effs):.0f}-{max(ac_effs):.0f}; with direct coding the first layer multiplies "
            "the analog image "
            "at every step (MACs, not ACs), and counting those too (NeuroBench's effective MACs) gives "
            f"{min(full_effs):.2f}-{max(full_effs):.2f}"
            + (", i.e. every SNN here costs more than its ANN twin" if max(full_effs) < 1 else "")
            + ". Our spike rates are NeuroBench's (spikes / (neurons x steps x samples)) on the test set at the "
            "checkpoint chosen on validation (the published ones are from the final epoch and, for APEX, average in "
            "analog values); APEX's is at its real 90% neuron sparsity.",
        ]
    blog = {m: runs.get(m, []) for m in BLOG}
    if all(blog.values()):
        key = "test/energy/fp32_45nm/ratio"
        ratio = mean_std([r[key] for r in blog["snn_mlp"] if key in r])[0] if key in blog["snn_mlp"][0] else None
        if ratio is not None:
            lines += ["", f"Energy blog: \"51.7% less energy\" (E_SNN/E_ANN = 0.483 with a 5x AC/MAC factor). Its "
                      "SOP count is rate x T x all 268,800 synapses, which charges the first layer as cheap ACs at the "
                      "hidden rate, although it receives the analog image at every one of its 25 steps. Ours for "
                      f"snn_mlp, counting each layer's real input events (first layer: analog MACs): E_SNN/E_ANN = "
                      f"{ratio:.3f} under Horowitz 45 nm fp32 (AC 0.9 pJ, MAC 4.6 pJ): we cannot reproduce the claim; "
                      "with direct coding at T=25 the SNN costs more than the ANN under the blog's own model."]
    key = "test/energy_movement/typical_neuromorphic/break_even_spike_rate"
    measured = {m: mean_std([r[key] for r in rs if key in r])[0] for m, rs in runs.items() if rs and key in rs[0]}
    if measured:
        lines += ["", "Energy paper (seed 002): break-even spike rate of a few percent on typical neuromorphic "
                  "hardware (6.4%, 5.4% once T > 5). Ours at each model's measured T: "
                  + ", ".join(f"{m} {v:.2%}" for m, v in measured.items()) + "."]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", nargs="+", default=list(MODELS), choices=MODELS)
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    p.add_argument("--max-epochs", type=int, default=None, help="shorten every run (labels the table e<N>)")
    p.add_argument("--report-only", action="store_true", help="rebuild the tables from the kept runs")
    p.add_argument("--retest", action="store_true", help="test the kept runs' best checkpoints again (no training)")
    p.add_argument("extra", nargs="*", help="further CLI overrides for every run, after --")
    a = p.parse_args(argv)
    shared = ROOT.parent / "shared" / "data"
    if "LIT_SNN_DATA_DIR" not in os.environ and (shared / "mnist").is_dir():
        os.environ["LIT_SNN_DATA_DIR"] = str(shared)
    protocol = "full" if a.max_epochs is None else f"e{a.max_epochs}"
    if a.extra:  # overrides change the protocol: keep such runs and tables apart
        protocol += "_custom"
    runs_dir = ROOT / "benchmarks" / "runs" / f"accuracy_{protocol}"
    runs: dict[str, list[dict]] = {}
    for model in a.models:
        for seed in a.seeds:
            path = runs_dir / model / f"seed{seed}.json"
            if not path.is_file() and not a.report_only:
                print(f"[accuracy] {model} seed {seed}: training ({protocol})", flush=True)
                result = run_one(model, seed, runs_dir / model / f"seed{seed}", a.max_epochs, a.extra)
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(json.dumps(result, indent=1, sort_keys=True))
            elif path.is_file() and a.retest:
                print(f"[accuracy] {model} seed {seed}: testing the kept checkpoint again", flush=True)
                kept = json.loads(path.read_text())
                result = run_one(model, seed, runs_dir / model / f"seed{seed}", a.max_epochs, a.extra, retest=kept)
                path.write_text(json.dumps(result, indent=1, sort_keys=True))
            if path.is_file():
                runs.setdefault(model, []).append(json.loads(path.read_text()))
    command = "python benchmarks/accuracy.py " + " ".join(argv if argv is not None else sys.argv[1:])
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"accuracy_{protocol}.md").write_text(report(runs, protocol, command.strip()))
    (RESULTS / f"accuracy_{protocol}.json").write_text(json.dumps(runs, indent=1, sort_keys=True))
    print((RESULTS / f"accuracy_{protocol}.md").read_text())


if __name__ == "__main__":
    main()
