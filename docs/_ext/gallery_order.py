"""The reading order of the gallery: from the operator itself to DiffNet (sphinx-gallery sort key)."""

ORDER = (
    "plot_sparsity_pattern.py",
    "plot_laplacian_spectra.py",
    "plot_heat_methods.py",
    "plot_diffusivities.py",
    "plot_volume_3d.py",
    "plot_learn_diffusivity_torch.py",
    "plot_learn_diffusivity_jax.py",
    "plot_scipy_pylops_solvers.py",
    "plot_dask_large_image.py",
    "plot_compare_frameworks.py",
    "plot_diffnet_weights_analysis.py",
    "plot_diffnet_inversion.py",
)


class GalleryOrder:
    """Sort key of ``within_subsection_order``: the position in :data:`ORDER`; unlisted scripts last, by name."""

    def __init__(self, src_dir):
        self.src_dir = src_dir

    def __call__(self, filename):
        return (ORDER.index(filename), "") if filename in ORDER else (len(ORDER), filename)

    def __repr__(self):
        return f"<{type(self).__name__} {ORDER}>"
