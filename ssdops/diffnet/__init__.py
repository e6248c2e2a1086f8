"""The framework-neutral half of DiffNet, shared by :mod:`diffnet_torch` and :mod:`diffnet_jax` (NumPy only: no
torch or JAX import).

- :mod:`.config`: :class:`~.config.RunConfig`, every setting of a run (name, type, default, range, help);
- :mod:`.data`: the data sets and tasks of the paper, a run's ``(input, target)`` pairs, the epoch order;
- :mod:`.runs`: the run directory (atomic files, ``metrics.csv``, early stopping, new / overwrite / resume);
- :mod:`.loop`: the one epoch loop :func:`~.loop.fit` against the :class:`~.loop.Trainer` protocol;
- :mod:`.format`: the weights and checkpoint files (safetensors with a SHA-256 of the tensor data);
- :mod:`.cli_common`: the ``train`` and ``evaluate`` sub-commands of ``diffnet-torch`` and ``diffnet-jax``.
"""
