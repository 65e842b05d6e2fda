"""Config values overridden by dotted path: the ``set`` and ``grid`` of sweep files
(:mod:`jointinv.batch`) and ``--set key=value`` of ``jointinv run`` and ``validate``.

A dotted path names a key of the config, list entries by index
(``coupling.0.weight``); mappings on the way that the config leaves out are
created, so defaults can be overridden (``inversion.beta.initial``). The
overridden config is validated by the schema as a whole; an error that lies in
an overridden value is reported on one line naming that override.
"""

from __future__ import annotations

import copy
import re
import typing
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from .config import LoadedConfig, from_mapping, load_config, parse_yaml, read_yaml
from .errors import ConfigError, UserInputError


def set_dotted(raw: dict[str, Any], dotted: str, value: Any) -> None:
    """Set ``raw[a][b][0][c] = value`` for ``dotted = "a.b.0.c"`` (in place).

    Missing mappings on the way are created (so defaults can be overridden);
    list entries must exist.

    Raises
    ------
    KeyError
        With a message saying which part of the path is wrong.
    """
    parts = dotted.split(".")
    if not all(parts):
        raise KeyError("not a dotted path (empty part)")
    node: Any = raw
    for depth, key in enumerate(parts):
        last = depth == len(parts) - 1
        here = ".".join(parts[:depth]) or "the config"
        if isinstance(node, list):
            if not key.isdigit() or int(key) >= len(node):
                raise KeyError(f"{here} is a list of {len(node)} entries; {key!r} is no index")
            if last:
                node[int(key)] = value
            else:
                node = node[int(key)]
        elif isinstance(node, dict):
            if last:
                node[key] = value
            else:
                node = node.setdefault(key, {})
        else:
            raise KeyError(f"{here} is a value ({show_value(node)}), not a mapping or list")


def show_value(value: Any) -> str:
    """A value as it would be written in YAML, on one line."""
    text = yaml.safe_dump(value, default_flow_style=True, width=10**6, sort_keys=False)
    return text.replace("\n...\n", "").strip()


def apply_overrides(
    base: dict[str, Any],
    overrides: dict[str, Any],
    where: str,
    name: Callable[[str], str],
) -> tuple[dict[str, Any], Any]:
    """The config mapping ``base`` with ``overrides`` (dotted path -> value) applied,
    and its validated :class:`~jointinv.config.Config`; ``base`` is not changed.

    Parameters
    ----------
    where : str
        The file the messages name (the config, or the sweep file).
    name : callable
        How a message names the override of a key (``"grid: a.b"``, ``"--set a.b"``).

    Raises
    ------
    UserInputError
        One line ``<where>: <name(key)>: <what is wrong>`` for a bad path, or
        ``<where>: <name(key)> = <value>: <what is wrong>`` for a bad value.
    """
    effective = copy.deepcopy(base)
    for key, value in overrides.items():
        try:
            set_dotted(effective, key, value)
        except KeyError as exc:
            raise UserInputError(f"{where}: {name(key)}: {exc.args[0]}") from None
    try:
        return effective, from_mapping(effective, where)
    except ConfigError as exc:
        raise _blamed(exc, overrides, where, name) from None


def _blamed(
    exc: ConfigError, overrides: dict[str, Any], where: str, name: Callable[[str], str]
) -> UserInputError:
    """The schema's error, told as the error of the override it lies in (if any)."""
    field_path = exc.field or ""
    blamed = [k for k in overrides if field_path == k or field_path.startswith(k + ".")]
    blamed = blamed or [k for k in overrides if k.startswith(field_path + ".")]
    if not blamed:
        combo = ", ".join(f"{name(k)} = {show_value(v)}" for k, v in overrides.items())
        combo = combo or "no overrides"
        return UserInputError(f"{where}: with {combo}: {field_path}: {exc.message}")
    key = blamed[0]
    detail = exc.message if field_path == key else f"{field_path}: {exc.message}"
    known = known_keys(field_path) if exc.message == "unknown key" else None
    if known:
        detail += f" (known here: {', '.join(known)})"
    return UserInputError(f"{where}: {name(key)} = {show_value(overrides[key])}: {detail}")


def known_keys(dotted: str) -> list[str] | None:
    """Keys the schema allows next to the last part of ``dotted`` (None if unknown)."""
    from pydantic import BaseModel

    from .config import Config

    model: Any = Config
    for part in dotted.split(".")[:-1]:
        info = model.model_fields.get(part) if isinstance(model, type) else None
        if info is None:
            return None
        annotation = info.annotation
        for arg in (annotation, *typing.get_args(annotation)):
            if isinstance(arg, type) and issubclass(arg, BaseModel):
                model = arg
                break
        else:
            return None
    return sorted(model.model_fields) if isinstance(model, type) else None


# --- --set key=value -----------------------------------------------------------
def parse_assignments(assignments: list[str], where: str) -> dict[str, Any]:
    """``["a.b=5", "c=[1, 2]"]`` -> ``{"a.b": 5, "c": [1, 2]}``: values read as YAML
    (a later assignment of the same key wins).

    Raises
    ------
    UserInputError
        ``<where>: --set <text>: ...`` for an assignment without ``=`` or with a
        value that is not YAML.
    """
    out: dict[str, Any] = {}
    for text in assignments:
        key, sep, value = text.partition("=")
        key = key.strip()
        if not sep or not key:
            raise UserInputError(
                f"{where}: --set {text}: expected key=value with a dotted path of the config "
                f"(e.g. --set inversion.max_iterations=5)"
            )
        try:
            out[key] = _number_if_float(parse_yaml(value, f"--set {key}"))
        except ConfigError as exc:
            raise UserInputError(f"{where}: --set {key}: {exc.message}") from None
    return out


#: a float in exponent notation without a dot (1e-3), which YAML 1.1 reads as a string
_EXPONENT_FLOAT = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)[eE][-+]?\d+")


def _number_if_float(value: Any) -> Any:
    """``1e-3`` as a float: YAML 1.1 (PyYAML) reads a float without a dot as a string."""
    if isinstance(value, str) and _EXPONENT_FLOAT.fullmatch(value.strip()):
        return float(value)
    if isinstance(value, list):
        return [_number_if_float(v) for v in value]
    return value


def load_with_overrides(path: str | Path, assignments: list[str] | None) -> LoadedConfig:
    """Read a config file and apply ``--set key=value`` assignments before it is
    validated. The returned config's text (stored in the result's ``/meta``) is the
    overridden config, headed by a comment naming the file and the assignments, so
    the stored config reproduces the run. Without assignments: :func:`load_config`.
    """
    if not assignments:
        return load_config(path)
    path = Path(path).expanduser().resolve()
    _, raw = read_yaml(path)
    if not isinstance(raw, dict):
        raise ConfigError(path.name, None, "the config must be a mapping of sections")
    overrides = parse_assignments(assignments, path.name)
    effective, config = apply_overrides(raw, overrides, path.name, lambda key: f"--set {key}")
    header = [f"# {path.name} with overrides from the command line:"]
    header += [f"#   --set {k}={show_value(v)}" for k, v in overrides.items()]
    text = "\n".join(header) + "\n" + yaml.safe_dump(effective, sort_keys=False, allow_unicode=True)
    return LoadedConfig(config, path, text)
