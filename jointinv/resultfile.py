"""Opening result and checkpoint files that may come from anywhere.

HDF5 can make a file read other files: a dataset may keep its values in an
external raw file (external storage), a link may point into another HDF5 file
(external link), and a virtual dataset maps other files' datasets. jointinv writes
none of these, and a file that uses one could make ``jointinv show`` or ``export``
print or export the bytes of any file the user can read. :func:`open_result` and
:func:`open_checkpoint` refuse such files before reading any data, then check the
layout (groups, datasets, dtypes, shapes, attribute types) of everything jointinv
reads, so a malformed file gives one line naming the file and the HDF5 path
(:class:`~jointinv.errors.UserInputError`) instead of a Python error.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NoReturn

import h5py
import numpy as np

from .coordinates import variable_names
from .errors import UserInputError

#: dtype kinds read as numbers, as boolean masks and as texts
NUMBERS = "fiu"
MASKS = "biu"
TEXTS = "OS"
EXPECTED = {NUMBERS: "a numeric array", MASKS: "a boolean mask", TEXTS: "an array of texts"}

#: /meta attributes jointinv interprets, and their types (others may be anything)
META_ATTRIBUTES = {
    "format_version": "text",
    "config_text": "text",
    "config_path": "text",
    "config_hash": "text",
    "stop_reason": "text",
    "iterations": "integer",
    "success": "bool",
}


# --- opening -----------------------------------------------------------------------
@contextmanager
def open_result(path: str | Path) -> Iterator[h5py.File]:
    """Open a result file read-only after checking that it is self-contained and laid
    out as :mod:`jointinv.results` writes it.

    Raises
    ------
    UserInputError
        One line naming the file and, for a bad entry, its HDF5 path: no such file,
        not HDF5, external storage / external link / virtual dataset, or a missing or
        malformed entry.
    """
    with _open(Path(path), "result", check_result) as f:
        yield f


@contextmanager
def open_checkpoint(path: str | Path) -> Iterator[h5py.File]:
    """:func:`open_result` for a checkpoint (``/checkpoint``, see :mod:`jointinv.checkpoint`)."""
    with _open(Path(path), "checkpoint", check_checkpoint) as f:
        yield f


@contextmanager
def _open(path: Path, what: str, check: Callable[[Layout], None]) -> Iterator[h5py.File]:
    if not path.is_file():
        raise UserInputError(f"{path}: no such {what} file")
    try:
        f = h5py.File(path, "r")
    except OSError as exc:
        raise file_error(f"{path}: not a jointinv {what} (not HDF5: {exc})") from None
    with f:
        check_self_contained(f, path)
        check(Layout(f, path))
        try:
            yield f
        except (OSError, KeyError) as exc:  # e.g. a damaged chunk
            raise file_error(f"{path}: not a jointinv {what} ({exc})") from None


def file_error(message: str) -> UserInputError:
    """A :class:`UserInputError` whose message stays one printable line: names from the
    file (groups, links, external file names) may hold newlines or control characters."""
    return UserInputError("".join(c if c.isprintable() else repr(c)[1:-1] for c in message))


# --- nothing from other files ---------------------------------------------------------
def check_self_contained(f: h5py.File, path: Path) -> None:
    """Refuse external links, external storage and virtual datasets anywhere in ``f``.

    Every object reachable by hard links is visited once (:meth:`h5py.Group.visititems`
    follows neither soft nor external links) and every link of every group is looked
    at without being followed. Soft links stay inside the file and are allowed.
    """

    def refuse(where: str, what: str) -> NoReturn:
        raise file_error(f"{path}: {where}: {what}; refused: jointinv reads only the file itself")

    def check_links(group: h5py.Group) -> None:
        for name in group:
            where = f"{group.name.rstrip('/')}/{name}"
            try:
                link = group.get(name, getlink=True)
            except (TypeError, KeyError, OSError):
                refuse(where, "a link of a kind jointinv does not write")
            if isinstance(link, h5py.ExternalLink):
                refuse(where, f"external link to {link.path} in {link.filename}")
            if not isinstance(link, (h5py.HardLink, h5py.SoftLink)):
                refuse(where, "a link of a kind jointinv does not write")

    def check_object(name: str, obj: Any) -> None:
        if isinstance(obj, h5py.Group):
            check_links(obj)
        elif isinstance(obj, h5py.Dataset):
            if obj.is_virtual:
                refuse(obj.name, "virtual dataset (its values come from other datasets)")
            if obj.external:
                files = ", ".join(str(entry[0]) for entry in obj.external)
                refuse(obj.name, f"dataset stored in external file {files}")

    check_links(f)
    f.visititems(check_object)


# --- layout ---------------------------------------------------------------------------
class Layout:
    """Checks of the entries of one open file; each failure is one
    :class:`UserInputError` naming the file and the HDF5 path."""

    def __init__(self, f: h5py.File, path: Path) -> None:
        self.f = f
        self.path = path

    def fail(self, where: str, problem: str) -> NoReturn:
        raise file_error(f"{self.path}: {where}: {problem}")

    def group(self, where: str) -> h5py.Group:
        obj = self.f.get(where)
        if obj is None:
            self.fail(where, "missing")
        if not isinstance(obj, h5py.Group):
            self.fail(where, "a group expected, found a dataset")
        return obj

    def array(
        self,
        where: str,
        kinds: str = NUMBERS,
        *,
        shape: tuple[int, ...] | None = None,
        ndim: int | None = None,
    ) -> h5py.Dataset:
        """The dataset at ``where``: its dtype kind in ``kinds`` and its shape checked."""
        obj = self.f.get(where)
        if obj is None:
            self.fail(where, "missing")
        if not isinstance(obj, h5py.Dataset):
            self.fail(where, "a dataset expected, found a group")
        wrong = obj.dtype.kind not in kinds or obj.dtype.names is not None
        if kinds == TEXTS:
            wrong = h5py.check_string_dtype(obj.dtype) is None
        if wrong:
            self.fail(where, f"{EXPECTED[kinds]} expected, found {_dtype_name(obj.dtype)}")
        if shape is not None and obj.shape != shape:
            self.fail(where, f"shape {shape} expected, found {obj.shape}")
        if ndim is not None and obj.ndim != ndim:
            self.fail(where, f"a {ndim}-D array expected, found shape {obj.shape}")
        return obj

    def attr(self, where: str, name: str, kind: str, *, required: bool = True) -> Any:
        """Attribute ``name`` of ``where``, of ``kind`` text, number, integer, bool or
        texts (a list of text); None when absent and not ``required``."""
        obj = self.f[where]
        label = f"{where} (attribute {name})"
        if name not in obj.attrs:
            if required:
                self.fail(label, "missing")
            return None
        try:
            value = obj.attrs[name]
        except (OSError, TypeError, ValueError) as exc:
            self.fail(label, f"unreadable ({exc})")
        if not _is_kind(value, kind):
            found = getattr(value, "dtype", type(value).__name__)
            self.fail(label, f"{ATTRIBUTE_KINDS[kind]} expected, found {found}")
        return value

    def members(self, group: h5py.Group) -> list[str]:
        """The absolute paths of the entries of ``group`` except its coordinates
        (dimension scales, see :mod:`jointinv.coordinates`)."""
        return [f"{group.name}/{name}" for name in variable_names(group)]


ATTRIBUTE_KINDS = {
    "text": "a text",
    "number": "a number",
    "integer": "an integer",
    "bool": "true or false",
    "texts": "a list of texts",
}


def _is_kind(value: Any, kind: str) -> bool:
    if kind == "text":
        return isinstance(value, str)
    if kind == "bool":
        return isinstance(value, (bool, np.bool_))
    if kind == "integer":
        return isinstance(value, (int, np.integer)) and not isinstance(value, bool)
    if kind == "number":
        return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(
            value, bool
        )
    if kind == "texts":
        return isinstance(value, (list, np.ndarray)) and all(isinstance(v, str) for v in value)
    raise ValueError(f"unknown attribute kind {kind}")


def _dtype_name(dtype: np.dtype) -> str:
    if h5py.check_string_dtype(dtype) is not None or dtype.kind in "SU":
        return "text"
    if dtype.names is not None:
        return "a compound type"
    return f"dtype {dtype}"


# --- the result file ------------------------------------------------------------------
def check_result(r: Layout) -> None:
    """The layout of a result file (see :mod:`jointinv.results`)."""
    if not isinstance(r.f.get("meta"), h5py.Group):
        raise UserInputError(f"{r.path}: not a jointinv result (no /meta group)")
    for name in r.f["meta"].attrs:
        _readable(r, "/meta", name)
    for name, kind in META_ATTRIBUTES.items():
        r.attr("/meta", name, kind, required=False)
    shape = check_mesh(r)
    check_inversion(r, "", shape)
    if "diagnostics" in r.f:
        check_diagnostics(r, shape)
    if "biases" in r.f:
        check_biases(r)
    if "separate" in r.f:
        for where in r.members(r.group("/separate")):
            r.group(where)
            r.attr(where, "stop_reason", "text")
            r.attr(where, "iterations", "integer")
            check_inversion(r, where, shape)
            r.group(f"{where}/data/{where.rsplit('/', 1)[1]}")


def _readable(r: Layout, where: str, name: str) -> None:
    try:
        r.f[where].attrs[name]
    except (OSError, TypeError, ValueError) as exc:
        r.fail(f"{where} (attribute {name})", f"unreadable ({exc})")


def check_mesh(r: Layout) -> tuple[int, int]:
    """``/mesh``; returns the (n_z, n_x) shape of the cell arrays."""
    nodes = {}
    for axis in ("x", "z"):
        where = f"/mesh/nodes_{axis}"
        values = r.array(where, ndim=1)[()]
        if len(values) < 2 or not np.all(np.isfinite(values)) or not np.all(np.diff(values) > 0):
            r.fail(where, "two or more finite, increasing node coordinates expected")
        nodes[axis] = values
    shape = (len(nodes["z"]) - 1, len(nodes["x"]) - 1)
    for name in ("active", "core_mask"):
        if f"/mesh/{name}" in r.f:
            r.array(f"/mesh/{name}", MASKS, shape=shape)
    if "/mesh/surface" in r.f:
        surface = r.array("/mesh/surface", ndim=2)
        if surface.shape[1] != 2 or surface.shape[0] < 2:
            r.fail("/mesh/surface", f"shape (n >= 2, 2) expected, found {surface.shape}")
    return shape


def check_inversion(r: Layout, base: str, shape: tuple[int, int]) -> None:
    """``models``, ``data`` and ``iterations`` below ``base`` (the file or a
    ``/separate/<modality>`` group)."""
    for where in r.members(r.group(f"{base}/models")):
        r.array(where, shape=shape)
        r.attr(where, "units", "text")
        r.attr(where, "transform", "text")
    for where in r.members(r.group(f"{base}/data")):
        r.group(where)
        n = r.array(f"{where}/observed", ndim=1).shape
        for name in ("predicted", "std"):
            r.array(f"{where}/{name}", shape=n)
        if f"{where}/normalized_residual" in r.f:
            r.array(f"{where}/normalized_residual", shape=n)
        sensors = r.array(f"{where}/sensors", ndim=2)
        if sensors.shape[1] != 2:
            r.fail(f"{where}/sensors", f"shape (n, 2) expected, found {sensors.shape}")
        r.attr(where, "kind", "text")
        r.attr(where, "units", "text")
        r.attr(where, "chi2", "number")
        r.attr(where, "property", "text", required=False)
    check_iterations(r, f"{base}/iterations")


def check_iterations(r: Layout, where: str) -> None:
    """Every column of ``/iterations`` a 1-D numeric array of the same length."""
    columns: list[str] = []
    r.group(where).visit(columns.append)
    lengths = set()
    for name in ("iteration", "beta", "phi"):
        r.array(f"{where}/{name}", ndim=1)
    for name in columns:
        if isinstance(r.f.get(f"{where}/{name}"), h5py.Dataset):
            lengths.add(r.array(f"{where}/{name}", ndim=1).shape[0])
    if len(lengths) != 1 or 0 in lengths:
        r.fail(where, f"columns of one length >= 1 expected, found lengths {sorted(lengths)}")


def check_diagnostics(r: Layout, shape: tuple[int, int]) -> None:
    """``/diagnostics`` (see :mod:`jointinv.diagnostics_file`)."""
    g = r.group("/diagnostics")
    if "cross_gradient" in g:
        for where in r.members(r.group("/diagnostics/cross_gradient")):
            r.array(where, shape=shape)
    if "posterior_std" not in g:
        return
    r.array("/mesh/core_mask", MASKS, shape=shape)
    r.attr("/diagnostics", "seconds", "number", required=False)
    std = _cell_arrays(r, "/diagnostics/posterior_std", shape)
    for where in r.members(r.group("/diagnostics/posterior_std")):
        r.attr(where, "units", "text")
        r.attr(where, "parameter", "text")
    _needs(r, "/diagnostics/prior_std", _cell_arrays(r, "/diagnostics/prior_std", shape), std)
    _cell_arrays(r, "/diagnostics/resolution", shape)
    for group in ("posterior_std_alone", "information"):
        for where in r.members(r.group(f"/diagnostics/{group}")):
            _cell_arrays(r, where, shape)
    coverage = _cell_arrays(r, "/diagnostics/coverage", shape)
    for where in r.members(r.group("/diagnostics/coverage")):
        r.attr(where, "property", "text")
    doi = _cell_arrays(r, "/diagnostics/doi_mask", shape, MASKS)
    _needs(r, "/diagnostics/doi_mask", doi, coverage)
    for where in r.members(r.group("/diagnostics/eigenvalues")):
        r.array(where, ndim=1)
    for where in r.members(r.group("/diagnostics/data_fit")):
        r.group(where)
        n = r.array(f"{where}/residual", ndim=1).shape
        r.array(f"{where}/normalized_residual", shape=n)
        for name in ("chi2", "mean", "std", "fraction_beyond_3sigma"):
            r.attr(where, name, "number")
        r.attr(where, "units", "text")
    correlation = r.array("/diagnostics/correlation", ndim=2)
    properties = r.attr("/diagnostics/correlation", "properties", "texts")
    k = len(properties)
    if correlation.shape != (k, k):
        r.fail(
            "/diagnostics/correlation",
            f"shape ({k}, {k}) expected for {k} properties, found {correlation.shape}",
        )


def _cell_arrays(
    r: Layout, where: str, shape: tuple[int, int], kinds: str = NUMBERS
) -> set[str]:
    """Every entry of the group ``where`` a cell array; returns their names."""
    names = set()
    for entry in r.members(r.group(where)):
        r.array(entry, kinds, shape=shape)
        names.add(entry.rsplit("/", 1)[1])
    return names


def _needs(r: Layout, where: str, present: set[str], wanted: set[str]) -> None:
    missing = sorted(wanted - present)
    if missing:
        r.fail(f"{where}/{missing[0]}", "missing")


def check_biases(r: Layout) -> None:
    """``/biases/<modality>/<kind>``: label (text), value, std of one length; units."""
    for modality in r.members(r.group("/biases")):
        for where in r.members(r.group(modality)):
            r.group(where)
            labels = r.array(f"{where}/label", TEXTS, ndim=1)
            for name in ("value", "std"):
                r.array(f"{where}/{name}", shape=labels.shape)
            r.attr(where, "units", "text", required=False)


# --- the checkpoint file ------------------------------------------------------------------
def check_checkpoint(r: Layout) -> None:
    """The layout of a checkpoint (see :mod:`jointinv.checkpoint`)."""
    if not isinstance(r.f.get("checkpoint"), h5py.Group):
        raise UserInputError(f"{r.path}: not a jointinv checkpoint (no /checkpoint group)")
    r.attr("/checkpoint", "iteration", "integer")
    r.attr("/checkpoint", "beta0", "number")
    r.attr("/checkpoint", "config_hash", "text")
    records = r.attr("/checkpoint", "records", "text")
    r.array("/checkpoint/model", ndim=1)
    from .inversion import IterationRecord

    try:
        [IterationRecord(**record) for record in json.loads(records)]
    except (TypeError, ValueError) as exc:
        r.fail(
            "/checkpoint (attribute records)",
            f"not the JSON list of iteration records jointinv writes ({type(exc).__name__})",
        )
