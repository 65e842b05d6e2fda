"""The documentation site: the config reference is generated from the whole schema, and
the site builds with warnings as errors, without network, in well under a minute."""

from __future__ import annotations

import ast
import importlib.util
import inspect
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import BaseModel

from jointinv import config as schema

REPO = Path(__file__).resolve().parents[1]
DOCS = REPO / "docs"
EXAMPLES = sorted((DOCS / "examples").glob("plot_*.py"))


def _load(name: str):
    """A module of docs/_ext (not a package: Sphinx puts that folder on sys.path)."""
    spec = importlib.util.spec_from_file_location(name, DOCS / "_ext" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up while it loads
    spec.loader.exec_module(module)
    return module


reference = _load("config_reference")


def schema_models() -> list[type[BaseModel]]:
    """Every concrete model of jointinv.config (the bases with no keys of their own left
    out), found without the generator's own walk."""
    return [
        obj
        for name, obj in vars(schema).items()
        if inspect.isclass(obj)
        and issubclass(obj, BaseModel)
        and obj.__module__ == schema.__name__
        and not name.startswith("_")
    ]


def section_text(model: type[BaseModel]) -> str:
    (section,) = [s for s in reference.sections() if s.model is model]
    return reference.section_rst(section)


# --- the generated config reference ------------------------------------------------------
@pytest.mark.parametrize("model", schema_models(), ids=lambda m: m.__name__)
def test_every_model_and_key_is_in_the_reference(model):
    text = section_text(model)
    assert f".. _config-{model.__name__}:" in text
    for name, field in model.model_fields.items():
        key = field.alias or name
        assert re.search(rf"\* - ``(\S+\.)?{re.escape(key)}``", text), key


@pytest.mark.parametrize(
    ("model", "row"),
    [
        (schema.Padding, ["``mesh.padding.factor``", "number (≥ 1.0, ≤ 3.0)", "``1.4``",
                          "Growth factor of consecutive padding cells."]),
        (schema.CoreRegion, ["``mesh.core.depth``", "number (> 0)", "required"]),
        (schema.DiagnosticsConfig, ["``diagnostics.rank``", "integer (≥ 1)", "``400``"]),
        (schema.InversionConfig, ["``inversion.chi2_band``", "[number (> 0), number (> 0)]",
                                  "``[0.8, 1.2]``"]),
        (schema.ErtModality, ["``modalities.<name>.kind``", "``ert``", "required"]),
        (schema.ErtModality, ["``modalities.<name>.error``",
                              ":ref:`ErrorModel <config-ErrorModel>`", "required"]),
        (schema.Config, ["``coupling``", "chosen by ``kind``", "``[]``"]),
        (schema.DerivedProperty, ["``derived.<name>.from``", "string", "required"]),
        (schema.PropertyConfig, ["``properties.<name>.units``", r"'ohm\*m'"]),
    ],
)
def test_reference_rows_give_type_default_and_description(model, row):
    lines = section_text(model).splitlines()
    start = lines.index(f"   * - {row[0]}")
    cells = "\n".join(lines[start : start + 4])
    for fragment in row[1:]:
        assert fragment in cells, (fragment, cells)


def test_a_type_the_reference_cannot_render_fails_the_build():
    with pytest.raises(TypeError, match="no rendering"):
        reference.type_text(complex)


def test_shared_models_are_documented_once_and_linked():
    paths = [s.path for s in reference.sections()]
    assert len({s.model for s in reference.sections()}) == len(paths)
    titles = [s.title for s in reference.sections()]
    assert len(set(titles)) == len(titles)
    assert "modalities.<name>.options (with kind: gravity)" in titles


# --- the gallery -------------------------------------------------------------------------
def test_gallery_covers_the_examples_the_issue_asks_for():
    stems = [p.stem for p in EXAMPLES]
    for topic in ("quickstart", "petrophysical", "field", "conflict", "batch"):
        assert any(topic in stem for stem in stems), topic


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
def test_gallery_example_has_a_title_and_its_configs_exist(path):
    tree = ast.parse(path.read_text())
    doc = ast.get_docstring(tree)
    title, underline = doc.splitlines()[:2]
    assert title and set(underline) == {"="} and len(underline) >= len(title)
    for parts in re.findall(r'"configs"((?: / "[^"]+")+)', path.read_text()):
        config = REPO.joinpath("configs", *re.findall(r'"([^"]+)"', parts))
        assert config.is_file(), config


# --- the site ----------------------------------------------------------------------------
def test_docs_build_with_warnings_as_errors(tmp_path):
    """The documented command, on a copy of docs/ (sphinx-gallery writes its pages into
    the source folder), with any network access made to fail at once."""
    source = tmp_path / "docs"
    shutil.copytree(DOCS, source, ignore=shutil.ignore_patterns("_build", "auto_examples"))
    out = tmp_path / "html"
    dead = "http://127.0.0.1:9"
    env = {**os.environ, "PYTHONPATH": str(REPO), "HTTP_PROXY": dead, "HTTPS_PROXY": dead,
           "http_proxy": dead, "https_proxy": dead, "NO_PROXY": "", "no_proxy": ""}
    proc = subprocess.run(
        [sys.executable, "-m", "sphinx", "-b", "html", "-W", "--keep-going", "-q",
         str(source), str(out)],
        capture_output=True, text=True, env=env, timeout=300, cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == "", proc.stderr
    pages = {p.relative_to(out).as_posix() for p in out.rglob("*.html")}
    for page in ("index.html", "getting-started.html", "config-reference.html",
                 "choosing.html", "results.html", "api.html", "auto_examples/index.html"):
        assert page in pages
    for example in EXAMPLES:
        assert f"auto_examples/{example.stem}.html" in pages
    text = (out / "config-reference.html").read_text()
    assert "mesh.cell_size.dx" in text and "coupling.&lt;i&gt;.cell_weights" in text


def test_no_extension_reaches_the_network():
    conf = (DOCS / "conf.py").read_text()
    assert "intersphinx" not in conf
    assert re.search(r'"plot_gallery": "False"', conf)
