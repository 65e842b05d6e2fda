"""``jointinv validate``: check a config and its data without inverting."""

from __future__ import annotations

from pathlib import Path

from .bias import declared_blocks
from .config import load_config
from .problem import build_mesh, check_sensors, load_datasets, petrophysical_cell_weights


def validate_config(path: str | Path) -> str:
    """Validate the config, read every data file, check sensors against the mesh
    and that the data can carry the declared biases.

    Returns a short summary; raises a :class:`~jointinv.errors.UserInputError`
    on the first problem.
    """
    loaded = load_config(path)
    datasets = load_datasets(loaded)
    declared_blocks(loaded.config.conflict.biases, datasets)  # e.g. loop_offset needs loops
    mesh = build_mesh(loaded.config, datasets)
    for i, term in enumerate(loaded.config.coupling):
        if term.kind == "petrophysical":
            petrophysical_cell_weights(loaded, i, mesh)  # boxes must cover cells
    lines = [f"{loaded.name}: OK", f"  mesh: {mesh.shape[0]} x {mesh.shape[1]} cells"]
    for name, ds in datasets.items():
        check_sensors(mesh, ds, ds.survey.source)
        prop = loaded.config.modalities[name].property
        lines.append(
            f"  {name} ({ds.kind} -> {prop}): {len(ds.observed)} data, "
            f"{len(ds.sensors)} sensors, from {Path(ds.survey.source).name}"
        )
    return "\n".join(lines)
