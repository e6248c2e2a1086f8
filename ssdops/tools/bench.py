"""Timings of the ssdops kernels per framework and device: the library behind ``ssdops bench``.

:func:`run` times four operations on every installed framework and device, on the default path (the
fast paths in ``ssdops.backends`` where one is registered) and, when a fast path exists, on the generic
array-API path (``ssdops.backends.use_generic()``), and returns one record (a dict) per configuration:

``ssd_apply``          ``SSD(d) @ u`` with random, variable 5-point diagonals ``d``;
``filter_step``        ``ssdops.filter_step(u, zeta, 0.1)``, DiffNet's fused update;
``perona_malik_step``  ``ssdops.perona_malik_step(u, dt=0.1, lam=0.2, bc="neumann")`` (explicit);
``implicit_step``      ``ssdops.implicit_step(u, op, 1.0, method="cg")`` with ``op`` the
                       ``divergence_form`` of a random gamma in [0.5, 1.5] (Neumann).

Each record carries the median time (ms) over ``repeats`` samples after a warm-up (devices
synchronised: ``torch.cuda.synchronize``, ``jax.block_until_ready``; JAX functions are jitted), the
effective bandwidth of the bytes that must move, the ratio to a memory-copy floor measured in the same
run on the same framework and device, the speed-up over a scipy.sparse CSR baseline on the host, and the
speed-up over the generic path of the same framework. See ``benchmarks/README.md`` for the definitions.
"""
from __future__ import annotations

import argparse
import datetime
import importlib
import json
import os
import platform
import statistics
import subprocess
import sys
import time
import warnings
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from .. import backends as registry

__all__ = ["OPS", "OPS_3D", "PEERS", "BACKENDS", "run", "format_table", "machine_info", "kernels_in_use",
           "write_json", "main", "targets"]

OPS = ("ssd_apply", "filter_step", "perona_malik_step", "implicit_step", "ssd_apply_3d", "perona_malik_step_3d")
#: Operations on volumes ``n^3`` (SEVEN_POINT); the others act on images ``n^2``.
OPS_3D = ("ssd_apply_3d", "perona_malik_step_3d")
#: The libraries ``ssdops bench`` times: those marked ``benchmarked`` in the one library table.
BACKENDS = tuple(name for name, library in registry.LIBRARIES.items() if library.benchmarked)
DEFAULT_SIZES = (256, 512, 1024, 2048, 4096)
DEFAULT_BATCH = (1, 16)
DEFAULT_IMPLICIT_SIZES = (1024,)
DEFAULT_SIZES_3D = (256,)
DEFAULT_REPEATS = 10
# 4096^2 x 16 float32 x 7 arrays (5 diagonals, input, output) is 7.5 GB: skipped by default (24 GB machine).
DEFAULT_MAX_BYTES = 4 * 2**30
QUICK = dict(sizes=(64,), batch=(1, 4), implicit_sizes=(32,), sizes_3d=(12,), repeats=3)

FILTER_DT = 0.1
PM_STEP_ARGS = dict(dt=0.1, lam=0.2, bc="neumann")
IMPLICIT_DT = 1.0

# Arrays (of one image batch each) that an operation must read or write at least once: see the README.
_TRAFFIC_ARRAYS = {"ssd_apply": 7, "filter_step": 7, "perona_malik_step": 2, "implicit_step": 7,
                   "ssd_apply_3d": 9, "perona_malik_step_3d": 2}
# Arrays the generic path materialises at least (diagonals, input, output): used for --max-bytes.
_WORKING_SET_ARRAYS = {"ssd_apply_3d": 9}
_DEFAULT_WORKING_SET_ARRAYS = 7
# Kernels of backends/ that each operation may use (directly, or through SSD @ u).
_KERNELS = {
    "ssd_apply": ("ssd_apply",),
    "filter_step": ("filter_step", "ssd_apply"),
    "perona_malik_step": ("perona_malik_step", "ssd_apply"),
    "implicit_step": ("implicit_solve",),
    "ssd_apply_3d": ("ssd_apply",),
    "perona_malik_step_3d": ("perona_malik_step", "ssd_apply"),
}
# Per configuration, stop sampling after about this many seconds (at least 3 samples are taken).
_TIME_BUDGET_S = 15.0


# --- frameworks and devices ----------------------------------------------------------------------
@dataclass
class Target:
    """One framework on one device: how to put a NumPy array there, wait for results, and jit."""

    backend: str
    device: str
    asarray: Callable
    sync: Callable = lambda result: None
    jit: Callable = lambda fn: fn
    stream: Callable | None = None  # stream(x) -> a call that reads x and writes as many bytes (the copy floor)
    device_name: str = ""
    notes: list = field(default_factory=list)

    @property
    def xp(self):
        from array_api_compat import array_namespace

        return array_namespace(self.asarray(np.zeros(1, dtype=np.float32)))


def _cuda_devices_torch(torch):
    try:
        return torch.cuda.device_count() if torch.cuda.is_available() else 0
    except Exception:  # a broken CUDA install counts as none
        return 0


def targets(names=BACKENDS, *, jax_x64=False):
    """The installed frameworks among ``names`` on each of their devices (CPU first, then GPUs).

    ``names`` may hold "numpy", "torch", "jax", "cupy" and (for comparisons) "array_api_strict" and
    "jax.jit", "jax-eager": "jax" and "jax.jit" targets jit every function (labelled "jax" and
    "jax.jit"), "jax-eager" runs JAX without jit (labelled "jax").
    A framework that is not importable is left out silently.
    """
    found = []
    for name in names:
        if name == "numpy":
            found.append(Target("numpy", "cpu", np.asarray, stream=_copy_into(np.empty_like, np.copyto),
                                device_name=_cpu_model()))
        elif name == "torch":
            try:
                import torch
            except ImportError:
                continue
            devices = ["cpu"] + [f"cuda:{i}" for i in range(_cuda_devices_torch(torch))]
            for dev in devices:
                if dev == "cpu":
                    sync, label = (lambda result: None), _cpu_model()
                else:
                    sync = (lambda d: (lambda result: torch.cuda.synchronize(d)))(dev)
                    label = torch.cuda.get_device_name(dev)
                found.append(Target("torch", dev,
                                    (lambda d: lambda a: torch.from_numpy(np.ascontiguousarray(a)).to(d))(dev),
                                    sync=sync, stream=_copy_into(torch.empty_like, torch.Tensor.copy_),
                                    device_name=label))
        elif name in ("jax", "jax.jit", "jax-eager"):
            try:
                import jax
            except ImportError:
                continue
            if jax_x64:
                jax.config.update("jax_enable_x64", True)
            devices = list(jax.devices("cpu")[:1])
            for platform_name in ("gpu", "tpu"):
                try:
                    devices += jax.devices(platform_name)
                except RuntimeError:
                    pass
            for dev in devices:
                jit = (lambda fn: fn) if name == "jax-eager" else jax.jit
                label = "jax.jit" if name == "jax.jit" else "jax"
                found.append(Target(
                    label, f"{dev.platform}:{dev.id}" if dev.platform != "cpu" else "cpu",
                    (lambda d: lambda a: jax.device_put(np.asarray(a), d))(dev),
                    sync=jax.block_until_ready, jit=jit, stream=_jax_donated_negate,
                    device_name=_cpu_model() if dev.platform == "cpu" else getattr(dev, "device_kind", str(dev)),
                ))
        elif name == "cupy":
            try:
                import cupy
                count = cupy.cuda.runtime.getDeviceCount()
            except Exception:  # not installed, or no GPU / driver
                continue
            for i in range(count):
                def put(a, i=i):
                    with cupy.cuda.Device(i):
                        return cupy.asarray(a)

                def sync(result, i=i):
                    cupy.cuda.Device(i).synchronize()

                props = cupy.cuda.runtime.getDeviceProperties(i)
                name_i = props.get("name", b"")
                found.append(Target("cupy", f"cuda:{i}", put, sync=sync, stream=_copy_into(cupy.empty_like,
                                                                                           cupy.copyto),
                                    device_name=name_i.decode() if isinstance(name_i, bytes) else str(name_i)))
        elif name in registry.LIBRARIES:
            # Any other library of the table: its namespace's asarray on the default device.
            try:
                module = importlib.import_module(registry.LIBRARIES[name].framework)
            except ImportError:
                continue
            found.append(Target(name, "cpu", module.asarray,
                                stream=lambda x, m=module: (lambda: m.asarray(x, copy=True)),
                                device_name=_cpu_model()))
        else:
            known = tuple(registry.LIBRARIES) + ("jax.jit", "jax-eager")
            raise ValueError(f"unknown framework {name!r}: use some of {known}")
    return found


def _copy_into(empty_like, copyto):
    """A memory copy into a destination allocated once (STREAM's "copy"): a fresh output per call would
    add first-touch page faults to the floor, which is meant to measure bandwidth."""

    def stream(x):
        dst = empty_like(x)

        def call():
            copyto(dst, x)
            return dst

        return call

    return stream


def _jax_donated_negate(x):
    """``x <- -x`` jitted with the input buffer donated: XLA writes in place (no allocation per call).
    JAX has no copy into an existing array; this in-place pass is its nearest floor."""
    import jax

    negate = jax.jit(lambda a: -a, donate_argnums=0)
    state = [x + 0]  # a buffer of our own to donate

    def call():
        state[0] = negate(state[0])
        return state[0]

    return call


# --- machine information -------------------------------------------------------------------------
def _cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _version(module):
    try:
        from importlib.metadata import version

        return version(module)
    except Exception:
        return None


def machine_info(found=None):
    """Platform, CPU model, core counts, library versions, device names and the date (UTC, ISO 8601)."""
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count()
    info = {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpu_model": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "cpu_count_usable": usable,
        "versions": {
            m: _version(m)
            for m in ("ssdops", "numpy", "scipy", "array-api-compat", "array-api-strict", "torch", "jax",
                      "jaxlib", "cupy")
            if _version(m) is not None
        },
        "env": {k: os.environ[k] for k in ("SSDOPS_GENERIC", "OMP_NUM_THREADS", "MKL_NUM_THREADS",
                                            "XLA_FLAGS", "CUDA_VISIBLE_DEVICES") if k in os.environ},
    }
    if "torch" in sys.modules:
        info["torch_threads"] = sys.modules["torch"].get_num_threads()
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5,
                                cwd=os.path.dirname(os.path.abspath(__file__)))
        if commit.returncode == 0:
            info["git_commit"] = commit.stdout.strip()
    except Exception:
        pass
    if found is not None:
        info["devices"] = [{"backend": t.backend, "device": t.device, "name": t.device_name} for t in found]
    info["kernels"] = kernels_in_use()
    return info


def kernels_in_use():
    """``{"operation[library]": what runs it}`` for every kernel loaded so far, from its record
    (:func:`ssdops.backends.declarations`): ``"compiled C++"`` where a kernel runs the native CPU library
    (``native``), ``"compiled C++ (<when>)"`` where a kernel hands NumPy's native kernel its arrays' memory in
    the cases its ``numpy_on_host`` names (PyTorch's CPU tensors, dask's chunks), else ``"array library"``
    (the library's own calls, or NumPy's blocked pure-Python kernels)."""
    kernels = registry.declarations()

    def runs(name, kernel):
        if kernel.native:
            return "compiled C++"
        numpy_kernel = kernels.get((name, "numpy"))
        if kernel.numpy_on_host and numpy_kernel is not None and numpy_kernel.native:
            return f"compiled C++ ({kernel.numpy_on_host})"
        return "array library"

    return {f"{name}[{library}]": runs(name, kernel) for (name, library), kernel in sorted(kernels.items())}


# --- timing ----------------------------------------------------------------------------------------
def time_call(call, sync, repeats, *, min_sample_s=0.002, max_inner=100, budget_s=_TIME_BUDGET_S,
              warmup_s=0.2):
    """Median seconds per call of ``call()`` over ``repeats`` samples, after a warm-up of at least two calls
    and ``warmup_s`` seconds (at most ``max_inner`` calls).

    Each sample runs ``call`` enough times to last about ``min_sample_s`` (fast calls) and ends with
    ``sync(result)``; sampling stops early (after at least 3 samples) once ``budget_s`` is spent.
    Returns ``(seconds, samples_taken)``.
    """
    # Warm-up: compilation, caches, the allocator (glibc serves large outputs from fresh, page-faulting
    # memory until its mmap threshold has adapted), the CPU's clock.
    sync(call())
    began = time.perf_counter()
    for _ in range(max_inner):
        start = time.perf_counter()
        sync(call())
        estimate = max(time.perf_counter() - start, 1e-9)
        if start - began >= warmup_s:
            break
    inner = max(1, min(max_inner, int(min_sample_s / estimate)))
    samples = []
    spent = 0.0
    for _ in range(max(1, repeats)):
        start = time.perf_counter()
        for _ in range(inner):
            result = call()
        sync(result)
        elapsed = time.perf_counter() - start
        samples.append(elapsed / inner)
        spent += elapsed
        if spent > budget_s and len(samples) >= min(3, repeats):
            break
    return statistics.median(samples), len(samples)


# --- the operations --------------------------------------------------------------------------------
def _inputs(op, n, batch, dtype, seed=0):
    """NumPy inputs of ``op`` (batch 1 gives unbatched arrays)."""
    import ssdops

    rng = np.random.default_rng(seed)
    lead = () if batch == 1 else (batch,)
    if op in OPS_3D:
        u = rng.random(lead + (n, n, n)).astype(dtype)
        if op == "ssd_apply_3d":
            return (rng.standard_normal(lead + (7, n, n, n)).astype(dtype), u)
        return (u,)
    u = rng.random(lead + (n, n)).astype(dtype)
    if op in ("ssd_apply", "filter_step"):
        return (rng.standard_normal(lead + (5, n, n)).astype(dtype), u)
    if op == "perona_malik_step":
        return (u,)
    if op == "implicit_step":
        gamma = (0.5 + rng.random(lead + (n, n))).astype(dtype)
        return (ssdops.divergence_form(gamma, bc="neumann").diagonals, u)
    raise ValueError(f"unknown op {op!r}: use some of {OPS}")


def _function(op):
    """A fresh function of the inputs (fresh, so that jax.jit traces it again on each path)."""
    import ssdops

    if op == "ssd_apply":
        return lambda d, u: ssdops.SSD(d) @ u
    if op == "filter_step":
        return lambda zeta, u: ssdops.filter_step(u, zeta, FILTER_DT)
    if op == "perona_malik_step":
        return lambda u: ssdops.perona_malik_step(u, **PM_STEP_ARGS)
    if op == "implicit_step":
        return lambda d, u: ssdops.implicit_step(u, ssdops.SSD(d, symmetric=True), IMPLICIT_DT, method="cg")
    if op == "ssd_apply_3d":
        return lambda d, u: ssdops.SSD(d, ssdops.SEVEN_POINT) @ u
    if op == "perona_malik_step_3d":
        return lambda u: ssdops.perona_malik_step(u, ndim=3, **PM_STEP_ARGS)
    raise ValueError(f"unknown op {op!r}: use some of {OPS}")


def _medpy_call(u):
    from medpy.filter.smoothing import anisotropic_diffusion

    return lambda: anisotropic_diffusion(u, niter=1, kappa=0.2, gamma=0.1, option=2)


def _simpleitk_call(u):
    import SimpleITK as sitk

    image = sitk.GetImageFromArray(u)
    return lambda: sitk.GradientAnisotropicDiffusion(image, timeStep=0.0625, conductanceParameter=0.2,
                                                     numberOfIterations=1)


def _opencv_call(u):
    import cv2

    diffuse = cv2.ximgproc.anisotropicDiffusion    # AttributeError: an OpenCV without the contrib modules
    rgb = np.repeat((np.clip(u, 0, 1) * 255).astype(np.uint8)[..., None], 3, axis=-1)
    return lambda: diffuse(rgb, PM_STEP_ARGS["dt"], PM_STEP_ARGS["lam"] * 255, 1)


#: The peers timed next to each operation, ``{op: {peer: factory}}``: ``factory(u)`` returns a call making one
#: anisotropic diffusion iteration of the image or volume ``u`` on the host (ImportError or AttributeError:
#: the peer is not installed); each gives a record the field ``<peer>_ms``. Volumes:
#: ``medpy.filter.smoothing.anisotropic_diffusion`` and SimpleITK's ``GradientAnisotropicDiffusion`` (float32
#: as ours). Images: OpenCV's ``ximgproc.anisotropicDiffusion``, which takes 8-bit 3-channel images only:
#: ``u`` scaled to [0, 255] and repeated to three channels (3 bytes a pixel where ours reads 4; OpenCV's own
#: threads).
PEERS = {"perona_malik_step": {"opencv": _opencv_call},
         "perona_malik_step_3d": {"medpy": _medpy_call, "simpleitk": _simpleitk_call}}


def _peer_calls(op, u):
    """``{peer: call}`` of the peers of ``op`` (:data:`PEERS`) that are installed."""
    found = {}
    for peer, factory in PEERS.get(op, {}).items():
        try:
            found[peer] = factory(u)
        except (ImportError, AttributeError):
            pass
    return found


def _peer_seconds(op, arrays, batch, repeats):
    """``{peer: seconds}`` of ``_peer_calls`` for the batch (image 0's time times the batch)."""
    calls = _peer_calls(op, arrays[0] if batch == 1 else arrays[0][0])
    return {name: time_call(call, lambda r: None, repeats)[0] * batch for name, call in calls.items()}


def _scipy_seconds(op, arrays, batch, repeats):
    """Seconds of the scipy.sparse CSR baseline for one image on the host (image 0's matrix), or None
    where there is none (Perona-Malik: the matrix changes with u)."""
    import scipy.sparse as sp
    import scipy.sparse.linalg as spl

    import ssdops

    first = [a if batch == 1 else a[0] for a in arrays]
    if op in ("perona_malik_step", "perona_malik_step_3d"):
        return None
    d, u = first
    x = np.ascontiguousarray(u.ravel())
    if op in ("ssd_apply", "ssd_apply_3d"):
        A = ssdops.to_scipy(ssdops.SSD(d, ssdops.SEVEN_POINT if op == "ssd_apply_3d" else ssdops.FIVE_POINT)).tocsr()
        call = lambda: A @ x
    elif op == "filter_step":
        A = (sp.identity(x.size, dtype=x.dtype, format="csr") + ssdops.to_scipy(ssdops.ssd_from_filters(d,
                                                                                                        FILTER_DT))).tocsr()
        call = lambda: A @ x
    else:
        A = (sp.identity(x.size, dtype=x.dtype, format="csr") - IMPLICIT_DT * ssdops.to_scipy(ssdops.SSD(d))).tocsr()
        tol = 1e-6 if x.dtype == np.float32 else 1e-12
        call = lambda: spl.cg(A, x, rtol=tol, atol=0.0, maxiter=20_000)[0]
    seconds, _ = time_call(call, lambda r: None, max(1, min(repeats, 5)))
    return seconds


def _registered_kernels(op, xp):
    """(kernels of ``ssdops.backends`` that ``op`` may use on ``xp``, whether ``xp`` has any kernel at all)."""
    with registry.use_generic(False):
        mine = [name for name in _KERNELS[op] if registry.lookup(name, xp) is not None]
    library = registry.library_of(xp)
    return mine, library is not None and bool(registry.registered(library))


def _floor_seconds(target, nbytes, dtype, repeats, cache):
    """Time of the framework's memory-copy floor over ``nbytes / 2`` bytes (reading and writing ``nbytes`` in
    all) on the device: a copy into a preallocated array, for JAX a donated in-place pass; cached."""
    key = (target.backend, target.device, nbytes, dtype)
    if key not in cache:
        count = max(1, nbytes // (2 * np.dtype(dtype).itemsize))
        x = target.asarray(np.ones(count, dtype=dtype))
        cache[key] = time_call(target.stream(x), target.sync, max(repeats, 5))[0]
        del x
    return cache[key]


def _format_bytes(n):
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= scale:
            return f"{n / scale:.3g} {unit}"
    return f"{n} B"


def run(*, ops=OPS, backends=("numpy", "torch", "jax", "cupy"), sizes=DEFAULT_SIZES, batch=DEFAULT_BATCH,
        dtype="float32", repeats=DEFAULT_REPEATS, max_bytes=DEFAULT_MAX_BYTES,
        implicit_sizes=DEFAULT_IMPLICIT_SIZES, sizes_3d=DEFAULT_SIZES_3D, scipy_baseline=True,
        generic_baseline=True, peer_baseline=True, quick=False, progress=None):
    """Time ``ops`` on every installed framework in ``backends`` and its devices; returns a list of records.

    One record (a dict) per (op, backend, device, size, batch): ``ms`` (median, default path), ``gbps``
    (effective bandwidth of ``bytes``), ``floor_ms`` and ``floor_ratio`` (``ms / floor_ms``: 1.0 is a
    kernel at memory-copy speed), ``scipy_ms`` / ``speedup_scipy``, ``generic_ms`` / ``speedup_generic``
    (timed under ``ssdops.backends.use_generic()`` wherever the framework has a fast path, ``generic_timed``;
    otherwise the default path is the generic one, ratio 1.0; ``kernels`` lists the fast paths the
    operation may use), ``skipped`` (a reason, or None) and ``error`` (a message, or None). ``implicit_step`` runs at
    ``implicit_sizes`` instead of ``sizes``; the 3-D operations (:data:`OPS_3D`) on volumes of ``sizes_3d``
    cubed. The Perona-Malik steps are timed next to their peers (:data:`PEERS`: ``opencv_ms``; ``medpy_ms``,
    ``simpleitk_ms``; ``speedup_peers``: the fastest peer's time / ours) when ``peer_baseline``.
    ``quick=True`` replaces sizes, batch, implicit sizes and repeats by a tiny run. ``progress`` is called with
    each finished record.
    """
    if quick:
        sizes, batch, implicit_sizes = QUICK["sizes"], QUICK["batch"], QUICK["implicit_sizes"]
        sizes_3d = QUICK["sizes_3d"]
        repeats = min(repeats, QUICK["repeats"])
    dtype = np.dtype(dtype).name
    if dtype not in ("float32", "float64"):
        raise ValueError(f"dtype must be float32 or float64, got {dtype}")
    for op in ops:
        if op not in OPS:
            raise ValueError(f"unknown op {op!r}: use some of {OPS}")
    found = targets(backends, jax_x64=dtype == "float64")
    itemsize = np.dtype(dtype).itemsize
    initial_generic = registry.is_generic()
    records, floor_cache, scipy_cache, peer_cache = [], {}, {}, {}
    for op in ops:
        op_sizes = implicit_sizes if op == "implicit_step" else sizes_3d if op in OPS_3D else sizes
        for n in op_sizes:
            for b in batch:
                elements = b * n ** (3 if op in OPS_3D else 2)
                working_set = _WORKING_SET_ARRAYS.get(op, _DEFAULT_WORKING_SET_ARRAYS) * elements * itemsize
                nbytes = _TRAFFIC_ARRAYS[op] * elements * itemsize
                arrays = None
                for target in found:
                    record = dict(op=op, backend=target.backend, device=target.device, size=n, batch=b,
                                  dtype=dtype, bytes=nbytes, working_set_bytes=working_set, ms=None,
                                  gbps=None, floor_ms=None, floor_ratio=None, scipy_ms=None,
                                  speedup_scipy=None, generic_ms=None, speedup_generic=None, generic_timed=False,
                                  kernels=[], speedup_peers=None, samples=0, skipped=None, error=None,
                                  **{f"{peer}_ms": None for peer in PEERS.get(op, {})})
                    if max_bytes is not None and working_set > max_bytes:
                        record["skipped"] = (f"working set {_format_bytes(working_set)} > --max-bytes "
                                             f"{_format_bytes(max_bytes)}")
                        records.append(record)
                        if progress:
                            progress(record)
                        continue
                    try:
                        if arrays is None:
                            arrays = _inputs(op, n, b, dtype)
                        _measure(record, target, op, arrays, repeats, floor_cache, scipy_cache,
                                 scipy_baseline, generic_baseline, initial_generic)
                        if peer_baseline and op in PEERS:
                            key = (op, n, b, dtype)
                            if key not in peer_cache:
                                peer_cache[key] = _peer_seconds(op, arrays, b, repeats)
                            _record_peers(record, peer_cache[key])
                    except Exception as err:  # record it, go on with the others
                        record["error"] = f"{type(err).__name__}: {err}"
                    records.append(record)
                    if progress:
                        progress(record)
    return records


def _record_peers(record, peers):
    for name, seconds in peers.items():
        record[f"{name}_ms"] = seconds * 1e3
    if peers:
        record["speedup_peers"] = min(peers.values()) * 1e3 / record["ms"]


def _measure(record, target, op, arrays, repeats, floor_cache, scipy_cache, scipy_baseline, generic_baseline,
             initial_generic):
    dtype = record["dtype"]
    device_arrays = [target.asarray(a) for a in arrays]
    xp = target.xp
    kernels, any_kernel = ([], False) if initial_generic else _registered_kernels(op, xp)
    record["kernels"] = kernels

    def timed(generic):
        with registry.use_generic(generic), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fn = target.jit(_function(op))
            return time_call(lambda: fn(*device_arrays), target.sync, repeats)

    seconds, samples = timed(initial_generic)
    record["ms"] = seconds * 1e3
    record["samples"] = samples
    record["gbps"] = record["bytes"] / seconds / 1e9
    if generic_baseline:
        # Timed again wherever the framework has any fast path (an operation may reach one indirectly).
        generic_seconds = timed(True)[0] if any_kernel else seconds
        record["generic_timed"] = any_kernel
        record["generic_ms"] = generic_seconds * 1e3
        record["speedup_generic"] = generic_seconds / seconds
    floor = _floor_seconds(target, record["bytes"], dtype, repeats, floor_cache)
    record["floor_ms"] = floor * 1e3
    record["floor_ratio"] = seconds / floor
    if scipy_baseline:
        key = (op, record["size"], dtype)  # one image's matrix: the same cost for every batch size
        if key not in scipy_cache:
            scipy_cache[key] = _scipy_seconds(op, arrays, record["batch"], repeats)
        if scipy_cache[key] is not None:
            scipy_seconds = scipy_cache[key] * record["batch"]
            record["scipy_ms"] = scipy_seconds * 1e3
            record["speedup_scipy"] = scipy_seconds / seconds


# --- output ----------------------------------------------------------------------------------------
COLUMNS = (
    ("op", "op", "{}"), ("backend", "backend", "{}"), ("device", "device", "{}"), ("size", "size", "{}"),
    ("batch", "batch", "{}"), ("ms", "ms", "{:.4g}"), ("gbps", "GB/s", "{:.3g}"),
    ("floor_ratio", "x copy", "{:.3g}"), ("speedup_scipy", "vs scipy", "{:.3g}"),
    ("speedup_generic", "vs generic", "{:.3g}"), ("speedup_peers", "vs peers", "{:.3g}"),
    ("kernels", "fast path", "{}"),
)


def _cell(record, key, fmt):
    value = record.get(key)
    if key == "kernels":
        return ",".join(value) if value else "-"
    if value is None:
        return "-"
    return fmt.format(value)


def format_table(records):
    """The records as a fixed-width text table (one line per record; skipped and failed ones say why)."""
    header = [title for _, title, _ in COLUMNS]
    rows, notes = [], []
    for r in records:
        if r.get("skipped") or r.get("error"):
            row = [_cell(r, k, f) for k, _, f in COLUMNS[:5]] + ["-"] * (len(COLUMNS) - 5)
            row[-1] = "skipped" if r.get("skipped") else "ERROR"
            notes.append(f"{r['op']} {r['backend']} {r['device']} {r['size']}^{3 if r['op'] in OPS_3D else 2} "
                         f"x {r['batch']}: "
                         f"{r.get('skipped') or r.get('error')}")
        else:
            row = [_cell(r, k, f) for k, _, f in COLUMNS]
        rows.append(row)
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows)]
    numeric = {"size", "batch", "ms", "GB/s", "x copy", "vs scipy", "vs generic", "vs peers"}
    lines = []
    for row in [header] + rows:
        lines.append("  ".join(str(c).rjust(w) if header[i] in numeric else str(c).ljust(w)
                               for i, (c, w) in enumerate(zip(row, widths))).rstrip())
    lines.insert(1, "  ".join("-" * w for w in widths))
    if records:
        lines.append("")
        lines.append(f"dtype {records[0]['dtype']}; ms: median per call; GB/s: bytes that must move / time; "
                     "x copy: time / (copy of the same bytes); vs scipy: scipy.sparse CSR (host, batch x one "
                     "image) / time; vs generic: generic array-API path / time; vs peers: the fastest installed peer's "
                     "iteration (OpenCV ximgproc on images, medpy / SimpleITK on volumes) / time")
    for note in notes:
        lines.append("note: " + note)
    return "\n".join(lines)


def write_json(path, records, config=None, found=None):
    """Write ``{"machine": ..., "config": ..., "records": [...]}`` to ``path`` (``-`` for stdout)."""
    payload = {"machine": machine_info(found), "config": config or {}, "records": records}
    write_text(path, json.dumps(payload, indent=2, default=str))
    return payload


def write_text(path, text):
    """Print ``text`` (``path`` is ``-``) or write it with a final newline to ``path``."""
    if path == "-":
        print(text)
    else:
        with open(path, "w") as f:
            f.write(text + "\n")


# --- command line ----------------------------------------------------------------------------------
def _int_list(text):
    try:
        values = tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"expected positive integers, got {text!r}")
    return values


def name_list(choices):
    """An argparse ``type``: comma-separated names, each one of ``choices``, as a tuple."""
    def parse(text):
        values = tuple(v.strip() for v in text.split(",") if v.strip())
        bad = [v for v in values if v not in choices]
        if bad or not values:
            raise argparse.ArgumentTypeError(f"unknown {bad or text!r}: choose from {', '.join(choices)}")
        return values

    return parse


def parse_bytes(text):
    """``"4G"``, ``"500M"``, ``"1.5GB"``, ``"123456"`` or ``"none"`` -> bytes (None: no limit)."""
    t = str(text).strip().upper().removesuffix("B").removesuffix("I")
    if t in ("NONE", "0", "INF"):
        return None
    scale = {"K": 2**10, "M": 2**20, "G": 2**30, "T": 2**40}
    try:
        if t and t[-1] in scale:
            return int(float(t[:-1]) * scale[t[-1]])
        return int(float(t))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a byte count such as 4G or 500M, got {text!r}") from None


def add_arguments(parser):
    """The options of ``ssdops bench`` (shared with ``benchmarks/bench_ops.py``)."""
    parser.add_argument("--ops", type=name_list(OPS), default=OPS,
                        help=f"comma-separated operations (default: all of {','.join(OPS)})")
    parser.add_argument("--backends", type=name_list(BACKENDS), default=BACKENDS,
                        help="comma-separated frameworks; the ones not installed are skipped "
                             "(default: numpy,torch,jax,cupy; every device of each)")
    parser.add_argument("--sizes", type=_int_list, default=DEFAULT_SIZES,
                        help="grid sides N (N x N images), default 256,512,1024,2048,4096")
    parser.add_argument("--implicit-sizes", type=_int_list, default=DEFAULT_IMPLICIT_SIZES,
                        help="grid sides of implicit_step (default 1024)")
    parser.add_argument("--sizes-3d", type=_int_list, default=DEFAULT_SIZES_3D,
                        help="volume sides N (N x N x N) of the 3-D operations (default 256)")
    parser.add_argument("--batch", type=_int_list, default=DEFAULT_BATCH, help="batch sizes, default 1,16")
    parser.add_argument("--dtype", choices=("float32", "float64"), default="float32")
    parser.add_argument("--repeats", type=int, default=DEFAULT_REPEATS,
                        help="timed samples per configuration (median reported; default 10)")
    parser.add_argument("--max-bytes", type=parse_bytes, default=DEFAULT_MAX_BYTES,
                        help="skip configurations whose working set (5 diagonals + input + output) exceeds "
                             "this (default 4G; 'none' for no limit)")
    parser.add_argument("--no-scipy", action="store_true", help="skip the scipy.sparse baseline")
    parser.add_argument("--no-peers", action="store_true",
                        help="skip the peers of the Perona-Malik steps (OpenCV; medpy, SimpleITK)")
    parser.add_argument("--no-generic", action="store_true",
                        help="skip the generic-path baseline (timed only where a fast path is registered)")
    parser.add_argument("--quick", action="store_true",
                        help=f"a tiny run: sizes {QUICK['sizes']}, batch {QUICK['batch']}, implicit sizes "
                             f"{QUICK['implicit_sizes']}, 3-D sizes {QUICK['sizes_3d']}, {QUICK['repeats']} repeats")
    parser.add_argument("--json", metavar="PATH", help="also write the records and machine info as JSON ('-': stdout)")
    parser.add_argument("-v", "--verbose", action="store_true", help="print each record as it finishes (stderr)")
    return parser


def run_from_args(args):
    """Run ``ssdops bench`` with parsed ``args``; prints the table, writes JSON; returns the exit status."""
    config = dict(ops=args.ops, backends=args.backends, sizes=args.sizes, batch=args.batch, dtype=args.dtype,
                  repeats=args.repeats, max_bytes=args.max_bytes, implicit_sizes=args.implicit_sizes,
                  sizes_3d=args.sizes_3d, scipy_baseline=not args.no_scipy, generic_baseline=not args.no_generic,
                  peer_baseline=not args.no_peers, quick=args.quick)
    def report(r):
        print(f"[bench] {r['op']} {r['backend']} {r['device']} {r['size']}x{r['batch']}: "
              f"{r['ms'] if r['ms'] is None else round(r['ms'], 4)} ms {r['skipped'] or r['error'] or ''}",
              file=sys.stderr, flush=True)

    records = run(progress=report if args.verbose else None, **config)
    table_out = sys.stderr if args.json == "-" else sys.stdout
    print(format_table(records), file=table_out)
    native = [k + v.removeprefix("compiled C++") for k, v in kernels_in_use().items() if v.startswith("compiled C++")]
    print(f"kernels in compiled C++: {', '.join(native) if native else 'none (the native library is not built)'}",
          file=table_out)
    if args.json:
        found = targets(args.backends, jax_x64=args.dtype == "float64")
        if args.quick:
            config.update(sizes=QUICK["sizes"], batch=QUICK["batch"], implicit_sizes=QUICK["implicit_sizes"],
                          sizes_3d=QUICK["sizes_3d"], repeats=min(args.repeats, QUICK["repeats"]))
        write_json(args.json, records, config, found)
    failed = [r for r in records if r["error"]]
    return 1 if failed else 0


def main(argv=None):
    """``python -m ssdops.tools.bench`` / ``benchmarks/bench_ops.py``: the same as ``ssdops bench``."""
    parser = add_arguments(argparse.ArgumentParser(
        prog="bench_ops", description="Time the ssdops kernels on every installed framework and device."))
    return run_from_args(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
