"""``jointinv batch``: inputs and sweeps, the pool, Dask, failure isolation, skipping."""

from __future__ import annotations

import csv
import multiprocessing
import re
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import h5py
import numpy as np
import pytest
from typer.testing import CliRunner

import jointinv
from jointinv.batch import (
    _init_pool_worker,
    execute_run,
    expand_inputs,
    expand_sweep,
    run_batch,
    thread_budget,
    thread_report,
    threads_per_worker,
)
from jointinv.checkpoint import checkpoint_path, config_hash
from jointinv.cli import app
from jointinv.config import load_config
from jointinv.coordinates import variables
from jointinv.errors import UserInputError

from .conftest import Workspace, gravity_only_mapping, override, quickstart_mapping
from .test_checkpoint import Interrupt, interrupt_after, open_every_hdf5

runner = CliRunner()


def assert_user_error(result, *fragments: str) -> str:
    assert result.exit_code == 2, result.output
    line = result.stderr.strip()
    assert "\n" not in line and line.startswith("error: "), line
    for fragment in fragments:
        assert fragment in line, f"{fragment!r} not in {line!r}"
    return line


def gravity_variants(workspace: Workspace) -> list[Path]:
    """Two valid gravity-only configs and one with an invalid value."""
    raw = gravity_only_mapping()
    return [
        workspace.write("g1.yaml", raw),
        workspace.write("g2.yaml", override(raw, {"regularization.alpha_s": 1e-2})),
        workspace.write("broken.yaml", override(raw, {"modalities.gravity.error.absolute": -1})),
    ]


def read_summary(path: Path) -> dict[str, dict[str, str]]:
    with open(path, newline="") as f:
        return {row["name"]: row for row in csv.DictReader(f)}


def models_of(path: Path) -> dict[str, np.ndarray]:
    with h5py.File(path, "r") as f:
        return {k: d[()] for k, d in variables(f["models"]).items()}


# --------------------------------------------------------------------------- sweeps


SWEEP = """\
base: g.yaml
name: weights
set:
  inversion.max_iterations: 5
grid:
  coupling.0.weight: [1.0e+2, 1.0e+3, 1.0e+4]
  inversion.beta.initial: [10.0, 100.0]
"""


def test_sweep_expands_to_every_combination(workspace: Workspace):
    workspace.write("g.yaml", quickstart_mapping())
    specs = expand_sweep(workspace.text("sweep.yaml", SWEEP))
    assert [s.name for s in specs] == [f"weights-{i:03d}" for i in range(1, 7)]
    got = [
        (s.loaded.config.coupling[0].weight, s.loaded.config.inversion.beta.initial) for s in specs
    ]
    assert got == [(w, b) for w in (1e2, 1e3, 1e4) for b in (10.0, 100.0)]
    for s in specs:
        assert s.loaded.config.inversion.max_iterations == 5
        assert s.loaded.config.coupling[1].weight is None  # untouched: derived
        assert s.overrides["inversion.max_iterations"] == 5
        assert not s.error
        assert s.loaded.resolve("data/gravity.csv") == workspace.data / "gravity.csv"
        assert s.config_hash == config_hash(s.loaded)
    assert len({s.config_hash for s in specs}) == 6
    assert "coupling.0.weight = 100.0" in specs[0].loaded.text


def test_sweep_runs_have_their_own_outputs(workspace: Workspace):
    workspace.write("g.yaml", quickstart_mapping())
    sweep = workspace.text("sweep.yaml", SWEEP)
    specs = expand_inputs([sweep, workspace.root / "g.yaml"], workspace.root / "res")
    assert [s.output.name for s in specs] == [f"weights-{i:03d}.h5" for i in range(1, 7)] + ["g.h5"]


@pytest.mark.parametrize(
    ("grid", "fragments"),
    [
        (
            "regularization.beta0: [1, 2]",
            ["sweep.yaml: grid: regularization.beta0 = 1: unknown key", "alpha_s"],
        ),
        (
            "inversion.beta.initial: [1.0, -2.0]",
            ["sweep.yaml: grid: inversion.beta.initial = -2.0: must be > 0"],
        ),
        ("coupling.7.weight: [1.0]", ["sweep.yaml: grid: coupling.7.weight:", "list of 3 entries"]),
        ("inversion.seed: 3", ["sweep.yaml: grid: inversion.seed: give a non-empty list"]),
    ],
)
def test_bad_override_is_one_line_and_nothing_runs(workspace: Workspace, grid, fragments):
    workspace.write("g.yaml", quickstart_mapping())
    sweep = workspace.text("sweep.yaml", f"base: g.yaml\ngrid:\n  {grid}\n")
    out = workspace.root / "res"
    result = runner.invoke(app, ["batch", str(sweep), "-o", str(out)])
    assert_user_error(result, *fragments)
    assert not out.exists()


def test_bad_sweep_keys(workspace: Workspace):
    workspace.write("g.yaml", quickstart_mapping())
    sweep = workspace.text("sweep.yaml", "base: g.yaml\ngrdi:\n  inversion.seed: [1]\n")
    with pytest.raises(UserInputError, match=re.escape("sweep.yaml: grdi: unknown key")):
        expand_sweep(sweep)
    sweep = workspace.text("sweep.yaml", "base: nothere.yaml\ngrid:\n  inversion.seed: [1]\n")
    with pytest.raises(UserInputError, match=re.escape("sweep.yaml: base: nothere.yaml:")):
        expand_sweep(sweep)


def test_missing_input_is_a_usage_error(workspace: Workspace):
    result = runner.invoke(app, ["batch", str(workspace.root / "none*.yaml")])
    assert_user_error(result, "no file matches")
    result = runner.invoke(app, ["batch", str(workspace.root / "none.yaml")])
    assert_user_error(result, "no such config or sweep file")


def test_workers_and_dask_together_are_a_usage_error(workspace: Workspace):
    config = workspace.write("g.yaml", gravity_only_mapping())
    result = runner.invoke(app, ["batch", str(config), "--workers", "2", "--dask-local", "2"])
    assert_user_error(result, "--workers is for the local pool")


def test_help_documents_exit_code_4():
    result = runner.invoke(app, ["batch", "--help"])
    assert result.exit_code == 0
    assert "4 at least one run failed" in " ".join(result.stdout.split())
    assert "4 batch in which a run failed" in " ".join(
        runner.invoke(app, ["--help"]).stdout.split()
    )


# --------------------------------------------------------------------------- threads


def test_thread_rule():
    assert threads_per_worker(2, cores=2) == 1
    assert threads_per_worker(1, cores=2) == 2
    assert threads_per_worker(3, cores=8) == 2
    assert threads_per_worker(4, cores=2) == 1


def _probe_threads(config: Path, threads: int) -> dict:
    """In a pool worker: what pyGIMLi, BLAS and the ERT solver report."""
    from jointinv.batch import capped
    from jointinv.problem import build_problem

    with thread_budget(threads):
        problem = build_problem(capped(load_config(config), threads))
        report = thread_report()
        ert = problem.objective.misfits[0].operator.simulation
        report["ert_core"] = ert._fop._core.threadCount()
    return report


def test_workers_honour_the_thread_budget(workspace: Workspace):
    """Read back every thread count inside a pool worker (ERT configured with 2 threads)."""
    raw = quickstart_mapping()
    raw["modalities"] = {"ert": raw["modalities"]["ert"]}
    raw["properties"] = {"resistivity": raw["properties"]["resistivity"]}
    raw["coupling"] = []
    raw["regularization"]["property_weights"] = {}
    config = workspace.write("ert.yaml", raw)
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(
        1, mp_context=context, initializer=_init_pool_worker, initargs=(1,)
    ) as pool:
        report = pool.submit(_probe_threads, config, 1).result()
    assert report["pygimli"] == 1
    assert report["ert_core"] == 1
    assert set(report["libraries"].values()) == {1}, report
    assert set(report["environment"].values()) == {"1"}


def ert_only_mapping() -> dict:
    """The quick start's ERT alone (configured with 2 solver threads)."""
    raw = quickstart_mapping()
    raw["modalities"] = {"ert": raw["modalities"]["ert"]}
    raw["modalities"]["ert"]["options"]["threads"] = 2
    raw["properties"] = {"resistivity": raw["properties"]["resistivity"]}
    raw["coupling"] = []
    raw["regularization"]["property_weights"] = {}
    raw["inversion"]["max_iterations"] = 2
    return raw


def _ert_run(config: Path, threads: int) -> dict:
    """In a fresh worker with ``threads`` threads, as the batch runs it (ERT capped)."""
    from jointinv.batch import capped

    with thread_budget(threads):
        result = jointinv.run(capped(load_config(config), threads), write=False, diagnostics=False)
        pygimli_threads = thread_report()["pygimli"]
    ert = result.problem.objective.misfits[0].operator.simulation
    return {
        "ert_core": ert._fop._core.threadCount(),
        "pygimli": pygimli_threads,
        "iterations": result.inversion.nit,
        "rhoa": ert._rhoa,  # of the last model the engine saw
        "jacobian": np.array(ert._jacobian),
        **result.models,
    }


def test_ert_gives_the_same_model_with_1_and_2_threads(workspace: Workspace):
    """The thread cap (2 ERT threads alone, 1 in a 2-worker pool) leaves every bit unchanged.

    Each thread count runs in its own fresh process, set up as a pool worker.
    """
    config = workspace.write("ert.yaml", ert_only_mapping())
    context = multiprocessing.get_context("spawn")
    out = {}
    pools = {
        t: ProcessPoolExecutor(1, mp_context=context, initializer=_init_pool_worker, initargs=(t,))
        for t in (1, 2)
    }
    try:
        futures = {t: pool.submit(_ert_run, config, t) for t, pool in pools.items()}
        out = {t: f.result() for t, f in futures.items()}
    finally:
        for pool in pools.values():
            pool.shutdown()
    one, two = out[1], out[2]
    assert (one["ert_core"], one["pygimli"]) == (1, 1)
    assert (two["ert_core"], two["pygimli"]) == (2, 2)
    assert one["iterations"] == two["iterations"] >= 1
    for key in ("rhoa", "jacobian", "resistivity"):
        assert one[key].tobytes() == two[key].tobytes(), key


# --------------------------------------------------------------------------- the pool


def test_batch_of_three_one_broken_then_rerun_skips(workspace: Workspace):
    configs = gravity_variants(workspace)
    out = workspace.root / "res"
    args = ["batch", *map(str, configs), "--workers", "2", "-o", str(out)]
    result = runner.invoke(app, args)
    assert result.exit_code == 4, result.output
    rows = read_summary(out / "summary.csv")
    assert [rows[n]["status"] for n in ("g1", "g2", "broken")] == ["converged"] * 2 + ["failed"]
    assert "broken.yaml: modalities.gravity.error.absolute: must be >= 0" in rows["broken"]["error"]
    assert rows["broken"]["output"] == ""
    for name in ("g1", "g2"):
        assert float(rows[name]["chi2_gravity"]) <= 1.2  # inside the default chi2_band
        assert int(rows[name]["iterations"]) >= 1
        assert float(rows[name]["wall_time_s"]) > 0
        assert rows[name]["output"] == str(out / f"{name}.h5")
        assert rows[name]["threads"] == str(threads_per_worker(2))
    assert sorted(p.name for p in out.glob("*.h5")) == ["g1.h5", "g2.h5"]
    assert "summary.csv" in result.stdout
    mtimes = {p: p.stat().st_mtime_ns for p in out.glob("*.h5")}

    again = runner.invoke(app, args)
    assert again.exit_code == 4, again.output
    rows = read_summary(out / "summary.csv")
    assert [rows[n]["status"] for n in ("g1", "g2", "broken")] == ["skipped"] * 2 + ["failed"]
    assert rows["g1"]["chi2_gravity"] != ""
    assert {p: p.stat().st_mtime_ns for p in out.glob("*.h5")} == mtimes

    forced = run_batch(configs[:1], output_dir=out, workers=1, rerun=True)
    assert [o.status for o in forced.outcomes] == ["converged"]
    assert forced.exit_code == 0
    open_every_hdf5(out)


def test_changed_config_is_run_again(workspace: Workspace):
    raw = gravity_only_mapping()
    config = workspace.write("g.yaml", raw)
    out = workspace.root / "res"
    first = run_batch([config], output_dir=out, workers=1)
    assert [o.status for o in first.outcomes] == ["converged"]
    workspace.write("g.yaml", override(raw, {"regularization.alpha_s": 1e-2}))
    second = run_batch([config], output_dir=out, workers=1)
    assert [o.status for o in second.outcomes] == ["converged"]


def test_a_failing_run_is_recorded_not_raised(workspace: Workspace):
    """A run that fails inside the worker (here: its data vanished) is an outcome."""
    config = workspace.write("g.yaml", gravity_only_mapping())
    [spec] = expand_inputs([config], workspace.root / "res")
    (workspace.data / "gravity.csv").unlink()
    outcome = execute_run(spec, 1)
    assert outcome.status == "failed"
    assert "modalities.gravity.data: file not found" in outcome.error
    assert outcome.output is None


def test_batch_continues_an_interrupted_run(workspace: Workspace):
    config = workspace.write("g.yaml", gravity_only_mapping())
    out = workspace.root / "res"
    with pytest.raises(Interrupt):
        jointinv.run(config, output=out / "g.h5", on_iteration=interrupt_after(1))
    assert checkpoint_path(out / "g.h5").exists()
    result = run_batch([config], output_dir=out, workers=1)
    assert [o.status for o in result.outcomes] == ["converged"]
    assert not checkpoint_path(out / "g.h5").exists()
    plain = jointinv.run(config, write=False)
    saved = models_of(out / "g.h5")
    np.testing.assert_array_equal(
        saved["density_contrast"].ravel(), plain.models["density_contrast"]
    )


# --------------------------------------------------------------------------- Dask


def test_dask_local_cluster_gives_the_pool_models(workspace: Workspace):
    """Plain run, pool and Dask LocalCluster (2 worker processes): identical arrays."""
    configs = gravity_variants(workspace)[:2]
    pool = run_batch(configs, output_dir=workspace.root / "pool", workers=2)
    dask = run_batch(configs, output_dir=workspace.root / "dask", dask_local=2)
    assert dask.backend.startswith("dask (tcp://")
    assert (
        [o.status for o in dask.outcomes] == [o.status for o in pool.outcomes] == ["converged"] * 2
    )
    for config, p, d in zip(configs, pool.outcomes, dask.outcomes):
        a, b = models_of(p.output), models_of(d.output)
        plain = jointinv.run(config, write=False).models
        for name in plain:
            np.testing.assert_array_equal(a[name], b[name])
            np.testing.assert_array_equal(a[name].ravel(), plain[name])
        assert d.threads == threads_per_worker(2)
