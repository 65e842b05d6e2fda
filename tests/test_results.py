"""Tests of the HDF5 result file: layout, round trip, atomic writes."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest

from jointinv._version import FORMAT_VERSION
from jointinv.mesh import MeshSpec, ModelMesh
from jointinv.results import (
    SavedData,
    fill_data,
    fill_iterations,
    fill_mesh,
    fill_meta,
    fill_model,
    read_result,
    write_atomic,
)

MESH = ModelMesh(MeshSpec(x_min=0, x_max=5, depth=3, dx=1, dz=0.5, n_pad_x=2, n_pad_z=2))


def _content(seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    x, z = MESH.cell_centers.T
    return {
        "meta": {"config": "mesh:\n  dx: 1\n", "seed": 42, "stop_reason": "χ² target reached",
                 "started": "2024-05-01T12:00:00"},
        # a model whose value encodes its own position: orientation errors are visible
        "models": {
            "resistivity": 1000.0 + x + 100.0 * z,
            "velocity": rng.uniform(1e3, 5e3, len(x)),
        },
        "data": {
            "ert": SavedData(
                observed=rng.uniform(10, 100, 9), predicted=rng.uniform(10, 100, 9),
                std=rng.uniform(1, 2, 9), sensors=rng.uniform(0, 5, (9, 2)), kind="ert",
                units="Ohm m", chi2=1.37, property="resistivity",
            ),
            "gravity": SavedData(
                observed=rng.standard_normal(5), predicted=rng.standard_normal(5),
                std=np.full(5, 0.01), sensors=np.c_[np.arange(5.0), np.zeros(5)],
                kind="gravity", units="mGal", chi2=0.98,
            ),
        },
        "iterations": {
            "iteration": np.arange(4), "beta": np.array([8.0, 8.0, 4.0, 2.0]),
            "phi": rng.uniform(1, 10, 4), "phi_d/ert": rng.uniform(1, 10, 4),
            "chi2/ert": rng.uniform(1, 10, 4), "coupling/cross_rho_vel": rng.uniform(0, 1, 4),
            "seconds/forward": rng.uniform(0, 1, 4),
        },
    }


def _fill(content: dict):
    def fill(f: h5py.File) -> None:
        fill_meta(f, content["meta"])
        fill_mesh(f, MESH.nodes_x, MESH.nodes_z, MESH.core_mask)
        for name, values in content["models"].items():
            units = "Ohm m" if name == "resistivity" else "m/s"
            fill_model(f, name, values, units=units, transform="log")
        for name, saved in content["data"].items():
            fill_data(f, name, saved)
        fill_iterations(f, content["iterations"])

    return fill


def test_round_trip(tmp_path: Path):
    content = _content()
    path = tmp_path / "out" / "result.h5"  # parent folder is created
    write_atomic(path, _fill(content))
    saved = read_result(path)

    assert saved.meta["format_version"] == FORMAT_VERSION
    for key, value in content["meta"].items():
        assert saved.meta[key] == value
    np.testing.assert_array_equal(saved.nodes_x, MESH.nodes_x)
    np.testing.assert_array_equal(saved.nodes_z, MESH.nodes_z)
    assert set(saved.models) == set(content["models"])
    for name, values in content["models"].items():
        np.testing.assert_array_equal(saved.models[name], values)
        assert saved.model_transforms[name] == "log"
    assert saved.model_units == {"resistivity": "Ohm m", "velocity": "m/s"}
    assert set(saved.data) == {"ert", "gravity"}
    for name, expected in content["data"].items():
        got = saved.data[name]
        for field in ("observed", "predicted", "std", "sensors"):
            np.testing.assert_array_equal(getattr(got, field), getattr(expected, field))
        assert (got.kind, got.units, got.chi2, got.property) == (
            expected.kind, expected.units, expected.chi2, expected.property
        )
        np.testing.assert_allclose(got.normalized_residual, expected.normalized_residual)
    assert set(saved.iterations) == set(content["iterations"])
    for key, values in content["iterations"].items():
        np.testing.assert_array_equal(saved.iterations[key], values)
    # the mesh rebuilt from the file is the same mesh
    back = ModelMesh.from_nodes(saved.nodes_x, saved.nodes_z)
    np.testing.assert_allclose(back.cell_centers, MESH.cell_centers, atol=1e-9)


def test_layout_and_attributes(tmp_path: Path):
    content = _content()
    path = tmp_path / "result.h5"
    write_atomic(path, _fill(content))
    nx, nz = MESH.shape
    with h5py.File(path, "r") as f:
        assert set(f) == {"meta", "mesh", "models", "data", "iterations"}
        mesh = f["mesh"]
        assert mesh.attrs["kind"] == "tensor2d"
        assert "z up" in mesh.attrs["convention"]
        np.testing.assert_allclose(mesh["cell_center_x"][()], np.unique(MESH.cell_centers[:, 0]))
        np.testing.assert_allclose(mesh["cell_center_z"][()], np.unique(MESH.cell_centers[:, 1]))
        core = mesh["core_mask"][()]
        assert core.shape == (nz, nx) and core.sum() == MESH.core_mask.sum() == 5 * 6
        model = f["models/resistivity"]
        assert model.shape == (nz, nx)
        assert model.attrs["units"] == "Ohm m" and model.attrs["transform"] == "log"
        # dimension scales: rows are z, columns x, and the values sit at those coordinates
        # (one scale per dimension, in the group itself: what h5netcdf needs)
        assert [[s.name for s in dim.values()] for dim in model.dims] == [
            ["/models/z"], ["/models/x"]
        ]
        np.testing.assert_array_equal(f["models/z"][()], mesh["cell_center_z"][()])
        np.testing.assert_array_equal(f["models/x"][()], mesh["cell_center_x"][()])
        assert f["models/z"].attrs["units"] == f["models/x"].attrs["units"] == "m"
        cz, cx = np.meshgrid(mesh["cell_center_z"][()], mesh["cell_center_x"][()], indexing="ij")
        np.testing.assert_allclose(model[()], 1000.0 + cx + 100.0 * cz, rtol=1e-14)
        ert = f["data/ert"]
        assert ert.attrs["chi2"] == 1.37 and ert.attrs["kind"] == "ert"
        assert ert.attrs["units"] == "Ohm m" and ert.attrs["property"] == "resistivity"
        expected = content["data"]["ert"]
        np.testing.assert_allclose(ert["normalized_residual"][()], expected.normalized_residual)
        assert isinstance(f["iterations/phi_d"], h5py.Group)  # "a/b" keys become groups
        assert f["meta"].attrs["seed"] == 42


def test_write_atomic_leaves_no_temporary_file(tmp_path: Path):
    path = tmp_path / "result.h5"
    write_atomic(path, _fill(_content(0)))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["result.h5"]
    # overwriting replaces the content
    write_atomic(path, _fill(_content(1)))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["result.h5"]
    np.testing.assert_array_equal(
        read_result(path).models["velocity"], _content(1)["models"]["velocity"]
    )


def test_write_atomic_keeps_the_old_file_when_fill_fails(tmp_path: Path):
    path = tmp_path / "result.h5"
    write_atomic(path, _fill(_content(0)))
    before = path.read_bytes()
    mtime = path.stat().st_mtime_ns

    def broken(f: h5py.File) -> None:
        _fill(_content(1))(f)  # writes a complete new file first …
        raise RuntimeError("disk on fire")  # … and then fails

    with pytest.raises(RuntimeError, match="disk on fire"):
        write_atomic(path, broken)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["result.h5"]
    assert path.read_bytes() == before
    assert path.stat().st_mtime_ns == mtime
    np.testing.assert_array_equal(
        read_result(path).models["velocity"], _content(0)["models"]["velocity"]
    )

    # a failure on a path that does not exist yet leaves nothing behind either
    fresh = tmp_path / "fresh.h5"
    with pytest.raises(KeyboardInterrupt):
        write_atomic(fresh, lambda f: (_ for _ in ()).throw(KeyboardInterrupt()))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["result.h5"]
