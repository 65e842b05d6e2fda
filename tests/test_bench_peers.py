"""Helpers of scripts/bench_peers.py on tiny inputs (no engines, no timing)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

_PATH = Path(__file__).resolve().parents[1] / "scripts" / "bench_peers.py"
_spec = importlib.util.spec_from_file_location("bench_peers", _PATH)
bench = importlib.util.module_from_spec(_spec)
sys.modules.setdefault("bench_peers", bench)  # dataclasses look their module up
_spec.loader.exec_module(bench)


def test_regularization_square_cells():
    lam, zw = bench.pygimli_regularization(0.5, alpha_x=1.0, alpha_z=1.0, dx=1.0, dz=1.0)
    assert lam == pytest.approx(1.0)  # 2β: jointinv's φ_d carries ½
    assert zw == pytest.approx(1.0)


def test_regularization_flat_cells_and_weights():
    # Luneplate's cells: dx = 2.5, dz = 1.25; x-term α_x·dz/dx, z-term α_z·dx/dz
    lam, zw = bench.pygimli_regularization(
        1.0, alpha_x=1.0, alpha_z=4.0, dx=2.5, dz=1.25, property_weight=10.0
    )
    assert lam == pytest.approx(2 * 10 * 0.5)
    assert lam * zw**2 == pytest.approx(2 * 10 * 4.0 * 2.0)


def test_regularization_needs_alpha_x():
    with pytest.raises(ValueError, match="alpha_x"):
        bench.pygimli_regularization(1.0, alpha_x=0.0, alpha_z=1.0, dx=1.0, dz=1.0)


def test_ert_relative_error_is_the_ln_sigma():
    std = np.array([0.03, 0.05])
    out = bench.ert_relative_error(std)
    np.testing.assert_array_equal(out, std)
    out[0] = 1.0
    assert std[0] == 0.03  # a copy
    with pytest.raises(ValueError):
        bench.ert_relative_error(np.array([0.0]))


def test_chi2():
    assert bench.chi2([1.0, 2.0], [0.0, 2.0], [0.5, 1.0]) == pytest.approx(2.0)


def test_log_agreement():
    a = np.array([10.0, 100.0, 1000.0])
    out = bench.log_agreement(a, 2 * a)
    assert out["correlation_log10"] == pytest.approx(1.0)
    assert out["median_abs_dlog10"] == pytest.approx(np.log10(2))
    assert out["n_cells"] == 3
    assert np.isnan(bench.log_agreement(np.ones(3), a)["correlation_log10"])
    with pytest.raises(ValueError):
        bench.log_agreement(a, a[:2])


def test_ratio():
    assert bench.ratio(1.0, 4.0) == 0.25
    assert bench.ratio(1.0, 0) is None
    assert bench.ratio(None, 1.0) is None


def test_params_to_cells():
    # para cell c holds parameter markers[c] and is engine cell order[c]
    markers, order = np.array([2, 0, 1]), np.array([1, 2, 0])
    index = bench.params_to_cells(markers, order, 3)
    params = np.array([10.0, 11.0, 12.0])
    cells = params[index]
    for c in range(3):
        assert cells[order[c]] == params[markers[c]]
    with pytest.raises(ValueError):
        bench.params_to_cells(markers, np.array([0, 0, 1]), 3)


def test_core_cells():
    centres = np.array([[0.5, -0.5], [-5.0, -0.5], [0.5, -30.0], [9.5, -17.5]])
    np.testing.assert_array_equal(
        bench.core_cells(centres, 0.0, 10.0, -18.0), [True, False, False, True]
    )


def test_call_counter():
    counter = bench.CallCounter()
    obj = SimpleNamespace(response=lambda x: 2 * x)
    counter.wrap(obj, "response", "forward")
    assert obj.response(3) == 6
    assert obj.response(4) == 8
    assert counter.calls == {"forward": 2, "jacobian": 0}
    assert counter.seconds["forward"] >= 0.0


def _side(**extra):
    return {
        "wall_s": 2.0,
        "to_target_s": 1.5,
        "chi2": 0.9,
        "reached": True,
        "iterations": 3,
        "forward_calls": 4,
        "jacobian_calls": 3,
        "engine_s": 1.0,
        **extra,
    }


def test_markdown_table():
    rows = [
        {
            "case": "tiny ert",
            "jointinv": _side(),
            "pygimli": _side(chi2=1.1, reached=False),
            "ratios": dict.fromkeys(
                (
                    "wall",
                    "to_target",
                    "iterations",
                    "forward_calls",
                    "jacobian_calls",
                    "engine_s",
                    "engine_calls",
                ),
                1.0,
            ),
            "agreement": {"correlation_log10": 0.99, "median_abs_dlog10": 0.01},
        },
        {"case": "field", "skipped": "data not found"},
    ]
    text = bench.markdown_table(rows)
    lines = text.splitlines()
    assert len(lines) == 2 + 3 + 1
    assert all(line.count("|") == lines[0].count("|") for line in lines[:5])
    assert "| tiny ert | pygimli |" in text and "| no |" in text
    assert "skipped: data not found" in text
