"""``jointinv.run``: one joint inversion from a config to an HDF5 result."""

from __future__ import annotations

import io
import logging
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import h5py
import numpy as np
from threadpoolctl import threadpool_limits

from . import interrupt
from ._version import __version__
from .checkpoint import Checkpointer, checkpoint_path, config_hash
from .config import Config, LoadedConfig, as_loaded
from .coordinates import attach_grid
from .diagnostics import Diagnostics, run_diagnostics
from .diagnostics_file import fill_diagnostics
from .errors import UserInputError
from .inversion import InversionResult, IterationRecord
from .objective import CrossGradient
from .outputs import check_output, config_inputs, refuse_inputs
from .problem import DATA_LABELS, Problem, build_problem
from .progress import stage
from .results import (
    SavedData,
    SavedResult,
    fill_data,
    fill_iterations,
    fill_mesh,
    fill_meta,
    fill_model,
    result_from_file,
    write_atomic,
)
from .schedule import build_minimizer

log = logging.getLogger(__name__)


@dataclass
class RunResult:
    """What :func:`run` returns.

    Attributes
    ----------
    problem : Problem
    inversion : InversionResult
    models : dict
        Final model of every property, physical units, one value per cell.
    chi2 : dict
        Final χ² per modality.
    output : Path or None
        The HDF5 file written (None when ``write=False``).
    diagnostics : Diagnostics or None
        Posterior diagnostics at the final model (None when not computed).
    separate : dict
        With ``separate=True``: the inversion of each modality alone, by name
        (its ``models`` hold the properties that modality senses).
    biases : list of BiasEstimate
        The declared bias parameters (``modalities.<name>.biases``) at the final
        model, each with its linearised posterior σ (reported units).
    meta : dict
        What ``/meta`` of the result file holds (config text, versions, times, stop
        reason, χ² band report); empty for the ``separate`` runs.

    ``model_grids`` gives the models on the full (n_z, n_x) grid as the file stores
    them, ``plot()`` the figures of ``jointinv show --plot`` and ``as_saved()`` the
    :class:`~jointinv.results.SavedResult` its file reads as.
    """

    problem: Problem
    inversion: InversionResult
    models: dict[str, np.ndarray]
    chi2: dict[str, float]
    output: Path | None
    diagnostics: Diagnostics | None = None
    separate: dict[str, RunResult] = field(default_factory=dict)
    biases: list[Any] = field(default_factory=list)
    meta: dict[str, Any] = field(default_factory=dict)
    _saved: SavedResult | None = field(default=None, init=False, repr=False, compare=False)

    def as_saved(self) -> SavedResult:
        """This result as :func:`~jointinv.results.read_result` reads its file: made in
        memory by the same writer and reader (``meta`` holds what the run knows), so
        models, data, iterations and diagnostics equal those of the file."""
        if self._saved is None:
            with h5py.File(io.BytesIO(), "w") as f:
                fill_meta(f, self.meta)
                _fill_mesh(f, self.problem)
                _fill_inversion(f, self.problem, self.inversion, only=set(self.models))
                if self.diagnostics is not None:
                    fill_diagnostics(f, self.diagnostics)
                self._saved = result_from_file(f)
        return self._saved

    @property
    def model_grids(self) -> dict[str, np.ndarray]:
        """Every model as an (n_z, n_x) array (z from the bottom up, physical units),
        NaN in inactive (air) cells, as in the result file (``models`` holds the
        active cells only)."""
        mesh = self.problem.mesh
        nx, nz = mesh.shape
        return {name: mesh.full(values).reshape(nz, nx) for name, values in self.models.items()}

    def plot(self, which: str | None = None, *, doi_mask: bool = True) -> Any:
        """Matplotlib figures of this result, those ``jointinv show --plot`` writes:
        every figure by name (a dict), or the one ``which`` names (a property, a
        modality, or a PNG name such as ``convergence``); see
        :func:`jointinv.plotting.figures`. No pyplot: the backend is left alone."""
        return self.as_saved().plot(which, doi_mask=doi_mask)


def output_path(loaded: LoadedConfig, output: str | Path | None) -> Path:
    return Path(output).resolve() if output else loaded.resolve(loaded.config.output.path)


def run(
    config: str | Path | LoadedConfig | Config | dict[str, Any],
    *,
    output: str | Path | None = None,
    force: bool = False,
    write: bool = True,
    only: list[str] | None = None,
    on_iteration: Callable[[IterationRecord], None] | None = None,
    command_line: str | None = None,
    resume: bool = False,
    diagnostics: bool | None = None,
    separate: bool = False,
) -> RunResult:
    """Run one joint inversion.

    After every Gauss-Newton iteration the state is written (atomically) to
    ``<output stem>.checkpoint.h5``; it is removed once the result is written.

    Parameters
    ----------
    config : path, dict, Config or LoadedConfig
        The YAML config file, or the same content as a mapping or a validated
        :class:`~jointinv.config.Config` (relative paths from the working directory).
    output : path, optional
        HDF5 result; default ``output.path`` of the config, relative to it.
    force : bool
        Overwrite an existing result (never the config or a data file: an output
        that is one of them is refused, as is one that cannot be written).
    write : bool
        Write the result file at all.
    only : list of str, optional
        Invert only these modalities.
    on_iteration : callable, optional
        Called with every :class:`~jointinv.inversion.IterationRecord`.
    command_line : str, optional
        Stored in ``/meta`` (default: ``sys.argv``).
    resume : bool
        Continue from the checkpoint of an interrupted run of the same config
        (refused with a :class:`~jointinv.errors.UserInputError` if it was made
        from another config). The final model equals the uninterrupted run's.
    diagnostics : bool, optional
        Compute the posterior diagnostics at the final model (default: the
        config's ``diagnostics.enabled``); see :mod:`jointinv.diagnostics`.
    separate : bool
        After the joint inversion, invert every modality alone with the same
        settings (no couplings) and write each under ``/separate/<modality>``,
        so the effect of the coupling can be seen beside the joint result.
    """
    loaded = as_loaded(config)
    _check_only(loaded, only)
    target = output_path(loaded, output) if write else None
    if target is not None:
        check_run_output(loaded, target, force=force)
    started = datetime.now(timezone.utc)
    digest = config_hash(loaded, only=only)
    checkpoints = None
    if target is not None:
        checkpoints = Checkpointer(target, digest, resume=resume)
    with _kept_on_interrupt(checkpoints):
        problem = build_problem(loaded, only=only)
        inversion = _invert(problem, on_iteration, checkpoints)
        models = problem.physical(inversion.model)
        chi2 = dict(inversion.iterations[-1].chi2)
        wanted = loaded.config.diagnostics.enabled if diagnostics is None else diagnostics
        if wanted and problem.bias_blocks:
            log.warning(
                "posterior diagnostics are not computed for a model with bias parameters "
                "(each bias is reported with its own sigma in /biases)"
            )
            wanted = False
        posterior = _diagnostics(problem, inversion.model) if wanted else None
        biases = bias_estimates(problem, inversion.model)
        alone = _separate_runs(loaded, list(problem.datasets)) if separate else {}
        meta = {**_meta(loaded, started, inversion, command_line), "config_hash": digest}
        if target is not None:

            def _fill_all(f) -> None:
                _fill(f, problem, inversion, meta)
                if posterior is not None:
                    fill_diagnostics(f, posterior)
                fill_biases(f, biases)
                for name, sep in alone.items():
                    group = f.create_group(f"separate/{name}")
                    group.attrs["stop_reason"] = sep.inversion.message
                    group.attrs["iterations"] = sep.inversion.nit
                    _fill_inversion(group, sep.problem, sep.inversion, only=sep.problem.sensed)

            interrupt.check()  # not after the result is written: it would be complete
            stage("writing %s", target)
            write_atomic(target, _fill_all)
            checkpoints.remove()
    return RunResult(problem, inversion, models, chi2, target, posterior, alone, biases, meta)


def check_run_output(loaded: LoadedConfig, target: Path, *, force: bool = False) -> None:
    """Before any work: the result and its checkpoint must not be an input of the run
    (``--force`` or not), the result must be writable, named ``.h5`` or ``.hdf5``
    and, without ``force``, new.

    Raises
    ------
    UserInputError
        One line naming the output and what is wrong with it.
    """
    inputs = config_inputs(loaded)
    check_output(target, inputs, kind="result", writer="jointinv run")
    refuse_inputs(checkpoint_path(target), inputs)
    if target.exists() and not force:
        raise UserInputError(f"{target}: output file exists; use --force to overwrite it")


@contextmanager
def _kept_on_interrupt(checkpoints: Checkpointer | None) -> Iterator[None]:
    """On :class:`~jointinv.interrupt.Interrupted`, note the checkpoint that is kept."""
    try:
        yield
    except interrupt.Interrupted as exc:
        if checkpoints is None:
            exc.kept = "nothing written"
        elif checkpoints.iteration is None:
            exc.kept = "before the first iteration ended (no checkpoint)"
        else:
            n = checkpoints.iteration
            exc.kept = f"checkpoint after iteration {n} kept: {checkpoints.path}"
            exc.resumable = True
        raise


def bias_estimates(problem: Problem, model: np.ndarray) -> list[Any]:
    """Every declared bias at the final model with its linearised posterior σ (logged)."""
    if not problem.bias_blocks:
        return []
    from .conflict import estimate_biases

    out = estimate_biases(problem.bias_blocks, problem.objective, model)
    for e in out:
        log.info("%s %s %s: %.4g +- %.2g %s", e.modality, e.kind, e.label, e.value, e.std, e.units)
    return out


def fill_biases(f, biases: list[Any]) -> None:
    """``/biases/<modality>/<kind>``: columns label, value, std (reported units in attrs)."""
    for b in biases:
        g = f.require_group(f"biases/{b.modality}")
        if b.kind not in g:
            group = [e for e in biases if e.modality == b.modality and e.kind == b.kind]
            d = g.create_group(b.kind)
            d["label"] = np.array([e.label for e in group], dtype=h5py.string_dtype())
            d["value"] = np.array([e.value for e in group])
            d["std"] = np.array([e.std for e in group])
            d.attrs["units"] = b.units


def _check_only(loaded: LoadedConfig, only: list[str] | None) -> None:
    for name in only or []:
        if name not in loaded.config.modalities:
            present = ", ".join(loaded.config.modalities)
            raise UserInputError(
                f"{loaded.name}: --only {name}: no such modality (present: {present})"
            )


def _separate_runs(loaded: LoadedConfig, names: list[str]) -> dict[str, RunResult]:
    """Each modality inverted alone with the config's settings (no checkpoints)."""
    out = {}
    for name in names:
        stage("separate inversion of %s", name)
        problem = build_problem(loaded, only=[name])
        inversion = _invert(problem, None)
        chi2 = dict(inversion.iterations[-1].chi2)
        log.info(
            "separate inversion of %s: chi2 %.3g after %d iterations (%s)",
            name,
            chi2[name],
            inversion.nit,
            inversion.message,
        )
        models = {k: v for k, v in problem.physical(inversion.model).items() if k in problem.sensed}
        out[name] = RunResult(problem, inversion, models, chi2, None)
    return out


def _diagnostics(problem: Problem, model: np.ndarray) -> Diagnostics | None:
    """The posterior diagnostics; a failure is logged and the result kept without them."""
    try:
        return run_diagnostics(problem, model)
    except Exception as exc:  # noqa: BLE001 - never lose an inversion to its diagnostics
        log.error(
            "posterior diagnostics failed (%s: %s); the result is written without them "
            "('jointinv diagnose' computes them later)",
            type(exc).__name__,
            exc,
        )
        return None


# One BLAS thread: multithreaded OpenBLAS splits the sums of Jᵀw differently for
# different thread counts (round-off differences), and a run must give the same
# model arrays whatever the machine's threads; the engines' own threads do not
# change the numbers.
@threadpool_limits.wrap(limits=1, user_api="blas")
def _invert(
    problem: Problem,
    on_iteration: Callable[[IterationRecord], None] | None,
    checkpoints: Checkpointer | None = None,
) -> InversionResult:
    settings = problem.config.inversion
    resumed = checkpoints.resumed if checkpoints is not None else None
    records = list(resumed.records) if resumed is not None else []
    gn, tradeoff = build_minimizer(
        problem.objective,
        problem.m_start,
        settings,
        rng=np.random.default_rng(settings.seed),
        clocks=problem.clocks,
        auto_couplings=problem.auto_couplings,
        regularization_weights=problem.regularization_weights,
        beta0=resumed.beta0 if resumed is not None else None,
        weights=records[0].weights if records else None,
    )
    beta0 = tradeoff.beta
    if records:
        tradeoff.replay(records)
        gn.damping = records[-1].damping
    m0 = resumed.model if resumed is not None else problem.m_start
    start = resumed.iteration if resumed is not None else 0
    last = records[-1] if records else None
    for record in gn.iterate(m0, start_iteration=start, resumed=last):
        if last is not None and record.iteration == start:
            continue  # the checkpointed iteration, evaluated again
        records.append(record)
        if checkpoints is not None:
            checkpoints.save(gn.model, records, beta0)
        if on_iteration is not None:
            on_iteration(record)
        interrupt.check()
    success = gn.stopping.success(records[-1].chi2)
    return InversionResult(model=gn.model, iterations=records, message=gn.message, success=success)


def _versions() -> dict[str, str]:
    import importlib.metadata as md

    out = {}
    for pkg in ("numpy", "scipy", "simpeg", "discretize", "pygimli", "h5py"):
        try:
            out[f"{pkg}_version"] = md.version(pkg)
        except md.PackageNotFoundError:
            out[f"{pkg}_version"] = "not installed"
    return out


def _meta(
    loaded: LoadedConfig,
    started: datetime,
    inversion: InversionResult,
    command_line: str | None,
) -> dict[str, object]:
    return {
        "jointinv_version": __version__,
        **_versions(),
        "config_text": loaded.text,
        "config_path": str(loaded.path),
        "command_line": command_line or " ".join(sys.argv),
        "start_time": started.isoformat(),
        "end_time": datetime.now(timezone.utc).isoformat(),
        "random_seed": loaded.config.inversion.seed,
        "stop_reason": inversion.message,
        "success": inversion.success,
        "iterations": inversion.nit,
        **band_report(loaded.config, inversion),
    }


def band_report(config, inversion: InversionResult) -> dict[str, object]:
    """Where each final χ² lies against its band; logs a warning per modality outside it.

    Returns the ``/meta`` entries ``chi2_band`` and ``overfit`` / ``underfit`` (the
    modalities whose final χ² lies below / above ``chi2_band × target``, comma-separated).
    """
    lo, hi = config.inversion.chi2_band
    chi2 = inversion.iterations[-1].chi2
    start = inversion.iterations[0].chi2
    over, under = [], []
    for name, value in chi2.items():
        target = config.modalities[name].chi2_target or config.inversion.chi2_target
        if value < lo * target:
            over.append(name)
            why = (
                f"it was {start[name]:.3g} at the starting model already: are its errors too "
                "large?"
                if start[name] < lo * target
                else "the other data or the couplings explain it closer than its errors"
                if len(chi2) > 1
                else "raising beta did not bring it back (see the stop reason)"
            )
            log.warning(
                "%s: final chi2 %.3g lies below %g x its target %g (over-fitted): %s",
                name,
                value,
                lo,
                target,
                why,
            )
        elif value > hi * target:
            under.append(name)
            log.warning(
                "%s: final chi2 %.3g lies above %g x its target %g", name, value, hi, target
            )
    return {"chi2_band": [lo, hi], "overfit": ",".join(over), "underfit": ",".join(under)}


def _fill(f, problem: Problem, inversion: InversionResult, meta: dict[str, object]) -> None:
    fill_meta(f, meta)
    _fill_mesh(f, problem)
    _fill_inversion(f, problem, inversion)


def _fill_mesh(f, problem: Problem) -> None:
    mesh = problem.mesh
    fill_mesh(
        f,
        mesh.nodes_x,
        mesh.nodes_z,
        mesh.full(mesh.core_mask, fill=False),
        active=mesh.active.reshape(mesh.shape[::-1]),
        surface=mesh.surface,
    )


def _fill_inversion(
    f, problem: Problem, inversion: InversionResult, *, only: set[str] | None = None
) -> None:
    """Models (``only`` these properties, if given), cross-gradient maps, data fit and
    iterations below ``f`` (the file, or a ``/separate/<modality>`` group)."""
    config = problem.config
    for name, values in problem.physical(inversion.model).items():
        if only is not None and name not in only:
            continue
        if name in config.derived:
            derived = config.derived[name]
            fill_model(f, name, values, units=derived.units, transform="derived")
            f["models"][name].attrs["derived_from"] = derived.source
            f["models"][name].attrs["relation"] = derived.relation.kind
        else:
            prop = config.properties[name]
            fill_model(f, name, values, units=prop.units, transform=prop.transform)
    fill_cross_gradient_maps(f, problem, inversion.model)
    for misfit in problem.objective.misfits:
        ds = problem.datasets[misfit.name]
        fill_data(
            f,
            misfit.name,
            SavedData(
                observed=misfit.observed,
                predicted=misfit.predicted(inversion.model),
                std=misfit.std,
                sensors=ds.sensors,
                kind=ds.kind,
                units=DATA_LABELS[ds.kind][1],
                chi2=misfit.chi2(inversion.model),
                property=problem.config.modalities[misfit.name].property,
                indices=ds.survey.file_indices(),
                chi2_target=config.modalities[misfit.name].chi2_target
                or config.inversion.chi2_target,
            ),
        )
    fill_iterations(f, iteration_columns(inversion.iterations))


def fill_cross_gradient_maps(f, problem: Problem, m: np.ndarray) -> None:
    """``/diagnostics/cross_gradient/<a>__<b>``: |τ| of the final model, shape (n_z, n_x)."""
    nx, nz = problem.mesh.shape
    for term in problem.objective.couplings:
        if isinstance(term, CrossGradient):
            tau = problem.mesh.full(np.abs(term.tau(m)))
            d = f.require_group("diagnostics/cross_gradient").create_dataset(
                term.name.split("/", 1)[1], data=tau.reshape(nz, nx)
            )
            d.attrs["units"] = "unitless" if term.normalized else "parameter units^2 / m^2"
            d.attrs["normalized"] = term.normalized
            attach_grid(d)


def iteration_columns(records: list[IterationRecord]) -> dict[str, np.ndarray]:
    """Per-iteration arrays for ``/iterations``."""
    first = records[0]
    cols: dict[str, list[float]] = {
        "iteration": [r.iteration for r in records],
        "beta": [r.beta for r in records],
        "phi": [r.phi for r in records],
        "phi_m": [r.terms["regularization"] for r in records],
        "step_length": [r.step_length for r in records],
        "cg_iterations": [r.cg_iterations for r in records],
    }
    for name in first.chi2:
        cols[f"phi_d/{name}"] = [r.terms[name] / r.weights.get(name, 1.0) for r in records]
        cols[f"chi2/{name}"] = [r.chi2[name] for r in records]
        cols[f"weights/{name}"] = [r.weights.get(name, 1.0) for r in records]
    for name in first.terms:
        if name not in first.chi2 and name != "regularization":
            cols[f"coupling/{name}"] = [r.terms[name] for r in records]
    for kind in ("forward", "jacobian", "linear_algebra", "other"):
        cols[f"seconds/{kind}"] = [r.seconds.get(kind, 0.0) for r in records]
    return {k: np.asarray(v) for k, v in cols.items()}
