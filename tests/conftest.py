"""Shared fixtures: a copy of the quick-start config and sample data in tmp_path."""

from __future__ import annotations

import copy
import logging
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
QUICKSTART = REPO / "configs" / "quickstart.yaml"
SAMPLES = REPO / "data" / "samples" / "profile2d"
#: Real field datasets live beside the repository, never inside it.
REALDATA = REPO.parent / "shared" / "realdata"

#: Data file of each modality in the copied sample folder (relative to the config).
DATA_FILES = {
    "ert": "data/ert.ohm",
    "traveltime": "data/traveltime.sgt",
    "gravity": "data/gravity.csv",
}


def real(rel: str) -> Path:
    """A file of ``../shared/realdata``; skips the test when it is absent."""
    if not REALDATA.is_dir():
        pytest.skip(f"real data directory {REALDATA} not present (shared data beside the repo)")
    path = REALDATA / rel
    if not path.is_file():
        pytest.skip(f"real data file {path} not present")
    return path


def quickstart_mapping() -> dict[str, Any]:
    """The quick-start config as a mapping, data paths relative to a copied ``data/``."""
    raw = yaml.safe_load(QUICKSTART.read_text())
    for name, path in DATA_FILES.items():
        raw["modalities"][name]["data"] = path
    raw["output"]["path"] = "out/quick.h5"
    return raw


def gravity_only_mapping() -> dict[str, Any]:
    """Only the gravity modality on the sample data: inverts in about a second."""
    raw = quickstart_mapping()
    raw["properties"] = {"density_contrast": raw["properties"]["density_contrast"]}
    raw["modalities"] = {"gravity": raw["modalities"]["gravity"]}
    raw["coupling"] = []
    raw["output"]["path"] = "out/gravity.h5"
    return raw


_DELETE = object()


def override(raw: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    """A deep copy of ``raw`` with dotted-path changes (``"coupling.0.weight"``).

    A value of ``DELETE`` removes the key.
    """
    out = copy.deepcopy(raw)
    for dotted, value in changes.items():
        *parents, last = dotted.split(".")
        node: Any = out
        for key in parents:
            node = node[int(key)] if isinstance(node, list) else node.setdefault(key, {})
        if isinstance(node, list):
            node[int(last)] = value
        elif value is _DELETE:
            del node[last]
        else:
            node[last] = value
    return out


DELETE = _DELETE


class Workspace:
    """A tmp folder with ``data/`` (copies of the samples) and configs written into it."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.data = root / "data"
        shutil.copytree(SAMPLES, self.data)

    def write(self, name: str, raw: dict[str, Any]) -> Path:
        path = self.root / name
        path.write_text(yaml.safe_dump(raw, sort_keys=False))
        return path

    def variant(
        self, changes: dict[str, Any], name: str = "quick.yaml", base: dict[str, Any] | None = None
    ) -> Path:
        """Write the quick-start config (or ``base``) with dotted-path ``changes``."""
        return self.write(name, override(base or quickstart_mapping(), changes))

    def text(self, name: str, text: str) -> Path:
        path = self.root / name
        path.write_text(text)
        return path


@pytest.fixture
def workspace(tmp_path: Path) -> Workspace:
    return Workspace(tmp_path)


@pytest.fixture
def quick_config(workspace: Workspace) -> Path:
    """``quick.yaml``: the quick-start config in tmp_path with its sample data."""
    return workspace.variant({})


@pytest.fixture(scope="session")
def quickstart_run(tmp_path_factory):
    """The quick start with its posterior diagnostics, run once per test session
    (about a minute) and shared by the end-to-end and diagnostics tests."""
    import jointinv

    return jointinv.run(QUICKSTART, output=tmp_path_factory.mktemp("quickstart") / "joint.h5")


@pytest.fixture(autouse=True)
def _restore_logging():
    """The CLI commands configure the root logger; leave it as each test found it."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
