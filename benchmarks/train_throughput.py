#!/usr/bin/env python
"""Training throughput of DiffNet: images/s of one training step (forward + backward + Adam update).

Three implementations of the same model in one run, on the same inputs, each timed through the step its
trainer runs in training (``TorchTrainer.step`` / ``JaxTrainer.step``: the batch's host-to-device copy, the
update and the finiteness check, which is left on the device):

- ``torch-eager``:   ``diffnet_torch.DiffNet`` in ``diffnet_torch.trainer.TorchTrainer`` (``torch.optim.Adam``),
  eager mode;
- ``torch-compile``: the same trainer with its network through ``torch.compile`` (if compilation fails the
  row says so and the run goes on);
- ``jax``:           ``diffnet_jax.DiffNet`` in ``diffnet_jax.trainer.JaxTrainer``: one ``jax.jit``-compiled
  step (optax Adam), parameters donated;
- ``torch-ieee``:    the eager trainer with IEEE subnormals kept (``torch.set_flush_denormal(False)`` after its
  start; its mode before 2026-12-06): what flushing them saves. The mode is the calling thread's, and intra-op
  worker threads keep the mode they started with: compare it with ``--threads 1``;
- ``torch-unet``:    the U-Net baseline (``diffnet_torch.unet.UNet``, 34.5 M parameters) in the same trainer, for the
  DiffNet / U-Net comparison (not in the default list: slow on a CPU).

The default is the paper's configuration: 5 layers (K = 4, 32 channels), 96 x 96 images, batch 16, float32, on
uniform random inputs; ``--data deconvolution`` takes section 5.1's inputs instead, disks blurred by the heat
equation, whose tails (down to 1e-22) make subnormal products.
Each implementation first runs ``--warmup`` steps (compilation, allocator), then ``--repeats`` samples of
``--steps`` steps each, ending every sample with a device synchronisation; the table shows the median.

    python benchmarks/train_throughput.py --quick             # tiny sizes, seconds: does it all work?
    python benchmarks/train_throughput.py                     # the paper's configuration
    python benchmarks/train_throughput.py --json out.json     # also write the records (- for stdout)
    python benchmarks/train_throughput.py --device cuda --frameworks jax,torch-eager
    python benchmarks/train_throughput.py --data deconvolution --layers 3 --image-size 64 --threads 1 \
        --frameworks torch-eager,torch-ieee,jax                # subnormals flushed, kept, and XLA
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

try:
    import diffnet_jax  # noqa: F401
except ImportError:  # run from a checkout without installing
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np

FRAMEWORKS = ("torch-eager", "torch-compile", "jax")
OPTIONAL = ("torch-ieee", "torch-unet")
DATA = ("uniform", "deconvolution")


def _samples(run_steps, sync, *, warmup, repeats, steps):
    for _ in range(warmup):
        run_steps(1)
    sync()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        run_steps(steps)
        sync()
        times.append((time.perf_counter() - t0) / steps)
    return times


def bench_torch(x, y, args, *, compiled, unet=False, ieee=False):
    import torch

    try:
        from diffnet_torch.trainer import TorchTrainer
    except ImportError as err:
        return {"status": f"skipped: diffnet_torch not importable ({err})"}
    from ssdops.diffnet.config import RunConfig

    config = RunConfig(model="unet" if unet else "diffnet", device={"gpu": "cuda"}.get(args.device, args.device),
                       batch_size=len(x), threads=args.threads, layers=args.layers, depth=args.depth, width=args.width,
                       lr=1e-4)
    trainer = TorchTrainer(config)
    trainer.start(config, config.model_config(x.shape[-2:]), total_steps=1)
    try:
        if ieee:
            torch.set_flush_denormal(False)
        return _time_torch(trainer, x, y, args, compiled=compiled)
    finally:
        trainer.finish(True)   # the caller's denormal mode back


def _time_torch(trainer, x, y, args, *, compiled):
    import torch

    device = trainer.device
    if compiled:
        if not args.verbose:
            import warnings

            warnings.filterwarnings("ignore", message=".*Dynamo detected.*")
        try:
            trainer.net = torch.compile(trainer.model)
        except Exception as err:  # noqa: BLE001
            return {"status": f"failed: torch.compile: {type(err).__name__}: {err}", "device": str(device)}

    def run_steps(n):
        for _ in range(n):
            trainer.step(x, y, 1e-4)

    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize()

    t0 = time.perf_counter()
    try:
        run_steps(1)   # the first step (compilation for torch.compile)
        sync()
    except Exception as err:  # noqa: BLE001
        if not compiled:
            raise
        msg = str(err).strip().splitlines()[0][:300] if str(err).strip() else ""
        return {"status": f"failed: torch.compile: {type(err).__name__}: {msg}", "device": str(device)}
    first = time.perf_counter() - t0
    times = _samples(run_steps, sync, warmup=args.warmup, repeats=args.repeats, steps=args.steps)
    return {"status": "ok", "device": str(device), "times": times, "first_step_seconds": first,
            "version": torch.__version__}


def bench_jax(x, y, args):
    import jax

    import diffnet_jax
    from diffnet_jax.trainer import JaxTrainer, select_devices

    device = select_devices(args.device if args.device != "cuda" else "gpu", 1)[0]
    model = diffnet_jax.DiffNet(n_layers=args.layers, depth=args.depth, width=args.width, key=jax.random.PRNGKey(0))
    trainer = JaxTrainer(devices=[device], batch_size=len(x))
    trainer.set_model(model)
    first = trainer.warm_up(x, y)

    def run_steps(n):
        for _ in range(n):
            trainer.step(x, y, 1e-4)

    def sync():
        jax.block_until_ready(trainer.params)

    times = _samples(run_steps, sync, warmup=args.warmup, repeats=args.repeats, steps=args.steps)
    return {"status": "ok", "device": f"{device.platform}:{device.id}", "times": times,
            "first_step_seconds": first, "version": jax.__version__}


def run(args):
    if args.data == "deconvolution":
        from ssdops.diffnet.data import disks, make_task

        x, y = make_task("deconvolution", disks(args.batch, args.image_size, seed=0))
    else:
        rng = np.random.default_rng(0)
        shape = (args.batch, 1, args.image_size, args.image_size)
        x = rng.random(shape, dtype=np.float32)
        y = np.clip(x + 0.05 * rng.standard_normal(shape, dtype=np.float32), 0, None).astype(np.float32)
    records = []
    for fw in args.frameworks:
        if args.verbose:
            print(f"[{fw}] ...", file=sys.stderr, flush=True)
        t0 = time.perf_counter()
        try:
            if fw == "jax":
                res = bench_jax(x, y, args)
            else:
                res = bench_torch(x, y, args, compiled=(fw == "torch-compile"), unet=(fw == "torch-unet"),
                                  ieee=(fw == "torch-ieee"))
        except ImportError as err:
            res = {"status": f"skipped: {err}"}
        except Exception as err:  # noqa: BLE001
            if args.verbose:
                traceback.print_exc()
            res = {"status": f"failed: {type(err).__name__}: {str(err)[:300]}"}
        rec = {"framework": fw, "layers": args.layers, "depth": args.depth, "width": args.width,
               "image_size": args.image_size, "batch": args.batch, "dtype": "float32", "data": args.data,
               "wall_seconds": time.perf_counter() - t0, **res}
        times = rec.pop("times", None)
        if times:
            med = statistics.median(times)
            rec.update(ms_per_step=1e3 * med, images_per_second=args.batch / med, samples=len(times),
                       steps_per_sample=args.steps, ms_per_step_all=[1e3 * t for t in times])
        records.append(rec)
    return records


def table(records):
    lines = [f"{'framework':<14} {'device':<8} {'images/s':>10} {'ms/step':>9} {'first step s':>13}  status"]
    for r in records:
        ips = f"{r['images_per_second']:.1f}" if "images_per_second" in r else "-"
        ms = f"{r['ms_per_step']:.2f}" if "ms_per_step" in r else "-"
        first = f"{r['first_step_seconds']:.1f}" if "first_step_seconds" in r else "-"
        lines.append(f"{r['framework']:<14} {r.get('device', '-'):<8} {ips:>10} {ms:>9} {first:>13}  {r['status']}")
    return "\n".join(lines)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--layers", type=int, default=5)
    p.add_argument("--depth", type=int, default=4)
    p.add_argument("--width", type=int, default=32)
    p.add_argument("--image-size", type=int, default=96)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--data", choices=DATA, default="uniform",
                   help="uniform random inputs, or section 5.1's blurred disks (default uniform)")
    p.add_argument("--frameworks", default=",".join(FRAMEWORKS),
                   help=f"comma-separated subset of {FRAMEWORKS + OPTIONAL}")
    p.add_argument("--device", default="auto", help="auto (GPU if present), cpu, cuda/gpu")
    p.add_argument("--warmup", type=int, default=3, help="steps before timing")
    p.add_argument("--repeats", type=int, default=7, help="timed samples (the median is reported)")
    p.add_argument("--steps", type=int, default=5, help="training steps per sample")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    p.add_argument("--quick", action="store_true", help="tiny sizes (2 layers, 32x32, batch 4), few samples")
    p.add_argument("--json", default=None, help="write the records here (- for stdout; the table goes to stderr)")
    p.add_argument("-v", "--verbose", action="store_true")
    args = p.parse_args(argv)
    args.frameworks = [f.strip() for f in args.frameworks.split(",") if f.strip()]
    unknown = set(args.frameworks) - set(FRAMEWORKS + OPTIONAL)
    if unknown:
        p.error(f"unknown frameworks {sorted(unknown)}; choose from {FRAMEWORKS + OPTIONAL}")
    if args.quick:
        args.layers, args.image_size, args.batch = 2, 32, 4
        args.warmup, args.repeats, args.steps = 1, 3, 2
    if args.device == "cpu":
        os.environ.setdefault("JAX_PLATFORMS", "cpu")
    records = run(args)
    meta = {"python": platform.python_version(), "machine": platform.machine(), "cpus": os.cpu_count()}
    for r in records:
        r.update(meta)
    text = table(records)
    if args.json == "-":
        print(text, file=sys.stderr)
        print(json.dumps(records, indent=2))
    else:
        print(f"DiffNet training step: {args.layers} layers (K={args.depth}, {args.width} ch), "
              f"{args.image_size}x{args.image_size}, batch {args.batch}, float32, {args.data} data; "
              f"median of {args.repeats} x {args.steps} steps after {args.warmup} warm-up")
        print(text)
        if args.json:
            with open(args.json, "w", encoding="utf-8") as f:
                json.dump(records, f, indent=2)
    ok = all(not r["status"].startswith("failed") or r["framework"] == "torch-compile" for r in records)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
