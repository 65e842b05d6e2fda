"""Outputs never destroy inputs and land where they can; result files read back are
refused when they would make jointinv read other files; messages print file text
literally (issue 13)."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import h5py
import numpy as np
import pytest

from jointinv.batch import RunOutcome, write_summary
from jointinv.checkpoint import Checkpoint, write_checkpoint
from jointinv.export import export_csv, export_vtu
from jointinv.outputs import current_umask, write_text_atomic
from jointinv.results import write_atomic

from .test_export import write_result


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
