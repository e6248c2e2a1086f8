"""What the default checks of ``perona_malik`` cost, next to one ``perona_malik_step``, per framework (issue #21).

    python benchmarks/check_overhead.py                 # 2048^2 float32, NumPy, PyTorch and JAX
    python benchmarks/check_overhead.py --size 512 --repeats 5

``perona_malik(u, steps=1)`` runs the same step as ``perona_malik_step(u, **args)`` after its default checks
(the arguments, and ``u`` finite: one reduction). Both are timed in one run, interleaved, best of
``--repeats`` after a warm-up; the table gives each time and the overhead ``perona_malik / step - 1``
(the issue's target: at most 10 %). JAX's calls are eager (a jitted ``perona_malik`` skips the value checks
while tracing, as documented) and timed to ``block_until_ready``.
"""
from __future__ import annotations

import argparse
import time

import numpy as np

import ssdops

PM = dict(dt=0.1, lam=0.2, bc="dirichlet", ghost_gamma=0.0)


def best_time(call, repeats):
    call()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return min(times)


def frameworks(size):
    """``name -> image`` for the frameworks installed here."""
    u = np.random.default_rng(0).random((size, size), dtype=np.float32)
    found = {"numpy": u}
    try:
        import torch

        found["torch"] = torch.from_numpy(u)
    except ImportError:
        pass
    try:
        import jax.numpy as jnp

        found["jax"] = jnp.asarray(u)
    except ImportError:
        pass
    return found


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=2048)
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args(argv)
    print(f"{args.size}² float32, best of {args.repeats}")
    print(f"{'framework':<10} {'perona_malik_step':>18} {'perona_malik(steps=1)':>22} {'overhead':>9}")
    for name, u in frameworks(args.size).items():
        out = {}

        def step(u=u):
            out["y"] = ssdops.perona_malik_step(u, **PM)

        def checked(u=u):
            out["y"] = ssdops.perona_malik(u, steps=1, **PM)

        def synced(call):
            def run():
                call()
                y = out["y"]
                if hasattr(y, "block_until_ready"):  # JAX dispatches asynchronously
                    y.block_until_ready()
            return run

        t_step = best_time(synced(step), args.repeats)
        t_checked = best_time(synced(checked), args.repeats)
        print(f"{name:<10} {t_step * 1e3:>15.2f} ms {t_checked * 1e3:>19.2f} ms {t_checked / t_step - 1:>8.1%}")


if __name__ == "__main__":
    main()
