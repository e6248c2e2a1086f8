"""Training and evaluation of DiffNet / the linear network / the U-Net on the paper's tasks.

One function, :func:`train`, driven by a config dict (the CLI's options, :data:`DEFAULTS`):

- data from :mod:`ssdops.datasets` (train images with ``seed``, test images with ``seed + 1``; noise on
  the input drawn with the same seeds), optionally cached on disk (``cache_dir``);
- Adam, learning rate decaying exponentially per step from ``lr`` to ``lr_final`` over the whole run
  (:func:`ssdops.runs.lr_at`), MSE loss, per-epoch train / test loss and PSNR (:func:`ssdops.psnr` per
  image, mean) in ``metrics.csv``;
- every epoch an atomic checkpoint ``checkpoint.safetensors``: model tensors, Adam moments
  (``adam.exp_avg.<name>``, ``adam.exp_avg_sq.<name>``) and JSON metadata (epoch, step, early-stopping
  state, Adam step counts, RNG states); ``resume=True`` continues from it and reproduces the uninterrupted
  run exactly (the epoch order depends only on ``seed`` and the epoch number);
- the best model by test loss in ``weights.safetensors`` (format ``ssdops-diffnet/1``), ``summary.json``;
- early stopping on the test loss (``patience``), a wall-clock ``time_budget`` (no epoch is started that
  would end past it), ``stop_after`` (stop after that epoch, as if interrupted: for tests of resume);
- DistributedDataParallel when started by ``torchrun`` (gloo on CPU, nccl on CUDA): each rank takes every
  ``world``-th image of the epoch's permutation, so the global batch is ``batch_size * world``; rank 0
  writes the files.
"""
from __future__ import annotations

import base64
import json
import math
import os
import time

import numpy as np
import torch
import torch.distributed as dist

import ssdops
from ssdops import runs, training

from .models import build_model, count_parameters
from .weights import FORMAT, read_safetensors, save_weights, state_tensors, write_safetensors

__all__ = ["DEFAULTS", "evaluate_run", "load_data", "model_config", "train"]

DEFAULTS = training.DEFAULTS
CHECKPOINT_FORMAT = training.CHECKPOINT_FORMAT
load_data = training.load_data
model_config = training.model_config      # diffnet, linear and unet
_permutation = training.permutation


def _device(name):
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def _dist_info():
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local = int(os.environ.get("LOCAL_RANK", "0"))
    return world, rank, local


@torch.no_grad()
def _evaluate(model, x, y, batch_size, device):
    """Sum of per-image MSE, sum of per-image PSNR, count (for an all-reduce)."""
    mse_sum = psnr_sum = 0.0
    count = 0
    for i in range(0, len(x), batch_size):
        xb = torch.from_numpy(x[i : i + batch_size]).to(device)
        yb = torch.from_numpy(y[i : i + batch_size]).to(device)
        out = model(xb)
        mse_sum += float(((out - yb) ** 2).mean(dim=(1, 2, 3)).sum())
        p = ssdops.psnr(out[:, 0].double(), yb[:, 0].double())
        psnr_sum += float(p.clamp(max=training.PSNR_CAP).sum())
        count += len(xb)
    return mse_sum, psnr_sum, count


def _allreduce(values, device, world):
    if world == 1:
        return values
    t = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(t)
    return t.tolist()


def _rng_state():
    state = {"torch": base64.b64encode(torch.get_rng_state().numpy().tobytes()).decode()}
    if torch.cuda.is_available():
        state["cuda"] = [base64.b64encode(s.numpy().tobytes()).decode() for s in torch.cuda.get_rng_state_all()]
    return state


def _set_rng_state(state):
    torch.set_rng_state(torch.from_numpy(np.frombuffer(base64.b64decode(state["torch"]), np.uint8).copy()))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(
            [torch.from_numpy(np.frombuffer(base64.b64decode(s), np.uint8).copy()) for s in state["cuda"]])


def _save_checkpoint(path, model, opt, state):
    tensors = state_tensors(model)
    names = dict(model.named_parameters())
    steps = {}
    for name, p in names.items():
        st = opt.state.get(p)
        if st:
            tensors[f"adam.exp_avg.{name}"] = st["exp_avg"].detach().cpu().float().contiguous().clone()
            tensors[f"adam.exp_avg_sq.{name}"] = st["exp_avg_sq"].detach().cpu().float().contiguous().clone()
            steps[name] = float(st["step"])
    write_safetensors(tensors, path, training.checkpoint_metadata(
        state, weights_format=FORMAT, config=model.config, adam_steps=steps, rng=_rng_state()))


def _load_checkpoint(path, model, opt, device):
    tensors, meta = read_safetensors(path)
    state = training.checkpoint_state(path, meta, "diffnet-torch")
    own = model.state_dict()
    model.load_state_dict({k: v.to(own[k].dtype) for k, v in tensors.items() if k in own}, strict=True)
    steps = json.loads(meta["adam_steps"])
    for name, p in model.named_parameters():
        if name in steps:
            opt.state[p] = {
                "step": torch.tensor(steps[name], dtype=torch.float32),
                "exp_avg": tensors[f"adam.exp_avg.{name}"].to(device=device, dtype=p.dtype),
                "exp_avg_sq": tensors[f"adam.exp_avg_sq.{name}"].to(device=device, dtype=p.dtype),
            }
    _set_rng_state(json.loads(meta["rng"]))
    return state


def train(cfg, *, resume=False, stop_after=None, log=print):
    """Train according to ``cfg`` (keys of :data:`DEFAULTS` plus ``out``); returns the summary dict."""
    cfg = {**DEFAULTS, **cfg}
    out = os.fspath(cfg["out"])
    world, rank, local = _dist_info()
    device = _device(cfg["device"])
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    if device.type == "cuda" and world > 1:
        device = torch.device("cuda", local)
        torch.cuda.set_device(device)
    threads = cfg["threads"] or max(1, min(torch.get_num_threads(), (os.cpu_count() or 1) // world))
    torch.set_num_threads(threads)
    main = rank == 0

    cfg, ckpt_path = training.open_run(cfg, resume=resume, defaults=DEFAULTS, main=main)

    x_train, y_train = load_data(cfg, "train")
    x_test, y_test = load_data(cfg, "test")
    torch.manual_seed(cfg["seed"])
    model = build_model(model_config(cfg, x_train.shape[-2:])).to(device)
    n_params = count_parameters(model)
    opt = torch.optim.Adam(model.parameters(), lr=cfg["lr"])
    bs = cfg["batch_size"]
    per_rank = len(x_train) // world
    steps_per_epoch = max(1, math.ceil(per_rank / bs))
    total_steps = steps_per_epoch * cfg["epochs"]

    early = runs.EarlyStopping(cfg["patience"])
    start_epoch, step, seconds_before, best_psnr = 0, 0, 0.0, -math.inf
    if resume:
        start_epoch, step, seconds_before, best_psnr = training.restore(
            _load_checkpoint(ckpt_path, model, opt, device), early)
    metrics = runs.MetricsLog(out) if main else None
    if main and resume:
        metrics.truncate(start_epoch)
    net = model
    if world > 1:
        net = torch.nn.parallel.DistributedDataParallel(model, device_ids=[local] if device.type == "cuda" else None)

    if main:
        log(training.run_message(cfg, n_params, x_train, x_test) + f"device {device}, world {world}, "
            f"threads {threads}")
    t_start = time.perf_counter()
    train_time = 0.0
    images_seen = 0
    stopped = "epochs"
    last_epoch_seconds = 0.0
    epoch = start_epoch
    final_psnr = None
    for epoch in range(start_epoch + 1, cfg["epochs"] + 1):
        elapsed = seconds_before + time.perf_counter() - t_start
        if training.out_of_time(cfg, epoch, start_epoch, elapsed, last_epoch_seconds):
            stopped, epoch = "time_budget", epoch - 1
            break
        t0 = time.perf_counter()
        model.train()
        perm = _permutation(len(x_train), cfg["seed"], epoch)[rank : per_rank * world : world]
        loss_sum = psnr_sum = 0.0
        for b in training.progress_bar(steps_per_epoch, epoch, cfg, show=main):
            idx = np.sort(perm[b * bs : (b + 1) * bs])
            xb = torch.from_numpy(x_train[idx]).to(device)
            yb = torch.from_numpy(y_train[idx]).to(device)
            lr = runs.lr_at(step, total_steps, cfg["lr"], cfg["lr_final"])
            for g in opt.param_groups:
                g["lr"] = lr
            out_b = net(xb)
            loss = torch.mean((out_b - yb) ** 2)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            step += 1
            with torch.no_grad():
                loss_sum += float(loss.detach()) * len(idx)
                psnr_sum += float(ssdops.psnr(out_b[:, 0].detach().double(), yb[:, 0].double())
                                  .clamp(max=training.PSNR_CAP).sum())
            images_seen += len(idx) * world
        train_time += time.perf_counter() - t0
        tr_loss, tr_psnr, tr_n = _allreduce([loss_sum, psnr_sum, float(len(perm))], device, world)
        model.eval()
        te = _evaluate(model, x_test[rank::world], y_test[rank::world], bs * 4, device)
        te_loss, te_psnr, te_n = _allreduce(list(te), device, world)
        te_loss, te_psnr = te_loss / max(te_n, 1), te_psnr / max(te_n, 1)
        final_psnr = te_psnr
        improved = early.update(te_loss, epoch)
        if improved:
            best_psnr = te_psnr
        last_epoch_seconds = time.perf_counter() - t0
        seconds = seconds_before + time.perf_counter() - t_start
        if main:
            training.finish_epoch(
                out, metrics, epoch=epoch, step=step, early=early, best_psnr=best_psnr, train_loss=tr_loss / tr_n,
                train_psnr=tr_psnr / tr_n, test_loss=te_loss, test_psnr=te_psnr, lr=lr, seconds=seconds,
                improved=improved, save_best=lambda path, meta: save_weights(model, path, extra_metadata=meta),
                save_checkpoint=lambda state: _save_checkpoint(ckpt_path, model, opt, state), log=log)
        reason = training.stop_reason(early, epoch, stop_after)
        if reason:
            stopped = reason
            break
    if world > 1:
        dist.barrier()
    seconds = seconds_before + time.perf_counter() - t_start
    if final_psnr is None and main:  # nothing trained in this call: report from the log
        final_psnr = training.last_test_psnr(metrics)
    summary = training.summary(cfg, early=early, best_psnr=best_psnr, final_psnr=final_psnr, epoch=epoch,
                               step=step, stopped=stopped, seconds=seconds, train_time=train_time,
                               images_seen=images_seen, n_params=n_params, world_size=world,
                               device=str(device), threads_per_process=threads, torch=torch.__version__)
    if main:
        runs.write_summary(out, summary)
    if world > 1:
        dist.barrier()
        dist.destroy_process_group()
    return summary


def evaluate_run(run_dir, *, data_path=None, device="cpu", batch_size=64):
    """Per-image test PSNRs (numpy) of the run's best weights on the run's test set."""
    from .weights import load_weights

    x, y = training.load_test_set(run_dir, DEFAULTS, data_path)
    model = load_weights(os.path.join(run_dir, training.WEIGHTS_FILE), device=device)
    values = []
    with torch.no_grad():
        for i in range(0, len(x), batch_size):
            out = model(torch.from_numpy(x[i : i + batch_size]).to(device))
            values.append(ssdops.psnr(out[:, 0].double().cpu(), torch.from_numpy(y[i : i + batch_size, 0]).double()))
    return torch.cat(values).numpy()
