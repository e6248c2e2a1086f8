"""A toy array library for tests/test_adapters.py: NumPy arrays in a wrapper of their own, with their own
namespace module, so that no adapter of ssdops recognises them.

``ToyArray`` wraps an ``numpy.ndarray``; the namespace (this module, ``__array_namespace__``) forwards every
array-API function to ``array_api_compat.numpy``, unwrapping the arguments and wrapping array results.
"""
from __future__ import annotations

import operator
import sys

import array_api_compat.numpy as _np_xp
import numpy as np

__array_api_version__ = _np_xp.__array_api_version__


def _unwrap(x):
    if isinstance(x, ToyArray):
        return x._a
    if isinstance(x, (list, tuple)):
        return type(x)(_unwrap(v) for v in x)
    return x


def _wrap(x):
    if isinstance(x, np.ndarray):
        return ToyArray(x)
    if isinstance(x, np.generic):
        return ToyArray(np.asarray(x))
    if isinstance(x, (list, tuple)):
        return type(x)(_wrap(v) for v in x)
    return x


class ToyArray:
    """A NumPy array that belongs to the toy library."""

    __slots__ = ("_a",)

    def __init__(self, a):
        self._a = np.asarray(a)

    def __array_namespace__(self, api_version=None):
        return sys.modules[__name__]

    shape = property(lambda self: self._a.shape)
    dtype = property(lambda self: self._a.dtype)
    ndim = property(lambda self: self._a.ndim)
    size = property(lambda self: self._a.size)
    device = property(lambda self: "cpu")
    T = property(lambda self: ToyArray(self._a.T))
    mT = property(lambda self: ToyArray(np.swapaxes(self._a, -1, -2)))

    def to_device(self, device, /, *, stream=None):
        return self

    def __getitem__(self, index):
        return _wrap(self._a[_unwrap(index)])

    def __setitem__(self, index, value):
        self._a[_unwrap(index)] = _unwrap(value)

    def __dlpack__(self, **kwargs):
        return self._a.__dlpack__(**kwargs)

    def __dlpack_device__(self):
        return self._a.__dlpack_device__()

    def __float__(self):
        return float(self._a)

    def __int__(self):
        return int(self._a)

    def __bool__(self):
        return bool(self._a)

    def __index__(self):
        return operator.index(self._a)

    def __len__(self):
        return len(self._a)

    def __repr__(self):
        return f"ToyArray({self._a!r})"


def _binary(name):
    def method(self, other):
        result = getattr(self._a, name)(_unwrap(other))
        return NotImplemented if result is NotImplemented else _wrap(result)

    return method


for _name in ("add", "sub", "mul", "truediv", "floordiv", "mod", "pow", "matmul", "and", "or", "xor",
              "lt", "le", "gt", "ge", "eq", "ne"):
    for _form in (f"__{_name}__", f"__r{_name}__"):
        if hasattr(np.ndarray, _form):
            setattr(ToyArray, _form, _binary(_form))
for _name in ("__neg__", "__pos__", "__abs__", "__invert__"):
    setattr(ToyArray, _name, (lambda n: lambda self: _wrap(getattr(self._a, n)()))(_name))


def _forward(namespace, name):
    value = getattr(namespace, name)
    if callable(value) and not isinstance(value, type):
        def function(*args, **kwargs):
            return _wrap(value(*_unwrap(args), **{k: _unwrap(v) for k, v in kwargs.items()}))

        function.__name__ = name
        return function
    return value


class _Extension:
    """``fft`` / ``linalg``: the extension of array_api_compat.numpy, forwarded like the namespace."""

    def __init__(self, namespace):
        self._namespace = namespace

    def __getattr__(self, name):
        return _forward(self._namespace, name)


fft = _Extension(_np_xp.fft)
linalg = _Extension(_np_xp.linalg)


def __getattr__(name):
    return _forward(_np_xp, name)


def asarray(obj, /, *, dtype=None, device=None, copy=None):
    return ToyArray(np.array(_unwrap(obj), dtype=dtype, copy=True if copy else None))


def is_toy_array(x) -> bool:
    return isinstance(x, ToyArray)


def is_toy_namespace(xp) -> bool:
    return xp is sys.modules[__name__]
