"""Many runs at once: config files, globs and sweeps, on a process pool or Dask.

``jointinv batch`` (and :func:`run_batch`) expand the inputs into runs, validate
every one before anything starts, skip the runs whose result is already
complete and made from the same config, and run the others on

* a local process pool (:class:`concurrent.futures.ProcessPoolExecutor`,
  ``spawn`` start method), or
* a ``dask.distributed`` cluster (an existing scheduler, or a ``LocalCluster``).

Each run writes ``<output_dir>/<name>.h5`` (and its checkpoint while it runs);
``summary.csv`` lists every run, and is rewritten (atomically) after every run
that finishes, so a batch that is killed leaves one. A run that fails is
recorded with its reason and the others finish.

SIGINT or SIGTERM (under ``jointinv batch``) stops the batch: no new run
starts, the running ones stop at a safe point (their checkpoints are kept),
finished results stay, and ``summary.csv`` marks the stopped runs
``interrupted``; the same command continues them.

Thread rule: a worker may use ``max(1, cores // workers)`` threads (``cores``:
the CPUs this process may run on; on Dask, per host, divided by the worker
threads on that host). The rule is applied to OpenMP and every BLAS
(environment and ``threadpoolctl``), to pyGIMLi's global thread count and to
the ERT solver (``modalities.<ert>.options.threads`` is capped, never raised).
None of these change the numbers: the inversion itself runs its BLAS calls on
one thread (see :mod:`jointinv.runner`), so a run gives the same model arrays
alone, in the pool and on Dask.

Sweep file (YAML)::

    base: quickstart.yaml          # the config the runs start from (relative to this file)
    name: weights                  # prefix of the run names (default: the file's stem)
    set:                           # overrides applied to every run (optional)
      inversion.max_iterations: 10
    grid:                          # one run per combination (last key varies fastest)
      coupling.0.weight: [1.0e+2, 1.0e+3, 1.0e+4]
      inversion.beta.initial: [10.0, 100.0]

Keys are dotted paths into the config (list entries by index); each run's
config is validated by the schema, and a bad path or value stops the batch
before anything starts, with one line naming the sweep file and the override.
"""

from __future__ import annotations

import csv
import glob
import itertools
import logging
import multiprocessing
import os
import re
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from . import interrupt
from .checkpoint import (
    checkpoint_hash,
    checkpoint_path,
    config_hash,
    read_result_summary,
    result_hash,
)
from .config import LoadedConfig, load_config, read_yaml
from .errors import ConfigError, UserInputError
from .outputs import atomic_path, check_writable_location, config_inputs, refuse_inputs
from .overrides import apply_overrides, show_value

log = logging.getLogger(__name__)

#: Environment variables that set the threads of OpenMP, the BLAS libraries and pyGIMLi.
THREAD_VARIABLES = (
    "OMP_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "MKL_NUM_THREADS",
    "BLIS_NUM_THREADS",
    "VECLIB_MAXIMUM_THREADS",
    "NUMEXPR_NUM_THREADS",
    "GIMLI_NUM_THREADS",
    "BERT_NUM_THREADS",
)

SWEEP_KEYS = ("base", "name", "set", "grid")

#: Exit code of ``jointinv batch`` when at least one run failed.
EXIT_RUN_FAILED = 4

#: Seconds between looks at the interrupt flag while waiting for runs.
POLL_SECONDS = 0.2


# --- runs and outcomes ---------------------------------------------------------
@dataclass
class RunSpec:
    """One run of a batch.

    Attributes
    ----------
    name : str
        Unique within the batch; the result is ``<output_dir>/<name>.h5``.
    source : str
        The config file, or ``<sweep file>[<index>]``.
    output : Path
    loaded : LoadedConfig or None
        None when the config is invalid (see ``error``).
    overrides : dict
        Dotted path -> value, for runs of a sweep.
    config_hash : str
    error : str
        Why the run cannot start (it is then recorded as failed).
    """

    name: str
    source: str
    output: Path
    loaded: LoadedConfig | None = None
    overrides: dict[str, Any] = field(default_factory=dict)
    config_hash: str = ""
    error: str = ""


@dataclass
class RunOutcome:
    """What became of one run.

    Attributes
    ----------
    status : str
        ``converged`` (every χ² target reached), ``stopped`` (result written,
        targets not reached: see ``stop_reason``), ``skipped`` (a complete
        result of the same config existed), ``failed`` (no result; see ``error``),
        ``interrupted`` (stopped by SIGINT or SIGTERM, or never started because
        of one; its checkpoint is kept and the same batch command continues it)
        or, in a ``summary.csv`` written while the batch runs, ``pending``.
    chi2 : dict
        Final χ² per modality.
    iterations : int or None
    seconds : float
        Wall time of the run (0 for skipped runs).
    threads : int
        Threads the run was allowed (0 when it did not run).
    """

    name: str
    status: str
    source: str = ""
    output: Path | None = None
    chi2: dict[str, float] = field(default_factory=dict)
    iterations: int | None = None
    seconds: float = 0.0
    error: str = ""
    stop_reason: str = ""
    overrides: dict[str, Any] = field(default_factory=dict)
    threads: int = 0

    @property
    def failed(self) -> bool:
        return self.status == "failed"


@dataclass
class BatchResult:
    """What :func:`run_batch` returns.

    Attributes
    ----------
    outcomes : list of RunOutcome
        In the order of the inputs.
    summary : Path
        The ``summary.csv`` written.
    seconds : float
        Wall time of the whole batch.
    backend : str
        ``pool (N workers)`` or ``dask (<scheduler address>)``.
    """

    outcomes: list[RunOutcome]
    summary: Path
    seconds: float
    backend: str

    @property
    def failed(self) -> list[RunOutcome]:
        return [o for o in self.outcomes if o.failed]

    @property
    def exit_code(self) -> int:
        return EXIT_RUN_FAILED if self.failed else 0


# --- inputs --------------------------------------------------------------------
def expand_inputs(inputs: list[str | Path], output_dir: str | Path) -> list[RunSpec]:
    """Turn config files, globs and sweep files into validated runs.

    A config file that is invalid (or whose data are) becomes a run that is
    recorded as failed. A sweep file with a bad override, an input that names
    no file, or a glob that matches none raise :class:`UserInputError`.
    """
    output_dir = Path(output_dir).expanduser().resolve()
    files = _input_files(inputs)
    specs: list[RunSpec] = []
    for path in files:
        raw = _read_yaml_quietly(path)
        if isinstance(raw, dict) and ("grid" in raw or "base" in raw):
            specs.extend(expand_sweep(path, raw))
        else:
            specs.append(_config_run(path))
    _unique_names(specs)
    for spec in specs:
        spec.output = output_dir / f"{spec.name}.h5"
    return specs


def _input_files(inputs: list[str | Path]) -> list[Path]:
    files: list[Path] = []
    for item in inputs:
        text = str(item)
        if glob.has_magic(text):
            matches = sorted(Path(p) for p in glob.glob(os.path.expanduser(text)))
            matches = [p for p in matches if p.is_file()]
            if not matches:
                raise UserInputError(f"{text}: no file matches this pattern")
        else:
            path = Path(text).expanduser()
            if not path.is_file():
                raise UserInputError(f"{text}: no such config or sweep file")
            matches = [path]
        for p in matches:
            p = p.resolve()
            if p not in files:
                files.append(p)
    if not files:
        raise UserInputError("no inputs: give config files, globs or sweep files")
    return files


def _read_yaml_quietly(path: Path) -> Any:
    try:
        return read_yaml(path)[1]
    except ConfigError:
        return None  # reported by load_config


def _config_run(path: Path) -> RunSpec:
    spec = RunSpec(name=_safe_name(path.stem), source=str(path), output=Path())
    try:
        spec.loaded = load_config(path)
        check_data(spec.loaded)
        spec.config_hash = config_hash(spec.loaded)
    except Exception as exc:  # noqa: BLE001 - recorded as a failed run
        spec.error = _one_line(exc)
    return spec


def check_data(loaded: LoadedConfig) -> None:
    """Read every data file and check the sensors against the mesh (no engines).

    Quiet below warnings: the runs report their own set-up; validating many
    configs must not bury a usage error under notes.
    """
    from .problem import build_mesh, check_sensors, load_datasets

    logger = logging.getLogger("jointinv")
    level = logger.level
    logger.setLevel(max(logging.WARNING, logger.getEffectiveLevel()))
    try:
        datasets = load_datasets(loaded)
        mesh = build_mesh(loaded.config, datasets, source=loaded.name)
        for ds in datasets.values():
            check_sensors(mesh, ds, loaded.name)
    finally:
        logger.setLevel(level)


def _safe_name(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._+-]+", "_", text).strip("_") or "run"


def _unique_names(specs: list[RunSpec]) -> None:
    seen: dict[str, int] = {}
    for spec in specs:
        n = seen.get(spec.name, 0) + 1
        seen[spec.name] = n
        if n > 1:
            spec.name = f"{spec.name}-{n}"


# --- sweeps ----------------------------------------------------------------------
def expand_sweep(path: str | Path, raw: dict[str, Any] | None = None) -> list[RunSpec]:
    """The runs of a sweep file, each validated (see the module docstring).

    Raises
    ------
    UserInputError
        One line naming the sweep file and the bad key or override.
    """
    path = Path(path).expanduser().resolve()
    raw = read_yaml(path)[1] if raw is None else raw
    where = path.name
    unknown = sorted(set(raw) - set(SWEEP_KEYS))
    if unknown:
        raise UserInputError(
            f"{where}: {unknown[0]}: unknown key of a sweep file (known: {', '.join(SWEEP_KEYS)})"
        )
    if not isinstance(raw.get("base"), str):
        raise UserInputError(f"{where}: base: give the config file the runs start from")
    base_path = (path.parent / Path(raw["base"]).expanduser()).resolve()
    try:
        base = load_config(base_path)
    except ConfigError as exc:
        raise UserInputError(f"{where}: base: {exc}") from None
    base_raw = yaml.safe_load(base.text)
    fixed = _mapping(raw.get("set") or {}, where, "set")
    grid = _mapping(raw.get("grid") or {}, where, "grid")
    for key, values in grid.items():
        if not isinstance(values, list) or not values:
            raise UserInputError(f"{where}: grid: {key}: give a non-empty list of values")
    prefix = _safe_name(str(raw.get("name") or path.stem))
    combos = list(itertools.product(*grid.values())) if grid else [()]
    width = max(3, len(str(len(combos))))
    specs = []
    for i, combo in enumerate(combos, start=1):
        varying = dict(zip(grid, combo))
        overrides = {**fixed, **varying}

        def name(key: str, varying: dict[str, Any] = varying) -> str:
            return f"{'grid' if key in varying else 'set'}: {key}"

        effective, config = apply_overrides(base_raw, overrides, where, name)
        text = _provenance(path, i, overrides) + yaml.safe_dump(effective, sort_keys=False)
        loaded = LoadedConfig(config, base.path, text)
        spec = RunSpec(
            name=f"{prefix}-{i:0{width}d}",
            source=f"{path}[{i}]",
            output=Path(),
            loaded=loaded,
            overrides=overrides,
        )
        try:
            check_data(loaded)
        except Exception as exc:  # noqa: BLE001 - recorded as a failed run
            spec.error = _one_line(exc)
        spec.config_hash = config_hash(loaded)
        specs.append(spec)
    return specs


def _mapping(value: Any, where: str, section: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise UserInputError(f"{where}: {section}: must be a mapping of dotted paths to values")
    return {str(k): v for k, v in value.items()}


def _provenance(path: Path, index: int, overrides: dict[str, Any]) -> str:
    lines = [f"# jointinv batch: run {index} of sweep {path}"]
    lines += [f"#   {k} = {show_value(v).strip()}" for k, v in overrides.items()]
    return "\n".join(lines) + "\n"


# --- threads ---------------------------------------------------------------------
def available_cores() -> int:
    """CPUs this process may run on (affinity-aware)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def threads_per_worker(workers: int, cores: int | None = None) -> int:
    """The thread rule: ``max(1, cores // workers)``."""
    cores = available_cores() if cores is None else cores
    return max(1, cores // max(1, workers))


@contextmanager
def thread_budget(threads: int) -> Iterator[None]:
    """Limit OpenMP, BLAS and pyGIMLi to ``threads`` threads inside the block."""
    from threadpoolctl import threadpool_limits

    old_env = {k: os.environ.get(k) for k in THREAD_VARIABLES}
    os.environ.update({k: str(threads) for k in THREAD_VARIABLES})
    import pygimli as pg

    old_pg = pg.core.threadCount()
    pg.setThreadCount(threads)
    try:
        with threadpool_limits(limits=threads):
            yield
    finally:
        if old_pg > 0:
            pg.setThreadCount(old_pg)
        for k, v in old_env.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def thread_report() -> dict[str, Any]:
    """Threads as the libraries of this process see them (for checks and logs)."""
    import pygimli as pg
    from threadpoolctl import threadpool_info

    return {
        "pygimli": pg.core.threadCount(),
        "libraries": {Path(i["filepath"]).name: i["num_threads"] for i in threadpool_info()},
        "environment": {k: os.environ.get(k) for k in THREAD_VARIABLES},
    }


def capped(loaded: LoadedConfig, threads: int) -> LoadedConfig:
    """A copy of ``loaded`` whose ERT solvers use at most ``threads`` threads."""
    config = loaded.config.model_copy(deep=True)
    for modality in config.modalities.values():
        if modality.kind == "ert":
            modality.options.threads = min(modality.options.threads, threads)
    return LoadedConfig(config, loaded.path, loaded.text)


# --- one run (in a worker) ---------------------------------------------------------
def execute_run(spec: RunSpec, threads: int, *, resume: bool = True) -> RunOutcome:
    """Run one batch run in this process; never raises for a failed run.

    Continues from the run's checkpoint when ``resume`` and the checkpoint was
    made from the same config.
    """
    from .runner import run

    started = time.perf_counter()
    outcome = RunOutcome(
        name=spec.name, status="failed", source=spec.source, overrides=spec.overrides
    )
    outcome.threads = threads
    try:
        if spec.loaded is None:
            raise UserInputError(spec.error or f"{spec.source}: no config")
        same = checkpoint_hash(checkpoint_path(spec.output)) == spec.config_hash
        with thread_budget(threads):
            result = run(
                capped(spec.loaded, threads),
                output=spec.output,
                force=True,
                resume=resume and same,
                command_line=f"jointinv batch ({spec.source})",
            )
    except interrupt.Interrupted as exc:
        outcome.status = "interrupted"
        outcome.error = "; ".join(part for part in (str(exc), exc.kept) if part)
        outcome.seconds = time.perf_counter() - started
        return outcome
    except Exception as exc:  # noqa: BLE001 - recorded; the other runs go on
        outcome.error = _one_line(exc)
        outcome.seconds = time.perf_counter() - started
        return outcome
    inv = result.inversion
    outcome.status = "converged" if inv.success else "stopped"
    outcome.output = result.output
    outcome.chi2 = {k: float(v) for k, v in result.chi2.items()}
    outcome.iterations = inv.nit
    outcome.stop_reason = inv.message
    outcome.seconds = time.perf_counter() - started
    return outcome


def _one_line(exc: BaseException) -> str:
    text = str(exc) if isinstance(exc, UserInputError) else f"{type(exc).__name__}: {exc}"
    return " ".join(text.split())


def _init_pool_worker(threads: int) -> None:
    """Pool initializer: thread limits before the engines load, quiet logging.

    SIGINT and SIGTERM stop the worker's run at a safe point (the parent sends
    SIGTERM to its workers when the batch is interrupted; Ctrl-C in a terminal
    reaches them too).
    """
    interrupt.install_for_worker()
    os.environ.update({k: str(threads) for k in THREAD_VARIABLES})
    logging.basicConfig(level=logging.WARNING)
    for noisy in ("pyGIMLi", "Core", "matplotlib", "jointinv"):
        logging.getLogger(noisy).setLevel(logging.ERROR)


def _failed(spec: RunSpec, error: str) -> RunOutcome:
    return RunOutcome(
        name=spec.name, status="failed", source=spec.source, error=error, overrides=spec.overrides
    )


def _interrupted(spec: RunSpec, signum: int, why: str) -> RunOutcome:
    return RunOutcome(
        name=spec.name,
        status="interrupted",
        source=spec.source,
        error=f"interrupted by {interrupt.signal_name(signum)}; {why}",
        overrides=spec.overrides,
    )


def _pending(spec: RunSpec) -> RunOutcome:
    return RunOutcome(
        name=spec.name, status="pending", source=spec.source, overrides=spec.overrides
    )


def _skipped(spec: RunSpec) -> RunOutcome:
    info = read_result_summary(spec.output)
    return RunOutcome(
        name=spec.name,
        status="skipped",
        source=spec.source,
        output=spec.output,
        chi2=info["chi2"],
        iterations=info["iterations"],
        stop_reason=info["stop_reason"],
        overrides=spec.overrides,
    )


# --- progress ------------------------------------------------------------------------
class BatchProgress:
    """Receives the progress of a batch; this one ignores it (subclass to show it)."""

    def begin(self, specs: list[RunSpec]) -> None:
        """All runs of the batch, before anything starts."""

    def started(self, spec: RunSpec) -> None:
        """A run was handed to a worker."""

    def finished(self, outcome: RunOutcome) -> None:
        """The outcome of a run (also for skipped runs and runs that could not start)."""


class RichProgress(BatchProgress):
    """An overall bar and one status line per run on a rich console (stderr)."""

    _STYLE = {
        "converged": "green",
        "stopped": "yellow",
        "skipped": "cyan",
        "failed": "red",
        "interrupted": "magenta",
    }

    def __init__(self, console: Any, *, quiet: bool = False) -> None:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

        self.quiet = quiet
        self._bar = Progress(
            "[progress.description]{task.description}",
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=console,
            transient=True,
            disable=quiet or not console.is_terminal,  # no bar in logs and pipes
        )
        self._task = self._bar.add_task("runs", total=None)
        self._counts: dict[str, int] = {}

    def __enter__(self) -> RichProgress:
        self._bar.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._bar.stop()

    def _print(self, *parts: str | tuple[str, str]) -> None:
        """One line of ``parts`` (text, or (text, style)), printed literally: run names
        and errors come from the user's files and are no rich markup."""
        from rich.text import Text

        if not self.quiet:
            self._bar.console.print(Text.assemble(*parts), highlight=False, soft_wrap=True)

    def begin(self, specs: list[RunSpec]) -> None:
        self._bar.update(self._task, total=len(specs))

    def started(self, spec: RunSpec) -> None:
        self._print(("started   ", "dim"), " ", spec.name)

    def finished(self, outcome: RunOutcome) -> None:
        self._counts[outcome.status] = self._counts.get(outcome.status, 0) + 1
        counts = ", ".join(f"{n} {k}" for k, n in self._counts.items())
        self._bar.update(self._task, advance=1, description=f"runs ({counts})")
        style = self._STYLE.get(outcome.status, "white")
        chi2 = "  ".join(f"{k} {v:.3g}" for k, v in outcome.chi2.items())
        detail = outcome.error or f"χ² {chi2}"
        if outcome.iterations is not None:
            detail += f"  it {outcome.iterations}"
        if outcome.seconds:
            detail += f"  {outcome.seconds:.1f} s"
        self._print((f"{outcome.status:<10s}", style), f" {outcome.name}  {detail}")


def summary_table(result: BatchResult) -> Any:
    """The summary as a rich table (name, status, χ² per modality, …)."""
    from rich.table import Table
    from rich.text import Text

    modalities = summary_columns(result.outcomes)
    table = Table(title=Text(f"jointinv batch: {result.backend}, {result.seconds:.1f} s"))
    for column in ("run", "status", *[f"χ² {m}" for m in modalities], "it", "time (s)"):
        justify = "left" if column in ("run", "status") else "right"
        table.add_column(Text(column), justify=justify)
    table.add_column(Text("output / error"), overflow="fold")
    for o in result.outcomes:
        table.add_row(
            Text(o.name),
            Text(o.status, style=RichProgress._STYLE.get(o.status, "")),
            *[f"{o.chi2[m]:.3g}" if m in o.chi2 else "" for m in modalities],
            "" if o.iterations is None else str(o.iterations),
            f"{o.seconds:.1f}" if o.seconds else "",
            Text(o.error or str(o.output or "")),
        )
    return table


# --- the batch ---------------------------------------------------------------------
def run_batch(
    inputs: list[str | Path],
    *,
    output_dir: str | Path = "batch",
    workers: int | None = None,
    scheduler: str | None = None,
    dask_local: int | None = None,
    rerun: bool = False,
    progress: BatchProgress | None = None,
) -> BatchResult:
    """Run many inversions; see the module docstring.

    Parameters
    ----------
    inputs : list of str or Path
        Config files, globs, sweep files.
    output_dir : path
        Results, checkpoints and ``summary.csv`` go here.
    workers : int, optional
        Processes of the local pool (default: the available cores).
    scheduler : str, optional
        Address of a ``dask.distributed`` scheduler (``tcp://host:port``).
    dask_local : int, optional
        Start a Dask ``LocalCluster`` with this many single-threaded worker processes.
    rerun : bool
        Run again even when a complete result of the same config exists, and
        ignore checkpoints.
    progress : BatchProgress, optional
        Told about the runs, each start and each outcome (e.g. :class:`RichProgress`).

    Returns
    -------
    BatchResult
    """
    if scheduler is not None and dask_local is not None:
        raise UserInputError("give either --scheduler or --dask-local, not both")
    if workers is not None and (scheduler is not None or dask_local is not None):
        raise UserInputError("--workers is for the local pool; with Dask give the workers to it")
    for label, n in (("--workers", workers), ("--dask-local", dask_local)):
        if n is not None and n < 1:
            raise UserInputError(f"{label} must be at least 1, got {n}")
    started = time.perf_counter()
    output_dir = Path(output_dir).expanduser().resolve()
    specs = expand_inputs(inputs, output_dir)
    check_outputs(inputs, specs, output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    progress = progress or BatchProgress()
    progress.begin(specs)
    outcomes: dict[str, RunOutcome] = {}
    summary = output_dir / "summary.csv"

    def record(outcome: RunOutcome) -> None:
        outcomes[outcome.name] = outcome
        progress.finished(outcome)

    def finish(outcome: RunOutcome) -> None:
        """A run ended: ``summary.csv`` is rewritten, so a killed batch leaves one."""
        record(outcome)
        write_summary([outcomes.get(s.name) or _pending(s) for s in specs], summary)

    todo = []
    for spec in specs:
        if spec.error:
            record(_failed(spec, spec.error))
        elif not rerun and result_hash(spec.output) == spec.config_hash:
            record(_skipped(spec))
        else:
            if rerun:
                checkpoint_path(spec.output).unlink(missing_ok=True)
            todo.append(spec)
    write_summary([outcomes.get(s.name) or _pending(s) for s in specs], summary)
    if scheduler is not None or dask_local is not None:
        backend = _run_dask(todo, scheduler, dask_local, progress.started, finish)
    else:
        n = workers or available_cores()
        backend = f"pool ({n} workers)"
        _run_pool(todo, n, progress.started, finish)
    ordered = [outcomes[s.name] for s in specs]
    write_summary(ordered, summary)
    signum = interrupt.requested()
    if signum is not None:
        raise _batch_interrupted(signum, ordered, summary)
    return BatchResult(ordered, summary, time.perf_counter() - started, backend)


def check_outputs(inputs: list[str | Path], specs: list[RunSpec], output_dir: Path) -> None:
    """Before any run: ``summary.csv`` can be written in ``output_dir`` and no output
    (result, checkpoint, ``summary.csv``) is an input file, config or data file.

    Raises
    ------
    UserInputError
        One line naming the output and what is wrong with it.
    """
    summary = output_dir / "summary.csv"
    check_writable_location(summary)
    read = {path: f"the input file {path.name}" for path in _input_files(inputs)}
    for spec in specs:
        if spec.loaded is not None:
            read.update(config_inputs(spec.loaded))
    for spec in specs:
        refuse_inputs(spec.output, read)
        refuse_inputs(checkpoint_path(spec.output), read)
    refuse_inputs(summary, read)


def _batch_interrupted(
    signum: int, outcomes: list[RunOutcome], summary: Path
) -> interrupt.Interrupted:
    """The exception that ends an interrupted batch, saying what it kept."""
    counts: dict[str, int] = {}
    for o in outcomes:
        counts[o.status] = counts.get(o.status, 0) + 1
    exc = interrupt.Interrupted(signum)
    told = ", ".join(f"{n} {status}" for status, n in counts.items())
    exc.kept = f"runs: {told}; summary: {summary}"
    exc.resumable = True
    return exc


def _run_pool(
    specs: list[RunSpec],
    workers: int,
    on_start: Callable[[RunSpec], None],
    finish: Callable[[RunOutcome], None],
) -> None:
    """At most ``workers`` runs in flight; a dead worker process is tracked down."""
    if not specs:
        return
    threads = threads_per_worker(workers)
    context = multiprocessing.get_context("spawn")

    def new_pool(n: int) -> ProcessPoolExecutor:
        return ProcessPoolExecutor(
            n, mp_context=context, initializer=_init_pool_worker, initargs=(threads,)
        )

    queue = deque(specs)
    pool = new_pool(min(workers, len(specs)))
    running: dict[Future, RunSpec] = {}
    stopping = False
    try:
        while queue or running:
            signum = interrupt.requested()
            if signum is not None and not stopping:
                stopping = True
                _stop_workers(pool, queue, signum, finish)
            while queue and len(running) < workers:
                spec = queue.popleft()
                on_start(spec)
                running[pool.submit(execute_run, spec, threads)] = spec
            done, _ = wait(running, timeout=POLL_SECONDS, return_when=FIRST_COMPLETED)
            broken = False
            for future in done:
                spec = running.pop(future)
                try:
                    finish(future.result())
                except BrokenProcessPool:
                    broken = True
                    running[future] = spec  # suspect; redone below
            if broken and stopping:
                # a worker died while stopping (e.g. killed by a second Ctrl-C)
                wait(running)
                for spec in running.values():
                    finish(_interrupted(spec, signum, "its worker process died"))
                running.clear()
            elif broken:
                # A worker process died (crash, out of memory, killed): the pool is
                # gone with every run in it. Redo those runs one at a time, each in a
                # fresh process, so only the culprit is recorded as failed.
                wait(running)
                suspects = list(running.values())
                running.clear()
                pool.shutdown(wait=False, cancel_futures=True)
                for spec in suspects:
                    finish(_run_isolated(spec, threads, new_pool))
                pool = new_pool(min(workers, max(len(queue), 1)))
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _stop_workers(
    pool: ProcessPoolExecutor,
    queue: deque[RunSpec],
    signum: int,
    finish: Callable[[RunOutcome], None],
) -> None:
    """The batch was interrupted: the queued runs never start, the running ones stop.

    Each worker gets SIGTERM and stops its run at a safe point (it reports the
    run ``interrupted``, its checkpoint kept).
    """
    while queue:
        finish(_interrupted(queue.popleft(), signum, "not started"))
    interrupt.stop_workers(pool)


def _run_isolated(
    spec: RunSpec, threads: int, new_pool: Callable[[int], ProcessPoolExecutor]
) -> RunOutcome:
    pool = new_pool(1)
    try:
        return pool.submit(execute_run, spec, threads).result()
    except BrokenProcessPool:
        return _failed(spec, "the worker process died (crashed, killed or out of memory)")
    finally:
        pool.shutdown(wait=True)


# --- Dask ----------------------------------------------------------------------------
def _run_dask(
    specs: list[RunSpec],
    scheduler: str | None,
    dask_local: int | None,
    on_start: Callable[[RunSpec], None],
    finish: Callable[[RunOutcome], None],
) -> str:
    try:
        from dask.distributed import Client, LocalCluster, as_completed
    except ImportError:  # pragma: no cover - a dependency
        raise UserInputError("Dask is not installed: pip install 'dask[distributed]'") from None
    cluster = None
    if dask_local is not None:
        cluster = LocalCluster(
            n_workers=dask_local,
            threads_per_worker=1,
            processes=True,
            dashboard_address=":0",  # any free port: never collides with another cluster
            silence_logs=logging.ERROR,
        )
        address = cluster.scheduler_address
    else:
        address = scheduler
    try:
        try:
            client = Client(address, timeout="30s")
        except (OSError, TimeoutError) as exc:
            raise UserInputError(f"cannot connect to the Dask scheduler {address}: {exc}") from None
        with client:
            budgets, slots = _dask_budgets(client)
            queue = deque(specs)
            pending = as_completed()
            by_key: dict[str, RunSpec] = {}

            def submit() -> None:
                spec = queue.popleft()
                on_start(spec)
                key = f"jointinv-{spec.name}-{uuid.uuid4().hex[:8]}"
                by_key[key] = spec
                pending.add(client.submit(_dask_execute, spec, budgets, pure=False, key=key))

            for _ in range(min(slots, len(queue))):
                submit()
            while not pending.is_empty():
                for future in pending.next_batch(block=False) if pending.has_ready() else []:
                    spec = by_key.pop(future.key)
                    try:
                        finish(future.result())
                    except Exception as exc:  # noqa: BLE001 - e.g. KilledWorker
                        finish(_failed(spec, _one_line(exc)))
                    if queue and interrupt.requested() is None:
                        submit()
                signum = interrupt.requested()
                if signum is not None:
                    _stop_dask(client, pending, by_key, queue, signum, finish)
                    break
                if not pending.has_ready():
                    time.sleep(POLL_SECONDS)
        return f"dask ({address})"
    finally:
        if cluster is not None:
            cluster.close()


def _stop_dask(
    client: Any,
    pending: Any,
    by_key: dict[str, RunSpec],
    queue: deque[RunSpec],
    signum: int,
    finish: Callable[[RunOutcome], None],
) -> None:
    """The batch was interrupted: cancel the runs on the cluster, start no more.

    A local cluster's workers are closed with it; a run already running on a
    remote worker cannot be stopped from here and may still write its result.
    """
    client.cancel(list(pending.futures))
    pending.clear()
    for spec in by_key.values():
        finish(_interrupted(spec, signum, "cancelled (its checkpoint, if any, is kept)"))
    by_key.clear()
    while queue:
        finish(_interrupted(queue.popleft(), signum, "not started"))


def _dask_budgets(client: Any) -> tuple[dict[str, int], int]:
    """Threads per worker by the thread rule, per host; and the total task slots."""
    workers = client.scheduler_info(n_workers=-1)["workers"]
    cores = client.run(available_cores)
    per_host: dict[str, int] = {}
    for info in workers.values():
        per_host[info["host"]] = per_host.get(info["host"], 0) + info["nthreads"]
    budgets = {
        addr: max(1, cores.get(addr, 1) // max(1, per_host[info["host"]]))
        for addr, info in workers.items()
    }
    slots = sum(info["nthreads"] for info in workers.values()) or 1
    return budgets, slots


def _dask_execute(spec: RunSpec, budgets: dict[str, int]) -> RunOutcome:
    from dask.distributed import get_worker

    for noisy in ("pyGIMLi", "Core", "matplotlib", "jointinv"):
        logging.getLogger(noisy).setLevel(logging.ERROR)
    threads = budgets.get(get_worker().address, 1)
    return execute_run(spec, threads)


# --- summary ------------------------------------------------------------------------
def summary_columns(outcomes: list[RunOutcome]) -> list[str]:
    """Modalities that appear in any outcome, in order of appearance."""
    names: list[str] = []
    for o in outcomes:
        names += [k for k in o.chi2 if k not in names]
    return names


def write_summary(outcomes: list[RunOutcome], path: Path) -> Path:
    """``summary.csv``: one row per run (written atomically)."""
    modalities = summary_columns(outcomes)
    header = [
        "name",
        "status",
        *[f"chi2_{m}" for m in modalities],
        "iterations",
        "wall_time_s",
        "threads",
        "output",
        "error",
        "stop_reason",
        "source",
        "overrides",
    ]
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        for o in outcomes:
            writer.writerow(
                [
                    o.name,
                    o.status,
                    *[f"{o.chi2[m]:.6g}" if m in o.chi2 else "" for m in modalities],
                    "" if o.iterations is None else o.iterations,
                    f"{o.seconds:.2f}",
                    o.threads or "",
                    "" if o.output is None else str(o.output),
                    o.error,
                    o.stop_reason,
                    o.source,
                    "; ".join(f"{k}={show_value(v)}" for k, v in o.overrides.items()),
                ]
            )
    return path
