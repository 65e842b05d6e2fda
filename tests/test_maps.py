"""Tests of the model maps: adjoints, derivatives, inverses and bounds."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from jointinv.checks import adjoint_mismatch, convergence_order, taylor_orders
from jointinv.maps import Chain, Select, Transfer, Transform

N = 12

# (kind, lower, upper, physical test values strictly inside the bounds)
TRANSFORMS = {
    "log": ("log", None, None, np.geomspace(0.5, 5000.0, N)),
    "linear": ("linear", None, None, np.linspace(-300.0, 4000.0, N)),
    "bounded_log": ("log", 1.0, 1000.0, np.geomspace(1.5, 900.0, N)),
    "bounded_log_zero_lower": ("log", 0.0, 100.0, np.geomspace(1e-3, 99.0, N)),
    "bounded_linear": ("linear", 1500.0, 6000.0, np.linspace(1600.0, 5900.0, N)),
    "bounded_linear_narrow": ("linear", -1.0, 1.0, np.linspace(-0.95, 0.95, N)),
}


def _transform(name: str) -> tuple[Transform, np.ndarray]:
    kind, lo, hi, p = TRANSFORMS[name]
    return Transform(kind, N, lower=lo, upper=hi), p


def _transfer(rng: np.random.Generator) -> Transfer:
    m = sp.random(7, N, density=0.4, random_state=np.random.RandomState(3), format="csr")
    return Transfer(m + sp.eye(7, N))


def _maps(rng: np.random.Generator) -> dict:
    """name -> (map, point x, step scale for the Taylor test, is the map nonlinear)."""
    out = {"select": (Select(n_in=30, start=9, size=N), rng.standard_normal(30), 1.0, False)}
    for name in TRANSFORMS:
        t, p = _transform(name)
        # parameter scale of a bounded linear map is its width / 4
        scale = 0.25 * (t.upper - t.lower) if t.bounded and t.kind == "linear" else 1.0
        nonlinear = t.kind == "log" or t.bounded
        out[f"transform_{name}"] = (t, t.inverse(p), scale, nonlinear)
    out["transfer"] = (_transfer(rng), rng.standard_normal(N), 1.0, False)
    out["transfer_permutation"] = (
        Transfer.permutation(rng.permutation(N)), rng.standard_normal(N), 1.0, False
    )
    t, p = _transform("bounded_log")
    chain = Chain([Select(n_in=30, start=5, size=N), t, _transfer(rng)])
    x = rng.standard_normal(30)
    x[5 : 5 + N] = t.inverse(p)
    out["chain_select_boundedlog_transfer"] = (chain, x, 1.0, True)
    tl, pl = _transform("log")
    chain2 = Chain([Select(n_in=N + 4, start=4, size=N), tl])
    x2 = np.r_[rng.standard_normal(4), tl.inverse(pl)]
    out["chain_select_log"] = (chain2, x2, 1.0, True)
    out["chain_linear_only"] = (
        Chain([Select(n_in=20, start=3, size=N), Transform("linear", N), _transfer(rng)]),
        rng.standard_normal(20), 1.0, False,
    )
    return out


MAP_NAMES = list(_maps(np.random.default_rng(0)))


@pytest.mark.parametrize("name", MAP_NAMES)
def test_adjoint(name):
    rng = np.random.default_rng(1)
    mp, x, _, _ = _maps(rng)[name]
    mismatch = adjoint_mismatch(
        lambda v: mp.jvec(x, v), lambda w: mp.jtvec(x, w), mp.n_in, mp.n_out, rng=rng
    )
    assert mismatch < 1e-12


@pytest.mark.parametrize("name", MAP_NAMES)
def test_taylor(name):
    rng = np.random.default_rng(2)
    mp, x, scale, nonlinear = _maps(rng)[name]
    dx = scale * rng.standard_normal(mp.n_in)
    assert mp(x).shape == (mp.n_out,)
    steps, e0, e1 = taylor_orders(mp, lambda v: mp.jvec(x, v), x, dx)
    assert convergence_order(steps, e0) == pytest.approx(1.0, abs=0.05)
    if nonlinear:
        order = convergence_order(steps, e1)
        assert order > 1.9, (name, e1)
        assert e1[-1] < 1e-3 * e0[-1]  # the first-order term dominates at small steps
    else:
        # linear maps: the linearisation is exact up to round-off
        size = np.linalg.norm(mp(x)) + np.linalg.norm(mp.jvec(x, dx))
        assert np.all(e1 <= 1e-13 * size), (name, e1 / size)


def test_bounded_linear_taylor_order():
    """The bounded linear map is nonlinear away from its centre: check its order too."""
    rng = np.random.default_rng(4)
    t, p = _transform("bounded_linear")
    m = t.inverse(p)
    steps, _, e1 = taylor_orders(t, lambda v: t.jvec(m, v), m, 200.0 * rng.standard_normal(N))
    order = convergence_order(steps, e1)
    assert order > 1.9 and e1[0] > 1e-6  # really nonlinear at this scale


@pytest.mark.parametrize("name", list(TRANSFORMS))
def test_inverse_round_trip(name):
    t, p = _transform(name)
    m = t.inverse(p)
    assert np.all(np.isfinite(m))
    np.testing.assert_allclose(t(m), p, rtol=1e-12, atol=1e-12 * np.abs(p).max())
    # and the other way round, for parameter values of moderate size
    m2 = np.linspace(-6.0, 6.0, N) + (0 if t.kind == "log" else m.mean())
    np.testing.assert_allclose(t.inverse(t(m2)), m2, rtol=1e-8, atol=1e-8)


@pytest.mark.parametrize("name", [n for n in TRANSFORMS if n.startswith("bounded")])
def test_bounded_stays_strictly_inside_bounds(name):
    t, _ = _transform(name)
    m = np.array([-50.0, -40.0, -1e3, 50.0, 40.0, 1e3, 0.0, 1.0, -1.0, 7.0, -7.0, 20.0])
    m = m if t.kind == "log" else m * 1e3  # reach saturation for the wide linear range too
    p = t(m)
    assert np.all(p > t.lower), p
    assert np.all(p < t.upper), p
    # every value maps back to a finite parameter (no log(0))
    assert np.all(np.isfinite(t.inverse(p)))
    assert np.all(np.isfinite(t.derivative(m))) and np.all(t.derivative(m) >= 0)


def test_bounded_log_is_log_like_inside_the_range():
    t, _ = _transform("bounded_log")  # [1, 1000]
    p = np.full(N, 30.0)
    # d ln p / dm = (p - lower)(upper - p) / ((upper - lower) p) ≈ 1 for lower << p << upper
    slope = t.derivative(t.inverse(p)) / p
    np.testing.assert_allclose(slope, 29.0 * 970.0 / (999.0 * 30.0), rtol=1e-12)
    assert abs(slope[0] - 1) < 0.07


def test_bounded_linear_unit_slope_at_centre():
    t, _ = _transform("bounded_linear")
    centre = 0.5 * (t.lower + t.upper)
    m = np.full(N, centre)
    np.testing.assert_allclose(t(m), centre, rtol=1e-15)
    np.testing.assert_allclose(t.derivative(m), 1.0, rtol=1e-14)
    # numerically as well, and close to the identity near the centre
    h = 1e-3
    slope = (t(m + h) - t(m - h)) / (2 * h)
    np.testing.assert_allclose(slope, 1.0, rtol=1e-8)
    # the deviation from the identity is cubic: p - c = δ - (4/3) δ³ / w² + O(δ⁵)
    width = t.upper - t.lower
    for delta in [0.01 * width, 0.02 * width]:
        deviation = (centre + delta) - t(m + delta)[0]
        assert deviation == pytest.approx(4 / 3 * delta**3 / width**2, rel=2e-3)
    assert t.inverse(np.array([centre]))[0] == pytest.approx(centre, rel=1e-15)


def test_select_picks_the_block():
    s = Select(n_in=10, start=3, size=4)
    x = np.arange(10.0)
    np.testing.assert_array_equal(s(x), [3, 4, 5, 6])
    out = s.jtvec(x, np.ones(4))
    np.testing.assert_array_equal(out, [0, 0, 0, 1, 1, 1, 1, 0, 0, 0])


def test_transfer_permutation_order():
    order = np.array([2, 0, 3, 1])
    t = Transfer.permutation(order)
    x = np.array([10.0, 11.0, 12.0, 13.0])
    np.testing.assert_array_equal(t(x), x[order])


def test_chain_matches_hand_written_composition():
    rng = np.random.default_rng(5)
    t, p = _transform("log")
    s = Select(n_in=20, start=2, size=N)
    tr = _transfer(rng)
    chain = Chain([s, t, tr])
    x = rng.standard_normal(20)
    v = rng.standard_normal(20)
    np.testing.assert_allclose(chain(x), tr.matrix @ np.exp(x[2 : 2 + N]), rtol=1e-14)
    np.testing.assert_allclose(
        chain.jvec(x, v), tr.matrix @ (np.exp(x[2 : 2 + N]) * v[2 : 2 + N]), rtol=1e-14
    )
    assert (chain.n_in, chain.n_out) == (20, 7)


def test_chain_rejects_mismatched_sizes():
    with pytest.raises(ValueError, match="do not chain"):
        Chain([Select(n_in=10, start=0, size=4), Transform("log", 5)])
