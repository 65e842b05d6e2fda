#!/usr/bin/env python
"""Benchmark jointinv single-method inversions against pyGIMLi's managers (issue 12, item 3).

Peer pairs, each on the same data, the same engine mesh and the same error model:

* ``ert``: ``jointinv.run(config, only=["ert"])`` vs ``pygimli.physics.ert.ERTManager.invert``;
* ``traveltime``: ``jointinv.run(config, only=["traveltime"])`` vs
  ``pygimli.physics.traveltime.TravelTimeManager.invert``.

Cases: the quick start (``configs/quickstart.yaml``, flat), and with ``--field``
Luneplate ERT (flat) and Koenigsee refraction (topography; skipped with a message
when ``../shared/realdata`` is absent).

What is matched (see ``--help`` of the table's notes and the JSON ``settings``):

* mesh: pyGIMLi gets exactly the mesh jointinv's engine solves on
  (:func:`jointinv.engines.pgmesh.build_pg_grid` - a ``pg.createGrid`` on the model
  mesh's node coordinates, all padding for ERT, two padding cells for traveltimes - or
  the triangle mesh of :func:`~jointinv.engines.pgmesh.build_pg_topo_mesh` with
  topography, where pyGIMLi then has one parameter per triangle);
  ERT without pyGIMLi's hidden H2 refinement (``fop._refineH2 = False``, as jointinv);
  traveltimes with the same number of secondary nodes;
* data and errors: jointinv's ``problem.datasets[name]``: ERT ρa with σ of ln ρa given
  as pyGIMLi's relative ``err = σ`` (pyGIMLi's log data transform uses err/|ρa| as the
  σ of ln ρa; the χ² of the start model agrees on both sides), traveltimes in s with
  absolute σ (s);
* start model: jointinv's, on the engine cells; the start is also the reference
  (``isReference=True``), as in jointinv (R acts on m − m_ref);
* model transform: bounded log (``limits`` = the property's bounds: pyGIMLi's logLU is
  jointinv's bounded log; for traveltimes log-slowness with 1/bounds, which differs from
  jointinv's bounded log-velocity by a sign and a constant only);
* regularization: first-order smoothness, λ = 2·β·α_x·w·dz/dx and zWeight =
  √(α_z/α_x)·dx/dz (jointinv's area-weighted ‖∂m‖² on the core cells; jointinv's ½ on
  φ_d), β = the β of jointinv's first Gauss-Newton step (its β0 estimate), cooled by
  the same factor (``lambdaFactor = 1/cooling_factor``);
* stopping: χ² ≤ target (pyGIMLi's ``stopAtChi1``), the same iteration limit, pyGIMLi's
  dPhi = 100·``stagnation_tolerance`` %;
* threads: ERT engine threads = the config's ``options.threads`` on both sides
  (pyGIMLi: ``fop._core.setThreadCount``, which is what jointinv's engine sets); BLAS
  pinned to 1 thread on both sides with threadpoolctl (jointinv's runner pins 1
  itself; the pyGIMLi run is wrapped in the same ``threadpool_limits``).

Not matched: jointinv's α_s smallness term (pyGIMLi's smoothness constraints have
none), the area weighting in the padding (pyGIMLi weights every cell boundary alike),
the Gauss-Newton solver (jointinv: PCG ≤ ``cg.max_iterations`` + Armijo backtracking;
pyGIMLi: CGLS + its line search), and with ``only=[...]`` jointinv still carries every
property of the config in its model vector (the unsensed ones stay at their start).

Engine calls: jointinv's ``EngineClock`` counts (``problem.clocks``); on the pyGIMLi
side the forward operator's ``response`` and ``createJacobian`` are wrapped (counted,
timed). jointinv's traveltime engine gets times and Jacobian from one
``createJacobian`` call that it counts as ``forward``; the ratio of engine calls is
therefore taken over forward + Jacobian calls.

Each side runs in this process, one after the other (jointinv first: pyGIMLi needs its
β), after a warm-up import of both. Model agreement: Pearson correlation and median
|Δ| of log10 ρ / log10 v on the engine cells of the core.

Usage:  python scripts/bench_peers.py [--field] [--json PATH] [--only ert|traveltime]
                                      [--case TEXT] [-v]
"""

from __future__ import annotations

import argparse
import importlib.metadata as md
import json
import logging
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
REALDATA = ROOT.parent / "shared" / "realdata"


@dataclass
class Case:
    """One peer pair: a config and the modality run alone."""

    label: str
    config: Path
    modality: str
    needs: Path | None = None  # a data directory that may be absent


QUICKSTART = [
    Case("quickstart ert", ROOT / "configs" / "quickstart.yaml", "ert"),
    Case("quickstart traveltime", ROOT / "configs" / "quickstart.yaml", "traveltime"),
]
FIELD = [
    Case(
        "luneplate ert",
        ROOT / "configs" / "field" / "luneplate.yaml",
        "ert",
        REALDATA / "luneplate_ert",
    ),
    Case(
        "koenigsee traveltime",
        ROOT / "configs" / "field" / "koenigsee.yaml",
        "traveltime",
        REALDATA / "koenigsee_srt",
    ),
]


# --- helpers (tested in tests/test_bench_peers.py) -------------------------------------
def pygimli_regularization(
    beta: float,
    *,
    alpha_x: float,
    alpha_z: float,
    dx: float,
    dz: float,
    property_weight: float = 1.0,
) -> tuple[float, float]:
    """pyGIMLi ``(lam, zWeight)`` equal to jointinv's smoothness on uniform core cells.

    jointinv: Φ = ½‖W(d − F)‖² + β·w·(α_x‖∂x m‖²_A + α_z‖∂z m‖²_A); one x-difference
    Δm between cells dx apart weighs α_x·Δm²·dz/dx, one z-difference α_z·Δm²·dx/dz.
    pyGIMLi: Φ = ‖W(d − F)‖² + λ‖C m‖², C = ±1 per boundary, z-boundaries × zWeight.
    Doubling jointinv's Φ: λ = 2βwα_x·dz/dx and λ·zWeight² = 2βwα_z·dx/dz.
    """
    if alpha_x <= 0:
        raise ValueError("alpha_x must be positive to express the smoothness in pyGIMLi terms")
    lam = 2.0 * beta * property_weight * alpha_x * dz / dx
    z_weight = float(np.sqrt(alpha_z / alpha_x) * dx / dz)
    return float(lam), z_weight


def ert_relative_error(std_ln: np.ndarray) -> np.ndarray:
    """pyGIMLi relative ERT error whose ln-data σ equals ``std_ln`` (m: unitless).

    pyGIMLi's log data transform takes the error of ln ρa as the relative error
    err/|ρa| itself (first order, not ln(1 + err)): checked here by the χ² of the
    start model, which both sides compute alike (the bench reports both).
    """
    std = np.asarray(std_ln, dtype=float)
    if not np.all(std > 0):
        raise ValueError("standard deviations must be positive")
    return std.copy()


def chi2(observed: np.ndarray, predicted: np.ndarray, std: np.ndarray) -> float:
    """χ² = mean(((d − f)/σ)²), jointinv's definition (2φ_d/N)."""
    r = (np.asarray(observed) - np.asarray(predicted)) / np.asarray(std)
    return float(np.mean(r**2))


def log_agreement(a: np.ndarray, b: np.ndarray) -> dict[str, float]:
    """Correlation and median/max |Δ| of log10 of two positive models (same cells)."""
    la, lb = np.log10(np.asarray(a, dtype=float)), np.log10(np.asarray(b, dtype=float))
    if la.shape != lb.shape or la.size < 2:
        raise ValueError("the two models need the same cells (at least two)")
    corr = float(np.corrcoef(la, lb)[0, 1]) if la.std() > 0 and lb.std() > 0 else float("nan")
    diff = np.abs(la - lb)
    return {
        "correlation_log10": corr,
        "median_abs_dlog10": float(np.median(diff)),
        "max_abs_dlog10": float(diff.max()),
        "n_cells": int(la.size),
    }


def ratio(a: float | None, b: float | None) -> float | None:
    """a / b, None when either is missing or b is 0."""
    if a is None or b is None or b == 0:
        return None
    return float(a) / float(b)


def params_to_cells(markers: np.ndarray, order: np.ndarray, n_cells: int) -> np.ndarray:
    """Matrix-free index: ``cell_values = param_values[index]``.

    pyGIMLi's parameter domain cell ``c`` carries parameter ``markers[c]`` and is engine
    cell ``order[c]``; returns ``index`` with ``index[order[c]] = markers[c]``.
    """
    markers, order = np.asarray(markers, dtype=int), np.asarray(order, dtype=int)
    if len(markers) != n_cells or sorted(order) != list(range(n_cells)):
        raise ValueError("the parameter domain must cover every engine cell once")
    index = np.empty(n_cells, dtype=int)
    index[order] = markers
    return index


def core_cells(centers: np.ndarray, x_min: float, x_max: float, bottom: float) -> np.ndarray:
    """True for centres (x, z) with x_min < x < x_max and z > bottom."""
    x, z = np.asarray(centers, dtype=float)[:, :2].T
    return (x > x_min) & (x < x_max) & (z > bottom)


class CallCounter:
    """Counts and times calls of a forward operator's methods (pyGIMLi side)."""

    def __init__(self) -> None:
        self.calls: dict[str, int] = {"forward": 0, "jacobian": 0}
        self.seconds: dict[str, float] = {"forward": 0.0, "jacobian": 0.0}

    def wrap(self, obj: object, method: str, kind: str) -> None:
        """Replace ``obj.method`` by a counting, timing wrapper (instance attribute)."""
        original = getattr(obj, method)

        def counted(*args, **kwargs):
            start = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                self.seconds[kind] += time.perf_counter() - start
                self.calls[kind] += 1

        setattr(obj, method, counted)


def markdown_table(rows: list[dict]) -> str:
    """The per-pair table (one row per side, one ratio row per pair)."""
    head = (
        "| case | side | wall s | to target s | χ² | target | iterations | forward calls | "
        "Jacobian calls | engine s | corr log10 | median abs Δlog10 |"
    )
    lines = [head, "|" + "---|" * 12]

    def f(v, fmt):
        return "–" if v is None else format(v, fmt)

    for row in rows:
        if "skipped" in row:
            lines.append(f"| {row['case']} | skipped: {row['skipped']} |" + " |" * 10)
            continue
        agree = row.get("agreement", {})
        for side in ("jointinv", "pygimli"):
            s = row[side]
            lines.append(
                f"| {row['case']} | {side} | {f(s['wall_s'], '.2f')} | "
                f"{f(s['to_target_s'], '.2f')} | {f(s['chi2'], '.3f')} | "
                f"{'yes' if s['reached'] else 'no'} | {s['iterations']} | "
                f"{s['forward_calls']} | {s['jacobian_calls']} | {f(s['engine_s'], '.2f')} | "
                f"{f(agree.get('correlation_log10'), '.3f') if side == 'pygimli' else ''} | "
                f"{f(agree.get('median_abs_dlog10'), '.3f') if side == 'pygimli' else ''} |"
            )
        r = row["ratios"]
        lines.append(
            f"| {row['case']} | **jointinv/pyGIMLi** | {f(r['wall'], '.2f')} | "
            f"{f(r['to_target'], '.2f')} | | | {f(r['iterations'], '.2f')} | "
            f"{f(r['forward_calls'], '.2f')} | {f(r['jacobian_calls'], '.2f')} | "
            f"{f(r['engine_s'], '.2f')} (calls {f(r['engine_calls'], '.2f')}) | | |"
        )
    return "\n".join(lines)


# --- the two sides ------------------------------------------------------------------------
@dataclass
class Side:
    """What one side of a pair produced."""

    wall_s: float
    to_target_s: float
    chi2: float
    target: float
    iterations: int
    forward_calls: int
    jacobian_calls: int
    engine_s: float
    chi2_history: list[float]
    model_cells: np.ndarray  # physical property on the engine cells
    extra: dict = field(default_factory=dict)

    @property
    def reached(self) -> bool:
        return self.chi2 <= self.target

    def summary(self) -> dict:
        return {
            "wall_s": self.wall_s,
            "to_target_s": self.to_target_s,
            "chi2": self.chi2,
            "chi2_target": self.target,
            "reached": self.reached,
            "iterations": self.iterations,
            "forward_calls": self.forward_calls,
            "jacobian_calls": self.jacobian_calls,
            "engine_calls": self.forward_calls + self.jacobian_calls,
            "engine_s": self.engine_s,
            "chi2_history": self.chi2_history,
            **self.extra,
        }


def run_jointinv(case: Case, tmp: Path) -> tuple[Side, object]:
    """``jointinv.run(config, only=[modality])``; the result is kept for the peer set-up."""
    import jointinv

    stamps: list[float] = []
    start = time.perf_counter()
    result = jointinv.run(
        case.config,
        only=[case.modality],
        output=tmp / f"{case.label.replace(' ', '_')}.h5",
        force=True,
        diagnostics=False,
        on_iteration=lambda record: stamps.append(time.perf_counter()),
    )
    wall = time.perf_counter() - start
    problem = result.problem
    calls = {"forward": 0, "jacobian": 0}
    seconds = 0.0
    for clock in problem.clocks:
        for kind in calls:
            calls[kind] += clock.calls.get(kind, 0)
        seconds += sum(clock.seconds.values())
    misfit = next(t for t in problem.objective.misfits if t.name == case.modality)
    records = result.inversion.iterations
    sim = misfit.operator.simulation
    prop = problem.config.modalities[case.modality].property
    side = Side(
        wall_s=wall,
        to_target_s=(stamps[-1] - start) if stamps else wall,
        chi2=float(result.chi2[case.modality]),
        target=float(misfit.chi2_target),
        iterations=result.inversion.nit,
        forward_calls=calls["forward"],
        jacobian_calls=calls["jacobian"],
        engine_s=seconds,
        chi2_history=[float(r.chi2[case.modality]) for r in records],
        model_cells=sim.transfer(result.models[prop]),
        extra={
            "message": result.inversion.message,
            "betas": [float(r.beta) for r in records],
            "n_unknowns": int(len(result.inversion.model)),
        },
    )
    return side, result


def _engine_mesh(problem, case: Case, sim):
    """The pyGIMLi mesh jointinv's engine solves on, and its transfer from model cells."""
    from jointinv.engines import pgmesh

    mesh = problem.mesh
    if case.modality == "traveltime":
        return sim._grid, sim.transfer
    if mesh.has_topography:
        return pgmesh.build_pg_topo_mesh(mesh, **pgmesh.topo_mesh_options(mesh, world=True))
    return pgmesh.build_pg_grid(mesh)


def _param_index(mgr, grid) -> np.ndarray:
    """Index from pyGIMLi's parameter vector to the engine grid's cells."""
    from jointinv.engines.pgmesh import match_cells

    para = mgr.fop.paraDomain
    centres = np.array(para.cellCenters())[:, :2]
    order = match_cells(centres, np.array(grid.cellCenters())[:, :2])
    return params_to_cells(np.array(para.cellMarkers()), order, grid.cellCount())


def _inversion_settings(problem, case: Case, jside: Side) -> dict:
    cfg = problem.config
    prop = cfg.modalities[case.modality].property
    reg = cfg.regularization
    spec = problem.mesh.spec
    weight = (reg.property_weights or {}).get(prop, 1.0)
    beta = jside.extra["betas"][1] if len(jside.extra["betas"]) > 1 else jside.extra["betas"][0]
    lam, z_weight = pygimli_regularization(
        beta,
        alpha_x=reg.alpha_x,
        alpha_z=reg.alpha_z,
        dx=spec.dx,
        dz=spec.dz,
        property_weight=weight,
    )
    bounds = cfg.properties[prop].bounds
    return {
        "beta": float(beta),
        "lam": lam,
        "lambdaFactor": 1.0 / cfg.inversion.beta.cooling_factor,
        "zWeight": z_weight,
        "limits": list(bounds) if bounds else None,
        "maxIter": int(cfg.inversion.max_iterations),
        "dPhi": 100.0 * float(cfg.inversion.stagnation_tolerance),
        "cType": 1,
        "isReference": True,
    }


def run_pygimli(case: Case, jresult, jside: Side) -> tuple[Side, dict]:
    """The pyGIMLi manager on the same engine mesh, data, errors, start and schedule."""
    from threadpoolctl import threadpool_limits

    from jointinv.engines.pgmesh import quiet_pygimli

    problem = jresult.problem
    misfit = next(t for t in problem.objective.misfits if t.name == case.modality)
    sim = misfit.operator.simulation
    ds = problem.datasets[case.modality]
    options = problem.config.modalities[case.modality].options
    prop = problem.config.modalities[case.modality].property
    settings = _inversion_settings(problem, case, jside)
    start_cells = sim.transfer(problem.physical(problem.m_start)[prop])
    counter = CallCounter()
    with threadpool_limits(limits=1, user_api="blas"), quiet_pygimli():
        t0 = time.perf_counter()
        grid, _ = _engine_mesh(problem, case, sim)
        if case.modality == "ert":
            mgr, data, threads = _ert_manager(sim, ds, grid, options)
        else:
            mgr, data, threads = _traveltime_manager(sim, ds, grid, options)
        counter.wrap(mgr.fop, "response", "forward")
        counter.wrap(mgr.fop, "createJacobian", "jacobian")
        index = _param_index(mgr, grid)
        start_params = np.empty(len(index))
        start_params[index] = start_cells  # index is a permutation here
        if case.modality == "traveltime":
            start_params = 1.0 / start_params  # the manager inverts slowness
        kwargs = {k: settings[k] for k in ("lam", "lambdaFactor", "zWeight", "maxIter", "dPhi")}
        kwargs.update(cType=1, isReference=True, verbose=False, startModel=start_params)
        if settings["limits"]:
            kwargs["limits"] = list(settings["limits"])
        if case.modality == "ert":
            mgr.invert(data, **kwargs)
        else:
            mgr.invert(data, useGradient=False, secNodes=options.secondary_nodes, **kwargs)
        wall = time.perf_counter() - t0
        threads_after = int(mgr.fop._core.threadCount())
    params = np.asarray(mgr.fw.model, dtype=float)  # TT: velocity after invert
    model_cells = params[index]
    response = np.asarray(mgr.inv.response, dtype=float)
    predicted = np.log(response) if case.modality == "ert" else response
    history = [float(c) for c in mgr.fw.chi2History]
    side = Side(
        wall_s=wall,
        to_target_s=wall,
        chi2=chi2(ds.observed, predicted, ds.std),
        target=float(misfit.chi2_target),
        iterations=len(history) - 1,
        forward_calls=counter.calls["forward"],
        jacobian_calls=counter.calls["jacobian"],
        engine_s=sum(counter.seconds.values()),
        chi2_history=history,
        model_cells=model_cells,
        extra={"chi2_pygimli": float(mgr.inv.chi2()), "n_unknowns": int(len(params))},
    )
    settings.update(engine_threads=threads, engine_threads_after=threads_after)
    settings["n_engine_cells"] = int(grid.cellCount())
    settings["error_model"] = (
        "relative err = σ of ln ρa" if case.modality == "ert" else "absolute err = σ (s)"
    )
    return side, settings


def _ert_manager(sim, ds, grid, options):
    import pygimli as pg
    from pygimli.physics.ert import ERTManager

    from jointinv.engines.ert import _data_container

    data = _data_container(sim.electrodes, sim.abmn, sim.geometric_factors)
    data["rhoa"] = pg.Vector(np.exp(ds.observed))
    data["err"] = pg.Vector(ert_relative_error(ds.std))
    mgr = ERTManager(sr=options.singularity_removal, verbose=False)
    mgr.fop._refineH2 = False  # solve on the given grid, as jointinv's engine does
    mgr.setData(data)
    mgr.setMesh(grid)
    mgr.fop.mesh()  # build the forward mesh now
    threads = int(options.threads)
    mgr.fop._core.setThreadCount(threads)
    return mgr, data, threads


def _traveltime_manager(sim, ds, grid, options):
    import pygimli as pg
    from pygimli.physics.traveltime import TravelTimeManager

    from jointinv.engines.traveltime import _data_container

    survey = ds.survey
    data = _data_container(sim.sensors, survey.shot, survey.geophone)
    data["t"] = pg.Vector(ds.observed)
    data["err"] = pg.Vector(ds.std)
    mgr = TravelTimeManager(secNodes=options.secondary_nodes, verbose=False)
    mgr.setData(data)
    mgr.setMesh(grid, secNodes=options.secondary_nodes)
    threads = int(mgr.fop._core.threadCount())  # left at pyGIMLi's default, as jointinv
    return mgr, data, threads


# --- one pair --------------------------------------------------------------------------------
def run_case(case: Case, tmp: Path) -> dict:
    if case.needs is not None and not case.needs.is_dir():
        return {"case": case.label, "skipped": f"{case.needs} not found"}
    jside, jresult = run_jointinv(case, tmp)
    pside, settings = run_pygimli(case, jresult, jside)
    problem = jresult.problem
    grid_centres = _engine_centres(problem, case, jresult)
    spec = problem.mesh.spec
    bottom = problem.mesh._core_bottom
    mask = core_cells(grid_centres, spec.x_min, spec.x_max, bottom)
    if problem.mesh.has_topography:
        x, z = grid_centres[:, 0], grid_centres[:, 1]
        mask &= z < problem.mesh.surface_elevation(x)
    agreement = log_agreement(jside.model_cells[mask], pside.model_cells[mask])
    j, p = jside.summary(), pside.summary()
    ratios = {
        "wall": ratio(j["wall_s"], p["wall_s"]),
        "to_target": ratio(j["to_target_s"], p["to_target_s"]),
        "iterations": ratio(j["iterations"], p["iterations"]),
        "forward_calls": ratio(j["forward_calls"], p["forward_calls"]),
        "jacobian_calls": ratio(j["jacobian_calls"], p["jacobian_calls"]),
        "engine_calls": ratio(j["engine_calls"], p["engine_calls"]),
        "engine_s": ratio(j["engine_s"], p["engine_s"]),
    }
    notes = []
    if problem.mesh.has_topography:
        notes.append(
            "topography: pyGIMLi inverts one parameter per triangle of jointinv's engine "
            "mesh, jointinv one per tensor cell (λ/zWeight from the core cells: not comparable)"
        )
    notes.append(
        f"χ² of the start model: jointinv {j['chi2_history'][0]:.4g}, pyGIMLi "
        f"{p['chi2_history'][0]:.4g} (same data, errors, start and engine mesh)"
    )
    notes.append(f"jointinv stopped: {j['message']}")
    notes.append(
        f"jointinv β per iteration {[round(b, 4) for b in j['betas'][1:]]}; pyGIMLi λ0 = "
        f"{settings['lam']:.4g} × {settings['lambdaFactor']:g} per iteration"
    )
    if case.modality == "traveltime":
        notes.append(
            "jointinv's traveltime 'forward' calls are createJacobian calls that also give "
            "the times; compare engine calls (forward + Jacobian)"
        )
    return {
        "case": case.label,
        "config": str(case.config.relative_to(ROOT)),
        "modality": case.modality,
        "jointinv": j,
        "pygimli": p,
        "ratios": ratios,
        "agreement": agreement,
        "settings": settings,
        "notes": notes,
    }


def _engine_centres(problem, case: Case, jresult) -> np.ndarray:
    misfit = next(t for t in problem.objective.misfits if t.name == case.modality)
    grid, _ = _engine_mesh(problem, case, misfit.operator.simulation)
    return np.array(grid.cellCenters())[:, :2]


# --- environment ---------------------------------------------------------------------------
def environment() -> dict:
    from threadpoolctl import threadpool_info

    def git(*args: str) -> str:
        try:
            return subprocess.run(
                ["git", "-C", str(ROOT), *args], capture_output=True, text=True, check=True
            ).stdout.strip()
        except (OSError, subprocess.CalledProcessError):
            return "unknown"

    status = git("status", "--porcelain", "--untracked-files=no")
    versions = {}
    for pkg in ("jointinv", "pygimli", "pgcore", "numpy", "scipy", "threadpoolctl"):
        try:
            versions[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            versions[pkg] = "not installed"
    return {
        "commit": git("log", "-1", "--oneline"),
        "dirty": bool(status) and status != "unknown",
        "dirty_files": status.splitlines() if status != "unknown" else [],
        "versions": versions,
        "python": sys.version.split()[0],
        "threadpools": [
            {k: d.get(k) for k in ("internal_api", "num_threads", "filepath")}
            for d in threadpool_info()
        ],
    }


def warm_up() -> None:
    """Import both sides' engines before any timing."""
    import pygimli  # noqa: F401
    from pygimli.physics.ert import ERTManager  # noqa: F401
    from pygimli.physics.traveltime import TravelTimeManager  # noqa: F401

    import jointinv  # noqa: F401
    from jointinv.engines import ert, pgmesh, traveltime  # noqa: F401


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--field", action="store_true", help="also Luneplate ERT, Koenigsee SRT")
    parser.add_argument("--only", choices=["ert", "traveltime"], help="one kind of pair only")
    parser.add_argument("--case", help="only the cases whose label contains this text")
    parser.add_argument("--json", type=Path, help="write the results as JSON here")
    parser.add_argument("-v", "--verbose", action="store_true", help="jointinv progress lines")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING)
    warm_up()
    cases = QUICKSTART + (FIELD if args.field else [])
    if args.only:
        cases = [c for c in cases if c.modality == args.only]
    if args.case:
        cases = [c for c in cases if args.case in c.label]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for case in cases:
            print(f"running {case.label} ...", file=sys.stderr, flush=True)
            row = run_case(case, Path(tmp))
            if "skipped" in row:
                print(f"  skipped: {row['skipped']}", file=sys.stderr)
            rows.append(row)
    env = environment()
    print(f"commit {env['commit']} (working tree {'dirty' if env['dirty'] else 'clean'})")
    print(markdown_table(rows))
    for row in rows:
        for note in row.get("notes", []):
            print(f"- {row['case']}: {note}")
    if args.json:
        args.json.write_text(json.dumps({"environment": env, "pairs": rows}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
