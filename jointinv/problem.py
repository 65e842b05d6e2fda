"""Assemble a joint inverse problem from a validated config.

This is where the config meets the engines: it reads the data files, builds
the model mesh, one forward operator per modality (engine ∘ transfer ∘
transform ∘ select), and the named objective terms.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from . import readers
from .config import Config, DepthGradient, ErrorModel, LoadedConfig, build_relation
from .data import ErtData, GravityData, TraveltimeData
from .errors import ConfigError, DataError
from .maps import Chain, Select, Transform
from .mesh import MeshSpec, ModelMesh
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

    @property
    def config(self) -> Config:
        return self.loaded.config

    def physical(self, m: np.ndarray) -> dict[str, np.ndarray]:
        """Every property in physical units: the inverted ones, then the derived ones."""
        out = {b.name: self.transforms[b.name](m[b.slice]) for b in self.blocks}
        for name, derived in self.config.derived.items():
            out[name] = self.relations[name].value(out[derived.source])
        return out


# --- mesh and model vector ---------------------------------------------------------
def build_mesh(config: Config) -> ModelMesh:
    c = config.mesh
    spec = MeshSpec(
        x_min=c.core.x_min,
        x_max=c.core.x_max,
        depth=c.core.depth,
        dx=c.cell_size.dx,
        dz=c.cell_size.dz,
        n_pad_x=c.padding.n_x,
        n_pad_z=c.padding.n_z,
        pad_factor=c.padding.factor,
    )
    return ModelMesh(spec)


def build_blocks(config: Config, n_cells: int) -> list[Block]:
    return [Block(name, i * n_cells, n_cells) for i, name in enumerate(config.properties)]


def build_transforms(config: Config, n_cells: int) -> dict[str, Transform]:
    out = {}
    for name, prop in config.properties.items():
        lo, hi = prop.bounds if prop.bounds else (None, None)
        out[name] = Transform(prop.transform, n_cells, lower=lo, upper=hi)
    return out


def property_values(spec: float | DepthGradient, mesh: ModelMesh) -> np.ndarray:
    """A constant or a depth gradient (top at z = 0, bottom at the core's base) per cell."""
    if not isinstance(spec, DepthGradient):
        return np.full(mesh.n_cells, float(spec))
    depth = np.clip(-mesh.cell_centers[:, 1] / mesh.spec.depth, 0.0, 1.0)
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
_READERS = {
    "ert": readers.read_ert,
    "traveltime": readers.read_traveltime,
    "gravity": readers.read_gravity_csv,
}


def load_datasets(loaded: LoadedConfig) -> dict[str, Dataset]:
    """Read every data file and apply the error models (no engine is imported)."""
    out = {}
    for name, modality in loaded.config.modalities.items():
        path = loaded.resolve(modality.data)
        if not path.is_file():
            raise ConfigError(loaded.name, f"modalities.{name}.data", f"file not found: {path}")
        survey = _READERS[modality.kind](path)
        observed = _observed(modality.kind, survey)
        std = _std(loaded, name, modality.kind, survey, modality.error)
        out[name] = Dataset(name, modality.kind, survey, observed, std)
    return out


def _observed(kind: str, survey: Any) -> np.ndarray:
    if kind == "ert":
        rhoa = survey.apparent_resistivity
        bad = np.flatnonzero(rhoa <= 0)
        if bad.size:
            i = bad[0]
            raise DataError(
                survey.source,
                None,
                f"datum {i + 1}: apparent resistivity {rhoa[i]:g} ohm*m is not positive; "
                f"ERT data are inverted as ln(rhoa) ({bad.size} such data; remove them)",
            )
        return np.log(rhoa)
    if kind == "traveltime":
        return survey.traveltime_s.astype(float)
    return survey.gz_mgal.astype(float)


def _file_errors(kind: str, survey: Any) -> np.ndarray | None:
    if kind == "ert":
        return survey.relative_error
    if kind == "traveltime":
        return survey.error_s
    return survey.error_mgal


def _std(loaded: LoadedConfig, name: str, kind: str, survey: Any, error: ErrorModel) -> np.ndarray:
    field = f"modalities.{name}.error"
    if error.from_file:
        std = _file_errors(kind, survey)
        if std is None:
            raise ConfigError(
                loaded.name, f"{field}.from_file", f"{Path(survey.source).name} has no err column"
            )
        return np.asarray(std, dtype=float)
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


def check_sensors(mesh: ModelMesh, dataset: Dataset, source: str) -> None:
    """Sensors must lie in the core region; electrodes and geophones on mesh nodes."""
    spec = mesh.spec
    xz = dataset.sensors
    outside = np.flatnonzero((xz[:, 0] < spec.x_min) | (xz[:, 0] > spec.x_max))
    if outside.size:
        i = outside[0]
        raise DataError(
            source,
            None,
            f"sensor {i + 1} at x = {xz[i, 0]:g} m lies outside the mesh core "
            f"[{spec.x_min:g}, {spec.x_max:g}] m; widen mesh.core",
        )
    if dataset.kind == "gravity":
        return
    for axis, nodes, label in ((0, mesh.nodes_x, "x"), (1, mesh.nodes_z, "z")):
        gap = np.abs(xz[:, axis, None] - nodes[None, :]).min(axis=1)
        off = np.flatnonzero(gap > NODE_TOLERANCE_M)
        if off.size:
            i = off[0]
            raise DataError(
                source,
                None,
                f"sensor {i + 1} at {label} = {xz[i, axis]:g} m is not on a mesh node; "
                "choose mesh.cell_size so that every sensor falls on a node",
            )


# --- engines -----------------------------------------------------------------------
def build_simulation(kind: str, mesh: ModelMesh, survey: Any, options: Any) -> Any:
    """The engine's simulation for one modality (imports the engine lazily)."""
    if kind == "ert":
        from .engines.ert import ErtSimulation

        return ErtSimulation(
            mesh,
            survey.electrodes,
            survey.abmn,
            singularity_removal=options.singularity_removal,
            threads=options.threads,
        )
    if kind == "traveltime":
        from .engines.traveltime import TraveltimeSimulation

        return TraveltimeSimulation(
            mesh,
            survey.sensors,
            survey.shot,
            survey.geophone,
            secondary_nodes=options.secondary_nodes,
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
) -> list[Any]:
    """The coupling terms between sensed inverted properties."""
    terms = []
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
                    weight=term.weight,
                    normalized=term.normalized,
                )
            )
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
    return terms


def build_problem(loaded: LoadedConfig, *, only: list[str] | None = None) -> Problem:
    """Build mesh, operators and objective.

    Parameters
    ----------
    loaded : LoadedConfig
    only : list of str, optional
        Use only these modalities (and the couplings between properties they
        sense), e.g. for single-method inversions of the same data.
    """
    config = loaded.config
    mesh = build_mesh(config)
    block_list = build_blocks(config, mesh.n_cells)
    blocks = {b.name: b for b in block_list}
    transforms = build_transforms(config, mesh.n_cells)
    relations = {name: build_relation(d.relation) for name, d in config.derived.items()}
    m0, mref = starting_and_reference(config, mesh, block_list, transforms)
    datasets = load_datasets(loaded)
    if only is not None:
        datasets = {k: v for k, v in datasets.items() if k in only}
    misfits, clocks = [], []
    for name, ds in datasets.items():
        modality = config.modalities[name]
        check_sensors(mesh, ds, ds.survey.source)
        sim = build_simulation(ds.kind, mesh, ds.survey, modality.options)
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
    couplings = build_couplings(loaded, mesh, blocks, transforms, sensed)
    objective = Objective(misfits, regularization, couplings)
    return Problem(
        loaded, mesh, block_list, transforms, datasets, objective, clocks, m0, relations
    )
