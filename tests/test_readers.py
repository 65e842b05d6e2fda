"""Tests of the data-file readers (pyGIMLi unified format and gravity CSV)."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from jointinv.errors import DataError
from jointinv.readers import read_ert, read_gravity_csv, read_traveltime

from .conftest import real

# Six flat electrodes at x = 0..5 m; lines 1-8 are the sensor block, line 9 the data count,
# line 10 the data token line, data rows from line 11.
SENSORS = "6  # electrodes\n# x z\n0 0\n1 0\n2 0\n3 0\n4 0\n5 0\n"


def write(tmp_path: Path, text: str, name: str = "data.ohm") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def ert_file(tmp_path: Path, tokens: str, rows: list[str], sensors: str = SENSORS) -> Path:
    text = sensors + f"{len(rows)}\n# {tokens}\n" + "".join(r + "\n" for r in rows)
    return write(tmp_path, text)


def raises(path: Path, line: int | None, message: str):
    where = f"{path}:{line}: " if line else f"{path}: "
    return pytest.raises(DataError, match="^" + re.escape(where + message) + "$")


# --------------------------------------------------------------------------- ERT round trips


def test_ert_rhoa_and_err(tmp_path):
    path = ert_file(tmp_path, "a b m n rhoa err", ["1 2 3 4 100 0.03", "2 3 4 5 -5.5 0.05"])
    d = read_ert(path)
    np.testing.assert_array_equal(d.electrodes, [[x, 0.0] for x in range(6)])
    np.testing.assert_array_equal(d.abmn, [[0, 1, 2, 3], [1, 2, 3, 4]])
    assert d.abmn.dtype.kind == "i"
    np.testing.assert_array_equal(d.apparent_resistivity, [100.0, -5.5])  # negative kept
    np.testing.assert_array_equal(d.err, [0.03, 0.05])  # as written; unit from the config
    assert d.err_unit is None
    # rhoa without k on flat electrodes: analytic k (A B M N at 0 1 2 3: -6π)
    np.testing.assert_allclose(d.geometric_factor, [-6 * np.pi, -6 * np.pi])
    assert d.geometric_factor_source == "analytic"
    np.testing.assert_array_equal(d.line_numbers, [11, 12])
    assert d.source == str(path)
    assert d.n_data == 2


def test_ert_without_err_gives_none(tmp_path):
    d = read_ert(ert_file(tmp_path, "a b m n rhoa", ["1 2 3 4 100"]))
    assert d.err is None


def test_ert_r_times_k(tmp_path):
    d = read_ert(ert_file(tmp_path, "a b m n r k", ["1 4 2 3 2.0 6.5", "1 2 3 4 -0.5 -20"]))
    np.testing.assert_allclose(d.apparent_resistivity, [13.0, 10.0])
    np.testing.assert_allclose(d.geometric_factor, [6.5, -20.0])
    assert d.geometric_factor_source == "file"


def test_ert_u_over_i_times_k(tmp_path):
    d = read_ert(ert_file(tmp_path, "a b m n u i k", ["1 4 2 3 0.3 0.1 5"]))
    np.testing.assert_allclose(d.apparent_resistivity, [15.0])


def test_ert_rhoa_wins_over_r_and_k(tmp_path):
    # as in luneplateP3start.dat: a k column of zeros next to rhoa is ignored; rhoa is
    # used as written (k·u/i = 2π·0.05 = 0.31416 agrees with it within 2 %)
    d = read_ert(ert_file(tmp_path, "a b m n rhoa k u i", ["1 4 2 3 0.3142 0 0.01 0.2"]))
    np.testing.assert_allclose(d.apparent_resistivity, [0.3142])
    # the k column of zeros counts as absent: analytic Wenner k = 2π a
    np.testing.assert_allclose(d.geometric_factor, [2 * np.pi])
    assert d.geometric_factor_source == "analytic"


def test_ert_r_only_flat_uses_analytic_k(tmp_path):
    # Wenner alpha, a = 1 m: k = 2π a; dipole-dipole B A M N (n = 1): k = -6π for a b m n
    # ordered 1 2 3 4 (A=0, B=1, M=2, N=3): 1/2 - 1 - 1/3 + 1/2 = -1/3
    d = read_ert(ert_file(tmp_path, "a b m n r", ["1 4 2 3 2.0", "1 2 3 4 -1.0"]))
    np.testing.assert_allclose(d.apparent_resistivity, [2.0 * 2 * np.pi, -1.0 * -6 * np.pi])
    np.testing.assert_allclose(d.geometric_factor, [2 * np.pi, -6 * np.pi])
    assert d.geometric_factor_source == "analytic"


def test_ert_u_i_only_flat_uses_analytic_k(tmp_path):
    d = read_ert(ert_file(tmp_path, "a b m n u i", ["1 4 2 3 0.2 0.1"]))
    np.testing.assert_allclose(d.apparent_resistivity, [2.0 * 2 * np.pi])


def test_ert_err_percent(tmp_path):
    d = read_ert(ert_file(tmp_path, "a b m n rhoa/Ohmm err/%", ["1 2 3 4 100 3", "2 3 4 5 50 5"]))
    np.testing.assert_allclose(d.err, [3.0, 5.0])  # as written, declared percent
    assert d.err_unit == "percent"
    np.testing.assert_allclose(d.apparent_resistivity, [100.0, 50.0])


@pytest.mark.parametrize("remote", ["0", "-1"])
def test_ert_pole_dipole_remote_b(tmp_path, remote):
    d = read_ert(ert_file(tmp_path, "a b m n r", [f"1 {remote} 2 3 1.0", f"6 {remote} 5 4 1.0"]))
    np.testing.assert_array_equal(d.abmn, [[0, -1, 1, 2], [5, -1, 4, 3]])
    # k = 2π / (1/AM - 1/AN) = 2π / (1 - 1/2) = 4π
    np.testing.assert_allclose(d.apparent_resistivity, [4 * np.pi, 4 * np.pi])


def test_ert_pole_pole_remote_b_and_n(tmp_path):
    d = read_ert(ert_file(tmp_path, "a b m n r", ["1 0 3 0 1.0", "4 0 6 0 1.0"]))
    np.testing.assert_array_equal(d.abmn, [[0, -1, 2, -1], [3, -1, 5, -1]])
    np.testing.assert_allclose(d.apparent_resistivity, [2 * np.pi * 2.0, 2 * np.pi * 2.0])


def test_ert_without_b_column_is_pole_array(tmp_path):
    d = read_ert(ert_file(tmp_path, "a m n rhoa", ["1 2 3 100"]))
    np.testing.assert_array_equal(d.abmn, [[0, -1, 1, 2]])


def test_ert_tokens_case_and_any_order(tmp_path):
    # Mulda style: 'R' upper case; columns in any order; extra columns (ip) ignored
    d = read_ert(ert_file(tmp_path, "rhoa ip err a b m n", ["100 -7.1 0.02 1 2 3 4"]))
    np.testing.assert_array_equal(d.abmn, [[0, 1, 2, 3]])
    d = read_ert(ert_file(tmp_path, "a b m n R k", ["1 2 3 4 2 3"]))
    np.testing.assert_allclose(d.apparent_resistivity, [6.0])


def test_ert_comments_blank_lines_crlf_and_topography_block(tmp_path):
    text = (
        "# a file comment\n\n3 # number of electrodes\n# x z\n0 0\n1 0 # first\n2 0\n"
        "\n# more comments\n1 # data\n# a b m n rhoa\n1 0 2 3 100 # pole-dipole\n"
        "2\n0 0\n2 0\n"
    )
    d = read_ert(write(tmp_path, text.replace("\n", "\r\n")))
    np.testing.assert_array_equal(d.abmn, [[0, -1, 1, 2]])
    np.testing.assert_array_equal(d.apparent_resistivity, [100.0])


def test_ert_free_comment_after_token_line(tmp_path):
    text = SENSORS + "1\n# a b m n rhoa\n# measured on the beach\n1 2 3 4 100\n"
    d = read_ert(write(tmp_path, text))
    np.testing.assert_array_equal(d.apparent_resistivity, [100.0])


def test_ert_valid_column_drops_invalid_rows(tmp_path):
    d = read_ert(ert_file(tmp_path, "a b m n rhoa valid", ["1 2 3 4 10 1", "1 1 1 1 0 0"]))
    np.testing.assert_array_equal(d.apparent_resistivity, [10.0])


# --------------------------------------------------------------------------- sensor columns


@pytest.mark.parametrize(
    ("header", "rows", "expected_z"),
    [
        ("", ["0 1.5", "1 2.5"], [1.5, 2.5]),  # two columns: x z
        ("", ["0 0 1.5", "1 0 2.5"], [1.5, 2.5]),  # x y z, y zero: z
        ("", ["0 1.5 0", "1 2.5 0"], [1.5, 2.5]),  # x y z, z zero: y
        ("# x y\n", ["0 1.5", "1 2.5"], [1.5, 2.5]),  # pyGIMLi 2D: y is elevation
        ("# x z\n", ["0 1.5", "1 2.5"], [1.5, 2.5]),
        ("# z x\n", ["1.5 0", "2.5 1"], [1.5, 2.5]),  # any order
        ("# x y z\n", ["0 0 1.5", "1 0 2.5"], [1.5, 2.5]),
        ("# x y z\n", ["0 1.5 0", "1 2.5 0"], [1.5, 2.5]),
        ("# X/m Z/m\n", ["0 1.5", "1 2.5"], [1.5, 2.5]),  # case and units
        ("# x\n", ["0", "1"], [0.0, 0.0]),  # x only: elevation 0
        ("# positions\n", ["0 1.5", "1 2.5"], [1.5, 2.5]),  # not a token line
    ],
)
def test_sensor_column_rules(tmp_path, header, rows, expected_z):
    text = "2\n" + header + "".join(r + "\n" for r in rows) + "1\n# s g t\n1 2 0.001\n"
    d = read_traveltime(write(tmp_path, text, "t.sgt"))
    np.testing.assert_array_equal(d.sensors, np.column_stack([[0.0, 1.0], expected_z]))


def test_sensors_3d_rejected(tmp_path):
    path = write(tmp_path, "2\n# x y z\n0 0 1\n1 3 1\n1\n# s g t\n1 2 0.001\n")
    with raises(
        path,
        4,
        "sensors have nonzero y (first on line 4) and nonzero z (first on line 3): a 2D "
        "profile needs x along it and the elevation in y (x y files) or in z (x y z files "
        "with y all 0)",
    ):
        read_traveltime(path)


# --------------------------------------------------------------------------- traveltime round trips


def test_sgt_without_err(tmp_path):
    text = "3 # shot/geophone points\n#x\ty\n-1\t0.5\n0\t0\n1\t-0.5\n3 # measurements\n#s\tg\tt\n"
    text += "1\t2\t0.001\n1\t3\t0.002\n3\t2\t0.0015\n"
    d = read_traveltime(write(tmp_path, text, "t.sgt"))
    np.testing.assert_array_equal(d.sensors, [[-1, 0.5], [0, 0], [1, -0.5]])
    np.testing.assert_array_equal(d.shot, [0, 0, 2])
    np.testing.assert_array_equal(d.geophone, [1, 2, 1])
    np.testing.assert_array_equal(d.traveltime_s, [0.001, 0.002, 0.0015])
    assert d.error_s is None
    assert d.n_data == 3


def test_sgt_with_err(tmp_path):
    text = "2\n0 0\n1 0\n2\n# s g t err\n1 2 0.001 0.0005\n2 1 0.0011 0.0006\n"
    d = read_traveltime(write(tmp_path, text, "t.sgt"))
    np.testing.assert_array_equal(d.error_s, [0.0005, 0.0006])


def test_sgt_milliseconds_converted(tmp_path):
    text = "2\n0 0\n1 0\n1\n# s g t/ms err/ms\n1 2 1.5 0.5\n"
    d = read_traveltime(write(tmp_path, text, "t.sgt"))
    np.testing.assert_allclose(d.traveltime_s, [0.0015])
    np.testing.assert_allclose(d.error_s, [0.0005])


# --------------------------------------------------------------------------- gravity round trips


def test_gravity_with_err(tmp_path):
    text = (
        "# gravity profile\n# units: m, mGal\n X , Z,GZ , Err\n0,1.5,-0.25,0.02\n10,1.0,0.5,0.03\n"
    )
    d = read_gravity_csv(write(tmp_path, text, "g.csv"))
    np.testing.assert_array_equal(d.stations, [[0, 1.5], [10, 1.0]])
    np.testing.assert_array_equal(d.gz_mgal, [-0.25, 0.5])
    np.testing.assert_array_equal(d.error_mgal, [0.02, 0.03])
    assert d.n_data == 2


def test_gravity_without_err_any_order(tmp_path):
    text = "gz,x,z\n0.1,0,0\n\n0.2,5,0\n"
    d = read_gravity_csv(write(tmp_path, text, "g.csv"))
    np.testing.assert_array_equal(d.stations, [[0, 0], [5, 0]])
    np.testing.assert_array_equal(d.gz_mgal, [0.1, 0.2])
    assert d.error_mgal is None


def test_gravity_loop_column(tmp_path):
    text = "x,loop,z,gz\n0,A,0,0.1\n5,'day 2',0,0.2\n10,A,0,0.3\n"
    d = read_gravity_csv(write(tmp_path, text, "g.csv"))
    np.testing.assert_array_equal(d.stations, [[0, 0], [5, 0], [10, 0]])
    np.testing.assert_array_equal(d.gz_mgal, [0.1, 0.2, 0.3])
    assert d.loop.tolist() == ["A", "day 2", "A"]
    assert read_gravity_csv(write(tmp_path, "x,z,gz\n0,0,1\n", "h.csv")).loop is None


# --------------------------------------------------------------------------- bad files (all)


@pytest.mark.parametrize("reader", [read_ert, read_traveltime, read_gravity_csv])
def test_missing_file(tmp_path, reader):
    path = tmp_path / "nope.dat"
    with raises(path, None, "file not found; check the path"):
        reader(path)


@pytest.mark.parametrize("reader", [read_ert, read_traveltime, read_gravity_csv])
def test_empty_file(tmp_path, reader):
    path = write(tmp_path, "  \n\n")
    with raises(path, None, "file is empty"):
        reader(path)


def test_directory(tmp_path):
    with raises(tmp_path, None, "is a directory, not a data file"):
        read_ert(tmp_path)


def test_binary_file(tmp_path):
    path = tmp_path / "b.ohm"
    path.write_bytes(b"\x00\x01\x02")
    with raises(path, None, "looks like a binary file; expected a text data file"):
        read_ert(path)


# --------------------------------------------------------------------------- bad unified files


def test_only_comments(tmp_path):
    path = write(tmp_path, "# nothing\n# here\n")
    with raises(path, None, "file has no sensor count line (only comments)"):
        read_ert(path)


@pytest.mark.parametrize("first", ["x6", "6.5", "6 2"])
def test_sensor_count_not_integer(tmp_path, first):
    path = write(tmp_path, f"# header\n{first}\n0 0\n")
    with raises(path, 2, f"expected the number of sensors (one integer) but found '{first}'"):
        read_ert(path)


def test_sensor_count_not_positive(tmp_path):
    path = write(tmp_path, "0\n")
    with raises(path, 1, "the number of sensors must be positive, not 0"):
        read_ert(path)


def test_fewer_sensor_rows_than_declared(tmp_path):
    path = ert_file(tmp_path, "a b m n rhoa", ["1 2 3 4 10"], sensors=SENSORS.replace("6", "7", 1))
    with raises(path, 9, "found only 6 sensor rows but line 1 declares 7; fix the sensor count"):
        read_ert(path)


def test_file_ends_in_sensor_block(tmp_path):
    path = write(tmp_path, "3\n0 0\n1 0\n")
    with raises(path, None, "file ends after 2 of the 3 sensor rows declared on line 1"):
        read_ert(path)


def test_more_sensor_rows_than_declared(tmp_path):
    path = ert_file(tmp_path, "a b m n rhoa", ["1 2 3 4 10"], sensors=SENSORS.replace("6", "5", 1))
    with raises(
        path,
        8,
        "expected the number of data (one integer) after the 5 sensor rows, but found '5 0'; "
        "does the sensor count match the sensor rows?",
    ):
        read_ert(path)


def test_sensor_row_wrong_length(tmp_path):
    path = write(tmp_path, SENSORS.replace("2 0\n", "2 0 7\n"))
    with raises(path, 5, "sensor row has 3 values; expected 2 (x z)"):
        read_ert(path)


def test_sensor_row_wrong_length_without_tokens(tmp_path):
    path = write(tmp_path, "2\n0 0 0 0\n")
    with raises(path, 2, "sensor row has 4 values; expected 2 (x z) or 3 (x y z)"):
        read_ert(path)


def test_sensor_non_numeric(tmp_path):
    path = write(tmp_path, SENSORS.replace("1 0\n", "1 zero\n"))
    with raises(path, 4, "sensor column 'z': 'zero' is not a number"):
        read_ert(path)


@pytest.mark.parametrize("bad", ["nan", "inf", "-Infinity"])
def test_sensor_not_finite(tmp_path, bad):
    path = write(tmp_path, SENSORS.replace("3 0\n", f"{bad} 0\n"))
    with raises(path, 6, f"sensor column 'x': value is {bad}; a finite number is needed"):
        read_ert(path)


def test_file_ends_after_sensors(tmp_path):
    path = write(tmp_path, SENSORS)
    with raises(path, None, "file ends after the 6 sensor rows; the data block is missing"):
        read_ert(path)


def test_data_count_not_positive(tmp_path):
    path = write(tmp_path, SENSORS + "0\n# a b m n rhoa\n")
    with raises(path, 9, "the number of data must be positive, not 0"):
        read_ert(path)


def test_no_data_token_line(tmp_path):
    path = write(tmp_path, SENSORS + "1\n1 2 3 4 10\n")
    with raises(
        path,
        10,
        "no token line naming the data columns; add a comment line such as "
        "'# a b m n rhoa err' after the data count",
    ):
        read_ert(path)


def test_duplicate_token(tmp_path):
    path = ert_file(tmp_path, "a b m n rhoa RHOA", ["1 2 3 4 10 10"])
    with raises(path, 10, "data token line names column 'rhoa' twice"):
        read_ert(path)


def test_fewer_data_rows_end_of_file(tmp_path):
    path = write(tmp_path, SENSORS + "3\n# a b m n rhoa\n1 2 3 4 10\n2 3 4 5 10\n")
    with raises(path, None, "file ends after 2 of the 3 data rows declared on line 9"):
        read_ert(path)


def test_fewer_data_rows_before_topography(tmp_path):
    path = write(tmp_path, SENSORS + "3\n# a b m n rhoa\n1 2 3 4 10\n2 3 4 5 10\n0\n")
    with raises(path, 13, "found only 2 data rows but line 9 declares 3; fix the data count"):
        read_ert(path)


def test_more_data_rows_than_declared(tmp_path):
    path = write(tmp_path, SENSORS + "1\n# a b m n rhoa\n1 2 3 4 10\n2 3 4 5 10\n")
    with raises(path, 12, "more data rows than the 1 declared on line 9; fix the data count"):
        read_ert(path)


def test_garbage_after_data(tmp_path):
    path = write(tmp_path, SENSORS + "1\n# a b m n rhoa\n1 2 3 4 10\n0 0\n")
    with raises(
        path,
        12,
        "unexpected line after the 1 data rows: expected the number of topography points "
        "(one integer) or the end of the file",
    ):
        read_ert(path)


def test_data_row_wrong_length(tmp_path):
    path = ert_file(tmp_path, "a b m n rhoa err", ["1 2 3 4 10 0.1", "2 3 4 5 10"])
    with raises(
        path,
        12,
        "data row has 5 values but the token line (line 10) names 6 columns (a b m n rhoa err)",
    ):
        read_ert(path)


def test_data_non_numeric(tmp_path):
    path = ert_file(tmp_path, "a b m n rhoa", ["1 2 3 4 10", "2 3 4 5 abc"])
    with raises(path, 12, "data column 'rhoa': 'abc' is not a number"):
        read_ert(path)


@pytest.mark.parametrize(("col", "row"), [("rhoa", "2 3 4 5 nan 0.1"), ("err", "2 3 4 5 1 inf")])
def test_data_not_finite(tmp_path, col, row):
    path = ert_file(tmp_path, "a b m n rhoa err", ["1 2 3 4 10 0.1", row])
    bad = "nan" if "nan" in row else "inf"
    with raises(path, 12, f"data column '{col}' is {bad}; a finite number is needed"):
        read_ert(path)


@pytest.mark.parametrize(
    ("row", "message"),
    [
        (
            "1 2 7 4 10",
            "sensor index 7 in column 'm' is out of range: the file has 6 sensors, so indices "
            "must be 1..6",
        ),
        (
            "0 2 3 4 10",
            "sensor index 0 in column 'a': the indices look 0-based (pyGIMLi unified format is "
            "1-based); add 1 to every sensor index",
        ),
        (
            "1 -2 3 4 10",
            "sensor index -2 in column 'b' is out of range: the file has 6 sensors, so indices "
            "must be 1..6 (or 0 for a remote electrode)",
        ),
        ("1 2 3 4.5 10", "sensor index 4.5 in column 'n' is not an integer"),
    ],
)
def test_ert_bad_index(tmp_path, row, message):
    path = ert_file(tmp_path, "a b m n rhoa", ["1 2 3 4 10", row])
    with raises(path, 12, message):
        read_ert(path)


@pytest.mark.parametrize(
    ("row", "pair", "electrode"), [("1 2 1 4", "a = m", 1), ("1 2 3 3", "m = n", 3)]
)
def test_ert_same_electrode_twice(tmp_path, row, pair, electrode):
    path = ert_file(tmp_path, "a b m n rhoa", ["1 2 3 4 10", row + " 10"])
    with raises(
        path,
        12,
        f"electrode {electrode} is used twice in one datum ({pair}); a, b, m, n must be "
        "different electrodes",
    ):
        read_ert(path)


def test_ert_no_resistivity_column(tmp_path):
    path = ert_file(tmp_path, "a b m n u err", ["1 2 3 4 10 0.1"])
    with raises(
        path,
        10,
        "the data columns (a b m n u err) give no apparent resistivity: add a 'rhoa' column, "
        "or 'r' (ohm), or 'u' (V) and 'i' (A)",
    ):
        read_ert(path)


def test_ert_missing_electrode_column(tmp_path):
    path = ert_file(tmp_path, "a b n rhoa", ["1 2 3 10"])
    with raises(
        path,
        10,
        "the data token line (a b n rhoa) has no 'm' column; ERT data need electrode "
        "columns a b m n",
    ):
        read_ert(path)


@pytest.mark.parametrize("value", ["0", "-0.01"])
def test_ert_err_not_positive_is_read(tmp_path, value):
    # checked only when the error model uses the file's errors (tests/test_readers_errors.py)
    path = ert_file(tmp_path, "a b m n rhoa err/%", ["1 2 3 4 10 3", f"2 3 4 5 10 {value}"])
    np.testing.assert_array_equal(read_ert(path).err, [3.0, float(value)])


def test_ert_err_unknown_unit(tmp_path):
    path = ert_file(tmp_path, "a b m n rhoa err/ohm", ["1 2 3 4 10 3"])
    with raises(
        path,
        10,
        "unsupported unit 'ohm' for 'err': use 'err' (unit given by the config's "
        "error.file_unit) or 'err/%' (percent)",
    ):
        read_ert(path)


def test_ert_zero_k(tmp_path):
    path = ert_file(tmp_path, "a b m n r k", ["1 2 3 4 1 5", "1 2 3 4 1 0"])
    with raises(path, 12, "geometric factor 'k' is 0; needed to compute rhoa from 'r'"):
        read_ert(path)


def test_ert_k_with_some_zeros_next_to_rhoa_is_recomputed(tmp_path):
    d = read_ert(ert_file(tmp_path, "a b m n rhoa k", ["1 4 2 3 10 5", "1 4 2 3 10 0"]))
    np.testing.assert_allclose(d.geometric_factor, [2 * np.pi, 2 * np.pi])
    assert d.geometric_factor_source == "analytic"
    np.testing.assert_allclose(d.apparent_resistivity, [10.0, 10.0])


def test_ert_zero_current(tmp_path):
    path = ert_file(tmp_path, "a b m n u i k", ["1 2 3 4 1 0 5"])
    with raises(path, 11, "current 'i' is 0, so r = u/i is undefined"):
        read_ert(path)


def test_ert_topography_fine_with_k(tmp_path):
    sensors = SENSORS.replace("3 0\n", "3 0.5\n")
    d = read_ert(ert_file(tmp_path, "a b m n r k", ["1 2 3 4 1 7"], sensors=sensors))
    np.testing.assert_allclose(d.electrodes[3], [3.0, 0.5])
    np.testing.assert_allclose(d.apparent_resistivity, [7.0])
    assert d.geometric_factor_source == "file"


@pytest.mark.parametrize("sensors", [SENSORS, SENSORS.replace("3 0\n", "3 1.5\n")])
def test_duplicated_sensors(tmp_path, sensors):
    sensors = sensors.replace("2 0\n", "0 0\n")
    path = ert_file(tmp_path, "a b m n rhoa", ["1 2 3 4 1"], sensors=sensors)
    with raises(
        path,
        5,
        "sensor 3 repeats the position of sensor 1 (line 3): x = 0 m, elevation 0 m; "
        "list each sensor once",
    ):
        read_ert(path)


def test_ert_geometric_null(tmp_path):
    # A at x=0, B at x=4, M at the midpoint x=2, N remote: 1/AM - 1/BM = 0
    path = ert_file(tmp_path, "a b m n r", ["1 5 3 0 1", "2 6 3 4 1"])  # 6: not 0-based
    with raises(
        path,
        11,
        "the electrode geometry gives no voltage on a flat half-space (infinite k); "
        "remove this datum or add a 'k' column",
    ):
        read_ert(path)


def test_every_row_invalid(tmp_path):
    path = ert_file(tmp_path, "a b m n rhoa valid", ["1 2 3 4 10 0"])
    with raises(path, 10, "every data row is marked invalid (valid = 0)"):
        read_ert(path)


# --------------------------------------------------------------------------- bad traveltime


SGT_HEAD = "3\n# x y\n0 0\n1 0\n2 0\n"  # lines 1-5; count line 6, token line 7, rows from 8


def sgt_file(tmp_path: Path, tokens: str, rows: list[str]) -> Path:
    text = SGT_HEAD + f"{len(rows)}\n# {tokens}\n" + "".join(r + "\n" for r in rows)
    return write(tmp_path, text, "t.sgt")


def test_sgt_missing_t(tmp_path):
    path = sgt_file(tmp_path, "s g err", ["1 2 0.001"])
    with raises(
        path,
        7,
        "the data token line (s g err) has no 't' column; traveltime data need columns s g t "
        "(shot, geophone, time in s)",
    ):
        read_traveltime(path)


@pytest.mark.parametrize("t", ["0", "-0.002"])
def test_sgt_traveltime_not_positive(tmp_path, t):
    path = sgt_file(tmp_path, "s g t", ["1 2 0.001", f"1 3 {t}"])
    with raises(
        path,
        9,
        f"traveltime 't' is {float(t):g}; traveltimes must be positive (fix or remove this pick)",
    ):
        read_traveltime(path)


def test_sgt_shot_equals_geophone(tmp_path):
    path = sgt_file(tmp_path, "s g t", ["1 2 0.001", "3 3 0.001"])
    with raises(
        path,
        9,
        "shot and geophone are the same sensor (s = g = 3); a pick needs a geophone away "
        "from the shot",
    ):
        read_traveltime(path)


def test_sgt_index_out_of_range(tmp_path):
    path = sgt_file(tmp_path, "s g t", ["1 2 0.001", "0 3 0.001"])
    with raises(
        path,
        9,
        "sensor index 0 in column 's': the indices look 0-based (pyGIMLi unified format is "
        "1-based); add 1 to every sensor index",
    ):
        read_traveltime(path)


def test_sgt_bad_time_unit(tmp_path):
    path = sgt_file(tmp_path, "s g t/us", ["1 2 1"])
    with raises(
        path,
        7,
        "unsupported unit 'us' for 't': use seconds ('t' or 't/s') or milliseconds ('t/ms')",
    ):
        read_traveltime(path)


def test_sgt_no_token_line(tmp_path):
    path = write(tmp_path, SGT_HEAD + "1\n1 2 0.001\n", "t.sgt")
    with raises(
        path,
        7,
        "no token line naming the data columns; add a comment line such as '# s g t err' "
        "after the data count",
    ):
        read_traveltime(path)


# --------------------------------------------------------------------------- bad gravity CSV


@pytest.mark.parametrize(
    ("text", "line", "message"),
    [
        ("# c\n\n", None, "file has no header line; expected x,z,gz[,err]"),
        ("x,z,gz\n# only comments\n", 1, "no data rows after the header"),
        (
            "x,gz\n0,1\n",
            1,
            "the header lacks column(s) z; expected x, z, gz (or x, y, z, gz) and optionally "
            "err, loop",
        ),
        (
            "x,z,gz,error\n0,0,1,1\n",
            1,
            "unknown column 'error' in the header; expected x, z, gz (or x, y, z, gz) and "
            "optionally err, loop",
        ),
        ("x,z,gz,X\n", 1, "column 'x' appears twice in the header"),
        ("x,z,gz\n0,0,1\n1,0\n", 3, "row has 2 values but the header (line 1) names 3 columns"),
        ("x,z,gz\n0,0,1\n1,0,abc\n", 3, "data column 'gz': 'abc' is not a number"),
        ("x,z,gz\n0,0,1\n1,,1\n", 3, "column 'z' is empty"),
        ("x,z,gz,loop\n0,0,1,A\n1,0,1,\n", 3, "column 'loop' is empty"),
        ("x,z,gz\n0,0,NaN\n", 2, "data column 'gz': value is NaN; a finite number is needed"),
    ],
)
def test_gravity_bad(tmp_path, text, line, message):
    path = write(tmp_path, text, "g.csv")
    with raises(path, line, message):
        read_gravity_csv(path)


# --------------------------------------------------------------------------- real data


def test_real_koenigsee_sgt():
    # PROVENANCE.md: 63 positions (x -4.5..51.5, elevation -0.4..1.55), 15 shots,
    # 48 geophones, 714 picks, t 0.35..28.9 ms, no error column
    d = read_traveltime(real("koenigsee_srt/koenigsee.sgt"))
    assert d.sensors.shape == (63, 2)
    assert d.n_data == 714
    assert len(np.unique(d.shot)) == 15
    assert len(np.unique(d.geophone)) == 48
    np.testing.assert_allclose([d.sensors[:, 0].min(), d.sensors[:, 0].max()], [-4.5, 51.5])
    np.testing.assert_allclose([d.sensors[:, 1].min(), d.sensors[:, 1].max()], [-0.4, 1.55])
    np.testing.assert_allclose([d.traveltime_s.min(), d.traveltime_s.max()], [0.00035, 0.0289])
    assert d.error_s is None


def test_real_mulda_sgt():
    # PROVENANCE.md: 68 positions (x -4.5..50.44, elevation 532.0..542.2, 'y' column),
    # 20 shots, 48 receivers, 941 picks, t 1.1..35.7 ms, no error column; CRLF line ends
    d = read_traveltime(real("mulda_ert_srt/jmulda-a0.sgt"))
    assert d.sensors.shape == (68, 2)
    assert d.n_data == 941
    assert len(np.unique(d.shot)) == 20
    assert len(np.unique(d.geophone)) == 48
    np.testing.assert_allclose([d.sensors[:, 0].min(), d.sensors[:, 0].max()], [-4.5, 50.44])
    np.testing.assert_allclose([d.sensors[:, 1].min(), d.sensors[:, 1].max()], [532.01, 542.21])
    np.testing.assert_allclose([d.traveltime_s.min(), d.traveltime_s.max()], [0.001112, 0.035723])
    assert d.error_s is None


def test_real_mulda_ert():
    # PROVENANCE.md: 50 electrodes, 'x y z' with z = elevation 532.61..541.49, 784 data,
    # rhoa 235..1494, err ~2 %
    d = read_ert(real("mulda_ert_srt/ert_timelapse/MuldaA-2008-05-09.data"))
    assert d.electrodes.shape == (50, 2)
    assert d.n_data == 784
    np.testing.assert_allclose(
        [d.electrodes[:, 1].min(), d.electrodes[:, 1].max()], [532.61, 541.493]
    )
    np.testing.assert_allclose(
        [d.apparent_resistivity.min(), d.apparent_resistivity.max()], [235, 1494], rtol=1e-3
    )
    assert d.err is not None
    np.testing.assert_allclose(d.err, 0.02, rtol=0.05)
    assert d.geometric_factor_source == "file"
    np.testing.assert_allclose(
        [d.geometric_factor.min(), d.geometric_factor.max()], [6.037, 283.3], rtol=1e-3
    )


def test_real_luneplate_ert():
    # PROVENANCE.md: 61 electrodes, flat, 811 data 'a b m n rhoa k u i', rhoa 2.952..20.65
    d = read_ert(real("luneplate_ert/luneplateP3start.dat"))
    assert d.electrodes.shape == (61, 2)
    assert d.n_data == 811
    np.testing.assert_allclose(
        [d.apparent_resistivity.min(), d.apparent_resistivity.max()], [2.952, 20.65], rtol=1e-3
    )
    assert d.err is None
    # its k column is all zeros: analytic k for the flat electrodes, rhoa kept from the file
    assert d.geometric_factor_source == "analytic"
    np.testing.assert_array_equal(d.electrodes[:, 1], 0.0)


def test_real_century_ert_analytic_k_matches_file_k(tmp_path):
    # PROVENANCE.md: 33 electrodes, 151 data, columns 'a b m n r err k rhoa', k = 2π/G
    src = real("century_dcip/46800POT_pygimli.ohm")
    d = read_ert(src)
    assert d.electrodes.shape == (33, 2)
    assert d.n_data == 151
    # drop k and rhoa: the analytic flat-surface k must reproduce the file's rhoa
    lines = []
    for line in src.read_text().splitlines():
        fields = line.split()
        if line.startswith("# a b m n"):
            line = "# a b m n r"
        elif len(fields) == 8:
            line = " ".join(fields[:5])
        lines.append(line)
    d_r = read_ert(write(tmp_path, "\n".join(lines) + "\n"))
    np.testing.assert_allclose(d_r.apparent_resistivity, d.apparent_resistivity, rtol=1e-4)


def test_real_myanmar_zero_errors_are_read():
    # PROVENANCE.md: 60 electrodes, 1433 data, err = dev/100 "contains zeros" (the first on
    # line 178): reading works; from_file fails later (tests/test_readers_errors.py)
    d = read_ert(real("myanmar_gwb_ert/Aung_San_DD_pygimli.ohm"))
    assert d.electrodes.shape == (60, 2)
    assert d.n_data == 1433
    assert d.err is not None
    assert d.err.min() == 0
    assert d.line_numbers[int(np.argmax(d.err == 0))] == 178
