r"""
The same results in every framework
===================================

``ssdops compare`` computes the same problems in every installed framework and device, in float32 and
float64, and measures each result against a float64 NumPy reference computed without ssdops where
possible (scipy's sparse matrices, ``expm_multiply``, ``spsolve``, and an independent NumPy
implementation of the authors' Perona-Malik generator). Its library function
:func:`ssdops.tools.compare.run` returns the records; here they are drawn as a chart, at a small size
(a batch of two 32 x 32 images; times are of one call, after a warm-up call).

A float64 result must agree to 1e-10 and a float32 one to 1e-4 (relative to the largest reference
value); the dashed lines are those tolerances.
"""
import matplotlib.pyplot as plt
import numpy as np

from ssdops.tools import compare

# JAX is compared jitted only here: eager JAX compiles each operation of the Krylov loop on its own,
# which the command line affords and a documentation build does not.
records = compare.run(size=32, frameworks=("numpy", "array_api_strict", "torch", "jax.jit"), repeats=1)
print(compare.format_table(records))
print(compare.summary(records)[1])

operations = list(dict.fromkeys(r["operation"] for r in records))
frameworks = list(dict.fromkeys(r["framework"] for r in records))
fig, axes = plt.subplots(1, 3, figsize=(15, 4.6), layout="constrained", sharey=True)
width = 0.8 / len(frameworks)
positions = np.arange(len(operations))
for ax, dtype, field in ((axes[0], "float64", "max_rel"), (axes[1], "float32", "max_rel"),
                         (axes[2], "float64", "ms")):
    for j, framework in enumerate(frameworks):
        values = []
        for operation in operations:
            (record,) = [r for r in records if (r["operation"], r["framework"], r["dtype"]) ==
                         (operation, framework, dtype)]
            value = record[field]
            # an exact match would vanish on a log axis: draw it at the bottom of the scale
            values.append(np.nan if value is None else max(value, 1e-17))
        ax.barh(positions + j * width, values, height=width, label=framework)
    ax.set_xscale("log")
    if field == "max_rel":
        ax.axvline(compare.TOLERANCES[dtype], color="k", linestyle="--", linewidth=0.8)
        ax.set_title(f"{dtype}: max relative difference to the reference", fontsize=9)
    else:
        ax.set_title(f"{dtype}: time per call [ms], batch 2 x 32 x 32", fontsize=9)
axes[0].set_yticks(positions + 0.4 - width / 2, operations)
axes[0].invert_yaxis()
axes[2].legend(fontsize=8)
plt.show()
