"""The ``train`` and ``evaluate`` sub-commands shared by ``diffnet-torch`` and ``diffnet-jax``.

Every flag of ``train`` is a field of :class:`~ssdops.diffnet.config.RunConfig`: its type and range are
checked by the parser (one line and exit status 2 for a bad value) and ``--help`` shows its help and
default. The flags' parser default is ``argparse.SUPPRESS``, so the parsed namespace holds exactly the
flags given: that is what ``--resume`` compares with the stored run. Nothing is written before the
arguments, the data source and the run directory have passed their checks (exit status 2 otherwise); a run
that diverges, and an evaluation of non-finite outputs or of a corrupt file, exit with status 1.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys

import numpy as np

from . import format, loop, runs
from .config import LIST_KEYS, RunConfig, positive_int

__all__ = ["add_evaluate_arguments", "add_train_arguments", "build_parser", "evaluate_command", "report_evaluation",
           "run_directory", "train_command"]

FORMATTER = argparse.ArgumentDefaultsHelpFormatter
#: Errors of a run that started (exit status 1, one line on stderr).
RUN_ERRORS = (loop.NonFiniteError, format.CorruptFileError, format.NonFiniteWeightsError)


def _flag(name):
    return "--" + name.replace("_", "-")


def add_train_arguments(p, *, models, skip=()):
    """The flags of ``train`` on parser ``p``: one per :class:`RunConfig` field (``models``: the choices of
    ``--model``; ``skip``: fields this package has no flag for), then ``--stop-after``, ``--out``,
    ``--resume``, ``--overwrite`` and ``--quiet``."""
    for f in dataclasses.fields(RunConfig):
        meta = f.metadata
        if not meta["flag"] or f.name in skip:
            continue
        choices = models if f.name == "model" else meta["choices"]
        kwargs = {"default": argparse.SUPPRESS, "help": f"{meta['help']} (default: {f.default!r})"}
        if f.name in LIST_KEYS:
            kwargs.update(nargs="*", metavar="NAME")
        if choices is not None:
            kwargs["choices"] = choices
        if meta["check"] is not None:
            kwargs["type"] = meta["check"]
        p.add_argument(_flag(f.name), **kwargs)
    p.add_argument("--stop-after", type=positive_int, default=None, metavar="EPOCH",
                   help="stop after this epoch as if interrupted (the schedule still spans --epochs; continue "
                   "with --resume)")
    p.add_argument("--out", required=True, help="the run directory")
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--resume", action="store_true", help="continue the run in --out from its checkpoint; "
                      "flags given must match the run's config.json, except --epochs (a larger value extends "
                      "the run, stretching the learning-rate decay), --time-budget, --threads, --device, "
                      "--devices, --quiet")
    mode.add_argument("--overwrite", action="store_true", help="remove the files of a run already in --out "
                      "first")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    return p


def run_directory(path):
    """argparse type of ``evaluate``'s argument: an existing run directory (with ``config.json``)."""
    if not os.path.isdir(path):
        raise argparse.ArgumentTypeError(f"{path}: no such directory")
    if not os.path.isfile(os.path.join(path, "config.json")):
        raise argparse.ArgumentTypeError(f"{path}: not a run directory (no config.json)")
    return path


def add_evaluate_arguments(p, *, device="auto"):
    """The arguments of ``evaluate``: the run directory, ``--data-path``, ``--device``, ``--json``."""
    p.add_argument("run", type=run_directory, help="a run directory written by train")
    p.add_argument("--data-path", default=None, help="STL-10 data directory, if not the run's")
    p.add_argument("--device", default=device, help="where to run the model")
    p.add_argument("--json", action="store_true", help="print a JSON object instead of a sentence")
    return p


def build_parser(prog, description, *, models, evaluate_device, skip=()):
    """A package's parser with its ``train`` and ``evaluate`` sub-commands; returns ``(parser, sub-parsers
    action, train sub-parser, evaluate sub-parser)`` (add a package's own sub-commands to the action)."""
    parser = argparse.ArgumentParser(prog=prog, description=description,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    train = sub.add_parser("train", formatter_class=FORMATTER, help="train a model; writes config.json, "
                           "metrics.csv, checkpoint, weights, summary")
    add_train_arguments(train, models=models, skip=skip)
    evaluate = sub.add_parser("evaluate", formatter_class=FORMATTER, help="mean / std test PSNR of a run's best "
                              "weights")
    add_evaluate_arguments(evaluate, device=evaluate_device)
    return parser, sub, train, evaluate


def _fail(prog, err, status=1):
    print(f"{prog}: error: {err}", file=sys.stderr)
    return status


def train_command(parser, args, trainer_class, *, main=True, show=True):
    """Run ``train`` for parsed ``args`` (``parser``: the ``train`` sub-parser, for its error exit).

    Bad settings, a data source that cannot be read, a directory holding another run or a ``--resume``
    that contradicts the stored run exit with status 2 before anything is written; a run that diverges
    (or meets a corrupt checkpoint) exits with status 1, its last good files kept. Returns 0 otherwise.
    """
    settings = {f.name: getattr(args, f.name) for f in dataclasses.fields(RunConfig)
                if f.metadata["flag"] and hasattr(args, f.name)}
    given = tuple(settings)
    try:
        # on --resume the flags given complete the stored run's settings, not the defaults: `--resume --ndim 3`
        # names a 3-D run's own dimension and must not meet the default 2-D data set
        has_run = os.path.isfile(os.path.join(args.out, "config.json"))
        stored = runs.read_config(args.out, settings) if args.resume and has_run else {}
        config = RunConfig.from_dict({**stored, **settings, "out": args.out, "progress": not args.quiet})
        config = loop.prepare(config, trainer_class, resume=args.resume, overwrite=args.overwrite, given=given,
                              main=main)
    except (ValueError, OSError) as err:    # not a syntax error: one line, without the usage
        parser.exit(2, f"{parser.prog}: error: {err}\n")
    try:
        summary = loop.fit(config, trainer_class(config), resume=args.resume, stop_after=args.stop_after)
    except RUN_ERRORS as err:
        return _fail(parser.prog, err)
    line = loop.report_final(summary)
    if line is not None and show:
        print(line)
    return 0


def evaluate_command(parser, args, evaluate_run):
    """Print :func:`report_evaluation` of ``evaluate_run`` on the run of parsed ``args``; exit status 1 (one
    line) if a test image's output is not finite or the weights cannot be loaded. Returns 0 otherwise."""
    return run_command(parser, lambda: _evaluate(parser, args, evaluate_run))


def run_command(parser, command):
    """``command()``, its errors one line naming the file: status 2 for a run directory that is not one
    (:class:`~ssdops.diffnet.runs.RunDirectoryError`), 1 for weights, checkpoints or data that cannot be
    used (:data:`RUN_ERRORS`, OSError)."""
    try:
        return command()
    except runs.RunDirectoryError as err:
        return _fail(parser.prog, err, status=2)
    except RUN_ERRORS + (OSError,) as err:
        return _fail(parser.prog, err)


def _evaluate(parser, args, evaluate_run):
    values = np.asarray(evaluate_run(args.run, data_path=args.data_path, device=args.device))
    bad = int(np.isnan(values).sum())
    if bad:
        return _fail(parser.prog, f"{args.run}: {bad} of {values.size} test images give non-finite outputs "
                     "(PSNR nan)")
    print(report_evaluation(values, args.json))
    return 0


def report_evaluation(values, as_json=False):
    """The line ``evaluate`` prints for per-image PSNRs ``values``."""
    mean, std = runs.mean_std_psnr(values)
    if as_json:
        return json.dumps({"mean_psnr": mean, "std_psnr": std, "n": int(len(values))})
    return f"test PSNR {mean:.2f} +- {std:.2f} dB over {len(values)} images"
