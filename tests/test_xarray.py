"""The result file opens with xarray (h5netcdf) group by group, with named dimensions
and coordinate values; :func:`jointinv.to_xarray`; files of format 1.0 (no
coordinates) still read (issue 15)."""

from __future__ import annotations

import shutil
import warnings
from pathlib import Path

import h5py
import numpy as np
import pytest
import xarray as xr
from typer.testing import CliRunner

import jointinv
from jointinv.cli import app
from jointinv.coordinates import is_coordinate, variable_names
from jointinv.export import cell_depths, to_xarray
from jointinv.results import read_result

from .conftest import Workspace, gravity_only_mapping

runner = CliRunner()


def open_group(path: Path, group: str) -> xr.Dataset:
    """``group`` of ``path`` opened by xarray; a warning (e.g. of phony dimensions:
    a dataset without dimension scales) fails the test."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        return xr.open_dataset(path, group=group, engine="h5netcdf").load()


def groups_of_grids(f: h5py.File) -> list[str]:
    """Every group holding (n_z, n_x) cell arrays, below the file and /separate."""
    shape = f["mesh/active"].shape
    found = set()

    def visit(name: str, obj) -> None:
        if isinstance(obj, h5py.Dataset) and obj.shape == shape and not name.startswith("mesh"):
            found.add(obj.parent.name.lstrip("/"))

    f.visititems(visit)
    return sorted(found)


@pytest.fixture(scope="module")
def quick(quickstart_run) -> Path:
    return quickstart_run.output


@pytest.fixture(scope="module")
def separate(tmp_path_factory) -> Path:
    """A gravity-only run with its /separate/gravity (a few seconds)."""
    workspace = Workspace(tmp_path_factory.mktemp("separate"))
    config = workspace.write("gravity.yaml", gravity_only_mapping())
    return jointinv.run(config, output=workspace.root / "g.h5", separate=True).output


# --------------------------------------------------------------------------- the groups
def test_every_group_of_grids_opens_on_z_and_x(quick):
    with h5py.File(quick) as f:
        groups = groups_of_grids(f)
        cz, cx = f["mesh/cell_center_z"][()], f["mesh/cell_center_x"][()]
        some = ("models", "diagnostics/posterior_std", "diagnostics/cross_gradient")
        assert set(some) | {"diagnostics/information/ert"} <= set(groups)
        assert len(groups) == 1 + 5 + 1 + 3 + 3  # models, per property/modality, alone, info
        for group in groups:
            ds = open_group(quick, group)
            assert dict(ds.sizes) == {"z": len(cz), "x": len(cx)}, group
            np.testing.assert_array_equal(ds["z"], cz)
            np.testing.assert_array_equal(ds["x"], cx)
            assert ds["z"].attrs["units"] == ds["x"].attrs["units"] == "m"
            assert "elevation" in ds["z"].attrs["long_name"]
            assert sorted(ds.data_vars) == sorted(variable_names(f[group])), group
            for name, variable in ds.data_vars.items():
                assert variable.dims == ("z", "x")
                np.testing.assert_array_equal(variable.values, f[f"{group}/{name}"][()])
                for key, value in f[f"{group}/{name}"].attrs.items():
                    if key not in ("DIMENSION_LIST", "REFERENCE_LIST"):
                        assert variable.attrs[key] == value, (group, name, key)


def test_models_open_with_units(quick):
    ds = open_group(quick, "models")
    assert sorted(ds.data_vars) == ["density_contrast", "resistivity", "velocity"]
    assert ds["resistivity"].attrs["units"] == "ohm*m"
    assert ds["velocity"].attrs["transform"] == "log"
    # the cell at the bottom left is the first of the file's row-major grid
    with h5py.File(quick) as f:
        corner = f["models/velocity"][0, 0]
    assert ds["velocity"].sel(z=ds.z.min(), x=ds.x.min()) == corner


def test_data_open_per_datum_with_their_sensors(quick):
    saved = read_result(quick)
    for name, data in saved.data.items():
        ds = open_group(quick, f"data/{name}")
        n, k = len(data.observed), len(data.sensors)
        assert dict(ds.sizes) == {"datum": n, "sensor": k, "column": 2}, name
        np.testing.assert_array_equal(ds["datum"], np.arange(1, n + 1))
        np.testing.assert_array_equal(ds["sensor"], np.arange(1, k + 1))
        assert list(ds["column"].values) == ["x", "z"]
        for field in ("observed", "predicted", "std", "normalized_residual"):
            assert ds[field].dims == ("datum",)
            np.testing.assert_array_equal(ds[field], getattr(data, field))
        assert ds["sensors"].dims == ("sensor", "column")
        np.testing.assert_array_equal(ds["sensors"], data.sensors)
        for key, values in data.indices.items():
            assert ds[key].dims == ("datum",)
            np.testing.assert_array_equal(ds[key], values)
        assert ds.attrs["kind"] == data.kind and ds.attrs["chi2"] == data.chi2
        fit = open_group(quick, f"diagnostics/data_fit/{name}")
        assert fit["residual"].dims == ("datum",)
        np.testing.assert_array_equal(fit["datum"], ds["datum"])
    # the 1-based indices select their sensors by coordinate value
    ert = open_group(quick, "data/ert")
    a = ert["sensors"].sel(sensor=ert["a"], column="x")
    ert_saved = saved.data["ert"]
    np.testing.assert_array_equal(a, ert_saved.sensors[ert_saved.indices["a"] - 1, 0])


def test_iterations_and_correlation_open(quick):
    saved = read_result(quick)
    ds = open_group(quick, "iterations")
    np.testing.assert_array_equal(ds["iteration"], saved.iterations["iteration"])
    assert ds["beta"].dims == ("iteration",)
    np.testing.assert_array_equal(ds["beta"], saved.iterations["beta"])
    chi2 = open_group(quick, "iterations/chi2")  # the dimension is found in /iterations
    np.testing.assert_array_equal(chi2["ert"], saved.iterations["chi2/ert"])
    diagnostics = open_group(quick, "diagnostics")
    properties = saved.diagnostics.correlation_properties
    assert diagnostics["correlation"].dims == ("property_row", "property_column")
    assert list(diagnostics["property_row"].values) == properties
    assert list(diagnostics["property_column"].values) == properties
    np.testing.assert_array_equal(diagnostics["correlation"], saved.diagnostics.correlation)


def test_separate_groups_open(separate):
    with h5py.File(separate) as f:
        assert "separate/gravity/models" in groups_of_grids(f)
        expected = f["separate/gravity/models/density_contrast"][()]
    models = open_group(separate, "separate/gravity/models")
    np.testing.assert_array_equal(models["density_contrast"], expected)
    data = open_group(separate, "separate/gravity/data/gravity")
    assert data["observed"].dims == ("datum",)


def test_readers_skip_the_coordinates(quick):
    saved = read_result(quick)
    assert sorted(saved.models) == ["density_contrast", "resistivity", "velocity"]
    d = saved.diagnostics
    assert sorted(d.posterior_std) == sorted(d.coverage_property.values())
    assert sorted(d.coverage) == sorted(d.doi_mask) == ["ert", "gravity", "traveltime"]
    assert all(sorted(v) == sorted(saved.models) for v in d.information.values())


# --------------------------------------------------------------------------- to_xarray
def test_to_xarray_holds_the_models_and_diagnostics_on_the_grid(quick, quickstart_run):
    ds = jointinv.to_xarray(quick)
    saved = read_result(quick)
    nz, nx = saved.shape
    assert dict(ds.sizes) == {"z": nz, "x": nx}
    with h5py.File(quick) as f:
        np.testing.assert_array_equal(ds["z"], f["mesh/cell_center_z"][()])
        np.testing.assert_array_equal(ds["x"], f["mesh/cell_center_x"][()])
        for name in saved.models:
            np.testing.assert_array_equal(ds[name], f[f"models/{name}"][()])
            assert ds[name].attrs["units"] == f[f"models/{name}"].attrs["units"]
            np.testing.assert_array_equal(
                ds[f"{name}_posterior_std"], f[f"diagnostics/posterior_std/{name}"][()]
            )
            ratio = (
                f[f"diagnostics/posterior_std/{name}"][()] / f[f"diagnostics/prior_std/{name}"][()]
            )
            np.testing.assert_allclose(ds[f"{name}_std_ratio"], ratio, rtol=1e-15)
            in_doi = ds[f"{name}_in_doi"].values
            assert in_doi.dtype == bool and 0 < in_doi.sum() < in_doi.size
            np.testing.assert_array_equal(in_doi, f["mesh/active"][()] & (ratio <= 0.8))
        for name in saved.data:
            np.testing.assert_array_equal(ds[f"doi_{name}"], f[f"diagnostics/doi_mask/{name}"][()])
    assert ds["z"].attrs["units"] == ds["x"].attrs["units"] == ds["depth"].attrs["units"] == "m"
    np.testing.assert_allclose(ds["depth"], cell_depths(saved))
    assert float(ds["depth"].sel(z=-0.5).min()) == 0.5  # flat survey: the surface at z = 0
    assert ds["core"].values.sum() == saved.core.sum() < ds["active"].values.sum()
    assert ds.attrs["format_version"] == jointinv.FORMAT_VERSION
    # the same from a result read back and from what jointinv.run returned
    xr.testing.assert_identical(to_xarray(saved), ds)
    xr.testing.assert_identical(to_xarray(quickstart_run), ds)


def test_to_xarray_of_a_run_that_wrote_nothing():
    from types import SimpleNamespace

    with pytest.raises(ValueError, match="a run that wrote its result"):
        to_xarray(SimpleNamespace(output=None))


def test_xarray_is_imported_lazily():
    import subprocess
    import sys

    code = "import sys, jointinv, jointinv.export; print('xarray' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


# --------------------------------------------------------------------------- format 1.0
def as_format_1_0(src: Path, dst: Path) -> Path:
    """A copy of ``src`` laid out as format 1.0 wrote it: no coordinates outside
    /mesh; grids refer to /mesh/cell_center_z and cell_center_x; /iterations/iteration
    a plain column."""
    shutil.copyfile(src, dst)
    with h5py.File(dst, "r+") as f:
        scales, others = [], []

        def visit(name: str, obj) -> None:
            if isinstance(obj, h5py.Dataset) and not name.startswith("mesh/"):
                (scales if is_coordinate(obj) else others).append(name)

        f.visititems(visit)
        for name in others:
            for dim in f[name].dims:
                for scale in list(dim.values()):
                    dim.detach_scale(scale)
        for name in scales:
            values = f[name][()]
            del f[name]
            if name.endswith("iterations/iteration"):
                f[name] = values
        for name in others:
            if f[name].shape == f["mesh/active"].shape:
                f[name].dims[0].attach_scale(f["mesh/cell_center_z"])
                f[name].dims[1].attach_scale(f["mesh/cell_center_x"])
        f["meta"].attrs["format_version"] = "1.0"
    return dst


def test_files_of_format_1_0_still_read(quick, tmp_path):
    old = as_format_1_0(quick, tmp_path / "old.h5")
    with h5py.File(old) as f:
        assert "x" not in f["models"] and "datum" not in f["data/ert"]
        assert not h5py.h5ds.is_scale(f["iterations/iteration"].id)
    new, back = read_result(quick), read_result(old)
    assert back.meta["format_version"] == "1.0"
    assert sorted(back.models) == sorted(new.models)
    for name in new.models:
        np.testing.assert_array_equal(back.models[name], new.models[name])
    assert sorted(back.iterations) == sorted(new.iterations)
    for name in new.data:
        np.testing.assert_array_equal(back.data[name].sensors, new.data[name].sensors)
    assert sorted(back.diagnostics.eigenvalues) == sorted(new.diagnostics.eigenvalues)
    np.testing.assert_array_equal(back.diagnostics.correlation, new.diagnostics.correlation)
    ds = to_xarray(old)
    assert ds.attrs["format_version"] == "1.0"
    xr.testing.assert_identical(ds.drop_attrs(), to_xarray(quick).drop_attrs())
    for command in (["show", old], ["export", old, "--csv", tmp_path / "old.csv"]):
        result = runner.invoke(app, [str(a) for a in command])
        assert result.exit_code == 0, result.output


def test_diagnose_of_a_format_1_0_file_writes_openable_diagnostics(tmp_path, separate):
    old = as_format_1_0(separate, tmp_path / "old.h5")
    result = runner.invoke(app, ["diagnose", str(old), "--rank", "8", "--probes", "0", "-q"])
    assert result.exit_code == 0, result.output
    ds = open_group(old, "diagnostics/posterior_std")
    assert list(ds.data_vars) == ["density_contrast"] and ds["x"].attrs["units"] == "m"
    assert read_result(old).diagnostics.settings["rank"] == 8
    # and diagnosing a 1.1 file again replaces its diagnostics, coordinates included
    again = tmp_path / "again.h5"
    shutil.copyfile(separate, again)
    for _ in range(2):
        assert runner.invoke(app, ["diagnose", str(again), "-q"]).exit_code == 0
    assert list(open_group(again, "diagnostics")["property_row"].values) == ["density_contrast"]
