"""Tests of the pyGIMLi grid built from the model mesh and of the cell matching."""

from __future__ import annotations

import numpy as np
import pytest

from jointinv.engines.pgmesh import build_pg_grid, match_cells
from jointinv.mesh import MeshSpec, ModelMesh


@pytest.fixture(scope="module")
def mesh() -> ModelMesh:
    # odd sizes so that no coordinate is a round number
    return ModelMesh(
        MeshSpec(x_min=-10.3, x_max=10.3, depth=7.1, dx=0.7, dz=0.3, n_pad_x=4, n_pad_z=5,
                 pad_factor=1.37)
    )


def test_grid_cells_correspond_after_transfer(mesh):
    grid, transfer = build_pg_grid(mesh)
    assert grid.cellCount() == mesh.n_cells
    assert transfer.n_in == transfer.n_out == mesh.n_cells
    pg_centres = np.array(grid.cellCenters())[:, :2]
    # the transfer maps a property on model cells to pyGIMLi's order: centres agree
    moved = np.c_[transfer(mesh.cell_centers[:, 0]), transfer(mesh.cell_centers[:, 1])]
    np.testing.assert_allclose(moved, pg_centres, rtol=0, atol=1e-9)
    # so do the areas (each pg cell has the area of its model cell)
    pg_areas = np.array([c.size() for c in grid.cells()])
    np.testing.assert_allclose(transfer(mesh.cell_areas), pg_areas, rtol=1e-9)
    # it is a permutation matrix
    m = transfer.matrix
    assert m.nnz == mesh.n_cells
    np.testing.assert_array_equal(m.sum(axis=0).A1, 1.0)
    np.testing.assert_array_equal(m.sum(axis=1).A1, 1.0)


def test_grid_markers(mesh):
    grid, _ = build_pg_grid(mesh)
    assert set(np.array(grid.cellMarkers())) == {2}
    top, other, inner = 0, 0, 0
    x0, x1, z0 = mesh.nodes_x[0], mesh.nodes_x[-1], mesh.nodes_z[0]
    for b in grid.boundaries():
        cx, cz = b.center().x(), b.center().y()
        if abs(cz) < 1e-9:
            assert b.marker() == -1  # free surface (Neumann)
            top += 1
        elif abs(cx - x0) < 1e-9 or abs(cx - x1) < 1e-9 or abs(cz - z0) < 1e-9:
            assert b.marker() == -2  # mixed boundary conditions
            other += 1
        else:
            assert b.marker() == 0
            inner += 1
    nx, nz = mesh.shape
    assert top == nx and other == nx + 2 * nz


def test_match_cells_finds_a_shuffled_permutation(mesh):
    rng = np.random.default_rng(11)
    centres = mesh.cell_centers
    perm = rng.permutation(mesh.n_cells)
    order = match_cells(centres[perm], centres)
    np.testing.assert_array_equal(order, perm)


def test_match_cells_tolerates_round_off(mesh):
    """Centres equal within the documented tolerance (1e-6 of the smallest cell) match."""
    rng = np.random.default_rng(12)
    centres = mesh.cell_centers
    perm = rng.permutation(mesh.n_cells)
    noisy = centres[perm] + 1e-9 * rng.standard_normal(centres.shape)
    np.testing.assert_array_equal(match_cells(noisy, centres), perm)


def test_match_cells_raises_on_mismatched_meshes(mesh):
    centres = mesh.cell_centers
    with pytest.raises(ValueError, match="different cell counts"):
        match_cells(centres[:-1], centres)
    shifted = centres + np.array([0.5 * 0.7, 0.0])
    with pytest.raises(ValueError, match="do not match"):
        match_cells(shifted, centres)
    # one cell moved by 1e-3 m (above the 1e-6 × 0.7 m tolerance) is enough
    moved = centres.copy()
    moved[17, 1] += 1e-3
    with pytest.raises(ValueError, match="do not match"):
        match_cells(moved, centres)
    # two engine cells on one model cell (and none on another)
    duplicated = centres.copy()
    duplicated[5] = duplicated[6]
    with pytest.raises(ValueError, match="do not match"):
        match_cells(duplicated, centres)
    # a different mesh with the same number of cells
    other = ModelMesh.from_nodes(mesh.nodes_x * 1.01, mesh.nodes_z)
    with pytest.raises(ValueError, match="do not match"):
        match_cells(other.cell_centers, centres)
