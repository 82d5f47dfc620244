"""The published JSON Schemas: what any Kafka client must send and can expect to receive.

One schema per message on the bus, generated from the models: every `Message` subclass (and
`RootModel`) in the `schemas` package is found by itself, so a model added there is published
without a change here. A family of models told apart by a `kind` literal (`Event` and its
`MissingChildReport`, `CaseResolution`, `BroadcastRelease`) is published as one schema that
says, with `if`/`then` on `kind`, what each kind requires and forbids — the same choice the
model's discriminator makes, never a looser `oneOf` a generic event could slip through.

Rules a JSON Schema cannot state (a comparison between two fields) are named in the model's
`RULES` and written into the schema's description; the AsyncAPI document repeats them.

`referral-bus schemas export` (or `contract export`) writes them under schemas/json/; a test
fails when the files drift from the models.
"""

from __future__ import annotations

import importlib
import json
import pkgutil
import re
import typing
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from pydantic import BaseModel, RootModel, TypeAdapter
from pydantic.json_schema import models_json_schema

import schemas as _package
from schemas.wire import Message

JSON_DIR = Path(__file__).parent / "json"
DIALECT = "https://json-schema.org/draft/2020-12/schema"
#: `$id`s are URNs: they name a schema and its major version without pretending to be a web
#: address anyone can fetch; the files are published beside the AsyncAPI document.
ID_PREFIX = "urn:referral-bus:schema:"
JSON_CONTENT_TYPE = "application/json"
#: The discriminator of a model family.
KIND = "kind"
#: A field another kind has and this one must not (`{"not": {}}` rather than `false`, so that
#: validators name the field when they refuse it).
_NOT_HERE: dict[str, Any] = {"not": {}, "description": "Only for another kind."}


@dataclass(frozen=True)
class Published:
    """One message's published schema and what the documents say about it."""

    name: str  # the model's name, as topics/catalog.py names a topic's value
    stem: str  # the file name: schemas/json/<stem>.schema.json
    version: str  # MAJOR.MINOR of its schema
    schema: dict[str, Any]
    rules: dict[str, str] = field(default_factory=dict)
    kinds: tuple[str, ...] = ()  # the kinds with a model of their own (a family only)
    model: type[BaseModel] | None = field(default=None, compare=False, repr=False)

    def parse(self, raw: bytes | str) -> Any:
        """Validate one JSON message as the bus's readers do (a family picks its kind's model)."""
        assert self.model is not None
        if self.kinds:
            return _family_adapter(self.model).validate_json(raw)
        return self.model.model_validate_json(raw)

    @property
    def file_name(self) -> str:
        return f"{self.stem}.schema.json"

    @property
    def major(self) -> int:
        return int(self.version.split(".")[0])


def stem_of(name: str) -> str:
    """`ReferralResponse` -> `referral_response`."""
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def _schema_modules() -> Iterator[Any]:
    for info in pkgutil.iter_modules(_package.__path__):
        if info.name not in ("contract",):
            yield importlib.import_module(f"schemas.{info.name}")


def _wire_models() -> list[type[BaseModel]]:
    """Every message model of the package: `Message` subclasses and root models (a JSON array),
    each once, the variants of a family left to their base."""
    found: dict[str, type[BaseModel]] = {}
    for module in _schema_modules():
        for obj in vars(module).values():
            if not isinstance(obj, type) or obj.__module__ != module.__name__:
                continue
            if (issubclass(obj, Message) and obj is not Message) or (
                    issubclass(obj, RootModel) and obj is not RootModel and "[" not in obj.__name__):
                found[obj.__name__] = obj
    return [m for m in found.values()
            if not any(base is not m and issubclass(m, base) for base in found.values())]


def _variants(base: type[BaseModel]) -> list[type[BaseModel]]:
    """Subclasses that fix `kind` to literals: the members of a family."""
    out: list[type[BaseModel]] = []
    stack = list(base.__subclasses__())
    while stack:
        cls = stack.pop(0)
        stack.extend(cls.__subclasses__())
        if _kind_literals(cls):
            out.append(cls)
    return out


@cache
def _family_adapter(base: type[BaseModel]) -> TypeAdapter[Any]:
    """The base model's readers' adapter: the kinds' models told apart as the bus tells them."""
    from schemas.events import EVENT_ADAPTER, Event

    if base is not Event:
        raise TypeError(f"no reader for the family of {base.__name__}")
    return EVENT_ADAPTER


def _kind_literals(cls: type[BaseModel]) -> tuple[str, ...]:
    info = cls.model_fields.get(KIND)
    if info is None or typing.get_origin(info.annotation) is not typing.Literal:
        return ()
    return tuple(str(a) for a in typing.get_args(info.annotation))


def _version_of(model: type[BaseModel]) -> str:
    info = model.model_fields.get("schema_version")
    if info is not None:
        return str(info.default)
    root = model.model_fields.get("root")
    inner = typing.get_args(root.annotation) if root is not None else ()
    for arg in inner:
        if isinstance(arg, type) and issubclass(arg, BaseModel):
            return _version_of(arg)
    return "1.0"


def _rules_of(model: type[BaseModel]) -> dict[str, str]:
    rules: dict[str, str] = getattr(model, "RULES", {})
    return dict(rules)


def _describe(schema: dict[str, Any], rules: dict[str, str]) -> None:
    if rules:
        lines = "\n".join(f"- {name}: {text}" for name, text in rules.items())
        schema["description"] = (schema.get("description", "") +
                                 "\n\nRules the bus also enforces, which this schema cannot state:\n" + lines)


def _family_schema(base: type[BaseModel], variants: list[type[BaseModel]],
                   ref_template: str) -> tuple[dict[str, Any], tuple[str, ...]]:
    """One schema for a base model and its kinds: properties of all, `if kind == K then` the
    kind's own requirements, and the kind-only fields forbidden for every other kind."""
    _, top = models_json_schema([(m, "validation") for m in (base, *variants)], ref_template=ref_template)
    defs: dict[str, Any] = top.get("$defs", {})
    base_def = defs.pop(base.__name__)
    variant_defs = [(v, defs.pop(v.__name__)) for v in variants]
    props: dict[str, Any] = dict(base_def["properties"])
    for _, vdef in variant_defs:
        for name, prop in vdef["properties"].items():
            props.setdefault(name, prop)
    base_only = set(base_def["properties"])
    branches: list[dict[str, Any]] = []
    kinds: list[str] = []
    for variant, vdef in variant_defs:
        for kind in _kind_literals(variant):
            kinds.append(kind)
            own = {n: p for n, p in vdef["properties"].items()
                   if n != KIND and p != base_def["properties"].get(n)}
            forbidden = {n: _NOT_HERE for n in sorted(set(props) - set(vdef["properties"]))}
            branches.append({
                "if": {"properties": {KIND: {"const": kind}}, "required": [KIND]},
                "then": {"description": (variant.__doc__ or "").strip(), "properties": {**own, **forbidden},
                         "required": sorted(vdef.get("required", []))},
            })
    if kinds:
        branches.append({
            "if": {"properties": {KIND: {"enum": kinds}}, "required": [KIND]},
            "else": {"properties": {n: _NOT_HERE for n in sorted(set(props) - base_only)}},
        })
    schema: dict[str, Any] = {
        "title": base_def.get("title", base.__name__),
        "description": base_def.get("description", ""),
        "type": "object",
        "properties": props,
        "required": base_def.get("required", []),
        "additionalProperties": False,
        "allOf": branches,
    }
    if defs:
        schema["$defs"] = defs
    return schema, tuple(kinds)


def model_schema(model: type[BaseModel],
                 ref_template: str = "#/$defs/{model}") -> tuple[dict[str, Any], tuple[str, ...]]:
    """The JSON Schema of one wire model (of its whole family when it has kinds)."""
    variants = _variants(model)
    if variants:
        return _family_schema(model, variants, ref_template)
    return model.model_json_schema(ref_template=ref_template), ()


def openapi_schema(name: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """A published message's schema for an OpenAPI document: the schema, with references to
    `#/components/schemas/`, and the component schemas it refers to (the intake's request body
    is the same event a Kafka client publishes, checked the same way)."""
    pub = published()[name]
    assert pub.model is not None
    schema, _ = model_schema(pub.model, ref_template="#/components/schemas/{model}")
    _describe(schema, pub.rules)
    defs = schema.pop("$defs", {})
    return schema, defs


@cache
def published() -> dict[str, Published]:
    """Every published message schema, by model name (computed once per process)."""
    out: dict[str, Published] = {}
    for model in sorted(_wire_models(), key=lambda m: m.__name__):
        schema, kinds = model_schema(model)
        version = _version_of(model)
        stem = stem_of(model.__name__)
        rules = _rules_of(model)
        _describe(schema, rules)
        out[model.__name__] = Published(
            name=model.__name__, stem=stem, version=version, rules=rules, kinds=kinds, model=model,
            schema={"$schema": DIALECT, "$id": f"{ID_PREFIX}{stem}:{version.split('.')[0]}", **schema})
    return out


def schemas() -> dict[str, dict[str, Any]]:
    """Every published schema by file stem."""
    return {p.stem: p.schema for p in published().values()}


def render(schema: dict[str, Any]) -> str:
    return json.dumps(schema, indent=2, ensure_ascii=False, sort_keys=True) + "\n"


def export(directory: Path = JSON_DIR) -> list[Path]:
    """Write every schema, and remove files of schemas that are no longer published."""
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name, schema in schemas().items():
        path = directory / f"{name}.schema.json"
        path.write_text(render(schema), encoding="utf-8")
        written.append(path)
    for stale in set(directory.glob("*.schema.json")) - set(written):
        stale.unlink()
    return written
