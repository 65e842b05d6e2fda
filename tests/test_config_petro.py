"""Bad rock-physics input: derived properties, relations and petrophysical couplings.

Every mistake must give one line naming the config file and the field path,
and exit code 2 from the CLI.
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np
import pytest
from typer.testing import CliRunner

from jointinv.cli import app
from jointinv.config import load_config
from jointinv.errors import ConfigError
from jointinv.problem import build_problem

from .conftest import DELETE, Workspace, gravity_only_mapping, override, quickstart_mapping

runner = CliRunner()

POROSITY = {"units": "fraction", "transform": "linear", "start": 0.3, "bounds": [0.01, 0.6]}
ARCHIE = {"kind": "archie", "fluid_resistivity": 20, "m": 2}
REGION = {"x": [0, 10], "z": [-5, 0]}  # 10 × 5 cells of 1 m
NO_CELLS = {"x": [0.1, 0.4], "z": [-0.4, -0.1]}  # between cell centres



def petro_mapping() -> dict[str, Any]:
    """The quick start with resistivity derived from an inverted porosity (Archie),
    a Wyllie link porosity -> velocity in a region, and a normalized cross-gradient."""
    raw = quickstart_mapping()
    props = raw["properties"]
    raw["properties"] = {
        "porosity": dict(POROSITY),
        "velocity": props["velocity"],
        "density_contrast": props["density_contrast"],
    }
    raw["derived"] = {"resistivity": {"from": "porosity", "units": "ohm*m", "relation": ARCHIE}}
    raw["coupling"] = [
        {
            "kind": "petrophysical",
            "properties": ["porosity", "velocity"],
            "relation": {"kind": "wyllie"},
            "weight": 10,
            "region": REGION,
        },
        {
            "kind": "cross_gradient",
            "properties": ["velocity", "density_contrast"],
            "weight": 1000,
            "normalized": True,
        },
    ]
    return raw


def gravity_petro_mapping() -> dict[str, Any]:
    """Gravity only, two inverted properties both sensed (the second through a
    derived bulk-density contrast), linked by a petrophysical term: builds in ~1 s."""
    raw = gravity_only_mapping()
    raw["properties"]["porosity"] = dict(POROSITY)
    mixing = {"kind": "density_mixing", "rho_matrix": 2.65, "rho_fluid": 1.0, "reference": 2.0}
    raw["derived"] = {"bulk_contrast": {"from": "porosity", "units": "g/cm^3", "relation": mixing}}
    raw["modalities"]["gravity_porosity"] = dict(
        raw["modalities"]["gravity"], property="bulk_contrast"
    )
    raw["coupling"] = [
        {
            "kind": "petrophysical",
            "properties": ["porosity", "density_contrast"],
            "relation": mixing,
            "weight": 10,
            "region": REGION,
        }
    ]
    return raw


def invoke(*args: object):
    return runner.invoke(app, [str(a) for a in args])


def assert_user_error(result, *fragments: str) -> str:
    """Exit code 2 and one line ``error: ...`` on stderr containing every fragment."""
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    line = result.stderr.strip()
    assert "\n" not in line, f"not one line:\n{result.stderr}"
    assert line.startswith("error: "), line
    for fragment in fragments:
        assert re.search(re.escape(fragment), line), f"{fragment!r} not in {line!r}"
    return line


def test_petro_configs_are_valid(workspace: Workspace):
    result = invoke("validate", workspace.variant({}, base=petro_mapping()))
    assert result.exit_code == 0, result.output
    assert "ert (ert -> resistivity)" in result.stdout
    result = invoke("validate", workspace.variant({}, "g.yaml", base=gravity_petro_mapping()))
    assert result.exit_code == 0, result.output


def test_region_and_cell_weights_select_cells(workspace: Workspace):
    raw = override(
        gravity_petro_mapping(),
        {
            "coupling.0.cell_weights": [
                {"x": [4, 8], "z": [-3, 0], "weight": 3.0},
                {"x": [7, 8], "z": [-1, 0], "weight": 0.5},  # later boxes win
                {"x": [30, 40], "z": [-3, 0], "weight": 9.0},  # outside the region
            ]
        },
    )
    problem = build_problem(load_config(workspace.write("g.yaml", raw)))
    (term,) = problem.objective.couplings
    assert term.name == "petrophysical/porosity__density_contrast"
    w = term.cell_weights
    # region: 50 cells of weight 1, except 4 × 3 at 3 (one of them at 0.5)
    assert np.count_nonzero(w) == 50
    assert np.sort(w[w > 0]).tolist() == [0.5] + [1.0] * 38 + [3.0] * 11
    assert w.sum() == pytest.approx(38 + 33 + 0.5)


# (dotted changes of petro_mapping, field path, message fragment)
BAD = {
    "derived_unknown_kind": (
        {"derived.resistivity.relation.kind": "archy"},
        "derived.resistivity.relation",
        "unknown kind 'archy'",
    ),
    "coupling_unknown_kind": (
        {"coupling.0.relation.kind": "wylie"},
        "coupling.0.relation",
        "unknown kind 'wylie'",
    ),
    "archie_m": (
        {"derived.resistivity.relation.m": 9},
        "derived.resistivity.relation.m",
        "must be <= 5",
    ),
    "archie_saturation": (
        {"derived.resistivity.relation.saturation": 0},
        "derived.resistivity.relation.saturation",
        "must be > 0",
    ),
    "archie_unknown_key": (
        {"derived.resistivity.relation.cementation": 2},
        "derived.resistivity.relation.cementation",
        "unknown key",
    ),
    "gardner_b": (
        {
            "coupling.0": {
                "kind": "petrophysical",
                "properties": ["velocity", "density_contrast"],
                "relation": {"kind": "gardner", "b": 1.5},
                "weight": 1,
            }
        },
        "coupling.0.relation.b",
        "must be < 1",
    ),
    "density_mixing_rho_matrix": (
        {
            "coupling.0": {
                "kind": "petrophysical",
                "properties": ["porosity", "density_contrast"],
                "relation": {"kind": "density_mixing", "rho_matrix": -1},
                "weight": 1,
            }
        },
        "coupling.0.relation.rho_matrix",
        "must be > 0",
    ),
    "wyllie_v_fluid": (
        {"coupling.0.relation.v_fluid": 0},
        "coupling.0.relation.v_fluid",
        "must be > 0",
    ),
    "petrophysical_weight": ({"coupling.0.weight": 0}, "coupling.0.weight", "must be > 0"),
    "region_order": (
        {"coupling.0.region": {"x": [10, 0], "z": [-5, 0]}},
        "coupling.0.region",
        "x and z must be [min, max] with min < max",
    ),
    "cell_weight_negative": (
        {"coupling.0.cell_weights": [{"x": [0, 5], "z": [-2, 0], "weight": -1}]},
        "coupling.0.cell_weights.0.weight",
        "must be >= 0",
    ),
    "normalized_not_bool": (
        {"coupling.1.normalized": "maybe"},
        "coupling.1.normalized",
        "must be true or false",
    ),
    "derived_from_undefined": (
        {"derived.resistivity.from": "poro"},
        "derived.resistivity.from",
        "'poro' is not a defined inverted property (defined: density_contrast, porosity, velocity)",
    ),
    "derived_from_missing": (
        {"derived.resistivity.from": DELETE},
        "derived.resistivity.from",
        "required field is missing",
    ),
    "derived_clashes_with_inverted": (
        {"derived.velocity": {"from": "porosity", "units": "m/s", "relation": {"kind": "wyllie"}}},
        "derived.velocity",
        "is already an inverted property",
    ),
    "relation_input_without_bounds": (
        {"properties.porosity.bounds": DELETE},
        "derived.resistivity.relation",
        "archie is valid for porosity in (0, 1); give properties.porosity.bounds inside that range",
    ),
    "relation_input_bounds_outside": (
        {"properties.porosity.bounds": [0.01, 1.2]},
        "derived.resistivity.relation",
        "archie is valid for porosity in (0, 1); give properties.porosity.bounds inside that range",
    ),
    "coupling_relation_input_bounds_outside": (
        {
            "derived": {},
            "modalities.ert.property": "velocity",
            "properties.porosity.bounds": [-0.1, 0.6],
        },
        "coupling.0.relation",
        "wyllie is valid for porosity in (0, 1)",
    ),
    "coupling_names_derived": (
        {"coupling.1.properties": ["resistivity", "velocity"]},
        "coupling.1.properties",
        "'resistivity' is a derived property; couplings act on inverted properties",
    ),
    "coupling_names_undefined": (
        {"coupling.0.properties": ["porosity", "vp"]},
        "coupling.0.properties",
        "'vp' is not a defined property",
    ),
    "modality_senses_undefined": (
        {"modalities.ert.property": "rho"},
        "modalities.ert.property",
        "'rho' is not a defined property (defined: density_contrast, porosity, velocity, "
        "resistivity)",
    ),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_rock_physics_input(workspace: Workspace, case: str):
    changes, field, fragment = BAD[case]
    path = workspace.variant(changes, base=petro_mapping())
    line = assert_user_error(invoke("validate", path), f"quick.yaml: {field}: ", fragment)
    # the library raises the same message
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert info.value.field == field
    assert line == f"error: {info.value}"


@pytest.mark.parametrize(
    ("changes", "field", "message"),
    [
        ({"coupling.0.region": NO_CELLS}, "coupling.0.region", "the region covers no cells"),
        (
            {"coupling.0.region": {"x": [1000, 2000], "z": [-5, 0]}},  # beyond the padding
            "coupling.0.region",
            "the region covers no cells",
        ),
        (
            {"coupling.0.cell_weights": [{"weight": 2.0, **REGION}, {"weight": 0.5, **NO_CELLS}]},
            "coupling.0.cell_weights.1",
            "the box covers no cells",
        ),
    ],
)
def test_boxes_covering_no_cells(workspace: Workspace, changes, field, message):
    path = workspace.variant(changes, "g.yaml", base=gravity_petro_mapping())
    with pytest.raises(ConfigError) as info:
        build_problem(load_config(path))
    assert info.value.field == field
    assert str(info.value) == f"g.yaml: {field}: {message}"


def test_region_covering_no_cells_exits_2(workspace: Workspace):
    path = workspace.variant(
        {"coupling.0.region": NO_CELLS}, "g.yaml", base=gravity_petro_mapping()
    )
    result = invoke("run", path, "--quiet")
    assert_user_error(result, "g.yaml: coupling.0.region: the region covers no cells")
    assert not (workspace.root / "out" / "gravity.h5").exists()
