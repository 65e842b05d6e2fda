"""Assemble a joint inverse problem from a validated config.

This is where the config meets the engines: it reads the data files, builds
the model mesh, one forward operator per modality (engine ∘ transfer ∘
transform ∘ select), and the named objective terms.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from . import readers
from .bias import BiasBlock, augment, declared_blocks
from .config import Config, DepthGradient, ErrorModel, LoadedConfig, build_relation
from .data import ErtData, GravityData, ProfileLine, TraveltimeData
from .errors import ConfigError, DataError
from .maps import Chain, Select, Transform
from .mesh import MeshSpec, MeshTooLarge, ModelMesh
from .objective import (
    Block,
    CrossGradient,
    DataMisfit,
    Objective,
    PetrophysicalCoupling,
    Regularization,
)
from .operators import EngineClock, ForwardOperator
from .petrophysics import RelationMap
from .progress import stage

log = logging.getLogger(__name__)

NODE_TOLERANCE_M = 1e-3

#: What each modality kind measures: data label and units.
DATA_LABELS = {
    "ert": ("ln(apparent resistivity)", "ln(ohm*m)"),
    "traveltime": ("traveltime", "s"),
    "gravity": ("gz", "mGal"),
}


@dataclass
class Dataset:
    """One modality's data as the inversion sees them."""

    name: str
    kind: str
    survey: ErtData | TraveltimeData | GravityData
    observed: np.ndarray
    std: np.ndarray

    @property
    def sensors(self) -> np.ndarray:
        s = self.survey
        if isinstance(s, ErtData):
            return s.electrodes
        if isinstance(s, TraveltimeData):
            return s.sensors
        return s.stations


@dataclass
class Problem:
    """Everything a run needs, built from one config."""

    loaded: LoadedConfig
    mesh: ModelMesh
    blocks: list[Block]
    transforms: dict[str, Transform]
    datasets: dict[str, Dataset]
    objective: Objective
    clocks: list[EngineClock]
    m_start: np.ndarray
    relations: dict[str, Any] = field(default_factory=dict)
    #: bias parameters estimated with the model (``modalities.<name>.biases``); their
    #: entries follow the property blocks in the model vector
    bias_blocks: list[BiasBlock] = field(default_factory=list)
    #: cross-gradient terms declared without ``weight`` (derived by the schedule)
    auto_couplings: list[CrossGradient] = field(default_factory=list)

    @property
    def config(self) -> Config:
        return self.loaded.config

    @property
    def sensed(self) -> set[str]:
        """Properties (inverted and derived) that this problem's data sense, with the
        inverted property behind each derived one."""
        out = set()
        for name in self.datasets:
            prop = self.config.modalities[name].property
            out |= {prop, source_property(self.config, prop)}
        return out

    @property
    def regularization_weights(self) -> dict[str, float]:
        """``α·w_p`` per property: the smoothness weight the automatic coupling weight
        is scaled against (α = mean of α_x and α_z)."""
        reg = self.config.regularization
        alpha = 0.5 * (reg.alpha_x + reg.alpha_z)
        return {b.name: alpha * reg.property_weights.get(b.name, 1.0) for b in self.blocks}

    def physical(self, m: np.ndarray) -> dict[str, np.ndarray]:
        """Every property in physical units: the inverted ones, then the derived ones."""
        out = {b.name: self.transforms[b.name](m[b.slice]) for b in self.blocks}
        for name, derived in self.config.derived.items():
            out[name] = self.relations[name].value(out[derived.source])
        return out


# --- mesh and model vector ---------------------------------------------------------
def build_mesh(
    config: Config, datasets: dict[str, Dataset] | None = None, *, source: str = "<config>"
) -> ModelMesh:
    """The model mesh; with ``mesh.topography`` its surface runs through the
    electrodes and geophones of ``datasets`` (required then), else they are nodes
    of its core (see :class:`~jointinv.mesh.MeshSpec`). A mesh beyond the cell
    limit is a ConfigError naming ``source`` (the config file)."""
    c = config.mesh
    try:
        if c.topography is None:
            return flat_mesh(c.spec(), datasets or {})
        if datasets is None:
            raise ValueError("a mesh with topography needs the datasets (its surface runs on them)")
        return ModelMesh(c.spec(), surface_from_sensors(datasets, c.topography.merge_distance))
    except MeshTooLarge as exc:
        raise ConfigError(source, exc.field, str(exc)) from None


def flat_mesh(spec: MeshSpec, datasets: dict[str, Dataset]) -> ModelMesh:
    """A flat mesh with a node at every electrode and geophone of ``datasets``: the
    uniform grid when they all sit on it, else a core divided at the sensors."""
    xz = node_sensors(datasets)
    mesh = ModelMesh(replace(spec, nodes_at_x=tuple(xz[:, 0]), nodes_at_z=tuple(xz[:, 1])))
    note = divided_core(mesh)
    if note:
        log.info("mesh: %s", note)
    return mesh


def divided_core(mesh: ModelMesh) -> str:
    """One phrase on a flat core divided at the sensors (its cell widths and heights,
    m); empty for a uniform core."""
    if mesh.spec is None or mesh.has_topography:
        return ""
    widths, heights = mesh.core_cell_sizes
    if max(np.ptp(widths), np.ptp(heights)) <= NODE_TOLERANCE_M:
        return ""
    grid = f"{mesh.spec.dx:g} x {mesh.spec.dz:g} m"
    wide, high = _span(widths), _span(heights)
    return f"nodes at the sensors (off the {grid} grid): core cells {wide} m wide, {high} m high"


def _span(values: np.ndarray) -> str:
    """'0.85-1.3' (3 significant digits), or one value when they all round to it."""
    low, high = f"{values.min():.3g}", f"{values.max():.3g}"
    return low if low == high else f"{low}-{high}"


def node_sensors(datasets: dict[str, Dataset]) -> np.ndarray:
    """Positions (x, z; m) of every electrode and geophone (gravity stations need no
    node), shape (n, 2)."""
    points = [ds.sensors for ds in datasets.values() if ds.kind in ("ert", "traveltime")]
    return np.vstack(points) if points else np.empty((0, 2))


def surface_from_sensors(datasets: dict[str, Dataset], merge_distance: float) -> np.ndarray:
    """Ground-surface polyline (x, z; m) through every electrode and geophone.

    Sensors closer than ``merge_distance`` (m) along x are one stake (the same
    stake surveyed twice, e.g. for ERT and for refraction): they become one
    surface point at their mean position. Gravity stations do not define the
    surface (they may be above it).
    """
    points = node_sensors(datasets)
    if not len(points):
        raise ValueError("topography from sensors needs ERT or traveltime data")
    xz = np.unique(points, axis=0)
    xz = xz[np.argsort(xz[:, 0], kind="stable")]
    groups = np.r_[0, np.cumsum(np.diff(xz[:, 0]) > merge_distance)]
    count = np.bincount(groups)
    surface = np.column_stack([np.bincount(groups, xz[:, i]) / count for i in (0, 1)])
    shift = np.hypot(*(xz - surface[groups]).T).max()
    log.info(
        "topography: %d surface points from %d sensor positions (largest shift onto a "
        "shared stake %.3g m)",
        len(surface),
        len(xz),
        shift,
    )
    return surface


def build_blocks(config: Config, n_cells: int) -> list[Block]:
    return [Block(name, i * n_cells, n_cells) for i, name in enumerate(config.properties)]


def build_transforms(config: Config, n_cells: int) -> dict[str, Transform]:
    out = {}
    for name, prop in config.properties.items():
        lo, hi = prop.bounds if prop.bounds else (None, None)
        out[name] = Transform(prop.transform, n_cells, lower=lo, upper=hi)
    return out


def property_values(spec: float | DepthGradient, mesh: ModelMesh) -> np.ndarray:
    """A constant or a depth gradient per cell: ``top`` at the ground surface,
    ``bottom`` at ``mesh.core.depth`` below it (and deeper)."""
    if not isinstance(spec, DepthGradient):
        return np.full(mesh.n_cells, float(spec))
    depth = np.clip(mesh.depth_below_surface / mesh.spec.depth, 0.0, 1.0)
    return spec.top + (spec.bottom - spec.top) * depth


def starting_and_reference(
    config: Config, mesh: ModelMesh, blocks: list[Block], transforms: dict[str, Transform]
) -> tuple[np.ndarray, np.ndarray]:
    n = sum(b.size for b in blocks)
    m0, mref = np.empty(n), np.empty(n)
    for b in blocks:
        prop = config.properties[b.name]
        t = transforms[b.name]
        m0[b.slice] = t.inverse(property_values(prop.start, mesh))
        ref = prop.reference if prop.reference is not None else prop.start
        mref[b.slice] = t.inverse(property_values(ref, mesh))
    return m0, mref


# --- data ------------------------------------------------------------------------
def read_survey(
    loaded: LoadedConfig, name: str, *, notes: list[tuple[int, str]] | None = None
) -> ErtData | TraveltimeData | GravityData:
    """Read one modality's data file with the reader of its kind.

    Gravity files in map coordinates are projected onto the config's
    ``options.profile`` (a missing or needless profile is a ConfigError) and one
    line reports the projection (logged, or appended to ``notes``).
    """
    modality = loaded.config.modalities[name]
    path = loaded.resolve(modality.data)
    if not path.is_file():
        raise ConfigError(loaded.name, f"modalities.{name}.data", f"file not found: {path}")
    if modality.kind == "ert":
        return readers.read_ert(path)
    if modality.kind == "traveltime":
        survey = readers.read_traveltime(path)
        if survey.n_zero_offset:
            _note(
                notes,
                logging.INFO,
                "%s: dropped %d zero-offset picks of %s (shot = geophone, t = 0)",
                name,
                survey.n_zero_offset,
                path.name,
            )
        return survey
    cfg = modality.options.profile
    profile = None
    if cfg is not None:
        profile = ProfileLine(tuple(cfg.start), tuple(cfg.end), cfg.max_offset)
    try:
        survey = readers.read_gravity(path, profile)
    except readers.GravityProfileError as exc:
        message = (
            f"required: {path.name} gives stations in map coordinates (x, y); set "
            f"options.profile {{start: [x, y], end: [x, y]}} (m) to project them"
            if exc.needed
            else f"{path.name} gives x along the profile already (x, z columns); remove "
            f"options.profile"
        )
        raise ConfigError(loaded.name, f"modalities.{name}.options.profile", message) from None
    if survey.offset_m is not None:
        dropped = (
            f"; dropped {survey.n_dropped} farther than max_offset {cfg.max_offset:g} m"
            if cfg is not None and cfg.max_offset is not None
            else ""
        )
        _note(
            notes,
            logging.INFO,
            "%s: projected %d stations of %s onto the profile (offset up to %.4g m)%s",
            name,
            survey.n_data,
            path.name,
            float(survey.offset_m.max()),
            dropped,
        )
    return survey


def load_datasets(loaded: LoadedConfig) -> dict[str, Dataset]:
    """Read every data file and apply the error models.

    No engine is imported, except pyGIMLi for ERT files over topography
    without geometric factors (numerical k, :mod:`jointinv.engines.geometric`).
    """
    out = {}
    notes: list[tuple[int, str]] = []  # logged once every file is read (one-line errors)
    for name, modality in loaded.config.modalities.items():
        survey = read_survey(loaded, name, notes=notes)
        observed = _observed(modality.kind, survey)
        std = _std(loaded, name, modality.kind, survey, modality.error, notes=notes)
        out[name] = Dataset(name, modality.kind, survey, observed, std)
    for level, text in notes:
        log.log(level, "%s", text)
    return out


def _observed(kind: str, survey: Any) -> np.ndarray:
    if kind == "ert":
        rhoa = survey.apparent_resistivity
        bad = np.flatnonzero(rhoa <= 0)
        if bad.size:
            i = bad[0]
            lines = survey.line_numbers
            line = None if lines is None else int(lines[i])
            raise DataError(
                survey.source,
                line,
                ("" if line else f"datum {i + 1}: ")
                + f"apparent resistivity {rhoa[i]:g} ohm*m is not positive; ERT data are "
                f"inverted as ln(rhoa) ({bad.size} such data; remove them)",
            )
        return np.log(rhoa)
    if kind == "traveltime":
        return survey.traveltime_s.astype(float)
    return survey.gz_mgal.astype(float)


def _file_errors(kind: str, survey: Any) -> np.ndarray | None:
    """The file's err column as read (ERT: in the file's unit)."""
    if kind == "ert":
        return survey.err
    if kind == "traveltime":
        return survey.error_s
    return survey.error_mgal


def _check_file_errors(survey: Any, err: np.ndarray) -> None:
    """File errors used as standard deviations must be positive (DataError at the line)."""
    bad = np.flatnonzero(~(err > 0))
    if bad.size:
        i = bad[0]
        lines = survey.line_numbers
        line = int(lines[i]) if lines is not None else None
        column = "std" if Path(survey.source).suffix.lower() in (".obs", ".grv") else "err"
        raise DataError(
            survey.source,
            line,
            f"error '{column}' is {err[i]:g}; errors must be positive ({bad.size} such data; "
            f"raise the small ones, or use relative/absolute instead of from_file)",
        )


def _ert_err_fraction(loaded: LoadedConfig, field: str, survey: ErtData, error: ErrorModel) -> str:
    """The unit of an ERT file's err column: the token's ``err/%`` or ``error.file_unit``."""
    fname = Path(survey.source).name
    if survey.err_unit == "percent":
        if error.file_unit == "fraction":
            raise ConfigError(
                loaded.name,
                f"{field}.file_unit",
                f"is 'fraction' but {fname} declares its err column in percent ('err/%'); "
                f"set file_unit: percent or remove it",
            )
        return "percent"
    if error.file_unit is None:
        raise ConfigError(
            loaded.name,
            f"{field}.file_unit",
            f"required with from_file: the 'err' column of {fname} has no unit; state "
            f"file_unit: fraction (0.02 = 2 %) or percent (2 = 2 %)",
        )
    return error.file_unit


def _note(notes: list[tuple[int, str]] | None, level: int, message: str, *args: Any) -> None:
    """Log now, or keep the line in ``notes`` to log later."""
    if notes is None:
        log.log(level, message, *args)
    else:
        notes.append((level, message % args))


def _describe(kind: str, error: ErrorModel) -> str:
    """The config's relative/absolute error model in words, in the data's units."""
    units = {"ert": ("ohm*m", 1.0), "traveltime": ("ms", 1e3), "gravity": ("mGal", 1.0)}
    unit, scale = units[kind]
    parts = []
    if error.relative:
        parts.append(f"{100 * error.relative:g} %")
    if error.absolute or not parts:
        parts.append(f"{scale * error.absolute:g} {unit}")
    return " + ".join(parts)


def _std(
    loaded: LoadedConfig,
    name: str,
    kind: str,
    survey: Any,
    error: ErrorModel,
    *,
    notes: list[tuple[int, str]] | None = None,
) -> np.ndarray:
    """Standard deviation of each datum (data units; ERT: of ln ρa) from the error model.

    Logs one line saying which error model is used for the modality (or appends it
    to ``notes``, for the caller to log once every file has been read).
    """
    field = f"modalities.{name}.error"
    fname = Path(survey.source).name
    if error.file_unit is not None and kind != "ert":
        unit = "s ('err/ms': ms)" if kind == "traveltime" else "mGal"
        raise ConfigError(
            loaded.name,
            f"{field}.file_unit",
            f"applies only to ERT err columns; a {kind} err column is in {unit}",
        )
    raw = _file_errors(kind, survey)
    if error.from_file and raw is not None:
        raw = np.asarray(raw, dtype=float)
        _check_file_errors(survey, raw)
        if kind == "ert":
            unit = _ert_err_fraction(loaded, field, survey, error)
            std = raw / 100.0 if unit == "percent" else raw.copy()
            if unit == "fraction" and std.max() > 1:
                _note(
                    notes,
                    logging.WARNING,
                    "%s: err column of %s reaches %g (%g %%) as a fraction; is it in percent?",
                    name,
                    fname,
                    std.max(),
                    100 * std.max(),
                )
            _note(
                notes,
                logging.INFO,
                "%s: using the err column of %s (%s), %.3g .. %.3g %% of rhoa",
                name,
                fname,
                unit,
                100 * std.min(),
                100 * std.max(),
            )
        else:
            std = raw.copy()
            scale, unit = (1e3, "ms") if kind == "traveltime" else (1.0, "mGal")
            _note(
                notes,
                logging.INFO,
                "%s: using the err column of %s, %.3g .. %.3g %s",
                name,
                fname,
                scale * std.min(),
                scale * std.max(),
                unit,
            )
        return std
    if error.from_file:
        if error.relative == 0 and error.absolute == 0:
            raise ConfigError(
                loaded.name,
                f"{field}.from_file",
                f"{fname} has no err column; add relative and/or absolute as its default",
            )
        _note(
            notes,
            logging.WARNING,
            "%s: %s has no err column; using the config's default %s",
            name,
            fname,
            _describe(kind, error),
        )
    else:
        note = "; the file's err column is not used" if raw is not None else ""
        model = _describe(kind, error)
        _note(notes, logging.INFO, "%s: error model %s (config)%s", name, model, note)
    if kind == "ert":
        std = error.relative + error.absolute / survey.apparent_resistivity
    else:
        values = survey.traveltime_s if kind == "traveltime" else survey.gz_mgal
        std = error.relative * np.abs(values) + error.absolute
    bad = np.flatnonzero(~(std > 0))
    if bad.size:
        raise ConfigError(
            loaded.name,
            field,
            f"gives a zero standard deviation for {bad.size} data (first: datum {bad[0] + 1}); "
            "add an absolute error",
        )
    return np.asarray(std, dtype=float)


def check_sensors(mesh: ModelMesh, dataset: Dataset, config_name: str) -> None:
    """Sensors must lie in the core region (else a ConfigError on ``mesh.core`` of the
    config ``config_name``). Flat mesh: electrodes and geophones at or below z = 0,
    within the core's depth, on mesh nodes (:func:`build_mesh` puts nodes at them).
    Topography: on the ground surface (they define it)."""
    spec = mesh.spec
    source = dataset.survey.source
    xz = dataset.sensors
    outside = np.flatnonzero((xz[:, 0] < spec.x_min) | (xz[:, 0] > spec.x_max))
    if outside.size:
        i = outside[0]
        what = {"ert": "electrodes", "traveltime": "sensors", "gravity": "stations"}
        raise ConfigError(
            config_name,
            "mesh.core",
            f"{outside.size} {what[dataset.kind]} of {Path(source).name} lie outside the core "
            f"x = {spec.x_min:g} .. {spec.x_max:g} m (sensor {i + 1} at x = {xz[i, 0]:g} m); "
            f"widen mesh.core to x_min <= {xz[:, 0].min():g} and x_max >= {xz[:, 0].max():g}",
        )
    if dataset.kind == "gravity" or mesh.has_topography:
        return
    above = np.flatnonzero(xz[:, 1] > NODE_TOLERANCE_M)
    if above.size:
        i = above[0]
        raise DataError(
            source,
            None,
            f"sensor {i + 1} at z = {xz[i, 1]:g} m is above the flat ground surface z = 0; "
            "for absolute elevations or a surface that is not flat, set mesh.topography",
        )
    below = np.flatnonzero(xz[:, 1] < mesh.nodes_z[-1] - spec.depth - NODE_TOLERANCE_M)
    if below.size:
        i = below[0]
        raise ConfigError(
            config_name,
            "mesh.core.depth",
            f"sensor {i + 1} of {Path(source).name} at z = {xz[i, 1]:g} m lies below the core "
            f"(depth {spec.depth:g} m); deepen mesh.core.depth to >= {-xz[:, 1].min():g}",
        )
    for axis, nodes, label in ((0, mesh.nodes_x, "x"), (1, mesh.nodes_z, "z")):
        gap = np.abs(xz[:, axis, None] - nodes[None, :]).min(axis=1)
        off = np.flatnonzero(gap > NODE_TOLERANCE_M)
        if off.size:  # the mesh was built without this data set's sensors
            i = off[0]
            raise DataError(
                source,
                None,
                f"sensor {i + 1} at {label} = {xz[i, axis]:g} m is not on a mesh node "
                "(the mesh was not built from this data set)",
            )


# --- engines -----------------------------------------------------------------------
def sensor_tolerance(config: Config) -> float:
    """How far (m) a sensor may move onto the ground surface or a mesh node."""
    topo = config.mesh.topography
    return NODE_TOLERANCE_M if topo is None else topo.merge_distance


def build_simulation(
    kind: str, mesh: ModelMesh, survey: Any, options: Any, *, sensor_tolerance: float = 1e-3
) -> Any:
    """The engine's simulation for one modality (imports the engine lazily).

    ``sensor_tolerance`` (m): how far a sensor may be moved onto the shared
    ground surface (topography) or onto a mesh node (flat).
    """
    if kind == "ert":
        from .engines.ert import ErtSimulation

        return ErtSimulation(
            mesh,
            survey.electrodes,
            survey.abmn,
            singularity_removal=options.singularity_removal,
            threads=options.threads,
            geometric_factors=getattr(survey, "geometric_factor", None),
            sensor_tolerance=sensor_tolerance,
        )
    if kind == "traveltime":
        from .engines.traveltime import TraveltimeSimulation

        return TraveltimeSimulation(
            mesh,
            survey.sensors,
            survey.shot,
            survey.geophone,
            secondary_nodes=options.secondary_nodes,
            sensor_tolerance=sensor_tolerance,
        )
    from .engines.gravity import GravitySimulation

    return GravitySimulation(mesh, survey.stations)


def property_maps(
    config: Config,
    prop: str,
    blocks: dict[str, Block],
    transforms: dict[str, Transform],
    relations: dict[str, Any],
    n_joint: int,
) -> list[Any]:
    """Maps from the joint model to a property in physical units (hard coupling:
    a derived property adds its relation to the chain of its source)."""
    source = config.derived[prop].source if prop in config.derived else prop
    block = blocks[source]
    maps = [Select(n_joint, block.start, block.size), transforms[source]]
    if prop in config.derived:
        maps.append(RelationMap(relations[prop], block.size))
    return maps


def source_property(config: Config, prop: str) -> str:
    """The inverted property behind ``prop`` (itself if it is inverted)."""
    return config.derived[prop].source if prop in config.derived else prop


def box_mask(mesh: ModelMesh, box: Any) -> np.ndarray:
    x, z = mesh.cell_centers.T
    return (x >= box.x[0]) & (x <= box.x[1]) & (z >= box.z[0]) & (z <= box.z[1])


def petrophysical_cell_weights(loaded: LoadedConfig, index: int, mesh: ModelMesh) -> np.ndarray:
    """Per-cell weights of a petrophysical term: 1, boxes override, 0 outside ``region``."""
    term = loaded.config.coupling[index]
    weights = np.ones(mesh.n_cells)
    for j, box in enumerate(term.cell_weights):
        inside = box_mask(mesh, box)
        if not inside.any():
            raise ConfigError(
                loaded.name, f"coupling.{index}.cell_weights.{j}", "the box covers no cells"
            )
        weights[inside] = box.weight
    if term.region is not None:
        inside = box_mask(mesh, term.region)
        if not inside.any():
            raise ConfigError(loaded.name, f"coupling.{index}.region", "the region covers no cells")
        weights[~inside] = 0.0
    return weights


def build_couplings(
    loaded: LoadedConfig,
    mesh: ModelMesh,
    blocks: dict[str, Block],
    transforms: dict[str, Transform],
    sensed: set[str],
) -> tuple[list[Any], list[CrossGradient]]:
    """The coupling terms between sensed inverted properties, and the cross-gradients
    among them declared without ``weight`` (their weight is set by the schedule)."""
    terms, auto = [], []
    for i, term in enumerate(loaded.config.coupling):
        a, b = term.properties
        if a not in sensed or b not in sensed:
            continue
        if term.kind == "cross_gradient":
            terms.append(
                CrossGradient(
                    f"cross_gradient/{a}__{b}",
                    mesh,
                    blocks[a],
                    blocks[b],
                    weight=0.0 if term.weight is None else term.weight,
                    normalized=term.normalized,
                    core=mesh.core_mask,
                )
            )
            if term.weight is None:
                auto.append(terms[-1])
        else:
            terms.append(
                PetrophysicalCoupling(
                    f"petrophysical/{a}__{b}",
                    blocks[a],
                    blocks[b],
                    transform_a=transforms[a],
                    transform_b=transforms[b],
                    relation=build_relation(term.relation),
                    weight=term.weight,
                    cell_weights=petrophysical_cell_weights(loaded, i, mesh),
                )
            )
    return terms, auto


#: what computes each kind of data (for the progress lines)
ENGINES = {
    "ert": "pyGIMLi ERT",
    "traveltime": "pyGIMLi traveltime",
    "gravity": "pyGIMLi gravity (Won & Bevis)",
}


def setup_header(name: str, mesh: ModelMesh, datasets: dict[str, Dataset], config: Config) -> str:
    """The lines that open a run: the config, the mesh and each modality's data."""
    nx, nz = mesh.shape
    spec = config.mesh
    lines = [
        f"{name}: mesh {nx} x {nz} cells ({int(mesh.active.sum())} active; core cells "
        f"{spec.cell_size.dx:g} x {spec.cell_size.dz:g} m), {len(datasets)} "
        f"modalit{'y' if len(datasets) == 1 else 'ies'}:"
    ]
    width = max(len(k) for k in datasets)
    for key, ds in datasets.items():
        prop = config.modalities[key].property
        lines.append(f"  {key:<{width}} {len(ds.observed):6d} {ds.kind} data -> {prop}")
    return "\n".join(lines)


def build_problem(
    loaded: LoadedConfig, *, only: list[str] | None = None, biases: bool = True
) -> Problem:
    """Build mesh, operators and objective.

    Parameters
    ----------
    loaded : LoadedConfig
    only : list of str, optional
        Use only these modalities (and the couplings between properties they
        sense), e.g. for single-method inversions of the same data.
    biases : bool
        Append the bias parameters the modalities declare (``biases``) to the
        model vector (:func:`jointinv.bias.augment`); the conflict test places
        them itself.
    """
    config = loaded.config
    datasets = load_datasets(loaded)
    mesh = build_mesh(config, datasets, source=loaded.name)  # every data set shapes the surface
    block_list = build_blocks(config, mesh.n_cells)
    blocks = {b.name: b for b in block_list}
    transforms = build_transforms(config, mesh.n_cells)
    relations = {name: build_relation(d.relation) for name, d in config.derived.items()}
    m0, mref = starting_and_reference(config, mesh, block_list, transforms)
    if only is not None:
        datasets = {k: v for k, v in datasets.items() if k in only}
    tolerance = sensor_tolerance(config)
    for ds in datasets.values():
        check_sensors(mesh, ds, loaded.name)
    stage(setup_header(loaded.name, mesh, datasets, config))  # once the inputs are checked
    misfits, clocks = [], []
    for name, ds in datasets.items():
        modality = config.modalities[name]
        stage("%s: building the %s engine", name, ENGINES[ds.kind])
        sim = build_simulation(
            ds.kind, mesh, ds.survey, modality.options, sensor_tolerance=tolerance
        )
        maps = property_maps(config, modality.property, blocks, transforms, relations, len(m0))
        op = ForwardOperator(sim, Chain([*maps, sim.transfer]))
        target = modality.chi2_target or config.inversion.chi2_target
        misfits.append(DataMisfit(name, op, ds.observed, ds.std, chi2_target=target))
        clocks.append(sim.clock)
    reg_cfg = config.regularization
    regularization = Regularization(
        mesh,
        block_list,
        mref,
        alpha_s=reg_cfg.alpha_s,
        alpha_x=reg_cfg.alpha_x,
        alpha_z=reg_cfg.alpha_z,
        property_weights=reg_cfg.property_weights,
    )
    sensed = {source_property(config, config.modalities[n].property) for n in datasets}
    couplings, auto = build_couplings(loaded, mesh, blocks, transforms, sensed)
    objective = Objective(misfits, regularization, couplings)
    declared = {n: list(config.modalities[n].biases) for n in datasets}
    bias_blocks = []
    if biases:
        bias_blocks = declared_blocks({n: k for n, k in declared.items() if k}, datasets)
    if bias_blocks:
        objective = augment(objective, bias_blocks, len(m0))
        m0 = np.concatenate([m0, np.zeros(sum(b.size for b in bias_blocks))])
    return Problem(
        loaded,
        mesh,
        block_list,
        transforms,
        datasets,
        objective,
        clocks,
        m0,
        relations,
        bias_blocks=bias_blocks,
        auto_couplings=auto,
    )
