"""Writing output files: atomically, with the umask's permissions, never over an
input, and only where writing can succeed.

Every file jointinv writes (results, checkpoints, exports, ``summary.csv``, conflict
reports) goes through :func:`atomic_path`: a temporary file in the target's folder,
renamed over the target once complete, so a reader never sees half a file. The
temporary file gets the mode an ordinary ``open()`` would give (``0o666`` less the
umask), not the ``0o600`` of :func:`tempfile.mkstemp`.

Before any work, the commands check where they will write (:func:`check_output`):
an output that is the config file or one of its data files is refused (``--force``
or not), and so is an output that names a folder or lies in a folder that cannot
be written.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from .errors import UserInputError


# --- permissions -------------------------------------------------------------------
def current_umask() -> int:
    """The process umask: from ``/proc/self/status`` where there is one (thread-safe),
    else by setting and restoring it."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    old = os.umask(0)
    os.umask(old)
    return old


def new_file_mode() -> int:
    """The mode of a new file: ``0o666`` less the umask (``0o644`` for umask 022)."""
    return 0o666 & ~current_umask()


# --- atomic writes -----------------------------------------------------------------
@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """A temporary path to write ``path`` through, in the same folder.

    The temporary file exists (empty, mode :func:`new_file_mode`) when the block
    starts; when the block ends normally it is renamed over ``path``, when it raises
    (or is interrupted) it is removed and ``path`` is left as it was. Missing parent
    folders are created.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        os.chmod(tmp, new_file_mode())
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_text_atomic(path: str | Path, text: str) -> Path:
    """Write ``text`` (UTF-8, newlines as given) to ``path`` atomically."""
    path = Path(path)
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8", newline="")
    return path


# --- where outputs may go ----------------------------------------------------------
def config_inputs(loaded: Any) -> dict[Path, str]:
    """The files a run reads: its config file and every data file, each with what it is
    (``path -> "the data file of modality gravity (modalities.gravity.data) of quick.yaml"``)."""
    inputs = {Path(loaded.path): f"the config file {loaded.name}"}
    for name, modality in loaded.config.modalities.items():
        inputs[loaded.resolve(modality.data)] = (
            f"the data file of modality {name} (modalities.{name}.data) of {loaded.name}"
        )
    return inputs


def same_file(a: Path, b: Path) -> bool:
    """``a`` and ``b`` are one file: the same path after resolving symbolic links, or
    (both existing) the same inode, e.g. hard links."""
    if Path(a).resolve() == Path(b).resolve():
        return True
    try:
        return os.path.samefile(a, b)
    except OSError:  # one of them does not exist
        return False


def refuse_inputs(output: Path, inputs: Mapping[Path, str]) -> None:
    """Raise :class:`UserInputError` when ``output`` is one of ``inputs``."""
    for path, what in inputs.items():
        if same_file(output, path):
            raise UserInputError(
                f"{output}: is {what}; refusing to write an output over an input"
            )


def check_writable_location(output: Path) -> None:
    """Raise :class:`UserInputError` when ``output`` cannot be written: it is a folder,
    a part of its folder path is not a folder, or the folder (or the nearest existing
    one above it, for folders still to be created) does not let us create a file."""
    output = Path(output)
    if output.is_dir():
        raise UserInputError(f"{output}: is a folder; give the name of the file to write")
    folder = output.parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    if not folder.is_dir():
        raise UserInputError(f"{output}: cannot be written: {folder} is not a folder")
    try:
        fd, probe = tempfile.mkstemp(prefix=".jointinv-write-test.", dir=folder)
    except OSError as exc:
        raise UserInputError(
            f"{output}: cannot be written: cannot create a file in {folder} ({exc.strerror})"
        ) from None
    os.close(fd)
    os.unlink(probe)


#: What each kind of output file is, and the suffixes its name may end in.
OUTPUT_FORMATS = {
    "result": ("an HDF5 result", (".h5", ".hdf5")),
    "report": ("an HDF5 report", (".h5", ".hdf5")),
    "json": ("a JSON report", (".json",)),
    "vtu": ("a VTK XML unstructured grid", (".vtu",)),
    "csv": ("a CSV table", (".csv",)),
}

#: Suffixes of image files: a name ending in one is no folder for several plots.
IMAGE_SUFFIXES = (".png", ".pdf", ".svg", ".jpg", ".jpeg")


def check_suffix(output: Path, kind: str, writer: str) -> None:
    """Raise :class:`UserInputError` when the name of ``output`` does not end in a
    suffix of its format ``kind`` (a key of :data:`OUTPUT_FORMATS`; case ignored);
    ``writer`` is the option or command that writes it (``--vtk``, ``run``)."""
    what, suffixes = OUTPUT_FORMATS[kind]
    if Path(output).suffix.lower() not in suffixes:
        raise UserInputError(
            f"{output}: {writer} writes {what}; give a name ending in {' or '.join(suffixes)}"
        )


def check_output(
    output: str | Path,
    inputs: Mapping[Path, str] | None = None,
    *,
    kind: str | None = None,
    writer: str = "jointinv",
) -> Path:
    """Check an output path before any work is done; returns it.

    ``kind`` (a key of :data:`OUTPUT_FORMATS`) also checks the suffix of the name;
    ``writer`` names the option or command in that message.

    Raises
    ------
    UserInputError
        One line naming ``output``: it is one of ``inputs`` (and which), a folder, in a
        folder that cannot be written, or named with a suffix of another format.
    """
    output = Path(output)
    refuse_inputs(output, inputs or {})
    check_writable_location(output)
    if kind is not None:
        check_suffix(output, kind, writer)
    return output


def check_folder_output(folder: str | Path, writer: str) -> Path:
    """Check a folder that several files will be written into (``show --plot``): not
    an existing file, nor named like an image. Returns it.

    Raises
    ------
    UserInputError
        One line naming ``folder`` and what is wrong with it.
    """
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise UserInputError(
            f"{folder}: {writer} writes several files into a folder; this is a file"
        )
    if folder.suffix.lower() in IMAGE_SUFFIXES:
        raise UserInputError(
            f"{folder}: {writer} writes several PNG files into a folder; give a folder name, "
            f"not a {folder.suffix} file name"
        )
    return folder
