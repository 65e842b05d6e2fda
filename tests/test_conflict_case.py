"""The conflict test's power on an identifiable conflict (issue 17, item 3).

The case is scripts/make_conflict_case.py: the small case of make_cases.py with all
three methods simulated on fine meshes (never the inversion grid), once consistent,
once with every pick of shot 9 (x = 16 m) delayed by 4 σ (2 ms), once with a bad
contact at electrode 12 (x = 22 m): ln ρa of its 15 M/N data lower by 0.12 (4 σ).

``--coupling porosity``: the same survey, noise and biases over the small case's geometry
with one porosity driving resistivity (Archie), velocity (Wyllie) and density (mixing),
inverted as one porosity model (hard petrophysical coupling).

Default suite: the variants differ from the consistent data by exactly that bias, and
their configs load (the committed small case is the consistent variant's data, so
nothing is simulated). Slow: ``jointinv conflict-test`` on each config, with the
outcomes the issue asks for.
"""

from __future__ import annotations

import json
import time

import numpy as np
import pytest

from jointinv.readers import read_ert, read_gravity_csv, read_traveltime

from .test_cases import CASES_DATA, _load

mcc = _load("make_conflict_case")

DELAYED = f"shot {mcc.DELAYED_SHOT + 1} at x = {mcc.CASE.sensor_x[mcc.DELAYED_SHOT]:.1f} m"
BAD = f"electrode {mcc.BAD_ELECTRODE + 1} at x = {mcc.CASE.sensor_x[mcc.BAD_ELECTRODE]:.1f} m"


def _committed_small() -> dict:
    """The small case's committed data in the form of make_cases.simulate_case."""
    d = CASES_DATA / "small"
    ert, tt = read_ert(d / "ert.ohm"), read_traveltime(d / "traveltime.sgt")
    g = read_gravity_csv(d / "gravity.csv")
    return {
        "truth": mcc.mc.make_truth(mcc.CASE),
        "abmn": ert.abmn,
        "rhoa_obs": ert.apparent_resistivity,
        "shot": tt.shot,
        "geophone": tt.geophone,
        "t_obs": tt.traveltime_s,
        "stations": g.stations,
        "gz_obs": g.gz_mgal,
    }


def test_variants_differ_from_the_consistent_data_by_one_bias(tmp_path):
    from jointinv.config import load_config
    from jointinv.validate import validate_config

    info = mcc.write_case(tmp_path, _committed_small())
    assert info["shot_delay"]["shot"] == DELAYED == "shot 9 at x = 16.0 m"
    assert info["bad_electrode"]["electrode"] == BAD == "electrode 12 at x = 22.0 m"

    plain = read_traveltime(tmp_path / "traveltime.sgt")
    late = read_traveltime(tmp_path / "traveltime_shot_delay.sgt")
    np.testing.assert_array_equal(late.shot, plain.shot)
    delay = late.traveltime_s - plain.traveltime_s
    shot = plain.shot == mcc.DELAYED_SHOT
    assert shot.sum() == 23 and len(np.unique(plain.shot)) == 6
    np.testing.assert_allclose(delay[shot], 0.002, atol=2e-7)  # 4 σ of 0.5 ms
    np.testing.assert_array_equal(delay[~shot], 0.0)

    good, bad = read_ert(tmp_path / "ert.ohm"), read_ert(tmp_path / "ert_bad_electrode.ohm")
    np.testing.assert_array_equal(bad.abmn, good.abmn)
    shift = np.log(bad.apparent_resistivity / good.apparent_resistivity)
    mn = (good.abmn[:, 2:] == mcc.BAD_ELECTRODE).any(axis=1)
    ab = (good.abmn[:, :2] == mcc.BAD_ELECTRODE).any(axis=1)
    assert mn.sum() == info["bad_electrode"]["n_data"] == 15
    assert ab.sum() > 0  # data where it injects current exist, and are not biased
    np.testing.assert_allclose(shift[mn], -0.12, atol=1e-5)
    np.testing.assert_array_equal(shift[~mn], 0.0)

    for name, (_, _, biases) in mcc.VARIANTS.items():
        path = tmp_path / f"{name}.yaml"
        summary = validate_config(path)
        assert "ert (ert -> resistivity): 138 data" in summary
        assert load_config(path).config.conflict.biases == (biases or {})


def test_the_porosity_variant_derives_every_property_from_one_porosity(tmp_path):
    from jointinv.config import load_config
    from jointinv.validate import validate_config

    truth = mcc.mc.make_truth(mcc.POROSITY_CASE)
    rel = mcc._rock().relations()
    for unit in truth.units:
        phi = np.array(mcc.POROSITY[unit.name])
        for prop, value in unit.values().items():
            assert value == pytest.approx(rel[prop].value(phi))
    assert truth.unit("background").density_contrast == pytest.approx(0.0)
    # the geometry is the small case's: the data files' survey is the same
    info = mcc.write_case(tmp_path, _committed_small(), "porosity")
    assert info["porosity"] == mcc.POROSITY
    for name, (_, _, biases) in mcc.VARIANTS.items():
        loaded = load_config(tmp_path / f"{name}.yaml").config
        assert list(loaded.properties) == ["porosity"]
        assert sorted(loaded.derived) == ["density_contrast", "resistivity", "velocity"]
        assert not loaded.coupling and loaded.conflict.biases == (biases or {})
    assert "ert (ert -> resistivity): 138 data" in validate_config(tmp_path / "shot_delay.yaml")


# --------------------------------------------------------------------------- slow
_RUNS: dict[tuple[str, str], tuple[int, dict, float]] = {}


@pytest.fixture(scope="module")
def case_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("conflict_case")
    mcc.make(out)
    return out


@pytest.fixture(scope="module")
def porosity_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("conflict_case_porosity")
    mcc.make(out, "porosity")
    return out


def _run(case_dir, name: str) -> tuple[int, dict, float]:
    """``jointinv conflict-test`` on one variant: exit code, JSON report, wall time (s)."""
    key = (str(case_dir), name)
    if key not in _RUNS:
        from .test_conflict import invoke

        t0 = time.perf_counter()
        path, out = case_dir / f"{name}.yaml", case_dir / f"{name}.json"
        result = invoke("conflict-test", path, "--json", out)
        seconds = time.perf_counter() - t0
        report = json.loads((case_dir / f"{name}.json").read_text())
        _RUNS[key] = (result.exit_code, report, seconds)
        print(f"{name}: exit {result.exit_code} in {seconds:.0f} s\n{result.stdout}")
        print(json.dumps(report, indent=1, default=float))
    return _RUNS[key]


#: Measured (docs/conflict.md, "A conflict the test must find"; fast approximation with
#: exact traces). Strict: a variant that starts passing must be noticed.
_NO_POWER_DELAY = (
    "measured on identical files: shot_delay T = 13.1, nu = -0.35, p = 1, exit 0 (twice); "
    "T = 11.5, nu = 1.3, p = 0.001, exit 3 (once; the fits end elsewhere): with nu near 0 "
    "the verdict follows roundoff. T stays below the consistent case's 26.7: the "
    "coupled model absorbs the 2 ms delay as velocity alone does (traveltime chi2 1.04 "
    "joint, 0.96 alone); cross-gradients allow a velocity anomaly where resistivity is "
    "uniform"
)
_NO_POWER_CONTACT = (
    "measured: bad_electrode T = 39.8, nu = -1.5, p = 1, exit 0 (twice; T = 9.38, nu = 4.89, "
    "p = 0.089, exit 0 on rho_a differing in the 6th digit): ert chi2 0.91-0.95 alone, "
    "0.95-0.99 joint, the bad contact is absorbed by near-surface resistivity in both "
    "hypotheses"
)
_XFAIL = {
    "shot_delay": _NO_POWER_DELAY,
    "bad_electrode": _NO_POWER_CONTACT,
    "shot_delay_static": "measured at 2a8c7de: the plain pass finds a conflict for the wrong "
    "reason (T = 69.6 on nu = -2.03, unreliable; linearised bootstrap p = 0.01) and names "
    "gravity, not traveltime: at beta* the fits alone over-fit (gravity chi2 0.023 alone, "
    "0.817 joint; ert 0.450 / 0.731), traveltime's tension has p = 1. With the static: shot 9 "
    "at 2.21 +- 0.72 ms, the others within 2 sigma of zero, consistent (p = 0.96, exit 0), "
    "but every static has rho = 0.99 (not separable from the model): cross-gradients let the "
    "near-surface velocity take the delay's place",
    "bad_electrode_contact": _NO_POWER_CONTACT
    + " (the plain pass of this config). With the electrode biases the fits stall (ert chi2 "
    "4.03 alone and joint) and the biases trade off with near-surface resistivity: a smooth "
    "-0.73 ... +0.04 over electrodes 3-24, 16 of 21 beyond 2 sigma; electrode 12 at "
    "-0.41 +- 0.04 (-0.12 injected); T = 54.7, nu = -2.8, p = 1, exit 0",
}


def _known(name: str, *args):
    return pytest.param(
        name, *args, marks=pytest.mark.xfail(strict=True, reason=_XFAIL[name]), id=name
    )


def _biases(analysis: dict) -> dict[str, dict]:
    return {b["label"]: b for b in analysis["biases"]}


@pytest.mark.slow
def test_the_consistent_case_is_consistent(case_dir):
    """Measured: exit 0, T = 26.7 with nu = -0.32, so p = 1 whatever T: the fast
    approximation cannot flag anything on this case (see the xfails below)."""
    code, report, _ = _run(case_dir, "consistent")
    assert code == 0, report["plain"]
    assert report["plain"]["suspect"] is None


@pytest.mark.slow
@pytest.mark.parametrize(
    ("name", "suspect"), [_known("shot_delay", "traveltime"), _known("bad_electrode", "ert")]
)
def test_the_conflict_is_found_and_attributed(case_dir, name, suspect):
    _found(case_dir, name, suspect)


def _found(case_dir, name: str, suspect: str) -> dict:
    code, report, _ = _run(case_dir, name)
    assert code == 3, report["plain"]
    assert report["plain"]["suspect"] == suspect
    # power, not a fluke of ν: the bias must raise T above the consistent data's
    consistent = _run(case_dir, "consistent")[1]["plain"]["statistic"]
    assert report["plain"]["statistic"] > consistent, (report["plain"]["statistic"], consistent)
    return report


@pytest.mark.slow
@pytest.mark.parametrize(
    ("name", "kind", "label", "true"),
    [
        _known("shot_delay_static", "static", DELAYED, 1e3 * mcc.DELAY_S),
        _known("bad_electrode_contact", "electrode", BAD, mcc.BAD_CONTACT_LN),
    ],
)
def test_the_declared_bias_recovers_it_and_explains_the_conflict(case_dir, name, kind, label, true):
    _explained(case_dir, name, kind, label, true)


#: the modality a bias kind belongs to, which the plain pass must name
_MODALITY = {"static": "traveltime", "electrode": "ert"}


def _explained(case_dir, name: str, kind: str, label: str, true: float) -> dict:
    code, report, _ = _run(case_dir, name)
    assert report["plain"]["conflict"]  # the plain pass: the test without biases
    assert report["plain"]["suspect"] == _MODALITY[kind], report["plain"]["suspect"]
    biases = _biases(report["augmented"])
    assert all(b["kind"] == kind for b in biases.values()) and label in biases
    b = biases.pop(label)
    assert abs(b["value"] - true) < 2 * b["std"], b
    off = {k: round(v["value"] / v["std"], 2) for k, v in biases.items()}
    assert all(abs(z) < 2 for z in off.values()), off  # the others: zero within 2 σ
    assert not report["augmented"]["conflict"], report["augmented"]
    assert code == 0
    return report


# ------------------------------------------------- hard petrophysical coupling (porosity)
# The same survey, delay and grid with one porosity driving all three properties
# (``make_conflict_case.py --coupling porosity``). Measured (docs/conflict.md): consistent
# T = 13.2, nu = 15.5, p = 0.62, exit 0; late shot T = 184, nu = 16, p = 1e-30, suspect
# traveltime, exit 3; with the static: shot 9 at 2.06 +- 0.11 ms, the others within
# 0.7 sigma of zero, T = 13.3, nu = 15.0, p = 0.58, exit 0. About 1.5 min each.
# These pin one noise draw: on another (SEED + 100) the consistent data give p = 0.0105
# (exit 3) and an off-end static lands 2.5 sigma from zero (docs/conflict.md).


@pytest.mark.slow
def test_porosity_the_consistent_case_is_consistent(porosity_dir):
    code, report, _ = _run(porosity_dir, "consistent")
    assert code == 0, report["plain"]
    assert report["plain"]["suspect"] is None
    # a calibrated verdict, not p = 1 from nu <= 0: the alternative has three porosity
    # models, the null one
    assert report["plain"]["dof"] > 5, report["plain"]


@pytest.mark.slow
def test_porosity_the_late_shot_is_a_conflict_named_traveltime(porosity_dir):
    plain = _found(porosity_dir, "shot_delay", "traveltime")["plain"]
    assert plain["dof"] > 5, plain


@pytest.mark.slow
def test_porosity_the_static_recovers_the_delay_and_explains_the_conflict(porosity_dir):
    report = _explained(porosity_dir, "shot_delay_static", "static", DELAYED, 1e3 * mcc.DELAY_S)
    assert report["plain"]["suspect"] == "traveltime"
