"""The install the README documents: constraints.txt, and .ci/run doing the same."""

from __future__ import annotations

import re
import shlex

import pytest

from .conftest import REPO

PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([A-Za-z0-9][A-Za-z0-9.+!_-]*)$")


def normalized(name: str) -> str:
    """PEP 503 name: ``Jinja2`` -> ``jinja2``, ``typing_extensions`` -> ``typing-extensions``."""
    return re.sub(r"[-_.]+", "-", name).lower()


def pins() -> dict[str, str]:
    out: dict[str, str] = {}
    for n, line in enumerate((REPO / "constraints.txt").read_text().splitlines(), start=1):
        if not line or line.startswith("#"):
            continue
        match = PIN.match(line)
        assert match, f"constraints.txt:{n}: not name==version: {line!r}"
        name = normalized(match[1])
        assert name not in out, f"constraints.txt:{n}: {name} pinned twice"
        out[name] = match[2]
    return out


def pip_install(text: str) -> list[str]:
    """The words of the first ``.venv/bin/pip install`` command in ``text`` (no --quiet)."""
    match = re.search(r"\.venv/bin/pip install [^\n&]*", text)
    assert match, "no .venv/bin/pip install command"
    return [w for w in shlex.split(match[0]) if w not in ("--quiet", "-q")]


def test_constraints_are_pins_and_leave_out_jointinv():
    pinned = pins()
    assert "jointinv" not in pinned
    assert len(pinned) > 20


def test_constraints_pin_every_declared_dependency():
    tomllib = pytest.importorskip("tomllib")
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    extras = project["optional-dependencies"]
    declared = [*project["dependencies"], *extras["test"], *extras["docs"]]
    names = {normalized(re.split(r"[\[<>=!~; ]", d, maxsplit=1)[0]) for d in declared}
    assert names - set(pins()) == set()


def test_readme_and_ci_install_the_same_way_with_the_constraints():
    readme = pip_install((REPO / "README.md").read_text())
    ci = pip_install((REPO / ".ci" / "run").read_text())
    assert readme == ci == [".venv/bin/pip", "install", "-c", "constraints.txt", "-e", ".[test]"]
