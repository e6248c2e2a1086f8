"""Data sets and learning tasks of the DiffNet paper, as NumPy arrays (framework-neutral).

Images are float32 arrays of shape ``(N, H, W)`` and volumes ``(N, D, H, W)``; a task returns ``(input,
target)`` float32 arrays of shape ``(N, 1, *grid)`` ready for a convolutional network.

- :func:`disks`: disks of random radius and contrast (paper section 5.1, deconvolution); :func:`balls`:
  the same in 3-D, solid balls in volumes.
- :func:`natural_patches`: grey patches cut from scikit-image's shipped sample photographs (no download),
  a stand-in for STL-10 when the real data are not at hand.
- :func:`stl10`: reader for the STL-10 binary files (paper section 5.2).
- :func:`make_task`: ``"deconvolution"`` (heat equation, T = 1, Neumann), ``"pm-forward"`` and
  ``"pm-inverse"`` (the authors' Perona-Malik data generator), optional noise, optional on-disk cache.
- :func:`load_images`: one entry point by name (``disks`` / ``natural`` / ``stl10`` / ``balls``; their
  grid dimensions in :data:`DATA_NDIM`) for the CLIs;
  :func:`load_data`: a run's ``(input, target)`` pair for a split, :func:`check_source`: the checks that
  can fail before a run writes anything.
"""
from __future__ import annotations

import hashlib
import io
import json
import os
import zipfile

import numpy as np

__all__ = [
    "DATA_NDIM",
    "DEFAULT_SIZES",
    "NATURAL_SOURCES",
    "PAPER_PM_ARGS",
    "STL10_SPLITS",
    "TASKS",
    "as_images",
    "balls",
    "check_source",
    "disks",
    "load_data",
    "load_images",
    "load_run_test_set",
    "make_task",
    "natural_patches",
    "permutation",
    "stl10",
    "stl10_file",
]

TASKS = ("deconvolution", "pm-forward", "pm-inverse")
#: The grid dimension of each data set: images (2) or volumes (3).
DATA_NDIM = {"disks": 2, "natural": 2, "stl10": 2, "balls": 3}
#: The side of a data set's images or volumes when none is given (STL-10: its own 96).
DEFAULT_SIZES = {"disks": 64, "natural": 96, "stl10": 96, "balls": 32}
STL10_SPLITS = ("train", "test", "unlabeled")

#: The authors' Perona-Malik data generator (``dataCreation/AnisoDiff2d.m``), exactly: the keyword
#: arguments of :func:`ssdops.perona_malik` that make the ``pm-forward`` / ``pm-inverse`` data.
PAPER_PM_ARGS = {"steps": 4, "dt": 0.1, "lam": 0.2, "bc": "dirichlet", "ghost_gamma": 0.0}

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
# disks and balls


def _random_balls(n, size, ndim, *, seed, radius, contrast, per_image):
    """``n`` grids ``size ** ndim`` holding ``per_image`` solid d-balls each (disks for d = 2, balls for
    d = 3); see :func:`disks`. One draw order for every d: radius, centre (d coordinates), contrast."""
    rng = np.random.default_rng(seed)
    r_lo = float(radius[0])
    r_hi = float(radius[1]) * size if radius[1] < 1 else float(radius[1])
    r_hi = max(min(r_hi, size / 2 - 1), r_lo)
    grid = np.indices((size,) * ndim, dtype=np.float64)
    out = np.zeros((n,) + (size,) * ndim, np.float32)
    for i in range(n):
        item = np.zeros((size,) * ndim, np.float64)   # overlapping balls add up in float64, then one cast
        for _ in range(per_image):
            r = rng.uniform(r_lo, r_hi)
            centre = rng.uniform(r, size - 1 - r, size=ndim)
            c = rng.uniform(*contrast)
            squared = sum((g - x) ** 2 for g, x in zip(grid, centre))
            item += c * (squared <= r * r)
        out[i] = item
    return out


def disks(n, size=64, *, seed, radius=(3.0, 0.3), contrast=(0.1, 1.0), per_image=1):
    """``n`` images ``size x size`` with ``per_image`` disks of random radius and contrast on a zero background.

    Radius uniform in ``[radius[0], radius[1] * size]`` pixels (a float in (0, 1) is a fraction of the
    size, else pixels), centre uniform such that the disk lies inside the image, contrast (grey value)
    uniform in ``contrast``. Overlapping disks add up. Deterministic in ``seed``.

    >>> x = disks(4, 32, seed=0); x.shape, x.dtype, bool(x.min() >= 0)
    ((4, 32, 32), dtype('float32'), True)
    """
    return _random_balls(n, size, 2, seed=seed, radius=radius, contrast=contrast, per_image=per_image)


def balls(n, size=32, *, seed, radius=(3.0, 0.3), contrast=(0.1, 1.0), per_image=1):
    """``n`` volumes ``size x size x size`` with ``per_image`` solid balls of random radius and contrast on a
    zero background: :func:`disks` in 3-D (the same laws for radius, centre and contrast).

    >>> x = balls(2, 16, seed=0); x.shape, x.dtype, bool(x.min() >= 0)
    ((2, 16, 16, 16), dtype('float32'), True)
    """
    return _random_balls(n, size, 3, seed=seed, radius=radius, contrast=contrast, per_image=per_image)


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


def stl10_file(path, split="train", *, size=96):
    """``(file, number of images)`` of STL-10 ``split`` at ``path``: the ``stl10_binary`` directory or the
    split's own file ``{split}_X.bin`` (a file of another split is a ValueError, so that a test set is
    never read from the training file). FileNotFoundError if missing; ValueError if the size is not a
    whole number of ``3 x size x size`` images."""
    if split not in STL10_SPLITS:
        raise ValueError(f"unknown STL-10 split {split!r}: use one of {STL10_SPLITS}")
    path = os.fspath(path)
    name = f"{split}_X.bin"
    if os.path.isfile(path):
        if os.path.basename(path) != name:
            raise ValueError(f"STL-10 {split} images must come from {name}, not {path!r}: pass the "
                             "stl10_binary directory (both splits) or the split's own file")
        file = path
    else:
        file = os.path.join(path, name)
    if not os.path.isfile(file):
        raise FileNotFoundError(
            f"STL-10 file not found: {file!r}. Download stl10_binary.tar.gz from "
            "https://cs.stanford.edu/~acoates/stl10/ and pass the extracted stl10_binary/ directory."
        )
    per_image = 3 * size * size
    nbytes = os.path.getsize(file)
    if nbytes == 0 or nbytes % per_image:
        raise ValueError(f"{file!r} has {nbytes} bytes, not a whole number of 3x{size}x{size} images")
    return file, nbytes // per_image


def stl10(path, split="train", *, limit=None, size=96):
    """Read STL-10 binary images ``{split}_X.bin`` as grey float32 ``(N, size, size)`` in [0, 1].

    ``path`` is the directory holding the binaries (``stl10_binary/``) or the split's own ``.bin`` file
    (:func:`stl10_file`). The file is ``N x 3 x size x size`` uint8, each channel stored column-major
    (MATLAB order); it is read with a memory map, transposed to row-major and converted to grey with the
    ITU-R 601 weights (0.299 R + 0.587 G + 0.114 B) / 255. ``limit`` reads only the first images. Split
    names are ``train``, ``test`` and ``unlabeled``.
    """
    file, n = stl10_file(path, split, size=size)
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


def as_images(a):
    """``a`` of shape ``(N, ..., W)`` (any array library) viewed as ``N`` 2-D images ``(N, M, W)``, ``M`` the
    product of the axes between: per-image functions that reduce over the last two axes
    (:func:`ssdops.psnr`, :func:`ssdops.add_noise`) then take each item whole, a volume or a one-channel
    image alike."""
    return a.reshape(a.shape[0], -1, a.shape[-1])


def _apply(task, images, pm_args):
    """``(clean, degraded)`` in float64 for ``images`` ``(N, *grid)``: the heat equation (deconvolution) or
    Perona-Malik over the whole d-D grid."""
    import ssdops

    u = images.astype(np.float64)
    ndim = u.ndim - 1
    if task == "deconvolution":
        return u, ssdops.heat(u, 1.0, ndim=ndim, bc="neumann", method="exact")
    return u, ssdops.perona_malik(u, ndim=ndim, **pm_args)


def make_task(task, images, *, noise=0.0, seed=0, cache_dir=None, pm_args=None):
    """``(input, target)`` float32 arrays ``(N, 1, *grid)`` for one of :data:`TASKS`.

    ``images`` are ``(N, H, W)`` images or ``(N, D, H, W)`` volumes (or ``(N, W)`` signals); the operators
    act on the whole grid of each (``ndim`` = ``images.ndim - 1``):

    - ``"deconvolution"``: input ``ssdops.heat(x, 1.0, ndim=ndim, bc="neumann")`` (exact), target ``x``;
    - ``"pm-forward"``: input ``x``, target ``ssdops.perona_malik(x, ndim=ndim, **PAPER_PM_ARGS)``;
    - ``"pm-inverse"``: input ``perona_malik(x, ndim=ndim, **PAPER_PM_ARGS)``, target ``x``.

    ``noise`` > 0 adds ``ssdops.add_noise(input, noise, rng=seed)`` to the input (std ``noise * max|input|``
    per image or volume: 0.01 is the paper's "1 % noise"). The operators run in float64 and the results are
    cast to float32. With ``cache_dir`` the pair is stored as ``task-<hash>.npz`` keyed by the parameters and the
    images' bytes (atomic write) and read back on the next call.
    """
    import ssdops

    from .runs import atomic_write_bytes

    if task not in TASKS:
        raise ValueError(f"unknown task {task!r}: use one of {TASKS}")
    images = np.asarray(images)
    if images.ndim not in (2, 3, 4):
        raise ValueError(f"images must have shape (N, H, W), (N, D, H, W) or (N, W), got {images.shape}")
    pm_args = dict(PAPER_PM_ARGS if pm_args is None else pm_args)
    params = {"task": task, "noise": float(noise), "seed": int(seed), "pm_args": pm_args, "v": 1}
    cache = None
    if cache_dir is not None:
        key = _hash(params, images)
        cache = os.path.join(os.fspath(cache_dir), f"{task}-{key}.npz")
        if os.path.exists(cache):
            return _read_cache(cache, key, (len(images), 1, *images.shape[1:]))
    x, y = _apply(task, images, pm_args)
    if task == "deconvolution":
        inp, tgt = y, x
    elif task == "pm-forward":
        inp, tgt = x, y
    else:
        inp, tgt = y, x
    if noise:
        inp = ssdops.add_noise(as_images(inp), float(noise), rng=seed).reshape(inp.shape)
    inp = np.ascontiguousarray(inp[:, None], dtype=np.float32)
    tgt = np.ascontiguousarray(tgt[:, None], dtype=np.float32)
    if cache is not None:
        buf = io.BytesIO()
        np.savez(buf, input=inp, target=tgt, sha256=np.asarray(_content_hash(key, inp, tgt)))
        atomic_write_bytes(cache, buf.getvalue())
    return inp, tgt


def _content_hash(key, inp, tgt):
    return hashlib.sha256(key.encode() + inp.tobytes() + tgt.tobytes()).hexdigest()


def _read_cache(path, key, shape):
    """The ``(input, target)`` pair cached at ``path`` under ``key``, checked before use: exactly the arrays
    :func:`make_task` writes, float32 of ``shape``, with the SHA-256 of the key and their bytes. A cache
    file is input like any other: :class:`~ssdops.diffnet.format.CorruptFileError` (a ValueError) naming it
    otherwise (delete it to regenerate)."""
    from .format import CorruptFileError  # here: format imports config, which imports this module

    try:
        with np.load(path, allow_pickle=False) as f:
            if sorted(f.files) != ["input", "sha256", "target"]:
                raise ValueError(f"holds {sorted(f.files)}")
            # Each access of an npz member reads it from the archive again: read each once.
            inp, tgt, digest = f["input"], f["target"], str(f["sha256"])
            for name, value in (("input", inp), ("target", tgt)):
                if value.dtype != np.float32 or value.shape != shape:
                    raise ValueError(f"{name} is {value.dtype} {value.shape}, not float32 {shape}")
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as err:
        raise CorruptFileError(f"{path}: not a cache file of this data ({err}); delete it to regenerate") from None
    if digest != _content_hash(key, inp, tgt):
        raise CorruptFileError(f"{path}: the cached data does not match its SHA-256 (corrupted or edited); "
                               "delete it to regenerate")
    return inp, tgt


def load_images(name, n, *, size=None, seed=0, path=None, split="train"):
    """Images by data-set name: ``"disks"``, ``"natural"``, ``"stl10"`` or the volumes ``"balls"`` (default
    sizes :data:`DEFAULT_SIZES`).

    For ``stl10`` ``path`` is required, the first ``n`` images of ``split`` are read, ``size`` (if
    given and < 96) crops the centre, and each image is divided by its maximum (the authors'
    normalisation, as for the natural patches).
    """
    if name == "disks":
        return disks(n, DEFAULT_SIZES[name] if size is None else size, seed=seed)
    if name == "balls":
        return balls(n, DEFAULT_SIZES[name] if size is None else size, seed=seed)
    if name == "natural":
        return natural_patches(n, DEFAULT_SIZES[name] if size is None else size, seed=seed)
    if name == "stl10":
        if path is None:
            raise ValueError("--data stl10 needs a path to the stl10_binary directory")
        x = stl10(path, split, limit=n)
        if size and size < x.shape[-1]:
            o = (x.shape[-1] - size) // 2
            x = np.ascontiguousarray(x[:, o : o + size, o : o + size])
        m = x.max(axis=(1, 2), keepdims=True)
        return np.where(m > 0, x / np.where(m > 0, m, 1), x).astype(np.float32)
    raise ValueError(f"unknown data set {name!r}: use one of {tuple(DATA_NDIM)}")


# --------------------------------------------------------------------------------------------------
# a run's data


def check_source(config):
    """Raise (FileNotFoundError / ValueError) now what :func:`load_data` would raise for ``config``'s data
    source, before a run writes anything: for STL-10, both splits' files and their sizes; for the natural
    patches, a source photograph large enough for the image size."""
    if config.data == "natural":
        size = DEFAULT_SIZES["natural"] if config.image_size is None else config.image_size
        test_sources = tuple(getattr(config, "test_sources", ()))
        held_out = set(config.exclude) | set(test_sources)
        groups = [("", [s for s in NATURAL_SOURCES if s not in held_out])]
        if test_sources:
            groups.append(("test ", list(test_sources)))
        for role, names in groups:
            largest = max((min(_grey_photo(s).shape) for s in names), default=0)
            if size > largest:
                raise ValueError(f"image size {size}: the largest patch the natural {role}photographs "
                                 f"{'left ' if held_out and not role else ''}give is {largest}")
    if config.data == "stl10":
        for split in ("train", "test"):
            _, available = stl10_file(config.data_path, split)
            wanted = config.train_size if split == "train" else config.test_size
            if available < wanted:
                raise ValueError(f"STL-10 {split}: {wanted} images asked for, {available} in the file")


def load_data(config, split):
    """``(input, target)`` float32 ``(N, 1, *grid)`` NumPy arrays of a run's ``split`` (``"train"`` or
    ``"test"``): :class:`~ssdops.diffnet.config.RunConfig` ``config``'s data set, task and noise; the
    train images drawn with ``seed``, the test images with ``seed + 1`` (STL-10: the split's own file). With
    ``test_sources`` (natural data) the test patches come from those photographs only and the training patches
    from the others, so that runs of any training-set size share one test set."""
    if split not in ("train", "test"):
        raise ValueError(f"unknown split {split!r}: use 'train' or 'test'")
    n = config.train_size if split == "train" else config.test_size
    seed = config.seed + (0 if split == "train" else 1)
    test_sources = getattr(config, "test_sources", ())
    if config.data == "natural" and (config.exclude or test_sources):
        size = DEFAULT_SIZES["natural"] if config.image_size is None else config.image_size
        if test_sources and split == "test":     # the test photographs only: one test set whatever the training
            images = natural_patches(n, size, seed=seed, sources=test_sources)
        else:
            images = natural_patches(n, size, seed=seed, exclude=tuple(config.exclude) + tuple(test_sources))
    else:
        images = load_images(config.data, n, size=config.image_size, seed=seed, path=config.data_path,
                             split=split)
    return make_task(config.task, images, noise=config.noise, seed=seed, cache_dir=config.cache_dir)


def load_run_test_set(run_dir, data_path=None):
    """The test set ``(input, target)`` of the run in ``run_dir`` (``data_path`` overrides the run's)."""
    from .config import RunConfig
    from .runs import read_config

    config = RunConfig.from_dict(read_config(run_dir))
    if data_path is not None:
        config = config.replace(data_path=data_path)
    return load_data(config, "test")


def permutation(n, seed, epoch):
    """The epoch's image order: a function of ``seed`` and ``epoch`` only (so a resumed run repeats it).

    >>> sorted(permutation(5, 0, 1)) == list(range(5)), bool((permutation(5, 0, 1) == permutation(5, 0, 1)).all())
    (True, True)
    """
    return np.random.default_rng([seed, epoch, 7919]).permutation(n)
