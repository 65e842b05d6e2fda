"""Tests of the config schema: loading, one-line error messages, cross-field checks."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from jointinv.config import (
    Config,
    DepthGradient,
    LoadedConfig,
    from_mapping,
    json_schema,
    load_config,
    parse_config,
)
from jointinv.errors import ConfigError, UserInputError

from .conftest import DELETE, QUICKSTART, gravity_only_mapping, override, quickstart_mapping

SOURCE = "quick.yaml"


def config_error(field: str | None, message: str, *, exact: bool = True):
    """``pytest.raises`` for ``quick.yaml: <field>: <message>`` (the whole message if exact)."""
    where = f"{SOURCE}: {field}: " if field else f"{SOURCE}: "
    pattern = "^" + re.escape(where + message) + ("$" if exact else "")
    return pytest.raises(ConfigError, match=pattern)


#: The property definitions the messages below refer to (the quick start may be retuned).
PINNED = {
    "properties.resistivity": {
        "units": "ohm*m",
        "transform": "log",
        "start": 150,
        "bounds": [1, 10000],
    },
    "properties.velocity": {
        "units": "m/s",
        "transform": "log",
        "start": {"top": 500, "bottom": 2500},
        "bounds": [100, 6000],
    },
    "properties.density_contrast": {
        "units": "g/cm^3",
        "transform": "linear",
        "start": 0.0,
        "bounds": [-1.0, 1.0],
    },
}


def check(changes: dict) -> Config:
    raw = override(override(quickstart_mapping(), PINNED), changes)
    return from_mapping(raw, SOURCE)


# --------------------------------------------------------------------------- valid configs


def test_quickstart_loads():
    loaded = load_config(QUICKSTART)
    cfg = loaded.config
    assert loaded.name == "quickstart.yaml"
    assert loaded.path == QUICKSTART
    assert loaded.text == QUICKSTART.read_text()
    assert list(cfg.properties) == ["resistivity", "velocity", "density_contrast"]
    assert {n: m.kind for n, m in cfg.modalities.items()} == {
        "ert": "ert",
        "traveltime": "traveltime",
        "gravity": "gravity",
    }
    assert {n: m.property for n, m in cfg.modalities.items()} == {
        "ert": "resistivity",
        "traveltime": "velocity",
        "gravity": "density_contrast",
    }
    assert isinstance(cfg.properties["velocity"].start, DepthGradient)
    assert [c.properties for c in cfg.coupling] == [
        ("resistivity", "velocity"),
        ("resistivity", "density_contrast"),
        ("velocity", "density_contrast"),
    ]
    assert set(cfg.regularization.property_weights) <= set(cfg.properties)


def test_defaults_fill_optional_sections():
    raw = quickstart_mapping()
    for section in ("regularization", "inversion", "output", "coupling"):
        del raw[section]
    del raw["mesh"]["padding"]
    cfg = from_mapping(raw, SOURCE)
    assert cfg.coupling == []
    assert (cfg.mesh.padding.n_x, cfg.mesh.padding.n_z, cfg.mesh.padding.factor) == (12, 12, 1.4)
    assert cfg.inversion.max_iterations == 20
    assert cfg.inversion.chi2_target == 1.0
    assert cfg.output.path == "result.h5"
    assert cfg.properties["resistivity"].reference is None


def test_parse_config_from_text():
    cfg = parse_config(QUICKSTART.read_text(), SOURCE)
    assert cfg.mesh.cell_size.dx == 1.0


def test_depth_gradient_start():
    cfg = check({})
    start = cfg.properties["velocity"].start
    assert isinstance(start, DepthGradient)
    assert start.values() == (500.0, 2500.0)
    # a plain number stays a number
    assert cfg.properties["resistivity"].start == 150.0
    # a gradient as reference model too
    ref = {"top": 400, "bottom": 3000}
    cfg = check({"properties.velocity.reference": ref})
    assert cfg.properties["velocity"].reference == DepthGradient(top=400, bottom=3000)


def test_gravity_only_config_is_valid():
    cfg = from_mapping(gravity_only_mapping(), SOURCE)
    assert list(cfg.modalities) == ["gravity"]
    assert list(cfg.properties) == ["density_contrast"]


# --------------------------------------------------------------------------- paths


def test_paths_are_relative_to_the_config_file(tmp_path, monkeypatch):
    sub = tmp_path / "project" / "configs"
    sub.mkdir(parents=True)
    path = sub / "quick.yaml"
    path.write_text(QUICKSTART.read_text())
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    loaded = load_config(Path("..") / "project" / "configs" / "quick.yaml")
    assert isinstance(loaded, LoadedConfig)
    assert loaded.path == path.resolve()
    data = loaded.resolve(loaded.config.modalities["ert"].data)
    assert data == (tmp_path / "project" / "data" / "samples" / "profile2d" / "ert.ohm").resolve()
    assert loaded.resolve("out.h5") == sub.resolve() / "out.h5"
    absolute = tmp_path / "abs" / "x.csv"
    assert loaded.resolve(str(absolute)) == absolute
    monkeypatch.setenv("HOME", str(tmp_path))
    assert loaded.resolve("~/d.csv") == tmp_path / "d.csv"


def test_missing_config_file(tmp_path):
    missing = tmp_path / "quick.yaml"
    with config_error(None, f"config file not found: {missing}"):
        load_config(missing)


def test_config_errors_are_user_input_errors():
    with pytest.raises(UserInputError) as info:
        check({"mesh.cell_size.dx": "abc"})
    err = info.value
    assert (err.source, err.field, err.message) == (SOURCE, "mesh.cell_size.dx", "must be a number")


# --------------------------------------------------------------------------- YAML


def test_malformed_yaml_names_file_and_line(tmp_path):
    path = tmp_path / SOURCE
    path.write_text("mesh:\n  core: {x_min: -4, x_max: 66\n  cell_size: {dx: 1}\n")
    with config_error(None, "malformed YAML: line 3, column 12: ", exact=False):
        load_config(path)


def test_malformed_yaml_unclosed_bracket():
    with config_error(None, "malformed YAML: line 2, column ", exact=False):
        parse_config("properties: [a, b\ninversion: {}\n", SOURCE)


def test_yaml_tab_indentation():
    with config_error(None, "malformed YAML: line 2, column 1: ", exact=False):
        parse_config("mesh:\n\tcore: 1\n", SOURCE)


@pytest.mark.parametrize("text", ["", "- a\n- b\n", "just text\n"])
def test_config_must_be_a_mapping(text):
    with config_error(None, "the config must be a mapping of sections"):
        parse_config(text, SOURCE)


# --------------------------------------------------------------------------- schema errors


def test_unknown_key():
    with config_error("modalities.ert.bogus", "unknown key"):
        check({"modalities.ert.bogus": 1})


def test_unknown_top_level_key():
    with config_error("meshes", "unknown key"):
        check({"meshes": {}})


def test_unknown_key_in_coupling_term():
    with config_error("coupling.1.gamma", "unknown key"):
        check({"coupling.1.gamma": 2})


def test_wrong_type_is_not_a_number():
    with config_error("mesh.cell_size.dx", "must be a number"):
        check({"mesh.cell_size.dx": "abc"})


@pytest.mark.parametrize(
    ("changes", "field", "message"),
    [
        ({"inversion.max_iterations": 2.5}, "inversion.max_iterations", "must be an integer"),
        ({"inversion.max_iterations": -1}, "inversion.max_iterations", "must be >= 0"),
        ({"modalities.ert.options.threads": 0}, "modalities.ert.options.threads", "must be >= 1"),
        ({"mesh.cell_size.dz": 0}, "mesh.cell_size.dz", "must be > 0"),
        ({"mesh.padding.factor": 5}, "mesh.padding.factor", "must be <= 3"),
        ({"inversion.cg.tolerance": 1.5}, "inversion.cg.tolerance", "must be < 1"),
        (
            {"modalities.ert.error.from_file": "maybe"},
            "modalities.ert.error.from_file",
            "must be true or false",
        ),
        ({"modalities.ert.data": 3}, "modalities.ert.data", "must be a string"),
        ({"mesh.core": 5}, "mesh.core", "must be a mapping"),
        ({"coupling": {"a": 1}}, "coupling", "must be a list"),
        ({"properties": {}}, "properties", "must have at least 1 entries"),
        ({"mesh.core.depth": DELETE}, "mesh.core.depth", "required field is missing"),
        (
            {"properties.resistivity.transform": "sqrt"},
            "properties.resistivity.transform",
            "must be one of 'log' or 'linear'",
        ),
        ({"mesh.core.x_max": -10}, "mesh.core", "x_max must be greater than x_min"),
        ({"modalities.gravity.chi2_target": 0}, "modalities.gravity.chi2_target", "must be > 0"),
    ],
)
def test_field_errors(changes, field, message):
    with config_error(field, message):
        check(changes)


def test_unknown_modality_kind():
    with config_error(
        "modalities.ert", "unknown kind 'magnetics'; expected one of 'ert', 'traveltime', 'gravity'"
    ):
        check({"modalities.ert.kind": "magnetics"})


def test_missing_modality_kind():
    with config_error("modalities.gravity", "missing 'kind'"):
        check({"modalities.gravity.kind": DELETE})


def test_options_of_another_kind_are_unknown():
    # the tag of the union (the kind) does not appear in the field path
    with config_error("modalities.gravity.options.threads", "unknown key"):
        check({"modalities.gravity.options": {"threads": 2}})


# --------------------------------------------------------------------------- error models


def test_negative_relative_error():
    with config_error("modalities.ert.error.relative", "must be >= 0"):
        check({"modalities.ert.error.relative": -0.1})


def test_negative_absolute_error():
    with config_error("modalities.gravity.error.absolute", "must be >= 0"):
        check({"modalities.gravity.error.absolute": -0.003})


def test_zero_error_model():
    with config_error(
        "modalities.traveltime.error", "give relative and/or absolute > 0, or from_file: true"
    ):
        check({"modalities.traveltime.error": {"relative": 0, "absolute": 0}})


def test_from_file_needs_no_relative_or_absolute():
    cfg = check({"modalities.ert.error": {"from_file": True}})
    assert cfg.modalities["ert"].error.from_file


# --------------------------------------------------------------------------- names


def test_modality_senses_undefined_property():
    with config_error(
        "modalities.ert.property",
        "'chargeability' is not a defined property "
        "(defined: density_contrast, resistivity, velocity)",
    ):
        check({"modalities.ert.property": "chargeability"})


def test_coupling_between_undefined_properties():
    with config_error(
        "coupling.0.properties",
        "'porosity' is not a defined property (defined: density_contrast, resistivity, velocity)",
    ):
        check({"coupling.0.properties": ["resistivity", "porosity"]})


def test_coupling_of_a_property_with_itself():
    with config_error("coupling.2.properties", "must name two different properties"):
        check({"coupling.2.properties": ["velocity", "velocity"]})


def test_coupling_needs_two_properties():
    with config_error("coupling.0.properties.1", "required field is missing"):
        check({"coupling.0.properties": ["resistivity"]})
    with config_error("coupling.0.properties", "must have at most 2 entries"):
        check({"coupling.0.properties": ["resistivity", "velocity", "density_contrast"]})


def test_coupling_unknown_kind():
    expected = "unknown kind 'joint_tv'; expected one of 'cross_gradient', 'petrophysical'"
    with config_error("coupling.0", expected):
        check({"coupling.0.kind": "joint_tv"})


def test_property_weight_of_undefined_property():
    with config_error(
        "regularization.property_weights.porosity",
        "'porosity' is not a defined property",
        exact=False,
    ):
        check({"regularization.property_weights.porosity": 2})


# --------------------------------------------------------------------------- starting values


def test_depth_gradient_missing_bottom():
    with config_error("properties.velocity.start.bottom", "required field is missing"):
        check({"properties.velocity.start": {"top": 500}})


def test_depth_gradient_unknown_key():
    with config_error("properties.velocity.start.middle", "unknown key"):
        check({"properties.velocity.start": {"top": 500, "bottom": 2500, "middle": 900}})


def test_depth_gradient_value_not_a_number():
    with config_error("properties.velocity.start.top", "must be a number"):
        check({"properties.velocity.start": {"top": "fast", "bottom": 2500}})


@pytest.mark.parametrize("value", ["fast", [500, 2500], None])
def test_start_neither_number_nor_gradient(value):
    with config_error("properties.velocity.start", "must be a number or a mapping {top, bottom}"):
        check({"properties.velocity.start": value})


def test_reference_neither_number_nor_gradient():
    with config_error(
        "properties.resistivity.reference", "must be a number or a mapping {top, bottom}"
    ):
        check({"properties.resistivity.reference": "high"})


def test_depth_gradient_outside_bounds():
    with config_error("properties.velocity", "start 50 lies outside bounds [100, 6000]"):
        check({"properties.velocity.start": {"top": 50, "bottom": 2500}})
    with config_error("properties.velocity", "start 7000 lies outside bounds [100, 6000]"):
        check({"properties.velocity.start": {"top": 500, "bottom": 7000}})


def test_start_outside_bounds():
    with config_error("properties.resistivity", "start 0.5 lies outside bounds [1, 10000]"):
        check({"properties.resistivity.start": 0.5})
    # the bounds themselves are excluded (the bounded transform never reaches them)
    with config_error("properties.density_contrast", "start 1 lies outside bounds [-1, 1]"):
        check({"properties.density_contrast.start": 1.0})


def test_reference_outside_bounds():
    with config_error("properties.resistivity", "reference 100000 lies outside bounds [1, 10000]"):
        check({"properties.resistivity.reference": 1e5})


@pytest.mark.parametrize("bounds", [[1.0, -1.0], [0.5, 0.5]])
def test_lower_bound_not_below_upper(bounds):
    with config_error(
        "properties.density_contrast", "bounds must be [lower, upper] with lower < upper"
    ):
        check({"properties.density_contrast.bounds": bounds})


def test_bounds_need_two_values():
    with config_error("properties.density_contrast.bounds.1", "required field is missing"):
        check({"properties.density_contrast.bounds": [-1.0]})
    with config_error("properties.density_contrast.bounds", "must have at most 2 entries"):
        check({"properties.density_contrast.bounds": [-1.0, 0.0, 1.0]})


def test_bounds_not_numbers():
    with config_error("properties.density_contrast.bounds.0", "must be a number"):
        check({"properties.density_contrast.bounds": ["low", 1.0]})


@pytest.mark.parametrize("start", [0, -3])
def test_log_transform_needs_positive_start(start):
    with config_error("properties.resistivity", "start must be > 0 with a log transform"):
        check({"properties.resistivity.start": start, "properties.resistivity.bounds": None})


def test_log_transform_gradient_needs_positive_values():
    with config_error("properties.velocity", "start must be > 0 with a log transform"):
        check(
            {
                "properties.velocity.start": {"top": 0, "bottom": 2500},
                "properties.velocity.bounds": None,
            }
        )


def test_log_transform_needs_positive_reference():
    with config_error("properties.resistivity", "reference must be > 0 with a log transform"):
        check({"properties.resistivity.reference": -5, "properties.resistivity.bounds": None})


def test_log_transform_with_negative_lower_bound():
    with config_error("properties.resistivity", "bounds must be >= 0 with a log transform"):
        check({"properties.resistivity.bounds": [-1, 10000]})


def test_linear_transform_allows_negative_start():
    cfg = check({"properties.density_contrast.start": -0.2})
    assert cfg.properties["density_contrast"].start == -0.2


# --------------------------------------------------------------------------- several errors


def test_several_errors_on_one_line():
    with pytest.raises(ConfigError) as info:
        check(
            {
                "mesh.cell_size.dx": "abc",
                "modalities.ert.bogus": 1,
                "inversion.max_iterations": -1,
            }
        )
    text = str(info.value)
    assert "\n" not in text
    assert text == (
        "quick.yaml: mesh.cell_size.dx: must be a number; "
        "modalities.ert.bogus: unknown key; inversion.max_iterations: must be >= 0"
    )
    assert info.value.field == "mesh.cell_size.dx"


def test_more_than_three_errors_are_counted():
    with pytest.raises(ConfigError) as info:
        check(
            {
                "mesh.cell_size.dx": "abc",
                "mesh.cell_size.dz": "def",
                "modalities.ert.bogus": 1,
                "inversion.max_iterations": -1,
                "inversion.seed": "x",
            }
        )
    text = str(info.value)
    assert "\n" not in text
    assert text.startswith("quick.yaml: mesh.cell_size.dx: must be a number; ")
    assert text.count("; ") == 2
    assert text.endswith(" (and 2 more)")


# --------------------------------------------------------------------------- JSON schema


def test_json_schema():
    schema = json_schema()
    json.dumps(schema)  # serializable
    assert schema["title"] == "Config"
    assert set(schema["required"]) == {"mesh", "properties", "modalities"}
    assert {
        "mesh",
        "properties",
        "modalities",
        "coupling",
        "regularization",
        "inversion",
        "output",
    } <= set(schema["properties"])
    assert schema["additionalProperties"] is False
    defs = schema["$defs"]
    for name in (
        "ErtModality",
        "TraveltimeModality",
        "GravityModality",
        "DepthGradient",
        "PropertyConfig",
        "ErrorModel",
        "CrossGradientCoupling",
    ):
        assert name in defs, name
    assert "description" in defs["PropertyConfig"]["properties"]["start"]
