"""End to end on the bundled sample: the quick start, and the same data inverted one
method at a time. The joint result must fit every dataset and be closer to the true
model than the single-method inversions for at least two of the three properties."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest
import yaml

import jointinv
from jointinv.results import read_result
from jointinv.samples import BlockInLayers, cell_average

from .conftest import gravity_only_mapping

ROOT = Path(__file__).resolve().parents[1]
QUICKSTART = ROOT / "configs" / "quickstart.yaml"
TRUTH = ROOT / "data" / "samples" / "profile2d" / "true_model.json"
SENSED = {"ert": "resistivity", "traveltime": "velocity", "gravity": "density_contrast"}
#: compare where the surveys see: the core region down to 12 m (dipole-dipole and
#: refraction depth of investigation on a 62 m spread)
COMPARE_DEPTH_M = 12.0


def correlation_with_truth(result, prop: str) -> float:
    """Correlation of the model with the truth in the compared region (log for log
    properties)."""
    mesh = result.problem.mesh
    truth = cell_average(BlockInLayers.load(TRUTH), mesh.nodes_x, mesh.nodes_z)[prop]
    model = result.models[prop]
    if result.problem.config.properties[prop].transform == "log":
        truth, model = np.log(truth), np.log(model)
    region = mesh.core_mask & (mesh.cell_centers[:, 1] > -COMPARE_DEPTH_M)
    return float(np.corrcoef(truth[region], model[region])[0, 1])


@pytest.fixture(scope="module")
def joint(quickstart_run):
    return quickstart_run


@pytest.fixture(scope="module")
def singles():
    return {
        name: jointinv.run(QUICKSTART, only=[name], write=False, diagnostics=False)
        for name in SENSED
    }


def test_joint_fits_every_modality(joint):
    print("joint chi2:", joint.chi2, "iterations:", joint.inversion.nit)
    assert set(joint.chi2) == set(SENSED)
    for name, chi2 in joint.chi2.items():
        assert chi2 <= 1.5, f"{name}: chi2 {chi2:.3f}"
    assert joint.inversion.success


def test_joint_is_closer_to_truth_than_single_methods(joint, singles):
    better = []
    for name, prop in SENSED.items():
        r_joint = correlation_with_truth(joint, prop)
        r_single = correlation_with_truth(singles[name], prop)
        print(
            f"{prop:>17s}: correlation with truth joint {r_joint:.3f}, {name} alone "
            f"{r_single:.3f} (chi2 alone {singles[name].chi2[name]:.3f})"
        )
        better.append(r_joint > r_single)
    assert sum(better) >= 2


def test_result_file_round_trip(joint):
    saved = read_result(joint.output)
    for prop, values in joint.models.items():
        np.testing.assert_array_equal(saved.models[prop], values)
    for name, chi2 in joint.chi2.items():
        assert saved.data[name].chi2 == pytest.approx(chi2, rel=1e-12)
        d = saved.data[name]
        np.testing.assert_allclose(d.normalized_residual, (d.observed - d.predicted) / d.std)
    assert saved.meta["stop_reason"] == joint.inversion.message
    assert len(saved.iterations["beta"]) == joint.inversion.nit + 1
    with h5py.File(joint.output) as f:
        assert f["models/resistivity"].shape == (30, 94)
        assert f["models/resistivity"].attrs["units"] == "ohm*m"
        split = sum(f[f"iterations/seconds/{k}"][()].sum() for k in ("forward", "jacobian"))
        assert split > 0
        assert "cross_gradient/resistivity__velocity" in f["iterations/coupling"]
        tau = f["diagnostics/cross_gradient/resistivity__velocity"]
        assert tau.shape == (30, 94) and np.all(tau[()] >= 0)


def test_no_engine_call_is_repeated_for_the_same_model(joint):
    """Each model the line search tries costs one forward call per engine, and each
    Gauss-Newton iteration one Jacobian; the accepted step's response is reused."""
    records = joint.inversion.iterations[1:]
    trials = sum(1 + round(np.log2(1.0 / r.step_length)) for r in records)
    sims = {m.name: m.operator.simulation for m in joint.problem.objective.misfits}
    assert sims["ert"].clock.calls["forward"] == 1 + trials
    assert sims["traveltime"].clock.calls["forward"] == 1 + trials
    # one ERT Jacobian at the start of every iteration (the first serves the β0 estimate),
    # and one at the final model for the posterior diagnostics
    assert sims["ert"].clock.calls["jacobian"] == len(records) + 1


def test_run_from_a_mapping_and_from_a_config_object(workspace, monkeypatch):
    """jointinv.run takes the config as a dict or a Config: paths from the working
    directory, the YAML text written from it into /meta."""
    from jointinv.config import from_mapping

    monkeypatch.chdir(workspace.root)
    raw = gravity_only_mapping()
    by_dict = jointinv.run(raw, diagnostics=False)
    assert by_dict.output == workspace.root / "out" / "gravity.h5"
    by_object = jointinv.run(
        from_mapping(raw), output="out/again.h5", diagnostics=False
    )
    np.testing.assert_array_equal(
        by_dict.models["density_contrast"], by_object.models["density_contrast"]
    )
    with h5py.File(by_dict.output) as f:
        stored = yaml.safe_load(f["meta"].attrs["config_text"])
    assert stored["modalities"]["gravity"]["data"] == raw["modalities"]["gravity"]["data"]
    with pytest.raises(TypeError, match="path, a dict or a Config"):
        jointinv.run(42)
