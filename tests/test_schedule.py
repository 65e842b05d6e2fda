"""The trade-off schedule (jointinv.schedule): β cooling, holding each modality at its
target, automatic coupling weights, retreat after a failed line search; and the
run-level features built on it: --only, --separate, biases in ``jointinv run``."""

from __future__ import annotations

import h5py
import numpy as np
import pytest
from typer.testing import CliRunner

import jointinv
from jointinv.cli import app
from jointinv.coordinates import variable_names
from jointinv.inversion import GaussNewton, IterationRecord
from jointinv.mesh import MeshSpec, ModelMesh
from jointinv.objective import Block, CrossGradient, DataMisfit, Objective, Regularization
from jointinv.schedule import MAX_RELAXATIONS, BandStopping, ScheduleSettings, TradeOff

from .conftest import Workspace, gravity_only_mapping

MESH = ModelMesh(MeshSpec(x_min=0, x_max=6, depth=4, dx=1, dz=1, n_pad_x=0, n_pad_z=0))
N = MESH.n_cells


class _Linear:
    """d = K m on the first block (a test operator with jvec/jtvec)."""

    has_jacobian = False

    def __init__(self, kernel: np.ndarray, n_params: int) -> None:
        self.kernel = kernel
        self.n_data = kernel.shape[0]
        self.n_params = n_params

    def forward(self, m):
        return self.kernel @ m[: self.kernel.shape[1]]

    def jvec(self, m, v):
        return self.kernel @ v[: self.kernel.shape[1]]

    def jtvec(self, m, w):
        out = np.zeros(self.n_params)
        out[: self.kernel.shape[1]] = self.kernel.T @ w
        return out


def _objective(names=("a", "b"), n_params=2 * N) -> Objective:
    rng = np.random.default_rng(3)
    misfits = []
    for name in names:
        k = rng.standard_normal((10, N))
        misfits.append(DataMisfit(name, _Linear(k, n_params), np.zeros(10), np.ones(10)))
    blocks = [Block("p", 0, N), Block("q", N, N)][: n_params // N]
    reg = Regularization(MESH, blocks, np.zeros(n_params), alpha_s=1e-3, alpha_x=1, alpha_z=1)
    return Objective(misfits, reg, [])


def _record(chi2: dict[str, float], step: float = 1.0, beta: float = 8.0) -> IterationRecord:
    return IterationRecord(1, beta, {}, chi2, 0.0, step_length=step)


# --- β and the per-modality weights ---------------------------------------------------
def test_beta_cools_after_a_full_step_and_holds_after_a_short_one():
    tradeoff = TradeOff(_objective(), 8.0, ScheduleSettings())
    tradeoff.update(_record({"a": 5.0, "b": 5.0}, step=0.5))
    assert tradeoff.beta == 8.0
    tradeoff.update(_record({"a": 5.0, "b": 5.0}, step=1.0))
    assert tradeoff.beta == 4.0
    # nobody above target: nothing to cool for
    tradeoff.update(_record({"a": 0.9, "b": 1.0}, step=1.0))
    assert tradeoff.beta == 4.0


def test_a_modality_at_its_target_keeps_its_trade_off_and_one_below_the_band_relaxes():
    objective = _objective()
    tradeoff = TradeOff(objective, 8.0, ScheduleSettings(cooling_factor=2.0))
    a, b = objective.misfits
    tradeoff.update(_record({"a": 3.0, "b": 0.95}))  # b reached: μ_b = w_b/β held
    assert tradeoff.beta == 4.0
    assert a.weight == 1.0 and b.weight == pytest.approx(0.5)
    assert b.weight / tradeoff.beta == pytest.approx(1.0 / 8.0)
    tradeoff.update(_record({"a": 2.0, "b": 0.5}))  # b over-fitted: μ_b halved
    assert tradeoff.beta == 2.0
    assert b.weight / tradeoff.beta == pytest.approx(1.0 / 16.0)
    assert not tradeoff.settled({"a": 1.0, "b": 0.5})
    assert tradeoff.settled({"a": 0.95, "b": 0.85})
    assert not tradeoff.settled({"a": 1.1, "b": 0.85})  # stop only at the target ...
    assert tradeoff.in_band({"a": 1.1, "b": 0.85})  # ... but a run ending here succeeds
    assert not tradeoff.in_band({"a": 1.25, "b": 1.0})


def test_a_modality_that_stays_below_its_band_is_left_alone_after_five_relaxations():
    objective = _objective()
    tradeoff = TradeOff(objective, 8.0, ScheduleSettings())
    for _ in range(MAX_RELAXATIONS):
        assert not tradeoff.settled({"a": 1.0, "b": 0.3})
        tradeoff.update(_record({"a": 1.0, "b": 0.3}))
    assert tradeoff.settled({"a": 1.0, "b": 0.3})
    assert not tradeoff.in_band({"a": 1.0, "b": 0.3})


def test_a_single_modality_that_overshoots_below_its_band_relaxes_beta():
    tradeoff = TradeOff(_objective(names=("a",)), 8.0, ScheduleSettings())
    assert not tradeoff.balance
    tradeoff.update(_record({"a": 3.0}))
    assert tradeoff.beta == 4.0
    assert not tradeoff.settled({"a": 0.5})
    tradeoff.update(_record({"a": 0.5}))  # the full step overshot: back up
    assert tradeoff.beta == 8.0
    tradeoff.update(_record({"a": 0.9}, step=1.0))  # in the band: hold
    assert tradeoff.beta == 8.0 and tradeoff.settled({"a": 0.9})


def test_replay_restores_the_state_of_an_uninterrupted_run():
    records = [
        _record({"a": 5.0, "b": 0.9}),
        _record({"a": 3.0, "b": 0.5}, beta=4.0),
        _record({"a": 2.0, "b": 0.4}, beta=2.0),
    ]
    live = TradeOff(_objective(), 8.0, ScheduleSettings())
    for r in records:
        live.update(r)
    records[-1].weights = {"a": 1.0, "b": 0.125}
    resumed = TradeOff(_objective(), 1.0, ScheduleSettings())
    resumed.replay(records)
    resumed.update(records[-1])
    assert resumed.relaxations == live.relaxations
    assert resumed.beta == live.beta


# --- automatic coupling weight ---------------------------------------------------------
def _cross(normalized: bool = False) -> tuple[CrossGradient, np.ndarray]:
    x, z = MESH.cell_centers.T
    m = np.concatenate([0.5 * x, -0.2 * z + 0.1 * x])  # G_a = 0.25, G_b = 0.05 (1/m²)
    term = CrossGradient(
        "cg", MESH, Block("p", 0, N), Block("q", N, N), weight=0.0, normalized=normalized
    )
    return term, m


def test_the_automatic_weight_is_kappa_beta_alpha_over_the_other_gradient():
    term, m = _cross()
    ga, gb = term.mean_squared_gradients(m)
    assert ga == pytest.approx(0.25) and gb == pytest.approx(0.05)
    # uniform gradients: the 99th percentile the weight uses is the mean
    assert term.mean_squared_gradients(m, 0.99) == pytest.approx((ga, gb))
    weights = {"p": 1.0, "q": 10.0}
    tradeoff = TradeOff(
        _objective(),
        2.0,
        ScheduleSettings(coupling_strength=3.0),
        auto_couplings=[term],
        regularization_weights=weights,
    )
    tradeoff(m, 1)
    # min(w_p/G_q, w_q/G_p) = min(1/0.05, 10/0.25) = 20
    assert term.weight == pytest.approx(3.0 * 2.0 * 20.0)
    # the weaker direction: the smoothness added to p along q's contours, γ·G_q, is κβ w_p
    assert term.weight * gb == pytest.approx(3.0 * 2.0 * weights["p"])


def test_the_automatic_weight_does_not_depend_on_the_units_of_a_property():
    """Property q in other units (×7) with the same regularization in physical terms
    (its weight ÷49): γ follows, so the coupling term γ τ² is unchanged."""
    term, m = _cross()
    for q_weight in (1.0, 30.0):  # either side of the min
        tradeoff = TradeOff(
            _objective(),
            1.0,
            ScheduleSettings(),
            auto_couplings=[term],
            regularization_weights={"p": 1.0, "q": q_weight},
        )
        tradeoff(m, 1)
        value = term.value(m)
        scaled = m.copy()
        scaled[N:] *= 7.0
        tradeoff.regularization_weights["q"] = q_weight / 49.0
        tradeoff(scaled, 1)
        assert term.value(scaled) == pytest.approx(value, rel=1e-12)


def test_the_quantile_caps_the_coupling_at_a_sharp_boundary():
    """A compact anomaly: the mean of |∇m|² is far below its edges' values, the 99th
    percentile is not, so γ·max|∇m_q|² stays within a few κβw_p."""
    term, m = _cross()
    x, z = MESH.cell_centers.T
    m[N:] = np.where((x > 2) & (x < 4) & (z > -2), 2.0, 0.0)  # q: a compact block
    settings = ScheduleSettings(coupling_strength=1.0)
    tradeoff = TradeOff(_objective(), 1.0, settings, auto_couplings=[term])
    tradeoff(m, 1)
    _, gb_mean = term.mean_squared_gradients(m)
    _, gb_q = term.mean_squared_gradients(m, 0.99)
    assert gb_q > 3 * gb_mean
    ax, az, bx, bz = term._gradients(m)
    assert term.weight * (bx**2 + bz**2).max() <= 1.0 + 1e-12


def test_no_coupling_while_a_property_has_no_structure():
    term, m = _cross()
    m[:N] = 1.0  # homogeneous
    tradeoff = TradeOff(_objective(), 1.0, ScheduleSettings(), auto_couplings=[term])
    assert tradeoff(m, 1) == 1.0
    assert term.weight == 0.0


def test_the_normalized_weight_scales_with_the_own_gradient():
    term, m = _cross(normalized=True)
    settings = ScheduleSettings(coupling_strength=1.0)
    tradeoff = TradeOff(_objective(), 2.0, settings, auto_couplings=[term])
    tradeoff(m, 1)
    assert term.weight == pytest.approx(2.0 * min(0.25, 0.05))


# --- Gauss-Newton retreat --------------------------------------------------------------
class _Cube:
    """d = m_0³: from m_0 = 0.1 towards d = 8 the weakly damped GN step (~266) overshoots."""

    has_jacobian = False
    n_data, n_params = 1, N

    def forward(self, m):
        return np.array([m[0] ** 3])

    def jvec(self, m, v):
        return np.array([3 * m[0] ** 2 * v[0]])

    def jtvec(self, m, w):
        out = np.zeros(N)
        out[0] = 3 * m[0] ** 2 * w[0]
        return out


def test_a_failed_line_search_raises_beta_and_tries_again():
    misfit = DataMisfit("a", _Cube(), np.array([8.0]), np.array([1.0]))
    reg = Regularization(MESH, [Block("p", 0, N)], np.zeros(N), alpha_s=1, alpha_x=0, alpha_z=0)
    objective = Objective([misfit], reg, [])
    tradeoff = TradeOff(objective, 1e-12, ScheduleSettings(cooling_factor=1e6))
    calls = []

    def retreat():
        calls.append(tradeoff.beta)
        return tradeoff.retreat()

    gn = GaussNewton(
        objective,
        beta=tradeoff,
        stopping=BandStopping(tradeoff, max_iterations=1, stagnation_tolerance=0.0),
        retreat=retreat,
        max_halvings=0,
    )
    result = gn.run(np.full(N, 0.1))
    assert calls == [1e-12, 1e-6], "two failed steps, each followed by a higher β"
    assert result.iterations[-1].beta == pytest.approx(1.0)
    assert result.nit == 1 and "line search failed" not in result.message
    assert result.iterations[-1].terms["a"] < result.iterations[0].terms["a"]


# --- run: --only, --separate and biases -----------------------------------------------
def _two_gravity(workspace: Workspace, offset: float = 0.0, biases=None) -> dict:
    """Gravity twice: the second survey a copy of the first, ``offset`` mGal higher."""
    raw = gravity_only_mapping()
    lines = (workspace.data / "gravity.csv").read_text().splitlines()
    out = lines[:2]
    for line in lines[2:]:
        x, z, gz, err = line.split(",")
        out.append(f"{x},{z},{float(gz) + offset:.6f},{err}")
    (workspace.data / "gravity2.csv").write_text("\n".join(out) + "\n")
    raw["modalities"]["gravity2"] = {
        **raw["modalities"]["gravity"],
        "data": raw["modalities"]["gravity"]["data"].replace("gravity.csv", "gravity2.csv"),
    }
    if biases:
        raw["modalities"]["gravity2"]["biases"] = biases
    raw["diagnostics"] = {"enabled": False}
    return raw


def test_only_and_separate_from_the_command_line(workspace: Workspace):
    config = workspace.write("g2.yaml", _two_gravity(workspace))
    runner = CliRunner()
    bad = runner.invoke(app, ["run", str(config), "--only", "seismic", "--quiet"])
    assert bad.exit_code == 2
    assert "--only seismic: no such modality (present: gravity, gravity2)" in bad.output
    out = workspace.root / "sep.h5"
    ok = runner.invoke(app, ["run", str(config), "-o", str(out), "--separate", "--quiet"])
    assert ok.exit_code == 0, ok.output
    with h5py.File(out) as f:
        assert set(f["separate"]) == {"gravity", "gravity2"}
        for name in ("gravity", "gravity2"):
            g = f[f"separate/{name}"]
            assert variable_names(g["models"]) == ["density_contrast"]
            assert list(g["data"]) == [name]
            assert g["models/density_contrast"].shape == f["models/density_contrast"].shape
            assert 0.5 < g[f"data/{name}"].attrs["chi2"] < 1.5
    shown = runner.invoke(app, ["show", str(out)])
    assert shown.exit_code == 0, shown.output
    assert "separate gravity2: chi2" in shown.output
    only = workspace.root / "only.h5"
    ok = runner.invoke(app, ["run", str(config), "-o", str(only), "--only", "gravity2"])
    assert ok.exit_code == 0, ok.output
    assert list(jointinv.read_result(only).data) == ["gravity2"]


def test_a_declared_offset_is_estimated_in_a_run(workspace: Workspace):
    """Two surveys of one density model, the second 0.05 mGal high (17 σ): the offset of
    the second is identifiable, recovered within 3 σ, and written with its σ."""
    config = workspace.write("g2.yaml", _two_gravity(workspace, 0.05, ["offset"]))
    result = jointinv.run(config, output=workspace.root / "b.h5")
    (estimate,) = result.biases
    assert estimate.modality == "gravity2" and estimate.kind == "offset"
    assert 0 < estimate.std < 0.01
    assert abs(estimate.value - 0.05) < 3 * estimate.std
    assert all(0.8 <= c <= 1.2 for c in result.chi2.values()), result.chi2
    shown = CliRunner().invoke(app, ["show", str(result.output)])
    assert f"bias gravity2 offset offset: {estimate.value:.4g} ±" in shown.output
    with h5py.File(result.output) as f:
        g = f["biases/gravity2/offset"]
        assert g["value"][0] == pytest.approx(estimate.value)
        assert g["std"][0] == pytest.approx(estimate.std)
        assert g.attrs["units"] == "mGal"


def test_damping_rises_after_a_poor_step_and_falls_after_good_ones():
    objective = _objective(names=("a",))
    gn = GaussNewton(
        objective,
        beta=lambda m, i: 1.0,
        stopping=BandStopping(
            TradeOff(objective, 1.0, ScheduleSettings()), max_iterations=1, stagnation_tolerance=0.0
        ),
        adaptive_damping=True,
    )
    gn._adapt_damping(0.1)
    assert gn.damping == pytest.approx(0.1)
    gn._adapt_damping(0.1)
    assert gn.damping == pytest.approx(0.4)
    gn._adapt_damping(0.5)  # neither poor nor good: kept
    assert gn.damping == pytest.approx(0.4)
    gn._adapt_damping(0.9)
    assert gn.damping == pytest.approx(0.4 / 3)
    gn._adapt_damping(0.9)
    assert gn.damping == pytest.approx(0.4 / 9)
    gn._adapt_damping(0.9)  # below the starting value: off
    assert gn.damping == 0.0
    # a linear problem gains what its quadratic model predicts: no damping at all
    result = gn.run(np.ones(2 * N))
    assert result.nit == 1 and result.iterations[-1].step_length == 1.0
    assert all(r.damping == 0.0 for r in result.iterations)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            {"modalities.gravity.biases": ["static"]},
            "modalities.gravity.biases: a gravity modality takes offset, trend, loop_offset, "
            "not static",
        ),
        ({"modalities.gravity.biases": ["offset", "offset"]}, "names a bias twice"),
        (
            {"modalities.gravity.biases": ["loop_offset"]},
            "gravity.csv: the loop_offset bias needs a 'loop' column in this file",
        ),
        (
            {"inversion.chi2_band": [1.1, 1.3]},
            "inversion: chi2_band must be [low, high] with low <= 1 <= high",
        ),
        ({"inversion.coupling_strength": 0}, "inversion.coupling_strength: must be > 0"),
    ],
)
def test_bad_schedule_and_bias_settings_are_one_line_errors(workspace: Workspace, change, message):
    config = workspace.variant(change, base=gravity_only_mapping())
    result = CliRunner().invoke(app, ["validate", str(config)])
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert len(result.output.strip().splitlines()) == 1
