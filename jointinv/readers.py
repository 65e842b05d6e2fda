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
  error (3D coordinates are not supported yet). ``x`` alone gives elevation 0.
* Sensor indices are 1-based in the file and 0-based in the containers. For ERT,
  ``0`` or ``-1`` in ``b`` or ``n`` is a remote electrode (stored as -1); a file
  without a ``b`` (or ``n``) column is a pole array (all -1).
* A ``valid`` column, if present, drops the rows where it is 0 (no other checks
  are made on those rows).
* ERT apparent resistivity: ``rhoa`` if present; else ``r * k``; else
  ``u / i * k``. Without ``k``, the flat-surface k = 2π / (1/AM − 1/BM − 1/AN
  + 1/BN) is used (remote terms dropped), only if all sensors share one
  elevation.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .data import ErtData, GravityData, TraveltimeData
from .errors import DataError

__all__ = ["read_ert", "read_traveltime", "read_gravity_csv"]

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
    coords = np.zeros((n_sensors, len(names) if names else 3))
    lines = np.zeros(n_sensors, dtype=int)
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
            coords = np.zeros((n_sensors, len(names)))
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
                f"line {lines[iz]}): the profile must be 2D, with x along it and y or z as "
                f"elevation (projection of 3D coordinates is not supported yet, issue #7)",
            )
        elev = col["y"] if y_nonzero.any() else col["z"]
    elif "z" in col:
        elev = col["z"]
    elif "y" in col:
        elev = col["y"]
    else:
        elev = np.zeros(n_sensors)
    return n_sensors, np.column_stack([x, elev]).astype(float)


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

    values = np.empty((n_data, ncol))
    row_lines = np.zeros(n_data, dtype=int)
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


def _indices(u: _Unified, name: str, remote_ok: bool) -> np.ndarray:
    """0-based sensor indices of column ``name``; remote (0 or -1) → -1 if allowed."""
    j = u.col(name)
    assert j is not None
    raw = u.values[:, j]
    nonint = raw != np.round(raw)
    if nonint.any():
        i = int(np.argmax(nonint))
        raise DataError(
            u.source,
            int(u.row_lines[i]),
            f"sensor index {_fmt(raw[i])} in column '{name}' is not an integer",
        )
    idx = raw.astype(np.int64)
    remote = (idx == 0) | (idx == -1) if remote_ok else np.zeros(len(idx), dtype=bool)
    bad = ~remote & ((idx < 1) | (idx > u.n_sensors))
    if bad.any():
        i = int(np.argmax(bad))
        extra = " (or 0 for a remote electrode)" if remote_ok else ""
        raise DataError(
            u.source,
            int(u.row_lines[i]),
            f"sensor index {idx[i]} in column '{name}' is out of range: the file has "
            f"{u.n_sensors} sensors, so indices must be 1..{u.n_sensors}{extra}",
        )
    return np.where(remote, -1, idx - 1)


_POSITIVE_HINT = {
    "error": "errors must be positive (raise the small ones or drop the 'err' column)",
    "traveltime": "traveltimes must be positive (fix or remove this pick)",
}


def _check_positive(u: _Unified, name: str, values: np.ndarray, what: str) -> None:
    bad = values <= 0
    if bad.any():
        i = int(np.argmax(bad))
        raise DataError(
            u.source,
            int(u.row_lines[i]),
            f"{what} '{name}' is {_fmt(values[i])}; {_POSITIVE_HINT[what]}",
        )


# --------------------------------------------------------------------------- ERT


def _flat_geometric_factor(u: _Unified, abmn: np.ndarray, from_what: str) -> np.ndarray:
    """k = 2π / (1/AM − 1/BM − 1/AN + 1/BN) on a flat surface (remote terms dropped)."""
    elev = u.sensors[:, 1]
    if np.ptp(elev) > _COORD_TOL:
        raise DataError(
            u.source,
            u.token_line,
            f"geometric factors for topography are not supported yet: the data give "
            f"{from_what} without 'k' and the electrodes are not all at one elevation "
            f"({_fmt(elev.min())} .. {_fmt(elev.max())} m); add a 'k' or 'rhoa' column "
            f"(e.g. numerical k from pyGIMLi)",
        )
    x = u.sensors[:, 0]
    g = np.zeros(len(abmn))
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
        g += np.where(used, sign / np.where(used, dist, 1.0), 0.0)
    scale = np.zeros(len(abmn))
    for p, q, _ in pairs:
        ip, iq = abmn[:, p], abmn[:, q]
        used = (ip >= 0) & (iq >= 0)
        dist = np.abs(x[np.where(used, ip, 0)] - x[np.where(used, iq, 0)])
        scale = np.maximum(scale, np.where(used, 1.0 / np.where(used, dist, 1.0), 0.0))
    null = np.abs(g) <= 1e-12 * scale
    if null.any():
        i = int(np.argmax(null))
        raise DataError(
            u.source,
            int(u.row_lines[i]),
            "the electrode geometry gives no voltage on a flat half-space (infinite k); "
            "remove this datum or add a 'k' column",
        )
    return 2.0 * np.pi / g


def read_ert(path: str | Path) -> ErtData:
    """Read ERT data in the pyGIMLi unified format (``.ohm``, ``.dat``, ``.data``).

    Parameters
    ----------
    path : str or Path
        The data file.

    Returns
    -------
    ErtData
        Electrode (x, elevation), 0-based ``abmn`` (-1 = remote), apparent
        resistivity (Ω·m; negative values are kept) and the ``err`` column as a
        fraction (``err/%`` is divided by 100), or None without an ``err`` column.

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

    def k_values(from_what: str) -> np.ndarray:
        k = column("k")
        if k is None:
            return _flat_geometric_factor(u, abmn, from_what)
        zero = k == 0
        if zero.any():
            i = int(np.argmax(zero))
            raise DataError(
                u.source,
                int(u.row_lines[i]),
                f"geometric factor 'k' is 0; needed to compute rhoa from {from_what}",
            )
        return k

    rhoa = column("rhoa")
    if rhoa is None:
        r = column("r")
        cu, ci = column("u"), column("i")
        if r is not None:
            rhoa = r * k_values("'r'")
        elif cu is not None and ci is not None:
            zero = ci == 0
            if zero.any():
                i = int(np.argmax(zero))
                raise DataError(
                    u.source, int(u.row_lines[i]), "current 'i' is 0, so r = u/i is undefined"
                )
            rhoa = cu / ci * k_values("'u' and 'i'")
        else:
            raise DataError(
                u.source,
                tl,
                f"the data columns ({u.token_list()}) give no apparent resistivity: add a "
                f"'rhoa' column, or 'r' (ohm), or 'u' (V) and 'i' (A)",
            )

    err = None
    j = u.col("err")
    if j is not None:
        unit = u.tokens[j].unit
        if unit not in (None, "%"):
            raise DataError(
                u.source,
                tl,
                f"unsupported unit '{unit}' for 'err': use 'err' (a fraction of rhoa) "
                f"or 'err/%' (percent)",
            )
        raw = u.values[:, j]
        _check_positive(u, u.tokens[j].text, raw, "error")
        err = raw / 100.0 if unit == "%" else raw.copy()

    return ErtData(
        electrodes=u.sensors,
        abmn=abmn,
        apparent_resistivity=np.asarray(rhoa, dtype=float).copy(),
        relative_error=err,
        source=u.source,
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
        Sensor (x, elevation), 0-based shot and geophone indices, traveltimes
        and errors (s; None without an ``err`` column).

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
        _check_positive(u, u.tokens[j].text, raw, "traveltime" if name == "t" else "error")
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
    )


# --------------------------------------------------------------------------- gravity


_GRAVITY_COLUMNS = ("x", "z", "gz", "err")


def read_gravity_csv(path: str | Path) -> GravityData:
    """Read a gravity profile from a CSV file.

    The first non-comment line is a header naming the columns ``x, z, gz`` and
    optionally ``err`` (case-insensitive, any order); lines starting with ``#``
    and blank lines are skipped. ``x`` and ``z`` (elevation) are in m, ``gz``
    and ``err`` in mGal.

    Raises
    ------
    DataError
        For any problem in the file, naming the file and line.
    """
    source, lines = _read_text(path)
    header: list[str] | None = None
    header_line = 0
    rows: list[list[float]] = []
    row_lines: list[int] = []
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
                    f"unknown column '{unknown[0]}' in the header; expected x, z, gz and "
                    f"optionally err",
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
                    f"and optionally err",
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
            row.append(_parse_number(source, lineno, cell, name, "data"))
        rows.append(row)
        row_lines.append(lineno)
    if header is None:
        raise DataError(source, None, "file has no header line; expected x,z,gz[,err]")
    if not rows:
        raise DataError(source, header_line, "no data rows after the header")
    values = np.asarray(rows, dtype=float)
    col = {name: values[:, j] for j, name in enumerate(header)}
    err = None
    if "err" in col:
        err = col["err"]
        bad = err <= 0
        if bad.any():
            i = int(np.argmax(bad))
            raise DataError(
                source, row_lines[i], f"error 'err' is {_fmt(err[i])}; {_POSITIVE_HINT['error']}"
            )
    return GravityData(
        stations=np.column_stack([col["x"], col["z"]]),
        gz_mgal=col["gz"].copy(),
        error_mgal=None if err is None else err.copy(),
        source=source,
    )
