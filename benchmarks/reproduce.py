"""Redraw the figures and the table of the paper reproduction (issue 22) from the committed run directories
only (each run's ``config.json`` and ``metrics.csv``; nothing is trained)::

    python benchmarks/reproduce.py                  # writes benchmarks/figures/*.png and reproduction.md

- ``deconvolution_psnr.png``: test (and training) PSNR and the learning rate against epoch of the section 5.1
  runs (``benchmarks/deconvolution.py``: the paper's text's schedule and the authors' code's), the paper's
  86.24 dB as a line;
- ``study.png``: the data-efficiency study (``benchmarks/study.py``, paper section 6.1, Fig. 10): best test
  PSNR against training-set size, DiffNet and U-Net, without noise and with 1 % noise, with the paper's values
  at 90,000 images (section 5.2, the only numbers the paper prints for these curves);
- ``study_curves.png``: every study run's test PSNR against optimiser updates (has it flattened?);
- ``reproduction.md``: ours next to the paper's numbers, the authors' code's schedule phase by phase (each
  learning rate's epochs against the text's schedule over the same epochs), and which runs are unfinished or
  missing.

Runs that are missing or unfinished are drawn as far as they go and named in the table; nothing fails for
lack of them.
"""
from __future__ import annotations

import argparse
import csv
import json
import math
import os
import statistics
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import deconvolution  # noqa: E402
import study  # noqa: E402

RUNS = os.path.join(HERE, "runs")
FIGURES = os.path.join(HERE, "figures")
#: Colour and label of each deconvolution schedule's curves.
SCHEDULE_STYLE = {"text": ("tab:blue", "paper's text: 4e-4 -> 1e-6"),
                  "code": ("tab:red", "authors' code: 4e-3 halved every 10,000 steps")}
#: Paper section 5.1: train and test PSNR of the 3-layer DiffNet on the disks after ~1000 epochs.
PAPER_DECONVOLUTION_PSNR = 86.24
#: Paper section 5.2 (90,000 STL-10 training images): test PSNR per (model, noise); DiffNet's from Fig. 8.
PAPER_PM_INVERSE = {("diffnet", 0.0): 65.34, ("unet", 0.0): 61.08, ("diffnet", 0.01): 34.96, ("unet", 0.01): 35.27}
PAPER_TRAIN_SIZE = 90000
COLOURS = {"diffnet": "tab:blue", "unet": "tab:orange"}
LABELS = {"diffnet": "DiffNet", "unet": "U-Net"}


def read_run(run_dir):
    """``(config dict, metrics rows, summary dict or None)`` of a run directory; None if it has no
    ``config.json`` or ``metrics.csv`` with at least one row."""
    config_path, metrics_path = os.path.join(run_dir, "config.json"), os.path.join(run_dir, "metrics.csv")
    if not (os.path.isfile(config_path) and os.path.isfile(metrics_path)):
        return None
    with open(config_path) as f:
        config = json.load(f)
    with open(metrics_path, newline="") as f:
        rows = [{k: float(v) for k, v in row.items()} for row in csv.DictReader(f)]
    if not rows:
        return None
    summary = None
    summary_path = os.path.join(run_dir, "summary.json")
    if os.path.isfile(summary_path):
        with open(summary_path) as f:
            summary = json.load(f)
    return config, rows, summary


def run_status(config, rows, summary):
    """``"finished"`` when the run stopped for its epochs or early stopping, else ``"unfinished"``."""
    if rows[-1]["epoch"] >= config["epochs"]:
        return "finished"
    if summary is not None and summary.get("stopped") in study.FINISHED:
        return "finished"
    return "unfinished"


def best(rows):
    """The row with the lowest test loss (the weights a run keeps)."""
    return min(rows, key=lambda r: r["test_loss"])


def deconvolution_figure(runs_dir, figures_dir):
    """Draw ``deconvolution_psnr.png`` (test and training PSNR, and the learning rate, against epoch for each
    schedule of :data:`deconvolution.SCHEDULES`); returns the table rows (markdown strings) and notes."""
    fig, (ax, ax_lr) = plt.subplots(2, 1, figsize=(6.4, 6.4), sharex=True, height_ratios=(2.2, 1))
    ax.axhline(PAPER_DECONVOLUTION_PSNR, color="k", ls="--", lw=1, label=f"paper: {PAPER_DECONVOLUTION_PSNR} dB")
    notes, table = [], []
    for schedule, (name, _) in deconvolution.SCHEDULES.items():
        run = read_run(os.path.join(runs_dir, name))
        if run is None:
            notes.append(f"`{name}`: missing (no config.json / metrics.csv rows)")
            continue
        config, rows, summary = run
        colour, label = SCHEDULE_STYLE[schedule]
        epochs = [r["epoch"] for r in rows]
        ax.plot(epochs, [r["test_psnr"] for r in rows], color=colour, label=f"{label}: test")
        ax.plot(epochs, [r["train_psnr"] for r in rows], color=colour, ls=":", lw=1, label=f"{label}: train")
        ax_lr.plot(epochs, [r["lr"] for r in rows], color=colour)
        status = run_status(config, rows, summary)
        b, done = best(rows), rows[-1]["epoch"]
        table.append(f"| deconvolution of disks (5.1), {label}, test PSNR [dB] | {b['test_psnr']:.2f} (epoch "
                     f"{b['epoch']:.0f} of {config['epochs']}, {status}) | {PAPER_DECONVOLUTION_PSNR} (~1000 epochs) |")
        if status != "finished":
            notes.append(f"`{name}`: unfinished, {done:.0f} of {config['epochs']} epochs")
    if not ax_lr.lines:
        ax.text(0.5, 0.5, "runs missing", transform=ax.transAxes, ha="center")
    ax.set_ylabel("PSNR [dB]")
    ax.set_title("Deconvolution of disks (paper section 5.1)")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    ax_lr.set_yscale("log")
    ax_lr.set_xlabel("epoch (64 Adam steps)")
    ax_lr.set_ylabel("learning rate")
    ax_lr.grid(alpha=0.3, which="both")
    fig.tight_layout()
    fig.savefig(os.path.join(figures_dir, "deconvolution_psnr.png"), dpi=120)
    plt.close(fig)
    return table, notes


def learning_rate_phases(runs_dir):
    """Markdown lines of a table: the code schedule's run phase by phase (the epochs of each learning rate:
    mean, range and highest test PSNR) next to the text schedule's mean test PSNR over the same epochs; no
    lines without the code schedule's run."""
    code = read_run(os.path.join(runs_dir, deconvolution.SCHEDULES["code"][0]))
    if code is None:
        return []
    text = read_run(os.path.join(runs_dir, deconvolution.SCHEDULES["text"][0]))
    text_psnr = {r["epoch"]: r["test_psnr"] for r in text[1]} if text else {}
    phases = []
    for row in code[1]:
        if not phases or phases[-1][0] != row["lr"]:
            phases.append((row["lr"], []))
        phases[-1][1].append(row)
    lines = ["## Section 5.1 with the authors' code's schedule, one learning rate at a time", "",
             "| learning rate | epochs | mean test PSNR [dB] | range [dB] | highest [dB] (epoch) | "
             "text's schedule, same epochs: mean [dB] | text - code [dB] |",
             "| ---: | --- | ---: | ---: | ---: | ---: | ---: |"]
    for lr, rows in phases:
        psnr = [r["test_psnr"] for r in rows]
        mean, top = statistics.fmean(psnr), max(rows, key=lambda r: r["test_psnr"])
        same = [text_psnr[r["epoch"]] for r in rows if r["epoch"] in text_psnr]
        text_mean = statistics.fmean(same) if len(same) == len(rows) else None
        versus = "- | -" if text_mean is None else f"{text_mean:.2f} | {text_mean - mean:.2f}"
        lines.append(f"| {lr:.3g} | {rows[0]['epoch']:.0f}-{rows[-1]['epoch']:.0f} | {mean:.2f} | {min(psnr):.2f}-"
                     f"{max(psnr):.2f} | {top['test_psnr']:.2f} ({top['epoch']:.0f}) | {versus} |")
    return lines + [""]


def study_runs(study_dir):
    """``{(model, n, noise): (config, rows, summary)}`` of the study's run directories present, and the names
    of the planned runs that are missing."""
    found, missing = {}, []
    for run in study.plan():
        got = read_run(os.path.join(study_dir, run.name))
        if got is None:
            missing.append(run.name)
        else:
            found[(run.model, run.n, run.noise)] = got
    return found, missing


def study_figures(study_dir, figures_dir):
    """Draw ``study.png`` and ``study_curves.png``; returns the table rows and notes."""
    found, missing = study_runs(study_dir)
    notes = [f"`study/{name}`: missing" for name in missing]
    fig, axes = plt.subplots(1, len(study.NOISES), figsize=(11, 4.2), squeeze=False)
    table = []
    for ax, noise in zip(axes[0], study.NOISES, strict=True):
        for model in study.MODELS:
            points = sorted((n, best(rows)["test_psnr"], run_status(config, rows, summary))
                            for (m, n, x), (config, rows, summary) in found.items() if m == model and x == noise)
            if points:
                ax.plot([p[0] for p in points], [p[1] for p in points], "o-", color=COLOURS[model],
                        label=f"{LABELS[model]}, ours")
                for n, psnr, status in points:
                    if status != "finished":     # an open marker: the run may still improve
                        ax.plot([n], [psnr], "o", mfc="white", color=COLOURS[model])
            paper = PAPER_PM_INVERSE[(model, noise)]
            ax.plot([PAPER_TRAIN_SIZE], [paper], "*", ms=12, color=COLOURS[model],
                    label=f"{LABELS[model]}, paper (STL-10)")
        ax.set_xscale("log")
        ax.set_xlabel("training images")
        ax.set_ylabel("test PSNR [dB]")
        ax.set_title(f"Perona-Malik inversion, noise {noise:.0%}")
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=8, loc="lower right")
    fig.text(0.5, 0.005, "open markers: unfinished runs; stars: the paper's 90,000-image results (section 5.2)",
             ha="center", fontsize=8)
    fig.tight_layout(rect=(0, 0.03, 1, 1))
    fig.savefig(os.path.join(figures_dir, "study.png"), dpi=120)
    plt.close(fig)

    fig, axes = plt.subplots(1, len(study.NOISES), figsize=(11, 4.2), squeeze=False)
    for ax, noise in zip(axes[0], study.NOISES, strict=True):
        for (model, n, x), (config, rows, _) in sorted(found.items()):
            if x != noise:
                continue
            shade = 0.35 + 0.65 * math.log10(n) / math.log10(max(study.SIZES))
            # optimiser updates, not epochs: an epoch of 10 images is one update, of 10,000 images 625
            per_epoch = math.ceil(config.get("train_size", n) / config.get("batch_size", study.BATCH))
            ax.plot([r["epoch"] * per_epoch for r in rows], [r["test_psnr"] for r in rows], color=COLOURS[model],
                    alpha=min(shade, 1.0), ls="-" if model == "diffnet" else "--", label=f"{LABELS[model]}, n = {n}")
        ax.set_xscale("log")
        ax.set_xlabel("optimiser updates (batch 16)")
        ax.set_ylabel("test PSNR [dB]")
        ax.set_title(f"study runs, noise {noise:.0%}")
        ax.grid(alpha=0.3, which="both")
        if ax.lines:
            ax.legend(fontsize=7, loc="lower right")
        else:
            ax.text(0.5, 0.5, "no runs yet", transform=ax.transAxes, ha="center")
    fig.tight_layout()
    fig.savefig(os.path.join(figures_dir, "study_curves.png"), dpi=120)
    plt.close(fig)

    for noise in study.NOISES:
        for model in study.MODELS:
            for n in study.SIZES:
                key = (model, n, noise)
                if key not in found:
                    continue
                config, rows, summary = found[key]
                b = best(rows)
                status = run_status(config, rows, summary)
                done = rows[-1]["epoch"]
                table.append(f"| PM inversion, {LABELS[model]}, noise {noise:.0%}, {n} images, test PSNR [dB] | "
                             f"{b['test_psnr']:.2f} (epoch {b['epoch']:.0f}; {done:.0f} epochs run, {status}) | - |")
                if status != "finished":
                    notes.append(f"`study/{study.Run(model, n, noise).name}`: unfinished, {done:.0f} of "
                                 f"{config['epochs']} epochs")
            table.append(f"| PM inversion, {LABELS[model]}, noise {noise:.0%}, paper's {PAPER_TRAIN_SIZE:,} STL-10 "
                         f"images, test PSNR [dB] | - | {PAPER_PM_INVERSE[(model, noise)]} |")
    return table, notes


def reproduce(*, runs_dir=RUNS, figures_dir=FIGURES):
    """Draw the three figures and write ``reproduction.md`` in ``figures_dir``; returns the notes (runs
    missing or unfinished)."""
    os.makedirs(figures_dir, exist_ok=True)
    rows1, notes1 = deconvolution_figure(runs_dir, figures_dir)
    rows2, notes2 = study_figures(os.path.join(runs_dir, "study"), figures_dir)
    notes = notes1 + notes2
    lines = ["# The paper's numbers and ours", "",
             "Written by `python benchmarks/reproduce.py` from the run directories under `benchmarks/runs/` "
             "(best test PSNR of each run: the epoch of its lowest test loss). Study: 96x96 patches of "
             f"scikit-image's photographs, {study.TEST_SIZE} test patches from {', '.join(study.TEST_SOURCES)} "
             "(held out of training); the paper's values are for STL-10 with 90,000 training images.", "",
             "![deconvolution](deconvolution_psnr.png)", "", "![study](study.png)", "",
             "![study curves](study_curves.png)", "",
             "| result | ours | paper |", "| --- | ---: | ---: |", *rows1, *rows2, "",
             *learning_rate_phases(runs_dir)]
    lines += ["## Missing or unfinished runs", ""] + ([f"- {n}" for n in notes] or ["None."]) + [""]
    with open(os.path.join(figures_dir, "reproduction.md"), "w") as f:
        f.write("\n".join(lines))
    return notes


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--runs", default=RUNS, help="the run directories (default benchmarks/runs)")
    p.add_argument("--figures", default=FIGURES, help="where the figures go (default benchmarks/figures)")
    args = p.parse_args(argv)
    notes = reproduce(runs_dir=args.runs, figures_dir=args.figures)
    for note in notes:
        print(note)
    print(f"wrote deconvolution_psnr.png, study.png, study_curves.png, reproduction.md in {args.figures}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
