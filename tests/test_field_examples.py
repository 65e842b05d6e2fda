"""The worked field examples in configs/field/ on the real data in ../shared/realdata.

Validation (reading every file, building the topography mesh) is fast and runs by
default; the inversions take several minutes each and are marked slow. Every
modality must reach χ² ≤ 2 with the error assumptions stated in its config.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import jointinv
from jointinv.config import load_config
from jointinv.problem import build_mesh, load_datasets
from jointinv.results import read_result
from jointinv.validate import validate_config

ROOT = Path(__file__).resolve().parents[1]
REALDATA = ROOT.parent / "shared" / "realdata"
FIELD = ROOT / "configs" / "field"

pytestmark = pytest.mark.skipif(
    not REALDATA.is_dir(), reason=f"real field data not found at {REALDATA}"
)

EXAMPLES = {
    # config: expected (modality: number of data), surface elevation range (m; None: flat)
    "mulda.yaml": ({"ert": 784, "traveltime": 941}, (532.0, 542.3)),
    "koenigsee.yaml": ({"traveltime": 714}, (-0.5, 1.6)),
    "luneplate.yaml": ({"ert": 811}, None),
}
TOPOGRAPHY = sorted(name for name, (_, relief) in EXAMPLES.items() if relief is not None)


@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_field_config_validates(name):
    counts, _ = EXAMPLES[name]
    summary = validate_config(FIELD / name)
    for modality, n in counts.items():
        assert f"{modality} (" in summary and f"{n} data" in summary


@pytest.mark.parametrize("name", TOPOGRAPHY)
def test_field_mesh_follows_the_surface(name):
    _, (low, high) = EXAMPLES[name]
    loaded = load_config(FIELD / name)
    datasets = load_datasets(loaded)
    mesh = build_mesh(loaded.config, datasets)
    assert mesh.has_topography
    assert low <= mesh.surface[:, 1].min() and mesh.surface[:, 1].max() <= high
    # every electrode and geophone is within the merge distance of a surface vertex
    tolerance = loaded.config.mesh.topography.merge_distance
    for ds in datasets.values():
        gap = np.min(np.hypot(*(ds.sensors[:, None, :] - mesh.surface[None]).transpose(2, 0, 1)), 1)
        assert gap.max() <= tolerance
    # no active cell above the ground
    centres = mesh.cell_centers
    assert np.all(centres[:, 1] < mesh.surface_elevation(centres[:, 0]))


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_field_example_fits_every_modality(name, tmp_path):
    counts, _ = EXAMPLES[name]
    out = tmp_path / name.replace(".yaml", ".h5")
    jointinv.run(FIELD / name, output=out, force=True, diagnostics=False)
    saved = read_result(out)
    assert set(saved.data) == set(counts)
    for modality, d in saved.data.items():
        assert len(d.observed) == counts[modality]
        assert 0.8 <= d.chi2 <= 1.2, f"{modality}: chi2 {d.chi2:.2f} outside the band"
    assert saved.meta["success"] and not saved.meta["overfit"] and not saved.meta["underfit"]
    for values in saved.models.values():
        air = ~saved.active.ravel()
        assert np.all(np.isnan(values[air])) and np.all(np.isfinite(values[~air]))
