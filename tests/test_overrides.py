"""``--set key=value`` on ``jointinv run`` and ``validate``, and the dotted paths they
share with sweep files (:mod:`jointinv.overrides`)."""

from __future__ import annotations

import h5py
import pytest
import yaml

from jointinv.config import load_config, parse_config
from jointinv.errors import UserInputError
from jointinv.overrides import load_with_overrides, parse_assignments, set_dotted

from .conftest import Workspace, gravity_only_mapping
from .test_cli import assert_user_error, invoke


def test_set_dotted():
    raw = {"a": {"b": [{"c": 1}]}}
    set_dotted(raw, "a.b.0.c", 2)
    set_dotted(raw, "x.y", 3)
    assert raw == {"a": {"b": [{"c": 2}]}, "x": {"y": 3}}
    with pytest.raises(KeyError, match="a.b is a list of 1 entries"):
        set_dotted(raw, "a.b.1.c", 0)
    with pytest.raises(KeyError, match="a.b.0.c is a value"):
        set_dotted(raw, "a.b.0.c.d", 0)


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("inversion.max_iterations=5", 5),
        ("coupling.0.weight=100", 100),
        ("inversion.chi2_band=[0.9,1.1]", [0.9, 1.1]),
        ("regularization.alpha_s=1e-3", 1e-3),  # YAML 1.1 would read a string
        ("inversion.beta.initial=", None),
        ("output.path=run=2.h5", "run=2.h5"),
        ("diagnostics.enabled=false", False),
        ("properties.velocity.start={top: 400, bottom: 2000}", {"top": 400, "bottom": 2000}),
    ],
)
def test_values_are_yaml(text, value):
    key = text.split("=", 1)[0]
    assert parse_assignments([text], "q.yaml") == {key: value}


def test_validate_applies_every_set(quick_config):
    result = invoke(
        "validate",
        quick_config,
        "--set",
        "mesh.core.depth=12",
        "--set",
        "mesh.cell_size.dz=0.5",
    )
    assert result.exit_code == 0, result.output
    assert "mesh: 94 x 36 cells" in result.stdout  # 12 m / 0.5 m core + 12 padding


@pytest.mark.parametrize(
    ("assignment", "fragments"),
    [
        ("inversion.max_iterations=abc", ["quick.yaml: --set inversion.max_iterations = abc:"]),
        ("coupling.7.weight=1", ["quick.yaml: --set coupling.7.weight:", "list of 3 entries"]),
        ("inversion.maxit=3", ["--set inversion.maxit = 3: unknown key", "max_iterations"]),
        ("inversion.chi2_band=[0.9", ["quick.yaml: --set inversion.chi2_band: malformed YAML"]),
        ("inversion.chi2_band=[1.1,1.2]", ["--set inversion.chi2_band = [1.1, 1.2]:", "low <= 1"]),
        ("inversion.seed.x=1", ["--set inversion.seed.x: inversion.seed is a value (0)"]),
        ("mesh.cell_size.dx=1e-4", ["--set mesh.cell_size.dx = 0.0001:", "cells"]),
        ("maxit", ["quick.yaml: --set maxit: expected key=value"]),
        ("=3", ["quick.yaml: --set =3: expected key=value"]),
        ("inversion..seed=1", ["--set inversion..seed: not a dotted path"]),
    ],
)
@pytest.mark.parametrize("command", ["run", "validate"])
def test_bad_set_is_one_line(quick_config, command, assignment, fragments):
    out = quick_config.parent / "out.h5"
    args = ["-o", out] if command == "run" else []
    assert_user_error(invoke(command, quick_config, *args, "--set", assignment), *fragments)
    assert not out.exists()


def test_without_set_the_file_is_loaded_as_it_is(quick_config):
    assert load_with_overrides(quick_config, []).text == quick_config.read_text()


def test_overridden_text_reproduces_the_config(quick_config):
    loaded = load_with_overrides(
        quick_config, ["inversion.max_iterations=5", "coupling.0.weight=100"]
    )
    assert loaded.path == load_config(quick_config).path  # data paths resolve as before
    assert parse_config(loaded.text) == loaded.config
    assert loaded.config.inversion.max_iterations == 5
    assert loaded.config.coupling[0].weight == 100
    assert "--set coupling.0.weight=100" in loaded.text.splitlines()[2]


def test_a_later_set_of_the_same_key_wins():
    assert parse_assignments(["a=1", "a=2"], "q.yaml") == {"a": 2}


def test_bad_value_error_is_a_user_error(quick_config):
    with pytest.raises(UserInputError, match="--set inversion.seed = -1: must be >= 0"):
        load_with_overrides(quick_config, ["inversion.seed=-1"])


def test_run_records_the_overridden_config(workspace: Workspace):
    config = workspace.write("gravity.yaml", gravity_only_mapping())
    out = workspace.root / "run.h5"
    result = invoke(
        "run",
        config,
        "-o",
        out,
        "--quiet",
        "--set",
        "inversion.max_iterations=1",
        "--set",
        "diagnostics.enabled=false",
    )
    assert result.exit_code == 0, result.output
    with h5py.File(out, "r") as f:
        meta = f["meta"].attrs
        stored = yaml.safe_load(meta["config_text"])
        assert len(f["iterations/beta"]) == 2  # the start and one iteration
        assert "diagnostics" not in f
    assert stored["inversion"]["max_iterations"] == 1
    assert stored["diagnostics"]["enabled"] is False
    assert stored["modalities"] == gravity_only_mapping()["modalities"]
