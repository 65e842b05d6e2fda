"""``jointinv init``: an annotated starting config for the user's data files.

Each file's kind is read from the file (:func:`jointinv.readers.data_kind`) and the
config is derived from the data:

* mesh: cells half the sensor spacing wide (square), the core from the sensors'
  extent plus one spacing either side and 0.3 × the longest ERT/refraction spread
  deep, padding wide enough for gravity (the criterion ``jointinv validate`` applies,
  :data:`jointinv.validate.SLAB_SHARE_SPREAD`); a surface that is not flat (or
  sensors off the cell grid) uses ``mesh.topography``;
* properties: resistivity from the geometric mean of ρa, velocity as a depth
  gradient from the first-arrival slopes, density contrast 0;
* cross-gradient couplings between every pair of sensed properties;
* every other key at its schema default, each with a one-line comment.

The config is validated (as ``jointinv validate`` does) before it is written.
"""

from __future__ import annotations

import itertools
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from . import readers
from .config import (
    ConflictConfig,
    DiagnosticsConfig,
    ErtOptions,
    InversionConfig,
    LoadedConfig,
    Padding,
    RegularizationConfig,
    TraveltimeOptions,
    parse_config,
)
from .data import ProfileLine
from .errors import UserInputError
from .outputs import atomic_path, check_output
from .overrides import show_value
from .problem import NODE_TOLERANCE_M
from .validate import SLAB_SHARE_SPREAD, slab_share, validate_config

#: the property each kind of data senses: name, units, transform
PROPERTIES = {
    "ert": ("resistivity", "ohm*m", "log"),
    "traveltime": ("velocity", "m/s", "log"),
    "gravity": ("density_contrast", "g/cm^3", "linear"),
}

#: core depth as a fraction of the longest ERT/refraction spread: the depth of
#: investigation of common ERT arrays is 0.15-0.25 × the spread and refracted rays
#: reach about 0.2-0.3 × their offset; a little deeper keeps the core's bottom from
#: shaping the model (the posterior diagnostics show the actual depth reached)
DEPTH_PER_SPREAD = 0.3

#: at most this many core cells (larger surveys get larger cells)
MAX_CORE_CELLS = 60_000


@dataclass
class Survey:
    """One data file as the config will use it."""

    path: Path
    kind: str
    name: str
    data: Any
    profile: ProfileLine | None = None

    @property
    def positions(self) -> np.ndarray:
        """Sensor positions (x along the profile, elevation; m)."""
        if self.kind == "ert":
            return self.data.electrodes
        if self.kind == "traveltime":
            return self.data.sensors
        return self.data.stations


@dataclass
class Mesh:
    """The mesh section to write (m), and why it is so."""

    x_min: float
    x_max: float
    depth: float
    dx: float
    n_pad_x: int = Padding().n_x
    n_pad_z: int = Padding().n_z
    factor: float = Padding().factor
    #: why the mesh follows the sensors' surface ("" when flat with sensors on nodes)
    topography: str = ""
    why: list[str] = field(default_factory=list)


# --- reading -------------------------------------------------------------------------
def read_surveys(paths: list[Path]) -> list[Survey]:
    """Every data file with its kind; modality names are the kinds (``ert``, ``ert_2``)."""
    if not paths:
        raise UserInputError("init: give at least one data file (.ohm/.dat, .sgt, .csv)")
    surveys: list[Survey] = []
    for path in paths:
        path = Path(path).expanduser().resolve()
        if not path.is_file():
            raise UserInputError(f"{path}: no such data file")
        kind = readers.data_kind(path)
        count = sum(s.kind == kind for s in surveys)
        name = kind if count == 0 else f"{kind}_{count + 1}"
        if kind == "ert":
            surveys.append(Survey(path, kind, name, readers.read_ert(path)))
        elif kind == "traveltime":
            surveys.append(Survey(path, kind, name, readers.read_traveltime(path)))
        else:
            surveys.append(Survey(path, kind, name, *_read_gravity(path)))
    return surveys


def _read_gravity(path: Path) -> tuple[Any, ProfileLine | None]:
    """The stations of a gravity file, and for stations in map coordinates the profile
    they were projected onto: the line along their principal axis, from one end of
    their projection to the other (None for stations given along the profile)."""
    try:
        return readers.read_gravity(path), None
    except readers.GravityProfileError as exc:
        if not exc.needed:
            raise
    xy = readers.read_gravity(path, ProfileLine((0.0, 0.0), (1.0, 0.0))).map_xy
    centre = xy.mean(axis=0)
    _, vectors = np.linalg.eigh(np.cov((xy - centre).T))
    axis = vectors[:, -1]
    axis = axis * np.sign(axis[np.argmax(np.abs(axis))])  # towards east or north
    along = (xy - centre) @ axis
    start, end = (np.round(centre + t * axis, 1) for t in (along.min(), along.max()))
    if np.allclose(start, end):
        raise UserInputError(f"{path}: every station is at one point; no profile through them")
    profile = ProfileLine(tuple(map(float, start)), tuple(map(float, end)))
    return readers.read_gravity(path, profile), profile


# --- mesh ------------------------------------------------------------------------------
def _spacing(x: np.ndarray) -> float:
    """Median distance (m) between neighbouring sensor positions along x."""
    gaps = np.diff(np.unique(np.round(x, 6)))
    gaps = gaps[gaps > NODE_TOLERANCE_M]
    return float(np.median(gaps)) if len(gaps) else 1.0


def _nice(value: float, *, up: bool = False) -> float:
    """``value`` rounded to the nearest (or, ``up``, the next) 1, 2, 2.5 or 5 × 10ⁿ."""
    power = 10.0 ** math.floor(math.log10(value))
    steps = [s * power for s in (1, 2, 2.5, 5, 10)]
    if up:
        return next(s for s in steps if s >= value * (1 - 1e-9))
    return min(steps, key=lambda s: abs(math.log(s / value)))


def design_mesh(surveys: list[Survey]) -> Mesh:
    """Core cells, extent and padding from the sensors (see the module docstring)."""
    lines = [s for s in surveys if s.kind != "gravity"]
    every = np.vstack([s.positions for s in surveys])
    if lines:
        spacing = min(_spacing(s.positions[:, 0]) for s in lines)
        spread = max(np.ptp(s.positions[:, 0]) for s in lines)
        dx = spacing / 2
        why = [
            f"half the sensor spacing of {spacing:g} m: two cells between neighbouring sensors "
            "resolve what the shortest spreads see, smaller cells add cells no datum constrains"
        ]
    else:
        spacing = _spacing(every[:, 0])
        spread = float(np.ptp(every[:, 0])) or 1.0
        dx = spacing
        why = [f"about the station spacing of {spacing:g} m"]
    depth_wanted = DEPTH_PER_SPREAD * spread
    width = np.ptp(every[:, 0]) + 2 * spacing
    if width * depth_wanted / dx**2 > MAX_CORE_CELLS:
        dx = _nice(math.sqrt(width * depth_wanted / MAX_CORE_CELLS), up=True)
        why.append(f"widened to keep the core below {MAX_CORE_CELLS:,} cells")
    xz = np.vstack([s.positions for s in lines]) if lines else np.empty((0, 2))
    flat = bool(np.abs(xz[:, 1]).max() <= NODE_TOLERANCE_M) if lines else True
    anchor = float(xz[:, 0].min()) if lines else 0.0
    on_nodes = bool(lines) and flat and _on_grid(xz[:, 0], anchor, dx)
    if not on_nodes:  # no sensor has to sit on a node: a round cell size
        dx, anchor = _nice(dx), 0.0
    dx = float(f"{dx:.6g}")
    x_min = anchor - math.ceil((anchor - every[:, 0].min() + spacing) / dx - 1e-9) * dx
    x_max = anchor + math.ceil((every[:, 0].max() + spacing - anchor) / dx - 1e-9) * dx
    depth = math.ceil(depth_wanted / dx - 1e-9) * dx
    mesh = Mesh(float(f"{x_min:.6g}"), float(f"{x_max:.6g}"), float(f"{depth:.6g}"), dx, why=why)
    if lines and not on_nodes:
        mesh.topography = (
            "the ground is not flat" if not flat else "the sensors are not on a regular grid"
        )
    gravity = [s for s in surveys if s.kind == "gravity"]
    if gravity:
        top = float(xz[:, 1].max()) if mesh.topography else 0.0
        stations = np.vstack([s.positions for s in gravity])
        mesh.n_pad_x = max(mesh.n_pad_x, _gravity_padding(mesh, stations, top))
    return mesh


def _on_grid(x: np.ndarray, anchor: float, dx: float) -> bool:
    """Every ``x`` lies on a node of the grid ``anchor + k·dx`` (within the tolerance)."""
    cells = (x - anchor) / dx
    return bool(np.abs(cells - np.round(cells)).max() * dx <= NODE_TOLERANCE_M)


def _gravity_padding(mesh: Mesh, stations: np.ndarray, top: float) -> int:
    """Padding cells either side so that a layer at the core's depth is seen along the
    stations with a share of its infinite-slab field that varies by at most half
    :data:`~jointinv.validate.SLAB_SHARE_SPREAD` (validate warns beyond it)."""
    depth = max(mesh.depth + float(stations[:, 1].max()) - top, 1e-3)
    for n in itertools.count(mesh.n_pad_x):
        reach = float((mesh.dx * mesh.factor ** np.arange(1, n + 1)).sum())  # as the mesh
        share = slab_share(stations, mesh.x_min - reach, mesh.x_max + reach, depth)
        if share.max() - share.min() <= SLAB_SHARE_SPREAD / 2:
            return n
    raise AssertionError("unreachable")  # pragma: no cover - the share tends to 1


# --- properties --------------------------------------------------------------------
def _round(value: float, digits: int = 2) -> float:
    return float(f"{value:.{digits}g}")


def resistivity_start(surveys: list[Survey]) -> tuple[float, tuple[float, float], str]:
    rhoa = np.concatenate([s.data.apparent_resistivity for s in surveys])
    start = _round(float(np.exp(np.mean(np.log(rhoa)))))
    low = 10.0 ** (math.floor(math.log10(rhoa.min())) - 1)
    high = 10.0 ** (math.ceil(math.log10(rhoa.max())) + 1)
    why = f"the geometric mean of rho_a ({rhoa.min():.3g} to {rhoa.max():.3g} ohm*m)"
    return start, (low, high), why


def velocity_start(surveys: list[Survey]) -> tuple[dict[str, float], tuple[float, float], str]:
    """Top: the apparent velocity (offset / time) of the two picks nearest each shot
    (the direct wave); bottom: the inverse slope of time against offset over the
    longest quarter of the offsets (the deepest refractor the spread sees)."""
    offsets, times, near = [], [], []
    for s in surveys:
        d = s.data
        offset = np.hypot(*(d.sensors[d.geophone] - d.sensors[d.shot]).T)
        for shot in np.unique(d.shot):
            picks = np.flatnonzero(d.shot == shot)
            nearest = picks[np.argsort(offset[picks])[:2]]
            near.append(offset[nearest] / d.traveltime_s[nearest])
        offsets.append(offset)
        times.append(d.traveltime_s)
    offset, t = np.concatenate(offsets), np.concatenate(times)
    top = float(np.median(np.concatenate(near)))
    far = offset >= np.quantile(offset, 0.75)
    slope = np.polyfit(offset[far], t[far], 1)[0] if np.ptp(offset[far]) > 0 else 0.0
    bottom = 1.0 / slope if slope > 0 else float(np.median(offset[far] / t[far]))
    top, bottom = _round(top), _round(max(bottom, top))
    bounds = (min(100.0, _round(top / 2)), max(6000.0, _round(2 * bottom)))
    why = "top: the direct wave (2 picks nearest each shot); bottom: 1/slope of the far picks"
    return {"top": top, "bottom": bottom}, bounds, why


# --- writing --------------------------------------------------------------------------
def _line(indent: int, key: str, value: Any, comment: str = "") -> str:
    """``key: value`` in YAML flow style, with a comment after it."""
    text = f"{' ' * indent}{key}: {show_value(value)}"
    return f"{text:<44} # {comment}" if comment else text


def _wrapped(text: str) -> list[str]:
    import textwrap

    return textwrap.wrap(text, 84)


def _above(indent: int, comment: str, key: str, value: Any) -> list[str]:
    """``key: value`` under a comment line of its own."""
    return [f"{' ' * indent}# {comment}", _line(indent, key, value)]


def config_text(surveys: list[Survey], config_path: Path) -> str:
    """The annotated YAML of a config for ``surveys`` written at ``config_path``."""
    mesh = design_mesh(surveys)
    gravity = any(s.kind == "gravity" for s in surveys)
    out = [
        f"# jointinv config for {', '.join(s.path.name for s in surveys)}, written by",
        "# 'jointinv init'. Coordinates: x along the profile (m), z up (m). Check it with",
        f"# 'jointinv validate {config_path.name}', then 'jointinv run {config_path.name}'.",
        "",
        "mesh:",
        f"  # core: the sensors and one sensor spacing either side; {DEPTH_PER_SPREAD:g} x the",
        "  # longest ERT/refraction spread deep (ERT arrays see 0.15-0.25 x their spread,",
        "  # refracted rays reach 0.2-0.3 x their offset; the diagnostics show the real depth)",
        _line(2, "core", {"x_min": mesh.x_min, "x_max": mesh.x_max, "depth": mesh.depth}, "m"),
        *[f"  # {line}" for line in _wrapped(f"cell size (m): square, {'; '.join(mesh.why)}")],
        _line(2, "cell_size", {"dx": mesh.dx, "dz": mesh.dx}),
        _line(2, "padding", {"n_x": mesh.n_pad_x, "n_z": mesh.n_pad_z, "factor": mesh.factor},
              "cells growing outwards" + (", wide enough for gravity" if gravity else "")),
    ]  # fmt: skip
    if mesh.topography:
        out += _above(2, f"{mesh.topography}: the ground surface runs through the electrodes "
                      "and geophones", "topography", {"source": "sensors"})  # fmt: skip
    out += _station_heights(surveys, mesh)
    out += ["", "properties:"]
    out += _properties(surveys)
    out += ["", "modalities:"]
    for s in surveys:
        out += _modality(s, config_path)
    sensed = list(dict.fromkeys(PROPERTIES[s.kind][0] for s in surveys))
    if len(sensed) > 1:
        out += [
            "",
            "# cross-gradients without 'weight': the weight follows beta and the models",
            "# (inversion.coupling_strength)",
            "coupling:",
        ]
        for a, b in itertools.combinations(sensed, 2):
            out.append(f"  - {show_value({'kind': 'cross_gradient', 'properties': [a, b]})}")
    out += ["", "# every key below is at its default", ""]
    out += _defaults(config_path)
    return "\n".join(out) + "\n"


def _station_heights(surveys: list[Survey], mesh: Mesh) -> list[str]:
    """A note when gravity stations lie far above a flat mesh's surface (z = 0): their
    file gives elevations above a datum, not heights above the ground."""
    if mesh.topography:
        return []
    stations = [s for s in surveys if s.kind == "gravity"]
    z = np.concatenate([s.positions[:, 1] for s in stations]) if stations else np.zeros(1)
    if z.max() <= max(mesh.dx, 0.05 * mesh.depth):
        return []
    return [
        f"  # note: the gravity stations lie {z.min():.4g} to {z.max():.4g} m above the mesh's",
        "  # ground surface (z = 0); give their heights above the ground in the data file if",
        "  # these are elevations above a datum",
    ]


def _properties(surveys: list[Survey]) -> list[str]:
    out = []
    for kind in ("ert", "traveltime", "gravity"):
        mine = [s for s in surveys if s.kind == kind]
        if not mine:
            continue
        name, units, transform = PROPERTIES[kind]
        if kind == "ert":
            start, bounds, why = resistivity_start(mine)
        elif kind == "traveltime":
            start, bounds, why = velocity_start(mine)
        else:
            start, bounds, why = 0.0, (-1.0, 1.0), "no contrast"
        spec = {"units": units, "transform": transform, "start": start, "bounds": list(bounds)}
        out += _above(2, f"start: {why}", name, spec)
    return out


def _modality(s: Survey, config_path: Path) -> list[str]:
    data = _data_path(s.path, config_path.parent)
    prop = PROPERTIES[s.kind][0]
    out = [
        f"  {s.name}:",
        _line(4, "kind", s.kind),
        _line(4, "data", data, "relative to this file"),
        _line(4, "property", prop),
    ]
    if s.kind == "ert":
        why = "3 % of rho_a; the file's err: from_file: true and file_unit"
        out.append(_line(4, "error", {"relative": 0.03}, why))
        out.append(_line(4, "options", ErtOptions().model_dump(), "pyGIMLi ERT solver"))
    elif s.kind == "traveltime":
        if s.data.error_s is not None:
            out.append(_line(4, "error", {"from_file": True}, "s; the file's err column"))
        else:
            out.append(_line(4, "error", {"absolute": 0.0005}, "s; a picking error of 0.5 ms"))
        options = TraveltimeOptions().model_dump()
        out.append(_line(4, "options", options, "Dijkstra graph: secondary nodes per edge"))
    else:
        if s.data.error_mgal is not None:
            out.append(_line(4, "error", {"from_file": True}, "mGal; the file's err column"))
        else:
            out.append(_line(4, "error", {"absolute": 0.02}, "mGal; a typical survey error"))
        if s.profile is not None:
            profile = {"start": list(s.profile.start), "end": list(s.profile.end)}
            out.append(_line(4, "options", {"profile": profile},
                             "map x, y (m): the stations' principal axis; check it"))  # fmt: skip
    return out


def _data_path(path: Path, folder: Path) -> str:
    """``path`` relative to ``folder`` (the config's), or absolute when the two share
    nothing but the root."""
    if os.path.commonpath([path, folder]) == path.anchor:
        return str(path)
    return os.path.relpath(path, folder)


#: one-line comments of the keys written at their defaults
COMMENTS = {
    "regularization.alpha_s": "smallness weight (1/m^2)",
    "regularization.alpha_x": "horizontal smoothness weight",
    "regularization.alpha_z": "vertical smoothness weight",
    "regularization.property_weights": "extra smoothing factor per property",
    "inversion.max_iterations": "Gauss-Newton iterations at most",
    "inversion.balancing.enabled": "hold each modality at its chi2 target",
    "inversion.balancing.initial_scaling": "scale the misfits alike at the start",
    "inversion.chi2_target": "chi2 every modality aims at",
    "inversion.chi2_band": "success: final chi2 within [low, high] x target",
    "inversion.coupling_strength": "kappa of couplings without 'weight'",
    "inversion.beta.initial": "beta0 (null: initial_ratio x the Hessians' ratio)",
    "inversion.beta.initial_ratio": "used when initial is null",
    "inversion.beta.cooling_factor": "beta divided by this per iteration",
    "inversion.beta.minimum": "beta never below this",
    "inversion.cg.max_iterations": "conjugate-gradient iterations per step",
    "inversion.cg.tolerance": "relative residual of the Gauss-Newton system",
    "inversion.max_line_search_halvings": "step halvings before giving up",
    "inversion.adaptive_damping": "Levenberg-Marquardt damping of the steps",
    "inversion.stagnation_tolerance": "stop when Phi falls by less than this",
    "inversion.seed": "random seed",
    "output.path": "HDF5 result, relative to this file",
    "diagnostics.enabled": "posterior std, resolution, coverage after the run",
    "diagnostics.rank": "eigenpairs kept",
    "diagnostics.oversampling": "extra vectors of the eigensolver",
    "diagnostics.power_iterations": "subspace iterations of the eigensolver",
    "diagnostics.probes": "random probes of the resolution",
    "diagnostics.doi_threshold": "depth of investigation: relative coverage",
    "conflict.alpha": "significance level of 'jointinv conflict-test'",
    "conflict.bootstrap": "bootstrap replicates (0: chi2 approximation)",
    "conflict.workers": "processes for the bootstrap",
    "conflict.seed": "seed of the bootstrap",
    "conflict.probes": "probes of the hat-matrix traces",
    "conflict.attribution": "test without each modality: linearised or refit",
    "conflict.bootstrap_mode": "bootstrap replicates: refit or linearised",
    "conflict.fallback_replicates": "linearised bootstrap when chi2 law fails",
    "conflict.biases": "bias parameters by modality",
}


def _defaults(config_path: Path) -> list[str]:
    sections = {
        "regularization": RegularizationConfig().model_dump(),
        "inversion": InversionConfig().model_dump(),
        "output": {"path": f"{config_path.stem}.h5"},
        "diagnostics": DiagnosticsConfig().model_dump(),
        "conflict": ConflictConfig().model_dump(),
    }
    out = []
    for section, values in sections.items():
        out.append(f"{section}:")
        out += _section_lines(section, values, 2)
    return out


def _section_lines(path: str, values: dict[str, Any], indent: int) -> list[str]:
    out = []
    for key, value in values.items():
        dotted = f"{path}.{key}"
        if isinstance(value, dict) and dotted not in COMMENTS:
            out.append(f"{' ' * indent}{key}:")
            out += _section_lines(dotted, value, indent + 2)
        else:
            value = list(value) if isinstance(value, tuple) else value
            out.append(_line(indent, key, value, COMMENTS[dotted]))
    return out


# --- the command -----------------------------------------------------------------------
def init_config(data: list[str | Path], output: str | Path, *, force: bool = False) -> str:
    """Write an annotated config for the data files ``data`` to ``output``; return the
    summary ``jointinv validate`` gives for it.

    Raises
    ------
    UserInputError
        One line: an output that exists (without ``force``), is not ``.yaml``/``.yml``
        or is one of the data files; a data file that cannot be read; a config that
        does not validate.
    """
    output = Path(output).expanduser().resolve()
    if output.suffix.lower() not in (".yaml", ".yml"):
        raise UserInputError(f"{output}: the config is YAML; give a name ending in .yaml")
    inputs = {Path(p).expanduser().resolve(): f"the data file {Path(p).name}" for p in data}
    check_output(output, inputs)
    if output.exists() and not force:
        raise UserInputError(f"{output}: exists; use --force to overwrite it")
    surveys = read_surveys([Path(p) for p in data])
    text = config_text(surveys, output)
    summary = validate_config(LoadedConfig(parse_config(text, output.name), output, text))
    with atomic_path(output) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return summary
