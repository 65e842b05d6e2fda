"""Round trips of every file variant (issue 7) and the real datasets in ../shared/realdata.

The real data live beside the repository (``<repo>/../shared/realdata``); tests that need
them skip when they are absent. Counts are those stated in each dataset's PROVENANCE.md.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

import numpy as np
import pytest

from jointinv.data import ProfileLine
from jointinv.errors import DataError
from jointinv.readers import (
    GravityProfileError,
    project_to_profile,
    read_ert,
    read_gravity,
    read_gravity_csv,
    read_gravity_ubc,
    read_traveltime,
)

from .conftest import real


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def raises(path: Path, line: int | None, message: str, error: type = DataError):
    where = f"{path}:{line}: " if line else f"{path}: "
    return pytest.raises(error, match="^" + re.escape(where + message) + "$")


# --------------------------------------------------------------------------- ERT variants

# Wenner alpha (a = 1 m, k = 2π) and dipole-dipole A B M N at 0 1 2 3 (k = -6π) on
# electrodes x = 0..5 at a constant absolute elevation of 540 m.
WENNER_K, DD_K = 2 * np.pi, -6 * np.pi


def ert_text(sensor_header: str, sensor_rows: list[str], tokens: str, rows: list[str]) -> str:
    return (
        f"{len(sensor_rows)}\n{sensor_header}"
        + "".join(r + "\n" for r in sensor_rows)
        + f"{len(rows)}\n# {tokens}\n"
        + "".join(r + "\n" for r in rows)
    )


@pytest.mark.parametrize(
    ("header", "rows"),
    [
        ("# x y\n", [f"{x} 540" for x in range(6)]),  # 2D x y: y is elevation
        ("# x z\n", [f"{x} 540" for x in range(6)]),
        ("# x y z\n", [f"{x} 0 540" for x in range(6)]),  # x y z, y all 0: z is elevation
        ("", [f"{x} 0 540" for x in range(6)]),  # three columns without token line
    ],
)
def test_ert_elevation_column_kept_absolute(tmp_path, header, rows):
    path = write(tmp_path, "d.ohm", ert_text(header, rows, "a b m n rhoa", ["1 4 2 3 50"]))
    d = read_ert(path)
    np.testing.assert_array_equal(d.electrodes, [[x, 540.0] for x in range(6)])  # not shifted
    np.testing.assert_allclose(d.geometric_factor, [WENNER_K])
    assert d.geometric_factor_source == "analytic"  # flat, even at 540 m


def test_ert_xyz_both_nonzero_is_one_line_error(tmp_path):
    rows = ["0 0 540", "1 2 540", "2 0 540", "3 0 540"]
    path = write(tmp_path, "d.ohm", ert_text("# x y z\n", rows, "a b m n rhoa", ["1 4 2 3 5"]))
    with raises(
        path,
        4,
        "sensors have nonzero y (first on line 4) and nonzero z (first on line 3): a 2D profile "
        "needs x along it and the elevation in y (x y files) or in z (x y z files with y all 0)",
    ):
        read_ert(path)


@pytest.mark.parametrize(
    ("tokens", "row", "rhoa", "k", "source"),
    [
        ("a b m n rhoa", "1 4 2 3 50", 50.0, WENNER_K, "analytic"),
        ("a b m n r k", "1 4 2 3 2 7", 14.0, 7.0, "file"),
        ("a b m n r", "1 4 2 3 2", 2 * WENNER_K, WENNER_K, "analytic"),
        ("a b m n u i", "1 2 3 4 0.3 0.1", 3 * DD_K, DD_K, "analytic"),  # r = u/i
        ("a b m n u i k", "1 2 3 4 0.3 0.1 -20", -60.0, -20.0, "file"),
        ("a b m n rhoa k", "1 4 2 3 50 0", 50.0, WENNER_K, "analytic"),  # k of zeros: absent
    ],
)
def test_ert_resistivity_variants(tmp_path, tokens, row, rhoa, k, source):
    sensors = [f"{x} 0" for x in range(6)]
    d = read_ert(write(tmp_path, "d.ohm", ert_text("# x z\n", sensors, tokens, [row])))
    np.testing.assert_allclose(d.apparent_resistivity, [rhoa])
    np.testing.assert_allclose(d.geometric_factor, [k])
    assert d.geometric_factor_source == source


@pytest.mark.parametrize(("tokens", "unit"), [("err", None), ("err/%", "percent")])
def test_ert_err_kept_as_written_with_declared_unit(tmp_path, tokens, unit):
    sensors = [f"{x} 0" for x in range(6)]
    text = ert_text("# x z\n", sensors, f"a b m n rhoa {tokens}", ["1 4 2 3 50 2.5"])
    d = read_ert(write(tmp_path, "d.ohm", text))
    np.testing.assert_array_equal(d.err, [2.5])
    assert d.err_unit == unit


def test_ert_topography_numerical_k_matches_flat_for_tiny_relief(tmp_path):
    """Numerical k (pyGIMLi) over 1 mm of relief equals the flat analytic k within 2 %."""
    sensors = [f"{2 * x} {0.001 if x == 5 else 0}" for x in range(12)]
    # electrode 12 is used: a 0 (remote) in a file that never uses its last electrode
    # is refused as a 0-based index
    rows = ["1 4 2 3 1", "2 5 3 4 1", "1 2 3 4 1", "5 6 8 9 1", "1 0 3 4 1", "9 10 11 12 1"]
    d = read_ert(write(tmp_path, "topo.ohm", ert_text("# x z\n", sensors, "a b m n r", rows)))
    assert d.geometric_factor_source == "numerical"
    flat = read_ert(
        write(
            tmp_path,
            "flat.ohm",
            ert_text("# x z\n", [f"{2 * x} 0" for x in range(12)], "a b m n r", rows),
        )
    )
    assert flat.geometric_factor_source == "analytic"
    np.testing.assert_allclose(d.geometric_factor, flat.geometric_factor, rtol=0.02)
    np.testing.assert_allclose(d.apparent_resistivity, d.geometric_factor)  # r = 1


# --------------------------------------------------------------------------- traveltime variants


@pytest.mark.parametrize(
    ("header", "rows"),
    [("# x y\n", ["0 532.5", "2 533.0"]), ("# x y z\n", ["0 0 532.5", "2 0 533.0"])],
)
def test_sgt_elevation_variants(tmp_path, header, rows):
    text = f"2\n{header}" + "".join(r + "\n" for r in rows) + "1\n# s g t\n1 2 0.004\n"
    d = read_traveltime(write(tmp_path, "t.sgt", text))
    np.testing.assert_array_equal(d.sensors, [[0, 532.5], [2, 533.0]])
    np.testing.assert_array_equal(d.line_numbers, [7])


# --------------------------------------------------------------------------- gravity

PROFILE = ProfileLine(start=(100.0, 200.0), end=(400.0, 600.0))  # 500 m long, direction (.6, .8)


def test_project_to_profile():
    xy = np.array([[100.0, 200.0], [400.0, 600.0], [180.0, 140.0], [40.0, 120.0]])
    along, offset = project_to_profile(xy, PROFILE)
    # (80, -60) is perpendicular to (0.6, 0.8): along 0, offset 100; (-60, -80) is before start
    np.testing.assert_allclose(along, [0.0, 500.0, 0.0, -100.0], atol=1e-9)
    np.testing.assert_allclose(offset, [0.0, 0.0, 100.0, 0.0], atol=1e-9)


def test_gravity_csv_3d_projected(tmp_path):
    text = "x,y,z,gz,err\n100,200,10,0.5,0.01\n400,600,12,-0.25,0.02\n180,140,11,0.1,0.01\n"
    d = read_gravity(write(tmp_path, "g.csv", text), PROFILE)
    np.testing.assert_allclose(d.stations, [[0, 10], [500, 12], [0, 11]], atol=1e-9)
    np.testing.assert_array_equal(d.gz_mgal, [0.5, -0.25, 0.1])
    np.testing.assert_array_equal(d.error_mgal, [0.01, 0.02, 0.01])
    np.testing.assert_allclose(d.offset_m, [0, 0, 100], atol=1e-9)
    np.testing.assert_array_equal(d.map_xy[2], [180, 140])
    np.testing.assert_array_equal(d.line_numbers, [2, 3, 4])


def test_gravity_max_offset_drops_and_logs(tmp_path, caplog):
    text = "x,y,z,gz\n100,200,10,0.5\n400,600,12,-0.25\n180,140,11,0.1\n"
    profile = ProfileLine(PROFILE.start, PROFILE.end, max_offset=50.0)
    with caplog.at_level(logging.DEBUG, logger="jointinv.readers"):
        d = read_gravity(write(tmp_path, "g.csv", text), profile)
    np.testing.assert_array_equal(d.gz_mgal, [0.5, -0.25])
    assert d.error_mgal is None
    assert d.n_dropped == 1
    assert "projected 2 stations onto the profile" in caplog.text
    assert "dropped 1 farther than max_offset 50 m" in caplog.text


def test_gravity_all_beyond_max_offset(tmp_path):
    path = write(tmp_path, "g.csv", "x,y,z,gz\n180,140,11,0.1\n")
    with raises(
        path,
        None,
        "all 1 stations lie farther than max_offset = 50 m from the profile line (nearest: "
        "100 m); check options.profile",
    ):
        read_gravity(path, ProfileLine(PROFILE.start, PROFILE.end, max_offset=50.0))


UBC = (
    "! a UBC-GIF observation file\n3\n100 200 10 0.5 0.05\n\n"
    "400 600 12 -0.25 0.05\n180 140 11 0.1 0.04\n"
)


@pytest.mark.parametrize("suffix", [".grv", ".obs", ".OBS"])
def test_gravity_ubc_round_trip(tmp_path, suffix):
    d = read_gravity(write(tmp_path, "g" + suffix, UBC), PROFILE)
    np.testing.assert_allclose(d.stations, [[0, 10], [500, 12], [0, 11]], atol=1e-9)
    np.testing.assert_array_equal(d.gz_mgal, [0.5, -0.25, 0.1])  # UBC gz used unchanged
    np.testing.assert_array_equal(d.error_mgal, [0.05, 0.05, 0.04])
    np.testing.assert_array_equal(d.line_numbers, [3, 5, 6])


def test_gravity_ubc_without_std(tmp_path):
    d = read_gravity_ubc(write(tmp_path, "g.obs", "1\n100 200 10 0.5\n"), PROFILE)
    assert d.error_mgal is None


@pytest.mark.parametrize(
    ("text", "line", "message"),
    [
        ("! only\n", None, "file has no data (only comments)"),
        (
            "2\n1 2 3 4 5\n",
            None,
            "line 1 declares 2 data but the file has 1 data rows; fix the count",
        ),
        (
            "1\n1 2 3 4 5\n1 2 3 4 5\n",
            3,
            "line 1 declares 1 data but the file has 2 data rows; fix the count",
        ),
        ("2 1\n1 2 3 4 5\n", 1, "expected the number of data (one integer) but found '2 1'"),
        ("1\n1 2 3\n", 2, "row has 3 values; expected 'E N Elev gz std' (5) or 'E N Elev gz' (4)"),
        ("2\n1 2 3 4 5\n1 2 3 4\n", 3, "row has 4 values; the first row (line 2) has 5"),
        ("1\n1 2 x 4 5\n", 2, "data column 'elev': 'x' is not a number"),
    ],
)
def test_gravity_ubc_bad(tmp_path, text, line, message):
    path = write(tmp_path, "g.grv", text)
    with raises(path, line, message):
        read_gravity(path, PROFILE)


def test_gravity_3d_without_profile(tmp_path):
    path = write(tmp_path, "g.grv", UBC)
    with raises(
        path,
        2,
        "stations are given in map coordinates (x, y, z); set options.profile {start: [x, y], "
        "end: [x, y]} (m) to project them onto the profile",
        GravityProfileError,
    ) as info:
        read_gravity(path)
    assert info.value.needed


def test_gravity_2d_with_profile(tmp_path):
    path = write(tmp_path, "g.csv", "x,z,gz\n0,0,1\n")
    with raises(
        path,
        1,
        "stations are already given along the profile (x, z); remove options.profile",
        GravityProfileError,
    ) as info:
        read_gravity_csv(path, PROFILE)
    assert not info.value.needed


def test_gravity_unknown_suffix(tmp_path):
    path = write(tmp_path, "g.txt", "x,z,gz\n0,0,1\n")
    with raises(
        path,
        None,
        "unknown gravity file type '.txt': use .csv (x,z,gz[,err] or x,y,z,gz[,err]) or "
        "UBC-GIF .obs/.grv (E N Elev gz std)",
    ):
        read_gravity(path)


def test_gravity_csv_2d_unchanged(tmp_path):
    d = read_gravity(write(tmp_path, "g.csv", "x,z,gz,err\n0,1.5,-0.25,0.02\n"))
    np.testing.assert_array_equal(d.stations, [[0, 1.5]])
    assert d.map_xy is None


# --------------------------------------------------------------------------- real data


def ldm_profile(**kw) -> ProfileLine:
    # SW-NE diagonal of the survey box (PROVENANCE.md: E 356.5-370.2 km, N 5999.9-6015.0 km)
    return ProfileLine((356_500.0, 5_999_900.0), (370_200.0, 6_015_000.0), **kw)


def test_real_laguna_del_maule_ubc_gravity():
    # PROVENANCE.md: 191 stations, elevation 2155..2865 m, gz -18.6..9.9 mGal, std 0.05
    d = read_gravity(real("laguna_del_maule_gravity/LdM_grav_obs.grv"), ldm_profile())
    assert d.n_data == 191
    np.testing.assert_allclose([d.gz_mgal.min(), d.gz_mgal.max()], [-18.6309, 9.917])
    np.testing.assert_array_equal(d.error_mgal, 0.05)
    np.testing.assert_allclose(
        [d.stations[:, 1].min(), d.stations[:, 1].max()], [2154.978, 2865.274]
    )
    length = np.hypot(370_200 - 356_500, 6_015_000 - 5_999_900)
    assert d.stations[:, 0].min() > -1000 and d.stations[:, 0].max() < length + 1000


def test_real_laguna_del_maule_sign_against_simpeg():
    """UBC gz is positive down (excess mass), as in jointinv; SimPEG flips it."""
    io_utils = pytest.importorskip("simpeg.utils.io_utils")
    path = real("laguna_del_maule_gravity/LdM_grav_obs.grv")
    ours = read_gravity(path, ldm_profile())
    simpeg = io_utils.read_grav3d_ubc(str(path))
    np.testing.assert_allclose(ours.gz_mgal, -simpeg.dobs)
    np.testing.assert_allclose(ours.error_mgal, simpeg.standard_deviation)
    locations = simpeg.survey.receiver_locations
    np.testing.assert_allclose(ours.map_xy, locations[:, :2])
    np.testing.assert_allclose(ours.stations[:, 1], locations[:, 2])


def test_real_laguna_del_maule_max_offset():
    full = read_gravity(real("laguna_del_maule_gravity/LdM_grav_obs.grv"), ldm_profile())
    near = read_gravity(
        real("laguna_del_maule_gravity/LdM_grav_obs.grv"), ldm_profile(max_offset=2000.0)
    )
    assert near.n_data == int((full.offset_m <= 2000).sum())
    assert 0 < near.n_data < 191
    assert near.offset_m.max() <= 2000


@pytest.mark.parametrize(
    ("rel", "n_sensors", "n_data", "rhoa", "k_source"),
    [
        ("mulda_ert_srt/ert_timelapse/MuldaA-2008-05-09.data", 50, 784, (235, 1494), "file"),
        ("luneplate_ert/luneplateP3start.dat", 61, 811, (2.952, 20.65), "analytic"),
        ("century_dcip/46800POT_pygimli.ohm", 33, 151, (39, 597.9), "file"),
        ("century_dcip/47000POT_pygimli.ohm", 31, 177, (40, 597), "file"),
        ("century_dcip/27750POT_pygimli.ohm", 30, 173, (38, 1976), "file"),
        ("myanmar_gwb_ert/Aung_San_DD_pygimli.ohm", 60, 1433, (54.75, 2095), "file"),
        ("myanmar_gwb_ert/kawpiphtaw_DD_pygimli.ohm", 72, 1696, (101.6, 1464), "file"),
        ("myanmar_gwb_ert/GTI_WS_pygimli.ohm", 72, 1463, (54.09, 882.5), "file"),
    ],
)
def test_real_ert_counts(rel, n_sensors, n_data, rhoa, k_source):
    d = read_ert(real(rel))
    assert d.electrodes.shape == (n_sensors, 2)
    assert d.n_data == n_data
    rho = d.apparent_resistivity
    np.testing.assert_allclose([rho.min(), rho.max()], rhoa, rtol=2e-3)
    assert d.geometric_factor_source == k_source
    assert d.geometric_factor.shape == (n_data,)
    assert np.all(np.isfinite(d.geometric_factor)) and np.all(d.geometric_factor != 0)


def test_real_mulda_ert_z_elevation_absolute():
    # PROVENANCE.md: 'x y z' with y = 0 and z = elevation 532.61..541.49 m a.s.l.
    d = read_ert(real("mulda_ert_srt/ert_timelapse/MuldaA-2008-05-09.data"))
    np.testing.assert_allclose(
        [d.electrodes[:, 1].min(), d.electrodes[:, 1].max()], [532.61, 541.493]
    )
    np.testing.assert_allclose(
        [d.electrodes[:, 0].min(), d.electrodes[:, 0].max()], [0, 48.07], atol=0.01
    )


@pytest.mark.parametrize(
    ("rel", "n_sensors", "n_data", "shots", "geophones"),
    [
        ("koenigsee_srt/koenigsee.sgt", 63, 714, 15, 48),
        ("mulda_ert_srt/jmulda-a0.sgt", 68, 941, 20, 48),
    ],
)
def test_real_traveltime_counts(rel, n_sensors, n_data, shots, geophones):
    d = read_traveltime(real(rel))
    assert d.sensors.shape == (n_sensors, 2)
    assert d.n_data == n_data
    assert len(np.unique(d.shot)) == shots
    assert len(np.unique(d.geophone)) == geophones
    assert d.error_s is None


def test_real_borkum_beach_numerical_k():
    # PROVENANCE.md: 81 electrodes, elevation -0.14..7.86 m, 1478 data 'a b m n u i', no k:
    # numerical k over the topography (pyGIMLi, about 10 s the first time, then cached)
    d = read_ert(real("borkum_beach_ert/beach.ohm"))
    assert d.electrodes.shape == (81, 2)
    assert d.n_data == 1478
    np.testing.assert_allclose([d.electrodes[:, 1].min(), d.electrodes[:, 1].max()], [-0.14, 7.86])
    assert d.geometric_factor_source == "numerical"
    assert np.all(np.isfinite(d.apparent_resistivity))
    # PROVENANCE.md: r = u/i in 0.004889 .. 82.5 ohm
    r = d.apparent_resistivity / d.geometric_factor
    np.testing.assert_allclose([r.min(), r.max()], [0.004889, 82.5], rtol=1e-3)


@pytest.mark.slow
def test_real_borkum_beach_homogeneous_rhoa_is_100():
    """k·r of a 100 ohm·m half-space under the beach's topography, simulated on another
    mesh (no h-refinement, finer surface), is 100 ohm·m within 2 %."""
    pg = pytest.importorskip("pygimli")
    from pygimli.physics import ert

    d = read_ert(real("borkum_beach_ert/beach.ohm"))
    scheme = pg.DataContainerERT()
    for x, z in d.electrodes:
        scheme.createSensor(pg.Pos(x, z, 0.0))
    scheme.resize(d.n_data)
    for j, name in enumerate("abmn"):
        scheme.set(name, pg.Vector(d.abmn[:, j].astype(float)))
    scheme.set("valid", pg.Vector(np.ones(d.n_data)))
    mesh = ert.createInversionMesh(scheme, quality=33.5, paraDX=0.25).createP2()
    out = ert.simulate(mesh, res=100.0, scheme=scheme, sr=False, calcOnly=True, verbose=False)
    r = np.asarray(out["u"]) / np.asarray(out["i"])
    rhoa = d.geometric_factor * r
    np.testing.assert_allclose(rhoa, 100.0, rtol=0.02)


def test_real_luneplate_numerical_k_agrees_with_analytic():
    """On the flat Luneplate line the numerical k (pyGIMLi) equals the analytic k within 1 %."""
    from jointinv.engines.geometric import numerical_geometric_factors

    d = read_ert(real("luneplate_ert/luneplateP3start.dat"))
    assert d.geometric_factor_source == "analytic"
    sel = slice(0, None, 20)  # 41 of the 811 gradient-array data keep it quick
    k = numerical_geometric_factors(d.electrodes, d.abmn[sel])
    np.testing.assert_allclose(k, d.geometric_factor[sel], rtol=0.01)
