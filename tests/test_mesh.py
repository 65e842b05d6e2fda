"""Tests of the model mesh: geometry, padding, and the difference operators."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from jointinv.mesh import MeshSpec, ModelMesh

SPEC = MeshSpec(x_min=-10.0, x_max=10.0, depth=8.0, dx=1.0, dz=0.5, n_pad_x=3, n_pad_z=4,
                pad_factor=1.5)


@pytest.fixture(scope="module")
def mesh() -> ModelMesh:
    return ModelMesh(SPEC)


def _x_face_weights(hx: np.ndarray, hz: np.ndarray) -> np.ndarray:
    """Area represented by each x-difference: centre distance × cell height (x fastest)."""
    dist = 0.5 * (hx[:-1] + hx[1:])
    return (hz[:, None] * dist[None, :]).ravel()


def _z_face_weights(hx: np.ndarray, hz: np.ndarray) -> np.ndarray:
    dist = 0.5 * (hz[:-1] + hz[1:])
    return (dist[:, None] * hx[None, :]).ravel()


# --- geometry ---------------------------------------------------------------------
def test_core_region_is_uniform_and_spans_the_spec(mesh):
    hx, hz = np.diff(mesh.nodes_x), np.diff(mesh.nodes_z)
    assert mesh.shape == (20 + 2 * 3, 16 + 4)
    assert (mesh.n_core_x, mesh.n_core_z) == (20, 16)
    core_x = hx[3:-3]
    core_z = hz[4:]
    np.testing.assert_allclose(core_x, 1.0, rtol=0, atol=1e-9)
    np.testing.assert_allclose(core_z, 0.5, rtol=0, atol=1e-9)
    # the core nodes are exactly the spec's extent
    assert mesh.nodes_x[3] == pytest.approx(-10.0, abs=1e-9)
    assert mesh.nodes_x[-4] == pytest.approx(10.0, abs=1e-9)
    assert mesh.nodes_z[4] == pytest.approx(-8.0, abs=1e-9)


def test_padding_grows_by_the_factor(mesh):
    hx, hz = np.diff(mesh.nodes_x), np.diff(mesh.nodes_z)
    right = hx[-3:]
    left = hx[:3][::-1]  # outward from the core
    bottom = hz[:4][::-1]  # downward from the core
    for pad, h in [(right, 1.0), (left, 1.0), (bottom, 0.5)]:
        np.testing.assert_allclose(pad, h * 1.5 ** np.arange(1, len(pad) + 1), rtol=1e-12)
    # first padding cell already grows: it is not a core cell
    assert right[0] / 1.0 == pytest.approx(1.5, rel=1e-12)


def test_surface_is_the_top_node_at_zero(mesh):
    assert mesh.nodes_z[-1] == 0.0
    assert np.all(np.diff(mesh.nodes_z) > 0)
    assert np.all(np.diff(mesh.nodes_x) > 0)
    z = mesh.cell_centers[:, 1]
    assert z.max() == pytest.approx(-0.25, abs=1e-12)  # half a core cell below the surface
    assert np.all(z < 0)


def test_core_mask_count_and_cells(mesh):
    mask = mesh.core_mask
    assert mask.sum() == 20 * 16
    np.testing.assert_allclose(mesh.cell_areas[mask], 1.0 * 0.5, rtol=1e-12)
    assert np.all(mesh.cell_areas[~mask] > 0.5 * (1 + 1e-9))  # padding cells are larger
    # total area equals the padded rectangle
    width = mesh.nodes_x[-1] - mesh.nodes_x[0]
    height = -mesh.nodes_z[0]
    assert mesh.cell_areas.sum() == pytest.approx(width * height, rel=1e-12)


def test_cells_are_ordered_x_fastest(mesh):
    nx, _ = mesh.shape
    c = mesh.cell_centers
    assert c[1, 0] > c[0, 0] and c[1, 1] == c[0, 1]
    assert c[nx, 1] > c[0, 1] and c[nx, 0] == c[0, 0]


# --- difference operators -----------------------------------------------------------
def test_face_gradients_exact_on_linear_functions(mesh):
    hx, hz = np.diff(mesh.nodes_x), np.diff(mesh.nodes_z)
    x, z = mesh.cell_centers.T
    a, b, c = 0.7, -1.3, 4.0
    m = a * x + b * z + c
    dx_m = mesh.gradient_x @ m
    dz_m = mesh.gradient_z @ m
    nx, nz = mesh.shape
    assert mesh.gradient_x.shape == ((nx - 1) * nz, nx * nz)
    assert mesh.gradient_z.shape == (nx * (nz - 1), nx * nz)
    # rows are scaled by sqrt(face area); removing it leaves the exact slope everywhere
    np.testing.assert_allclose(dx_m / np.sqrt(_x_face_weights(hx, hz)), a, rtol=1e-10)
    np.testing.assert_allclose(dz_m / np.sqrt(_z_face_weights(hx, hz)), b, rtol=1e-10)
    # constants are in the null space, exactly
    assert np.abs(mesh.gradient_x @ np.full(mesh.n_cells, 3.0)).max() == 0.0
    assert np.abs(mesh.gradient_z @ np.full(mesh.n_cells, 3.0)).max() == 0.0


def test_cell_gradient_exact_on_linear_functions(mesh):
    x, z = mesh.cell_centers.T
    gx, gz = mesh.cell_gradient
    m = 0.7 * x - 1.3 * z + 4.0
    # central differences are exact for linear functions on the non-uniform mesh too,
    # including the one-sided edges
    np.testing.assert_allclose(gx @ m, 0.7, rtol=1e-10)
    np.testing.assert_allclose(gz @ m, -1.3, rtol=1e-10)
    # and each is blind to the other direction
    np.testing.assert_allclose(gx @ z, 0.0, atol=1e-12)
    np.testing.assert_allclose(gz @ x, 0.0, atol=1e-12)


def test_cell_gradient_second_order_in_the_core(mesh):
    """Quadratic: the central difference is exact on the uniform core."""
    x, z = mesh.cell_centers.T
    gx, gz = mesh.cell_gradient
    m = x**2 + 3 * z**2
    hx, hz = np.diff(mesh.nodes_x), np.diff(mesh.nodes_z)
    nx, nz = mesh.shape
    ix, iz = np.meshgrid(np.arange(nx), np.arange(nz))
    ix, iz = ix.ravel(), iz.ravel()
    # cells whose two x-neighbours are core-sized (uniform spacing)
    inner_x = (ix > 3) & (ix < nx - 4)
    inner_z = (iz > 4) & (iz < nz - 1)
    np.testing.assert_allclose((gx @ m)[inner_x], 2 * x[inner_x], rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose((gz @ m)[inner_z], 6 * z[inner_z], rtol=1e-10, atol=1e-10)
    assert hx[3:-3].std() < 1e-9 and hz[4:].std() < 1e-9


def _gaussian_energy_error(h: float) -> tuple[float, float]:
    """Relative errors of ‖Dx m‖² and ‖Dz m‖² against ∫(∂m)² dA = π/2 for a Gaussian."""
    mesh = ModelMesh(MeshSpec(x_min=-8, x_max=8, depth=10, dx=h, dz=h, n_pad_x=3, n_pad_z=3))
    x, z = mesh.cell_centers.T
    s, x0, z0 = 1.3, 0.4, -4.5
    m = np.exp(-((x - x0) ** 2 + (z - z0) ** 2) / (2 * s**2))
    # ∫∫ ((x-x0)/s²)² exp(-((x-x0)²+(z-z0)²)/s²) dx dz = π/2, independent of s
    exact = np.pi / 2
    ex = np.sum((mesh.gradient_x @ m) ** 2) / exact - 1
    ez = np.sum((mesh.gradient_z @ m) ** 2) / exact - 1
    return abs(ex), abs(ez)


def test_face_gradient_norm_approximates_the_integral():
    ex_coarse, ez_coarse = _gaussian_energy_error(0.4)
    ex_fine, ez_fine = _gaussian_energy_error(0.2)
    assert ex_fine < 5e-3 and ez_fine < 5e-3
    # second order: halving h divides the error by ~4
    assert ex_coarse / ex_fine == pytest.approx(4.0, rel=0.15)
    assert ez_coarse / ez_fine == pytest.approx(4.0, rel=0.15)


# --- round trip ----------------------------------------------------------------------
def test_from_nodes_round_trip(mesh):
    back = ModelMesh.from_nodes(mesh.nodes_x, mesh.nodes_z)
    np.testing.assert_array_equal(back.nodes_x, mesh.nodes_x)
    np.testing.assert_array_equal(back.nodes_z, mesh.nodes_z)
    assert back.shape == mesh.shape and back.n_cells == mesh.n_cells
    np.testing.assert_allclose(back.cell_centers, mesh.cell_centers, rtol=0, atol=1e-9)
    np.testing.assert_allclose(back.cell_areas, mesh.cell_areas, rtol=1e-9)
    for a, b in [(back.gradient_x, mesh.gradient_x), (back.gradient_z, mesh.gradient_z),
                 (back.cell_gradient[0], mesh.cell_gradient[0]),
                 (back.cell_gradient[1], mesh.cell_gradient[1])]:
        assert a.shape == b.shape
        assert abs(a - b).max() < 1e-9 * abs(b).max()
    # without a spec every cell counts as core
    assert back.core_mask.all()


# --- nodes at the sensors (flat surveys) ------------------------------------------------
def _nodes_at(x=(), z=(), **changes) -> ModelMesh:
    spec = MeshSpec(x_min=0.0, x_max=30.0, depth=12.0, dx=1.0, dz=1.0, n_pad_x=3, n_pad_z=3)
    return ModelMesh(replace(spec, nodes_at_x=tuple(x), nodes_at_z=tuple(z), **changes))


def test_sensors_on_the_grid_leave_the_mesh_uniform():
    uniform = _nodes_at()
    on_grid = _nodes_at(x=np.arange(0.0, 31.0, 2.0), z=[0.0, -3.0, -7.0])
    np.testing.assert_array_equal(on_grid.nodes_x, uniform.nodes_x)
    np.testing.assert_array_equal(on_grid.nodes_z, uniform.nodes_z)


@pytest.mark.parametrize("spacing", [1.3, 1.7, 0.45, 3.14])
def test_every_sensor_off_the_grid_becomes_a_node(spacing):
    x = spacing * np.arange(int(30 / spacing) + 1)
    mesh = _nodes_at(x=x)
    gap = np.abs(x[:, None] - mesh.nodes_x[None, :]).min(axis=1)
    assert gap.max() < 1e-9
    widths, heights = mesh.core_cell_sizes
    # the core spans the spec exactly, cells as close to dx as the spacing allows
    assert mesh.nodes_x[3] == 0.0 and mesh.nodes_x[3 + mesh.n_core_x] == pytest.approx(30.0)
    assert widths.sum() == pytest.approx(30.0, abs=1e-9)
    # an interval of length L gets round(L / dx) cells (at least one): widths within
    # [0.75 dx, 1.5 dx) unless the interval itself is shorter
    assert widths.max() < 1.5
    assert widths.min() >= min(0.75, spacing, 30.0 - x[-1]) - 1e-9
    np.testing.assert_array_equal(heights, 1.0)  # z untouched
    # the cell count the size check uses is the count allocated
    assert mesh.spec.n_cells() == mesh.tensor.n_cells


def test_buried_sensors_become_nodes_of_z():
    z = [0.0, -1.3, -2.6, -7.05]
    mesh = _nodes_at(x=[0.0, 10.0], z=z)
    assert np.abs(np.subtract.outer(z, mesh.nodes_z)).min(axis=1).max() < 1e-9
    heights = mesh.core_cell_sizes[1]
    assert heights.sum() == pytest.approx(12.0)
    assert mesh.nodes_z[-1] == 0.0
    assert mesh.core_mask.sum() == mesh.n_core_x * mesh.n_core_z


@pytest.mark.parametrize(
    ("x", "nodes"),
    [
        ([-5.0, 40.0, 10.0], None),  # outside the core: ignored, the grid stays uniform
        ([1.3, 1.3004, 2.0], [1.3]),  # within 1 mm: one node
        ([29.9996, 1.5], [1.5, 30.0]),  # within 1 mm of the core's end: that node
    ],
)
def test_node_positions_outside_the_core_or_within_a_millimetre(x, nodes):
    mesh = _nodes_at(x=x)
    if nodes is None:
        np.testing.assert_array_equal(mesh.nodes_x, _nodes_at().nodes_x)
        return
    core = mesh.nodes_x[3 : 4 + mesh.n_core_x]
    for node in nodes:
        assert np.abs(core - node).min() < 1e-9
    assert np.diff(core).min() > 0.25  # no sliver cell between positions 1 mm apart


def test_operators_exact_on_linear_functions_of_a_divided_core():
    mesh = _nodes_at(x=1.3 * np.arange(20), z=[-0.7, -2.2])
    x, z = mesh.cell_centers.T
    gx, gz = mesh.cell_gradient
    np.testing.assert_allclose(gx @ (0.7 * x - 1.3 * z), 0.7, rtol=1e-10)
    np.testing.assert_allclose(gz @ (0.7 * x - 1.3 * z), -1.3, rtol=1e-10)
    hx, hz = np.diff(mesh.nodes_x), np.diff(mesh.nodes_z)
    slope = (mesh.gradient_x @ x) / np.sqrt(_x_face_weights(hx, hz))
    np.testing.assert_allclose(slope, 1.0, rtol=1e-10)
