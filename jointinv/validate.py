"""``jointinv validate``: check a config and its data without inverting."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .bias import declared_blocks
from .config import LoadedConfig, as_loaded
from .problem import (
    build_mesh,
    check_sensors,
    divided_core,
    load_datasets,
    petrophysical_cell_weights,
)


def validate_config(path: str | Path | LoadedConfig) -> str:
    """Validate the config, read every data file, check sensors against the mesh
    and that the data can carry the declared biases.

    Returns a short summary; raises a :class:`~jointinv.errors.UserInputError`
    on the first problem.
    """
    loaded = as_loaded(path)
    datasets = load_datasets(loaded)
    declared_blocks(loaded.config.conflict.biases, datasets)  # e.g. loop_offset needs loops
    own = {n: m.biases for n, m in loaded.config.modalities.items() if m.biases}
    declared_blocks(own, datasets)
    mesh = build_mesh(loaded.config, datasets, source=loaded.name)
    for i, term in enumerate(loaded.config.coupling):
        if term.kind == "petrophysical":
            petrophysical_cell_weights(loaded, i, mesh)  # boxes must cover cells
    note = divided_core(mesh)
    shape = f"  mesh: {mesh.shape[0]} x {mesh.shape[1]} cells" + (f"; {note}" if note else "")
    lines = [f"{loaded.name}: OK", shape]
    for name, ds in datasets.items():
        check_sensors(mesh, ds, loaded.name)
        prop = loaded.config.modalities[name].property
        dropped = getattr(ds.survey, "n_zero_offset", 0)
        lines.append(
            f"  {name} ({ds.kind} -> {prop}): {len(ds.observed)} data, "
            f"{len(ds.sensors)} sensors, from {Path(ds.survey.source).name}"
            + (f" ({dropped} zero-offset picks dropped)" if dropped else "")
        )
        if ds.kind == "gravity":
            lines += gravity_padding_lines(mesh, ds.sensors, name, loaded.config)
    return "\n".join(lines)


#: a layer at the core's depth whose field (as a share of the infinite slab's) varies by
#: more than this along the stations is too truncated by the mesh for gravity over a
#: layered earth: the truncation alone makes a lateral gradient
SLAB_SHARE_SPREAD = 0.01


def slab_share(stations: np.ndarray, x_left: float, x_right: float, depth: float) -> np.ndarray:
    """Share of an infinite horizontal sheet's gz that the part within [x_left, x_right]
    (m) gives at each station when the sheet lies ``depth`` (m) below it: the angle the
    sheet subtends over π, (atan((x−x_left)/h) + atan((x_right−x)/h)) / π."""
    x = stations[:, 0]
    return (np.arctan((x - x_left) / depth) + np.arctan((x_right - x) / depth)) / np.pi


def gravity_padding_lines(mesh, stations: np.ndarray, name: str, config) -> list[str]:
    """How far the mesh reaches beyond the gravity stations, and a warning when the field
    of a layer at the bottom of the core, as a share of its infinite slab's, varies along
    the stations by more than :data:`SLAB_SHARE_SPREAD` (the mesh cannot then explain a
    layered earth's gravity without a spurious lateral gradient)."""
    x_left, x_right = mesh.nodes_x[0], mesh.nodes_x[-1]
    depth = config.mesh.core.depth + float(np.max(stations[:, 1]) - mesh.nodes_z[-1])
    share = slab_share(stations, x_left, x_right, max(depth, 1e-3))
    left = stations[:, 0].min() - x_left
    right = x_right - stations[:, 0].max()
    lines = [
        f"  {name}: the mesh reaches {left:.0f} m left and {right:.0f} m right of the "
        f"stations; a layer at the core's depth ({config.mesh.core.depth:g} m) is seen at "
        f"{100 * share.min():.1f}-{100 * share.max():.1f} % of its infinite-slab field"
    ]
    if share.max() - share.min() > SLAB_SHARE_SPREAD:
        # a station at a line end sees ½ + atan(L/h)/π; the spread is below the limit
        # when that reaches 1 − SLAB_SHARE_SPREAD, i.e. L = h·tan(π(½ − SLAB_SHARE_SPREAD))
        need = depth * np.tan(np.pi * (0.5 - SLAB_SHARE_SPREAD))
        lines.append(
            f"  warning: {name}: the padding is too narrow for gravity over a layered earth "
            f"(a layer's field would fall off towards the line ends); widen the padding to "
            f"about {need:.0f} m beyond the stations (padding.n_x, padding.factor) or "
            f"declare 'biases: [offset, trend]' for {name}"
        )
    return lines
