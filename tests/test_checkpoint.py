"""Checkpoints, ``--resume`` and the config hash (jointinv.checkpoint, jointinv.runner)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pytest
from threadpoolctl import threadpool_limits
from typer.testing import CliRunner

import jointinv
from jointinv.checkpoint import (
    checkpoint_path,
    config_hash,
    read_checkpoint,
    result_hash,
)
from jointinv.cli import app
from jointinv.config import load_config
from jointinv.errors import UserInputError

from .conftest import Workspace, gravity_only_mapping, override, quickstart_mapping

JOINTINV = Path(sys.executable).parent / "jointinv"



def two_gravity_mapping() -> dict[str, Any]:
    """Gravity twice (different errors) with misfit balancing: fast, and stateful weights."""
    raw = gravity_only_mapping()
    raw["modalities"]["gravity2"] = {
        **raw["modalities"]["gravity"],
        "error": {"absolute": 0.0015},
    }
    raw["modalities"]["gravity"]["chi2_target"] = 3.0
    raw["inversion"].update(
        max_iterations=6, chi2_target=0.5, stagnation_tolerance=0.0, balancing={"enabled": True}
    )
    return raw


def ert_gravity_mapping() -> dict[str, Any]:
    """ERT and gravity on a mesh with little padding: 4 iterations of about 2 s."""
    raw = quickstart_mapping()
    raw["properties"] = {k: raw["properties"][k] for k in ("resistivity", "density_contrast")}
    raw["modalities"] = {k: raw["modalities"][k] for k in ("ert", "gravity")}
    raw["coupling"] = [
        c for c in raw["coupling"] if set(c["properties"]) == {"resistivity", "density_contrast"}
    ]
    raw["mesh"]["padding"] = {"n_x": 6, "n_z": 6, "factor": 1.5}
    raw["inversion"].update(max_iterations=4, chi2_target=0.1, stagnation_tolerance=0.0)
    raw["output"]["path"] = "out/ert_gravity.h5"
    return raw


class Interrupt(Exception):
    pass


def interrupt_after(iteration: int):
    def callback(record) -> None:
        if record.iteration == iteration:
            raise Interrupt

    return callback


def relative_difference(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> float:
    assert a.keys() == b.keys()
    return max(float(np.max(np.abs(a[k] - b[k])) / np.max(np.abs(b[k]))) for k in a)


def open_every_hdf5(root: Path, *, temporaries: bool = False) -> list[Path]:
    """Every file under ``root`` that is not a config or data file must be a readable HDF5.

    With ``temporaries``, hidden temporary files of an interrupted atomic write
    are passed over (they are never renamed into place).
    """
    opened = []
    for path in sorted(root.rglob("*")):
        if path.is_dir() or path.parent.name == "data" or path.suffix in (".yaml", ".csv"):
            continue
        if path.name.endswith(".tmp"):
            assert temporaries and path.name.startswith("."), f"temporary file left: {path}"
            continue
        with h5py.File(path, "r") as f:
            assert len(f.keys()) > 0, path
        opened.append(path)
    return opened


# --------------------------------------------------------------------------- config hash


def test_config_hash_ignores_output_and_threads(workspace: Workspace):
    raw = gravity_only_mapping()
    a = load_config(workspace.write("a.yaml", raw))
    b = load_config(workspace.write("b.yaml", override(raw, {"output.path": "elsewhere.h5"})))
    assert config_hash(a) == config_hash(b)
    raw_ert = quickstart_mapping()
    c = load_config(workspace.write("c.yaml", raw_ert))
    d = load_config(
        workspace.write("d.yaml", override(raw_ert, {"modalities.ert.options.threads": 1}))
    )
    assert config_hash(c) == config_hash(d)


def test_config_hash_changes_with_values_and_data(workspace: Workspace):
    raw = gravity_only_mapping()
    path = workspace.write("a.yaml", raw)
    before = config_hash(load_config(path))
    other = workspace.write("b.yaml", override(raw, {"inversion.seed": 1}))
    assert config_hash(load_config(other)) != before
    csv = workspace.data / "gravity.csv"
    csv.write_text(csv.read_text() + "\n")
    assert config_hash(load_config(path)) != before


# --------------------------------------------------------------------------- checkpoints


def test_checkpoint_after_every_iteration_and_removed_at_the_end(workspace: Workspace):
    config = workspace.write("g.yaml", gravity_only_mapping())
    output = workspace.root / "out" / "g.h5"
    seen = []

    def look(record) -> None:
        ckpt = read_checkpoint(checkpoint_path(output))
        seen.append(ckpt.iteration)
        assert ckpt.records[-1] == record

    result = jointinv.run(config, output=output, on_iteration=look)
    assert seen == list(range(result.inversion.nit + 1))
    assert not checkpoint_path(output).exists()
    assert result_hash(output) == config_hash(load_config(config))
    assert open_every_hdf5(workspace.root) == [output]


def test_resume_gives_the_uninterrupted_model(workspace: Workspace):
    """With balancing on, the weights are state that the resumed run must restore."""
    config = workspace.write("g2.yaml", two_gravity_mapping())
    out = workspace.root / "out"
    with pytest.raises(Interrupt):
        jointinv.run(config, output=out / "a.h5", on_iteration=interrupt_after(2))
    assert read_checkpoint(checkpoint_path(out / "a.h5")).iteration == 2
    resumed = jointinv.run(config, output=out / "a.h5", resume=True)
    plain = jointinv.run(config, output=out / "b.h5")
    assert resumed.inversion.nit == plain.inversion.nit == 6
    weights = [r.weights["gravity"] for r in plain.inversion.iterations]
    assert len(set(weights)) > 2, "balancing did not change the weights"
    assert relative_difference(resumed.models, plain.models) == 0.0
    a, b = jointinv.read_result(out / "a.h5"), jointinv.read_result(out / "b.h5")
    for key in b.iterations:
        if not key.startswith("seconds"):
            np.testing.assert_array_equal(a.iterations[key], b.iterations[key], err_msg=key)
    assert open_every_hdf5(workspace.root) == [out / "a.h5", out / "b.h5"]


def test_resume_at_the_last_iteration_writes_the_result(workspace: Workspace):
    config = workspace.write("g.yaml", gravity_only_mapping())
    output = workspace.root / "out" / "g.h5"
    plain = jointinv.run(config, output=output)
    last = plain.inversion.nit
    output.unlink()
    with pytest.raises(Interrupt):
        jointinv.run(config, output=output, on_iteration=interrupt_after(last))
    resumed = jointinv.run(config, output=output, resume=True)
    assert resumed.inversion.nit == last
    assert resumed.inversion.message == plain.inversion.message
    assert relative_difference(resumed.models, plain.models) == 0.0


def test_resume_refuses_a_checkpoint_of_another_config(workspace: Workspace):
    raw = gravity_only_mapping()
    config = workspace.write("g.yaml", raw)
    output = workspace.root / "out" / "g.h5"
    with pytest.raises(Interrupt):
        jointinv.run(config, output=output, on_iteration=interrupt_after(1))
    workspace.write("g.yaml", override(raw, {"regularization.alpha_s": 0.01}))
    msg = f"{checkpoint_path(output)}: checkpoint was made from a different config or data"
    with pytest.raises(UserInputError, match=re.escape(msg)):
        jointinv.run(config, output=output, resume=True)
    result = CliRunner().invoke(app, ["run", str(config), "-o", str(output), "--resume"])
    assert result.exit_code == 2, result.output
    line = result.stderr.strip()
    assert "\n" not in line and line.startswith("error: "), line
    assert "different config" in line
    assert not output.exists()


def test_resume_without_checkpoint_starts_from_the_beginning(workspace: Workspace):
    config = workspace.write("g.yaml", gravity_only_mapping())
    result = jointinv.run(config, output=workspace.root / "g.h5", resume=True)
    assert result.inversion.iterations[0].iteration == 0


_RUN_WITH_BLAS_THREADS = """
import sys
import numpy as np
from threadpoolctl import threadpool_limits
import jointinv
with threadpool_limits(limits=int(sys.argv[2]), user_api="blas"):
    models = jointinv.run(sys.argv[1], write=False, diagnostics=False).models
np.savez(sys.argv[3], **models)
"""


def test_blas_threads_do_not_change_the_model(workspace: Workspace):
    """Multithreaded BLAS changes Jᵀw at round-off; the inversion pins one BLAS thread.

    Each run is a fresh process, so no thread state left by other tests (pyGIMLi's
    global thread count, OpenMP pools) leaks into the comparison.
    """
    config = workspace.write(
        "eg.yaml", override(ert_gravity_mapping(), {"inversion.max_iterations": 2})
    )
    models = []
    for threads in (1, 2):
        out = workspace.root / f"models_{threads}.npz"
        subprocess.run(
            [sys.executable, "-c", _RUN_WITH_BLAS_THREADS, str(config), str(threads), str(out)],
            check=True,
            capture_output=True,
            timeout=300,
        )
        with np.load(out) as f:
            models.append({k: f[k] for k in f.files})
    assert relative_difference(models[0], models[1]) == 0.0


# --------------------------------------------------------------------------- SIGKILL


def _checkpoint_iteration(path: Path) -> int:
    try:
        with h5py.File(path, "r") as f:
            return int(f["checkpoint"].attrs["iteration"])
    except (OSError, KeyError):
        return -1


def test_sigkill_then_resume_gives_the_uninterrupted_model(workspace: Workspace):
    """``jointinv run`` killed with SIGKILL after its second checkpoint; ``--resume`` finishes.

    The subprocess uses 2 BLAS threads and 2 ERT threads, the reference run one
    of each: the models must still be identical.
    """
    config = workspace.write("eg.yaml", ert_gravity_mapping())
    output = workspace.root / "out" / "ert_gravity.h5"
    ckpt = checkpoint_path(output)
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "2", "OMP_NUM_THREADS": "2"}
    proc = subprocess.Popen(
        [str(JOINTINV), "run", str(config), "-q"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 120
        while _checkpoint_iteration(ckpt) < 2:
            assert proc.poll() is None, proc.stderr.read().decode()
            assert time.monotonic() < deadline, "no second checkpoint within 120 s"
            time.sleep(0.02)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stderr.close()
    assert proc.returncode == -signal.SIGKILL
    assert not output.exists(), "the run finished before it was killed"
    killed_at = _checkpoint_iteration(ckpt)
    assert 2 <= killed_at < 4
    assert open_every_hdf5(workspace.root, temporaries=True) == [ckpt]

    resumed = subprocess.run(
        [str(JOINTINV), "run", str(config), "--resume"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert resumed.returncode == 0, resumed.stderr
    assert f"resuming after iteration {killed_at}" in resumed.stderr
    assert not ckpt.exists()

    loaded = load_config(config)
    loaded.config.modalities["ert"].options.threads = 1
    with threadpool_limits(limits=1):
        reference = jointinv.run(loaded, write=False)
    saved = jointinv.read_result(output)
    assert saved.meta["iterations"] == reference.inversion.nit == 4
    models = {k: saved.models[k] for k in reference.models}
    difference = relative_difference(models, reference.models)
    print(f"SIGKILL at iteration {killed_at}; resumed vs uninterrupted: {difference:.3g}")
    assert difference <= 1e-10
    assert difference == 0.0  # measured: bitwise identical
    assert open_every_hdf5(workspace.root) == [output]
