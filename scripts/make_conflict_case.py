#!/usr/bin/env python
"""Write the conflict-test case: the ``small`` case of make_cases.py, consistent and with
one identifiable conflict (issue 17, item 3).

The survey, truth, fine meshes, simulators and noise (ERT 3 % of rho_a, traveltimes
0.5 ms, gravity 0.004 mGal) are those of ``small`` in scripts/make_cases.py (24
sensors 2 m apart; 138 ERT data, 6 shots with 138 picks, 24 gravity stations),
simulated on meshes that follow the true geometry, never on the inversion grid. One
noise realisation; the variants differ only by the bias added to it:

* ``consistent``: the data as simulated;
* ``shot_delay``: every pick of one interior shot (:data:`DELAYED_SHOT`) delayed by
  :data:`DELAY_SIGMA` times the pick σ (4 × 0.5 ms = 2 ms), e.g. a late trigger;
* ``bad_electrode``: a bad contact at one electrode (:data:`BAD_ELECTRODE`): every
  datum that uses it as potential electrode M or N reads the voltage times
  ``exp(BAD_CONTACT_LN)`` (the voltmeter's input impedance in series with the
  contact resistance; see ``electrode`` in jointinv/bias.py), i.e. ln rho_a lower by
  4 × 0.03, about 4 σ of a datum. The data where it injects current are unchanged.

Files (all in OUT): ``truth.json``, ``gravity.csv``, ``ert.ohm``, ``traveltime.sgt``,
``ert_bad_electrode.ohm``, ``traveltime_shot_delay.sgt``, and the configs
``consistent.yaml``, ``shot_delay.yaml``, ``shot_delay_static.yaml`` (declares
``conflict.biases: {traveltime: [static]}``), ``bad_electrode.yaml`` and
``bad_electrode_contact.yaml`` (declares ``{ert: [electrode]}``). The inversion grid is
coarser than the benchmark's (2 m × 1 m cells, 3 padding cells, 1395 parameters) so
that one ``jointinv conflict-test`` runs in minutes on 2 cores with exact (dense)
hat-matrix traces. Nothing is committed: the tests
write the case into a temporary directory.

``--coupling porosity``: the same survey, grid, noise draws and biases over the small
case's geometry with one porosity per unit (:data:`POROSITY`), from which resistivity
(Archie), velocity (Wyllie) and density contrast (density mixing) follow with the
relations of the porosity sample (jointinv.samples.PorosityBlocks), simulated on the same
fine meshes; the configs invert one porosity with the three properties derived from it
(hard petrophysical coupling, 465 parameters).

Usage:  python scripts/make_conflict_case.py OUT [--coupling cross_gradient|porosity]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import make_cases as mc  # noqa: E402

CASE = mc.CASES["small"]
SEED = mc.SEED + list(mc.CASES).index("small")  # the small case's own noise
DELAYED_SHOT = 8  # 0-based sensor index: "shot 9 at x = 16.0 m", an interior shot
DELAY_SIGMA = 4.0  # delay of each of its picks, in pick σ
DELAY_S = DELAY_SIGMA * mc.TT_NOISE_S  # 2 ms
BAD_ELECTRODE = 11  # 0-based: "electrode 12 at x = 22.0 m"
BAD_CONTACT_LN = -4.0 * mc.ERT_RELATIVE_NOISE  # shift of ln rho_a of its M/N data
CELL = (2.0, 1.0)  # inversion grid dx, dz (m)
PADDING = 3  # padding cells each side and below
MARGIN = 2.0  # core beyond the end sensors (m): 465 cells, 1395 parameters, so that the
# test's hat-matrix traces are exact (dense, jointinv.conflict.DENSE_LIMIT = 1500)

#: ``--coupling porosity``: the small case's geometry with one porosity per unit, from
#: which resistivity (Archie), velocity (Wyllie) and density contrast (density mixing)
#: follow with the relations of the porosity sample (jointinv.samples.PorosityBlocks;
#: density contrast relative to the background's bulk density)
POROSITY = {"block": 0.12, "cover": 0.40, "background": 0.30}
POROSITY_BOUNDS = (0.02, 0.9)  # wide enough for a slow (v >= 1620 m/s) patch


def _rock():
    from jointinv.samples import PorosityBlocks

    return PorosityBlocks(background=POROSITY["background"])


def build_small_porosity(X0, X1, ZB):
    """:func:`make_cases.build_small` with the units' properties from :data:`POROSITY`."""
    units, parts, outside = mc.build_small(X0, X1, ZB)
    rel = _rock().relations()
    units = [
        mc.Unit(
            u.name,
            u.polygon,
            **{p: float(rel[p].value(np.array(POROSITY[u.name]))) for p in mc.PROPERTIES},
        )
        for u in units
    ]
    return units, parts, outside


POROSITY_CASE = dataclasses.replace(
    CASE,
    name="small_porosity",
    description="small case geometry, one porosity driving resistivity (Archie), "
    "velocity (Wyllie) and density (mixing)",
    build=build_small_porosity,
)
CASE_OF = {"cross_gradient": CASE, "porosity": POROSITY_CASE}


def porosity_model(rho_start: float) -> dict[str, str]:
    """config_text's ``model`` sections for the porosity case: porosity inverted, the
    other properties derived with the truth's relations; start from Archie's inverse of
    ``rho_start`` (the geometric mean of rho_a, as the resistivity start of ``small``)."""
    rock = _rock()
    rel = rock.relations()
    archie, wyllie, mix = rel["resistivity"], rel["velocity"], rel["density_contrast"]
    phi0 = (archie.a * archie.fluid_resistivity / rho_start) ** (1 / archie.m)
    lo, hi = POROSITY_BOUNDS
    return {
        "properties": f"""properties:
  porosity: {{units: fraction, transform: linear, start: {phi0:.2f}, bounds: [{lo:g}, {hi:g}]}}

derived:
  resistivity:
    from: porosity
    units: ohm*m
    relation: {{kind: archie, fluid_resistivity: {archie.fluid_resistivity:g}, a: {archie.a:g}, \
m: {archie.m:g}, n: {archie.n:g}, saturation: {archie.saturation:g}}}
  velocity:
    from: porosity
    units: m/s
    relation: {{kind: wyllie, v_matrix: {wyllie.v_matrix:g}, v_fluid: {wyllie.v_fluid:g}}}
  density_contrast:
    from: porosity
    units: g/cm^3
    relation: {{kind: density_mixing, rho_matrix: {mix.rho_matrix:g}, \
rho_fluid: {mix.rho_fluid:g}, reference: {mix.reference:.4g}}}
""",
        "coupling": "",
        "weights": "",
    }


VARIANTS = {
    # config name: (ert file, traveltime file, conflict biases)
    "consistent": ("ert.ohm", "traveltime.sgt", None),
    "shot_delay": ("ert.ohm", "traveltime_shot_delay.sgt", None),
    "shot_delay_static": ("ert.ohm", "traveltime_shot_delay.sgt", {"traveltime": ["static"]}),
    "bad_electrode": ("ert_bad_electrode.ohm", "traveltime.sgt", None),
    "bad_electrode_contact": ("ert_bad_electrode.ohm", "traveltime.sgt", {"ert": ["electrode"]}),
}


def delay_shot(t: np.ndarray, shot: np.ndarray) -> np.ndarray:
    """Picks with every pick of :data:`DELAYED_SHOT` later by :data:`DELAY_S`."""
    return t + DELAY_S * (shot == DELAYED_SHOT)


def bad_contact(rhoa: np.ndarray, abmn: np.ndarray) -> np.ndarray:
    """rho_a with the data that use :data:`BAD_ELECTRODE` as M or N scaled by
    exp(:data:`BAD_CONTACT_LN`) (the bias model of ``electrode``, exactly)."""
    uses = (abmn[:, 2:] == BAD_ELECTRODE).any(axis=1)
    return rhoa * np.exp(BAD_CONTACT_LN * uses)


def config(name: str, rho_start: float, coupling: str = "cross_gradient") -> str:
    ert, tt, biases = VARIANTS[name]
    extra = ""
    if biases:
        (modality, kinds), = biases.items()
        extra = f"\nconflict:\n  biases: {{{modality}: [{', '.join(kinds)}]}}\n"
    if coupling == "porosity":
        header = (
            f"# Conflict-test case '{name}' (made by scripts/make_conflict_case.py --coupling\n"
            "# porosity: the small case's geometry with one porosity driving all three\n"
            "# properties; hard petrophysical coupling, a coarser grid than the benchmark's).\n"
        )
        model = porosity_model(rho_start)
    else:
        header = (
            f"# Conflict-test case '{name}' (made by scripts/make_conflict_case.py from the\n"
            f"# small case of scripts/make_cases.py; a coarser grid than the benchmark's).\n"
        )
        model = None
    return mc.config_text(
        CASE_OF[coupling],
        rho_start,
        header=header,
        files={"ert": ert, "traveltime": tt, "gravity": "gravity.csv"},
        cell=CELL,
        padding=PADDING,
        margin=MARGIN,
        output=f"{name}.h5",
        extra=extra,
        model=model,
    )


def make(out: Path, coupling: str = "cross_gradient") -> dict:
    """Simulate the case and write the data and configs of every variant into ``out``
    (``coupling``: ``cross_gradient``, the small case; ``porosity``, its geometry with
    :data:`POROSITY` and a petrophysical config)."""
    return write_case(out, mc.simulate_case(CASE_OF[coupling], SEED), coupling)


def write_case(out: Path, sim: dict, coupling: str = "cross_gradient") -> dict:
    """Write every variant of the simulated data ``sim`` (as from
    ``make_cases.simulate_case``: truth, abmn, rhoa_obs, shot, geophone, t_obs,
    stations, gz_obs) and its configs into ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    abmn, shot, geo = sim["abmn"], sim["shot"], sim["geophone"]
    x = CASE.sensor_x
    mc.write_ohm(out / "ert.ohm", x, abmn, sim["rhoa_obs"])
    mc.write_ohm(out / "ert_bad_electrode.ohm", x, abmn, bad_contact(sim["rhoa_obs"], abmn))
    mc.write_sgt(out / "traveltime.sgt", x, shot, geo, sim["t_obs"])
    mc.write_sgt(out / "traveltime_shot_delay.sgt", x, shot, geo, delay_shot(sim["t_obs"], shot))
    mc.write_gravity(out / "gravity.csv", sim["stations"], sim["gz_obs"])
    truth = sim["truth"]
    info = {
        "seed": SEED,
        "shot_delay": {
            "shot": f"shot {DELAYED_SHOT + 1} at x = {x[DELAYED_SHOT]:.1f} m",
            "delay_ms": 1e3 * DELAY_S,
            "delay_sigma": DELAY_SIGMA,
        },
        "bad_electrode": {
            "electrode": f"electrode {BAD_ELECTRODE + 1} at x = {x[BAD_ELECTRODE]:.1f} m",
            "ln_rhoa_shift": BAD_CONTACT_LN,
            "n_data": int((abmn[:, 2:] == BAD_ELECTRODE).any(axis=1).sum()),
        },
    }
    if coupling == "porosity":
        info["porosity"] = dict(POROSITY)
    truth.extra.update(info)
    (out / "truth.json").write_text(json.dumps(truth.to_json(), indent=1) + "\n")
    rho_start = float(f"{np.exp(np.mean(np.log(sim['rhoa_obs']))):.2g}")
    for name in VARIANTS:
        (out / f"{name}.yaml").write_text(config(name, rho_start, coupling))
    return info


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path, help="directory for the data and configs")
    parser.add_argument(
        "--coupling",
        choices=sorted(CASE_OF),
        default="cross_gradient",
        help="cross_gradient: the small case, three properties with cross-gradients; "
        "porosity: its geometry with one porosity and derived properties",
    )
    args = parser.parse_args(argv)
    print(json.dumps(make(args.out, args.coupling), indent=1))


if __name__ == "__main__":
    main()
