"""DiffNet / the linear network / the U-Net trained in PyTorch: :class:`TorchTrainer`, the PyTorch side of
the one epoch loop :func:`ssdops.diffnet.loop.fit`, :func:`train`, :func:`evaluate_run` and
:func:`evaluate_weights`.

The loop (data, epoch order, schedule, early stopping, time budget, run files, resume) is
:mod:`ssdops.diffnet.loop`'s; this module holds what is PyTorch's: Adam (``torch.optim.Adam``, its learning
rate set every step from :func:`ssdops.diffnet.runs.lr_at`), MSE loss, per-image PSNR, checkpoint tensors
(model, ``adam.exp_avg.<name>``, ``adam.exp_avg_sq.<name>``, Adam step counts, the torch RNG states), and
DistributedDataParallel when started by ``torchrun`` (gloo on CPU, nccl on CUDA): each rank takes every
``world``-th image of the epoch's permutation, so the global batch is ``batch_size * world``; rank 0 writes
the files. On CPU it flushes subnormal floats to zero while it trains, as XLA does for JAX (subnormal
arithmetic is several times slower), and restores the caller's mode after.
"""
from __future__ import annotations

import base64
import gc
import json
import os
import weakref

import numpy as np
import torch
import torch.distributed as dist

import ssdops
from ssdops.diffnet import format as weight_files
from ssdops.diffnet import loop
from ssdops.diffnet.data import as_images

from .models import build_model, count_parameters, load_state_tensors, load_weights, state_tensors

__all__ = ["MODELS", "TorchTrainer", "evaluate_run", "evaluate_weights", "train"]

MODELS = ("diffnet", "linear", "unet")


def _device(name):
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def _dist_info():
    """``(world size, rank, local rank)`` from torchrun's environment (1, 0, 0 without torchrun)."""
    return (int(os.environ.get("WORLD_SIZE", "1")), int(os.environ.get("RANK", "0")),
            int(os.environ.get("LOCAL_RANK", "0")))


def _import_group_defaults():
    """Import ``torch.distributed.nn`` before the process group exists: its function defaults are
    ``group.WORLD``, and imported later (DistributedDataParallel imports it through ``torch._dynamo``) they
    hold the group for good, so ``destroy_process_group`` leaves its gloo threads running and a rank can abort
    at exit ("terminate called without an active exception")."""
    import torch.distributed.nn  # noqa: F401


def _flushes_denormals():
    """Whether this thread's CPU floating-point mode flushes subnormal float32 results to zero (a probe: the
    product 1e-30 * 1e-10 is subnormal)."""
    tiny = torch.tensor(1e-30, dtype=torch.float32) * torch.tensor(1e-10, dtype=torch.float32)
    return bool(tiny.item() == 0)


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


def _psnr(out, target):
    """Per-image (per-volume) PSNR in float64 of network outputs ``(N, 1, *grid)``."""
    return ssdops.psnr(as_images(out).double(), as_images(target).double())


def _all_finite(tensors):
    """A 0-d bool tensor: every element of every tensor is finite (a few kernels whatever the number of
    tensors; one host sync when read)."""
    return torch.isfinite(torch.cat([t.detach().reshape(-1) for t in tensors])).all()


class TorchTrainer:
    """The :class:`ssdops.diffnet.loop.Trainer` of PyTorch for a :class:`~ssdops.diffnet.config.RunConfig`:
    joins the ``torchrun`` process group if there is one, picks the device and the CPU threads."""

    models = MODELS

    @classmethod
    def check(cls, config):
        try:
            device = _device(config.device)
        except RuntimeError as err:
            raise ValueError(f"--device {config.device!r}: {err}") from None
        if device.type == "cuda" and not torch.cuda.is_available():
            raise ValueError(f"--device {config.device!r}: CUDA is not available")

    def __init__(self, config):
        world, rank, local = _dist_info()
        device = _device(config.device)
        if world > 1 and not dist.is_initialized():
            _import_group_defaults()
            dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
        if device.type == "cuda" and world > 1:
            device = torch.device("cuda", local)
            torch.cuda.set_device(device)
        self.threads = config.threads or max(1, min(torch.get_num_threads(), (os.cpu_count() or 1) // world))
        torch.set_num_threads(self.threads)
        self.world_size, self.rank, self.local_rank, self.is_main = world, rank, local, rank == 0
        self.device = device
        self.batch_images = config.batch_size
        self.model = self.net = None   # built by start
        self.flush_denormal = False    # set by start on CPU
        self.caller_flushes = False    # the mode finish restores

    # -- the model and one step -------------------------------------------------------------------
    def start(self, config, model_config, total_steps):
        if self.device.type == "cpu":
            # Subnormal floats take a slow path on CPUs: a deconvolution step on blurred disks (whose tails
            # reach 1e-22, and squared products below 1.2e-38) runs 7-16x slower with them. XLA flushes them on
            # CPU, so the JAX trainer computes in the same mode. finish restores the caller's mode.
            self.caller_flushes = _flushes_denormals()
            self.flush_denormal = torch.set_flush_denormal(True)
        torch.manual_seed(config.seed)
        self.checkpoint_path = os.path.join(os.fspath(config.out or ""), loop.CHECKPOINT_FILE)   # named by restore
        self.model = build_model(model_config).to(self.device)
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=config.lr)
        self.net = self.model
        if self.world_size > 1:
            self.net = torch.nn.parallel.DistributedDataParallel(
                self.model, device_ids=[self.local_rank] if self.device.type == "cuda" else None)
        return count_parameters(self.model)

    def warm_up(self, x, y):
        return None

    def step(self, x, y, lr):
        """Forward, backward and Adam update on ``x, y`` (NumPy) at ``lr``: ``(mean loss, PSNR sum,
        finite)`` as tensors; ``finite`` is agreed by every rank."""
        self.model.train()
        xb = torch.from_numpy(x).to(self.device)
        yb = torch.from_numpy(y).to(self.device)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        out = self.net(xb)
        loss = torch.mean((out - yb) ** 2)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        params = [p for p in self.model.parameters() if p.grad is not None]
        with torch.no_grad():
            finite = torch.isfinite(loss) & _all_finite([p.grad for p in params])
            self.optimizer.step()
            finite = finite & _all_finite(params)
            if self.world_size > 1:   # every rank must stop at the same step
                flag = finite.to(torch.int32)
                dist.all_reduce(flag, op=dist.ReduceOp.MIN)
                finite = flag.bool()
            psnr_sum = _psnr(out, yb).clamp(max=loop.PSNR_CAP).sum()
        return loss.detach(), psnr_sum, finite

    def all_reduce(self, values):
        if self.world_size == 1:
            return list(values)
        t = torch.tensor(values, dtype=torch.float64, device=self.device)
        dist.all_reduce(t)
        return t.tolist()

    @torch.no_grad()
    def evaluate(self, x, y):
        """Mean MSE and PSNR over ``x, y``: each rank evaluates every ``world``-th image, then the sums are
        all-reduced."""
        self.model.eval()
        x, y = x[self.rank :: self.world_size], y[self.rank :: self.world_size]
        batch = self.batch_images * 4
        mse_sum = psnr_sum = 0.0
        for i in range(0, len(x), batch):
            xb = torch.from_numpy(x[i : i + batch]).to(self.device)
            yb = torch.from_numpy(y[i : i + batch]).to(self.device)
            out = self.model(xb)
            mse_sum += float(((out - yb) ** 2).flatten(1).mean(dim=1).sum())
            psnr_sum += float(_psnr(out, yb).clamp(max=loop.PSNR_CAP).sum())
        mse_sum, psnr_sum, count = self.all_reduce([mse_sum, psnr_sum, float(len(x))])
        return mse_sum / max(count, 1), psnr_sum / max(count, 1)

    # -- files --------------------------------------------------------------------------------------
    def weights(self):
        return self.model.config, state_tensors(self.model)

    def checkpoint(self):
        tensors = state_tensors(self.model)
        steps = {}
        for name, p in self.model.named_parameters():
            state = self.optimizer.state.get(p)
            if state:
                tensors[f"adam.exp_avg.{name}"] = state["exp_avg"].detach().cpu().float().numpy().copy()
                tensors[f"adam.exp_avg_sq.{name}"] = state["exp_avg_sq"].detach().cpu().float().numpy().copy()
                steps[name] = float(state["step"])
        return tensors, steps, _rng_state()

    def restore(self, tensors, metadata):
        weight_files.check_checkpoint_model(self.checkpoint_path, metadata, self.model.config)
        own = self.model.state_dict()
        load_state_tensors(self.model, {k: v for k, v in tensors.items() if k in own})
        steps = json.loads(metadata["adam_steps"])
        for name, p in self.model.named_parameters():
            if name in steps:
                self.optimizer.state[p] = {
                    "step": torch.tensor(steps[name], dtype=torch.float32),
                    "exp_avg": torch.from_numpy(tensors[f"adam.exp_avg.{name}"]).to(self.device, p.dtype),
                    "exp_avg_sq": torch.from_numpy(tensors[f"adam.exp_avg_sq.{name}"]).to(self.device, p.dtype),
                }
        try:
            _set_rng_state(json.loads(metadata["rng"]))
        except (KeyError, ValueError, RuntimeError) as err:    # base64 errors are ValueErrors
            raise weight_files.CorruptFileError(f"{self.checkpoint_path}: not a PyTorch random state ({err!r:.120})"
                                                ) from None

    # -- reporting and processes --------------------------------------------------------------------
    def describe(self):
        return f"device {self.device}, world {self.world_size}, threads {self.threads}"

    def summary_extra(self):
        return {"world_size": self.world_size, "device": str(self.device), "threads_per_process": self.threads,
                "torch": torch.__version__, "flush_denormal": self.flush_denormal}

    def finish(self, ok):
        if self.flush_denormal:
            torch.set_flush_denormal(self.caller_flushes)
        if self.world_size > 1 and dist.is_initialized():
            # DDP's reducer drops its reference to the group while holding the GIL; were it the last one, the
            # group's destructor would wait for a gloo thread that waits for the GIL to free a tensor.
            # Freed first, the group's last reference goes in destroy_process_group, which waits without it.
            if self.net is not self.model:
                ddp = weakref.ref(self.net)
                self.net = self.model
                if ddp() is not None:   # a reference cycle holds it
                    gc.collect()
            if ok:
                dist.barrier()
            dist.destroy_process_group()


def train(settings, *, resume=False, overwrite=False, stop_after=None, log=print):
    """Train as the dict ``settings`` says (keys of :class:`~ssdops.diffnet.config.RunConfig`, with ``out``):
    :func:`ssdops.diffnet.loop.train` with :class:`TorchTrainer`. Returns the summary dict."""
    return loop.train(settings, TorchTrainer, main=_dist_info()[1] == 0, resume=resume, overwrite=overwrite,
                      stop_after=stop_after, log=log)


def evaluate_run(run_dir, *, data_path=None, device="cpu", batch_size=64):
    """Per-image test PSNRs (NumPy float64) of the run's best weights on the run's test set."""
    from ssdops.diffnet.data import load_run_test_set
    from ssdops.diffnet.runs import WEIGHTS_FILE

    x, y = load_run_test_set(run_dir, data_path)
    return evaluate_weights(os.path.join(run_dir, WEIGHTS_FILE), x, y, device=device, batch_size=batch_size)


def evaluate_weights(path, x, y, *, device="cpu", batch_size=64):
    """Per-image PSNRs (NumPy float64) of the model in the weights file ``path`` on inputs ``x`` against
    targets ``y`` (float32 NumPy arrays ``(N, 1, *grid)``, as :func:`ssdops.diffnet.data.make_task` gives)."""
    model = load_weights(path, device=device)
    values = []
    with torch.no_grad():
        for i in range(0, len(x), batch_size):
            out = model(torch.from_numpy(x[i : i + batch_size]).to(device))
            values.append(_psnr(out.cpu(), torch.from_numpy(y[i : i + batch_size])))
    return torch.cat(values).numpy()
