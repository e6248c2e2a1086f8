"""DiffNet / the linear network trained in JAX: :class:`JaxTrainer`, the JAX side of the one epoch loop
:func:`ssdops.diffnet.loop.fit` (the twin of ``diffnet_torch.trainer.TorchTrainer``), and :func:`train` /
:func:`evaluate_run`.

One ``jax.jit``-compiled step (forward, backward, Adam with PyTorch's defaults, the learning rate of
:func:`ssdops.diffnet.runs.lr_at` passed in as an argument), compiled ahead of the timed loop. Batches have a
fixed shape: the last, short batch of an epoch is padded and masked out of the loss, so the result equals
PyTorch's short last batch and nothing recompiles. Checkpoints hold the model, ``adam.exp_avg.<name>``,
``adam.exp_avg_sq.<name>`` and the step count (the only randomness after initialisation is the epoch
permutation, a function of ``seed`` and the epoch number).

Data parallel over several devices: a 1-D :class:`jax.sharding.Mesh` over ``devices`` (default: all of the
chosen platform's devices), the batch axis sharded, parameters and optimiser state replicated.
``batch_size`` is per device, as ``--batch-size`` is per process in ``diffnet-torch``'s DDP: the global
batch is ``batch_size * n_devices``. Test on a CPU with ``XLA_FLAGS=--xla_force_host_platform_device_count=2``.
"""
from __future__ import annotations

import json
import os
import time

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.sharding import Mesh, NamedSharding, PartitionSpec

import ssdops
from ssdops.diffnet import format as weight_files
from ssdops.diffnet import loop
from ssdops.diffnet.data import as_images

from .models import build_model, count_parameters, load_state_dict, load_weights, state_dict

__all__ = ["MODELS", "JaxTrainer", "evaluate_run", "select_devices", "train"]

MODELS = ("diffnet", "linear")


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


def _per_image(out, y):
    """Per-image (per-volume) MSE and capped PSNR of outputs ``out`` ``(N, 1, *grid)`` against ``y``."""
    out, y = as_images(out), as_images(y)
    mse = jnp.mean((out - y) ** 2, axis=(1, 2))
    psnr = jnp.minimum(ssdops.psnr(out, y), loop.PSNR_CAP)
    return mse, psnr


def _all_finite(tree):
    return jnp.all(jnp.stack([jnp.all(jnp.isfinite(leaf)) for leaf in jax.tree_util.tree_leaves(tree)]))


def _put(tree, sharding):
    """Fresh copies of ``tree``'s arrays placed with ``sharding`` (never aliasing the caller's buffers)."""
    return jax.device_put(jax.tree_util.tree_map(lambda a: jnp.array(a, copy=True), tree), sharding)


class JaxTrainer:
    """The :class:`ssdops.diffnet.loop.Trainer` of JAX: one process, ``devices`` in a mesh.

    ``JaxTrainer(config)`` takes the devices and the batch size of a
    :class:`~ssdops.diffnet.config.RunConfig`; ``JaxTrainer(devices=..., batch_size=...)`` sets them
    directly, and :meth:`set_model` then gives it a model without a run (benchmarks, tests).
    ``params`` and ``opt_state`` are the trainer's; :meth:`step` replaces them (their buffers are donated).
    """

    models = MODELS
    world_size, rank, is_main = 1, 0, True

    @classmethod
    def check(cls, config):
        try:
            select_devices(config.device, config.devices)
        except RuntimeError as err:
            raise ValueError(f"--device {config.device!r}: {err}") from None

    def __init__(self, config=None, *, devices=None, batch_size=None):
        if devices is None:
            devices = select_devices(config.device, config.devices) if config is not None else jax.devices()[:1]
        self.devices = list(devices)
        self.n_devices = len(self.devices)
        self.mesh = Mesh(np.array(self.devices), ("data",))
        self.replicated = NamedSharding(self.mesh, PartitionSpec())
        self.sharded = NamedSharding(self.mesh, PartitionSpec("data"))
        per_device = batch_size if batch_size is not None else config.batch_size
        self.batch_images = int(per_device) * self.n_devices      # the global batch, taken by one process
        self._compiled_step = None

    def start(self, config, model_config, total_steps):
        model = build_model(model_config, key=jax.random.PRNGKey(config.seed))
        self.checkpoint_path = os.path.join(os.fspath(config.out or ""), loop.CHECKPOINT_FILE)   # named by restore
        self.set_model(model)
        return count_parameters(model)

    def set_model(self, model):
        """Train ``model`` from here: Adam state initialised, step and evaluation compiled lazily."""
        optimizer = optax.scale_by_adam(b1=0.9, b2=0.999, eps=1e-8)     # torch.optim.Adam's defaults
        params, self.static = eqx.partition(model, eqx.is_inexact_array)
        self.params = _put(params, self.replicated)      # own copies: the step donates its buffers
        self.opt_state = _put(optimizer.init(params), self.replicated)
        static = self.static

        def loss_fn(p, x, y, w):
            mse, psnr = _per_image(eqx.combine(p, static)(x), y)
            return jnp.sum(mse * w) / jnp.sum(w), psnr

        def step(p, s, x, y, w, lr):
            (loss, psnr), grads = jax.value_and_grad(loss_fn, has_aux=True)(p, x, y, w)
            updates, s = optimizer.update(grads, s, p)
            p = optax.apply_updates(p, jax.tree_util.tree_map(lambda u: -lr * u, updates))
            finite = jnp.isfinite(loss) & _all_finite(grads) & _all_finite(p)
            return p, s, loss, jnp.sum(jnp.where(w > 0, psnr, 0.0)), finite

        def evaluate(p, x, y, w):
            mse, psnr = _per_image(eqx.combine(p, static)(x), y)
            return jnp.sum(mse * w), jnp.sum(jnp.where(w > 0, psnr, 0.0))

        r, d = self.replicated, self.sharded
        self._step = jax.jit(step, in_shardings=(r, r, d, d, d, r), out_shardings=r, donate_argnums=(0, 1))
        self._eval = jax.jit(evaluate, in_shardings=(r, d, d, d), out_shardings=r)
        self._compiled_step = None

    # -- data -------------------------------------------------------------------------------------
    def put_batch(self, x, y, size):
        """``x, y`` padded to ``size`` images (repeating the first) and a 0/1 weight mask, sharded over the
        mesh's batch axis."""
        n = len(x)
        if n < size:
            x = np.concatenate([x, np.repeat(x[:1], size - n, axis=0)])
            y = np.concatenate([y, np.repeat(y[:1], size - n, axis=0)])
        w = np.zeros(size, np.float32)
        w[:n] = 1.0
        return (jax.device_put(x, self.sharded), jax.device_put(y, self.sharded), jax.device_put(w, self.sharded))

    # -- the loop's protocol ------------------------------------------------------------------------
    def warm_up(self, x, y):
        """Compile the step ahead of time (so that timings exclude compilation); returns the seconds."""
        t0 = time.perf_counter()
        xb, yb, wb = self.put_batch(x[: self.batch_images], y[: self.batch_images], self.batch_images)
        lr = jnp.asarray(0.0, jnp.float32)
        self._compiled_step = self._step.lower(self.params, self.opt_state, xb, yb, wb, lr).compile()
        return time.perf_counter() - t0

    def step(self, x, y, lr):
        """One compiled step on ``x, y`` (NumPy, at most the global batch): ``(mean loss, PSNR sum, finite)``
        as device scalars (nothing waits for the device until the caller reads them)."""
        xb, yb, wb = self.put_batch(x, y, self.batch_images)
        fn = self._compiled_step or self._step
        self.params, self.opt_state, loss, psnr_sum, finite = fn(self.params, self.opt_state, xb, yb, wb,
                                                                 jnp.asarray(lr, jnp.float32))
        return loss, psnr_sum, finite

    def all_reduce(self, values):
        return list(values)

    def evaluate(self, x, y, batch=None):
        """``(mean MSE, mean PSNR)`` per image over ``x, y`` (PSNR capped at :data:`loop.PSNR_CAP`)."""
        batch = batch or self.batch_images * 4
        mse_sum = psnr_sum = 0.0
        for i in range(0, len(x), batch):
            xb, yb, wb = self.put_batch(x[i : i + batch], y[i : i + batch], batch)
            m, p = self._eval(self.params, xb, yb, wb)
            mse_sum += float(m)
            psnr_sum += float(p)
        n = max(len(x), 1)
        return mse_sum / n, psnr_sum / n

    @property
    def model(self):
        return eqx.combine(self.params, self.static)

    @property
    def step_count(self):
        return int(self.opt_state.count)

    def weights(self):
        model = self.model
        return model.config, state_dict(model)

    def checkpoint(self):
        tensors = state_dict(self.model)
        steps = {}
        for name, value in state_dict(eqx.combine(self.opt_state.mu, self.static)).items():
            tensors[f"adam.exp_avg.{name}"] = value
            steps[name] = float(self.step_count)
        for name, value in state_dict(eqx.combine(self.opt_state.nu, self.static)).items():
            tensors[f"adam.exp_avg_sq.{name}"] = value
        return tensors, steps, {"jax": "no random state after initialisation; epoch order from (seed, epoch)"}

    def restore(self, tensors, metadata):
        """Parameters and Adam moments from checkpoint tensors; the step count from ``adam_steps``."""
        weight_files.check_checkpoint_model(self.checkpoint_path, metadata, self.model.config)
        template = self.model

        def params(prefix=""):
            names = {k: v for k, v in tensors.items() if k.startswith(prefix) and (prefix or not k.startswith("adam."))}
            return eqx.partition(load_state_dict(template, names, prefix=prefix), eqx.is_inexact_array)[0]

        steps = json.loads(metadata["adam_steps"])
        count = int(max(steps.values())) if steps else 0
        state = self.opt_state._replace(count=jnp.asarray(count, dtype=self.opt_state.count.dtype),
                                        mu=params("adam.exp_avg."), nu=params("adam.exp_avg_sq."))
        self.params = _put(params(), self.replicated)
        self.opt_state = _put(state, self.replicated)

    def describe(self):
        return f"{self.n_devices} {self.devices[0].platform} device(s), global batch {self.batch_images}"

    def summary_extra(self):
        return {"world_size": self.n_devices, "device": f"{self.devices[0].platform} x{self.n_devices}",
                "jax": jax.__version__}

    def finish(self, ok):
        pass


def train(settings, *, resume=False, overwrite=False, stop_after=None, log=print):
    """Train as the dict ``settings`` says (keys of :class:`~ssdops.diffnet.config.RunConfig`, with ``out``):
    :func:`ssdops.diffnet.loop.train` with :class:`JaxTrainer`. Returns the summary dict."""
    return loop.train(settings, JaxTrainer, resume=resume, overwrite=overwrite, stop_after=stop_after, log=log)


def evaluate_run(run_dir, *, data_path=None, device="auto", batch_size=64):
    """Per-image test PSNRs (NumPy float64) of the run's best weights on the run's test set."""
    from ssdops.diffnet.data import load_run_test_set
    from ssdops.diffnet.runs import WEIGHTS_FILE

    x, y = load_run_test_set(run_dir, data_path)
    model = load_weights(os.path.join(run_dir, WEIGHTS_FILE))
    dev = select_devices(device, 1)[0]
    model = jax.device_put(model, dev)
    fn = eqx.filter_jit(lambda m, xb: m(xb))
    values = []
    for i in range(0, len(x), batch_size):
        xb = x[i : i + batch_size]
        if len(xb) < batch_size and len(x) > batch_size:   # keep one compiled shape
            xb = np.concatenate([xb, np.repeat(xb[:1], batch_size - len(xb), axis=0)])
        out = np.asarray(fn(model, jax.device_put(xb, dev)))[: len(x[i : i + batch_size])]
        target = y[i : i + batch_size]
        values.append(ssdops.psnr(as_images(out).astype(np.float64), as_images(target).astype(np.float64)))
    return np.concatenate(values)
