"""Outputs never destroy inputs and land where they can; result files read back are
refused when they would make jointinv read other files; messages print file text
literally (issue 13)."""

from __future__ import annotations

import os
import stat
import tempfile
from pathlib import Path

import h5py
import numpy as np
import pytest

from jointinv.batch import RunOutcome, write_summary
from jointinv.checkpoint import Checkpoint, write_checkpoint
from jointinv.errors import UserInputError
from jointinv.export import export_csv, export_vtu
from jointinv.outputs import current_umask, write_text_atomic
from jointinv.results import write_atomic

from .conftest import Workspace, gravity_only_mapping, override
from .test_cli import assert_user_error, edit_line, invoke
from .test_export import NODES_X, NX, NZ, write_result


# --------------------------------------------------------------------------- permissions
@pytest.fixture
def umask():
    """Set the umask for one test; restore it afterwards."""
    old = os.umask(0o022)
    yield lambda mask: os.umask(mask)
    os.umask(old)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


WRITERS = {
    "result": lambda out, src: write_atomic(out, lambda f: f.create_group("meta")),
    "csv export": lambda out, src: export_csv(src, out),
    "vtu export": lambda out, src: export_vtu(src, out),
    "text": lambda out, src: write_text_atomic(out, "x\n"),
    "summary.csv": lambda out, src: write_summary([RunOutcome("a", "failed")], out),
    "checkpoint": lambda out, src: write_checkpoint(
        out, Checkpoint(np.zeros(3), 0, 1.0, [], "hash")
    ),
}


@pytest.mark.parametrize("mask, mode", [(0o022, 0o644), (0o027, 0o640), (0o077, 0o600)])
@pytest.mark.parametrize("writer", WRITERS)
def test_files_get_the_mode_of_the_umask(tmp_path, umask, writer, mask, mode):
    source = write_result(tmp_path / "hill.h5")
    umask(mask)
    assert current_umask() == mask
    out = tmp_path / "out" / "file"
    WRITERS[writer](out, source)
    assert _mode(out) == mode
    assert [p.name for p in out.parent.iterdir()] == ["file"]  # no temporary left


# --------------------------------------------------------------------------- outputs vs inputs
@pytest.fixture
def gravity(workspace: Workspace) -> Path:
    """A gravity-only config (``gravity.yaml``) with its data in ``data/``."""
    return workspace.write("gravity.yaml", gravity_only_mapping())


def _no_work(monkeypatch) -> None:
    """Any inversion or conflict test fails loudly: the checks must come first."""

    def boom(*args, **kwargs):
        raise AssertionError("work started before the output was checked")

    monkeypatch.setattr("jointinv.runner.build_problem", boom)
    monkeypatch.setattr("jointinv.conflict.conflict_test", boom)


@pytest.mark.parametrize("force", [[], ["--force"]])
@pytest.mark.parametrize(
    "target, what",
    [
        ("data/gravity.csv", "the data file of modality gravity (modalities.gravity.data) of"),
        ("gravity.yaml", "the config file"),
    ],
)
def test_run_never_writes_over_an_input(workspace, gravity, monkeypatch, target, what, force):
    _no_work(monkeypatch)
    victim = workspace.root / target
    before = victim.read_bytes()
    result = invoke("run", gravity, "-o", victim, *force)
    assert_user_error(result, f"{victim}: is {what} gravity.yaml; refusing to write")
    assert victim.read_bytes() == before
    assert not list(workspace.root.rglob("*.tmp")) and not list(workspace.root.rglob("*.h5"))


@pytest.mark.parametrize("link", ["symlink", "hardlink", "dotted"])
def test_run_sees_through_links_to_an_input(workspace, gravity, monkeypatch, link):
    _no_work(monkeypatch)
    data = workspace.data / "gravity.csv"
    alias = workspace.root / "alias.h5"
    if link == "symlink":
        alias.symlink_to(data)
    elif link == "hardlink":
        os.link(data, alias)
    else:
        alias = workspace.root / "data" / ".." / "data" / "gravity.csv"
    before = data.read_bytes()
    result = invoke("run", gravity, "-o", alias, "--force")
    assert_user_error(result, "is the data file of modality gravity")
    assert data.read_bytes() == before


def test_output_path_of_the_config_naming_its_data(workspace, monkeypatch):
    _no_work(monkeypatch)
    raw = gravity_only_mapping()
    raw["output"]["path"] = raw["modalities"]["gravity"]["data"]
    config = workspace.write("gravity.yaml", raw)
    result = invoke("run", config, "--force")
    assert_user_error(result, f"{workspace.data / 'gravity.csv'}: is the data file")


def test_checkpoint_of_the_output_is_no_input_either(workspace, monkeypatch):
    _no_work(monkeypatch)
    raw = gravity_only_mapping()
    raw["modalities"]["gravity"]["data"] = "data/run.checkpoint.h5"
    (workspace.data / "gravity.csv").rename(workspace.data / "run.checkpoint.h5")
    config = workspace.write("gravity.yaml", raw)
    result = invoke("run", config, "-o", workspace.data / "run.h5", "--force")
    assert_user_error(result, f"{workspace.data / 'run.checkpoint.h5'}: is the data file")


# --------------------------------------------------------------------------- output location
def _unwritable_folder(tmp_path: Path) -> Path:
    """A folder this process cannot create files in. Root ignores permissions, so as
    root /sys (not writable even by root) stands in for a chmod 0555 folder."""
    if os.geteuid() != 0:
        folder = tmp_path / "read-only"
        folder.mkdir()
        folder.chmod(0o555)
        return folder
    folder = Path("/sys")
    try:
        fd, probe = tempfile.mkstemp(dir=folder)
    except OSError:
        return folder
    os.close(fd)
    os.unlink(probe)
    pytest.skip("running as root and /sys is writable: no folder root cannot write in")


def test_unwritable_folder_is_refused_before_the_run(tmp_path, gravity, monkeypatch):
    _no_work(monkeypatch)
    folder = _unwritable_folder(tmp_path)
    try:
        for out in (folder / "run.h5", folder / "new" / "run.h5"):
            result = invoke("run", gravity, "-o", out)
            assert_user_error(result, f"{out}: cannot be written: cannot create a file in {folder}")
    finally:
        if folder != Path("/sys"):
            folder.chmod(0o755)


@pytest.mark.parametrize("where", ["existing folder", "under a file"])
def test_output_that_cannot_be_a_file_is_refused_before_the_run(
    workspace, gravity, monkeypatch, where
):
    _no_work(monkeypatch)
    if where == "existing folder":
        out, message = workspace.data, f"{workspace.data}: is a folder"
    else:
        notes = workspace.root / "notes.txt"
        notes.write_text("a file\n")
        out, message = notes / "run.h5", f"{notes / 'run.h5'}: cannot be written: {notes} is not"
    for force in ([], ["--force"]):
        assert_user_error(invoke("run", gravity, "-o", out, *force), message)
    assert not list(workspace.root.rglob("*.checkpoint.h5"))


def test_missing_output_folders_are_still_created(workspace, gravity):
    from jointinv.config import load_config
    from jointinv.runner import check_run_output

    out = workspace.root / "new" / "deeper" / "run.h5"
    check_run_output(load_config(gravity), out)  # no error
    assert not (workspace.root / "new").exists()  # and nothing created by the check


# ------------------------------------------------------------------ export, conflict, batch
@pytest.mark.parametrize("option", ["--csv", "--vtk", "--sensors"])
def test_export_never_writes_over_the_result(tmp_path, option):
    source = write_result(tmp_path / "hill.h5")
    before = source.read_bytes()
    result = invoke("export", source, option, source)
    assert_user_error(result, f"{source}: is the result file being exported; refusing")
    assert source.read_bytes() == before


def test_export_to_a_folder_is_refused_before_writing_anything(tmp_path):
    source = write_result(tmp_path / "hill.h5")
    result = invoke("export", source, "--csv", tmp_path / "a.csv", "--vtk", tmp_path)
    assert_user_error(result, f"{tmp_path}: is a folder")
    assert not (tmp_path / "a.csv").exists()


@pytest.mark.parametrize("option", ["--output", "--json"])
@pytest.mark.parametrize("target", ["gravity.yaml", "data/gravity.csv"])
def test_conflict_test_never_writes_over_an_input(workspace, gravity, monkeypatch, option, target):
    _no_work(monkeypatch)
    victim = workspace.root / target
    before = victim.read_bytes()
    assert_user_error(invoke("conflict-test", gravity, option, victim), f"{victim}: is the ")
    assert victim.read_bytes() == before


def test_batch_never_writes_over_an_input(workspace):
    raw = gravity_only_mapping()
    raw["modalities"]["gravity"]["data"] = "data/summary.csv"
    (workspace.data / "gravity.csv").rename(workspace.data / "summary.csv")
    config = workspace.write("gravity.yaml", raw)
    before = (workspace.data / "summary.csv").read_bytes()
    result = invoke("batch", config, "-o", workspace.data, "-j", "1")
    assert_user_error(result, f"{workspace.data / 'summary.csv'}: is the data file of modality")
    assert (workspace.data / "summary.csv").read_bytes() == before
    assert not (workspace.data / "gravity.h5").exists()


def test_batch_output_folder_that_is_a_file(workspace, gravity):
    notes = workspace.root / "notes.txt"
    notes.write_text("a file\n")
    result = invoke("batch", gravity, "-o", notes, "-j", "1")
    assert_user_error(result, f"{notes / 'summary.csv'}: cannot be written: {notes} is not a")
    assert notes.read_text() == "a file\n"


# --------------------------------------------------------------------------- untrusted result files
SECRET = 1234.5678  # the value in the "secret" local files: must never be printed or exported


def _secrets(folder: Path) -> tuple[Path, Path]:
    """A raw file and an HDF5 file (``/values``) holding ``SECRET``, shaped like a model."""
    raw = folder / "secret.bin"
    np.full(NZ * NX, SECRET).tofile(raw)
    h5 = folder / "secret.h5"
    with h5py.File(h5, "w") as f:
        f["values"] = np.full((NZ, NX), SECRET)
    return raw, h5


def _replace(f: h5py.File, where: str, make) -> None:
    """Replace the dataset at ``where`` by ``make(f, where)``, keeping its attributes."""
    attrs = dict(f[where].attrs) if where in f else {}
    if where in f:
        del f[where]
    make(f, where)
    if isinstance(f.get(where), h5py.Dataset):
        f[where].attrs.update({k: v for k, v in attrs.items() if k != "DIMENSION_LIST"})


def _external_storage(secrets):
    raw, _ = secrets
    return lambda f, where: f.create_dataset(
        where, shape=(NZ, NX), dtype=float, external=[(str(raw), 0, NZ * NX * 8)]
    )


def _beside(f: h5py.File, attack):
    """``attack`` with secret files in the folder of ``f``."""
    return attack(_secrets(Path(f.filename).parent))


def _external_link(secrets):
    return lambda f, where: f.__setitem__(where, h5py.ExternalLink(str(secrets[1]), "/values"))


def _virtual(secrets):
    def make(f, where):
        layout = h5py.VirtualLayout(shape=(NZ, NX), dtype=float)
        layout[:] = h5py.VirtualSource(str(secrets[1]), "values", shape=(NZ, NX))
        f.create_virtual_dataset(where, layout)

    return make


ATTACKS = {
    "external storage": (_external_storage, "dataset stored in external file"),
    "external link": (_external_link, "external link to /values in"),
    "virtual dataset": (_virtual, "virtual dataset"),
}


def _crafted(tmp_path: Path, attack: str, where: str) -> tuple[Path, str]:
    path = write_result(tmp_path / "crafted.h5")
    make, message = ATTACKS[attack]
    with h5py.File(path, "r+") as f:
        _replace(f, where, make(_secrets(tmp_path)))
    return path, message


def _command(name: str, path: Path, tmp_path: Path) -> list:
    return {
        "show": ["show", path],
        "export": ["export", path, "--csv", tmp_path / "out.csv", "--vtk", tmp_path / "out.vtu"],
        "diagnose": ["diagnose", path],
    }[name]


@pytest.mark.parametrize("command", ["show", "export", "diagnose"])
@pytest.mark.parametrize("where", ["/models/resistivity", "/data/ert/observed", "/notes"])
@pytest.mark.parametrize("attack", ATTACKS)
def test_result_that_reads_other_files_is_refused(tmp_path, attack, where, command):
    path, message = _crafted(tmp_path, attack, where)
    result = invoke(*_command(command, path, tmp_path))
    line = assert_user_error(result, f"{path}: {where}: {message}", "refused")
    assert str(SECRET) not in result.output and "1234.56" not in line
    assert not (tmp_path / "out.csv").exists() and not (tmp_path / "out.vtu").exists()


@pytest.mark.parametrize("attack", ATTACKS)
def test_batch_does_not_skip_a_run_for_a_result_that_reads_other_files(tmp_path, attack):
    from jointinv.checkpoint import read_result_summary, result_hash

    path, _ = _crafted(tmp_path, attack, "/models/resistivity")
    with h5py.File(path, "r+") as f:
        f["meta"].attrs.update(success=True, config_hash="abc")
    assert result_hash(path) is None  # the run is redone, the file replaced
    with pytest.raises(UserInputError, match="refused"):
        read_result_summary(path)


def test_soft_links_inside_the_file_are_fine(tmp_path):
    path = write_result(tmp_path / "linked.h5")
    with h5py.File(path, "r+") as f:
        f["aliases/resistivity"] = h5py.SoftLink("/models/resistivity")
    result = invoke("show", path)
    assert result.exit_code == 0, result.output
    assert "resistivity" in result.stdout


def _set(where: str, value) -> object:
    """Mutation: replace the dataset at ``where`` by ``value`` (keeping its attributes)."""
    return lambda f: _replace(f, where, lambda f, w: f.create_dataset(w, data=value))


def _attr(where: str, name: str, value) -> object:
    return lambda f: f[where].attrs.__setitem__(name, value)


def _delete(where: str) -> object:
    return lambda f: f.__delitem__(where)


MALFORMED = [
    (_set("/models/resistivity", np.array([b"abc"] * NZ * NX).reshape(NZ, NX)),
     "/models/resistivity: a numeric array expected, found text"),
    (_set("/models/resistivity", np.zeros((3, 3))),
     "/models/resistivity: shape (5, 6) expected, found (3, 3)"),
    (_set("/data/ert/observed", "many"),
     "/data/ert/observed: a numeric array expected, found text"),
    (_delete("/data/ert/std"), "/data/ert/std: missing"),
    (_attr("/data/ert", "chi2", "low"), "/data/ert (attribute chi2): a number expected, found"),
    (_attr("/models/velocity", "units", 5), "/models/velocity (attribute units): a text expected"),
    (_attr("/meta", "iterations", "many"), "/meta (attribute iterations): an integer expected"),
    (_set("/mesh/nodes_x", NODES_X[::-1]), "/mesh/nodes_x: two or more finite, increasing"),
    (_set("/mesh/nodes_z", np.array([[1.0, 2.0]])), "/mesh/nodes_z: a 1-D array expected"),
    (_set("/mesh/active", np.ones((NZ, NX))), "/mesh/active: a boolean mask expected"),
    (_set("/mesh/surface", np.ones((4, 3))), "/mesh/surface: shape (n >= 2, 2) expected"),
    (_delete("/iterations/beta"), "/iterations/beta: missing"),
    (_set("/iterations/phi", np.ones(7)), "/iterations: columns of one length >= 1 expected"),
    (_delete("/models"), "/models: missing"),
    (_set("/models", np.ones(3)), "/models: a group expected, found a dataset"),
    (lambda f: f.__setitem__("/models/ghost", h5py.SoftLink("/nowhere")), "/models/ghost: missing"),
    (_delete("/diagnostics/doi_mask/ert"), "/diagnostics/doi_mask/ert: missing"),
    (_attr("/diagnostics/correlation", "properties", ["a", "b", "c"]),
     "/diagnostics/correlation: shape (3, 3) expected for 3 properties, found (2, 2)"),
    (_attr("/diagnostics/data_fit/ert", "mean", "zero"),
     "/diagnostics/data_fit/ert (attribute mean): a number expected"),
    (_delete("/meta"), "not a jointinv result (no /meta group)"),
    (_set("/models/two\nlines", "text"), "/models/two\\nlines: a numeric array expected"),
]  # fmt: skip


@pytest.mark.parametrize("command", ["show", "export"])
@pytest.mark.parametrize("mutate, message", MALFORMED, ids=[m for _, m in MALFORMED])
def test_malformed_result_is_one_line_naming_the_entry(tmp_path, mutate, message, command):
    path = write_result(tmp_path / "bad.h5")
    with h5py.File(path, "r+") as f:
        mutate(f)
    assert_user_error(invoke(*_command(command, path, tmp_path)), f"{path}: {message}")
    assert not (tmp_path / "out.csv").exists()


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda f: f["checkpoint"].attrs.__setitem__("records", "[{"),
         "/checkpoint (attribute records): not the JSON list of iteration records"),
        (lambda f: f["checkpoint"].attrs.__setitem__("beta0", "high"),
         "/checkpoint (attribute beta0): a number expected"),
        (lambda f: _replace(f, "/checkpoint/model", _beside(f, _external_storage)),
         "/checkpoint/model: dataset stored in external file"),
        (lambda f: f.__delitem__("checkpoint"), "not a jointinv checkpoint (no /checkpoint group)"),
    ],
)  # fmt: skip
def test_resume_from_a_malformed_checkpoint(workspace, gravity, monkeypatch, mutate, message):
    from jointinv.checkpoint import checkpoint_hash, checkpoint_path

    _no_work(monkeypatch)
    out = workspace.root / "out" / "run.h5"
    ckpt = checkpoint_path(out)
    write_checkpoint(ckpt, Checkpoint(np.zeros(3), 0, 1.0, [], "hash"))
    with h5py.File(ckpt, "r+") as f:
        mutate(f)
    result = invoke("run", gravity, "-o", out, "--resume")
    assert_user_error(result, f"{ckpt}: {message}")
    assert str(SECRET) not in result.output
    assert checkpoint_hash(ckpt) is None  # batch: the checkpoint is not used


# --------------------------------------------------------------------------- literal messages
LITERAL = ":x: [bold]"  # an emoji code and rich markup (no "/": it goes in file names)


@pytest.mark.parametrize("command", ["validate", "run"])
def test_file_name_and_field_are_printed_literally(workspace, command):
    csv = workspace.data / f"gravity{LITERAL}.csv"
    (workspace.data / "gravity.csv").rename(csv)
    edit_line(csv, 5, "0.001139", LITERAL)
    config = workspace.write("gravity.yaml", override(
        gravity_only_mapping(), {"modalities.gravity.data": f"data/{csv.name}"}
    ))  # fmt: skip
    line = assert_user_error(
        invoke(command, config), f"{csv}:5: data column 'gz': '{LITERAL}' is not a number"
    )
    assert "❌" not in line


def test_missing_file_with_markup_in_its_name(workspace):
    config = workspace.write("gravity.yaml", override(
        gravity_only_mapping(), {"modalities.gravity.data": f"data/{LITERAL}.csv"}
    ))  # fmt: skip
    assert_user_error(invoke("validate", config), f"file not found: {workspace.data / LITERAL}.csv")


def _printed(write) -> str:
    import io

    from rich.console import Console

    buffer = io.StringIO()
    write(Console(file=buffer, width=300))  # a console that does parse markup
    return buffer.getvalue()


def test_batch_progress_and_summary_print_names_and_errors_literally(tmp_path):
    from jointinv.batch import BatchResult, RichProgress, summary_table

    failed = RunOutcome(f"run{LITERAL}", "failed", error=f"data{LITERAL}.csv: broken")
    done = RunOutcome("ok", "converged", chi2={f"grav{LITERAL}": 1.0}, output=tmp_path / "ok.h5")

    def progress(console) -> None:
        with RichProgress(console) as p:
            p.finished(failed)
            p.finished(done)

    text = _printed(progress)
    assert f"run{LITERAL}  data{LITERAL}.csv: broken" in text
    table = summary_table(BatchResult([failed, done], tmp_path / "summary.csv", 1.0, LITERAL))
    text = _printed(lambda console: console.print(table))
    for fragment in (f"run{LITERAL}", f"χ² grav{LITERAL}", f"jointinv batch: {LITERAL}"):
        assert fragment in text
    assert "❌" not in text


def test_iteration_printer_prints_the_output_path_literally(tmp_path):
    from types import SimpleNamespace

    from jointinv.progress import IterationPrinter

    out = tmp_path / f"run{LITERAL}.h5"
    inversion = SimpleNamespace(success=True, message=f"done {LITERAL}", nit=3)
    result = SimpleNamespace(inversion=inversion, separate={}, output=out)
    text = _printed(lambda console: IterationPrinter(console).finish(result, 1.0))
    assert f"done {LITERAL} after 3 iterations" in text
    assert f"wrote {out}" in text
    assert "❌" not in text


def test_conflict_report_prints_modality_names_literally():
    from jointinv.conflict import Analysis, ConflictReport, ModalityRow, report_tables

    row = ModalityRow(f"grav{LITERAL}", 10, 1.0, 9.0, 8.0, 1.0, 0.001, f"tension{LITERAL}")
    plain = Analysis(False, 0.05, 8.0, 1.0, 0.001, None, [], [row])
    text = _printed(lambda c: [c.print(t) for t in report_tables(ConflictReport("c", plain))])
    assert f"grav{LITERAL}" in text and f"tension{LITERAL}" in text
    assert f"CONFLICT (suspect: grav{LITERAL})" in text
    assert "❌" not in text


# --------------------------------------------------------------------------- output names
#: the one line of each: what the option writes; give a name ending in ...
VTU = "a VTK XML unstructured grid; give a name ending in .vtu"
CSV = "a CSV table; give a name ending in .csv"
HDF5 = "give a name ending in .h5 or .hdf5"
NAMES = [
    ("export {r} --vtk {d}/out.txt", f"out.txt: --vtk writes {VTU}"),
    ("export {r} --csv {d}/out.vtk", f"out.vtk: --csv writes {CSV}"),
    ("export {r} --sensors {d}/s.csv", f"s.csv: --sensors writes {VTU}"),
    ("export {r} --csv {d}/cells", f"cells: --csv writes {CSV}"),
    ("run {c} -o {d}/x.csv", f"x.csv: jointinv run writes an HDF5 result; {HDF5}"),
    ("conflict-test {c} -o {d}/r.json", f"r.json: --output writes an HDF5 report; {HDF5}"),
    ("conflict-test {c} --json {d}/r.h5", "r.h5: --json writes a JSON report; give a name ending"),
    ("show {r} --plot {d}/fig.png", "fig.png: --plot writes several PNG files into a folder; give"),
    ("show {r} --plot {r}", "hill.h5: --plot writes several files into a folder; this is a file"),
]


@pytest.mark.parametrize("command, message", NAMES, ids=[c.split(" {d}")[0] for c, _ in NAMES])
def test_output_named_for_another_format(workspace, gravity, monkeypatch, command, message):
    _no_work(monkeypatch)
    result = write_result(workspace.root / "hill.h5")
    args = command.format(r=result, c=gravity, d=workspace.root).split()
    assert_user_error(invoke(*args), message)
    assert sorted(p.name for p in workspace.root.iterdir()) == ["data", "gravity.yaml", "hill.h5"]


def test_config_output_path_named_for_another_format(workspace, monkeypatch):
    _no_work(monkeypatch)
    config = workspace.write("g.yaml", override(gravity_only_mapping(), {"output.path": "r.csv"}))
    assert_user_error(invoke("run", config), f"{workspace.root / 'r.csv'}: jointinv run writes")


def test_output_names_in_capitals_and_hdf5_are_fine(workspace, tmp_path):
    from jointinv.config import load_config
    from jointinv.runner import check_run_output

    source = write_result(tmp_path / "hill.h5")
    result = invoke("export", source, "--vtk", tmp_path / "A.VTU", "--csv", tmp_path / "A.CSV")
    assert result.exit_code == 0, result.output
    gravity = load_config(workspace.write("g.yaml", gravity_only_mapping()))
    check_run_output(gravity, workspace.root / "r.hdf5")  # no error
