"""Training and evaluation of DiffNet / the linear network in JAX: the twin of ``diffnet_torch.train``.

Same configuration keys (:data:`DEFAULTS`), same data (:mod:`ssdops.datasets`: train images with
``seed``, test images with ``seed + 1``), same schedule (Adam, learning rate decaying exponentially per step
from ``lr`` to ``lr_final`` over the whole run, :func:`ssdops.runs.lr_at`), same loss (MSE), same epoch
order (a permutation that depends only on ``seed`` and the epoch), same files in the run directory:

- ``config.json``, ``metrics.csv`` (:data:`ssdops.runs.METRIC_COLUMNS`), ``summary.json``;
- ``weights.safetensors``: the best model by test loss, format ``ssdops-diffnet/1`` (loadable by
  ``diffnet_torch.load_weights``);
- ``checkpoint.safetensors`` every epoch, written atomically: model tensors, Adam moments
  (``adam.exp_avg.<name>``, ``adam.exp_avg_sq.<name>``) and JSON metadata (epoch, step, early-stopping
  state, Adam step counts, seconds, best PSNR); ``resume=True`` continues from it and reproduces the
  uninterrupted run (the only randomness after initialisation is the epoch permutation, a function of
  ``seed`` and the epoch number).

One ``jax.jit``-compiled step (forward, backward, Adam update), compiled ahead of the timed loop. Batches
have a fixed shape: the last, short batch of an epoch is padded and masked out of the loss, so the
result equals PyTorch's short last batch and nothing recompiles.

Data parallel over several devices: a 1-D :class:`jax.sharding.Mesh` over ``devices`` (default: all of
the chosen platform's devices), the batch axis sharded, parameters and optimiser state replicated.
``batch_size`` is per device, as ``--batch-size`` is per process in ``diffnet-torch``'s DDP: the global
batch is ``batch_size * n_devices``. Test on a CPU with ``XLA_FLAGS=--xla_force_host_platform_device_count=2``.
"""
from __future__ import annotations

import math
import os
import time

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.sharding import Mesh, NamedSharding, PartitionSpec

import ssdops
from ssdops import runs, training

from .models import build_model, count_parameters
from .weights import FORMAT, load_state_dict, read_weights, save_weights, state_dict, write_safetensors

__all__ = ["CHECKPOINT_FORMAT", "DEFAULTS", "Trainer", "evaluate_run", "load_data", "model_config", "train"]

CHECKPOINT_FORMAT = training.CHECKPOINT_FORMAT
PSNR_CAP = training.PSNR_CAP
DEFAULTS = {**training.DEFAULTS, "devices": None}
MODELS = ("diffnet", "linear")

# keys that may differ on --resume (the run's own settings win for everything else)
_RUNTIME_KEYS = training.RUNTIME_KEYS + ("devices",)

load_data = training.load_data       # exactly the arrays diffnet_torch.train.load_data gives
permutation = training.permutation   # the same epoch order as diffnet-torch's


def model_config(cfg, image_shape):
    return training.model_config(cfg, image_shape, MODELS,
                                 f"unknown model {cfg['model']!r} for diffnet-jax: use diffnet or linear")


def select_devices(device="auto", count=None):
    """The devices to train on: ``device`` is ``auto`` (JAX's default platform), ``cpu``, ``gpu``/``cuda``
    or ``tpu``; ``count`` takes the first ``count`` of them (default: all)."""
    if device in (None, "auto"):
        devs = jax.devices()
    else:
        platform = {"cuda": "gpu"}.get(str(device).split(":")[0], str(device).split(":")[0])
        devs = jax.devices(platform)
    if count is not None:
        if count < 1 or count > len(devs):
            raise ValueError(f"asked for {count} devices, {len(devs)} available: {devs}")
        devs = devs[:count]
    return list(devs)


def lr_schedule(lr, lr_final, total_steps):
    """:func:`ssdops.runs.lr_at` as an optax schedule (a function of the update count, traceable)."""
    lr, lr_final, total = float(lr), float(lr_final), max(int(total_steps), 0)

    def schedule(count):
        if total <= 0:
            return jnp.asarray(lr, jnp.float32)
        frac = jnp.clip(jnp.asarray(count, jnp.float32) / total, 0.0, 1.0)
        return jnp.asarray(lr, jnp.float32) * jnp.asarray(lr_final / lr, jnp.float32) ** frac

    return schedule


def make_optimizer(lr, lr_final, total_steps):
    """Adam (PyTorch's defaults: betas 0.9, 0.999, eps 1e-8) with the exponential decay of the run."""
    schedule = lr_schedule(lr, lr_final, total_steps)
    return optax.chain(optax.scale_by_adam(b1=0.9, b2=0.999, eps=1e-8),
                       optax.scale_by_schedule(lambda count: -schedule(count)))


def _per_image(out, y):
    mse = jnp.mean((out - y) ** 2, axis=(1, 2, 3))
    psnr = jnp.minimum(ssdops.psnr(out[:, 0], y[:, 0]), PSNR_CAP)
    return mse, psnr


class Trainer:
    """The compiled pieces of a run: model skeleton, optimiser, mesh, ``step`` and ``evaluate``.

    ``params`` and ``opt_state`` are held by the caller (functional style); :meth:`step` returns new ones.
    """

    def __init__(self, model, *, lr, lr_final, total_steps, devices=None, batch_size=16):
        self.devices = list(devices) if devices is not None else [jax.devices()[0]]
        self.n_devices = len(self.devices)
        self.mesh = Mesh(np.array(self.devices), ("data",))
        self.replicated = NamedSharding(self.mesh, PartitionSpec())
        self.sharded = NamedSharding(self.mesh, PartitionSpec("data"))
        self.batch = int(batch_size) * self.n_devices      # global batch
        self.optimizer = make_optimizer(lr, lr_final, total_steps)
        params, self.static = eqx.partition(model, eqx.is_inexact_array)
        self.params = _put(params, self.replicated)      # own copies: the step donates its buffers
        self.opt_state = _put(self.optimizer.init(params), self.replicated)
        static, optimizer = self.static, self.optimizer

        def loss_fn(p, x, y, w):
            out = eqx.combine(p, static)(x)
            mse, psnr = _per_image(out, y)
            return jnp.sum(mse * w) / jnp.sum(w), psnr

        def step(p, s, x, y, w):
            (loss, psnr), grads = jax.value_and_grad(loss_fn, has_aux=True)(p, x, y, w)
            updates, s = optimizer.update(grads, s, p)
            p = optax.apply_updates(p, updates)
            return p, s, loss, jnp.sum(jnp.where(w > 0, psnr, 0.0))

        def evaluate(p, x, y, w):
            mse, psnr = _per_image(eqx.combine(p, static)(x), y)
            return jnp.sum(mse * w), jnp.sum(jnp.where(w > 0, psnr, 0.0))

        r, d = self.replicated, self.sharded
        self._step = jax.jit(step, in_shardings=(r, r, d, d, d), out_shardings=r, donate_argnums=(0, 1))
        self._eval = jax.jit(evaluate, in_shardings=(r, d, d, d), out_shardings=r)
        self._compiled_step = None

    # -- data -------------------------------------------------------------------------------------
    def put_batch(self, x, y, idx, size):
        """Arrays ``x[idx], y[idx]`` padded to ``size`` (repeating the first image) and a 0/1 weight mask,
        sharded over the mesh's batch axis."""
        n = len(idx)
        pad = np.concatenate([idx, np.full(size - n, idx[0], dtype=idx.dtype)]) if n < size else idx
        w = np.zeros(size, np.float32)
        w[:n] = 1.0
        return (jax.device_put(x[pad], self.sharded), jax.device_put(y[pad], self.sharded),
                jax.device_put(w, self.sharded))

    # -- compiled functions -----------------------------------------------------------------------
    def compile(self, x_example, y_example):
        """Compile the step ahead of time (so that timings exclude compilation); returns the seconds."""
        t0 = time.perf_counter()
        xb, yb, wb = self.put_batch(x_example, y_example, np.arange(min(len(x_example), self.batch)), self.batch)
        self._compiled_step = self._step.lower(self.params, self.opt_state, xb, yb, wb).compile()
        return time.perf_counter() - t0

    def step(self, xb, yb, wb):
        fn = self._compiled_step or self._step
        self.params, self.opt_state, loss, psnr_sum = fn(self.params, self.opt_state, xb, yb, wb)
        return loss, psnr_sum

    def evaluate(self, x, y, batch=None):
        """``(mean MSE, mean PSNR)`` per image over ``x, y`` (PSNR capped at 300 dB, as in diffnet-torch)."""
        batch = batch or self.batch * 4
        mse_sum = psnr_sum = 0.0
        for i in range(0, len(x), batch):
            idx = np.arange(i, min(i + batch, len(x)))
            xb, yb, wb = self.put_batch(x, y, idx, batch)
            m, p = self._eval(self.params, xb, yb, wb)
            mse_sum += float(m)
            psnr_sum += float(p)
        n = max(len(x), 1)
        return mse_sum / n, psnr_sum / n

    # -- state --------------------------------------------------------------------------------------
    @property
    def model(self):
        return eqx.combine(self.params, self.static)

    @property
    def step_count(self):
        return int(self.opt_state[0].count)

    def moments(self):
        """``(exp_avg, exp_avg_sq)`` as models (the parameter tree) for naming."""
        adam = self.opt_state[0]
        return eqx.combine(adam.mu, self.static), eqx.combine(adam.nu, self.static)

    def load_state(self, tensors, step):
        """Set parameters and Adam moments from checkpoint tensors and the step count."""
        template = self.model
        params = eqx.partition(load_state_dict(template, _model_tensors(tensors)), eqx.is_inexact_array)[0]
        mu = eqx.partition(load_state_dict(template, tensors, prefix="adam.exp_avg."), eqx.is_inexact_array)[0]
        nu = eqx.partition(load_state_dict(template, tensors, prefix="adam.exp_avg_sq."), eqx.is_inexact_array)[0]
        adam, sched = self.opt_state
        def count():   # one buffer each: the step donates the whole state
            return jnp.asarray(int(step), dtype=adam.count.dtype)

        state = (adam._replace(count=count(), mu=mu, nu=nu), sched._replace(count=count()))
        self.params = _put(params, self.replicated)
        self.opt_state = _put(state, self.replicated)


def _put(tree, sharding):
    """Fresh copies of ``tree``'s arrays placed with ``sharding`` (never aliasing the caller's buffers)."""
    return jax.device_put(jax.tree_util.tree_map(lambda a: jnp.array(a, copy=True), tree), sharding)


def _model_tensors(tensors):
    """Model tensors of a checkpoint: names without the ``adam.`` prefix."""
    return {k: v for k, v in tensors.items() if not k.startswith("adam.")}


def _save_checkpoint(path, trainer, state):
    tensors = state_dict(trainer.model)
    mu, nu = trainer.moments()
    step = trainer.step_count
    steps = {}
    for name, value in state_dict(mu).items():
        tensors[f"adam.exp_avg.{name}"] = value
        steps[name] = float(step)
    for name, value in state_dict(nu).items():
        tensors[f"adam.exp_avg_sq.{name}"] = value
    rng = {"jax": "no random state after initialisation; epoch order from (seed, epoch)"}
    write_safetensors(tensors, path, training.checkpoint_metadata(
        state, weights_format=FORMAT, config=trainer.model.config, adam_steps=steps, rng=rng))


def _load_checkpoint(path, trainer):
    tensors, meta = read_weights(path)
    state = training.checkpoint_state(path, meta)
    trainer.load_state(tensors, state["step"])
    return state


def train(cfg, *, resume=False, stop_after=None, log=print):
    """Train according to ``cfg`` (keys of :data:`DEFAULTS` plus ``out``); returns the summary dict."""
    cfg = {**DEFAULTS, **cfg}
    out = os.fspath(cfg["out"])
    cfg, ckpt_path = training.open_run(cfg, resume=resume, defaults=DEFAULTS, runtime_keys=_RUNTIME_KEYS)

    devices = select_devices(cfg["device"], cfg["devices"])
    x_train, y_train = load_data(cfg, "train")
    x_test, y_test = load_data(cfg, "test")
    model = build_model(model_config(cfg, x_train.shape[-2:]), key=jax.random.PRNGKey(cfg["seed"]))
    n_params = count_parameters(model)
    batch = cfg["batch_size"] * len(devices)
    steps_per_epoch = max(1, math.ceil(len(x_train) / batch))
    total_steps = steps_per_epoch * cfg["epochs"]
    trainer = Trainer(model, lr=cfg["lr"], lr_final=cfg["lr_final"], total_steps=total_steps, devices=devices,
                      batch_size=cfg["batch_size"])

    early = runs.EarlyStopping(cfg["patience"])
    start_epoch, step, seconds_before, best_psnr = 0, 0, 0.0, -math.inf
    if resume:
        start_epoch, step, seconds_before, best_psnr = training.restore(
            _load_checkpoint(ckpt_path, trainer), early)
    metrics = runs.MetricsLog(out)
    if resume:
        metrics.truncate(start_epoch)

    platform = devices[0].platform
    log(training.run_message(cfg, n_params, x_train, x_test) + f"{len(devices)} {platform} device(s), "
        f"global batch {batch}")
    compile_seconds = trainer.compile(x_train, y_train)
    t_start = time.perf_counter()
    train_time = 0.0
    images_seen = 0
    stopped = "epochs"
    last_epoch_seconds = 0.0
    epoch = start_epoch
    final_psnr = None
    lr = runs.lr_at(step, total_steps, cfg["lr"], cfg["lr_final"])
    for epoch in range(start_epoch + 1, cfg["epochs"] + 1):
        elapsed = seconds_before + time.perf_counter() - t_start
        if training.out_of_time(cfg, epoch, start_epoch, elapsed, last_epoch_seconds):
            stopped, epoch = "time_budget", epoch - 1
            break
        t0 = time.perf_counter()
        perm = permutation(len(x_train), cfg["seed"], epoch)
        losses, psnrs = [], []
        for b in training.progress_bar(steps_per_epoch, epoch, cfg):
            idx = np.sort(perm[b * batch : (b + 1) * batch])
            xb, yb, wb = trainer.put_batch(x_train, y_train, idx, batch)
            lr = runs.lr_at(step, total_steps, cfg["lr"], cfg["lr_final"])   # the step's rate (for the log)
            loss, psnr_sum = trainer.step(xb, yb, wb)
            step += 1
            losses.append(loss * len(idx))        # device arrays: no host sync inside the epoch
            psnrs.append(psnr_sum)
            images_seen += len(idx)
        tr_loss = float(sum(float(v) for v in losses))
        tr_psnr = float(sum(float(v) for v in psnrs))
        train_time += time.perf_counter() - t0
        tr_n = len(perm)
        te_loss, te_psnr = trainer.evaluate(x_test, y_test)
        final_psnr = te_psnr
        improved = early.update(te_loss, epoch)
        if improved:
            best_psnr = te_psnr
        last_epoch_seconds = time.perf_counter() - t0
        seconds = seconds_before + time.perf_counter() - t_start
        training.finish_epoch(
            out, metrics, epoch=epoch, step=step, early=early, best_psnr=best_psnr, train_loss=tr_loss / tr_n,
            train_psnr=tr_psnr / tr_n, test_loss=te_loss, test_psnr=te_psnr, lr=lr, seconds=seconds,
            improved=improved, save_best=lambda path, meta: save_weights(trainer.model, path, extra_metadata=meta),
            save_checkpoint=lambda state: _save_checkpoint(ckpt_path, trainer, state), log=log)
        reason = training.stop_reason(early, epoch, stop_after)
        if reason:
            stopped = reason
            break
    seconds = seconds_before + time.perf_counter() - t_start
    if final_psnr is None:  # nothing trained in this call: report from the log
        final_psnr = training.last_test_psnr(metrics)
    summary = training.summary(cfg, early=early, best_psnr=best_psnr, final_psnr=final_psnr, epoch=epoch,
                               step=step, stopped=stopped, seconds=seconds, train_time=train_time,
                               images_seen=images_seen, n_params=n_params, compile_seconds=compile_seconds,
                               world_size=len(devices), device=f"{platform} x{len(devices)}", jax=jax.__version__)
    runs.write_summary(out, summary)
    return summary


def evaluate_run(run_dir, *, data_path=None, device="auto", batch_size=64):
    """Per-image test PSNRs (NumPy float64) of the run's best weights on the run's test set."""
    from .weights import load_weights

    x, y = training.load_test_set(run_dir, DEFAULTS, data_path)
    model = load_weights(os.path.join(run_dir, training.WEIGHTS_FILE))
    dev = select_devices(device, 1)[0]
    model = jax.device_put(model, dev)
    fn = eqx.filter_jit(lambda m, xb: m(xb))
    values = []
    for i in range(0, len(x), batch_size):
        xb = x[i : i + batch_size]
        if len(xb) < batch_size and len(x) > batch_size:   # keep one compiled shape
            xb = np.concatenate([xb, np.repeat(xb[:1], batch_size - len(xb), axis=0)])
        out = np.asarray(fn(model, jax.device_put(xb, dev)))[: len(x[i : i + batch_size])]
        values.append(ssdops.psnr(out[:, 0].astype(np.float64), y[i : i + batch_size, 0].astype(np.float64)))
    return np.concatenate(values)
