"""The conflict test on small linear-Gaussian problems (fast, no engines), and its
config, bias maps and command line."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

from jointinv.bias import AugmentedOperator, BiasBlock, augment, design_matrix, layout
from jointinv.conflict import analyze, bootstrap_statistics, fixed_beta_solve, hat_traces
from jointinv.data import ErtData
from jointinv.errors import UserInputError
from jointinv.mesh import MeshSpec, ModelMesh
from jointinv.objective import Block, DataMisfit, Objective, Regularization

MESH = ModelMesh(MeshSpec(0, 4, 2, 1.0, 1.0, n_pad_x=0, n_pad_z=0))
P = MESH.n_cells  # 8 shared parameters
SIZES = {"ert": 20, "traveltime": 25, "gravity": 30}
SIGMA = 0.1
BETA = 1e-4  # a weak prior: the χ² law of T is then (nearly) exact


class KernelOperator:
    """d = K m on the joint model vector, with its Jacobian matrix."""

    has_jacobian = True

    def __init__(self, kernel: np.ndarray) -> None:
        self.kernel = kernel
        self.n_data, self.n_params = kernel.shape

    def forward(self, m):
        return self.kernel @ m

    def jvec(self, m, v):
        return self.kernel @ v

    def jtvec(self, m, w):
        return self.kernel.T @ w

    def jacobian(self, m):
        return self.kernel


class LinearSetup:
    """Coupled: one parameter vector sensed by every operator; alone: each its own copy."""

    def __init__(self, kernels, data, *, biases=()):
        self.kernels = kernels
        self.data = data
        self.names = list(kernels)
        self.biases = [
            BiasBlock(m, "offset", np.ones((SIZES[m], 1)), ["offset"], "u") for m in biases
        ]
        self._cache = {}

    def __getstate__(self):
        return {k: v for k, v in self.__dict__.items() if k != "_cache"} | {"_cache": {}}

    def bias_blocks(self):
        return self.biases

    def objective(self, names):
        key = tuple(names)
        if key not in self._cache:
            misfits = [
                DataMisfit(
                    k, KernelOperator(self.kernels[k]), self.data[k], np.full(SIZES[k], SIGMA)
                )
                for k in key
            ]
            reg = Regularization(
                MESH, [Block("m", 0, P)], np.zeros(P), alpha_s=1.0, alpha_x=0.0, alpha_z=0.0
            )
            obj = Objective(misfits, reg, [])
            self._cache[key] = augment(obj, self.biases, P) if self.biases else obj
        return self._cache[key]

    def start(self):
        return np.zeros(P + sum(b.size for b in self.biases))

    def solve(self, objective, m0):
        return fixed_beta_solve(objective, m0, beta=BETA, iterations=1)


def kernels(seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {k: rng.standard_normal((n, P)) for k, n in SIZES.items()}


def simulate(k, rng, *, offset=0.0):
    m = rng.standard_normal(P)
    data = {name: kk @ m + SIGMA * rng.standard_normal(len(kk)) for name, kk in k.items()}
    data["gravity"] = data["gravity"] + offset
    return data


# --- statistic and calibration ------------------------------------------------------------
def test_statistic_is_nonnegative_and_dof_is_the_parameter_difference():
    k = kernels()
    setup = LinearSetup(k, simulate(k, np.random.default_rng(1)))
    a = analyze(setup)
    assert a.statistic >= -1e-8
    # with a weak prior the hat matrices are projections: ν = 3·8 − 8
    assert a.dof == pytest.approx(2 * P, rel=1e-3)
    assert [r.name for r in a.rows] == ["ert", "traveltime", "gravity"]
    for r in a.rows:
        assert r.chi2_alone <= r.chi2_joint + 1e-9


def test_false_positive_rate_on_consistent_data():
    k = kernels()
    rng = np.random.default_rng(2)
    n = 200
    flagged = sum(
        analyze(LinearSetup(k, simulate(k, rng)), attribution=False).conflict for _ in range(n)
    )
    rate = flagged / n
    print(f"false-positive rate at alpha = 0.05: {rate:.3f} ({flagged}/{n})")
    assert 0.02 <= rate <= 0.09


def test_power_and_attribution_with_a_gravity_offset_of_three_sigma():
    k = kernels()
    rng = np.random.default_rng(3)
    n = 100
    results = [analyze(LinearSetup(k, simulate(k, rng, offset=3 * SIGMA))) for _ in range(n)]
    power = np.mean([a.conflict for a in results])
    named = np.mean([a.suspect == "gravity" for a in results])
    print(f"power: {power:.2f}, attribution to gravity: {named:.2f}")
    assert power >= 0.9
    assert named >= 0.9
    gravity = results[0].rows[2]
    assert gravity.name == "gravity" and gravity.verdict == "conflict"


def test_a_modality_is_in_conflict_only_when_the_test_is():
    """Row verdicts follow the overall verdict: on consistent data a row's own
    p-value may fall below α (8 of these 30 sets at α = 0.3) without a conflict."""
    k = kernels()
    rng = np.random.default_rng(3)
    results = [analyze(LinearSetup(k, simulate(k, rng)), alpha=0.3) for _ in range(30)]
    quiet = [a for a in results if not a.conflict and any(r.p_value < 0.3 for r in a.rows)]
    assert len(quiet) >= 3  # the case this rule is for does occur
    for a in results:
        for r in a.rows:
            assert (r.verdict == "conflict") == (a.conflict and r.p_value < 0.3)


def test_augmentation_recovers_the_offset_and_removes_the_conflict():
    k = kernels()
    rng = np.random.default_rng(4)
    offset = 3 * SIGMA
    data = simulate(k, rng, offset=offset)
    assert analyze(LinearSetup(k, data)).conflict
    a = analyze(LinearSetup(k, data, biases=["gravity"]))
    (b,) = a.biases
    print(f"offset {offset:g}: estimate {b.value:.4f} ± {b.std:.4f}")
    assert abs(b.value - offset) < 2 * b.std
    assert b.std < SIGMA  # 30 data: σ/√30 and a bit
    assert not a.conflict
    assert a.augmented
    # and over many realisations the augmented test is calibrated again
    flagged = [
        analyze(LinearSetup(k, simulate(k, rng, offset=offset), biases=["gravity"])).conflict
        for _ in range(60)
    ]
    assert np.mean(flagged) <= 0.12


def test_hutchinson_traces_approach_the_exact_ones(monkeypatch):
    import jointinv.conflict as conflict

    k = kernels()
    setup = LinearSetup(k, simulate(k, np.random.default_rng(5)))
    obj = setup.objective(tuple(setup.names))
    m = setup.solve(obj, setup.start())
    exact = hat_traces(obj, m)
    monkeypatch.setattr(conflict, "DENSE_LIMIT", 0)
    probed = hat_traces(obj, m, probes=400, seed=0)
    assert sum(probed.values()) == pytest.approx(sum(exact.values()), rel=0.1)
    assert probed == hat_traces(obj, m, probes=400, seed=0)


# --- bootstrap -------------------------------------------------------------------------
def test_bootstrap_is_reproducible_serially_and_with_workers():
    k = kernels()
    data = simulate(k, np.random.default_rng(6), offset=SIGMA)
    serial = analyze(LinearSetup(k, data), bootstrap=24, seed=7, attribution=False)
    again = analyze(LinearSetup(k, data), bootstrap=24, seed=7, attribution=False)
    pooled = analyze(LinearSetup(k, data), bootstrap=24, seed=7, workers=2, attribution=False)
    print(f"bootstrap p: serial {serial.p_bootstrap}, 2 workers {pooled.p_bootstrap}")
    assert serial.bootstrap_statistics == again.bootstrap_statistics
    assert serial.bootstrap_statistics == pooled.bootstrap_statistics
    assert serial.p_bootstrap == pooled.p_bootstrap
    assert serial.p_value == serial.p_bootstrap
    other = analyze(LinearSetup(k, data), bootstrap=24, seed=8, attribution=False)
    assert other.bootstrap_statistics != serial.bootstrap_statistics


def test_bootstrap_replicates_follow_the_chi2_law():
    k = kernels()
    setup = LinearSetup(k, simulate(k, np.random.default_rng(9)))
    pred = {n: np.zeros(SIZES[n]) for n in SIZES}
    std = {n: np.full(SIZES[n], SIGMA) for n in SIZES}
    t = np.asarray(bootstrap_statistics(setup, pred, std, n=150, seed=0))
    assert t.mean() == pytest.approx(2 * P, rel=0.15)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"alpha": 0.0}, "alpha must lie in (0, 1), got 0"),
        ({"alpha": 1.5}, "alpha must lie in (0, 1), got 1.5"),
        ({"bootstrap": -1}, "the number of bootstrap replicates must be >= 1, got -1"),
        ({"workers": 0}, "workers must be >= 1, got 0"),
    ],
)
def test_bad_options_are_user_errors(options, message):
    k = kernels()
    with pytest.raises(UserInputError, match=re.escape(message)):
        analyze(LinearSetup(k, simulate(k, np.random.default_rng(0))), **options)


# --- bias maps ----------------------------------------------------------------------------
def test_augmented_operator_adjoint_and_derivative():
    rng = np.random.default_rng(10)
    kernel = rng.standard_normal((12, P))

    class Quadratic(KernelOperator):
        def forward(self, m):
            return self.kernel @ m + 0.1 * (self.kernel @ m) ** 2

        def jvec(self, m, v):
            return (1 + 0.2 * (self.kernel @ m)) * (self.kernel @ v)

        def jtvec(self, m, w):
            return self.kernel.T @ ((1 + 0.2 * (self.kernel @ m)) * w)

        def jacobian(self, m):
            return (1 + 0.2 * (self.kernel @ m))[:, None] * self.kernel

    x = np.linspace(0, 22, 12)
    abmn = np.array([[i, i + 1, i + 2, i + 3] for i in range(12)])  # 15 electrodes
    electrodes = np.column_stack([2.0 * np.arange(15), np.zeros(15)])
    ert = ErtData(electrodes, abmn, np.ones(12), np.ones(12), "analytic")
    blocks = [
        BiasBlock("g", "offset", np.ones((12, 1)), ["offset"], "mGal"),
        BiasBlock("g", "trend", (x - x.mean())[:, None], ["trend"], "mGal/m"),
        BiasBlock("g", "electrode", *design_matrix("electrode", ert, 12), "ln(ohm*m)"),
    ]

    n = layout(blocks, P)
    op = AugmentedOperator(Quadratic(kernel), n, blocks)
    m, v, w = rng.standard_normal(n), rng.standard_normal(n), rng.standard_normal(12)
    assert w @ op.jvec(m, v) == pytest.approx(v @ op.jtvec(m, w), rel=1e-12)
    np.testing.assert_allclose(op.jacobian(m) @ v, op.jvec(m, v), rtol=1e-12)
    errors = []
    for h in (1e-2, 1e-3):
        r = op.forward(m + h * v) - op.forward(m) - h * op.jvec(m, v)
        errors.append(np.linalg.norm(r))
    assert errors[1] < errors[0] / 50  # second order


def test_beta0_ignores_the_bias_parameters():
    """β0 is estimated on the model part: a bias column of N/σ² (a traveltime static of 23
    picks of 0.5 ms: 9e7) must not set the data Hessian's largest eigenvalue."""
    from jointinv.inversion import estimate_beta0

    k = kernels()
    data = simulate(k, np.random.default_rng(13))
    plain = LinearSetup(k, data)
    biased = LinearSetup(k, data, biases=["ert", "gravity"])
    for b in biased.biases:
        b.design = b.design * 1e4  # a very stiff bias column
    m0 = plain.start()
    names = tuple(plain.names)
    expected = estimate_beta0(plain.objective(names), m0, ratio=1.0, rng=np.random.default_rng(0))
    got = estimate_beta0(
        biased.objective(names), biased.start(), ratio=1.0, rng=np.random.default_rng(0)
    )
    assert got == pytest.approx(expected, rel=1e-12)


def test_design_matrices():
    class Gravity:
        stations = np.array([[0.0, 0.2], [2.0, 0.2], [4.0, 0.2]])

    class Traveltime:
        shot = np.array([0, 0, 3, 3, 3])  # 0-based sensor indices, as the survey holds them
        sensors = np.array([[0.0, 0.0], [2.0, 0.0], [4.0, 0.0], [6.5, 0.0]])

    d, labels = design_matrix("trend", Gravity, 3)
    np.testing.assert_allclose(d[:, 0], [-2, 0, 2])
    d, labels = design_matrix("static", Traveltime, 5)
    # named as the data file numbers the sensors (from 1), with the position
    assert labels == ["shot 1 at x = 0.0 m", "shot 4 at x = 6.5 m"]
    np.testing.assert_allclose(d.sum(axis=0), [2, 3])
    assert design_matrix("offset", None, 4)[0].shape == (4, 1)


def test_electrode_design_marks_the_potential_electrodes_of_each_datum():
    """A bad contact biases the data that use the electrode as M or N (the voltmeter
    reads less), not those where it injects current (the current is measured)."""
    abmn = np.array([[0, 1, 2, 3], [1, 2, 3, 4], [4, 3, 1, 0], [0, -1, 4, -1]])
    electrodes = np.array([[0.0, 0], [2, 0], [4, 0], [6, 0], [8.5, 0]])
    ert = ErtData(electrodes, abmn, np.ones(4), np.ones(4), "analytic")
    d, labels = design_matrix("electrode", ert, 4)
    # numbered as the data file numbers them (from 1), with their position
    assert labels == [
        "electrode 1 at x = 0.0 m",
        "electrode 2 at x = 2.0 m",
        "electrode 3 at x = 4.0 m",
        "electrode 4 at x = 6.0 m",
        "electrode 5 at x = 8.5 m",
    ]
    np.testing.assert_array_equal(
        d, [[0, 0, 1, 1, 0], [0, 0, 0, 1, 1], [1, 1, 0, 0, 0], [0, 0, 0, 0, 1]]
    )
    # an electrode only ever used for current gets no parameter; a remote N none either
    ert.abmn = np.array([[0, 1, 2, 3], [0, 1, 3, -1]])
    d, labels = design_matrix("electrode", ert, 2)
    assert labels == ["electrode 3 at x = 4.0 m", "electrode 4 at x = 6.0 m"]
    np.testing.assert_array_equal(d, [[1, 1], [0, 1]])


def test_loop_offset_design_and_its_errors():
    class Loops:
        source = "g.csv"
        loop = np.array(["day 2", "day 1", "day 2", "day 3"])

    d, labels = design_matrix("loop_offset", Loops, 4)
    assert labels == ["loop day 1 − day 2", "loop day 3 − day 2"]  # the first loop is the reference
    np.testing.assert_array_equal(d, [[0, 0], [1, 0], [0, 0], [0, 1]])
    Loops.loop = np.array(["A", "A"])
    with pytest.raises(UserInputError, match="g.csv: the loop_offset bias needs two or more loops"):
        design_matrix("loop_offset", Loops, 2)
    Loops.loop = None
    with pytest.raises(UserInputError, match="g.csv: the loop_offset bias needs a 'loop' column"):
        design_matrix("loop_offset", Loops, 2)


# --- config and command line ------------------------------------------------------------
@pytest.fixture
def workspace(workspace):
    """The sample workspace plus data/gravity_offset.csv: gravity.csv + 0.015 mGal (5 σ)."""
    from jointinv.readers import read_gravity_csv

    plain = read_gravity_csv(workspace.data / "gravity.csv")
    rows = [f"{x},{z},{g + 0.015:.6f}" for (x, z), g in zip(plain.stations, plain.gz_mgal)]
    (workspace.data / "gravity_offset.csv").write_text("x,z,gz\n" + "\n".join(rows) + "\n")
    return workspace


def two_gravity_mapping(data_b: str = "data/gravity_offset.csv", **conflict) -> dict:
    """Two gravity surveys of one density model on a coarse mesh (fits in about a second);
    by default the second is 5 σ high everywhere (the ``workspace`` of this module)."""
    from .conftest import gravity_only_mapping

    raw = gravity_only_mapping()
    raw["mesh"]["cell_size"] = {"dx": 2.0, "dz": 2.0}
    raw["mesh"]["padding"] = {"n_x": 6, "n_z": 6, "factor": 1.4}
    g = raw["modalities"]["gravity"]
    raw["modalities"]["gravity_b"] = dict(g, data=data_b)
    if conflict:
        raw["conflict"] = conflict
    return raw


def invoke(*args):
    from typer.testing import CliRunner

    from jointinv.cli import app

    return CliRunner().invoke(app, [str(a) for a in args])


def one_line_error(result) -> str:
    """The one error line (log lines of the data loaded before it may precede it)."""
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.stderr, result.stderr
    (line,) = [x for x in result.stderr.splitlines() if x.startswith("error")]
    assert result.stderr.strip().endswith(line), result.stderr
    return line


@pytest.mark.parametrize(
    ("biases", "message"),
    [
        (
            {"gravity": ["bogus"]},
            "conflict.biases.gravity.0: must be one of 'offset', 'trend', 'loop_offset', "
            "'static', 'shift' or 'electrode'",
        ),
        ({"magnetics": ["offset"]}, "conflict.biases.magnetics: no modality 'magnetics'"),
        (
            {"gravity": ["static"]},
            "conflict.biases.gravity: a gravity modality takes offset, trend, loop_offset",
        ),
        (
            {"gravity_b": ["loop_offset"]},
            "gravity_offset.csv: the loop_offset bias needs a 'loop' column in this file",
        ),
    ],
)
def test_bad_bias_declarations_are_one_line_errors(workspace, biases, message):
    path = workspace.write("two.yaml", two_gravity_mapping(biases=biases))
    for command in ("validate", "conflict-test"):
        assert message in one_line_error(invoke(command, path))


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--alpha", "0"], "alpha must lie in (0, 1), got 0"),
        (["--alpha", "1"], "alpha must lie in (0, 1), got 1"),
        (["--bootstrap", "0"], "the number of bootstrap replicates must be >= 1, got 0"),
        (["--workers", "0"], "workers must be >= 1, got 0"),
    ],
)
def test_bad_options_are_one_line_errors(workspace, args, message):
    path = workspace.write("two.yaml", two_gravity_mapping())
    assert message in one_line_error(invoke("conflict-test", path, *args))


def test_config_alpha_outside_the_unit_interval(workspace):
    path = workspace.write("two.yaml", two_gravity_mapping(alpha=1.5))
    assert "two.yaml: conflict.alpha: must be < 1" in one_line_error(invoke("validate", path))


def test_cli_finds_the_biased_gravity_file_and_the_offset_explains_it(workspace, tmp_path):
    path = workspace.write("two.yaml", two_gravity_mapping(biases={"gravity_b": ["offset"]}))
    result = invoke("conflict-test", path, "--json", tmp_path / "r.json", "-o", tmp_path / "r.h5")
    assert result.exit_code == 0, result.output  # the verdict rests on the augmented test
    assert "Conflict test, data as given" in result.stdout
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["plain"]["conflict"] and report["plain"]["p_value"] < 1e-6
    (bias,) = report["augmented"]["biases"]
    assert bias["modality"] == "gravity_b" and bias["units"] == "mGal"
    assert abs(bias["value"] - 0.015) < 2 * bias["std"]
    assert not report["augmented"]["conflict"]
    import h5py

    with h5py.File(tmp_path / "r.h5") as f:
        assert f.attrs["exit_code"] == 0
        assert f["plain"].attrs["conflict"]
        assert f["augmented/biases/value"][0] == pytest.approx(bias["value"])
        assert f["augmented/biases/correlation"][0] == pytest.approx(bias["correlation"])
        assert bool(f["augmented/biases/separable"][0]) == bias["separable"]
        assert f["augmented"].attrs["calibration"] == report["augmented"]["calibration"]
    # a constant offset of one of two surveys of one density model: separable (ρ < 0.9),
    # and with 5 σ on 32 stations significant
    assert 0.0 <= bias["correlation"] < 0.9 and bias["separable"] and bias["significant"]


def test_plain_pass_is_reported_before_the_pass_with_biases(workspace, caplog):
    """conflict_test hands over the report of the plain pass (complete: false) before the
    pass with the biases starts; the final report is complete and keeps the same plain pass.
    Every fit logs one progress line per iteration naming its hypothesis."""
    import logging

    from jointinv.conflict import conflict_test

    path = workspace.write("two.yaml", two_gravity_mapping(biases={"gravity_b": ["offset"]}))
    partial = []
    with caplog.at_level(logging.INFO, logger="jointinv.conflict"):
        report = conflict_test(path, on_partial=partial.append)
    (first,) = partial
    assert not first.complete and first.augmented is None
    assert first.to_dict()["complete"] is False
    assert report.complete and report.augmented is not None
    assert first.plain.statistic == report.plain.statistic
    lines = [r.getMessage() for r in caplog.records if ": iteration " in r.getMessage()]
    assert any(m.startswith("conflict test: coupled fit of gravity+gravity_b") for m in lines)
    assert any(m.startswith("conflict test: fit of gravity at beta*: iteration 1, chi2 gravity ")
               for m in lines)
    assert any(m.startswith("conflict test: with biases: fit of gravity_b at beta*") for m in lines)
    # the pass with the biases runs its own schedule (a warm start stalled; docs/conflict.md)
    assert any("with biases: coupled fit of gravity+gravity_b" in m for m in lines)


def test_report_files_say_whether_they_are_complete(workspace, tmp_path):
    path = workspace.write("two.yaml", two_gravity_mapping(biases={"gravity_b": ["offset"]}))
    result = invoke("conflict-test", path, "--json", tmp_path / "r.json", "-o", tmp_path / "r.h5")
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "r.json").read_text())["complete"] is True
    import h5py

    with h5py.File(tmp_path / "r.h5") as f:
        assert bool(f.attrs["complete"])


def test_loop_offset_of_part_of_a_survey_is_found_and_estimated(workspace, tmp_path):
    """Survey b is the biased sample: survey a with loop B (stations x >= 32 m, read
    on another base tie) 0.015 mGal (5 σ) high. The test finds the conflict and
    the loop_offset bias recovers the step."""
    raw = two_gravity_mapping("data/gravity_biased.csv", biases={"gravity_b": ["loop_offset"]})
    path = workspace.write("loops.yaml", raw)
    result = invoke("conflict-test", path, "--json", tmp_path / "r.json")
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["plain"]["conflict"] and report["plain"]["p_value"] < 1e-6
    (bias,) = report["augmented"]["biases"]
    assert (bias["kind"], bias["label"], bias["units"]) == ("loop_offset", "loop B − A", "mGal")
    assert abs(bias["value"] - 0.015) < 2 * bias["std"] and bias["std"] < 0.005
    assert not report["augmented"]["conflict"]


def test_cli_exit_codes_of_consistent_and_conflicting_data(workspace):
    same = workspace.write("same.yaml", two_gravity_mapping("data/gravity.csv"))
    biased = workspace.write("two.yaml", two_gravity_mapping())
    assert invoke("conflict-test", same).exit_code == 0
    result = invoke("conflict-test", biased)
    assert result.exit_code == 3
    assert "CONFLICT" in result.stdout


def test_config_bootstrap_is_the_same_serially_and_with_workers(workspace):
    from jointinv.conflict import conflict_test

    path = workspace.write("two.yaml", two_gravity_mapping(seed=3))
    serial = conflict_test(path, bootstrap=4, alpha=0.25)
    pooled = conflict_test(path, bootstrap=4, alpha=0.25, workers=2)
    assert len(set(serial.plain.bootstrap_statistics)) == 4
    assert serial.plain.bootstrap_statistics == pooled.plain.bootstrap_statistics
    # the 5 σ offset: T beats every replicate, p = 1 / (N + 1)
    assert serial.plain.p_bootstrap == pooled.plain.p_bootstrap == pytest.approx(1 / 5)
    assert serial.exit_code == pooled.exit_code == 3


def test_replicate_fits_warm_start_and_iteration_cap(workspace, monkeypatch):
    """Replicate fits follow the observed fits' stopping rule; a lower cap is opt-in."""
    import jointinv.conflict as conflict
    from jointinv.config import load_config

    path = workspace.write("two.yaml", two_gravity_mapping())
    setup = conflict.ConfigSetup(load_config(path))
    a = analyze(setup, bootstrap=2, attribution=False)
    assert len(setup.fits) == 3 + 2 * 3  # coupled + 2 alone, then the same per replicate
    assert not setup.replicate
    monkeypatch.setattr(conflict, "REPLICATE_MAX_ITERATIONS", 1)
    capped = conflict.ConfigSetup(load_config(path))
    b = analyze(capped, bootstrap=2, attribution=False)
    assert b.statistic == a.statistic  # the observed fits are not capped
    assert [f[1] for f in capped.fits[:3]] == [f[1] for f in setup.fits[:3]]
    assert all(nit <= 1 for _, nit, _, _ in capped.fits[3:])


def test_biased_sample_and_its_config():
    from jointinv.config import load_config
    from jointinv.readers import read_gravity_csv

    from .conftest import REPO, SAMPLES

    plain = read_gravity_csv(SAMPLES / "gravity.csv")
    biased = read_gravity_csv(SAMPLES / "gravity_biased.csv")
    loop_b = plain.stations[:, 0] >= 32.0
    assert biased.loop.tolist() == ["B" if b else "A" for b in loop_b]
    np.testing.assert_allclose(biased.gz_mgal - plain.gz_mgal, 0.015 * loop_b, atol=1e-6)
    np.testing.assert_allclose(biased.stations, plain.stations)
    loaded = load_config(REPO / "configs" / "conflict_biased.yaml")
    assert loaded.config.conflict.biases == {"gravity": ["loop_offset"]}
    assert loaded.resolve(loaded.config.modalities["gravity"].data).name == "gravity_biased.csv"


def test_a_constant_gravity_offset_is_the_field_of_a_deep_layer():
    """Why no coupling test can see a constant gravity offset on a 2D profile.

    A uniform density contrast in every cell below the 18 m core of the quick start
    produces a 5 σ offset (0.015 mGal) at all 32 stations to within 0.05 σ, and its density gradient
    is vertical where the true resistivity and velocity are uniform, so the
    cross-gradient terms do not change: a coupled model absorbs the offset exactly
    as the gravity-only model does, and the likelihood ratio has no power for it.
    """
    from jointinv.config import load_config
    from jointinv.engines.gravity import GravitySimulation
    from jointinv.objective import CrossGradient
    from jointinv.problem import build_mesh
    from jointinv.readers import read_gravity_csv
    from jointinv.samples import BlockInLayers, cell_average

    from .conftest import REPO, SAMPLES

    mesh = build_mesh(load_config(REPO / "configs" / "conflict_biased.yaml").config)
    sim = GravitySimulation(mesh, read_gravity_csv(SAMPLES / "gravity.csv").stations)
    deep = (mesh.cell_centers[:, 1] < -18.0).astype(float)
    gz_unit = sim.forward(sim.transfer(deep))  # mGal per g/cm^3
    contrast = 0.015 / gz_unit.mean()  # g/cm^3
    gz = contrast * gz_unit
    print(f"deep layer {contrast:.4f} g/cm^3: gz {gz.min():.5f} … {gz.max():.5f} mGal")
    assert contrast < 0.005  # a plausible contrast, invisible to ERT and refraction
    assert np.abs(gz - 0.015).max() < 0.05 * 0.003

    true = cell_average(BlockInLayers.load(SAMPLES / "true_model.json"), mesh.nodes_x, mesh.nodes_z)
    n = mesh.n_cells
    a, b = Block("a", 0, n), Block("b", n, n)
    for prop in ("resistivity", "velocity"):
        term = CrossGradient("cg", mesh, a, b, weight=1.0)
        before = np.concatenate([np.log(true[prop]), true["density_contrast"]])
        after = before + np.concatenate([np.zeros(n), contrast * deep])
        np.testing.assert_allclose(term.tau(after), term.tau(before), atol=1e-12)


@pytest.mark.slow
def test_bootstrap_false_positive_rate_on_consistent_data():
    """The bootstrap p-value is calibrated: 200 consistent data sets, N = 199 each.

    With N replicates, p = (1 + #{T* >= T}) / (N + 1) < 0.05 exactly when at
    most 8 of the 199 replicates reach T, which has probability 9/200 = 0.045
    for exchangeable T and T*. Each replicate refits from the coupled solution
    of the observed data (the warm start of :func:`bootstrap_statistics`).
    """
    k = kernels()
    rng = np.random.default_rng(12)
    n = 200
    results = [
        analyze(LinearSetup(k, simulate(k, rng)), bootstrap=199, seed=i, attribution=False)
        for i in range(n)
    ]
    p_boot = np.asarray([a.p_bootstrap for a in results])
    p_fast = np.asarray([a.p_fast for a in results])
    rate = float(np.mean(p_boot < 0.05))
    print(
        f"bootstrap false-positive rate at alpha = 0.05: {rate:.3f}; "
        f"chi2 approximation: {np.mean(p_fast < 0.05):.3f}; "
        f"max |p_boot - p_fast| = {np.abs(p_boot - p_fast).max():.3f}"
    )
    assert 0.02 <= rate <= 0.09
    assert all(a.conflict == (a.p_bootstrap < 0.05) for a in results)
    # here the χ² law is exact, so the two calibrations agree up to Monte Carlo error
    assert np.abs(p_boot - p_fast).max() < 0.1


@pytest.mark.slow
def test_quickstart_with_biased_gravity():
    """configs/conflict_biased.yaml end to end (17 min on 2 cores): loop B of the
    gravity (x >= 32 m) is 0.015 mGal (5 σ) high.

    Measured: the plain test finds no conflict (T = −20.4, ν = 52.7): the coupled
    density model absorbs the step (gravity χ² joint 0.52), so the data show no
    conflict, and the test must not invent one. The declared loop offset is
    estimated at 0.0143 ± 0.0063 mGal, the injected 0.015 within 2 σ.
    """
    from jointinv.conflict import conflict_test

    from .conftest import REPO

    report = conflict_test(REPO / "configs" / "conflict_biased.yaml")
    print(json.dumps(report.to_dict(), indent=1, default=float))
    plain, augmented = report.plain, report.augmented
    assert not plain.conflict
    assert {r.name: r for r in plain.rows}["gravity"].chi2_joint < 1.0  # absorbed
    (bias,) = augmented.biases
    assert (bias.kind, bias.label, bias.units) == ("loop_offset", "loop B − A", "mGal")
    assert abs(bias.value - 0.015) < 2 * bias.std
    assert bias.std < 0.01  # σ below 2/3 of the 0.015 mGal step: the data resolve it
    assert not augmented.conflict
    assert all(r.verdict == "consistent" for r in augmented.rows)
    assert report.exit_code == 0


# --- linearised attribution and bootstrap, reliability of ν, bias correlations ------------
def test_linearised_attribution_equals_the_refits_on_a_linear_problem():
    """On a linear problem the quadratic model about the coupled solution is exact: the
    leave-one-out T₋ₖ and ν₋ₖ of the linearised attribution are those of the refits."""
    k = kernels()
    data = simulate(k, np.random.default_rng(13), offset=3 * SIGMA)
    lin = analyze(LinearSetup(k, data), attribution="linearised")
    ref = analyze(LinearSetup(k, data), attribution="refit")
    # linear: the fits are at the minima of their quadratic models, T_lin = T
    assert lin.statistic_linearised == pytest.approx(lin.statistic, rel=1e-8, abs=1e-8)
    assert (lin.attribution, ref.attribution) == ("linearised", "refit")
    for a, b in zip(lin.rows, ref.rows):
        assert a.tension == pytest.approx(b.tension, rel=1e-6, abs=1e-6)
        assert a.dof == pytest.approx(b.dof, rel=1e-6)
        assert a.p_value == pytest.approx(b.p_value, rel=1e-5, abs=1e-9)
    assert lin.suspect == ref.suspect == "gravity"


def test_linearised_bootstrap_equals_the_refits_on_a_linear_problem():
    k = kernels()
    data = simulate(k, np.random.default_rng(14), offset=SIGMA)
    ref = analyze(LinearSetup(k, data), bootstrap=30, seed=3, attribution=False)
    lin = analyze(
        LinearSetup(k, data), bootstrap=30, seed=3, attribution=False, bootstrap_mode="linearised"
    )
    assert (ref.calibration, lin.calibration) == ("bootstrap", "linearised bootstrap")
    np.testing.assert_allclose(lin.bootstrap_statistics, ref.bootstrap_statistics, atol=1e-6)
    assert lin.p_bootstrap == ref.p_bootstrap


class MildlyNonlinear(KernelOperator):
    """d = K m + c (K m)²: a nonlinear forward with an exact Jacobian."""

    def __init__(self, kernel, c):
        super().__init__(kernel)
        self.c = c

    def forward(self, m):
        u = self.kernel @ m
        return u + self.c * u**2

    def jvec(self, m, v):
        return (1 + 2 * self.c * (self.kernel @ m)) * (self.kernel @ v)

    def jtvec(self, m, w):
        return self.kernel.T @ ((1 + 2 * self.c * (self.kernel @ m)) * w)

    def jacobian(self, m):
        return (1 + 2 * self.c * (self.kernel @ m))[:, None] * self.kernel


class NonlinearSetup(LinearSetup):
    """The linear setup with a quadratic term in every forward; fits are Gauss-Newton
    iterated to convergence."""

    C = 0.1

    def objective(self, names):
        key = tuple(names)
        if key not in self._cache:
            obj = super().objective(names)
            for t in obj.misfits:
                t.operator = MildlyNonlinear(self.kernels[t.name], self.C)
            self._cache[key] = obj
        return self._cache[key]

    def solve(self, objective, m0):
        return fixed_beta_solve(objective, m0, beta=BETA, iterations=12)


def test_linearised_bootstrap_is_close_to_the_refits_on_a_nonlinear_problem():
    """Jacobians frozen at the solutions of the observed data: on a mildly nonlinear
    problem the replicate statistics stay within a small fraction of their spread of
    the refitted ones, and the p-values agree."""
    k = kernels()
    rng = np.random.default_rng(15)
    m = rng.standard_normal(P)
    clean = {n: MildlyNonlinear(kk, NonlinearSetup.C).forward(m) for n, kk in k.items()}
    data = {n: d + SIGMA * rng.standard_normal(len(d)) for n, d in clean.items()}
    ref = analyze(NonlinearSetup(k, data), bootstrap=40, seed=1, attribution=False)
    lin = analyze(
        NonlinearSetup(k, data), bootstrap=40, seed=1, attribution=False,
        bootstrap_mode="linearised",
    )
    t_ref, t_lin = np.asarray(ref.bootstrap_statistics), np.asarray(lin.bootstrap_statistics)
    spread = t_ref.std()
    print(f"T* refit {t_ref.mean():.2f} ± {spread:.2f}, linearised {t_lin.mean():.2f}; "
          f"max |Δ| {np.abs(t_lin - t_ref).max():.3f}")
    assert np.abs(t_lin - t_ref).max() > 1e-6  # the problem is nonlinear: not identical
    assert np.abs(t_lin - t_ref).max() < 0.2 * spread
    assert abs(lin.p_bootstrap - ref.p_bootstrap) <= 3 / 41


def test_woodbury_and_cg_solves_and_exact_traces_match_the_dense_ones(monkeypatch):
    """Above DENSE_LIMIT the Hessian is solved as sparse part + low rank (Woodbury),
    with exact traces; both agree with the dense Cholesky, and so does CG."""
    import jointinv.conflict as conflict

    k = kernels()
    setup = LinearSetup(k, simulate(k, np.random.default_rng(16)), biases=["gravity"])
    obj = setup.objective(tuple(setup.names))
    m = setup.solve(obj, setup.start())
    z = np.random.default_rng(0).standard_normal(len(m))
    dense = conflict.hessian_solver(obj, m)(z)
    exact = hat_traces(obj, m)
    monkeypatch.setattr(conflict, "DENSE_LIMIT", 0)
    woodbury = conflict.hessian_solver(obj, m)
    assert hasattr(woodbury, "traces")
    np.testing.assert_allclose(woodbury(z), dense, rtol=1e-6)
    traces = conflict.trace_samples(obj, m, solve=woodbury)
    for name, v in exact.items():
        assert traces[name] == pytest.approx([v], rel=1e-8)
    np.testing.assert_allclose(conflict._cg_solve(obj, m, z, rtol=1e-10), dense, rtol=1e-6)


@pytest.mark.parametrize(
    ("t", "dof", "std", "t_lin", "reason"),
    [
        (5.0, -3.0, 0.0, 5.0, "nu = -3 < 1"),
        (5.0, 0.4, 0.0, 5.0, "nu = 0.4 < 1"),
        (5.0, 12.0, 5.0, 5.0, "Hutchinson error of nu (5) above nu/3"),
        (-17.6, 37.1, 0.0, -17.6, "T = -17.6 below -sqrt(2 nu) = -8.61"),
        # the quick start: T = 51.5, nu = 3.49, T_lin = 4.89
        (51.5, 3.49, 0.0, 4.89, "|T - T_lin| = 46.6 above sqrt(2 nu) = 2.64"),
        (-5.0, 37.1, 1.0, -4.0, ""),
        (40.0, 37.1, 1.0, 38.0, ""),
    ],
)
def test_dof_check(t, dof, std, t_lin, reason):
    from jointinv.conflict import dof_check

    note = dof_check(t, dof, std, t_lin)
    assert note.startswith(reason) if reason else note == ""


def test_unreliable_dof_falls_back_to_a_linearised_bootstrap(monkeypatch, caplog):
    """When ν fails dof_check the p-value comes from the linearised bootstrap; on the
    linear problem (where the χ² law is in fact exact) the two p-values agree."""
    import logging

    import jointinv.conflict as conflict

    k = kernels()
    data = simulate(k, np.random.default_rng(17), offset=SIGMA)
    plain = analyze(LinearSetup(k, data), fallback_replicates=199)
    assert plain.dof_reliable and plain.calibration == "chi2" and plain.p_bootstrap is None
    monkeypatch.setattr(conflict, "MIN_DOF", 100.0)  # ν = 16: declared unreliable
    with caplog.at_level(logging.WARNING, logger="jointinv.conflict"):
        a = analyze(LinearSetup(k, data), fallback_replicates=199)
    assert not a.dof_reliable and a.dof_note.startswith("nu = 16 < 100")
    assert a.calibration == "linearised bootstrap" and len(a.bootstrap_statistics) == 199
    assert a.p_value == a.p_bootstrap
    print(f"p(chi2) {a.p_fast:.3f}, p(linearised bootstrap) {a.p_bootstrap:.3f}")
    assert abs(a.p_bootstrap - a.p_fast) < 0.1
    assert "unreliable" in caplog.text
    report = a.to_dict()
    assert report["dof_reliable"] is False and report["calibration"] == "linearised bootstrap"


def test_bias_correlation_flags_a_bias_the_model_can_mimic():
    """ρ² = 1 − 1/(A_bb·(A⁻¹)_bb) is the squared multiple correlation of the bias with
    the other parameters; a gravity offset that a model parameter reproduces (a
    constant column of the gravity kernel) is not separable and never significant,
    the same offset on a random kernel is separable and significant."""
    from jointinv.conflict import squared_multiple_correlation

    k = kernels()
    rng = np.random.default_rng(18)
    data = simulate(k, rng, offset=5 * SIGMA)
    separable = analyze(LinearSetup(k, data, biases=["gravity"]))
    (b,) = separable.biases
    assert b.separable and b.correlation < 0.5 and b.significant
    from jointinv.conflict import _bias_line

    assert _bias_line(b).endswith(" u (significant)")

    mimic = {n: kk.copy() for n, kk in k.items()}
    mimic["gravity"][:, 0] = 1.0  # parameter 0 adds a constant to every gravity datum
    mimic["ert"][:, 0] = mimic["traveltime"][:, 0] = 0.0  # and nothing else senses it
    data = simulate(mimic, rng, offset=5 * SIGMA)
    a = analyze(LinearSetup(mimic, data, biases=["gravity"]))
    (b,) = a.biases
    print(f"correlation {b.correlation:.4f}, value {b.value:.3f} ± {b.std:.3f}")
    assert b.correlation > 0.9 and not b.separable and not b.significant
    assert _bias_line(b).endswith("u (ρ = 1.00: not separable from the model)")

    # the formula against the regression definition on the posterior covariance
    setup = LinearSetup(mimic, data, biases=["gravity"])
    obj = setup.objective(tuple(setup.names))
    m = setup.solve(obj, setup.start())
    from jointinv.conflict import _dense_hessian

    hess = _dense_hessian(obj, m)
    cov = np.linalg.inv(hess)
    i = P  # the bias
    rest = np.arange(P)
    c = cov[rest, i]
    rho2 = c @ np.linalg.solve(cov[np.ix_(rest, rest)], c) / cov[i, i]
    got = squared_multiple_correlation(np.array([cov[i, i]]), np.array([hess[i, i]]))
    assert got[0] == pytest.approx(rho2, rel=1e-8)
    assert np.sqrt(rho2) == pytest.approx(b.correlation, rel=1e-6)


def test_bad_attribution_and_bootstrap_modes_are_user_errors():
    k = kernels()
    setup = LinearSetup(k, simulate(k, np.random.default_rng(0)))
    with pytest.raises(UserInputError, match=re.escape("attribution must be 'linearised' or")):
        analyze(setup, attribution="exact")
    with pytest.raises(UserInputError, match=re.escape("bootstrap_mode must be 'refit' or")):
        analyze(setup, bootstrap_mode="fast")


@pytest.mark.slow
def test_linearised_bootstrap_false_positive_rate_on_consistent_data():
    """The linearised bootstrap's p-value is calibrated too: 200 consistent data sets,
    N = 99 each (as in the slow test of the refits; on this linear problem each
    replicate is four small Cholesky solves; 15 s of CPU). Measured: 0.030."""
    k = kernels()
    rng = np.random.default_rng(19)
    n = 200
    results = [
        analyze(
            LinearSetup(k, simulate(k, rng)), bootstrap=99, seed=i, attribution=False,
            bootstrap_mode="linearised",
        )
        for i in range(n)
    ]
    rate = float(np.mean([a.p_bootstrap < 0.05 for a in results]))
    print(f"linearised bootstrap false-positive rate at alpha = 0.05: {rate:.3f}")
    assert 0.02 <= rate <= 0.09


@pytest.mark.slow
def test_config_attribution_linearised_and_refit_agree_on_three_gravity_surveys(workspace):
    """Three gravity surveys of one density model, the second 5 σ high: gravity is linear
    in density, so the linearised attribution (no refit) names the same suspect with the
    same tensions as the refits, up to the fits' optimisation error (12 s of CPU).
    Measured tensions (linearised / refit): 130.30 / 130.14, 530.30 / 530.60."""
    from jointinv.conflict import conflict_test

    raw = two_gravity_mapping()
    raw["modalities"]["gravity_c"] = dict(raw["modalities"]["gravity"])
    reports = {}
    for mode in ("linearised", "refit"):
        raw["conflict"] = {"attribution": mode}
        reports[mode] = conflict_test(workspace.write(f"three_{mode}.yaml", raw)).plain
    lin, ref = reports["linearised"], reports["refit"]
    assert (lin.attribution, ref.attribution) == ("linearised", "refit")
    assert lin.statistic == ref.statistic
    assert lin.suspect == ref.suspect == "gravity_b"
    for a, b in zip(lin.rows, ref.rows):
        print(f"{a.name}: tension {a.tension:.3f} / {b.tension:.3f}, nu {a.dof:.3f} / {b.dof:.3f}")
        assert a.tension == pytest.approx(b.tension, rel=0.02, abs=0.5)
        assert a.dof == pytest.approx(b.dof, rel=0.02, abs=0.1)


def test_direct_gauss_newton_steps_converge_in_fewer_iterations(monkeypatch):
    """The fixed-β fits of a config take direct Gauss-Newton steps (here Woodbury, the
    large-problem path): on the mildly nonlinear problem they reach the minimum that
    tight CG steps reach, in fewer iterations than CG to a loose tolerance (the quick
    start's 1e-2, here at most 2 CG iterations for 8 parameters)."""
    import jointinv.conflict as conflict
    from jointinv.inversion import BetaCooling, GaussNewton, Stopping

    k = kernels()
    rng = np.random.default_rng(20)
    m_true = 2.0 * rng.standard_normal(P)
    data = {n: MildlyNonlinear(kk, 0.1).forward(m_true) for n, kk in k.items()}
    monkeypatch.setattr(conflict, "DENSE_LIMIT", 0)

    def fit_with(cls, tolerance=1e-3, **cg):
        obj = NonlinearSetup(k, data).objective(tuple(k))
        stop = Stopping({n: -1.0 for n in k}, max_iterations=30, stagnation_tolerance=tolerance)
        gn = cls(obj, beta=BetaCooling(BETA, factor=1.0), stopping=stop, **cg)
        result = gn.run(np.zeros(P))
        return obj.value(result.model), result.nit

    best, _ = fit_with(GaussNewton, 1e-12, cg_tolerance=1e-12, cg_max_iterations=1000)
    direct, n_direct = fit_with(conflict.DirectGaussNewton)
    loose, n_loose = fit_with(GaussNewton, cg_tolerance=1e-2, cg_max_iterations=2)
    print(f"Φ: tight CG {best:.6g}, direct {direct:.6g} ({n_direct} it), loose {loose:.6g} "
          f"({n_loose} it)")
    assert direct == pytest.approx(best, rel=1e-6)
    assert n_direct < n_loose


def test_fits_short_of_their_minima_are_caught_and_tested_linearised():
    """Fits stopped after one Gauss-Newton step of a strongly nonlinear problem leave an
    optimisation error in T; T_lin (each fit carried to its quadratic model's minimum)
    shows it, dof_check flags it and the linearised bootstrap tests T_lin, computed as
    its replicates are."""

    class OneStep(NonlinearSetup):
        C = 0.5

        def solve(self, objective, m0):
            return fixed_beta_solve(objective, m0, beta=BETA, iterations=1)

    k = kernels()
    rng = np.random.default_rng(21)
    m = rng.standard_normal(P)
    data = {n: MildlyNonlinear(kk, OneStep.C).forward(m) for n, kk in k.items()}
    data = {n: d + SIGMA * rng.standard_normal(len(d)) for n, d in data.items()}
    a = analyze(OneStep(k, data), attribution=False, fallback_replicates=49)
    print(f"T {a.statistic:.4g}, T_lin {a.statistic_linearised:.4g}, nu {a.dof:.3g}: {a.dof_note}")
    assert abs(a.statistic - a.statistic_linearised) > np.sqrt(2 * a.dof)
    assert not a.dof_reliable and a.dof_note.startswith("|T - T_lin| = ")
    assert a.calibration == "linearised bootstrap"
    t = np.asarray(a.bootstrap_statistics)
    assert a.p_bootstrap == (1 + np.sum(t >= a.statistic_linearised)) / 50


def test_a_failed_line_search_at_beta_star_retries_with_damping():
    """At a fixed β* the fits cannot retreat by raising β; after a failed line search
    they try the step again with Levenberg-Marquardt damping (4× per retry, from
    DAMPING_START), which the direct steps hand over to damped CG."""
    import jointinv.conflict as conflict
    from jointinv.inversion import DAMPING_START, BetaCooling, Stopping

    k = kernels()
    obj = LinearSetup(k, {n: np.zeros(SIZES[n]) for n in k}).objective(tuple(k))
    stop = Stopping({n: -1.0 for n in k}, max_iterations=1, stagnation_tolerance=0.0)
    gn = conflict.DirectGaussNewton(obj, beta=BetaCooling(BETA, factor=1.0), stopping=stop)
    assert gn.damping == 0.0
    assert gn.raise_damping() and gn.damping == DAMPING_START
    assert gn.raise_damping() and gn.damping == pytest.approx(4 * DAMPING_START)
    step, n_cg = gn._search_direction(np.zeros(P), np.ones(P))
    assert n_cg > 0  # damped: CG, not the undamped direct solve
