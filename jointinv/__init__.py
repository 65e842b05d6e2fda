"""jointinv: joint inversion of ERT, seismic traveltime and gravity on a 2D profile.

The library is usable from Python::

    import jointinv
    result = jointinv.run("configs/quickstart.yaml", force=True)
    result.chi2          # final χ² per modality
    result.models        # physical models per property (active cells)
    result.model_grids   # the same on the (n_z, n_x) grid, NaN in air cells
    result.plot()        # matplotlib figures by name; result.plot("velocity"): one
    jointinv.to_xarray(result)   # the models on (z, x) as an xarray.Dataset

Heavy modules (engines) are imported on first use.
"""

from __future__ import annotations

from typing import Any

from ._version import FORMAT_VERSION, __version__

__all__ = [
    "__version__",
    "FORMAT_VERSION",
    "run",
    "load_config",
    "read_result",
    "compute_diagnostics",
    "diagnose",
    "to_xarray",
]


def __getattr__(name: str) -> Any:
    if name == "run":
        from .runner import run

        return run
    if name == "load_config":
        from .config import load_config

        return load_config
    if name == "read_result":
        from .results import read_result

        return read_result
    if name == "compute_diagnostics":
        from .diagnostics import compute_diagnostics

        return compute_diagnostics
    if name == "diagnose":
        from .diagnostics import diagnose_result

        return diagnose_result
    if name == "to_xarray":
        from .export import to_xarray

        return to_xarray
    raise AttributeError(name)
