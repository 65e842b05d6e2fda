"""Sphinx extension: the config reference, generated from the pydantic schema.

``.. jointinv-config-reference::`` expands, at build time, into one section per
model of :mod:`jointinv.config` reachable from :class:`~jointinv.config.Config`,
each with a table of its keys: dotted path (as ``--set`` and sweep files spell
it), type with its constraints, default and description. Nothing is copied by
hand, so the page cannot fall behind the schema.

:func:`reference_rst` returns the same text without Sphinx (the tests use it).
"""

from __future__ import annotations

import inspect
import types
import typing
from dataclasses import dataclass
from typing import Annotated, Any, Literal, Union

import annotated_types as at
from pydantic import BaseModel
from pydantic.fields import FieldInfo

from jointinv.config import Config

#: Section label of a model: ``config-<ClassName>``.
LABEL = "config-{}"


@dataclass(frozen=True)
class Section:
    """One model documented at ``path`` (dotted; ``<name>`` for a mapping key,
    ``<i>`` for a list index). ``within``: the ``kind`` of the variant it belongs to
    when several variants have a model at that path (modality options)."""

    path: str
    model: type[BaseModel]
    within: str = ""

    @property
    def title(self) -> str:
        where = self.path or "top level"
        kind = _kind(self.model)
        if kind:
            return f"{where} (kind: {kind})"
        return f"{where} (with kind: {self.within})" if self.within else where


def _kind(model: type[BaseModel]) -> str:
    """The value of a variant's ``kind: Literal[...]`` key, else ''."""
    field = model.model_fields.get("kind")
    if field is None or typing.get_origin(field.annotation) is not Literal:
        return ""
    (value,) = typing.get_args(field.annotation)
    return str(value)


def sections(model: type[BaseModel] = Config, path: str = "") -> list[Section]:
    """Every model reachable from ``model``, each once, where it first appears."""
    found: list[tuple[str, type[BaseModel], str]] = []
    seen: set[type[BaseModel]] = set()

    def visit(current: type[BaseModel], where: str, variant: str) -> None:
        if current in seen:
            return
        seen.add(current)
        found.append((where, current, variant))
        variant = _kind(current) or variant
        for name, field in current.model_fields.items():
            key = field.alias or name
            child = f"{where}.{key}" if where else key
            for nested, nested_path in _models_in(field.annotation, child):
                visit(nested, nested_path, variant)

    visit(model, path, "")
    paths = [where for where, _, _ in found]
    return [
        Section(where, current, variant if paths.count(where) > 1 else "")
        for where, current, variant in found
    ]


def _models_in(annotation: Any, path: str) -> list[tuple[type[BaseModel], str]]:
    """Models inside a type, with the dotted path their keys get."""
    if _is_model(annotation):
        return [(annotation, path)]
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is Annotated:
        return _models_in(args[0], path)
    if origin is dict:
        return _models_in(args[1], f"{path}.<name>")
    if origin is list:
        return _models_in(args[0], f"{path}.<i>")
    return [found for arg in args for found in _models_in(arg, path)]


def _is_model(annotation: Any) -> bool:
    return inspect.isclass(annotation) and issubclass(annotation, BaseModel)


# --- rendering -----------------------------------------------------------------------
def reference_rst() -> str:
    """The reference as reStructuredText: one titled section per model."""
    return "\n".join(section_rst(section) for section in sections())


def section_rst(section: Section) -> str:
    model = section.model
    lines = [f".. _{LABEL.format(model.__name__)}:", "", section.title, "-" * 60, ""]
    doc = own_doc(model)
    if doc:
        lines += [doc, ""]
    lines += [
        ".. list-table::",
        "   :header-rows: 1",
        "   :widths: 22 26 14 38",
        "",
        "   * - key",
        "     - type",
        "     - default",
        "     - description",
    ]
    for name, field in model.model_fields.items():
        key = field.alias or name
        path = f"{section.path}.{key}" if section.path else key
        lines += [
            f"   * - ``{path}``",
            f"     - {type_text(field.annotation, field.metadata)}",
            f"     - {default_text(field)}",
            f"     - {escape(description(field))}",
        ]
    return "\n".join(lines) + "\n"


def description(field: FieldInfo) -> str:
    """The field's description, else the first line of its model's docstring."""
    if field.description:
        return field.description
    doc = own_doc(field.annotation) if _is_model(field.annotation) else ""
    return doc.split("\n\n")[0].replace("\n", " ").replace("``", "")


def own_doc(model: type[BaseModel]) -> str:
    """The model's own docstring (cleaned), '' when it has none (pydantic fills in
    the base class's)."""
    doc = vars(model).get("__doc__")
    inherited = {base.__doc__ for base in model.__mro__[1:]}
    return inspect.cleandoc(doc) if doc and doc not in inherited else ""


def type_text(annotation: Any, metadata: list[Any] | tuple[Any, ...] = ()) -> str:
    """A type as a reader of the YAML file sees it, with its constraints."""
    text = _type(annotation)
    limits = _constraints(metadata)
    return f"{text} ({limits})" if limits else text


def _type(annotation: Any) -> str:
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if annotation is type(None):
        return "null"
    if _is_model(annotation):
        return f":ref:`{annotation.__name__} <{LABEL.format(annotation.__name__)}>`"
    if origin is Annotated:
        inner, *extra = args
        discriminator = next(
            (m.discriminator for m in extra if isinstance(m, FieldInfo) and m.discriminator),
            None,
        )
        text = _type(inner)
        if discriminator:
            return f"{text}, chosen by ``{discriminator}``"
        meta = [x for m in extra for x in (m.metadata if isinstance(m, FieldInfo) else [m])]
        return type_text(inner, meta)
    if origin in (Union, types.UnionType):
        return " or ".join(_type(arg) for arg in args)
    if origin is Literal:
        return " | ".join(f"``{_yaml(v)}``" for v in args)
    if origin is tuple:
        return "[" + ", ".join(_type(arg) for arg in args) + "]"
    if origin is list:
        return f"list of {_type(args[0])}"
    if origin is dict:
        return f"mapping of name to {_type(args[1])}"
    names = {float: "number", int: "integer", bool: "true | false", str: "string"}
    if annotation in names:
        return names[annotation]
    raise TypeError(f"no rendering for the config type {annotation!r}")


def _constraints(metadata: list[Any] | tuple[Any, ...]) -> str:
    words = []
    for item in metadata:
        if isinstance(item, at.Gt):
            words.append(f"> {_yaml(item.gt)}")
        elif isinstance(item, at.Ge):
            words.append(f"≥ {_yaml(item.ge)}")
        elif isinstance(item, at.Lt):
            words.append(f"< {_yaml(item.lt)}")
        elif isinstance(item, at.Le):
            words.append(f"≤ {_yaml(item.le)}")
        elif isinstance(item, at.MinLen):
            words.append(f"at least {item.min_length} entry")
        else:
            raise TypeError(f"no rendering for the constraint {item!r}")
    return ", ".join(words)


def default_text(field: FieldInfo) -> str:
    if field.is_required():
        return "required"
    value = field.default_factory() if field.default_factory else field.default
    if isinstance(value, BaseModel):
        return "(the defaults of its keys)"
    return f"``{_yaml(value)}``"


def _yaml(value: Any) -> str:
    """A value as it is written in the YAML config."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_yaml(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {_yaml(v)}" for k, v in value.items()) + "}"
    return str(value)


def escape(text: str) -> str:
    """Plain text for a table cell: no reStructuredText markup."""
    for char in ("\\", "*", "`", "|", "_"):
        text = text.replace(char, "\\" + char)
    return text


# --- Sphinx ----------------------------------------------------------------------------
def setup(app: Any) -> dict[str, Any]:
    from sphinx.util.docutils import SphinxDirective

    class ConfigReference(SphinxDirective):
        """``.. jointinv-config-reference::``: the generated sections."""

        def run(self) -> list[Any]:
            self.env.note_dependency(inspect.getsourcefile(Config))
            return self.parse_text_to_nodes(reference_rst(), allow_section_headings=True)

    app.add_directive("jointinv-config-reference", ConfigReference)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
