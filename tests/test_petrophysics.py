"""Tests of the rock-physics relations and of RelationMap (hard coupling).

Known values are computed by hand from the textbook formulas; every relation's
derivative is checked by a Taylor test and against central differences, and the
map by an adjoint test.
"""

from __future__ import annotations

import numpy as np
import pytest

from jointinv.checks import adjoint_mismatch, convergence_order, taylor_orders
from jointinv.maps import Chain, Select, Transform
from jointinv.petrophysics import (
    RELATIONS,
    Archie,
    DensityMixing,
    Gardner,
    LinearTransformed,
    RelationMap,
    Wyllie,
    check_input_range,
)

N = 25


# --- known values ------------------------------------------------------------------------
def test_archie_known_values():
    archie = Archie(fluid_resistivity=20.0, a=1.0, m=2.0, n=2.0, saturation=1.0)
    # 1 · 20 · 0.25⁻² · 1⁻² = 20 · 16
    assert archie.value(np.array([0.25]))[0] == pytest.approx(320.0, rel=1e-14)
    half = Archie(fluid_resistivity=20.0, a=1.0, m=2.0, n=2.0, saturation=0.5)
    assert half.value(np.array([0.25]))[0] == pytest.approx(4 * 320.0, rel=1e-14)
    # tortuosity factor and exponents enter as written
    other = Archie(fluid_resistivity=5.0, a=0.62, m=2.15, n=1.8, saturation=0.7)
    expected = 0.62 * 5.0 * 0.18**-2.15 * 0.7**-1.8
    assert other.value(np.array([0.18]))[0] == pytest.approx(expected, rel=1e-14)
    # dρ/dφ = −m ρ/φ
    assert archie.derivative(np.array([0.25]))[0] == pytest.approx(-2 * 320.0 / 0.25, rel=1e-14)


def test_wyllie_known_values():
    wyllie = Wyllie(v_matrix=5500.0, v_fluid=1500.0)
    expected = 1.0 / (0.2 / 1500.0 + 0.8 / 5500.0)  # ≈ 3586.96 m/s
    assert wyllie.value(np.array([0.2]))[0] == pytest.approx(expected, rel=1e-14)
    assert expected == pytest.approx(3586.956, abs=1e-3)
    # end members: the matrix and the fluid velocities
    np.testing.assert_allclose(wyllie.value(np.array([0.0, 1.0])), [5500.0, 1500.0], rtol=1e-14)
    assert wyllie.slowness(np.array([0.2]))[0] == pytest.approx(1 / expected, rel=1e-14)


def test_gardner_known_values():
    gardner = Gardner()  # a = 0.31, b = 0.25
    expected = 0.31 * 3000.0**0.25
    assert gardner.value(np.array([3000.0]))[0] == pytest.approx(expected, rel=1e-14)
    assert expected == pytest.approx(2.2943, abs=1e-4)
    contrast = Gardner(reference=2.0)
    assert contrast.value(np.array([3000.0]))[0] == pytest.approx(expected - 2.0, rel=1e-13)
    # the reference shifts the value, not the slope
    v = np.array([1500.0, 3000.0, 6000.0])
    np.testing.assert_array_equal(contrast.derivative(v), gardner.derivative(v))


def test_density_mixing_known_values():
    mixing = DensityMixing(rho_matrix=2.65, rho_fluid=1.0)
    assert mixing.value(np.array([0.3]))[0] == pytest.approx(2.155, rel=1e-14)
    contrast = DensityMixing(rho_matrix=2.65, rho_fluid=1.0, reference=2.0)
    assert contrast.value(np.array([0.3]))[0] == pytest.approx(0.155, rel=1e-13)
    np.testing.assert_allclose(contrast.derivative(np.array([0.1, 0.5])), [-1.65, -1.65])


def test_linear_transformed_known_values():
    # log10 y = 1 + 0.5 log10 x: x = 100 -> log10 y = 2
    both_log = LinearTransformed(a=1.0, b=0.5, input_log=True, output_log=True)
    assert both_log.value(np.array([100.0]))[0] == pytest.approx(100.0, rel=1e-14)
    # y = 10^(1 + 0.5 x): x = 2 -> 100
    out_log = LinearTransformed(a=1.0, b=0.5, input_log=False, output_log=True)
    assert out_log.value(np.array([2.0]))[0] == pytest.approx(100.0, rel=1e-14)
    # y = 1 + 0.5 log10 x: x = 100 -> 2
    in_log = LinearTransformed(a=1.0, b=0.5, input_log=True, output_log=False)
    assert in_log.value(np.array([100.0]))[0] == pytest.approx(2.0, rel=1e-14)
    # y = 1 + 0.5 x
    identity = LinearTransformed(a=1.0, b=0.5, input_log=False, output_log=False)
    np.testing.assert_allclose(identity.value(np.array([-4.0, 3.0])), [-1.0, 2.5], rtol=1e-15)
    # validity: log10 needs x > 0, the identity does not restrict x
    assert both_log.valid_input == (0.0, np.inf)
    assert identity.valid_input == (-np.inf, np.inf)


def test_registry_names_every_relation():
    assert RELATIONS == {
        "archie": Archie,
        "wyllie": Wyllie,
        "gardner": Gardner,
        "density_mixing": DensityMixing,
        "linear": LinearTransformed,
    }


# --- derivatives -------------------------------------------------------------------------
# name -> (relation, inputs inside the valid range, direction scale keeping x + h dm inside)
def _cases(rng: np.random.Generator) -> dict:
    phi = rng.uniform(0.05, 0.5, N)
    vel = rng.uniform(1500.0, 6000.0, N)
    return {
        "archie": (Archie(), phi, 0.02),
        "archie_partial_saturation": (
            Archie(fluid_resistivity=3.0, a=0.8, m=1.7, n=2.3, saturation=0.6),
            phi,
            0.02,
        ),
        "wyllie": (Wyllie(), phi, 0.02),
        "wyllie_slow_matrix": (Wyllie(v_matrix=2500.0, v_fluid=1480.0), phi, 0.02),
        "gardner": (Gardner(), vel, 100.0),
        "gardner_contrast": (Gardner(a=0.23, b=0.27, reference=2.1), vel, 100.0),
        "density_mixing": (DensityMixing(), phi, 0.02),
        "density_mixing_contrast": (DensityMixing(2.7, 1.03, reference=2.0), phi, 0.02),
        "linear_log_log": (LinearTransformed(a=1.0, b=0.5), vel, 100.0),
        "linear_lin_log": (LinearTransformed(a=-1.0, b=0.8, input_log=False), phi, 0.02),
        "linear_log_lin": (LinearTransformed(a=2.0, b=-0.7, output_log=False), vel, 100.0),
        "linear_lin_lin": (
            LinearTransformed(a=0.3, b=-1.9, input_log=False, output_log=False),
            rng.uniform(-3.0, 3.0, N),
            0.5,
        ),
    }


CASES = list(_cases(np.random.default_rng(0)))
#: relations whose output is affine in the input: the first-order error is round-off
AFFINE = {"density_mixing", "density_mixing_contrast", "linear_lin_lin"}


@pytest.mark.parametrize("name", CASES)
def test_relation_derivative_taylor(name):
    rng = np.random.default_rng(1)
    relation, x, scale = _cases(rng)[name]
    dm = scale * rng.uniform(-1.0, 1.0, N)
    lo, hi = relation.valid_input
    assert np.all((x + 0.1 * dm > lo) & (x + 0.1 * dm < hi))  # every step stays valid
    steps, e0, e1 = taylor_orders(relation.value, lambda v: relation.derivative(x) * v, x, dm)
    if name in AFFINE:  # e1 is the round-off of f(x + h dm) − f(x)
        assert np.all(e1 < 1e-14 * np.linalg.norm(relation.value(x)))
        assert np.all(e0 > 1e-6)
        return
    assert e1[-1] < 1e-3 * e0[-1]
    assert convergence_order(steps, e0) == pytest.approx(1.0, abs=0.05)
    assert convergence_order(steps, e1) == pytest.approx(2.0, abs=0.1)


@pytest.mark.parametrize("name", CASES)
def test_relation_derivative_matches_central_differences(name):
    rng = np.random.default_rng(2)
    relation, x, _ = _cases(rng)[name]
    h = 1e-5 * np.maximum(np.abs(x), 1.0)
    fd = (relation.value(x + h) - relation.value(x - h)) / (2 * h)
    exact = relation.derivative(x)
    assert exact.shape == x.shape
    np.testing.assert_allclose(exact, fd, rtol=1e-6)


# --- range of validity ---------------------------------------------------------------------
def test_check_input_range():
    archie = Archie()
    check_input_range(archie, np.array([0.3]))
    check_input_range(archie, np.array([1e-6, 0.3, 0.999]))
    with pytest.raises(ValueError, match=r"Archie is valid for inputs in \(0, 1\); got 0$"):
        check_input_range(archie, np.array([0.3, 0.0]))
    with pytest.raises(ValueError, match=r"got 1\.2$"):
        check_input_range(archie, np.array([1.2]))
    with pytest.raises(ValueError, match="got -0.1"):
        check_input_range(archie, np.array([0.2, -0.1, 0.4]))
    with pytest.raises(ValueError, match="got nan"):
        check_input_range(archie, np.array([np.nan]))
    check_input_range(Gardner(), np.array([1500.0, 6000.0]))
    with pytest.raises(ValueError, match="Gardner"):
        check_input_range(Gardner(), np.array([0.0]))
    check_input_range(LinearTransformed(input_log=False), np.array([-1e6, 0.0, 1e6]))


# --- RelationMap ----------------------------------------------------------------------------
@pytest.mark.parametrize("name", CASES)
def test_relation_map_adjoint(name):
    rng = np.random.default_rng(3)
    relation, x, _ = _cases(rng)[name]
    mp = RelationMap(relation, N)
    assert (mp.n_in, mp.n_out) == (N, N)
    mismatch = adjoint_mismatch(lambda v: mp.jvec(x, v), lambda w: mp.jtvec(x, w), N, N, rng=rng)
    assert mismatch < 1e-12


@pytest.mark.parametrize("name", ["archie", "wyllie", "gardner", "linear_log_log"])
def test_relation_map_taylor(name):
    rng = np.random.default_rng(4)
    relation, x, scale = _cases(rng)[name]
    mp = RelationMap(relation, N)
    np.testing.assert_array_equal(mp(x), relation.value(x))
    steps, _, e1 = taylor_orders(mp, lambda v: mp.jvec(x, v), x, scale * rng.uniform(-1, 1, N))
    assert convergence_order(steps, e1) == pytest.approx(2.0, abs=0.1)


@pytest.mark.parametrize("name", CASES)
def test_relation_map_matrix_is_diag_of_the_derivative(name):
    rng = np.random.default_rng(5)
    relation, x, _ = _cases(rng)[name]
    mat = RelationMap(relation, N).matrix_at(x)
    assert mat.shape == (N, N)
    assert mat.nnz <= N
    np.testing.assert_array_equal(mat.toarray(), np.diag(relation.derivative(x)))


def test_hard_coupling_chain():
    """Select -> bounded porosity -> Archie: adjoint, Taylor and matrix of the whole chain."""
    rng = np.random.default_rng(6)
    n_joint = 3 * N
    transform = Transform("linear", N, lower=0.01, upper=0.6)
    chain = Chain([Select(n_joint, N, N), transform, RelationMap(Archie(m=1.8), N)])
    m = rng.standard_normal(n_joint)
    m[N : 2 * N] = transform.inverse(rng.uniform(0.05, 0.5, N))
    mismatch = adjoint_mismatch(
        lambda v: chain.jvec(m, v), lambda w: chain.jtvec(m, w), n_joint, N, rng=rng
    )
    assert mismatch < 1e-12
    dm = 0.05 * rng.standard_normal(n_joint)
    steps, _, e1 = taylor_orders(chain, lambda v: chain.jvec(m, v), m, dm)
    assert convergence_order(steps, e1) == pytest.approx(2.0, abs=0.1)
    v = rng.standard_normal(n_joint)
    np.testing.assert_allclose(chain.matrix_at(m) @ v, chain.jvec(m, v), rtol=1e-13)
    # only the porosity block of the joint model matters
    np.testing.assert_array_equal(chain.jtvec(m, np.ones(N))[:N], 0.0)
    np.testing.assert_array_equal(chain.jtvec(m, np.ones(N))[2 * N :], 0.0)
