"""Tests of ``jointinv show --plot``: data-fit plots (ERT pseudosections, traveltime
curves, gravity profile) from the indices stored in ``/data/<modality>``, model sections
(faded outside the resolved region, diverging colours for contrasts, readable units,
visible sensors), the convergence plot's χ² targets, and the matplotlib backend left
alone.

The quick-start result (``quickstart_run``, shared with the other end-to-end tests)
gives a real three-method result; small hand-built files cover old results, remote
electrodes and stored χ² targets.
"""

from __future__ import annotations

import copy
import logging
import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest
from typer.testing import CliRunner

from jointinv.cli import app
from jointinv.diagnostics_plots import RESOLUTION_SMOOTHING, smoothed_resolution
from jointinv.fit_plots import (
    MISFIT_CLIP,
    ert_fit_figure,
    gravity_fit_figure,
    missing_indices,
    plot_fits,
    pseudosection_positions,
    traveltime_fit_figure,
)
from jointinv.mesh import MeshSpec, ModelMesh
from jointinv.plotting import (
    FADE_GID,
    RESOLVED_STD_RATIO,
    chi2_targets,
    convergence_figure,
    display_units,
    plot_result,
    section_figure,
    unresolved_cells,
)
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

from .conftest import SAMPLES

PNG = b"\x89PNG\r\n\x1a\n"
runner = CliRunner()


@pytest.fixture(scope="module")
def quick(quickstart_run):
    """The quick-start result file and its contents read back."""
    return quickstart_run.output, read_result(quickstart_run.output)


def _unified_data(path: Path) -> np.ndarray:
    """The data block of a pyGIMLi unified file (sensor count, sensors, data count,
    data), comments dropped: the columns exactly as written."""
    lines = [line.split("#")[0].strip() for line in path.read_text().splitlines()]
    lines = [line for line in lines if line]
    n_sensors = int(lines[0])
    n_data = int(lines[1 + n_sensors])
    rows = lines[2 + n_sensors : 2 + n_sensors + n_data]
    return np.array([row.split() for row in rows], dtype=float)


# --------------------------------------------------------------------------- stored indices
def test_stored_indices_are_the_files_1_based_columns(quick):
    path, saved = quick
    ert = _unified_data(SAMPLES / "ert.ohm")
    got = saved.data["ert"].indices
    assert set(got) == {"a", "b", "m", "n"}
    for i, key in enumerate("abmn"):
        np.testing.assert_array_equal(got[key], ert[:, i].astype(int), err_msg=key)
    assert (got["a"][0], got["b"][0], got["m"][0], got["n"][0]) == (2, 1, 3, 4)  # line 1
    tt = _unified_data(SAMPLES / "traveltime.sgt")
    np.testing.assert_array_equal(saved.data["traveltime"].indices["shot"], tt[:, 0].astype(int))
    np.testing.assert_array_equal(
        saved.data["traveltime"].indices["geophone"], tt[:, 1].astype(int)
    )
    assert saved.data["gravity"].indices == {}
    assert {d.chi2_target for d in saved.data.values()} == {1.0}
    with h5py.File(path) as f:
        assert f["data/ert/a"].attrs["indexes"].startswith("rows of sensors, 1-based")
        assert list(f["data/ert/sensors"].attrs["columns"]) == ["x", "z"]


MESH = ModelMesh(MeshSpec(x_min=0, x_max=6, depth=3, dx=1, dz=1, n_pad_x=1, n_pad_z=1))
ELECTRODES = np.c_[np.arange(0.0, 7.0), np.zeros(7)]


def _pole_dipole() -> SavedData:
    """Four pole-dipole data (B remote: 0 as in the file) and one dipole-dipole."""
    indices = {
        "a": np.array([1, 2, 3, 4, 1]), "b": np.array([0, 0, 0, 0, 2]),
        "m": np.array([2, 3, 4, 5, 3]), "n": np.array([3, 4, 5, 6, 4]),
    }  # fmt: skip
    observed = np.log(np.array([100.0, 120.0, 90.0, 110.0, 105.0]))
    return SavedData(
        observed=observed, predicted=observed + 0.01, std=np.full(5, 0.03), sensors=ELECTRODES,
        kind="ert", units="ln(ohm*m)", chi2=1.1, property="resistivity", indices=indices,
        chi2_target=1.5,
    )  # fmt: skip


def _gravity(target: float | None = 2.5) -> SavedData:
    x = np.arange(0.0, 7.0)
    return SavedData(
        observed=np.sin(x), predicted=np.sin(x) + 0.1, std=np.full(7, 0.05),
        sensors=np.c_[x, np.full(7, 0.5)], kind="gravity", units="mGal", chi2=4.0,
        property="density_contrast", chi2_target=target,
    )  # fmt: skip


def write_small(path: Path, data: dict[str, SavedData], meta: dict | None = None) -> Path:
    """A flat 8 × 4-cell result with a density contrast spanning 0 and ``data``."""
    x, z = MESH.cell_centers.T

    def fill(f: h5py.File) -> None:
        fill_meta(f, {"stop_reason": "test", "config_text": "", **(meta or {})})
        fill_mesh(f, MESH.nodes_x, MESH.nodes_z, MESH.core_mask)
        fill_model(f, "density_contrast", 0.05 * (x - 2.0), units="g/cm^3", transform="linear")
        iterations = {"iteration": np.arange(3), "beta": np.array([4.0, 2.0, 1.0]),
                      "phi": np.array([9.0, 5.0, 3.0])}  # fmt: skip
        for name in data:
            iterations[f"chi2/{name}"] = np.array([9.0, 3.0, 1.2])
            fill_data(f, name, data[name])
        fill_iterations(f, iterations)

    write_atomic(path, fill)
    return path


def test_remote_electrodes_and_targets_round_trip(tmp_path):
    saved = read_result(write_small(tmp_path / "r.h5", {"ert": _pole_dipole(), "g": _gravity()}))
    expected = _pole_dipole().indices
    assert set(saved.data["ert"].indices) == set(expected)
    for key, values in expected.items():
        np.testing.assert_array_equal(saved.data["ert"].indices[key], values)
    assert saved.data["ert"].chi2_target == 1.5
    assert saved.data["g"].indices == {} and saved.data["g"].chi2_target == 2.5


# --------------------------------------------------------------------------- pseudosections
@pytest.mark.parametrize(
    ("array", "abmn", "x", "depth"),
    [
        # electrodes at 0, 2, 4, ... m (spacing a = 2 m); indices 1-based as in the file
        ("Wenner a=2: depth 1.5 a", (1, 4, 2, 3), 3.0, 3.0),
        ("dipole-dipole a=2, n=3: depth (n+1) a/2", (1, 2, 5, 6), 5.0, 4.0),
        ("dipole-dipole b a m n order of the sample file", (2, 1, 3, 4), 3.0, 2.0),
        ("Schlumberger AB=10, MN=2: depth AB/2", (1, 6, 3, 4), 5.0, 5.0),
        ("pole-dipole (B remote)", (1, 0, 2, 3), 1.5, 1.5),
        ("pole-pole (B, N remote)", (1, 0, 3, 0), 2.0, 2.0),
    ],
)
def test_pseudosection_position(array, abmn, x, depth):
    electrode_x = np.arange(0.0, 20.0, 2.0)
    a, b, m, n = (np.array([i]) for i in abmn)
    got_x, got_depth = pseudosection_positions(electrode_x, a, b, m, n)
    assert (got_x[0], got_depth[0]) == pytest.approx((x, depth)), array


def test_ert_fit_figure_shows_observed_predicted_and_misfit(tmp_path):
    data = _pole_dipole()
    fig = ert_fit_figure("ert", data)
    panels = fig.axes[:3]  # then the colour bars
    observed, predicted, misfit = (ax.collections[0] for ax in panels)
    np.testing.assert_allclose(observed.get_array(), np.exp(data.observed))
    np.testing.assert_allclose(predicted.get_array(), np.exp(data.predicted))
    np.testing.assert_allclose(misfit.get_array(), data.normalized_residual)
    assert observed.norm.vmin == predicted.norm.vmin  # one colour scale for both
    assert (misfit.norm.vmin, misfit.norm.vmax) == (-MISFIT_CLIP, MISFIT_CLIP)
    assert panels[0].get_ylim()[0] > panels[0].get_ylim()[1] == 0  # pseudodepth down
    assert "Ω·m" in " ".join(ax.get_ylabel() for ax in fig.axes)


def test_traveltime_and_gravity_fit_figures(quick):
    _, saved = quick
    tt = saved.data["traveltime"]
    fig = traveltime_fit_figure("traveltime", tt)
    curves = fig.axes[0]
    observed = [line for line in curves.get_lines() if line.get_marker() == "o"]
    assert len(observed) == len(np.unique(tt.indices["shot"]))
    shown = np.sort(np.concatenate([line.get_ydata() for line in observed]))
    np.testing.assert_allclose(shown, np.sort(1e3 * tt.observed))  # every pick, in ms
    assert curves.get_ylabel() == "first arrival (ms)"

    g = saved.data["gravity"]
    fig = gravity_fit_figure("gravity", g)
    assert fig.axes[0].get_ylabel() == "gz (mGal)"
    predicted = next(line for line in fig.axes[0].get_lines() if line.get_label() == "predicted")
    order = np.argsort(g.sensors[:, 0])
    np.testing.assert_allclose(predicted.get_ydata(), g.predicted[order])


def test_fit_plots_written_for_every_modality(quick, tmp_path):
    path, saved = quick
    paths = plot_result(saved, tmp_path)
    names = {p.name for p in paths}
    assert {"fit_ert.png", "fit_traveltime.png", "fit_gravity.png"} <= names
    assert {f"model_{p}.png" for p in ("resistivity", "velocity", "density_contrast")} <= names
    for p in paths:
        assert p.read_bytes()[:8] == PNG


def _without_indices(src: Path, dst: Path) -> Path:
    """A copy of a result as written before the indices were stored."""
    shutil.copyfile(src, dst)
    with h5py.File(dst, "r+") as f:
        for key in ("ert/a", "ert/b", "ert/m", "ert/n", "traveltime/shot", "traveltime/geophone"):
            del f[f"data/{key}"]
    return dst


def test_old_result_skips_those_fit_plots_with_one_line_each(quick, tmp_path, caplog):
    old = read_result(_without_indices(quick[0], tmp_path / "old.h5"))
    with caplog.at_level(logging.WARNING, logger="jointinv.fit_plots"):
        paths = plot_fits(old, tmp_path)
    assert [p.name for p in paths] == ["fit_gravity.png"]
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 2
    assert lines[0].startswith("ert: data-fit plot skipped: the result has no a, b, m, n")
    assert lines[1].startswith("traveltime: data-fit plot skipped: the result has no shot")


def test_show_plot_of_an_old_result(quick, tmp_path):
    old = _without_indices(quick[0], tmp_path / "old.h5")
    result = runner.invoke(app, ["show", str(old), "--plot", str(tmp_path / "plots")])
    assert result.exit_code == 0, result.output
    assert "ert: data-fit plot skipped" in " ".join(result.stderr.split())
    assert (tmp_path / "plots" / "fit_gravity.png").is_file()
    assert not (tmp_path / "plots" / "fit_ert.png").exists()


@pytest.mark.parametrize(
    ("change", "why"),
    [
        ({"a": np.array([0, 2, 3, 4, 1])}, "index a lies outside 1..7 (rows of the sensors)"),
        ({"n": np.array([3, 4, 5, 6, 8])}, "index n lies outside 0..7 (rows of the sensors)"),
        ({"m": np.array([2.0, 3, 4, 5, 3])}, "index m is not one integer per datum"),
        ({"b": np.array([0, 0, 0])}, "index b is not one integer per datum"),
    ],
)
def test_indices_that_do_not_fit_the_sensors_are_refused(change, why):
    data = _pole_dipole()
    data.indices.update(change)
    assert missing_indices(data) == why


# --------------------------------------------------------------------------- sections
def _model_mesh(fig):
    """The model's QuadMesh in a section figure (the first one drawn)."""
    return next(c for c in fig.axes[0].collections if c.get_gid() != FADE_GID)


def test_density_contrast_colours_are_centred_on_zero(quick, tmp_path):
    _, saved = quick
    fig = section_figure(saved, "density_contrast")
    norm = _model_mesh(fig).norm
    assert norm.vmin == pytest.approx(-norm.vmax) and norm.vmax > 0
    assert _model_mesh(fig).get_cmap().name == "RdBu_r"
    small = read_result(write_small(tmp_path / "s.h5", {"g": _gravity()}))
    values = small.models["density_contrast"]
    assert values.min() < 0 < -values.min() < values.max()  # not symmetric about 0
    norm = _model_mesh(section_figure(small, "density_contrast")).norm
    assert (norm.vmin, norm.vmax) == pytest.approx((-values.max(), values.max()))


def test_unresolved_cells_are_faded(quick):
    _, saved = quick
    d = saved.diagnostics
    for prop in ("resistivity", "velocity", "density_contrast"):
        faded = unresolved_cells(saved, prop)
        ratio = d.posterior_std[prop] / d.prior_std[prop]
        np.testing.assert_array_equal(faded, ratio > RESOLVED_STD_RATIO)
        assert 0 < faded.sum() < faded.size, prop
        # the top 3 m under the middle of the spread (sensors from 0 to 62 m) are resolved
        grid = faded.reshape(saved.shape)
        cx = 0.5 * (saved.nodes_x[:-1] + saved.nodes_x[1:])
        under = (cx > 20) & (cx < 42)
        assert not grid[-3:, under].any(), prop
        fig = section_figure(saved, prop)
        veil = next(c for c in fig.axes[0].collections if c.get_gid() == FADE_GID)
        np.testing.assert_array_equal(~np.ma.getmaskarray(veil.get_array()).ravel(), faded)
        assert "not resolved" in fig.axes[0].get_title()
        # the colours span the resolved cells only
        values = saved.models[prop][~faded]
        norm = _model_mesh(fig).norm
        if prop != "density_contrast":
            assert (norm.vmin, norm.vmax) == pytest.approx((values.min(), values.max()))
    fig = section_figure(saved, "velocity", doi_mask=False)
    assert not any(c.get_gid() == FADE_GID for c in fig.axes[0].collections)


def test_sensors_of_each_method_stay_visible(quick):
    _, saved = quick
    fig = section_figure(saved, "velocity")
    lines = {line.get_label(): line for line in fig.axes[0].get_lines()}
    heights = []
    for label in ("ert: electrodes", "traveltime: geophones/shots", "gravity: gravity stations"):
        xy = lines[label].get_xydata()
        heights.append(xy[np.argmin(np.abs(xy[:, 0] - 30.0)), 1])  # the sensor at x = 30 m
    assert len(set(heights)) == 3  # none drawn over another


def test_section_units_are_readable(quick):
    _, saved = quick
    labels = {
        p: section_figure(saved, p, doi_mask=False).axes[1].get_ylabel() for p in saved.models
    }
    assert labels == {
        "resistivity": "resistivity (Ω·m)",
        "velocity": "velocity (m/s)",
        "density_contrast": "density_contrast (g/cm³)",
    }


@pytest.mark.parametrize(
    ("units", "shown"),
    [
        ("ohm*m", "Ω·m"),
        ("Ohm m", "Ω·m"),
        ("ohmm", "Ω·m"),
        ("ohm-m", "Ω·m"),
        ("log10(ohm*m)", "log10(Ω·m)"),
        ("ln(ohm*m)", "ln(Ω·m)"),
        ("ohm", "Ω"),
        ("g/cm^3", "g/cm³"),
        ("g/cc", "g/cm³"),
        ("kg/m^3", "kg/m³"),
        ("1/m^2 per parameter unit", "1/m² per parameter unit"),
        ("m/s", "m/s"),
        ("SI", "SI"),
        ("mGal", "mGal"),
        ("", ""),
    ],
)
def test_display_units(units, shown):
    assert display_units(units) == shown


def test_resolution_plot_averages_out_the_probe_noise(quick):
    _, saved = quick
    saved = copy.deepcopy(saved)
    nz, nx = saved.shape
    checker = np.where((np.arange(nz)[:, None] + np.arange(nx)[None, :]) % 2, 0.2, -0.2)
    saved.diagnostics.resolution["velocity"] = (0.3 + checker).ravel()
    smooth = smoothed_resolution(saved, "velocity")
    assert RESOLUTION_SMOOTHING == 5
    inner = smooth.reshape(nz, nx)[2:-2, 2:-2]  # full 5 × 5 windows: 13 of one sign, 12 other
    np.testing.assert_allclose(np.abs(inner - 0.3), 0.2 / 25)
    saved.diagnostics.resolution["velocity"] = np.full(nz * nx, 0.3)
    np.testing.assert_allclose(smoothed_resolution(saved, "velocity"), 0.3)  # edges too


# --------------------------------------------------------------------------- convergence
def _target_lines(fig) -> dict[str, float]:
    return {
        line.get_label(): line.get_ydata()[0]
        for line in fig.axes[0].get_lines()
        if line.get_label().startswith("χ² target")
    }


def test_convergence_draws_each_modalitys_own_target(tmp_path):
    saved = read_result(write_small(tmp_path / "r.h5", {"ert": _pole_dipole(), "g": _gravity()}))
    assert _target_lines(convergence_figure(saved)) == {
        "χ² target 1.5 (ert)": 1.5,
        "χ² target 2.5 (g)": 2.5,
    }
    saved = read_result(write_small(tmp_path / "one.h5", {"g": _gravity(target=2.5)}))
    assert _target_lines(convergence_figure(saved)) == {"χ² target 2.5": 2.5}


@pytest.mark.parametrize(
    ("config_text", "target"),
    [
        ("modalities:\n  g: {chi2_target: 1.7}\ninversion: {chi2_target: 3}\n", 1.7),
        ("modalities:\n  g: {kind: gravity}\ninversion: {chi2_target: 3}\n", 3.0),
        ("inversion: {chi2_target: -1}\n", 1.0),
        ("not: [valid yaml", 1.0),
        ("", 1.0),
    ],
)
def test_targets_of_results_written_before_they_were_stored(tmp_path, config_text, target):
    data = {"g": _gravity(target=None)}
    saved = read_result(write_small(tmp_path / "old.h5", data, {"config_text": config_text}))
    assert chi2_targets(saved) == {"g": target}
    assert _target_lines(convergence_figure(saved)) == {f"χ² target {target:g}": target}


# --------------------------------------------------------------------------- backend
def test_plotting_leaves_the_matplotlib_backend_alone(tmp_path):
    import matplotlib

    saved = read_result(write_small(tmp_path / "r.h5", {"ert": _pole_dipole(), "g": _gravity()}))
    before = matplotlib.get_backend()
    matplotlib.use("pdf")  # what a notebook's inline backend would be to us
    try:
        paths = plot_result(saved, tmp_path / "plots")
        assert matplotlib.get_backend() == "pdf"
    finally:
        matplotlib.use(before)
    assert sorted(p.name for p in paths) == [
        "convergence.png",
        "fit_ert.png",
        "fit_g.png",
        "model_density_contrast.png",
    ]


def test_show_no_doi_mask(quick, tmp_path):
    path, _ = quick
    faded, full = tmp_path / "faded", tmp_path / "full"
    for out, extra in ((faded, []), (full, ["--no-doi-mask"])):
        result = runner.invoke(app, ["show", str(path), "--plot", str(out), *extra])
        assert result.exit_code == 0, result.output
    assert (faded / "model_velocity.png").read_bytes() != (full / "model_velocity.png").read_bytes()
