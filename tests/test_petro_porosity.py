"""Hard petrophysical coupling end to end: one shared porosity drives ERT (Archie),
traveltime (Wyllie) and gravity (density mixing) on the porosity2d sample."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest

import jointinv
from jointinv.samples import PorosityBlocks

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "configs" / "petro_porosity.yaml"
TRUTH = ROOT / "data" / "samples" / "porosity2d" / "true_model.json"


@pytest.fixture(scope="module")
def result(tmp_path_factory):
    return jointinv.run(CONFIG, output=tmp_path_factory.mktemp("petro") / "petro.h5")


def test_every_modality_fits(result):
    print("chi2:", result.chi2, result.inversion.message)
    assert set(result.chi2) == {"ert", "traveltime", "gravity"}
    lo, hi = result.problem.config.inversion.chi2_band
    assert all(lo <= c <= hi for c in result.chi2.values()), result.chi2


def test_porosity_is_recovered(result):
    mesh = result.problem.mesh
    truth = PorosityBlocks.load(TRUTH).cell_average(mesh.nodes_x, mesh.nodes_z)["porosity"]
    region = mesh.core_mask & (mesh.cell_centers[:, 1] > -12.0)
    r = np.corrcoef(truth[region], result.models["porosity"][region])[0, 1]
    print(f"porosity: correlation with truth {r:.3f} (core region, top 12 m)")
    assert r > 0.7


def test_derived_properties_and_weights_are_stored(result):
    with h5py.File(result.output) as f:
        for name, relation in (
            ("resistivity", "archie"),
            ("velocity", "wyllie"),
            ("density_contrast", "density_mixing"),
        ):
            assert f[f"models/{name}"].attrs["derived_from"] == "porosity"
            assert f[f"models/{name}"].attrs["relation"] == relation
        phi = f["models/porosity"][()]
        np.testing.assert_allclose(f["models/resistivity"][()], 20.0 / phi**2, rtol=1e-12)
        weights = {k: f[f"iterations/weights/{k}"][()] for k in ("ert", "traveltime", "gravity")}
    # balancing is on by default: the weights start at 1; a modality that reaches its
    # target before the others keeps its trade-off w/β, so its weight follows β down
    assert all(w[0] == 1.0 for w in weights.values())
    assert any(len(set(np.round(w, 12))) > 1 for w in weights.values())
