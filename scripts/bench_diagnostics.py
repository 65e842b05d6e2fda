#!/usr/bin/env python
"""Time the posterior diagnostics against the inversion on the quick start.

One run: the inversion (without diagnostics), then the diagnostics at its final
model, at the default settings and at a few other ranks, each split into its
parts. Goal tracked: diagnostics at the default rank ≤ 50 % of the inversion's
wall time. Also prints how the posterior std converges with the rank (against
the full-rank decomposition), which is how the default rank was chosen.

Usage:  python scripts/bench_diagnostics.py [--config configs/quickstart.yaml]
                                            [--ranks 100 200 300 400]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits

import jointinv
from jointinv.diagnostics import compute_diagnostics, prior_precision, run_diagnostics
from jointinv.posterior import Posterior, PriorFactor, StackedJacobian, decompose_all


def _engine_seconds(problem) -> float:
    return sum(c.seconds.get("forward", 0) + c.seconds.get("jacobian", 0) for c in problem.clocks)


def _parts(problem, model, rank: int, settings) -> dict[str, float]:
    """Wall time of the diagnostics' main steps (the Jacobians are already cached)."""
    rng = np.random.default_rng(0)
    out = {}
    with threadpool_limits(limits=1, user_api="blas"):
        t = time.perf_counter()
        prior = PriorFactor(prior_precision(problem.objective, model))
        out["prior factor"] = time.perf_counter() - t
        t = time.perf_counter()
        prior.inverse_diagonal()
        out["diag(P^-1)"] = time.perf_counter() - t
        jac = {m.name: m.weighted_jacobian(model) for m in problem.objective.misfits}
        t = time.perf_counter()
        updates = decompose_all(
            jac,
            prior,
            rank=rank,
            oversampling=settings.oversampling,
            power_iterations=settings.power_iterations,
            rng=rng,
        )
        out["eigendecompositions"] = time.perf_counter() - t
        t = time.perf_counter()
        post = Posterior(prior, StackedJacobian(list(jac.values())), updates["joint"])
        post.resolution_diagonal(probes=settings.probes, rng=rng)
        out["resolution (low rank + probes)"] = time.perf_counter() - t
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    root = Path(__file__).resolve().parents[1]
    parser.add_argument("--config", type=Path, default=root / "configs" / "quickstart.yaml")
    parser.add_argument("--ranks", type=int, nargs="+", default=[100, 200, 300, 400])
    args = parser.parse_args()

    start = time.perf_counter()
    result = jointinv.run(args.config, write=False, diagnostics=False)
    t_inversion = time.perf_counter() - start
    problem, model = result.problem, result.inversion.model
    settings = problem.config.diagnostics
    n_data = sum(m.n_data for m in problem.objective.misfits)

    engine0 = _engine_seconds(problem)
    start = time.perf_counter()
    default = run_diagnostics(problem, model)
    engine = _engine_seconds(problem) - engine0
    t_default = time.perf_counter() - start  # includes the engines' Jacobians at the final model
    print(
        f"quick start: {result.inversion.nit} iterations, {len(model)} parameters, "
        f"{n_data} data, chi2 " + ", ".join(f"{k} {v:.3f}" for k, v in result.chi2.items())
    )
    print(f"| {'part':<34s} | {'seconds':>8s} |")
    print(f"|{'-' * 36}|{'-' * 10}|")
    print(f"| {'inversion':<34s} | {t_inversion:8.2f} |")
    label = f"diagnostics, rank {settings.rank}, {settings.probes} probes"
    print(f"| {label:<34s} | {t_default:8.2f} |")
    print(f"|   {'engines (Jacobians at the model)':<32s} | {engine:8.2f} |")
    for key, seconds in _parts(problem, model, settings.rank, settings).items():
        print(f"|   {key:<32s} | {seconds:8.2f} |")
    print(f"diagnostics / inversion: {100 * t_default / t_inversion:.1f} % (goal <= 50 %)")

    full = compute_diagnostics(problem, model, rank=n_data, probes=0, rng=np.random.default_rng(0))
    print(
        "\nconvergence with the rank (posterior std against full rank "
        f"{n_data}; relative error over all cells)"
    )
    print(f"| {'rank':>5s} | {'seconds':>8s} | {'max':>9s} | {'99 %':>9s} | {'smallest λ':>10s} |")
    print(f"|{'-' * 7}|{'-' * 10}|{'-' * 11}|{'-' * 11}|{'-' * 12}|")
    ref = np.concatenate([full.posterior_std[p] for p in full.properties])
    for rank in args.ranks:
        start = time.perf_counter()
        d = compute_diagnostics(problem, model, rank=rank, probes=0, rng=np.random.default_rng(0))
        seconds = time.perf_counter() - start
        std = np.concatenate([d.posterior_std[p] for p in d.properties])
        err = np.abs(std / ref - 1)
        print(
            f"| {rank:5d} | {seconds:8.2f} | {err.max():9.2e} | {np.percentile(err, 99):9.2e} "
            f"| {d.eigenvalues['joint'][-1]:10.2e} |"
        )
    lam = full.eigenvalues["joint"]
    print(
        f"eigenvalues of the joint prior-preconditioned Hessian: {np.sum(lam > 1)} > 1, "
        f"{np.sum(lam > 1e-2)} > 0.01, {np.sum(lam > 1e-4)} > 1e-4 (of {n_data})"
    )
    print(f"default run: smallest kept λ {default.eigenvalues['joint'][-1]:.2e}")
    _print_doi(problem, default)


def _print_doi(problem, diagnostics) -> None:
    """Depth of investigation per modality: at the centre and the shallowest over the spread."""
    mesh = problem.mesh
    nx, nz = mesh.shape
    x, z = (c.reshape(nz, nx) for c in mesh.cell_centers.T)
    for name, mask in diagnostics.doi_mask.items():
        sensors = problem.datasets[name].sensors[:, 0]
        cols = np.flatnonzero((x[0] > sensors.min()) & (x[0] < sensors.max()))
        grid = mask.reshape(nz, nx)
        depth = np.array([-z[grid[:, c], c].min() if grid[:, c].any() else 0.0 for c in cols])
        print(
            f"DOI {name}: {depth[len(depth) // 2]:.1f} m at the centre of the spread, "
            f"{depth.min():.1f} to {depth.max():.1f} m over it"
        )


if __name__ == "__main__":
    main()
