"""benchmarks/reproduce.py draws its figures and table from run directories alone (fake ones, made here);
benchmarks/study.py's plan (runs, order, commands, skip and resume) is what it says, without training; the
``test_sources`` setting gives one test set for every training-set size. No training runs here."""
from __future__ import annotations

import csv
import json
import os
import shlex

import numpy as np
import pytest

from support import load_benchmark

pytest.importorskip("matplotlib")

study = load_benchmark("study")
deconvolution = load_benchmark("deconvolution")
reproduce = load_benchmark("reproduce")


def _fake_run(run_dir, *, epochs_planned, psnrs, stopped=None, every=1, lrs=None, **config):
    """A run directory with config.json, metrics.csv (one row per PSNR, after every ``every``-th epoch; learning
    rates ``lrs``, default 1e-3) and optionally summary.json."""
    os.makedirs(run_dir)
    with open(os.path.join(run_dir, "config.json"), "w") as f:
        json.dump({"epochs": epochs_planned, **config}, f)
    with open(os.path.join(run_dir, "metrics.csv"), "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["epoch", "train_loss", "test_loss", "train_psnr", "test_psnr", "lr", "seconds"])
        for i, (p, lr) in enumerate(zip(psnrs, lrs or [1e-3] * len(psnrs)), 1):
            w.writerow([i * every, 10 ** (-p / 10), 10 ** (-p / 10), p + 1, p, lr, 10.0 * i])
    if stopped is not None:
        with open(os.path.join(run_dir, "summary.json"), "w") as f:
            json.dump({"stopped": stopped}, f)


def _png_size(path):
    with open(path, "rb") as f:
        head = f.read(24)
    assert head[:8] == b"\x89PNG\r\n\x1a\n", path
    return int.from_bytes(head[16:20], "big"), int.from_bytes(head[20:24], "big")


def test_reproduce_draws_figures_and_table_from_run_directories(tmp_path):
    runs = tmp_path / "runs"
    _fake_run(runs / "disks_deconvolution", epochs_planned=1000, psnrs=[24.0, 30.0, 41.5, 41.25])
    _fake_run(runs / "study" / "diffnet_n10_noise0", epochs_planned=3, psnrs=[20.0, 27.5, 27.0])
    _fake_run(runs / "study" / "unet_n100_noise0.01", epochs_planned=50, psnrs=[18.0, 22.25], stopped="early_stopping")
    _fake_run(runs / "study" / "diffnet_n100_noise0", epochs_planned=50, psnrs=[19.0, 23.75])   # still running
    _fake_run(runs / "disks_deconvolution_code_schedule", epochs_planned=1000, psnrs=[30.0, 50.5, 50.25], every=5)
    figures = tmp_path / "figures"
    assert reproduce.learning_rate_phases(str(runs)) == [   # one learning rate, the text's run too short
        "## Section 5.1 with the authors' code's schedule, one learning rate at a time", "",
        "| learning rate | epochs | mean test PSNR [dB] | range [dB] | highest [dB] (epoch) | text's schedule, "
        "same epochs: mean [dB] | text - code [dB] |", "| ---: | --- | ---: | ---: | ---: | ---: | ---: |",
        "| 0.001 | 5-15 | 43.58 | 30.00-50.50 | 50.50 (10) | - | - |", ""]
    notes = reproduce.reproduce(runs_dir=str(runs), figures_dir=str(figures))

    for name in ("deconvolution_psnr.png", "study.png", "study_curves.png"):
        width, height = _png_size(figures / name)
        assert width > 300 and height > 200
    table = (figures / "reproduction.md").read_text()
    # best test PSNR = the epoch of the lowest test loss, next to the paper's value
    assert "| 41.50 (epoch 3 of 1000, unfinished) | 86.24 (~1000 epochs) |" in table
    assert "authors' code: 4e-3 halved every 10,000 steps, test PSNR [dB] | 50.50 (epoch 10 of 1000" in table
    assert "`disks_deconvolution_code_schedule`: unfinished, 15 of 1000 epochs" in notes
    assert "DiffNet, noise 0%, 10 images, test PSNR [dB] | 27.50 (epoch 2; 3 epochs run, finished)" in table
    assert "U-Net, noise 1%, 100 images, test PSNR [dB] | 22.25 (epoch 2; 2 epochs run, finished)" in table
    assert "DiffNet, noise 0%, 100 images, test PSNR [dB] | 23.75 (epoch 2; 2 epochs run, unfinished)" in table
    assert "| 65.34 |" in table and "| 35.27 |" in table
    assert "`disks_deconvolution`: unfinished, 4 of 1000 epochs" in notes
    assert "`study/diffnet_n100_noise0`: unfinished, 2 of 50 epochs" in notes
    assert "`study/unet_n10000_noise0`: missing" in notes and "`study/diffnet_n10_noise0`: missing" not in notes
    assert len([n for n in notes if n.endswith("missing")]) == len(study.plan()) - 3
    assert all(f"- {n}" in table for n in notes)


def test_learning_rate_phases_against_the_text_schedule(tmp_path):
    """Each learning rate's epochs of the code schedule's run: mean, range, highest PSNR and its epoch, and the
    text schedule's mean over the same epochs."""
    runs = tmp_path / "runs"
    _fake_run(runs / "disks_deconvolution", epochs_planned=5, psnrs=[40.0, 41.0, 42.0, 43.0, 44.0])
    _fake_run(runs / "disks_deconvolution_code_schedule", epochs_planned=5, psnrs=[30.0, 34.0, 33.0, 35.0, 36.5],
              lrs=[4e-3, 4e-3, 2e-3, 2e-3, 2e-3])
    rows = reproduce.learning_rate_phases(str(runs))[4:]
    assert rows == ["| 0.004 | 1-2 | 32.00 | 30.00-34.00 | 34.00 (2) | 40.50 | 8.50 |",
                    "| 0.002 | 3-5 | 34.83 | 33.00-36.50 | 36.50 (5) | 43.00 | 8.17 |", ""]
    assert reproduce.learning_rate_phases(str(tmp_path / "none")) == []


def test_reproduce_tolerates_no_runs_at_all(tmp_path, capsys):
    assert reproduce.main(["--runs", str(tmp_path / "none"), "--figures", str(tmp_path / "fig")]) == 0
    out = capsys.readouterr().out
    assert "`disks_deconvolution`: missing" in out and "`study/unet_n10_noise0`: missing" in out
    assert "`disks_deconvolution_code_schedule`: missing" in out
    assert (tmp_path / "fig" / "study.png").is_file() and (tmp_path / "fig" / "reproduction.md").is_file()


def test_deconvolution_runs_start_resume_and_skip(tmp_path, capsys):
    """benchmarks/deconvolution.py: the section 5.1 protocol with each schedule's flags, a valid `diffnet-torch
    train` command; a run with a checkpoint resumes, a finished one is skipped; --dry-run writes nothing."""
    from diffnet_torch.cli import build_parser

    out = tmp_path / "runs"
    assert deconvolution.main(["code", "--dry-run", "--budget", "500", "--out", str(out)]) == 0
    cmd = shlex.split(capsys.readouterr().out.splitlines()[-1])
    args = build_parser()[0].parse_args(cmd[3:])
    assert (args.lr, args.lr_halve_every, args.lr_final, args.epochs, args.layers) == (4e-3, 10000, 1e-6, 1000, 3)
    assert (args.train_size, args.test_size, args.image_size, args.batch_size) == (1024, 128, 64, 16)
    assert args.threads == 1 and not args.resume and args.time_budget == 500 and not out.exists()
    run_dir = out / "disks_deconvolution_code_schedule"
    _fake_run(run_dir, epochs_planned=1000, psnrs=[30.0, 31.0])
    (run_dir / "checkpoint.safetensors").write_bytes(b"")
    assert deconvolution.main(["code", "--dry-run", "--budget", "500", "--out", str(out)]) == 0
    cmd = shlex.split(capsys.readouterr().out.splitlines()[-1])
    assert "--resume" in cmd and float(cmd[cmd.index("--time-budget") + 1]) == pytest.approx(20 + 500, abs=1)
    assert deconvolution.main(["code", "--dry-run", "--threads", "2", "--out", str(out)]) == 0
    cmd = shlex.split(capsys.readouterr().out.splitlines()[-1])
    assert cmd[cmd.index("--threads") + 1] == "2"
    with pytest.raises(SystemExit):
        deconvolution.main(["code", "--dry-run", "--threads", "0", "--out", str(out)])
    assert "--threads 0 must be >= 1" in capsys.readouterr().err
    _fake_run(out / "disks_deconvolution", epochs_planned=2, psnrs=[30.0, 31.0], stopped="epochs")
    assert deconvolution.main(["text", "--budget", "500", "--out", str(out)]) == 0
    assert capsys.readouterr().out.strip().endswith("disks_deconvolution: finished")


def test_study_plan_sizes_order_and_schedules():
    runs = study.plan()
    assert len(runs) == 16 and len({r.name for r in runs}) == 16
    assert {(r.model, r.n, r.noise) for r in runs} == {(m, n, x) for m in ("diffnet", "unet")
                                                       for n in (10, 100, 1000, 10000) for x in (0.0, 0.01)}
    costs = [r.cost() for r in runs]
    assert costs == sorted(costs)
    assert runs[0].name == "diffnet_n10_noise0" and runs[-1].name == "unet_n10000_noise0.01"
    # updates grow like 300 sqrt(n / 10); epochs cover them with batches of 16
    for run in runs:
        assert run.updates == round(300 * (run.n / 10) ** 0.5)
        assert run.epochs * -(-run.n // 16) >= run.updates > (run.epochs - 1) * -(-run.n // 16)
    assert study.Run("diffnet", 10, 0.0).epochs == 300 and study.Run("unet", 10000, 0.01).epochs == 16


def test_study_dry_run_commands_skip_and_resume(tmp_path, capsys):
    out = tmp_path / "study"
    _fake_run(out / "diffnet_n10_noise0", epochs_planned=300, psnrs=[20.0], stopped="early_stopping")
    _fake_run(out / "diffnet_n10_noise0.01", epochs_planned=300, psnrs=[20.0, 21.0, 22.0], stopped="time_budget")
    (out / "diffnet_n10_noise0.01" / "checkpoint.safetensors").write_bytes(b"")
    assert study.main(["--dry-run", "--budget", "1000", "--out", str(out)]) == 0
    lines = capsys.readouterr().out.splitlines()
    heads = [line for line in lines if line.startswith("[")]
    commands = [shlex.split(line) for line in lines if line.startswith("    ")]
    assert [h.split()[1].rstrip(":") for h in heads] == [r.name for r in study.plan()]
    assert heads[0].split()[2] == "finished;" and len(commands) == 15     # the finished run has no command
    resumed = commands[0]
    assert resumed[-1] == "--resume" and resumed[resumed.index("--out") + 1] == str(out / "diffnet_n10_noise0.01")
    assert float(resumed[resumed.index("--time-budget") + 1]) == pytest.approx(30 + 1000, abs=2)
    fresh = commands[1]
    assert "--resume" not in fresh and fresh[fresh.index("--time-budget") + 1] in ("1000", "999")
    assert not (out / "diffnet_n100_noise0").exists()    # a dry run writes nothing

    # every command is a valid `diffnet-torch train` command with the study's settings
    from diffnet_torch.cli import build_parser
    from ssdops.diffnet.config import RunConfig

    parser = build_parser()[0]
    for cmd in commands:
        assert cmd[1:4] == ["-m", "diffnet_torch.cli", "train"]
        args = parser.parse_args(cmd[3:])
        assert args.threads == 1 and args.test_sources == list(study.TEST_SOURCES) and args.test_size == 100
        assert args.task == "pm-inverse" and args.data == "natural" and args.image_size == 96
        name = os.path.basename(args.out)
        assert name == f"{args.model}_n{args.train_size}_noise{args.noise:g}"
        RunConfig(**{k: getattr(args, k) for k in ("model", "task", "data", "noise", "train_size", "test_size",
                                                   "test_sources", "epochs", "lr", "lr_final", "patience")})


def test_study_threads_reach_every_command(tmp_path, capsys):
    """--threads sets the trainer's --threads of every run; fewer than one is refused before anything runs."""
    out = tmp_path / "study"
    assert study.main(["--dry-run", "--threads", "2", "--out", str(out)]) == 0
    commands = [shlex.split(line) for line in capsys.readouterr().out.splitlines() if line.startswith("    ")]
    assert len(commands) == 16 and all(cmd[cmd.index("--threads") + 1] == "2" for cmd in commands)
    with pytest.raises(SystemExit):
        study.main(["--dry-run", "--threads", "0", "--out", str(out)])
    assert "--threads 0 must be >= 1" in capsys.readouterr().err and not out.exists()


def test_study_without_enough_budget_trains_nothing(tmp_path, capsys):
    assert study.main(["--budget", "30", "--out", str(tmp_path / "study")]) == 0
    assert "budget spent (30 s left" in capsys.readouterr().out and not (tmp_path / "study").exists()


def test_test_sources_give_one_test_set_held_out_of_training():
    from ssdops.diffnet import data
    from ssdops.diffnet.config import RunConfig

    small = RunConfig(train_size=3, test_size=4, image_size=24, test_sources=["camera", "moon"], noise=0.01)
    large = small.replace(train_size=7)
    x_small, y_small = data.load_data(small, "test")
    x_large, y_large = data.load_data(large, "test")
    assert np.array_equal(y_small, y_large) and np.array_equal(x_small, x_large)
    # the independent reference: patches of the test photographs alone, drawn with seed + 1
    expected = data.natural_patches(4, 24, seed=1, sources=("camera", "moon"))
    assert np.array_equal(y_small[:, 0], expected)
    # training patches come from the other photographs: the same draw as with the test photographs excluded
    train = data.load_data(large, "train")[1][:, 0]
    assert np.array_equal(train, data.natural_patches(7, 24, seed=0, exclude=("camera", "moon")))
    assert RunConfig.from_dict({k: v for k, v in small.to_dict().items() if k != "test_sources"}).test_sources == ()
    assert small.to_dict()["test_sources"] == ["camera", "moon"]
    with pytest.raises(ValueError, match="test_sources: only for data natural"):
        RunConfig(data="disks", test_sources=["camera"])
    with pytest.raises(ValueError, match="overlap"):
        RunConfig(test_sources=["camera"], exclude=["camera"])
    with pytest.raises(ValueError, match="not one of"):
        RunConfig(test_sources=["camra"])
