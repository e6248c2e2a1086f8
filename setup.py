"""Build of ssdops' optional CPU kernels (``backends/native/cpu.cpp``, the per-pixel code of
``backends/cuda/stencil.cuh``) into ``ssdops/backends/_native_kernels*.so``, a plain shared library that
``backends/_native.py`` loads with ctypes. Everything else is declared in pyproject.toml.

The library is optional: without a C++17 compiler, or when the build fails for any reason, the install goes
on with a message naming the reason and ssdops runs its pure-Python fast paths
(``ssdops.backends._native.REASON`` says why there are no native kernels). ``SSDOPS_NO_NATIVE=1`` skips
the build.
"""
import os
import sys

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

NATIVE = Extension(
    "ssdops.backends._native_kernels",
    sources=["backends/native/cpu.cpp"],
    depends=["backends/cuda/stencil.cuh"],
    language="c++",
    # No -ffast-math: NaN and inf must propagate as in the generic code. No contraction into fused
    # multiply-adds (g++ contracts C++ by default where the target has FMA, as the AVX-512 clones do): the
    # results are then the bits of the host build of the GPU's per-pixel code (tests/test_native.py).
    extra_compile_args=["-std=c++17", "-O3", "-ffp-contract=off", "-pthread", "-fvisibility=default"],
    extra_link_args=["-pthread"],
)


class OptionalBuildExt(build_ext):
    """``build_ext`` whose failure (no compiler, a compile or link error) is a message, not an error."""

    def run(self):
        if os.environ.get("SSDOPS_NO_NATIVE", "") not in ("", "0"):
            self._skip("SSDOPS_NO_NATIVE is set")
            return
        try:
            super().run()
        except Exception as error:  # noqa: BLE001 - any failure: the package works without the library
            self._skip(f"{type(error).__name__}: {error}")

    def build_extension(self, ext):
        try:
            super().build_extension(ext)
        except Exception as error:  # noqa: BLE001 - as in run()
            self._skip(f"{type(error).__name__}: {error}")

    def get_export_symbols(self, ext):
        # A ctypes library, not a Python module: it has no PyInit_ function to export.
        return []

    @staticmethod
    def _skip(reason):
        print(f"ssdops: the native CPU kernels were not built ({reason}); ssdops installs without them and "
              "uses its pure-Python fast paths. Install a C++17 compiler (g++ or clang++) and reinstall "
              "to build them.", file=sys.stderr)


setup(ext_modules=[NATIVE], cmdclass={"build_ext": OptionalBuildExt})
