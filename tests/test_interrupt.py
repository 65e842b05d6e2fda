"""SIGINT and SIGTERM: a run, a batch and a conflict test stop at a safe point.

The commands run as subprocesses through ``tests/slow_gravity_cli.py`` (every
gravity forward call sleeps first), so that a gravity-only inversion lasts long
enough to be interrupted midway; the rest (``--resume``, the next batch) runs
in this process at full speed.
"""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

import jointinv
from jointinv import interrupt
from jointinv.batch import BatchProgress, run_batch
from jointinv.checkpoint import checkpoint_path, read_checkpoint
from jointinv.cli import app
from jointinv.interrupt import Interrupted, stop_at_safe_points

from .conftest import REPO, Workspace, gravity_only_mapping, override

SLOW_CLI = Path(__file__).with_name("slow_gravity_cli.py")
#: Longest wait (s) from the signal to the end of the process.
STOP_SECONDS = 5.0


def long_gravity_mapping() -> dict:
    """Gravity only, down to χ² 0.001: about 14 iterations, one slow forward call each."""
    raw = gravity_only_mapping()
    raw["inversion"].update(chi2_target=1e-3, stagnation_tolerance=0.0)
    raw["diagnostics"] = {"enabled": False}
    return raw


def start(workspace: Workspace, *args: object, delay: float = 0.5) -> subprocess.Popen:
    """``jointinv ARGS`` with a slow gravity engine, in ``workspace.root``.

    SIGINT is set back to its default in the child: a test run from a
    non-interactive shell in the background inherits it ignored.
    """
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
        "JOINTINV_TEST_GRAVITY_DELAY": str(delay),
        "COLUMNS": "200",
    }
    return subprocess.Popen(
        [sys.executable, str(SLOW_CLI), *map(str, args)],
        cwd=workspace.root,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )


def wait_until(ready: Callable[[], bool], proc: subprocess.Popen, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not ready():
        if proc.poll() is not None:
            raise AssertionError(f"exited early ({proc.returncode}): {proc.communicate()[1]}")
        if time.monotonic() > deadline:
            proc.kill()
            raise AssertionError(f"not ready within {timeout} s: {proc.communicate()[1]}")
        time.sleep(0.02)


def stop(proc: subprocess.Popen, signum: int) -> tuple[float, str]:
    """Send ``signum``; the seconds until the process ended and its stderr."""
    sent = time.monotonic()
    proc.send_signal(signum)
    try:
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    return time.monotonic() - sent, err


def lines_with(text: str, word: str) -> list[str]:
    return [line for line in text.splitlines() if word in line]


def models_of(path: Path) -> dict[str, np.ndarray]:
    import h5py

    from jointinv.coordinates import variables

    with h5py.File(path, "r") as f:
        return {k: d[()].ravel() for k, d in variables(f["models"]).items()}


# --------------------------------------------------------------------------- run
@pytest.mark.parametrize(
    ("signum", "code", "quiet"),
    [(signal.SIGINT, 130, False), (signal.SIGTERM, 143, True)],
    ids=["SIGINT", "SIGTERM-quiet"],
)
def test_signal_stops_a_run_at_a_safe_point_and_resume_finishes(
    workspace: Workspace, signum, code, quiet
):
    config = workspace.write("g.yaml", long_gravity_mapping())
    output = workspace.root / "out" / "g.h5"
    ckpt = checkpoint_path(output)
    args = ["run", config, "-o", output, *(["-q"] if quiet else [])]
    proc = start(workspace, *args)
    wait_until(ckpt.exists, proc)
    seconds, err = stop(proc, signum)

    assert proc.returncode == code, err
    assert seconds < STOP_SECONDS, f"took {seconds:.1f} s to stop"
    assert "Traceback" not in err
    kept = read_checkpoint(ckpt)
    name = signal.Signals(signum).name
    command = " ".join(["jointinv", *map(str, args), "--resume"])
    expected = (
        f"interrupted by {name}; checkpoint after iteration {kept.iteration} kept: {ckpt}; "
        f"resume with: {command}"
    )
    assert lines_with(err, "resume") == [expected]
    if quiet:
        assert err.strip() == expected
    assert not output.exists()
    assert [p.name for p in output.parent.iterdir()] == [ckpt.name]  # no temporary files

    resumed = CliRunner().invoke(app, ["run", str(config), "-o", str(output), "--resume"])
    assert resumed.exit_code == 0, resumed.output
    assert f"resuming after iteration {kept.iteration}" in resumed.stderr
    assert not ckpt.exists()
    plain = jointinv.run(config, write=False)
    np.testing.assert_array_equal(
        models_of(output)["density_contrast"], plain.models["density_contrast"]
    )


def test_signal_before_the_first_checkpoint_says_to_run_again(workspace: Workspace):
    config = workspace.write("g.yaml", long_gravity_mapping())
    output = workspace.root / "out" / "g.h5"
    proc = start(workspace, "run", config, "-o", output, delay=2.0)
    # β0 is logged before the first forward call, which sleeps 2 s
    wait_until(lambda: _logged(proc, "beta0 = "), proc)
    seconds, err = stop(proc, signal.SIGTERM)
    assert proc.returncode == 143, err
    assert seconds < STOP_SECONDS
    assert lines_with(err, "interrupted") == [
        "interrupted by SIGTERM; before the first iteration ended (no checkpoint); "
        f"run again with: jointinv run {config} -o {output}"
    ]
    assert not output.parent.exists() or list(output.parent.iterdir()) == []


# --------------------------------------------------------------------------- batch
def test_summary_is_written_after_every_finished_run(workspace: Workspace):
    raw = gravity_only_mapping()
    configs = [workspace.write("g1.yaml", raw), workspace.write("g2.yaml", raw)]
    out = workspace.root / "res"
    seen: list[dict[str, str]] = []

    class Peek(BatchProgress):
        def started(self, spec) -> None:
            if spec.name == "g2":  # g1 has finished
                with open(out / "summary.csv", newline="") as f:
                    seen.extend(csv.DictReader(f))

    run_batch(configs, output_dir=out, workers=1, progress=Peek())
    assert [(r["name"], r["status"]) for r in seen] == [("g1", "converged"), ("g2", "pending")]
    assert seen[0]["output"] == str(out / "g1.h5")


def test_sigint_stops_a_batch_keeps_results_and_the_next_batch_continues(workspace: Workspace):
    raw = long_gravity_mapping()
    configs = [
        workspace.write("g1.yaml", override(raw, {"inversion.max_iterations": 2})),
        workspace.write("g2.yaml", raw),
        workspace.write("g3.yaml", override(raw, {"regularization.alpha_s": 1e-2})),
    ]
    out = workspace.root / "res"
    proc = start(workspace, "batch", *configs, "--workers", "1", "-o", out, delay=0.3)
    wait_until(checkpoint_path(out / "g2.h5").exists, proc)
    seconds, err = stop(proc, signal.SIGINT)

    assert proc.returncode == 130, err
    assert seconds < STOP_SECONDS, f"took {seconds:.1f} s to stop"
    assert "Traceback" not in err
    summary = out / "summary.csv"
    command = f"jointinv batch {' '.join(map(str, configs))} --workers 1 -o {out}"
    assert lines_with(err, "resume") == [
        f"interrupted by SIGINT; runs: 1 stopped, 2 interrupted; summary: {summary}; "
        f"resume with: {command}"
    ]
    with open(summary, newline="") as f:
        rows = {r["name"]: r for r in csv.DictReader(f)}
    assert [rows[n]["status"] for n in ("g1", "g2", "g3")] == ["stopped"] + ["interrupted"] * 2
    assert f"kept: {checkpoint_path(out / 'g2.h5')}" in rows["g2"]["error"]
    assert rows["g3"]["error"] == "interrupted by SIGINT; not started"
    assert sorted(p.name for p in out.iterdir()) == ["g1.h5", "g2.checkpoint.h5", "summary.csv"]

    again = run_batch(configs, output_dir=out, workers=1)
    assert [o.status for o in again.outcomes] == ["skipped", "converged", "converged"]
    assert not checkpoint_path(out / "g2.h5").exists()


# --------------------------------------------------------------------------- conflict test
def test_signal_stops_a_conflict_test(workspace: Workspace):
    from .test_conflict import two_gravity_mapping

    config = workspace.write("two.yaml", two_gravity_mapping("data/gravity.csv"))
    report = workspace.root / "report.json"
    proc = start(workspace, "conflict-test", config, "--json", report)
    wait_until(lambda: _logged(proc, "beta0 = "), proc)
    seconds, err = stop(proc, signal.SIGINT)
    assert proc.returncode == 130, err
    assert seconds < STOP_SECONDS
    assert lines_with(err, "interrupted") == [
        f"interrupted by SIGINT; run again with: jointinv conflict-test {config} --json {report}"
    ]
    assert not report.exists()


def _logged(proc: subprocess.Popen, word: str) -> bool:
    """Read stderr up to a line with ``word`` (blocks until one comes or the stream ends)."""
    for line in proc.stderr:
        if word in line:
            return True
    return False


# --------------------------------------------------------------------------- the flag
def test_signal_sets_the_flag_and_the_handlers_are_restored():
    before = {s: signal.getsignal(s) for s in interrupt.SIGNALS}
    with stop_at_safe_points():
        interrupt.check()  # nothing arrived yet
        os.kill(os.getpid(), signal.SIGTERM)
        with pytest.raises(Interrupted) as info:
            interrupt.check()
        assert info.value.exit_code == 143
        assert not isinstance(info.value, Exception)  # passes `except Exception`
    assert {s: signal.getsignal(s) for s in interrupt.SIGNALS} == before
    interrupt.check()  # outside: never raises


def test_an_ignored_sigint_stays_ignored():
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        with stop_at_safe_points():
            assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
            assert signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL
    finally:
        signal.signal(signal.SIGINT, previous)


def test_a_second_signal_aborts_at_once():
    code = (
        "import os, signal, time\n"
        "from jointinv.interrupt import stop_at_safe_points\n"
        "with stop_at_safe_points():\n"
        "    os.kill(os.getpid(), signal.SIGINT)\n"
        "    os.kill(os.getpid(), signal.SIGINT)\n"
        "    time.sleep(30)\n"
    )
    started = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=30,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    assert proc.returncode == -signal.SIGINT, proc.stderr
    assert time.monotonic() - started < STOP_SECONDS
    assert "SIGINT again: aborted" in proc.stderr


def _loop_at_safe_points(seconds: float) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        interrupt.check()
        time.sleep(0.01)


def test_wait_for_stops_the_workers_of_a_pool():
    with stop_at_safe_points(), ProcessPoolExecutor(2) as pool:
        futures = [pool.submit(_loop_at_safe_points, 60) for _ in range(2)]
        while not all(f.running() for f in futures):
            time.sleep(0.01)
        started = time.monotonic()
        os.kill(os.getpid(), signal.SIGTERM)
        with pytest.raises(Interrupted):
            interrupt.wait_for(futures, pool)
    assert time.monotonic() - started < STOP_SECONDS


def test_signal_in_the_pass_with_biases_keeps_the_plain_report(workspace: Workspace):
    """A conflict test interrupted after its plain pass leaves that pass's report,
    marked complete: false, and says so in its one line."""
    import json

    from .test_conflict import two_gravity_mapping

    raw = two_gravity_mapping("data/gravity.csv", biases={"gravity_b": ["offset"]})
    config = workspace.write("two.yaml", raw)
    report = workspace.root / "report.json"
    proc = start(workspace, "conflict-test", config, "--json", report)
    wait_until(lambda: _logged(proc, "report of the plain pass written"), proc)
    seconds, err = stop(proc, signal.SIGINT)
    assert proc.returncode == 130, err
    assert seconds < STOP_SECONDS
    assert lines_with(err, "interrupted") == [
        f"interrupted by SIGINT; report of the plain pass kept (complete: false): {report}; "
        f"run again with: jointinv conflict-test {config} --json {report}"
    ]
    kept = json.loads(report.read_text())
    assert kept["complete"] is False and kept["augmented"] is None
    assert np.isfinite(kept["plain"]["statistic"]) and kept["plain"]["rows"]
