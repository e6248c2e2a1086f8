"""Data sets and learning tasks of the DiffNet paper, as NumPy arrays (framework-neutral).

Images are float32 arrays of shape ``(N, H, W)``; a task returns ``(input, target)`` float32 arrays of
shape ``(N, 1, H, W)`` ready for a convolutional network.

- :func:`disks`: disks of random radius and contrast (paper section 5.1, deconvolution).
- :func:`natural_patches`: grey patches cut from scikit-image's shipped sample photographs (no download),
  a stand-in for STL-10 when the real data are not at hand.
- :func:`stl10`: reader for the STL-10 binary files (paper section 5.2).
- :func:`make_task`: ``"deconvolution"`` (heat equation, T = 1, Neumann), ``"pm-forward"`` and
  ``"pm-inverse"`` (the authors' Perona-Malik data generator), optional noise, optional on-disk cache.
- :func:`load_images`: one entry point by name (``disks`` / ``natural`` / ``stl10``) for the CLIs.
"""
from __future__ import annotations

import hashlib
import io
import json
import os

import numpy as np

__all__ = [
    "NATURAL_SOURCES",
    "PM_ARGS",
    "TASKS",
    "disks",
    "load_images",
    "make_task",
    "natural_patches",
    "stl10",
]

TASKS = ("deconvolution", "pm-forward", "pm-inverse")

#: The authors' Perona-Malik data generator (``dataCreation/AnisoDiff2d.m``), exactly.
PM_ARGS = {"steps": 4, "dt": 0.1, "lam": 0.2, "bc": "dirichlet", "ghost_gamma": 0.0}

#: Photographs shipped inside the scikit-image wheel (``skimage/data/*``), no download needed.
NATURAL_SOURCES = (
    "camera",
    "astronaut",
    "coffee",
    "chelsea",
    "rocket",
    "coins",
    "moon",
    "text",
    "page",
    "clock",
    "grass",
    "gravel",
    "brick",
    "cell",
    "immunohistochemistry",
    "hubble_deep_field",
)


# --------------------------------------------------------------------------------------------------
# disks


def disks(n, size=64, *, seed, radius=(3.0, 0.3), contrast=(0.1, 1.0), per_image=1):
    """``n`` images ``size x size`` with ``per_image`` disks of random radius and contrast on a zero background.

    Radius uniform in ``[radius[0], radius[1] * size]`` pixels (a float in (0, 1) is a fraction of the
    size, else pixels), centre uniform such that the disk lies inside the image, contrast (grey value)
    uniform in ``contrast``. Overlapping disks add up. Deterministic in ``seed``.

    >>> x = disks(4, 32, seed=0); x.shape, x.dtype, bool(x.min() >= 0)
    ((4, 32, 32), dtype('float32'), True)
    """
    rng = np.random.default_rng(seed)
    r_lo = float(radius[0])
    r_hi = float(radius[1]) * size if radius[1] < 1 else float(radius[1])
    r_hi = max(min(r_hi, size / 2 - 1), r_lo)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float64)
    out = np.zeros((n, size, size), np.float64)
    for i in range(n):
        for _ in range(per_image):
            r = rng.uniform(r_lo, r_hi)
            cy, cx = rng.uniform(r, size - 1 - r, size=2)
            c = rng.uniform(*contrast)
            out[i] += c * ((yy - cy) ** 2 + (xx - cx) ** 2 <= r * r)
    return out.astype(np.float32)


# --------------------------------------------------------------------------------------------------
# natural patches

_PHOTO_CACHE: dict = {}


def _grey_photo(name):
    """A shipped scikit-image photograph as float64 grey in [0, 1] (ITU-R 601 weights for colour)."""
    if name not in _PHOTO_CACHE:
        import skimage.data

        img = np.asarray(getattr(skimage.data, name)())
        img = img.astype(np.float64)
        if img.ndim == 3:
            img = img[..., :3] @ np.array([0.299, 0.587, 0.114])
        _PHOTO_CACHE[name] = img / 255.0
    return _PHOTO_CACHE[name]


def natural_patches(n, size=96, *, seed, sources=NATURAL_SOURCES, exclude=()):
    """``n`` grey patches ``size x size`` cut at random from scikit-image's shipped photographs.

    Each patch comes from a source drawn uniformly from ``sources`` (minus ``exclude``, e.g. ``("camera",)``
    to hold the demo's photograph out of training), at a uniform random position, randomly flipped /
    transposed, and is divided by its maximum (the authors' normalisation, ``AnisoDiff2d.m``). Patches
    with a maximum of zero stay zero. Deterministic in ``seed``.

    >>> p = natural_patches(3, 32, seed=0); p.shape, p.dtype, float(p.max(axis=(1, 2)).min())
    ((3, 32, 32), dtype('float32'), 1.0)
    """
    names = [s for s in sources if s not in set(exclude)]
    if not names:
        raise ValueError("no source photographs left after exclude")
    photos = [_grey_photo(s) for s in names]
    usable = [p for p in photos if min(p.shape) >= size]
    if not usable:
        raise ValueError(f"patch size {size} is larger than every source photograph")
    rng = np.random.default_rng(seed)
    out = np.empty((n, size, size), np.float32)
    for i in range(n):
        img = usable[rng.integers(len(usable))]
        y = rng.integers(img.shape[0] - size + 1)
        x = rng.integers(img.shape[1] - size + 1)
        patch = img[y : y + size, x : x + size]
        if rng.random() < 0.5:
            patch = patch[:, ::-1]
        if rng.random() < 0.5:
            patch = patch.T
        m = patch.max()
        out[i] = patch / m if m > 0 else patch
    return out


# --------------------------------------------------------------------------------------------------
# STL-10


def stl10(path, split="train", *, limit=None, size=96):
    """Read STL-10 binary images ``{split}_X.bin`` as grey float32 ``(N, size, size)`` in [0, 1].

    ``path`` is the directory holding the binaries (``stl10_binary/``) or the ``.bin`` file itself. The
    file is ``N x 3 x size x size`` uint8, each channel stored column-major (MATLAB order); it is read
    with a memory map, transposed to row-major and converted to grey with the ITU-R 601 weights
    (0.299 R + 0.587 G + 0.114 B) / 255. ``limit`` reads only the first images. Split names are
    ``train``, ``test`` and ``unlabeled``.
    """
    path = os.fspath(path)
    file = path if os.path.isfile(path) else os.path.join(path, f"{split}_X.bin")
    if not os.path.isfile(file):
        raise FileNotFoundError(
            f"STL-10 file not found: {file!r}. Download stl10_binary.tar.gz from "
            "https://cs.stanford.edu/~acoates/stl10/ and pass the extracted stl10_binary/ directory."
        )
    per_image = 3 * size * size
    nbytes = os.path.getsize(file)
    if nbytes % per_image:
        raise ValueError(f"{file!r} has {nbytes} bytes, not a multiple of 3*{size}*{size}")
    n = nbytes // per_image
    if limit is not None:
        n = min(n, int(limit))
    raw = np.memmap(file, dtype=np.uint8, mode="r", shape=(n, 3, size, size))
    out = np.empty((n, size, size), np.float32)
    w = np.array([0.299, 0.587, 0.114], np.float32)[:, None, None]
    for start in range(0, n, 4096):
        block = np.asarray(raw[start : start + 4096], dtype=np.float32)  # (b, 3, col, row)
        out[start : start + 4096] = (block * w).sum(axis=1).transpose(0, 2, 1) / 255.0
    return out


# --------------------------------------------------------------------------------------------------
# tasks


def _hash(params, images):
    h = hashlib.sha256(json.dumps(params, sort_keys=True).encode())
    h.update(str(images.shape).encode())
    h.update(np.ascontiguousarray(images, dtype=np.float32).tobytes())
    return h.hexdigest()[:24]


def _apply(task, images, pm_args):
    import ssdops

    u = images.astype(np.float64)
    if task == "deconvolution":
        return u, ssdops.heat(u, 1.0, bc="neumann", method="exact"), "blurred"
    pm = ssdops.perona_malik(u, **pm_args)
    return u, pm, "pm"


def make_task(task, images, *, noise=0.0, seed=0, cache_dir=None, pm_args=None):
    """``(input, target)`` float32 arrays ``(N, 1, H, W)`` for one of :data:`TASKS`.

    - ``"deconvolution"``: input ``ssdops.heat(x, 1.0, bc="neumann")`` (exact), target ``x``;
    - ``"pm-forward"``: input ``x``, target ``ssdops.perona_malik(x, **PM_ARGS)``;
    - ``"pm-inverse"``: input ``perona_malik(x, **PM_ARGS)``, target ``x``.

    ``noise`` > 0 adds ``ssdops.add_noise(input, noise, rng=seed)`` to the input (std ``noise * max|input|``
    per image: 0.01 is the paper's "1 % noise"). The operators run in float64 and the results are cast to
    float32. With ``cache_dir`` the pair is stored as ``task-<hash>.npz`` keyed by the parameters and the
    images' bytes (atomic write) and read back on the next call.
    """
    import ssdops

    from .runs import atomic_write_bytes

    if task not in TASKS:
        raise ValueError(f"unknown task {task!r}: use one of {TASKS}")
    images = np.asarray(images)
    if images.ndim != 3:
        raise ValueError(f"images must have shape (N, H, W), got {images.shape}")
    pm_args = dict(PM_ARGS if pm_args is None else pm_args)
    params = {"task": task, "noise": float(noise), "seed": int(seed), "pm_args": pm_args, "v": 1}
    cache = None
    if cache_dir is not None:
        cache = os.path.join(os.fspath(cache_dir), f"{task}-{_hash(params, images)}.npz")
        if os.path.exists(cache):
            with np.load(cache) as f:
                return f["input"], f["target"]
    x, y, _ = _apply(task, images, pm_args)
    if task == "deconvolution":
        inp, tgt = y, x
    elif task == "pm-forward":
        inp, tgt = x, y
    else:
        inp, tgt = y, x
    if noise:
        inp = ssdops.add_noise(inp, float(noise), rng=seed)
    inp = np.ascontiguousarray(inp[:, None], dtype=np.float32)
    tgt = np.ascontiguousarray(tgt[:, None], dtype=np.float32)
    if cache is not None:
        buf = io.BytesIO()
        np.savez(buf, input=inp, target=tgt)
        atomic_write_bytes(cache, buf.getvalue())
    return inp, tgt


def load_images(name, n, *, size=None, seed=0, path=None, split="train"):
    """Images by data-set name: ``"disks"`` (size default 64), ``"natural"`` (default 96) or ``"stl10"``.

    For ``stl10`` ``path`` is required, the first ``n`` images of ``split`` are read, ``size`` (if
    given and < 96) crops the centre, and each image is divided by its maximum (the authors'
    normalisation, as for the natural patches).
    """
    if name == "disks":
        return disks(n, size or 64, seed=seed)
    if name == "natural":
        return natural_patches(n, size or 96, seed=seed)
    if name == "stl10":
        if path is None:
            raise ValueError("--data stl10 needs a path to the stl10_binary directory")
        x = stl10(path, split, limit=n)
        if size and size < x.shape[-1]:
            o = (x.shape[-1] - size) // 2
            x = np.ascontiguousarray(x[:, o : o + size, o : o + size])
        m = x.max(axis=(1, 2), keepdims=True)
        return np.where(m > 0, x / np.where(m > 0, m, 1), x).astype(np.float32)
    raise ValueError(f"unknown data set {name!r}: use disks, natural or stl10")
