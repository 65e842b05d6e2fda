"""Numerical ERT geometric factors for electrodes on a surface with topography.

On a flat half-space the geometric factor has a closed form (see
:func:`jointinv.readers.read_ert`). With topography it does not: here it is
computed with pyGIMLi as ``k = 1 / u``, where ``u`` is the transfer resistance
(Ω) of each datum simulated on a homogeneous 1 Ω·m earth whose surface passes
through the electrodes (pyGIMLi's ``createGeometricFactors(numerical=True)``:
default inversion mesh, refined in h and p). pyGIMLi caches the result on disk,
so reading the same file again is fast.

pyGIMLi is imported inside the function, so ``jointinv.readers`` stays free of
engine imports until a file actually needs numerical factors.
"""

from __future__ import annotations

import logging

import numpy as np

from ..errors import EngineError

log = logging.getLogger(__name__)

__all__ = ["numerical_geometric_factors"]


def numerical_geometric_factors(electrodes: np.ndarray, abmn: np.ndarray) -> np.ndarray:
    """Geometric factors (m) computed numerically with pyGIMLi.

    Parameters
    ----------
    electrodes : ndarray, shape (n_electrodes, 2)
        Electrode ``x`` along the profile and elevation (m, absolute elevations
        are fine; the surface of the simulation mesh passes through them).
    abmn : ndarray of int, shape (n_data, 4)
        0-based electrode indices; -1 is a remote (pole) electrode.

    Returns
    -------
    ndarray, shape (n_data,)
        ``k`` such that ρa = k · r with r = u / i (Ω); its sign follows the
        electrode order, like the analytic factor.

    Raises
    ------
    EngineError
        If pyGIMLi is missing or returns non-finite or zero factors.
    """
    try:
        import pygimli as pg
        from pygimli.physics import ert

        from .pgmesh import quiet_pygimli
    except ImportError as exc:  # pragma: no cover - pygimli is a dependency
        raise EngineError(
            f"numerical geometric factors need pyGIMLi, which cannot be imported: {exc}"
        ) from exc
    electrodes = np.asarray(electrodes, dtype=float)
    abmn = np.asarray(abmn, dtype=np.int64)
    data = pg.DataContainerERT()
    for x, z in electrodes:
        data.createSensor(pg.Pos(float(x), float(z), 0.0))  # pyGIMLi 2D: y is elevation
    data.resize(len(abmn))
    for j, name in enumerate("abmn"):
        data.set(name, pg.Vector(abmn[:, j].astype(float)))
    data.set("valid", pg.Vector(np.ones(len(abmn))))
    log.info(
        "computing numerical geometric factors with pyGIMLi for %d data, %d electrodes",
        len(abmn),
        len(electrodes),
    )
    with quiet_pygimli():
        k = np.asarray(ert.createGeometricFactors(data, numerical=True), dtype=float)
    bad = ~np.isfinite(k) | (k == 0)
    if k.shape != (len(abmn),) or bad.any():
        raise EngineError(
            f"pyGIMLi returned {int(bad.sum())} unusable numerical geometric factors "
            f"(zero or not finite) for {len(abmn)} data"
        )
    return k
