#!/usr/bin/env python
"""Write the synthetic sample data in data/samples/ (profile2d/ and porosity2d/).

The true model (jointinv.samples.BlockInLayers: a conductive, low-velocity,
low-density block inside a two-layer background) is simulated with the same
engines as the inversion but on a finer mesh (0.5 m cells instead of 1 m, and
more padding), so the sample does not commit the inverse crime. Gaussian noise
with the stated standard deviations is added with a fixed seed.

porosity2d/ holds the same surveys over a porosity model
(jointinv.samples.PorosityBlocks) whose resistivity, velocity and density
contrast follow Archie, Wyllie and density mixing.

Usage:  python scripts/make_samples.py [--out data/samples]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from jointinv.mesh import MeshSpec, ModelMesh
from jointinv.samples import BlockInLayers, PorosityBlocks, cell_average

SEED = 20261122
ERT_RELATIVE_NOISE = 0.03  # fraction of rho_a
TT_NOISE_S = 0.0005  # s (profile2d)
#: porosity2d: faster rocks and shorter times, so relative + absolute picking error
TT_NOISE_POROSITY = (0.02, 0.0001)  # (fraction of t, s)
GRAVITY_NOISE_MGAL = 0.003  # mGal
SENSOR_X = np.arange(0.0, 62.0 + 1e-9, 2.0)  # 32 electrodes / geophones, 2 m apart
SHOT_EVERY = 2  # every 2nd geophone is a shot point (4 m)
GRAVITY_X = np.arange(0.0, 62.0 + 1e-9, 2.0)
GRAVITY_HEIGHT_M = 0.25  # gravimeter sensor height above ground


def fine_mesh() -> ModelMesh:
    return ModelMesh(
        MeshSpec(
            x_min=-10, x_max=72, depth=30, dx=0.5, dz=0.5, n_pad_x=16, n_pad_z=16, pad_factor=1.35
        )
    )


def dipole_dipole(n_electrodes: int, spacings=(1, 2), max_n: int = 6) -> np.ndarray:
    """ABMN (0-based) of a dipole-dipole survey: dipole length a, separation n·a."""
    rows = []
    for a in spacings:
        for n in range(1, max_n + 1):
            for ia in range(n_electrodes):
                ib, im = ia + a, ia + a + n * a
                inn = im + a
                if inn < n_electrodes:
                    rows.append((ib, ia, im, inn))
    return np.array(rows, dtype=int)


def shots_and_geophones(n_sensors: int) -> tuple[np.ndarray, np.ndarray]:
    shots, geophones = [], []
    for s in range(0, n_sensors, SHOT_EVERY):
        for g in range(n_sensors):
            if g != s:
                shots.append(s)
                geophones.append(g)
    return np.array(shots), np.array(geophones)


def simulate(
    props: dict,
    mesh: ModelMesh,
    rng: np.random.Generator,
    tt_noise: tuple[float, float] = (0.0, TT_NOISE_S),
) -> dict:
    """Simulate the three surveys for properties given on the cells of ``mesh``."""
    from jointinv.engines.ert import ErtSimulation
    from jointinv.engines.gravity import GravitySimulation
    from jointinv.engines.traveltime import TraveltimeSimulation

    sensors = np.column_stack([SENSOR_X, np.zeros_like(SENSOR_X)])
    abmn = dipole_dipole(len(SENSOR_X))
    ert = ErtSimulation(mesh, sensors, abmn, threads=2)
    rhoa = ert.apparent_resistivity(ert.transfer(props["resistivity"]))
    rhoa_obs = rhoa * np.exp(ERT_RELATIVE_NOISE * rng.standard_normal(len(rhoa)))

    shot, geophone = shots_and_geophones(len(SENSOR_X))
    tt = TraveltimeSimulation(mesh, sensors, shot, geophone)
    t = tt.forward(tt.transfer(props["velocity"]))
    t_std = tt_noise[0] * t + tt_noise[1]
    t_obs = t + t_std * rng.standard_normal(len(t))

    stations = np.column_stack([GRAVITY_X, np.full_like(GRAVITY_X, GRAVITY_HEIGHT_M)])
    grav = GravitySimulation(mesh, stations)
    gz = grav.forward(grav.transfer(props["density_contrast"]))
    gz_obs = gz + GRAVITY_NOISE_MGAL * rng.standard_normal(len(gz))
    return dict(
        sensors=sensors,
        abmn=abmn,
        rhoa=rhoa_obs,
        shot=shot,
        geophone=geophone,
        t=t_obs,
        t_std=t_std,
        stations=stations,
        gz=gz_obs,
    )


def write_ohm(path: Path, sensors: np.ndarray, abmn: np.ndarray, rhoa: np.ndarray) -> None:
    lines = [f"{len(sensors)}", "# x z"]
    lines += [f"{x:.3f} {z:.3f}" for x, z in sensors]
    lines += [f"{len(rhoa)}", "# a b m n rhoa err"]
    lines += [
        f"{a + 1} {b + 1} {m + 1} {n + 1} {r:.6g} {ERT_RELATIVE_NOISE:g}"
        for (a, b, m, n), r in zip(abmn, rhoa)
    ]
    path.write_text("\n".join(lines) + "\n0\n")


def write_sgt(path: Path, sensors: np.ndarray, shot, geophone, t, t_std) -> None:
    lines = [f"{len(sensors)}", "# x z"]
    lines += [f"{x:.3f} {z:.3f}" for x, z in sensors]
    lines += [f"{len(t)}", "# s g t err"]
    lines += [
        f"{s + 1} {g + 1} {ti:.7f} {si:.3g}" for s, g, ti, si in zip(shot, geophone, t, t_std)
    ]
    path.write_text("\n".join(lines) + "\n")


def write_gravity(path: Path, stations: np.ndarray, gz: np.ndarray) -> None:
    lines = ["# gz: vertical gravity anomaly (mGal), positive for excess mass; x, z in m (z up)"]
    lines.append("x,z,gz,err")
    lines += [f"{x:.3f},{z:.3f},{g:.6f},{GRAVITY_NOISE_MGAL:g}" for (x, z), g in zip(stations, gz)]
    path.write_text("\n".join(lines) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    here = Path(__file__).resolve().parents[1]
    parser.add_argument("--out", type=Path, default=here / "data" / "samples")
    args = parser.parse_args()
    mesh = fine_mesh()
    truth = BlockInLayers()
    props = cell_average(truth, mesh.nodes_x, mesh.nodes_z)
    write_sample(args.out / "profile2d", simulate(props, mesh, np.random.default_rng(SEED)))
    truth.save(args.out / "profile2d" / "true_model.json")
    write_biased_gravity(args.out / "profile2d")
    porous = PorosityBlocks()
    props = porous.cell_average(mesh.nodes_x, mesh.nodes_z)
    rng = np.random.default_rng(SEED + 1)
    write_sample(args.out / "porosity2d", simulate(props, mesh, rng, TT_NOISE_POROSITY))
    porous.save(args.out / "porosity2d" / "true_model.json")


#: offset of loop B of gravity_biased.csv (mGal): 5 σ of the gravity noise
GRAVITY_BIAS_MGAL = 5 * GRAVITY_NOISE_MGAL
#: loop B: the stations from this x (m) on, read on a second loop with a wrong base tie
LOOP_B_FROM_X = 32.0


def write_biased_gravity(out: Path) -> None:
    """gravity_biased.csv: gravity.csv with a ``loop`` column, loop B offset.

    Stations with x >= LOOP_B_FROM_X form loop B, whose readings are
    GRAVITY_BIAS_MGAL too high (an uncorrected base-tie error); loop A is as
    simulated. For ``jointinv conflict-test`` (configs/conflict_biased.yaml);
    made from the written gravity.csv, without simulating again.
    """
    from jointinv.readers import read_gravity_csv

    data = read_gravity_csv(out / "gravity.csv")
    loop_b = data.stations[:, 0] >= LOOP_B_FROM_X
    gz = data.gz_mgal + np.where(loop_b, GRAVITY_BIAS_MGAL, 0.0)
    lines = [
        "# gz: vertical gravity anomaly (mGal), positive for excess mass; x, z in m (z up)",
        f"# biased sample: gravity.csv, loop B (x >= {LOOP_B_FROM_X:g} m) "
        f"+{GRAVITY_BIAS_MGAL:g} mGal (5 sigma)",
        "x,z,gz,err,loop",
    ]
    lines += [
        f"{x:.3f},{z:.3f},{g:.6f},{GRAVITY_NOISE_MGAL:g},{'B' if b else 'A'}"
        for (x, z), g, b in zip(data.stations, gz, loop_b)
    ]
    (out / "gravity_biased.csv").write_text("\n".join(lines) + "\n")
    print(f"wrote {out / 'gravity_biased.csv'}: loop B offset {GRAVITY_BIAS_MGAL:g} mGal")


def write_sample(out: Path, d: dict) -> None:
    out.mkdir(parents=True, exist_ok=True)
    write_ohm(out / "ert.ohm", d["sensors"], d["abmn"], d["rhoa"])
    write_sgt(out / "traveltime.sgt", d["sensors"], d["shot"], d["geophone"], d["t"], d["t_std"])
    write_gravity(out / "gravity.csv", d["stations"], d["gz"])
    counts = f"{len(d['rhoa'])} ERT, {len(d['t'])} traveltime, {len(d['gz'])} gravity data"
    print(f"wrote {out}: {counts}")


if __name__ == "__main__":
    main()
