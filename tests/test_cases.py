"""The blind-spot benchmark (scripts/make_cases.py, scripts/bench_cases.py).

Default suite: the small case's files read and validate, the truth is
rasterised right, the gravity routine matches analytic fields, and the small
case's joint inversion is no worse than the separate ones with every χ² in its
band (about a minute). Slow: every goal of the benchmark on each big case, and
the regeneration of the small case reproduces the committed files.
"""

from __future__ import annotations

import importlib.util
import json
import math
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from jointinv.readers import read_gravity_csv
from jointinv.validate import validate_config

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = ROOT / "scripts"
CASES_DATA = ROOT / "data" / "cases"
CASES_CONFIGS = ROOT / "configs" / "cases"


def _load(name: str):
    module = f"jointinv_{name}"
    if module not in sys.modules:
        spec = importlib.util.spec_from_file_location(module, SCRIPTS / f"{name}.py")
        mod = importlib.util.module_from_spec(spec)
        sys.modules[module] = mod
        spec.loader.exec_module(mod)
    return sys.modules[module]


mc = _load("make_cases")
bench = _load("bench_cases")


def _shoelace(poly) -> float:
    p = np.asarray(poly, float)
    return 0.5 * abs(np.sum(p[:, 0] * np.roll(p[:, 1], -1) - np.roll(p[:, 0], -1) * p[:, 1]))


@pytest.mark.parametrize("name", sorted(mc.CASES))
def test_case_files_validate(name):
    truth = json.loads((CASES_DATA / name / "truth.json").read_text())
    survey = truth["survey"]
    summary = validate_config(CASES_CONFIGS / f"{name}.yaml")
    assert f"ert (ert -> resistivity): {survey['n_ert']} data" in summary
    assert f"traveltime (traveltime -> velocity): {survey['n_traveltime']} data" in summary
    assert f"gravity (gravity -> density_contrast): {survey['n_gravity']} data" in summary
    # default settings: no coupling weights, no balancing or beta tuning
    raw = yaml.safe_load((CASES_CONFIGS / f"{name}.yaml").read_text())
    assert [c["kind"] for c in raw["coupling"]] == ["cross_gradient"] * 3
    assert all("weight" not in c for c in raw["coupling"])
    assert "balancing" not in raw["inversion"] and "beta" not in raw["inversion"]


def test_case_data_are_small():
    total = sum(p.stat().st_size for p in CASES_DATA.rglob("*") if p.is_file())
    assert total < 2e6


@pytest.mark.parametrize("name", ["small", "resistivity_only", "velocity_inversion"])
def test_truth_rasterisation_reproduces_unit_areas(name):
    truth = mc.Truth.load(CASES_DATA / name / "truth.json")
    x0, x1, z0 = -6.0, 86.0, -25.0  # a window that holds every finite target
    nodes_x, nodes_z = np.arange(x0, x1 + 1e-9, 0.5), np.arange(z0, 1e-9, 0.5)
    avg = truth.cell_average(nodes_x, nodes_z, sub=10)
    area = 0.25 * avg["unit_fraction"].sum(axis=0)
    assert area.sum() == pytest.approx((x1 - x0) * -z0)
    target = truth.units[[u.name for u in truth.units].index(truth.target)]
    inside = np.asarray(target.polygon, float)
    if inside[:, 0].min() > x0 and inside[:, 0].max() < x1 and inside[:, 1].min() > z0:
        expected = _shoelace(target.polygon)
        got = area[truth.units.index(target)]
        assert got == pytest.approx(expected, rel=0.01)
    # the log-average of resistivity is the area-weighted mean of log10 values
    v = np.array([u.resistivity for u in truth.units])
    assert np.allclose(np.log(avg["resistivity"]), avg["unit_fraction"] @ np.log(v))


def test_small_truth_values_on_the_inversion_grid():
    """The 1 m cells fully inside the block carry its values; mixed cells lie between."""
    truth = mc.Truth.load(CASES_DATA / "small" / "truth.json")
    block = truth.unit("block")
    nodes_x, nodes_z = np.arange(-4.0, 50.5), np.arange(-12.0, 0.5)
    avg = truth.cell_average(nodes_x, nodes_z, sub=10)
    frac = avg["unit_fraction"][:, [u.name for u in truth.units].index("block")]
    full = frac > 0.999
    # x 18.3..29.6 and z -9.1..-4.4: whole cells 19..29 x -9..-5 -> 10 x 4
    assert full.sum() == 40
    assert np.allclose(avg["velocity"][full], block.velocity)
    assert np.allclose(avg["density_contrast"][full], block.density_contrast)
    assert frac.sum() == pytest.approx(11.3 * 4.7, rel=0.01)


def test_gravity_routine_matches_analytic_fields():
    checks = mc.check_gravity()
    assert checks["slab_relative_error"] < 1e-4  # 2 pi G drho t
    assert checks["cylinder_max_relative_error"] < 1e-6  # 2 G lambda h / (x^2 + h^2)
    assert checks["half_slab_max_abs_error_mgal"] < 1e-6  # vertical contact
    assert checks["pygimli_wonbevis_max_relative_difference"] < 1e-3


@pytest.mark.parametrize("name", sorted(mc.CASES))
def test_committed_gravity_is_the_truth_plus_noise(name):
    truth = mc.Truth.load(CASES_DATA / name / "truth.json")
    data = read_gravity_csv(CASES_DATA / name / "gravity.csv")
    clean = mc.gravity_of_truth(truth, data.stations)
    residual = (data.gz_mgal - clean) / mc.GRAVITY_NOISE_MGAL
    n = len(residual)
    # chi2 of pure noise: mean 1, std sqrt(2/n)
    assert abs(np.mean(residual**2) - 1) < 4 * math.sqrt(2 / n)


def test_small_case_joint_is_no_worse_than_separate(tmp_path):
    result = bench.bench_case("small", tmp_path)
    goals = bench.check_goals([result], goals=("chi2",))
    assert goals["chi2"]["pass"], goals["chi2"]["detail"]
    for prop, p in result["properties"].items():
        delta = bench._delta(p, "corr_core")
        assert delta is not None and delta >= -bench.MAX_CORRELATION_LOSS, (prop, delta)


# --------------------------------------------------------------------------- slow
_RESULTS: dict[str, dict] = {}


def _bench(name: str, tmp_path_factory) -> dict:
    if name not in _RESULTS:
        _RESULTS[name] = bench.bench_case(name, tmp_path_factory.mktemp(name))
    return _RESULTS[name]


#: Measured at 7ebca90 (docs/benchmark.md, "Blind-spot benchmark"): joint resistivity is more than
#: 0.02 below the separate one in these cases, most of it from the schedule's path (the
#: same joint run without couplings loses as much), and the velocity "imprint" inside
#: resistivity_only's conductor is about 3 % against the separate run (below 1 % against
#: the uncoupled joint run). Strict: a case that starts passing must be noticed.
_KNOWN_SHORT = {
    "blind_resistor": "resistivity 0.02-0.09 below separate (blind spot: no values carried)",
    "resistivity_only": "resistivity ~0.05 below separate; velocity imprint ~3 % vs separate",
    "velocity_inversion": "resistivity 0.04-0.05 and density 0.02 below separate",
}


@pytest.mark.slow
@pytest.mark.parametrize("name", mc.BIG_CASES)
def test_big_case_chi2_band(name, tmp_path_factory):
    result = _bench(name, tmp_path_factory)
    goal = bench.check_goals([result], goals=("chi2",))["chi2"]
    assert goal["pass"], goal["detail"]


@pytest.mark.slow
@pytest.mark.parametrize(
    "name",
    [
        pytest.param(n, marks=pytest.mark.xfail(strict=True, reason=_KNOWN_SHORT[n]))
        if n in _KNOWN_SHORT
        else n
        for n in mc.BIG_CASES
    ],
)
def test_big_case_no_loss_and_no_imprint(name, tmp_path_factory):
    result = _bench(name, tmp_path_factory)
    goals = bench.check_goals([result], goals=("no_loss", "imprint"))
    failed = {k: g["detail"] for k, g in goals.items() if g["pass"] is False}
    assert not failed, failed


@pytest.mark.slow
def test_coupling_helps_somewhere(tmp_path_factory):
    results = [_bench(name, tmp_path_factory) for name in mc.BIG_CASES]
    goal = bench.check_goals(results, goals=("gain",))["gain"]
    assert goal["pass"], goal["detail"]


@pytest.mark.slow
def test_small_case_regenerates_identically(tmp_path):
    mc.main(["small", "--out", str(tmp_path / "data"), "--configs", str(tmp_path / "configs")])
    for f in ("ert.ohm", "traveltime.sgt", "gravity.csv"):
        new = (tmp_path / "data" / "small" / f).read_text().split()
        old = (CASES_DATA / "small" / f).read_text().split()
        assert len(new) == len(old)
        a = np.array([float(t) for t in new if _isnum(t)])
        b = np.array([float(t) for t in old if _isnum(t)])
        assert np.allclose(a, b, rtol=1e-4, atol=1e-6), f


def _isnum(token: str) -> bool:
    try:
        float(token)
    except ValueError:
        return False
    return True
