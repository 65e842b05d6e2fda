"""The YAML config: schema, loading and cross-field checks.

The schema is a set of pydantic models that forbid unknown keys. Every error
is turned into one line ``<file>: <field.path>: <what is wrong>``. Paths inside
the config (data files, output) are relative to the config file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from .errors import ConfigError

PositiveFloat = Annotated[float, Field(gt=0)]
NonNegativeFloat = Annotated[float, Field(ge=0)]


class _Strict(BaseModel):
    # allow_inf_nan: every float of the schema must be finite (no .inf, .nan, 1e400, "inf")
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


# --- mesh --------------------------------------------------------------------
class CoreRegion(_Strict):
    """Core region of uniform cells (m), z up. Flat: the surface is z = 0.
    With topography z is the elevation and ``depth`` counts from the lowest
    point of the surface."""

    x_min: float = Field(description="Left end of the core along the profile (m).")
    x_max: float = Field(description="Right end of the core along the profile (m).")
    depth: PositiveFloat = Field(
        description="Depth of the core below the surface "
        "(m; with topography: below its lowest point)."
    )

    @model_validator(mode="after")
    def _ordered(self) -> CoreRegion:
        if self.x_max <= self.x_min:
            raise ValueError("x_max must be greater than x_min")
        return self


class CellSize(_Strict):
    dx: PositiveFloat = Field(
        description="Core cell width (m). Flat surface: when an electrode or geophone is "
        "off this grid, the core is divided at the sensors instead, into cells as close "
        "to dx as their spacing allows."
    )
    dz: PositiveFloat = Field(
        description="Core cell height (m); buried sensors off this grid divide it likewise."
    )


class Padding(_Strict):
    n_x: Annotated[int, Field(ge=0)] = Field(12, description="Padding cells left and right.")
    n_z: Annotated[int, Field(ge=0)] = Field(12, description="Padding cells at the bottom.")
    factor: Annotated[float, Field(ge=1.0, le=3.0)] = Field(
        1.4, description="Growth factor of consecutive padding cells."
    )


class Topography(_Strict):
    """A ground surface that is not flat: cells above it are inactive, and the
    ERT and traveltime engines work on a triangle mesh that follows it."""

    source: Literal["sensors"] = Field(
        "sensors",
        description="'sensors': the polyline through every electrode and geophone "
        "(x, elevation as in the data files).",
    )
    merge_distance: PositiveFloat = Field(
        0.25,
        description="Sensors of different data sets closer than this (m) are one stake: "
        "they share one surface point (their mean position).",
    )


class MeshConfig(_Strict):
    core: CoreRegion
    cell_size: CellSize
    padding: Padding = Padding()
    topography: Topography | None = Field(
        None, description="Follow the ground surface (default: flat surface at z = 0)."
    )

    def spec(self) -> Any:
        """The :class:`jointinv.mesh.MeshSpec` of this section."""
        from .mesh import MeshSpec

        return MeshSpec(
            x_min=self.core.x_min,
            x_max=self.core.x_max,
            depth=self.core.depth,
            dx=self.cell_size.dx,
            dz=self.cell_size.dz,
            n_pad_x=self.padding.n_x,
            n_pad_z=self.padding.n_z,
            pad_factor=self.padding.factor,
        )


# --- properties --------------------------------------------------------------
class DepthGradient(_Strict):
    """A value that changes linearly with depth: ``top`` at the surface,
    ``bottom`` at the bottom of the core region, constant below (physical units).
    The usual starting model for refraction traveltimes."""

    top: float
    bottom: float

    def values(self) -> tuple[float, float]:
        return (self.top, self.bottom)


class PropertyConfig(_Strict):
    """One inverted physical property (the key is its name)."""

    units: str = Field(description="Physical units, e.g. 'ohm*m', 'm/s', 'g/cm^3'.")
    transform: Literal["log", "linear"] = Field(
        description="Inversion parameter: natural log of the property, or the property itself."
    )
    start: float | DepthGradient = Field(
        description="Starting value (physical units), or {top, bottom} for a depth gradient."
    )
    bounds: tuple[float, float] | None = Field(
        None, description="Lower and upper bound, physical units (bounded transform)."
    )
    reference: float | DepthGradient | None = Field(
        None, description="Reference model for the smallness term (default: start)."
    )

    @model_validator(mode="after")
    def _consistent(self) -> PropertyConfig:
        for name, spec in (("start", self.start), ("reference", self.reference)):
            values = spec.values() if isinstance(spec, DepthGradient) else (spec,)
            for value in values:
                _check_value(name, value, self.transform, self.bounds)
        if self.bounds is not None:
            lo, hi = self.bounds
            if self.transform == "log" and lo < 0:
                raise ValueError("bounds must be >= 0 with a log transform")
        return self


def _check_value(
    name: str, value: float | None, transform: str, bounds: tuple[float, float] | None
) -> None:
    if value is None:
        return
    if transform == "log" and value <= 0:
        raise ValueError(f"{name} must be > 0 with a log transform")
    if bounds is not None:
        lo, hi = bounds
        if lo >= hi:
            raise ValueError("bounds must be [lower, upper] with lower < upper")
        if not lo < value < hi:
            raise ValueError(f"{name} {value:g} lies outside bounds [{lo:g}, {hi:g}]")


# --- modalities --------------------------------------------------------------
class ErrorModel(_Strict):
    """Data standard deviation: ``relative·|d| + absolute``, or the file's column.

    For ERT the data are ln(ρa); ``relative`` is a fraction of ρa and
    ``absolute`` is in Ω·m, so std(ln ρa) = relative + absolute/ρa.

    With ``from_file: true`` the file's ``err`` column is used when the file
    has one (its values must then be positive); a file without one falls back
    to ``relative``/``absolute`` if they are given (e.g. ``{from_file: true,
    absolute: 0.0005}`` for traveltimes), else it is an error. The unit of an
    ERT ``err`` column is never guessed: ``file_unit`` states it (``fraction``:
    0.02 = 2 % of ρa; ``percent``: 2 = 2 %), unless the token line says
    ``err/%``. Traveltime ``err`` is in s (``err/ms``: ms), gravity ``err`` in mGal.
    """

    relative: NonNegativeFloat = Field(0.0, description="Fraction of the datum.")
    absolute: NonNegativeFloat = Field(0.0, description="Data units (Ω·m, s, mGal).")
    from_file: bool = Field(
        False,
        description="Use the data file's err column (relative/absolute: fallback when the "
        "file has none).",
    )
    file_unit: Literal["fraction", "percent"] | None = Field(
        None,
        description="Unit of an ERT file's bare 'err' column (required with from_file; "
        "'err/%' in the file declares percent).",
    )

    @model_validator(mode="after")
    def _something(self) -> ErrorModel:
        if not self.from_file and self.relative == 0 and self.absolute == 0:
            raise ValueError("give relative and/or absolute > 0, or from_file: true")
        if self.file_unit is not None and not self.from_file:
            raise ValueError("file_unit applies only with from_file: true")
        return self


class ErtOptions(_Strict):
    singularity_removal: bool = Field(True, description="pyGIMLi's singularity removal.")
    threads: Annotated[int, Field(ge=1)] = Field(2, description="Threads of the ERT core.")


class TraveltimeOptions(_Strict):
    secondary_nodes: Annotated[int, Field(ge=0, le=10)] = Field(
        4,
        description="Secondary nodes per cell edge for the Dijkstra graph "
        "(4: head waves within 0.5 % on 1 m cells; cost grows about as n²).",
    )


class GravityProfile(_Strict):
    """The profile line onto which gravity stations in map coordinates are projected.

    ``x`` along the profile is the distance (m) from ``start`` towards ``end``.
    """

    start: tuple[float, float] = Field(description="Map x, y (m) of the profile's start.")
    end: tuple[float, float] = Field(description="Map x, y (m) of the profile's end.")
    max_offset: PositiveFloat | None = Field(
        None, description="Drop stations farther than this from the line (m)."
    )

    @model_validator(mode="after")
    def _distinct(self) -> GravityProfile:
        if self.start == self.end:
            raise ValueError("start and end must be different points")
        return self


class GravityOptions(_Strict):
    profile: GravityProfile | None = Field(
        None,
        description="Profile line for stations given in map coordinates (x, y, z CSV, "
        "UBC .obs/.grv); required for those files.",
    )


BiasKind = Literal["offset", "trend", "loop_offset", "static", "shift", "electrode"]


class _ModalityBase(_Strict):
    data: str = Field(description="Data file, relative to the config file.")
    property: str = Field(description="Name of the property this method senses.")
    error: ErrorModel
    chi2_target: PositiveFloat | None = Field(
        None, description="χ² target of this modality (default: inversion.chi2_target)."
    )
    biases: list[BiasKind] = Field(
        default_factory=list,
        description="Bias parameters estimated with the model in 'jointinv run' and written "
        "to /biases with their σ: gravity offset, trend, loop_offset; traveltime static; "
        "ert shift, electrode.",
    )


class ErtModality(_ModalityBase):
    """ERT: log apparent resistivity from a pyGIMLi unified data file (.ohm/.dat)."""

    kind: Literal["ert"]
    options: ErtOptions = ErtOptions()


class TraveltimeModality(_ModalityBase):
    """First-arrival traveltime (s) from a pyGIMLi .sgt file."""

    kind: Literal["traveltime"]
    options: TraveltimeOptions = TraveltimeOptions()


class GravityModality(_ModalityBase):
    """Vertical gravity gz (mGal, positive for excess mass) from a CSV with columns
    x,z,gz[,err] or x,y,z,gz[,err], or a UBC-GIF .obs/.grv file (E N Elev gz std)."""

    kind: Literal["gravity"]
    options: GravityOptions = GravityOptions()


Modality = Annotated[
    ErtModality | TraveltimeModality | GravityModality, Field(discriminator="kind")
]


# --- rock physics --------------------------------------------------------------
class ArchieRelation(_Strict):
    """ρ = a·ρ_w·φ^(−m)·S^(−n): resistivity (Ω·m) from porosity."""

    kind: Literal["archie"]
    fluid_resistivity: PositiveFloat = Field(20.0, description="ρ_w, pore fluid (Ω·m).")
    a: Annotated[float, Field(gt=0, le=5)] = 1.0
    m: Annotated[float, Field(ge=1, le=5)] = Field(2.0, description="Cementation exponent.")
    n: Annotated[float, Field(ge=1, le=5)] = Field(2.0, description="Saturation exponent.")
    saturation: Annotated[float, Field(gt=0, le=1)] = Field(1.0, description="S_w (fraction).")


class WyllieRelation(_Strict):
    """1/v = φ/v_f + (1−φ)/v_m: velocity (m/s) from porosity."""

    kind: Literal["wyllie"]
    v_matrix: Annotated[float, Field(gt=0, le=10000)] = Field(5500.0, description="m/s")
    v_fluid: Annotated[float, Field(gt=0, le=10000)] = Field(1500.0, description="m/s")


class GardnerRelation(_Strict):
    """ρ_b = a·v^b − reference: density (g/cm³) from velocity (m/s)."""

    kind: Literal["gardner"]
    a: PositiveFloat = 0.31
    b: Annotated[float, Field(gt=0, lt=1)] = 0.25
    reference: NonNegativeFloat = Field(0.0, description="Subtracted density (g/cm³).")


class DensityMixingRelation(_Strict):
    """ρ_b = φ·ρ_f + (1−φ)·ρ_m − reference: density (contrast, g/cm³) from porosity."""

    kind: Literal["density_mixing"]
    rho_matrix: Annotated[float, Field(gt=0, le=10)] = Field(2.65, description="g/cm³")
    rho_fluid: Annotated[float, Field(ge=0, le=10)] = Field(1.0, description="g/cm³")
    reference: NonNegativeFloat = Field(0.0, description="Subtracted density (g/cm³).")


class LinearRelation(_Strict):
    """t(y) = a + b·t(x), t = log10 or identity."""

    kind: Literal["linear"]
    a: float = 0.0
    b: float = 1.0
    input_log: bool = True
    output_log: bool = True


RelationConfig = Annotated[
    ArchieRelation | WyllieRelation | GardnerRelation | DensityMixingRelation | LinearRelation,
    Field(discriminator="kind"),
]


def build_relation(config: RelationConfig) -> Any:
    """The :mod:`jointinv.petrophysics` relation a config entry describes."""
    from . import petrophysics

    params = config.model_dump(exclude={"kind"})
    return petrophysics.RELATIONS[config.kind](**params)


class DerivedProperty(_Strict):
    """A property computed from an inverted one through a relation (hard coupling)."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, populate_by_name=True)
    source: str = Field(alias="from", description="The inverted property it is derived from.")
    relation: RelationConfig
    units: str = Field(description="Physical units of the derived property.")


# --- coupling, regularization, inversion, output ----------------------------
class CrossGradientCoupling(_Strict):
    kind: Literal["cross_gradient"]
    properties: tuple[str, str] = Field(description="The two coupled properties.")
    weight: PositiveFloat | None = Field(
        None,
        description="γ, the weight of the term; default: derived from β, the regularization "
        "and the current models at every iteration (inversion.coupling_strength).",
    )
    normalized: bool = Field(
        False, description="Scale gradients by their magnitude (insensitive to contrast)."
    )


class Box(_Strict):
    """A rectangle of the section (m, z up)."""

    x: tuple[float, float]
    z: tuple[float, float]

    @model_validator(mode="after")
    def _ordered(self) -> Box:
        if self.x[0] >= self.x[1] or self.z[0] >= self.z[1]:
            raise ValueError("x and z must be [min, max] with min < max")
        return self


class WeightedBox(Box):
    weight: NonNegativeFloat


class PetrophysicalCoupling(_Strict):
    """λ/2·‖t(p_b) − t(f(p_a))‖² over the cells in ``region`` (t = ln for log properties)."""

    kind: Literal["petrophysical"]
    properties: tuple[str, str] = Field(description="[a, b] with b = f(a).")
    relation: RelationConfig
    weight: PositiveFloat = Field(description="λ, the weight of the term.")
    region: Box | None = Field(None, description="Where the relation holds (default: everywhere).")
    cell_weights: list[WeightedBox] = Field(
        default_factory=list, description="Per-cell weights by box (default 1; later boxes win)."
    )


Coupling = Annotated[CrossGradientCoupling | PetrophysicalCoupling, Field(discriminator="kind")]


class RegularizationConfig(_Strict):
    """Σ_p w_p (α_s‖m_p − m_ref‖² + α_x‖∂x m_p‖² + α_z‖∂z m_p‖²), area-weighted."""

    alpha_s: NonNegativeFloat = Field(1e-3, description="Smallness weight (1/m²).")
    alpha_x: NonNegativeFloat = Field(1.0, description="Horizontal smoothness weight.")
    alpha_z: NonNegativeFloat = Field(1.0, description="Vertical smoothness weight.")
    property_weights: dict[str, PositiveFloat] = Field(
        default_factory=dict, description="Extra factor per property (default 1)."
    )


class BetaSchedule(_Strict):
    initial: PositiveFloat | None = Field(
        None, description="β0; default: initial_ratio × λmax(data Hessian)/λmax(reg. Hessian)."
    )
    initial_ratio: PositiveFloat = Field(1.0, description="Used when initial is not given.")
    cooling_factor: Annotated[float, Field(ge=1.0)] = Field(
        2.0, description="β is divided by this after each iteration."
    )
    minimum: NonNegativeFloat = Field(0.0, description="β never goes below this.")


class CgSettings(_Strict):
    max_iterations: Annotated[int, Field(ge=1)] = 50
    tolerance: Annotated[float, Field(gt=0, lt=1)] = Field(
        1e-2, description="Relative residual of the Gauss-Newton system."
    )


class BalancingConfig(_Strict):
    """Per-modality weights, so that every modality lands on its own χ² target
    (docs/choosing.md: "How a run reaches its targets")."""

    enabled: bool = Field(
        True,
        description="Hold a modality's trade-off once it reaches its χ² target, relax it "
        "below the band, while the others catch up.",
    )
    initial_scaling: bool = Field(
        False,
        description="Start with each misfit scaled to the same largest GN curvature (off: "
        "β0 is set by the stiffest data set and the others start smoother, which keeps "
        "the first nonlinear steps short of overshooting).",
    )


class InversionConfig(_Strict):
    max_iterations: Annotated[int, Field(ge=0)] = 20
    balancing: BalancingConfig = BalancingConfig()
    chi2_target: PositiveFloat = 1.0
    chi2_band: tuple[PositiveFloat, PositiveFloat] = Field(
        (0.8, 1.2),
        description="The run succeeds when every modality's final χ² lies within [low, high] "
        "× its target; the schedule holds each modality at its target and relaxes one "
        "below low × target (reported as over-fitting when it stays there).",
    )
    coupling_strength: PositiveFloat = Field(
        3.0,
        description="κ of the default weight of couplings declared without 'weight': the "
        "smoothness a cross-gradient adds along the other property's structure, relative to "
        "the regularization's (docs/choosing.md: Choosing the coupling weight).",
    )
    beta: BetaSchedule = BetaSchedule()
    cg: CgSettings = CgSettings()
    max_line_search_halvings: Annotated[int, Field(ge=0, le=30)] = 8
    adaptive_damping: bool = Field(
        True,
        description="Levenberg-Marquardt damping of the Gauss-Newton step, raised after a "
        "step that gained less than a quarter of its predicted decrease and lowered after "
        "one that gained more than three quarters (docs/choosing.md: How a run reaches its "
        "targets).",
    )
    stagnation_tolerance: Annotated[float, Field(ge=0, lt=1)] = Field(
        1e-3, description="Stop when Φ decreases by less than this fraction in one iteration."
    )
    seed: Annotated[int, Field(ge=0)] = Field(
        0, description="Random seed (power iterations, any sampling)."
    )

    @model_validator(mode="after")
    def _band(self) -> InversionConfig:
        lo, hi = self.chi2_band
        if not lo <= 1.0 <= hi:
            raise ValueError("chi2_band must be [low, high] with low <= 1 <= high")
        return self


class OutputConfig(_Strict):
    path: str = Field("result.h5", description="HDF5 result, relative to the config file.")


class DiagnosticsConfig(_Strict):
    """Posterior diagnostics at the final model (docs/diagnostics.md)."""

    enabled: bool = Field(True, description="Compute them after the inversion.")
    rank: Annotated[int, Field(ge=1)] = Field(
        400, description="Eigenpairs kept of each prior-preconditioned Hessian."
    )
    oversampling: Annotated[int, Field(ge=0)] = Field(
        10, description="Extra random vectors of the randomized eigensolver."
    )
    power_iterations: Annotated[int, Field(ge=0, le=10)] = Field(
        1, description="Subspace iterations of the randomized eigensolver."
    )
    probes: Annotated[int, Field(ge=0)] = Field(
        20, description="Random probes of the resolution diagonal (0: low-rank only)."
    )
    doi_threshold: Annotated[float, Field(gt=0, lt=1)] = Field(
        0.005, description="Depth of investigation: coverage >= this × its core maximum."
    )


class ConflictConfig(_Strict):
    """``jointinv conflict-test`` (docs/conflict.md)."""

    alpha: Annotated[float, Field(gt=0, lt=1)] = Field(0.05, description="Significance level.")
    bootstrap: Annotated[int, Field(ge=0)] = Field(
        0, description="Parametric-bootstrap replicates (0: the fast χ² approximation only)."
    )
    workers: Annotated[int, Field(ge=1)] = Field(1, description="Processes for the bootstrap.")
    seed: Annotated[int, Field(ge=0)] = Field(
        0, description="Seed of the bootstrap noise and of the trace probes."
    )
    probes: Annotated[int, Field(ge=1)] = Field(
        20, description="Hutchinson probes of the hat-matrix traces (large problems)."
    )
    attribution: Literal["linearised", "refit"] = Field(
        "linearised",
        description="The test without each modality: its coupled fit as the Gauss-Newton "
        "quadratic model about the coupled solution (one linear solve), or refitted "
        "(one more nonlinear fit per modality).",
    )
    bootstrap_mode: Literal["refit", "linearised"] = Field(
        "refit",
        description="Bootstrap replicates refitted (the reference), or every hypothesis "
        "linearised about its solution (Jacobians frozen; one linear solve per fit).",
    )
    fallback_replicates: Annotated[int, Field(ge=0)] = Field(
        99,
        description="Replicates of the linearised bootstrap that gives the p-value when "
        "the chi2(nu) law is unreliable and bootstrap is 0 (0: none).",
    )
    biases: dict[str, list[BiasKind]] = Field(
        default_factory=dict,
        description="Bias parameters by modality: gravity [offset, trend, loop_offset], "
        "traveltime [static], ert [shift, electrode].",
    )


class Config(_Strict):
    """A jointinv run."""

    mesh: MeshConfig
    properties: dict[str, PropertyConfig] = Field(min_length=1)
    derived: dict[str, DerivedProperty] = Field(default_factory=dict)
    modalities: dict[str, Modality] = Field(min_length=1)
    coupling: list[Coupling] = Field(default_factory=list)
    regularization: RegularizationConfig = RegularizationConfig()
    inversion: InversionConfig = InversionConfig()
    output: OutputConfig = OutputConfig()
    diagnostics: DiagnosticsConfig = DiagnosticsConfig()
    conflict: ConflictConfig = ConflictConfig()


# --- loading -------------------------------------------------------------------
class LoadedConfig:
    """A validated config with the file it came from.

    Attributes
    ----------
    config : Config
    path : Path
        The config file (absolute).
    text : str
        The YAML text, as read (stored in the result for provenance).
    """

    def __init__(self, config: Config, path: Path, text: str) -> None:
        self.config = config
        self.path = path
        self.text = text

    @property
    def name(self) -> str:
        return self.path.name

    def resolve(self, relative: str) -> Path:
        """A path from the config, relative to the config file's folder."""
        p = Path(relative).expanduser()
        return p if p.is_absolute() else (self.path.parent / p).resolve()


#: the name a config given from Python (a dict or a Config) goes by in messages
PYTHON_CONFIG_NAME = "<python config>"


def as_loaded(config: str | Path | LoadedConfig | Config | dict[str, Any]) -> LoadedConfig:
    """A :class:`LoadedConfig` from a config file, a mapping or a :class:`Config`.

    A mapping or a Config has no file: its relative paths (data, ``output.path``)
    are taken from the current working directory, and its YAML text (stored in
    the result for provenance) is written from it.
    """
    if isinstance(config, LoadedConfig):
        return config
    if isinstance(config, (str, Path)):
        return load_config(config)
    if isinstance(config, Config):
        raw = config.model_dump(mode="json", by_alias=True, exclude_unset=True)
        validated = config
    elif isinstance(config, dict):
        raw = config
        validated = from_mapping(config, PYTHON_CONFIG_NAME)
    else:
        raise TypeError(f"config must be a path, a dict or a Config, not {type(config).__name__}")
    text = yaml.safe_dump(raw, sort_keys=False, allow_unicode=True)
    return LoadedConfig(validated, Path.cwd() / PYTHON_CONFIG_NAME, text)


def load_config(path: str | Path) -> LoadedConfig:
    """Read, parse and validate a config file.

    Raises
    ------
    ConfigError
        With the file name and field path of the first problems, on one line.
    """
    path = Path(path).expanduser().resolve()
    text, raw = read_yaml(path)
    if not isinstance(raw, dict):
        raise ConfigError(path.name, None, "the config must be a mapping of sections")
    return LoadedConfig(from_mapping(raw, path.name), path, text)


def read_yaml(path: Path) -> tuple[str, Any]:
    """The text of a YAML file (config or sweep) and its content, read with the
    checks of :func:`parse_yaml`; a ConfigError names the file."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(path.name, None, f"config file not found: {path}") from None
    except OSError as exc:
        raise ConfigError(path.name, None, f"cannot read config: {exc.strerror}") from None
    text = _decoded(raw, path.name)
    return text, parse_yaml(text, path.name)


def _decoded(raw: bytes, source: str) -> str:
    """The text of a config file: UTF-8 (a BOM is dropped), no NUL bytes."""
    if b"\x00" in raw:
        offset = raw.index(b"\x00")
        raise ConfigError(
            source, None, f"looks like a binary file (NUL byte at offset {offset}), not YAML text"
        )
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        raise ConfigError(
            source,
            None,
            f"not UTF-8 text: byte 0x{raw[exc.start]:02x} at offset {exc.start} (line {line}); "
            f"save the config as UTF-8",
        ) from None


#: deepest nesting of mappings and lists in a config (the schema itself needs 6 levels)
MAX_YAML_DEPTH = 50


class _DuplicateKey(yaml.YAMLError):
    def __init__(self, field: str, key: str, first: int, second: int) -> None:
        super().__init__(f"key '{key}' appears twice (lines {first} and {second})")
        self.field = field


class _ConfigLoader(yaml.SafeLoader):
    """PyYAML's SafeLoader (no ``!!python`` tags; an alias is one shared object, never a
    copy) that also refuses a key given twice in one mapping and nesting deeper than
    :data:`MAX_YAML_DEPTH` (before Python's recursion limit)."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        self._depth += 1
        try:
            if self._depth > MAX_YAML_DEPTH:
                raise yaml.composer.ComposerError(
                    problem=f"nested deeper than {MAX_YAML_DEPTH} levels",
                    problem_mark=self.peek_event().start_mark,
                )
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def construct_document(self, node: yaml.Node) -> Any:
        _check_duplicate_keys(node, (), set())
        return super().construct_document(node)


def _check_duplicate_keys(node: yaml.Node, path: tuple[str, ...], seen: set[int]) -> None:
    """Raise :class:`_DuplicateKey` for the first key written twice in one mapping.

    Keys brought in by a merge (``<<: *anchor``) may be overridden; a node reached
    again through an alias is checked once.
    """
    if id(node) in seen:
        return
    seen.add(id(node))
    if isinstance(node, yaml.MappingNode):
        lines: dict[str, int] = {}
        for key, value in node.value:
            name = str(key.value) if isinstance(key, yaml.ScalarNode) else None
            if name is not None and key.tag != "tag:yaml.org,2002:merge":
                line = key.start_mark.line + 1
                if name in lines:
                    raise _DuplicateKey(".".join((*path, name)), name, lines[name], line)
                lines[name] = line
            _check_duplicate_keys(value, (*path, name or "?"), seen)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _check_duplicate_keys(item, (*path, str(i)), seen)


def parse_config(text: str, source: str = "<config>") -> Config:
    """Validate YAML text; ``source`` names the file in error messages."""
    raw = parse_yaml(text, source)
    if not isinstance(raw, dict):
        raise ConfigError(source, None, "the config must be a mapping of sections")
    return from_mapping(raw, source)


def parse_yaml(text: str, source: str = "<config>") -> Any:
    """YAML text as Python objects: safe tags only, no key twice in one mapping, at most
    :data:`MAX_YAML_DEPTH` levels; a ConfigError names ``source``."""
    try:
        return yaml.load(text, Loader=_ConfigLoader)  # noqa: S506 - a SafeLoader subclass
    except _DuplicateKey as exc:
        raise ConfigError(source, exc.field, f"{exc}; keep one") from None
    except yaml.reader.ReaderError as exc:
        problem = f"character #x{exc.character:04x} at offset {exc.position}: {exc.reason}"
        raise ConfigError(source, None, f"malformed YAML: {problem}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(source, None, f"malformed YAML: {where}{problem}") from None


def from_mapping(raw: dict[str, Any], source: str = "<config>") -> Config:
    """Validate a config given as a Python mapping."""
    try:
        config = Config.model_validate(raw)
    except ValidationError as exc:
        raise _first_errors(exc, source) from None
    _check_names(config, source)
    _check_mesh_size(config, source)
    if config.diagnostics.enabled and config.regularization.alpha_s == 0:
        raise ConfigError(
            source,
            "regularization.alpha_s",
            "must be > 0 for the posterior diagnostics (the prior must be proper); "
            "or set diagnostics.enabled: false",
        )
    return config


def _check_mesh_size(config: Config, source: str) -> None:
    """Refuse a mesh beyond the cell limit (:func:`jointinv.mesh.max_cells`) before
    anything is allocated. With topography the surface's relief adds core cells; the
    mesh checks them again when the data give the surface."""
    from .mesh import MeshTooLarge

    relief = None if config.mesh.topography is None else 0.0
    try:
        config.mesh.spec().check_size(relief)
    except MeshTooLarge as exc:
        raise ConfigError(source, exc.field, str(exc)) from None


def _first_errors(exc: ValidationError, source: str) -> ConfigError:
    errors = _merge_union_errors(exc.errors(include_url=False))
    parts = [f"{_loc(e['loc'])}: {_message(e)}" for e in errors[:3]]
    more = f" (and {len(errors) - 3} more)" if len(errors) > 3 else ""
    first_field, first_msg = parts[0].split(": ", 1)
    rest = "; ".join(parts[1:])
    message = first_msg + (f"; {rest}" if rest else "") + more
    return ConfigError(source, first_field, message)


def _merge_union_errors(errors: list[Any]) -> list[Any]:
    """One error per ``float | DepthGradient`` field, not one per union member.

    pydantic reports both members with their names in the path
    (``properties.v.start.float``, ``properties.v.start.DepthGradient.bottom``).
    A mapping was meant as ``{top, bottom}``: report what is wrong inside it;
    anything else was meant as a number.
    """
    out, seen = [], set()
    for e in errors:
        loc = tuple(e["loc"])
        if not (
            len(loc) >= 4
            and loc[0] == "properties"
            and loc[2] in ("start", "reference")
            and loc[3] in ("float", "DepthGradient")
        ):
            out.append(e)
        elif loc[3] == "DepthGradient":
            if len(loc) > 4:  # inside a mapping; a non-mapping is reported below
                out.append({**e, "loc": loc[:3] + loc[4:]})
        elif not isinstance(e.get("input"), dict) and loc[:3] not in seen:
            seen.add(loc[:3])
            kind = e["type"] if e["type"] == "finite_number" else "number_or_depth_gradient"
            out.append({**e, "loc": loc[:3], "type": kind})
    return out or errors


def _loc(loc: tuple[Any, ...]) -> str:
    parts = [str(p) for p in loc]
    # pydantic inserts the tag of a tagged union: modalities.<name>.<kind>.…
    if len(parts) > 2 and parts[0] in ("modalities", "coupling") and parts[2] in _TAGS:
        del parts[2]
    # … and the tag of a relation: <…>.relation.<kind>.<field>
    parts = [
        p
        for i, p in enumerate(parts)
        if not (i and parts[i - 1] == "relation" and p in _RELATION_TAGS)
    ]
    return ".".join(parts) or "(top level)"


_TAGS = {"ert", "traveltime", "gravity", "cross_gradient", "petrophysical"}
_RELATION_TAGS = {"archie", "wyllie", "gardner", "density_mixing", "linear"}


_MESSAGES = {
    "greater_than": "must be > {gt}",
    "greater_than_equal": "must be >= {ge}",
    "less_than": "must be < {lt}",
    "less_than_equal": "must be <= {le}",
    "extra_forbidden": "unknown key",
    "missing": "required field is missing",
    "float_parsing": "must be a number",
    "float_type": "must be a number",
    "finite_number": "must be a finite number",
    "int_parsing": "must be an integer",
    "int_type": "must be an integer",
    "int_from_float": "must be an integer",
    "bool_parsing": "must be true or false",
    "bool_type": "must be true or false",
    "string_type": "must be a string",
    "dict_type": "must be a mapping",
    "model_type": "must be a mapping",
    "list_type": "must be a list",
    "tuple_type": "must be a list",
    "too_short": "must have at least {min_length} entries",
    "too_long": "must have at most {max_length} entries",
}


def _message(error: dict[str, Any]) -> str:
    kind = error["type"]
    ctx = {k: f"{v:g}" if isinstance(v, float) else v for k, v in (error.get("ctx") or {}).items()}
    if kind == "number_or_depth_gradient":
        return "must be a number or a mapping {top, bottom}"
    if kind in _MESSAGES:
        try:
            return _MESSAGES[kind].format(**ctx)
        except KeyError:
            return _MESSAGES[kind]
    if kind == "literal_error":
        return f"must be one of {ctx.get('expected', '')}"
    if kind == "union_tag_invalid":
        return f"unknown kind {ctx.get('tag')!r}; expected one of {ctx.get('expected_tags')}"
    if kind == "union_tag_not_found":
        return "missing 'kind'"
    if kind == "value_error":
        return str(ctx.get("error", error["msg"]))
    return error["msg"]


def _name_problem(name: str) -> str | None:
    """Why a property or modality name cannot be used, or None. Names become HDF5
    groups (``/models/<name>``) and parts of file names."""
    if not name:
        return "is empty"
    if name.startswith("."):
        return "starts with '.'"
    for char in name:
        if char in "/\\":
            return f"contains {char!r}"
        if not char.isprintable():
            return f"contains the control character {char!r}"
    return None


#: Names the result file gives its grid coordinates (``/models/x``, ``/models/z``):
#: no property or modality may take them.
RESERVED_NAMES = ("x", "z")


def _check_names(config: Config, source: str) -> None:
    for section in ("properties", "derived", "modalities"):
        for name in getattr(config, section):
            if name in RESERVED_NAMES:
                raise ConfigError(
                    source,
                    f"{section}.{name}",
                    "the names x and z are reserved for the coordinates of the result file; "
                    "choose another name",
                )
            problem = _name_problem(name)
            if problem:
                raise ConfigError(
                    source,
                    section,
                    f"the name {name!r} {problem}; names become HDF5 groups and file names: "
                    f"use letters, digits, '_' and '-'",
                )
    inverted = sorted(config.properties)
    sensed = inverted + sorted(config.derived)

    def _fail(field: str, name: str, allowed: list[str], what: str = "defined property") -> None:
        # e.g. "'porosity' is not a defined property (defined: resistivity, velocity)"
        raise ConfigError(
            source, field, f"'{name}' is not a {what} (defined: {', '.join(allowed)})"
        )

    for name, derived in config.derived.items():
        if name in config.properties:
            raise ConfigError(source, f"derived.{name}", "is already an inverted property")
        if derived.source not in config.properties:
            _fail(f"derived.{name}.from", derived.source, inverted, "defined inverted property")
        _check_relation_range(config, source, f"derived.{name}", derived.source, derived.relation)
    if "joint" in config.modalities:
        raise ConfigError(
            source, "modalities.joint", "'joint' names all data together in the result; rename it"
        )
    for name, modality in config.modalities.items():
        if modality.property not in sensed:
            _fail(f"modalities.{name}.property", modality.property, sensed)
    for i, term in enumerate(config.coupling):
        for prop in term.properties:
            if prop in config.derived:
                raise ConfigError(
                    source,
                    f"coupling.{i}.properties",
                    f"'{prop}' is a derived property; couplings act on inverted properties",
                )
            if prop not in config.properties:
                _fail(f"coupling.{i}.properties", prop, inverted)
        if term.properties[0] == term.properties[1]:
            raise ConfigError(
                source, f"coupling.{i}.properties", "must name two different properties"
            )
        if term.kind == "petrophysical":
            field = f"coupling.{i}"
            _check_relation_range(config, source, field, term.properties[0], term.relation)
    for prop in config.regularization.property_weights:
        if prop not in config.properties:
            _fail(f"regularization.property_weights.{prop}", prop, inverted)
    _check_biases(config, source)


def _check_biases(config: Config, source: str) -> None:
    """A bias needs its modality, and a type that fits the modality's kind."""
    from .bias import BIAS_TYPES

    declared = [(f"conflict.biases.{n}", n, k) for n, k in config.conflict.biases.items()]
    declared += [(f"modalities.{n}.biases", n, m.biases) for n, m in config.modalities.items()]
    for field, name, kinds in declared:
        if name not in config.modalities:
            present = ", ".join(config.modalities)
            raise ConfigError(source, field, f"no modality '{name}' (present: {present})")
        kind = config.modalities[name].kind
        if len(set(kinds)) < len(kinds):
            raise ConfigError(source, field, "names a bias twice")
        for bias in kinds:
            if bias not in BIAS_TYPES[kind]:
                allowed = ", ".join(BIAS_TYPES[kind])
                raise ConfigError(source, field, f"a {kind} modality takes {allowed}, not {bias}")


def _check_relation_range(
    config: Config, source: str, field: str, prop: str, relation: RelationConfig
) -> None:
    """A relation's input property must be bounded inside the relation's valid range."""
    valid = build_relation(relation).valid_input
    if valid == (-float("inf"), float("inf")):
        return
    bounds = config.properties[prop].bounds
    if bounds is None or bounds[0] < valid[0] or bounds[1] > valid[1]:
        raise ConfigError(
            source,
            f"{field}.relation",
            f"{relation.kind} is valid for {prop} in ({valid[0]:g}, {valid[1]:g}); "
            f"give properties.{prop}.bounds inside that range",
        )


def json_schema() -> dict[str, Any]:
    """The JSON schema of the config."""
    return Config.model_json_schema()
