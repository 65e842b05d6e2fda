"""Readers for survey data files: pure Python/numpy, no engine imports.

Every problem in a file raises :class:`~jointinv.errors.DataError` with the
file path, the 1-based line number (when there is one) and a one-line message
that says what to fix.

pyGIMLi unified data format (ERT ``.ohm``/``.dat``/``.data``, traveltime ``.sgt``)
---------------------------------------------------------------------------------
::

    <n_sensors>            # text after '#' is a comment
    # x z                  <- optional sensor token line
    <sensor rows>
    <n_data>
    # a b m n rhoa err     <- data token line (required)
    <data rows>
    [<n_topo> and topography rows: ignored]

Rules used here:

* Blank lines are skipped; a line starting with ``#`` is a comment; ``#`` in the
  middle of a line starts a comment.
* Token lines: the *last* comment line between a count line and the first row
  of its block (for the data block: the last such comment with as many tokens
  as the first data row has values, if there is one). Tokens are
  case-insensitive (``R`` is ``r``); a ``/unit`` suffix is split off
  (``rhoa/Ohmm`` → ``rhoa``). Units are interpreted only for ``err`` and ``t``:
  ERT ``err`` is a fraction, ``err/%`` percent (divided by 100); traveltime
  ``t`` and ``err`` are seconds (no unit or ``/s``) or ``/ms`` (converted to
  seconds). Other units of these columns are errors; units of other columns
  are ignored.
* Sensor columns: a sensor token line counts only if all its tokens are ``x``,
  ``y`` or ``z`` (otherwise it is an ordinary comment). Without one, 2 columns
  are ``x z`` and 3 columns are ``x y z``. The elevation is ``z`` for ``x z``,
  ``y`` for ``x y`` (pyGIMLi 2D convention), and for ``x y z`` it is ``z`` when
  all ``y`` are zero, else ``y`` when all ``z`` are zero; both nonzero is an
  error (a 3D layout). ``x`` alone gives elevation 0. Elevations are returned
  as written (absolute elevations are kept). Two sensors at the same position
  are an error.
* Count lines are checked against the rows that follow; no more rows are allocated
  than the file has lines, whatever a count line declares.
* Sensor indices are 1-based in the file and 0-based in the containers. For ERT,
  ``0`` or ``-1`` in ``b`` or ``n`` is a remote electrode (stored as -1); a file
  without a ``b`` (or ``n``) column is a pole array (all -1). A file that looks
  0-based is refused: a 0 in ``a``, ``m``, ``s`` or ``g``, or a 0 in ``b``/``n``
  while the last sensor is never used or -1 also appears.
* A ``valid`` column, if present, drops the rows where it is 0 (no other checks
  are made on those rows).
* ERT geometric factor ``k`` (m): the file's ``k`` column if it has one
  without zeros (a column of zeros, as written by some tools next to
  ``rhoa``, counts as absent); else, if all electrodes share one elevation,
  the flat half-space k = 2π / (1/AM − 1/BM − 1/AN + 1/BN) (remote terms
  dropped); else (topography) k computed numerically with pyGIMLi
  (:mod:`jointinv.engines.geometric`).
* ERT apparent resistivity (Ω·m): ``rhoa`` if present; else ``k * r``; else
  ``k * u / i`` (r = u/i, Ω). Redundant columns must agree within 2 %
  (:data:`AGREEMENT_TOLERANCE`): ``r`` and ``u/i``; ``rhoa`` and ``k·r`` (or
  ``k·u/i``) with the file's ``k``, or without one the analytic ``k`` of flat
  electrodes (data with a remote electrode are not compared; over topography
  nothing is compared).
* Errors in ``err`` columns are read as they are; zero or negative values are
  rejected (with their line) only when the error model uses the file's errors.
* A datum that uses one sensor twice (ERT a, b, m, n; traveltime s = g) is an
  error; so is a traveltime that is not positive. Zero-offset picks (s = g and
  t = 0, the shot's own trace) are dropped and counted (``n_zero_offset``).

Gravity files
-------------
* CSV with a header: ``x,z,gz[,err]`` (x along the profile) or
  ``x,y,z,gz[,err]`` (map coordinates, projected onto a profile line).
* UBC-GIF GRAV3D observations (``.obs``, ``.grv``): the number of data on the
  first line, then ``E N Elev gz [std]`` rows (m, m, m, mGal, mGal); lines
  starting with ``!`` are comments. Map coordinates, so a profile is needed.

``gz`` (mGal) is positive for excess mass in jointinv, which is also the UBC
convention (gz positive down), so UBC values are used as they are. (SimPEG's
``read_grav3d_ubc`` flips the sign to its z-up convention: jointinv gz =
−SimPEG ``dobs``.) Elevations ``z`` are in m, up.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .data import ErtData, GravityData, ProfileLine, TraveltimeData
from .errors import DataError

__all__ = [
    "GravityProfileError",
    "project_to_profile",
    "read_ert",
    "read_gravity",
    "read_gravity_csv",
    "read_gravity_ubc",
    "read_traveltime",
]

log = logging.getLogger(__name__)

# Coordinates whose magnitude is below this (m) count as zero / equal.
_COORD_TOL = 1e-6


# --------------------------------------------------------------------------- file access


def _read_text(path: str | Path) -> tuple[str, list[str]]:
    """Return ``(source, lines)``; raise DataError if the file cannot be used."""
    source = str(path)
    p = Path(path)
    if not p.exists():
        raise DataError(source, None, "file not found; check the path")
    if p.is_dir():
        raise DataError(source, None, "is a directory, not a data file")
    try:
        raw = p.read_bytes()
    except OSError as exc:
        raise DataError(source, None, f"cannot read file: {exc.strerror or exc}") from exc
    if b"\x00" in raw:
        raise DataError(source, None, "looks like a binary file; expected a text data file")
    try:
        text = raw.decode("utf-8-sig")  # a BOM (spreadsheet exports) is dropped
    except UnicodeDecodeError:
        text = raw.decode("latin-1")
    if not text.strip():
        raise DataError(source, None, "file is empty")
    return source, text.splitlines()


def _fmt(value: float) -> str:
    """Short text for a number in a message."""
    return f"{value:g}"


# --------------------------------------------------------------------------- unified format


@dataclass
class _Token:
    name: str  # lower case, unit removed
    unit: str | None
    text: str  # as written


@dataclass
class _Unified:
    """Raw content of a unified-format file."""

    source: str
    n_sensors: int
    sensors: np.ndarray  # (n_sensors, 2) x, elevation
    data_count_line: int
    token_line: int
    tokens: list[_Token]
    values: np.ndarray  # (n_data, n_tokens), rows with valid == 0 removed
    row_lines: np.ndarray  # (n_data,) 1-based line numbers

    def col(self, name: str) -> int | None:
        for j, tok in enumerate(self.tokens):
            if tok.name == name:
                return j
        return None

    def token_list(self) -> str:
        return " ".join(t.text for t in self.tokens)

    def reject_first(self, bad: np.ndarray, message: Callable[[int], str]) -> None:
        """Raise a DataError at the line of the first datum where ``bad`` holds;
        ``message(i)`` says what is wrong with datum ``i``."""
        if bad.any():
            i = int(np.argmax(bad))
            raise DataError(self.source, int(self.row_lines[i]), message(i))


class _Lines:
    """Iterator over the non-blank lines of a file, with comments split off."""

    def __init__(self, lines: list[str]) -> None:
        self._lines = lines
        self._i = 0

    def next(self) -> tuple[int, str, bool] | None:
        """Return ``(lineno, content, is_comment)`` of the next non-blank line."""
        while self._i < len(self._lines):
            text = self._lines[self._i].strip()
            self._i += 1
            if not text:
                continue
            if text.startswith("#"):
                return self._i, text[1:].strip(), True
            body = text.split("#", 1)[0].strip()
            if not body:
                continue
            return self._i, body, False
        return None

    def capacity(self, count: int) -> int:
        """Rows to allocate for a block of ``count`` rows whose first row was read:
        no more than the file has lines, whatever its count line declares."""
        return min(count, 1 + len(self._lines) - self._i)

    def next_row(self) -> tuple[tuple[int, list[str]] | None, list[tuple[int, str]]]:
        """Next non-comment line split into fields, and the comments before it."""
        comments: list[tuple[int, str]] = []
        while True:
            item = self.next()
            if item is None:
                return None, comments
            lineno, content, is_comment = item
            if is_comment:
                comments.append((lineno, content))
            else:
                return (lineno, content.split()), comments


def _parse_count(source: str, row: tuple[int, list[str]], what: str) -> int:
    lineno, fields = row
    text = " ".join(fields)
    try:
        count = int(fields[0]) if len(fields) == 1 else None
    except ValueError:
        count = None
    if count is None:
        raise DataError(
            source, lineno, f"expected the number of {what} (one integer) but found '{text}'"
        )
    if count <= 0:
        raise DataError(source, lineno, f"the number of {what} must be positive, not {count}")
    return count


def _is_count_line(fields: list[str]) -> bool:
    if len(fields) != 1:
        return False
    try:
        int(fields[0])
    except ValueError:
        return False
    return True


def _parse_tokens(content: str) -> list[_Token]:
    tokens = []
    for text in content.split():
        name, sep, unit = text.partition("/")
        tokens.append(_Token(name.lower(), unit if sep else None, text))
    return tokens


def _parse_number(source: str, lineno: int, text: str, column: str, what: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise DataError(
            source, lineno, f"{what} column '{column}': '{text}' is not a number"
        ) from None
    if not math.isfinite(value):
        raise DataError(
            source, lineno, f"{what} column '{column}': value is {text}; a finite number is needed"
        )
    return value


def _read_sensors(source: str, rows: _Lines) -> tuple[int, np.ndarray]:
    first, _ = rows.next_row()
    if first is None:
        raise DataError(source, None, "file has no sensor count line (only comments)")
    count_line = first[0]
    n_sensors = _parse_count(source, first, "sensors")

    row, comments = rows.next_row()
    names: list[str] | None = None
    if comments:
        cand = _parse_tokens(comments[-1][1])
        if cand and all(t.name in ("x", "y", "z") for t in cand):
            names = [t.name for t in cand]
            if len(set(names)) != len(names):
                raise DataError(
                    source,
                    comments[-1][0],
                    f"sensor token line '{comments[-1][1]}' repeats a column",
                )
            if "x" not in names:
                raise DataError(
                    source,
                    comments[-1][0],
                    f"sensor token line '{comments[-1][1]}' has no 'x' column",
                )
    capacity = rows.capacity(n_sensors)  # a count of 10**12 allocates no more than the file
    coords = np.zeros((capacity, len(names) if names else 3))
    lines = np.zeros(capacity, dtype=int)
    for k in range(n_sensors):
        if row is None:
            raise DataError(
                source,
                None,
                f"file ends after {k} of the {n_sensors} sensor rows declared on line {count_line}",
            )
        lineno, fields = row
        if names is None:
            if len(fields) not in (2, 3):
                if k > 0 and _is_count_line(fields):
                    raise DataError(
                        source,
                        lineno,
                        f"found only {k} sensor rows but line {count_line} declares "
                        f"{n_sensors}; fix the sensor count",
                    )
                raise DataError(
                    source,
                    lineno,
                    f"sensor row has {len(fields)} values; expected 2 (x z) or 3 (x y z)",
                )
            names = ["x", "z"] if len(fields) == 2 else ["x", "y", "z"]
            coords = np.zeros((capacity, len(names)))
        if len(fields) != len(names):
            if k > 0 and _is_count_line(fields):
                raise DataError(
                    source,
                    lineno,
                    f"found only {k} sensor rows but line {count_line} declares {n_sensors}; "
                    f"fix the sensor count",
                )
            raise DataError(
                source,
                lineno,
                f"sensor row has {len(fields)} values; expected {len(names)} ({' '.join(names)})",
            )
        for j, (name, text) in enumerate(zip(names, fields, strict=True)):
            coords[k, j] = _parse_number(source, lineno, text, name, "sensor")
        lines[k] = lineno
        if k < n_sensors - 1:
            row, _ = rows.next_row()

    assert names is not None
    x = coords[:, names.index("x")]
    col = {n: coords[:, names.index(n)] for n in names}
    if "y" in col and "z" in col:
        y_nonzero = np.abs(col["y"]) > _COORD_TOL
        z_nonzero = np.abs(col["z"]) > _COORD_TOL
        if y_nonzero.any() and z_nonzero.any():
            iy = int(np.argmax(y_nonzero))
            iz = int(np.argmax(z_nonzero))
            raise DataError(
                source,
                int(lines[iy]),
                f"sensors have nonzero y (first on line {lines[iy]}) and nonzero z (first on "
                f"line {lines[iz]}): a 2D profile needs x along it and the elevation in y "
                f"(x y files) or in z (x y z files with y all 0)",
            )
        elev = col["y"] if y_nonzero.any() else col["z"]
    elif "z" in col:
        elev = col["z"]
    elif "y" in col:
        elev = col["y"]
    else:
        elev = np.zeros(n_sensors)
    xz = np.column_stack([x, elev]).astype(float)
    _check_duplicate_sensors(source, xz, lines)
    return n_sensors, xz


def _check_duplicate_sensors(source: str, xz: np.ndarray, lines: np.ndarray) -> None:
    """Two sensor rows at the same (x, elevation) are an error, at the later row."""
    key = np.round(xz / _COORD_TOL).astype(np.int64)
    _, first, inverse = np.unique(key, axis=0, return_index=True, return_inverse=True)
    inverse = inverse.reshape(-1)
    dup = first[inverse] != np.arange(len(xz))
    if dup.any():
        k = int(np.argmax(dup))
        j = int(first[inverse[k]])
        raise DataError(
            source,
            int(lines[k]),
            f"sensor {k + 1} repeats the position of sensor {j + 1} (line {lines[j]}): "
            f"x = {_fmt(xz[k, 0])} m, elevation {_fmt(xz[k, 1])} m; list each sensor once",
        )


def _read_unified(path: str | Path, kind: str) -> _Unified:
    """Parse a unified-format file (``kind`` is 'ERT' or 'traveltime', for messages)."""
    source, text_lines = _read_text(path)
    rows = _Lines(text_lines)
    n_sensors, sensors = _read_sensors(source, rows)

    row, _ = rows.next_row()
    if row is None:
        raise DataError(
            source, None, f"file ends after the {n_sensors} sensor rows; the data block is missing"
        )
    if not _is_count_line(row[1]):
        raise DataError(
            source,
            row[0],
            f"expected the number of data (one integer) after the {n_sensors} sensor rows, "
            f"but found '{' '.join(row[1])}'; does the sensor count match the sensor rows?",
        )
    data_count_line = row[0]
    n_data = _parse_count(source, row, "data")

    row, comments = rows.next_row()
    if not comments:
        where = row[0] if row is not None else data_count_line
        raise DataError(
            source,
            where,
            "no token line naming the data columns; add a comment line such as "
            + ("'# a b m n rhoa err'" if kind == "ERT" else "'# s g t err'")
            + " after the data count",
        )
    # the token line: the last comment before the first row with as many tokens as the row
    # has values (so a free-text comment after it does not hide it), else the last comment
    token_line, token_text = comments[-1]
    if row is not None:
        for lineno, content in reversed(comments):
            if len(content.split()) == len(row[1]):
                token_line, token_text = lineno, content
                break
    tokens = _parse_tokens(token_text)
    if not tokens:
        raise DataError(source, token_line, "the data token line is empty")
    seen: set[str] = set()
    for tok in tokens:
        if tok.name in seen:
            raise DataError(source, token_line, f"data token line names column '{tok.name}' twice")
        seen.add(tok.name)
    ncol = len(tokens)
    names = [t.name for t in tokens]

    capacity = rows.capacity(n_data)  # a count of 10**12 allocates no more than the file
    values = np.empty((capacity, ncol))
    row_lines = np.zeros(capacity, dtype=int)
    for k in range(n_data):
        if row is None:
            raise DataError(
                source,
                None,
                f"file ends after {k} of the {n_data} data rows declared on line {data_count_line}",
            )
        lineno, fields = row
        if len(fields) != ncol:
            if k > 0 and _is_count_line(fields):
                raise DataError(
                    source,
                    lineno,
                    f"found only {k} data rows but line {data_count_line} declares {n_data}; "
                    f"fix the data count",
                )
            raise DataError(
                source,
                lineno,
                f"data row has {len(fields)} values but the token line (line {token_line}) "
                f"names {ncol} columns ({' '.join(t.text for t in tokens)})",
            )
        for j, text in enumerate(fields):
            try:
                values[k, j] = float(text)
            except ValueError:
                raise DataError(
                    source, lineno, f"data column '{names[j]}': '{text}' is not a number"
                ) from None
        row_lines[k] = lineno
        if k < n_data - 1:
            row, _ = rows.next_row()

    # what follows the data: nothing, or a topography count (and rows, ignored)
    row, _ = rows.next_row()
    if row is not None and not _is_count_line(row[1]):
        lineno, fields = row
        if len(fields) == ncol:
            raise DataError(
                source,
                lineno,
                f"more data rows than the {n_data} declared on line {data_count_line}; "
                f"fix the data count",
            )
        raise DataError(
            source,
            lineno,
            f"unexpected line after the {n_data} data rows: expected the number of "
            f"topography points (one integer) or the end of the file",
        )

    if "valid" in names:
        keep = values[:, names.index("valid")] != 0
        if not keep.any():
            raise DataError(source, token_line, "every data row is marked invalid (valid = 0)")
        values = values[keep]
        row_lines = row_lines[keep]

    bad = ~np.isfinite(values)
    if bad.any():
        i, j = np.argwhere(bad)[0]
        raise DataError(
            source,
            int(row_lines[i]),
            f"data column '{names[j]}' is {_fmt(values[i, j])}; a finite number is needed",
        )

    return _Unified(
        source=source,
        n_sensors=n_sensors,
        sensors=sensors,
        data_count_line=data_count_line,
        token_line=token_line,
        tokens=tokens,
        values=values,
        row_lines=row_lines,
    )


ZERO_BASED = (
    "the indices look 0-based (pyGIMLi unified format is 1-based); add 1 to every sensor index"
)


def _indices(u: _Unified, name: str, remote_ok: bool) -> np.ndarray:
    """0-based sensor indices of column ``name``; remote (0 or -1) → -1 if allowed."""
    j = u.col(name)
    assert j is not None
    raw = u.values[:, j]
    u.reject_first(
        raw != np.round(raw),
        lambda i: f"sensor index {_fmt(raw[i])} in column '{name}' is not an integer",
    )
    idx = raw.astype(np.int64)
    remote = (idx == 0) | (idx == -1) if remote_ok else np.zeros(len(idx), dtype=bool)
    u.reject_first(
        ~remote & (idx == 0),
        lambda i: f"sensor index 0 in column '{name}': {ZERO_BASED}",
    )
    extra = " (or 0 for a remote electrode)" if remote_ok else ""
    u.reject_first(
        ~remote & ((idx < 1) | (idx > u.n_sensors)),
        lambda i: (
            f"sensor index {idx[i]} in column '{name}' is out of range: the file has "
            f"{u.n_sensors} sensors, so indices must be 1..{u.n_sensors}{extra}"
        ),
    )
    return np.where(remote, -1, idx - 1)


def _check_positive(u: _Unified, name: str, values: np.ndarray) -> None:
    """Traveltimes must be positive."""
    u.reject_first(
        values <= 0,
        lambda i: (
            f"traveltime '{name}' is {_fmt(values[i])}; traveltimes must be positive "
            f"(fix or remove this pick)"
        ),
    )


# --------------------------------------------------------------------------- ERT


def _flat_geometric_factor(u: _Unified, abmn: np.ndarray) -> np.ndarray:
    """k = 2π / (1/AM − 1/BM − 1/AN + 1/BN) on a flat surface (remote terms dropped)."""
    x = u.sensors[:, 0]
    g = np.zeros(len(abmn))
    scale = np.zeros(len(abmn))
    pairs = ((0, 2, 1.0), (1, 2, -1.0), (0, 3, -1.0), (1, 3, 1.0))  # AM, BM, AN, BN
    letters = "abmn"
    for p, q, sign in pairs:
        ip, iq = abmn[:, p], abmn[:, q]
        used = (ip >= 0) & (iq >= 0)
        dist = np.abs(x[np.where(used, ip, 0)] - x[np.where(used, iq, 0)])
        same = used & (dist <= _COORD_TOL)
        if same.any():
            i = int(np.argmax(same))
            raise DataError(
                u.source,
                int(u.row_lines[i]),
                f"electrodes {letters[p]} = {ip[i] + 1} and {letters[q]} = {iq[i] + 1} are at "
                f"the same position (x = {_fmt(x[ip[i]])} m), so k cannot be computed",
            )
        inv = np.where(used, 1.0 / np.where(used, dist, 1.0), 0.0)
        g += sign * inv
        scale = np.maximum(scale, inv)
    u.reject_first(
        np.abs(g) <= 1e-12 * scale,
        lambda i: (
            "the electrode geometry gives no voltage on a flat half-space (infinite k); "
            "remove this datum or add a 'k' column"
        ),
    )
    return 2.0 * np.pi / g


def _computed_geometric_factor(u: _Unified, abmn: np.ndarray) -> tuple[np.ndarray, str]:
    """Analytic k for flat electrodes, numerical (pyGIMLi) k over topography."""
    elev = u.sensors[:, 1]
    if np.ptp(elev) <= _COORD_TOL:
        return _flat_geometric_factor(u, abmn), "analytic"
    from .engines.geometric import numerical_geometric_factors

    log.info(
        "%s: no geometric factors in the file and the electrodes have topography "
        "(elevation %s .. %s m): computing them numerically with pyGIMLi",
        Path(u.source).name,
        _fmt(elev.min()),
        _fmt(elev.max()),
    )
    return numerical_geometric_factors(u.sensors, abmn), "numerical"


def _check_zero_based_remotes(u: _Unified, abmn: np.ndarray) -> None:
    """A 0 in ``b`` or ``n`` is a remote electrode in the 1-based unified format. It is
    a 0-based file's first electrode instead when the file never uses its last
    electrode, or when it also writes -1 (its remote electrode)."""
    zero = {n: u.values[:, u.col(n)] == 0 for n in "bn" if u.col(n) is not None}
    if not any(z.any() for z in zero.values()):
        return
    minus_one = any((u.values[:, u.col(n)] == -1).any() for n in zero)
    last_unused = not (abmn == u.n_sensors - 1).any()
    if not (last_unused or minus_one):
        return
    why = (
        f"electrode {u.n_sensors} (the last) is never used"
        if last_unused
        else "the file also writes -1 for a remote electrode"
    )

    def message(i: int) -> str:
        name = next(n for n, z in zero.items() if z[i])
        return (
            f"'{name}' = 0 would be a remote electrode, but {why}: {ZERO_BASED} "
            f"(a remote electrode is then 0)"
        )

    u.reject_first(np.logical_or.reduce(list(zero.values())), message)


#: Largest relative disagreement between redundant columns of an ERT file (rhoa and
#: k·r, rhoa and k·u/i, r and u/i): 2 %, above the rounding of values written with
#: three significant digits (up to 0.5 % each), far below a wrong unit or electrode.
AGREEMENT_TOLERANCE = 0.02


def _check_agreement(
    u: _Unified, name: str, given: np.ndarray, label: str, other: np.ndarray, hint: str
) -> None:
    """Refuse, at its line, the first datum where ``given`` and ``other`` (nan: not
    compared) differ by more than :data:`AGREEMENT_TOLERANCE`."""
    with np.errstate(invalid="ignore"):
        bad = np.abs(given - other) > AGREEMENT_TOLERANCE * np.maximum(np.abs(given), np.abs(other))
    u.reject_first(
        bad,
        lambda i: (
            f"'{name}' = {_fmt(given[i])} but {label} = {_fmt(other[i])}: they differ by more "
            f"than {AGREEMENT_TOLERANCE:.0%}; {hint}"
        ),
    )


def _check_redundant(u: _Unified, abmn: np.ndarray, k: np.ndarray, k_source: str) -> None:
    """Columns that say the same thing must agree: r and u/i; rhoa and k·r (or k·u/i),
    with k from the file, or from the electrode positions when they are flat (the
    analytic half-space k, as pyGIMLi's ``createGeometricFactors``; data with a
    remote electrode are not compared then)."""
    col = {n: u.values[:, u.col(n)] for n in ("rhoa", "r", "u", "i", "k") if u.col(n) is not None}
    units = "check the units of the columns (rhoa in ohm*m, r in ohm, u in V, i in A, k in m)"
    ratio = None
    if "u" in col and "i" in col:
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = np.where(col["i"] != 0, col["u"] / col["i"], np.nan)
        if "r" in col:
            _check_agreement(u, "r", col["r"], "u/i", ratio, units)
    resistance, label = (col["r"], "r") if "r" in col else (ratio, "u/i")
    if "rhoa" not in col or resistance is None or k_source == "numerical":
        return
    if k_source == "file":
        hint = units
    else:
        k = np.where((abmn >= 0).all(axis=1), k, np.nan)
        hint = (
            "k is computed from the electrode positions (no k column): are the electrode "
            "indices and positions right? Else " + units
        )
    _check_agreement(u, "rhoa", col["rhoa"], f"k·{label}", k * resistance, hint)


def read_ert(path: str | Path) -> ErtData:
    """Read ERT data in the pyGIMLi unified format (``.ohm``, ``.dat``, ``.data``).

    Parameters
    ----------
    path : str or Path
        The data file. Data columns ``a b m n`` (1-based; 0 or -1 in ``b``/``n``
        is a remote electrode) and ``rhoa`` (Ω·m), or ``r`` (Ω), or ``u`` (V)
        and ``i`` (A); optionally ``k`` (m), ``err`` and ``valid``.

    Returns
    -------
    ErtData
        Electrodes (x, elevation as in the file, m), 0-based ``abmn``
        (-1 = remote), apparent resistivity (Ω·m; negative values are kept),
        the geometric factor k (m) with its source (``"file"``, ``"analytic"``
        for flat electrodes, ``"numerical"`` with topography, computed with
        pyGIMLi), and the ``err`` column as written (``err_unit`` is
        ``"percent"`` for an ``err/%`` token, else None), or None.

    Raises
    ------
    DataError
        For any problem in the file, naming the file and line.
    """
    u = _read_unified(path, "ERT")
    tl = u.token_line
    for name in ("a", "m"):
        if u.col(name) is None:
            raise DataError(
                u.source,
                tl,
                f"the data token line ({u.token_list()}) has no '{name}' column; "
                f"ERT data need electrode columns a b m n",
            )
    n = len(u.row_lines)
    abmn = np.full((n, 4), -1, dtype=np.int64)
    for j, name in enumerate("abmn"):
        if u.col(name) is not None:
            abmn[:, j] = _indices(u, name, remote_ok=name in ("b", "n"))

    _check_zero_based_remotes(u, abmn)

    # the same electrode twice in one datum
    for p in range(4):
        for q in range(p + 1, 4):
            dup = (abmn[:, p] >= 0) & (abmn[:, p] == abmn[:, q])
            if dup.any():
                i = int(np.argmax(dup))
                lp, lq = "abmn"[p], "abmn"[q]
                raise DataError(
                    u.source,
                    int(u.row_lines[i]),
                    f"electrode {abmn[i, p] + 1} is used twice in one datum ({lp} = {lq}); "
                    f"a, b, m, n must be different electrodes",
                )

    def column(name: str) -> np.ndarray | None:
        j = u.col(name)
        return None if j is None else u.values[:, j]

    rhoa = column("rhoa")
    r = column("r")
    r_from = "'r'"
    if rhoa is None and r is None:
        cu, ci = column("u"), column("i")
        if cu is None or ci is None:
            raise DataError(
                u.source,
                tl,
                f"the data columns ({u.token_list()}) give no apparent resistivity: add a "
                f"'rhoa' column, or 'r' (ohm), or 'u' (V) and 'i' (A)",
            )
        u.reject_first(ci == 0, lambda i: "current 'i' is 0, so r = u/i is undefined")
        r, r_from = cu / ci, "'u' and 'i'"

    k_file = column("k")
    if k_file is not None and (k_file == 0).all():
        k_file = None  # a column of zeros (e.g. luneplateP3start.dat): no k given
    if k_file is not None and (k_file == 0).any():
        if rhoa is None:
            u.reject_first(
                k_file == 0,
                lambda i: f"geometric factor 'k' is 0; needed to compute rhoa from {r_from}",
            )
        log.warning(
            "%s: the 'k' column has zeros; computing every geometric factor instead",
            Path(u.source).name,
        )
        k_file = None
    if k_file is not None:
        k, k_source = k_file.copy(), "file"
    else:
        k, k_source = _computed_geometric_factor(u, abmn)
    _check_redundant(u, abmn, k, k_source)
    if rhoa is None:
        assert r is not None
        rhoa = r * k

    err, err_unit = None, None
    j = u.col("err")
    if j is not None:
        unit = u.tokens[j].unit
        if unit not in (None, "%"):
            raise DataError(
                u.source,
                tl,
                f"unsupported unit '{unit}' for 'err': use 'err' (unit given by the config's "
                f"error.file_unit) or 'err/%' (percent)",
            )
        err = u.values[:, j].copy()
        err_unit = "percent" if unit == "%" else None

    return ErtData(
        electrodes=u.sensors,
        abmn=abmn,
        apparent_resistivity=np.asarray(rhoa, dtype=float).copy(),
        geometric_factor=np.asarray(k, dtype=float),
        geometric_factor_source=k_source,
        err=err,
        err_unit=err_unit,
        source=u.source,
        line_numbers=u.row_lines.copy(),
    )


# --------------------------------------------------------------------------- traveltime


_TIME_UNITS = {None: 1.0, "s": 1.0, "ms": 1e-3}


def read_traveltime(path: str | Path) -> TraveltimeData:
    """Read first-arrival traveltimes in the pyGIMLi unified format (``.sgt``).

    Parameters
    ----------
    path : str or Path
        The data file, with data columns ``s g t`` and optionally ``err``
        (seconds; ``t/ms`` and ``err/ms`` are converted to seconds).

    Returns
    -------
    TraveltimeData
        Sensor (x, elevation as in the file, m), 0-based shot and geophone
        indices, traveltimes and errors (s; None without an ``err`` column;
        the errors are checked only when the error model uses them).

    Raises
    ------
    DataError
        For any problem in the file, naming the file and line.
    """
    u = _read_unified(path, "traveltime")
    missing = [name for name in ("s", "g", "t") if u.col(name) is None]
    if missing:
        cols = ", ".join(f"'{m}'" for m in missing)
        raise DataError(
            u.source,
            u.token_line,
            f"the data token line ({u.token_list()}) has no {cols} column; traveltime data "
            f"need columns s g t (shot, geophone, time in s)",
        )
    shot = _indices(u, "s", remote_ok=False)
    geophone = _indices(u, "g", remote_ok=False)
    zero_offset = (shot == geophone) & (u.values[:, u.col("t")] == 0)
    if zero_offset.all():
        raise DataError(
            u.source, u.token_line, "every pick is zero-offset (s = g, t = 0); no data left"
        )
    if zero_offset.any():  # the shot's own trace, written by some picking tools
        u.values, u.row_lines = u.values[~zero_offset], u.row_lines[~zero_offset]
        shot, geophone = shot[~zero_offset], geophone[~zero_offset]
    u.reject_first(
        shot == geophone,
        lambda i: (
            f"shot and geophone are the same sensor (s = g = {shot[i] + 1}); a pick "
            f"needs a geophone away from the shot"
        ),
    )

    def seconds(name: str) -> np.ndarray:
        j = u.col(name)
        assert j is not None
        unit = u.tokens[j].unit
        if unit not in _TIME_UNITS:
            raise DataError(
                u.source,
                u.token_line,
                f"unsupported unit '{unit}' for '{name}': use seconds ('{name}' or "
                f"'{name}/s') or milliseconds ('{name}/ms')",
            )
        raw = u.values[:, j]
        if name == "t":
            _check_positive(u, u.tokens[j].text, raw)
        return raw * _TIME_UNITS[unit]

    t = seconds("t")
    err = seconds("err") if u.col("err") is not None else None
    return TraveltimeData(
        sensors=u.sensors,
        shot=shot,
        geophone=geophone,
        traveltime_s=t,
        error_s=err,
        source=u.source,
        line_numbers=u.row_lines.copy(),
        n_zero_offset=int(zero_offset.sum()),
    )


# --------------------------------------------------------------------------- gravity


class GravityProfileError(DataError):
    """Gravity stations and the profile option do not fit together.

    ``needed`` is True when the file gives map coordinates (x, y) and no
    profile line was given, False when a profile was given for a file whose
    ``x`` already runs along the profile. The config layer turns it into a
    :class:`~jointinv.errors.ConfigError` on ``options.profile``.
    """

    def __init__(self, source: str, line: int | None, message: str, *, needed: bool) -> None:
        super().__init__(source, line, message)
        self.needed = needed


def project_to_profile(xy: np.ndarray, profile: ProfileLine) -> tuple[np.ndarray, np.ndarray]:
    """Project map coordinates onto a straight profile line.

    Parameters
    ----------
    xy : ndarray, shape (n, 2)
        Map coordinates (m).
    profile : ProfileLine

    Returns
    -------
    x_profile, offset : ndarray, shape (n,)
        Distance along the line from ``profile.start`` towards ``profile.end``
        (m; negative before the start) and perpendicular distance from the
        line (m, ≥ 0).
    """
    start = np.asarray(profile.start, dtype=float)
    direction = np.asarray(profile.end, dtype=float) - start
    length = float(np.hypot(*direction))
    if length == 0:
        raise ValueError("the profile's start and end are the same point")
    unit = direction / length
    rel = np.asarray(xy, dtype=float) - start
    along = rel @ unit
    offset = np.abs(rel[:, 0] * unit[1] - rel[:, 1] * unit[0])
    return along, offset


def _gravity_data(
    source: str,
    xyz: np.ndarray,
    gz: np.ndarray,
    err: np.ndarray | None,
    row_lines: np.ndarray,
    profile: ProfileLine | None,
    header_line: int | None,
    loop: np.ndarray | None = None,
) -> GravityData:
    """Build GravityData from (x, z) or (x, y, z) stations, projecting 3D ones."""
    name = Path(source).name
    if xyz.shape[1] == 2:
        if profile is not None:
            raise GravityProfileError(
                source,
                header_line,
                "stations are already given along the profile (x, z); remove options.profile",
                needed=False,
            )
        return GravityData(
            stations=xyz.copy(),
            gz_mgal=gz,
            error_mgal=err,
            source=source,
            line_numbers=row_lines,
            loop=loop,
        )
    if profile is None:
        raise GravityProfileError(
            source,
            header_line,
            "stations are given in map coordinates (x, y, z); set options.profile "
            "{start: [x, y], end: [x, y]} (m) to project them onto the profile",
            needed=True,
        )
    along, offset = project_to_profile(xyz[:, :2], profile)
    keep = np.ones(len(gz), dtype=bool)
    if profile.max_offset is not None:
        keep = offset <= profile.max_offset
        if not keep.any():
            raise DataError(
                source,
                None,
                f"all {len(gz)} stations lie farther than max_offset = "
                f"{_fmt(profile.max_offset)} m from the profile line (nearest: "
                f"{_fmt(offset.min())} m); check options.profile",
            )
    log.debug(
        "gravity: %s: projected %d stations onto the profile (offset %s .. %s m, x %s .. %s m)%s",
        name,
        int(keep.sum()),
        _fmt(offset[keep].min()),
        _fmt(offset[keep].max()),
        _fmt(along[keep].min()),
        _fmt(along[keep].max()),
        f"; dropped {int((~keep).sum())} farther than max_offset {_fmt(profile.max_offset)} m"
        if profile.max_offset is not None
        else "",
    )
    return GravityData(
        stations=np.column_stack([along, xyz[:, 2]])[keep],
        gz_mgal=gz[keep],
        error_mgal=None if err is None else err[keep],
        source=source,
        line_numbers=row_lines[keep],
        map_xy=xyz[keep, :2].copy(),
        offset_m=offset[keep],
        n_dropped=int((~keep).sum()),
        loop=None if loop is None else loop[keep],
    )


_GRAVITY_COLUMNS = ("x", "y", "z", "gz", "err", "loop")


def read_gravity_csv(path: str | Path, profile: ProfileLine | None = None) -> GravityData:
    """Read gravity stations from a CSV file.

    The first non-comment line is a header naming the columns ``x, z, gz``
    (x along the profile) or ``x, y, z, gz`` (map coordinates, projected onto
    ``profile``), and optionally ``err`` (case-insensitive, any order); lines
    starting with ``#`` and blank lines are skipped. ``x``, ``y`` and ``z``
    (elevation, up) are in m, ``gz`` (positive for excess mass) and ``err`` in
    mGal. An optional ``loop`` column labels the survey loop (base-station tie)
    of each reading, for the ``loop_offset`` bias of the conflict test.

    Parameters
    ----------
    path : str or Path
    profile : ProfileLine, optional
        Required for ``x, y, z`` files; not allowed for ``x, z`` files.

    Raises
    ------
    DataError
        For any problem in the file, naming the file and line
        (:class:`GravityProfileError` when the profile is missing or not needed).
    """
    source, lines = _read_text(path)
    header: list[str] | None = None
    header_line = 0
    rows: list[list[float]] = []
    row_lines: list[int] = []
    loops: list[str] = []
    for lineno, raw in enumerate(lines, start=1):
        text = raw.strip()
        if not text or text.startswith("#"):
            continue
        cells = [c.strip() for c in text.split(",")]
        if header is None:
            header_line = lineno
            header = [c.strip("\"'").strip().lower() for c in cells]
            unknown = [c for c in header if c not in _GRAVITY_COLUMNS]
            if unknown:
                raise DataError(
                    source,
                    lineno,
                    f"unknown column '{unknown[0]}' in the header; expected x, z, gz (or x, y, "
                    f"z, gz) and optionally err, loop",
                )
            for c in header:
                if header.count(c) > 1:
                    raise DataError(source, lineno, f"column '{c}' appears twice in the header")
            missing = [c for c in ("x", "z", "gz") if c not in header]
            if missing:
                raise DataError(
                    source,
                    lineno,
                    f"the header lacks column(s) {', '.join(missing)}; expected x, z, gz "
                    f"(or x, y, z, gz) and optionally err, loop",
                )
            continue
        if len(cells) != len(header):
            raise DataError(
                source,
                lineno,
                f"row has {len(cells)} values but the header (line {header_line}) names "
                f"{len(header)} columns",
            )
        row = []
        for name, cell in zip(header, cells, strict=True):
            if not cell:
                raise DataError(source, lineno, f"column '{name}' is empty")
            if name == "loop":
                loops.append(cell.strip("\"'").strip())
                continue
            row.append(_parse_number(source, lineno, cell, name, "data"))
        rows.append(row)
        row_lines.append(lineno)
    if header is None:
        raise DataError(source, None, "file has no header line; expected x,z,gz[,err]")
    if not rows:
        raise DataError(source, header_line, "no data rows after the header")
    values = np.asarray(rows, dtype=float)
    numeric = [c for c in header if c != "loop"]
    col = {name: values[:, j].copy() for j, name in enumerate(numeric)}
    coords = ["x", "y", "z"] if "y" in col else ["x", "z"]
    return _gravity_data(
        source,
        np.column_stack([col[c] for c in coords]),
        col["gz"],
        col.get("err"),
        np.asarray(row_lines),
        profile,
        header_line,
        np.asarray(loops, dtype=str) if "loop" in header else None,
    )


def read_gravity_ubc(path: str | Path, profile: ProfileLine | None = None) -> GravityData:
    """Read a UBC-GIF GRAV3D observation file (``.obs``, ``.grv``).

    Format: the number of data on the first line, then one row per station
    ``E N Elev gz [std]`` (m, m, m up, mGal, mGal); blank lines and lines
    starting with ``!`` are skipped. UBC gz is positive down, i.e. positive
    for excess mass, as in jointinv, so it is used unchanged (SimPEG's
    ``read_grav3d_ubc`` returns −gz). Stations are projected onto ``profile``.

    Parameters
    ----------
    path : str or Path
    profile : ProfileLine
        Required (the stations are in map coordinates).

    Raises
    ------
    DataError
        For any problem in the file, naming the file and line.
    """
    source, lines = _read_text(path)
    content = [
        (i, text.split())
        for i, raw in enumerate(lines, start=1)
        if (text := raw.split("!", 1)[0].strip())
    ]
    if not content:
        raise DataError(source, None, "file has no data (only comments)")
    count_line, first = content[0]
    n_data = _parse_count(source, (count_line, first), "data")
    rows = content[1:]
    if len(rows) != n_data:
        where = rows[n_data][0] if len(rows) > n_data else None
        raise DataError(
            source,
            where,
            f"line {count_line} declares {n_data} data but the file has {len(rows)} data rows; "
            f"fix the count",
        )
    ncol = len(rows[0][1])
    if ncol not in (4, 5):
        raise DataError(
            source,
            rows[0][0],
            f"row has {ncol} values; expected 'E N Elev gz std' (5) or 'E N Elev gz' (4)",
        )
    names = ["e", "n", "elev", "gz", "std"][:ncol]
    values = np.empty((n_data, ncol))
    for k, (lineno, fields) in enumerate(rows):
        if len(fields) != ncol:
            raise DataError(
                source,
                lineno,
                f"row has {len(fields)} values; the first row (line {rows[0][0]}) has {ncol}",
            )
        for j, text in enumerate(fields):
            values[k, j] = _parse_number(source, lineno, text, names[j], "data")
    return _gravity_data(
        source,
        values[:, :3],
        values[:, 3].copy(),
        values[:, 4].copy() if ncol == 5 else None,
        np.asarray([r[0] for r in rows]),
        profile,
        count_line,
    )


_GRAVITY_READERS = {
    ".csv": read_gravity_csv,
    ".obs": read_gravity_ubc,
    ".grv": read_gravity_ubc,
}


def read_gravity(path: str | Path, profile: ProfileLine | None = None) -> GravityData:
    """Read gravity data, choosing the reader by the file suffix.

    ``.csv`` → :func:`read_gravity_csv`; ``.obs``, ``.grv`` (UBC-GIF GRAV3D)
    → :func:`read_gravity_ubc` (case-insensitive).

    Parameters
    ----------
    path : str or Path
    profile : ProfileLine, optional
        Profile line for stations in map coordinates (3D CSV, UBC files).

    Returns
    -------
    GravityData
        Stations (x along the profile, elevation; m), gz and err (mGal).
    """
    suffix = Path(path).suffix.lower()
    reader = _GRAVITY_READERS.get(suffix)
    if reader is None:
        raise DataError(
            str(path),
            None,
            f"unknown gravity file type '{suffix or Path(path).name}': use .csv (x,z,gz[,err] "
            f"or x,y,z,gz[,err]) or UBC-GIF .obs/.grv (E N Elev gz std)",
        )
    return reader(path, profile)


def data_kind(path: str | Path) -> str:
    """The kind of data a file holds: ``gravity`` by its suffix (``.csv``, ``.obs``,
    ``.grv``), ``ert`` or ``traveltime`` for a unified-format file by the columns its
    data token line names (``a b m n ...`` or ``s g t ...``).

    Raises
    ------
    DataError
        The file cannot be read as either, naming the file and line.
    """
    path = Path(path)
    if path.suffix.lower() in _GRAVITY_READERS:
        return "gravity"
    unified = _read_unified(path, "traveltime" if path.suffix.lower() == ".sgt" else "ERT")
    names = {t.name for t in unified.tokens}
    if {"a", "m"} <= names:
        return "ert"
    if {"s", "g"} <= names:
        return "traveltime"
    raise DataError(
        unified.source,
        unified.token_line,
        f"the data columns '{unified.token_list()}' are neither ERT (a b m n ...) nor "
        f"traveltime (s g t ...); gravity files end in .csv, .obs or .grv",
    )
