#!/usr/bin/env python
"""Write the blind-spot benchmark cases in data/cases/<case>/ and configs/cases/<case>.yaml.

Every case is built around what one method cannot see (issue 12, item 6):

* ``blind_resistor``: a resistive, fast, dense body under a conductive cover
  (ERT hardly sees beneath the conductor; refraction and gravity do);
* ``resistivity_only``: a conductive lens in resistivity only; velocity is
  layered (increasing with depth) and density has no contrast anywhere;
* ``dipping_contact``: a dipping contact between two units under a thin cover,
  all three properties change across it;
* ``velocity_inversion``: a slow (conductive, light) layer of varying thickness
  under a fast top layer, which refraction cannot see;
* ``small``: a cheap block-under-cover case for the default test suite.

The true model is a list of polygons (``truth.json``: first containing polygon
wins; outside every polygon the ``outside`` unit) with resistivity (ohm*m),
velocity (m/s) and density contrast (g/cm^3) per unit, so it can be rebuilt on
any mesh (:func:`Truth.cell_average`). The data are simulated on a triangle
mesh whose edges follow every boundary of the truth (pygimli.meshtools), never
on the inversion grid:

* ERT: ``pygimli.physics.ert.simulate`` (2.5D FEM, world 5 profile lengths
  wide and deep, refined around the electrodes), apparent resistivity with the
  analytic half-space k;
* traveltimes: ``pygimli.physics.traveltime.simulate`` (Dijkstra, secondary
  nodes) on the same mesh;
* gravity: Talwani / Won & Bevis line integrals over the true polygons (our own
  closed form in :func:`talwani_gz`, independent of the inversion's kernel),
  checked against the infinite slab and the horizontal cylinder
  (``--check``).

Gaussian noise with a fixed seed: ERT 3 % of rho_a, traveltimes 0.5 ms,
gravity 0.004 mGal; the configs' ``error`` sections state the same values.

Checks (``--check``; measured): Talwani against the infinite slab 3e-6
relative, the horizontal cylinder (720-gon) 1e-12, the vertical contact
(half-slab) 1e-7 mGal, pyGIMLi's Won & Bevis 1.5e-5. ERT on the case mesh
against the same mesh refined (triangle size / 4): small max 0.82 % (median
0.05 %), blind_resistor max 0.59 % (median 0.02 %); a homogeneous half-space
within 0.86 % / 0.70 % of its true resistivity. Traveltimes against the refined
mesh with 5 secondary nodes: max 0.37 % / 0.41 % (0.08 / 0.12 ms, below the
0.5 ms noise).

Usage:  python scripts/make_cases.py [CASE ...] [--out DIR] [--configs DIR] [--check]
"""

from __future__ import annotations

import argparse
import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SEED = 20261203
ERT_RELATIVE_NOISE = 0.03  # fraction of rho_a
TT_NOISE_S = 0.0005  # s
GRAVITY_NOISE_MGAL = 0.004  # mGal
GRAVITY_HEIGHT_M = 0.3  # gravimeter above ground
G_SI = 6.6743e-11  # m^3 kg^-1 s^-2
PROPERTIES = ("resistivity", "velocity", "density_contrast")
LOG_PROPERTIES = ("resistivity", "velocity")


# --------------------------------------------------------------------------- truth
@dataclass
class Unit:
    name: str
    polygon: list  # [[x, z], ...] (z up), closed implicitly
    resistivity: float
    velocity: float
    density_contrast: float

    def values(self) -> dict:
        return {p: getattr(self, p) for p in PROPERTIES}


@dataclass
class Truth:
    """Polygons with properties; the first polygon containing a point wins."""

    units: list[Unit]
    outside: str  # unit whose values hold outside every polygon
    focus: dict  # {"x": [x0, x1], "z": [z0, z1]} around the target
    target: str  # the unit the case is built around
    description: str = ""
    extra: dict = field(default_factory=dict)

    def unit(self, name: str) -> Unit:
        return next(u for u in self.units if u.name == name)

    def label(self, x: np.ndarray, z: np.ndarray) -> np.ndarray:
        """Index of the unit of every point (x, z arrays of one shape)."""
        from matplotlib.path import Path as MplPath

        x = np.asarray(x, float)
        z = np.asarray(z, float)
        pts = np.column_stack([x.ravel(), z.ravel()])
        out = np.full(len(pts), self.units.index(self.unit(self.outside)))
        todo = np.ones(len(pts), bool)
        for i, u in enumerate(self.units):
            inside = MplPath(np.asarray(u.polygon, float)).contains_points(pts[todo])
            idx = np.flatnonzero(todo)[inside]
            out[idx] = i
            todo[idx] = False
        return out.reshape(x.shape)

    def evaluate(self, x: np.ndarray, z: np.ndarray) -> dict[str, np.ndarray]:
        lab = self.label(x, z)
        return {p: np.array([getattr(u, p) for u in self.units])[lab] for p in PROPERTIES}

    def cell_average(self, nodes_x, nodes_z, sub: int = 4) -> dict[str, np.ndarray]:
        """Truth averaged over each cell of a tensor grid (``sub × sub`` sub-samples;
        log-average for resistivity and velocity), cells x-fastest. Also returns
        ``unit_fraction``: (n_cells, n_units) fraction of each cell in each unit."""
        nodes_x, nodes_z = np.asarray(nodes_x, float), np.asarray(nodes_z, float)
        fx = (np.arange(sub) + 0.5) / sub
        xs = (nodes_x[:-1, None] + np.diff(nodes_x)[:, None] * fx).ravel()
        zs = (nodes_z[:-1, None] + np.diff(nodes_z)[:, None] * fx).ravel()
        xx, zz = np.meshgrid(xs, zs)
        nx, nz = len(nodes_x) - 1, len(nodes_z) - 1
        lab = self.label(xx, zz).reshape(nz, sub, nx, sub)
        frac = np.stack(
            [(lab == i).mean(axis=(1, 3)).ravel() for i in range(len(self.units))], axis=1
        )
        out = {}
        for p in PROPERTIES:
            v = np.array([getattr(u, p) for u in self.units], float)
            if p in LOG_PROPERTIES:
                out[p] = np.exp(frac @ np.log(v))
            else:
                out[p] = frac @ v
        out["unit_fraction"] = frac
        return out

    def to_json(self) -> dict:
        return {
            "kind": "polygon_units",
            "description": self.description,
            "coordinates": "x along the profile (m), z up (m), ground surface z = 0",
            "rule": "the first unit whose polygon contains a point gives its values; "
            "outside every polygon the 'outside' unit",
            "units": [
                {
                    "name": u.name,
                    "polygon": [[round(float(a), 4), round(float(b), 4)] for a, b in u.polygon],
                    "resistivity": u.resistivity,
                    "velocity": u.velocity,
                    "density_contrast": u.density_contrast,
                }
                for u in self.units
            ],
            "units_of_values": {
                "resistivity": "ohm*m",
                "velocity": "m/s",
                "density_contrast": "g/cm^3",
            },
            "outside": self.outside,
            "target": self.target,
            "focus": self.focus,
            **self.extra,
        }

    @classmethod
    def load(cls, path: str | Path) -> Truth:
        raw = json.loads(Path(path).read_text())
        units = [
            Unit(u["name"], u["polygon"], u["resistivity"], u["velocity"], u["density_contrast"])
            for u in raw["units"]
        ]
        known = {"kind", "description", "coordinates", "rule", "units", "units_of_values"}
        known |= {"outside", "target", "focus"}
        extra = {k: v for k, v in raw.items() if k not in known}
        return cls(units, raw["outside"], raw["focus"], raw["target"], raw["description"], extra)


# --------------------------------------------------------------------------- cases
@dataclass
class Case:
    name: str
    description: str
    n_sensors: int
    spacing: float  # m, electrodes = geophones
    ert_scheme: str  # "dd" dipole-dipole or "ws" Wenner-Schlumberger
    ert_dipoles: tuple  # dipole lengths in electrode spacings
    ert_max_n: int
    shot_every: int  # every k-th geophone is a shot
    gravity_dx: float  # station spacing (m)
    core_depth: float  # m
    build: object  # callable (X0, X1, ZB) -> (units, plc_parts, outside)
    focus: dict
    target: str
    imprint_unit: str | None = None  # (b): where joint must not imprint

    @property
    def length(self) -> float:
        return (self.n_sensors - 1) * self.spacing

    @property
    def sensor_x(self) -> np.ndarray:
        return np.arange(self.n_sensors) * self.spacing

    @property
    def gravity_x(self) -> np.ndarray:
        return np.arange(0.0, self.length + 1e-9, self.gravity_dx)

    def world(self) -> tuple[float, float, float]:
        w = 5 * self.length
        return -w, self.length + w, -w

    def tt_world(self) -> tuple[float, float, float]:
        """The traveltime mesh: 10 m around the profile, 2 x the core depth deep."""
        return -10.0, self.length + 10.0, -2 * self.core_depth


def _box(x0, x1, z0, z1):
    return [[x0, z0], [x1, z0], [x1, z1], [x0, z1]]


def _ellipse(xc, zc, ax, az, n=24):
    t = np.linspace(0, 2 * np.pi, n, endpoint=False)
    return np.column_stack([xc + ax * np.cos(t), zc + az * np.sin(t)]).tolist()


def build_blind_resistor(X0, X1, ZB):
    cover = -3.3
    body = [[27.4, -6.1], [41.8, -5.4], [43.6, -12.3], [29.1, -13.0]]
    units = [
        Unit("resistor", body, 1500.0, 3400.0, 0.30),
        Unit("cover", _box(X0, X1, 0.0, cover), 6.0, 650.0, 0.0),
        Unit("background", _box(X0, X1, cover, ZB), 150.0, 1800.0, 0.0),
    ]
    parts = [("layers", [cover]), ("polygon", body)]
    return units, parts, "background"


def build_resistivity_only(X0, X1, ZB):
    z1, z2 = -2.6, -7.4
    lens = _ellipse(31.3, -5.0, 4.6, 2.0)
    units = [
        Unit("conductor", lens, 12.0, 1200.0, 0.0),
        Unit("layer1", _box(X0, X1, 0.0, z1), 120.0, 450.0, 0.0),
        Unit("layer2", _box(X0, X1, z1, z2), 300.0, 1200.0, 0.0),
        Unit("layer3", _box(X0, X1, z2, ZB), 300.0, 2400.0, 0.0),
    ]
    parts = [("layers", [z1, z2]), ("polygon", lens)]
    return units, parts, "layer3"


def build_dipping_contact(X0, X1, ZB):
    cover, base, x_top, dip = -1.6, -20.5, 21.5, 55.0
    x_base = x_top + (cover - base) / math.tan(math.radians(dip))
    unit_b = [[x_top, cover], [X1, cover], [X1, base], [x_base, base]]
    units = [
        Unit("cover", _box(X0, X1, 0.0, cover), 200.0, 550.0, 0.0),
        Unit("unit_b", unit_b, 700.0, 2700.0, 0.25),
        Unit("unit_a", _box(X0, X1, cover, ZB), 35.0, 1400.0, 0.0),
    ]
    parts = [
        ("layers", [cover]),
        ("line", [[x_top, cover], [x_base, base]]),
        ("line", [[x_base, base], [X1, base]]),
    ]
    return units, parts, "unit_a"


def build_velocity_inversion(X0, X1, ZB):
    top = -3.7
    base = [[X0, -8.2], [24.0, -8.2], [34.0, -11.0], [48.0, -11.0], [58.0, -8.2], [X1, -8.2]]
    slow = [[X0, top], [X1, top]] + base[::-1]
    units = [
        Unit("fast_top", _box(X0, X1, 0.0, top), 900.0, 1900.0, 0.0),
        Unit("slow_layer", slow, 25.0, 700.0, -0.25),
        Unit("bedrock", _box(X0, X1, top, ZB), 350.0, 3000.0, 0.0),
    ]
    parts = [("layers", [top]), ("line", base)]
    return units, parts, "bedrock"


def build_small(X0, X1, ZB):
    cover = -2.4
    body = [[18.3, -4.4], [29.6, -4.4], [29.6, -9.1], [18.3, -9.1]]
    units = [
        Unit("block", body, 1200.0, 2800.0, 0.30),
        Unit("cover", _box(X0, X1, 0.0, cover), 30.0, 600.0, 0.0),
        Unit("background", _box(X0, X1, cover, ZB), 200.0, 1600.0, 0.0),
    ]
    parts = [("layers", [cover]), ("polygon", body)]
    return units, parts, "background"


# fmt: off
CASES: dict[str, Case] = {
    c.name: c
    for c in [
        Case(
            name="blind_resistor",
            description="resistive, fast, dense body under a conductive cover: ERT hardly sees it",
            n_sensors=34, spacing=2.0, ert_scheme="dd", ert_dipoles=(1, 2, 3), ert_max_n=6,
            shot_every=3, gravity_dx=2.0, core_depth=20.0, build=build_blind_resistor,
            focus={"x": [24.0, 47.0], "z": [-16.0, -3.0]}, target="resistor",
        ),
        Case(
            name="resistivity_only",
            description="conductive lens in resistivity only; layered velocity, "
            "no density contrast",
            n_sensors=28, spacing=2.0, ert_scheme="dd", ert_dipoles=(1, 2, 3), ert_max_n=6,
            shot_every=2, gravity_dx=3.0, core_depth=16.0, build=build_resistivity_only,
            focus={"x": [24.0, 39.0], "z": [-10.0, -1.0]}, target="conductor",
            imprint_unit="conductor",
        ),
        Case(
            name="dipping_contact",
            description="contact dipping 55 deg between two units under a thin cover; "
            "all properties change",
            n_sensors=51, spacing=1.0, ert_scheme="ws", ert_dipoles=(1, 3), ert_max_n=6,
            shot_every=5, gravity_dx=2.0, core_depth=15.0, build=build_dipping_contact,
            focus={"x": [14.0, 40.0], "z": [-14.0, -1.0]}, target="unit_b",
        ),
        Case(
            name="velocity_inversion",
            description="slow, conductive, light layer of varying thickness under a fast top layer",
            n_sensors=40, spacing=2.0, ert_scheme="dd", ert_dipoles=(1, 2, 4), ert_max_n=6,
            shot_every=4, gravity_dx=2.5, core_depth=20.0, build=build_velocity_inversion,
            focus={"x": [16.0, 66.0], "z": [-14.0, -2.0]}, target="slow_layer",
        ),
        Case(
            name="small",
            description="small test case: resistive, fast, dense block under a cover",
            n_sensors=24, spacing=2.0, ert_scheme="dd", ert_dipoles=(1, 2), ert_max_n=4,
            shot_every=4, gravity_dx=2.0, core_depth=12.0, build=build_small,
            focus={"x": [14.0, 34.0], "z": [-11.0, -2.0]}, target="block",
        ),
    ]
}
# fmt: on
BIG_CASES = ["blind_resistor", "resistivity_only", "dipping_contact", "velocity_inversion"]


def make_truth(case: Case) -> Truth:
    units, _, outside = case.build(*case.world())
    extra = {"case": case.name}
    if case.imprint_unit:
        extra["imprint_unit"] = case.imprint_unit
    return Truth(units, outside, case.focus, case.target, case.description, extra)


# --------------------------------------------------------------------------- surveys
def ert_scheme(case: Case) -> np.ndarray:
    """ABMN (0-based). dd: B A M N with dipole a, separation n·a; ws: A M N B, MN = a,
    AM = NB = n·a."""
    ne, rows = case.n_sensors, []
    for a in case.ert_dipoles:
        for n in range(1, case.ert_max_n + 1):
            for i in range(ne):
                if case.ert_scheme == "dd":
                    b_, a_, m_ = i, i + a, i + a + n * a
                    n_ = m_ + a
                    if n_ < ne:
                        rows.append((a_, b_, m_, n_))
                else:
                    a_, m_ = i, i + n * a
                    n_ = m_ + a
                    b_ = n_ + n * a
                    if b_ < ne:
                        rows.append((a_, b_, m_, n_))
    return np.array(rows, dtype=int)


def shots_and_geophones(case: Case) -> tuple[np.ndarray, np.ndarray]:
    shots, geophones = [], []
    for s in range(0, case.n_sensors, case.shot_every):
        for g in range(case.n_sensors):
            if g != s:
                shots.append(s)
                geophones.append(g)
    return np.array(shots), np.array(geophones)


# --------------------------------------------------------------------------- fine mesh
def fine_mesh(case: Case, refine: float = 1.0, world: tuple | None = None):
    """pyGIMLi triangle mesh whose edges follow every boundary of the truth.

    A grid of helper nodes 0.5·refine m apart (core: 4 m around the profile, down to
    1.5 x the core depth; kept off the interfaces) bounds the triangle size there;
    outside, triangles grow towards the world boundary. Every sensor is a node,
    with one node 0.1·spacing below it; quality 33 (34 with refine < 1).
    ``world``: (x_min, x_max, z_bottom) instead of the ERT world (5 profile lengths
    around and below the profile), e.g. the smaller traveltime world.
    """
    import pygimli as pg
    import pygimli.meshtools as mt

    X0, X1, ZB = world or case.world()
    _, parts, _ = case.build(X0, X1, ZB)
    layers = next(p[1] for p in parts if p[0] == "layers")
    world = mt.createWorld(start=[X0, ZB], end=[X1, 0.0], layers=layers, worldMarker=True)
    plcs = [world]
    for kind, geom in parts:
        if kind == "polygon":
            plcs.append(mt.createPolygon(geom, isClosed=True, marker=10))
        elif kind == "line":
            plcs.append(mt.createPolygon(geom, isClosed=False))
    # the core region: a dense area constraint, without edges (region by nodes)
    plc = mt.mergePLC(plcs)
    for x in case.sensor_x:
        plc.createNode([x, 0.0], marker=pg.core.MARKER_NODE_SENSOR)
        plc.createNode([x, -0.1 * case.spacing])
    # a grid of helper nodes in the core bounds the triangle size there
    h = 0.5 * refine
    xs = np.arange(-4.0, case.length + 4.0 + 1e-9, h)
    zs = -np.arange(h, 1.5 * case.core_depth + 1e-9, h)
    truth = make_truth(case)
    # keep helper nodes off the interfaces (>= 0.1 h away)
    for z in zs:
        for x in xs:
            if not _near_boundary(truth, x, z, 0.12 * h):
                plc.createNode([x + 0.013 * h, z + 0.017 * h])
    return mt.createMesh(plc, quality=34 if refine < 1 else 33, smooth=[1, 5])


def _near_boundary(truth: Truth, x: float, z: float, d: float) -> bool:
    pts = np.array([[x, z], [x + d, z], [x - d, z], [x, z + d], [x, z - d]])
    lab = truth.label(pts[:, 0], pts[:, 1])
    return bool(np.any(lab != lab[0])) or z > -d


def mesh_properties(case: Case, mesh) -> tuple[dict, np.ndarray]:
    """Truth at every triangle (by its centroid) and a check that every triangle lies
    in one unit (labels at points pulled 10 % from each vertex towards the centroid)."""
    truth = make_truth(case)
    c = np.array([[cell.center().x(), cell.center().y()] for cell in mesh.cells()])
    lab = truth.label(c[:, 0], c[:, 1])
    bad = np.zeros(len(c), bool)
    for k in range(3):
        v = np.array([[cell.node(k).pos().x(), cell.node(k).pos().y()] for cell in mesh.cells()])
        p = v + 0.1 * (c - v)
        bad |= truth.label(p[:, 0], p[:, 1]) != lab
    values = {p: np.array([getattr(u, p) for u in truth.units], float)[lab] for p in PROPERTIES}
    return values, bad


# --------------------------------------------------------------------------- simulators
def simulate_ert(case: Case, mesh, resistivity: np.ndarray) -> np.ndarray:
    import pygimli as pg
    from pygimli.physics import ert

    scheme = pg.DataContainerERT()
    for x in case.sensor_x:
        scheme.createSensor([x, 0.0])
    abmn = ert_scheme(case)
    scheme.resize(len(abmn))
    for name, col in zip("abmn", abmn.T):
        scheme.set(name, col.astype(float))
    scheme.set("k", ert.geometricFactors(scheme))  # analytic half-space
    data = ert.simulate(
        mesh,
        scheme=scheme,
        res=pg.Vector(resistivity),
        noiseLevel=0,
        noiseAbs=0,
        verbose=False,
        sr=False,
    )
    return np.asarray(data["rhoa"], float)


def simulate_tt(case: Case, mesh, velocity: np.ndarray, secondary_nodes: int = 3) -> np.ndarray:
    import pygimli as pg
    from pygimli.physics import traveltime as tt

    scheme = pg.DataContainer()
    scheme.registerSensorIndex("s")
    scheme.registerSensorIndex("g")
    for x in case.sensor_x:
        scheme.createSensor([x, 0.0])
    s, g = shots_and_geophones(case)
    scheme.resize(len(s))
    scheme.set("s", s.astype(float))
    scheme.set("g", g.astype(float))
    data = tt.simulate(
        mesh=mesh,
        scheme=scheme,
        slowness=pg.Vector(1.0 / velocity),
        secNodes=secondary_nodes,
        noiseLevel=0,
        noiseAbs=0,
        verbose=False,
    )
    return np.asarray(data["t"], float)


def talwani_gz(polygon, density_g_cm3: float, stations: np.ndarray) -> np.ndarray:
    """gz (mGal, positive for excess mass below) of an infinite-strike polygon.

    Won & Bevis (1987) line integral gz = 2 G Δρ ∮ z dθ, evaluated edge by edge in
    closed form; coordinates relative to each station with z measured *down*.
    ``polygon``: [[x, z_up], ...] in either orientation; stations: (n, 2) [x, z_up].
    """
    poly = np.asarray(polygon, float)
    # orientation: clockwise in (x, z_up) (negative shoelace sum) gives gz > 0 for
    # excess mass (checked against the slab and the cylinder, check_gravity)
    area2 = np.sum(poly[:, 0] * np.roll(poly[:, 1], -1) - np.roll(poly[:, 0], -1) * poly[:, 1])
    if area2 > 0:
        poly = poly[::-1]
    out = np.zeros(len(stations))
    for k, (xs, zs) in enumerate(np.asarray(stations, float)):
        x = poly[:, 0] - xs
        z = zs - poly[:, 1]  # down positive
        x2, z2 = np.roll(x, -1), np.roll(z, -1)
        total = 0.0
        for x1_, z1_, x2_, z2_ in zip(x, z, x2, z2):
            total += _edge(x1_, z1_, x2_, z2_)
        out[k] = total
    return 2.0 * G_SI * density_g_cm3 * 1000.0 * out * 1e5


def _edge(x1, z1, x2, z2) -> float:
    """∫ z dθ along the straight edge (x1, z1) -> (x2, z2), station at the origin."""
    r1, r2 = math.hypot(x1, z1), math.hypot(x2, z2)
    if r1 == 0 or r2 == 0:
        return 0.0
    th1, th2 = math.atan2(z1, x1), math.atan2(z2, x2)
    dth = th2 - th1
    if dth > math.pi:
        dth -= 2 * math.pi
    elif dth < -math.pi:
        dth += 2 * math.pi
    dx, dz = x2 - x1, z2 - z1
    L2 = dx * dx + dz * dz
    if L2 == 0:
        return 0.0
    # dθ = c ds / r² with c = x1 z2 - x2 z1 along P1 + s (P2 - P1); splitting z / r²
    # into d(ln r²)/ds and 1/r² parts gives ∫ z dθ = c/L² (dz ln(r2/r1) - dx Δθ)
    c = x1 * z2 - x2 * z1
    return c / L2 * (dz * math.log(r2 / r1) - dx * dth)


def gravity_of_truth(truth: Truth, stations: np.ndarray) -> np.ndarray:
    """Sum of the Talwani fields of the units' polygons (first-wins overlaps resolved by
    subtracting: only non-overlapping polygons carry density in our cases; checked)."""
    gz = np.zeros(len(stations))
    for u in truth.units:
        if u.density_contrast != 0.0:
            gz += talwani_gz(u.polygon, u.density_contrast, stations)
    return gz


def check_density_polygons(truth: Truth) -> None:
    """Dense units must not be overlapped by an earlier unit (first-wins), else the
    polygon sum is wrong."""
    for i, u in enumerate(truth.units):
        if u.density_contrast == 0:
            continue
        p = np.asarray(u.polygon, float)
        c = p.mean(axis=0)
        pts = c + 0.98 * (p - c)
        lab = truth.label(pts[:, 0], pts[:, 1])
        assert np.all(lab == i), f"{u.name}: dense polygon overlapped by an earlier unit"


# --------------------------------------------------------------------------- writers
def write_ohm(path: Path, sensor_x, abmn, rhoa) -> None:
    lines = [f"{len(sensor_x)}", "# x z"] + [f"{x:.3f} 0.000" for x in sensor_x]
    lines += [f"{len(rhoa)}", "# a b m n rhoa err"]
    lines += [
        f"{a + 1} {b + 1} {m + 1} {n + 1} {r:.6g} {ERT_RELATIVE_NOISE:g}"
        for (a, b, m, n), r in zip(abmn, rhoa)
    ]
    path.write_text("\n".join(lines) + "\n0\n")


def write_sgt(path: Path, sensor_x, shot, geophone, t) -> None:
    lines = [f"{len(sensor_x)}", "# x z"] + [f"{x:.3f} 0.000" for x in sensor_x]
    lines += [f"{len(t)}", "# s g t err"]
    lines += [f"{s + 1} {g + 1} {ti:.7f} {TT_NOISE_S:g}" for s, g, ti in zip(shot, geophone, t)]
    path.write_text("\n".join(lines) + "\n")


def write_gravity(path: Path, stations, gz) -> None:
    lines = ["# gz: vertical gravity anomaly (mGal), positive for excess mass; x, z in m (z up)"]
    lines.append("x,z,gz,err")
    lines += [f"{x:.3f},{z:.3f},{g:.6f},{GRAVITY_NOISE_MGAL:g}" for (x, z), g in zip(stations, gz)]
    path.write_text("\n".join(lines) + "\n")


def config_text(
    case: Case,
    rho_start: float,
    *,
    header: str | None = None,
    files: dict[str, str] | None = None,
    cell: tuple[float, float] = (1.0, 1.0),
    padding: int = 12,
    margin: float = 4.0,
    output: str | None = None,
    extra: str = "",
    model: dict[str, str] | None = None,
) -> str:
    """The case's config. By default the benchmark's (data in data/cases/<case>/);
    ``files``: the ert, traveltime and gravity data paths as the config gives them,
    ``cell``: (dx, dz) in m, ``padding``: padding cells each side, ``margin``: core
    beyond the end sensors (m), ``extra``: YAML sections appended (e.g. ``conflict``),
    ``model``: YAML replacing the default ``properties`` (three inverted properties),
    ``coupling`` (three cross-gradients) and ``weights`` (regularization
    ``property_weights``) sections, e.g. a porosity with derived properties."""
    L = case.length
    data = f"../../data/cases/{case.name}"
    files = files or {
        "ert": f"{data}/ert.ohm",
        "traveltime": f"{data}/traveltime.sgt",
        "gravity": f"{data}/gravity.csv",
    }
    output = output or f"../../results/cases/{case.name}.h5"
    if header is None:
        header = (
            f"# Blind-spot benchmark case '{case.name}' (made by scripts/make_cases.py):\n"
            f"# {case.description}.\n"
            "# Default settings: the quick start's structure, cross-gradient couplings without\n"
            "# 'weight' (derived default), no balancing or beta tuning; the same for every case.\n"
            "# The resistivity start is the geometric mean of the observed rho_a (same rule "
            "for all).\n"
        )
    model = {
        "properties": f"""properties:
  resistivity:      {{units: ohm*m,  transform: log,    start: {rho_start:g}, bounds: [1, 10000]}}
  velocity:         {{units: m/s,    transform: log,    start: {{top: 500, bottom: 2500}},
                     bounds: [100, 6000]}}
  density_contrast: {{units: g/cm^3, transform: linear, start: 0.0, bounds: [-1.0, 1.0]}}
""",
        "coupling": """
coupling:
  - {kind: cross_gradient, properties: [resistivity, velocity]}
  - {kind: cross_gradient, properties: [resistivity, density_contrast]}
  - {kind: cross_gradient, properties: [velocity, density_contrast]}
""",
        "weights": "  property_weights: {density_contrast: 10}\n",
        **(model or {}),
    }
    return f"""{header}mesh:
  core: {{x_min: {-margin:g}, x_max: {L + margin:g}, depth: {case.core_depth:g}}}
  cell_size: {{dx: {cell[0]:.1f}, dz: {cell[1]:.1f}}}
  padding: {{n_x: {padding}, n_z: {padding}, factor: 1.4}}

{model["properties"]}
modalities:
  ert:
    kind: ert
    data: {files['ert']}
    property: resistivity
    error: {{relative: {ERT_RELATIVE_NOISE:g}}}
    options: {{singularity_removal: true, threads: 2}}
  traveltime:
    kind: traveltime
    data: {files['traveltime']}
    property: velocity
    error: {{absolute: {TT_NOISE_S:g}}}
    options: {{secondary_nodes: 4}}
  gravity:
    kind: gravity
    data: {files['gravity']}
    property: density_contrast
    error: {{absolute: {GRAVITY_NOISE_MGAL:g}}}
{model["coupling"]}
regularization:
  alpha_s: 1.0e-3
  alpha_x: 1.0
  alpha_z: 1.0
{model["weights"]}
inversion:
  max_iterations: 15
  chi2_target: 1.0
  cg: {{max_iterations: 50, tolerance: 1.0e-2}}
  seed: 0

output:
  path: {output}
{extra}"""


def simulate_case(case: Case, seed: int) -> dict:
    """The case's data on the fine meshes, noise-free and with noise (``*_obs``; drawn
    from ``seed`` in the order ERT, traveltime, gravity), and the survey geometry."""
    truth = make_truth(case)
    check_density_polygons(truth)
    mesh = fine_mesh(case)
    props, bad = mesh_properties(case, mesh)
    tt_mesh = fine_mesh(case, world=case.tt_world())
    tt_props, tt_bad = mesh_properties(case, tt_mesh)
    if bad.any() or tt_bad.any():
        raise RuntimeError(f"{case.name}: triangles straddle a unit boundary")
    rng = np.random.default_rng(seed)
    abmn = ert_scheme(case)
    rhoa = simulate_ert(case, mesh, props["resistivity"])
    rhoa_obs = rhoa * (1 + ERT_RELATIVE_NOISE * rng.standard_normal(len(rhoa)))
    shot, geo = shots_and_geophones(case)
    t = simulate_tt(case, tt_mesh, tt_props["velocity"])
    t_obs = t + TT_NOISE_S * rng.standard_normal(len(t))
    stations = np.column_stack([case.gravity_x, np.full(len(case.gravity_x), GRAVITY_HEIGHT_M)])
    gz = gravity_of_truth(truth, stations)
    gz_obs = gz + GRAVITY_NOISE_MGAL * rng.standard_normal(len(gz))
    return {
        "truth": truth, "mesh": mesh, "tt_mesh": tt_mesh,
        "abmn": abmn, "rhoa": rhoa, "rhoa_obs": rhoa_obs,
        "shot": shot, "geophone": geo, "t": t, "t_obs": t_obs,
        "stations": stations, "gz": gz, "gz_obs": gz_obs,
    }  # fmt: skip


def make_case(case: Case, out: Path, configs: Path, seed: int) -> dict:
    import time

    t0 = time.time()
    sim = simulate_case(case, seed)
    truth, mesh, tt_mesh = sim["truth"], sim["mesh"], sim["tt_mesh"]
    abmn, rhoa, rhoa_obs = sim["abmn"], sim["rhoa"], sim["rhoa_obs"]
    shot, geo, t, t_obs = sim["shot"], sim["geophone"], sim["t"], sim["t_obs"]
    stations, gz, gz_obs = sim["stations"], sim["gz"], sim["gz_obs"]
    d = out / case.name
    d.mkdir(parents=True, exist_ok=True)
    write_ohm(d / "ert.ohm", case.sensor_x, abmn, rhoa_obs)
    write_sgt(d / "traveltime.sgt", case.sensor_x, shot, geo, t_obs)
    write_gravity(d / "gravity.csv", stations, gz_obs)
    info = {
        "seed": seed,
        "noise": {
            "ert_relative": ERT_RELATIVE_NOISE,
            "traveltime_absolute_s": TT_NOISE_S,
            "gravity_absolute_mgal": GRAVITY_NOISE_MGAL,
        },
        "survey": {
            "sensors": case.n_sensors,
            "spacing_m": case.spacing,
            "ert_scheme": case.ert_scheme,
            "ert_dipoles": list(case.ert_dipoles),
            "ert_max_n": case.ert_max_n,
            "shot_every": case.shot_every,
            "gravity_dx_m": case.gravity_dx,
            "gravity_height_m": GRAVITY_HEIGHT_M,
            "n_ert": int(len(rhoa)),
            "n_traveltime": int(len(t)),
            "n_gravity": int(len(gz)),
        },
        "simulation": {
            "ert_mesh_cells": int(mesh.cellCount()),
            "ert_world": list(case.world()),
            "traveltime_mesh_cells": int(tt_mesh.cellCount()),
            "traveltime_world": list(case.tt_world()),
            "ert": "pygimli.physics.ert.simulate, 2.5D, analytic k",
            "traveltime": "pygimli.physics.traveltime.simulate, Dijkstra, 3 secondary nodes",
            "gravity": "Talwani/Won-Bevis line integrals over the true polygons",
            "gz_range_mgal": [float(gz.min()), float(gz.max())],
            "rhoa_range": [float(rhoa.min()), float(rhoa.max())],
            "t_range_s": [float(t.min()), float(t.max())],
        },
        "core": {"x": [-4.0, case.length + 4.0], "depth": case.core_depth},
    }
    truth.extra.update(info)
    text = json.dumps(truth.to_json(), indent=1)
    text = re.sub(r"\[\s+(-?[\d.e+-]+),\s+(-?[\d.e+-]+)\s+\]", r"[\1, \2]", text)
    (d / "truth.json").write_text(text + "\n")
    rho_start = float(np.exp(np.mean(np.log(rhoa_obs))))
    rho_start = float(f"{rho_start:.2g}")
    configs.mkdir(parents=True, exist_ok=True)
    (configs / f"{case.name}.yaml").write_text(config_text(case, rho_start))
    s = info["survey"]
    print(
        f"{case.name}: {s['n_ert']} ERT, {s['n_traveltime']} traveltimes, {s['n_gravity']} "
        f"gravity; fine mesh {mesh.cellCount()} cells; {time.time() - t0:.1f} s",
        flush=True,
    )
    return info


# --------------------------------------------------------------------------- checks
def check_gravity() -> dict:
    """Talwani against analytic fields; returns the largest relative errors."""
    st = np.column_stack([np.linspace(-60, 60, 41), np.full(41, 0.3)])
    # infinite slab 2 G Δρ t π: a wide, thin rectangle, station over its middle
    t, rho = 5.0, 0.3
    slab = _box(-1e6, 1e6, -2.0, -2.0 - t)
    g_slab = talwani_gz(slab, rho, st[20:21])[0]
    g_ana = 2 * math.pi * G_SI * rho * 1000 * t * 1e5
    # horizontal cylinder: 2 G λ h / (x² + h²), λ = π R² Δρ
    R, h = 3.0, 8.0
    circle = _ellipse(0.0, -h, R, R, n=720)
    g_cyl = talwani_gz(circle, rho, st)
    hh = h + 0.3
    # a 720-gon inscribed in the circle has slightly less area: compare with its area
    area = 0.5 * 720 * R**2 * math.sin(2 * math.pi / 720)
    g_cyl_ana = 2 * G_SI * area * rho * 1000 * hh / (st[:, 0] ** 2 + hh**2) * 1e5
    # vertical contact: a half-slab x > 0 between depths z1 and z2 below the station,
    # gz = 2GΔρ [x ln(r2/r1) + π (z2 - z1)/2 + z2 atan(x/z2) - z1 atan(x/z1)]
    z1, z2 = 2.0, 7.0
    half = _box(0.0, 1e6, 0.3 - z1, 0.3 - z2)
    x = st[:, 0]
    g_half = talwani_gz(half, rho, st)
    g_half_ana = (
        2
        * G_SI
        * rho
        * 1000
        * 1e5
        * (
            x * np.log(np.hypot(x, z2) / np.hypot(x, z1))
            + math.pi * (z2 - z1) / 2
            + z2 * np.arctan(x / z2)
            - z1 * np.arctan(x / z1)
        )
    )
    out = {
        "slab_relative_error": abs(g_slab / g_ana - 1),
        "slab_mgal": g_slab,
        "cylinder_max_relative_error": float(np.max(np.abs(g_cyl / g_cyl_ana - 1))),
        "cylinder_peak_mgal": float(g_cyl.max()),
        "half_slab_max_abs_error_mgal": float(np.max(np.abs(g_half - g_half_ana))),
        "half_slab_range_mgal": [float(g_half.min()), float(g_half.max())],
    }
    # against pyGIMLi's Won & Bevis (C++), the inversion's own kernel routine
    try:
        import pygimli as pg

        poly = [[27.4, -6.1], [41.8, -5.4], [43.6, -12.3], [29.1, -13.0]]
        plc = pg.meshtools.createPolygon(poly, isClosed=True)
        mine = talwani_gz(poly, 0.3, st + [35, 0])
        theirs = []
        for x, z in st + [35, 0]:
            v = 0.0
            for b in plc.boundaries():
                v += pg.core.lineIntegralZ_WonBevis(
                    b.node(0).pos() - pg.RVector3(x, z), b.node(1).pos() - pg.RVector3(x, z)
                )
            theirs.append(v)
        theirs = np.array(theirs) * -2 * pg.physics.constants.GmGal * 300.0
        # the sign of pyGIMLi's sum depends on the polygon's orientation: magnitudes
        out["pygimli_wonbevis_max_relative_difference"] = float(
            np.max(np.abs(np.abs(mine / theirs) - 1))
        )
    except Exception as exc:  # noqa: BLE001 - a cross-check only
        out["pygimli_wonbevis"] = f"not run: {exc}"
    return out


def check_ert_mesh(case: Case) -> dict:
    """Apparent resistivities on the case mesh against a finer one (area/4), and the
    homogeneous half-space against its exact value."""
    import time

    t0 = time.time()
    coarse, fine = fine_mesh(case), fine_mesh(case, refine=0.5)
    pc, _ = mesh_properties(case, coarse)
    pf, _ = mesh_properties(case, fine)
    rc = simulate_ert(case, coarse, pc["resistivity"])
    rf = simulate_ert(case, fine, pf["resistivity"])
    hom = simulate_ert(case, coarse, np.full(coarse.cellCount(), 100.0))
    tmc = fine_mesh(case, world=case.tt_world())
    tmf = fine_mesh(case, refine=0.5, world=case.tt_world())
    tc = simulate_tt(case, tmc, mesh_properties(case, tmc)[0]["velocity"])
    tf = simulate_tt(case, tmf, mesh_properties(case, tmf)[0]["velocity"], secondary_nodes=5)
    return {
        "case": case.name,
        "ert_cells": [int(coarse.cellCount()), int(fine.cellCount())],
        "tt_cells": [int(tmc.cellCount()), int(tmf.cellCount())],
        "ert_max_rel_diff_vs_finer": float(np.max(np.abs(rc / rf - 1))),
        "ert_median_rel_diff_vs_finer": float(np.median(np.abs(rc / rf - 1))),
        "ert_homogeneous_max_rel_error": float(np.max(np.abs(hom / 100.0 - 1))),
        "tt_max_rel_diff_vs_finer": float(np.max(np.abs(tc / tf - 1))),
        "tt_max_abs_diff_vs_finer_ms": float(1e3 * np.max(np.abs(tc - tf))),
        "seconds": time.time() - t0,
    }


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("cases", nargs="*", help=f"default: all of {list(CASES)}")
    parser.add_argument("--out", type=Path, default=ROOT / "data" / "cases")
    parser.add_argument("--configs", type=Path, default=ROOT / "configs" / "cases")
    parser.add_argument("--check", action="store_true", help="run the forward checks only")
    args = parser.parse_args(argv)
    names = args.cases or list(CASES)
    if args.check:
        print(json.dumps(check_gravity(), indent=1))
        for name in names:
            print(json.dumps(check_ert_mesh(CASES[name]), indent=1), flush=True)
        return
    for i, name in enumerate(CASES):
        if name in names:
            make_case(CASES[name], args.out, args.configs, SEED + i)


if __name__ == "__main__":
    main()
