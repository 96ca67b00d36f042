"""The CanaryRelease CustomResourceDefinition, generated from the pydantic models.

pydantic writes JSON Schema 2020-12; the API server wants a *structural* OpenAPI v3 schema:
no ``$ref``, no ``anyOf`` for optional fields, no ``additionalProperties: false`` beside
``properties``, boolean ``exclusiveMinimum``. This module rewrites the one into the other and
refuses (``CrdSchemaError``) any keyword it does not know, so that a model change which cannot be
expressed in a CRD fails here instead of producing a CRD the API server rejects.

``python -m istio_canary.models.crd`` prints the YAML that ``crds/`` holds.
"""

from __future__ import annotations

import ast
import enum
import inspect
import itertools
import sys
import textwrap
from collections.abc import Callable, Mapping
from typing import Any, cast

import yaml
from pydantic import BaseModel
from pydantic.json_schema import GenerateJsonSchema
from pydantic_core import core_schema

from istio_canary import models
from istio_canary.models import spec as spec_module
from istio_canary.models._base import ApiModel

__all__ = [
    "CRD_FILE",
    "CRD_NAME",
    "REGENERATE_COMMAND",
    "CrdSchemaError",
    "build_crd",
    "main",
    "render_crd_yaml",
    "spec_schema",
    "status_schema",
    "structural_schema",
]

CRD_NAME = f"{models.PLURAL}.{models.GROUP}"
# Where the generated CRD lives, relative to the repository root (the drift test compares it).
CRD_FILE = f"crds/{models.GROUP}_{models.PLURAL}.yaml"
REGENERATE_COMMAND = f"python -m istio_canary.models.crd > {CRD_FILE}"

JsonSchema = dict[str, Any]

# Keywords copied as they are: the subset of JSON Schema that OpenAPI v3 and CRDs share.
_KEPT = frozenset(
    {
        "type",
        "description",
        "enum",
        "format",
        "pattern",
        "minimum",
        "maximum",
        "minLength",
        "maxLength",
        "minItems",
        "maxItems",
        "minProperties",
        "maxProperties",
        "required",
        "x-kubernetes-validations",
    }
)
_DROPPED = frozenset({"title", "$defs"})

class CrdSchemaError(ValueError):
    """The models use a JSON Schema construct that a structural CRD schema cannot express."""


def build_crd() -> dict[str, Any]:
    """The ``apiextensions.k8s.io/v1`` CustomResourceDefinition of CanaryRelease, as a dict."""
    root: JsonSchema = {
        "type": "object",
        "description": "A canary release of one Service on an Istio mesh: the operator clones the "
        "stable Deployment, splits traffic between the versions, and takes one version over.",
        "properties": {
            "apiVersion": {"type": "string"},
            "kind": {"type": "string"},
            "metadata": {"type": "object"},
            "spec": spec_schema(),
            "status": status_schema(),
        },
        "required": ["spec"],
    }
    version = {
        "name": models.VERSION,
        "served": True,
        "storage": True,
        "subresources": {"status": {}},
        "additionalPrinterColumns": _printer_columns(),
        "schema": {"openAPIV3Schema": root},
    }
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": CRD_NAME},
        "spec": {
            "group": models.GROUP,
            "scope": "Namespaced",
            "names": {
                "kind": models.KIND,
                "listKind": f"{models.KIND}List",
                "plural": models.PLURAL,
                "singular": models.KIND.lower(),
                # "cr" would collide with too many other tools' custom resources.
                "shortNames": ["crel", "canary"],
                "categories": ["istio-canary"],
            },
            "versions": [version],
        },
    }


def spec_schema() -> JsonSchema:
    """The structural schema of ``spec``, with defaults for the API server to fill in."""
    return structural_schema(models.CanaryReleaseSpec, with_defaults=True)


def status_schema() -> JsonSchema:
    """The structural schema of ``status``.

    Without defaults: status holds exactly what the operator wrote, and the models apply their
    own defaults when they read it back.
    """
    schema = structural_schema(models.CanaryReleaseStatus, with_defaults=False)
    # Conditions are keyed by type (Kubernetes API conventions), so that server-side apply and
    # strategic merges treat them as a map.
    conditions = schema["properties"]["conditions"]
    conditions["x-kubernetes-list-type"] = "map"
    conditions["x-kubernetes-list-map-keys"] = ["type"]
    return schema


def render_crd_yaml() -> str:
    """The CRD as the YAML document stored in ``crds/``."""
    header = (
        f"# Generated from the pydantic models in istio_canary.models; do not edit.\n"
        f"# Regenerate: {REGENERATE_COMMAND}\n"
    )
    body = yaml.dump(build_crd(), Dumper=_CrdDumper, sort_keys=False, width=100, allow_unicode=True)
    return header + body


class _CrdDumper(yaml.SafeDumper):
    """Plain YAML for people: no ``&id001`` anchors, multi-line descriptions as ``|`` blocks."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def _represent_str(dumper: yaml.SafeDumper, text: str) -> yaml.ScalarNode:
    style = "|" if "\n" in text else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", text, style=style)


_CrdDumper.add_representer(str, _represent_str)


def main() -> None:
    sys.stdout.write(render_crd_yaml())


def _printer_columns() -> list[dict[str, Any]]:
    return [
        {"name": "Strategy", "type": "string", "jsonPath": ".spec.strategy"},
        {"name": "Phase", "type": "string", "jsonPath": ".status.phase"},
        {
            "name": "Stable",
            "type": "integer",
            "jsonPath": ".status.traffic.stable",
            "description": "Percent of requests to the stable version, read from the VirtualService",
        },
        {
            "name": "Canary",
            "type": "integer",
            "jsonPath": ".status.traffic.canary",
            "description": "Percent of requests to the canary version, read from the VirtualService",
        },
        {
            "name": "Success",
            "type": "number",
            "jsonPath": ".status.successRate",
            "priority": 0,
            "description": "Success rate of the canary's requests, in percent",
        },
        {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
    ]


class _FactoryDefaultsSchema(GenerateJsonSchema):
    """Also writes the defaults of ``default_factory`` fields (``traffic: {weight: 0, ...}``).

    pydantic leaves them out of JSON Schema; the API server needs them to fill in the same
    values the models would.
    """

    def get_default_value(self, schema: core_schema.WithDefaultSchema) -> Any:
        factory = schema.get("default_factory")
        if factory is not None and not schema.get("default_factory_takes_data"):
            value = cast(Callable[[], Any], factory)()
            # An optional field left unset is absent on the wire, never null (to_wire's rule).
            return value.to_wire() if isinstance(value, ApiModel) else value
        return super().get_default_value(schema)


def structural_schema(model: type[BaseModel], *, with_defaults: bool) -> JsonSchema:
    """The model's JSON Schema as a structural CRD schema; ``CrdSchemaError`` if impossible."""
    schema = model.model_json_schema(by_alias=True, schema_generator=_FactoryDefaultsSchema)
    converter = _Converter(defs=schema.get("$defs", {}), with_defaults=with_defaults)
    return converter.convert(schema, owner=model.__name__)


class _Converter:
    """Rewrites one pydantic JSON schema (with its ``$defs``) into a structural schema."""

    def __init__(self, *, defs: Mapping[str, JsonSchema], with_defaults: bool) -> None:
        self._defs = defs
        self._with_defaults = with_defaults
        self._enum_docs = _enum_member_docs()

    def convert(self, node: JsonSchema, *, owner: str = "") -> JsonSchema:
        node = self._flatten(node)
        owner = node.get("title", owner)
        out: JsonSchema = {}
        for key, value in node.items():
            if key in _DROPPED:
                continue
            if key in _KEPT:
                out[key] = value
            elif key == "default":
                if self._with_defaults and value is not None:
                    out[key] = value
            elif key == "properties":
                out[key] = {name: self.convert(prop) for name, prop in value.items()}
            elif key == "items":
                out[key] = self.convert(value)
            elif key == "additionalProperties":
                if value is False:
                    continue  # unknown fields are pruned anyway; CRDs forbid it beside properties
                if not isinstance(value, dict):
                    raise CrdSchemaError(
                        f"{owner}: additionalProperties {value!r} is not structural"
                    )
                out[key] = self.convert(value)
            elif key == "examples":
                # OpenAPI v3.0 has one ``example``; ``kubectl explain`` does not show it, but
                # editors that read the CRD schema do.
                if value:
                    out["example"] = value[0]
            elif key in ("exclusiveMinimum", "exclusiveMaximum"):
                # JSON Schema 2020-12 gives the bound; OpenAPI v3.0 wants the bound plus a flag.
                bound = "minimum" if key == "exclusiveMinimum" else "maximum"
                out[bound] = value
                out[key] = True
            else:
                raise CrdSchemaError(f"{owner}: JSON Schema keyword {key!r} has no CRD equivalent")
        if "enum" in out:
            out["description"] = self._describe_enum(owner, out.get("description", ""))
        if "x-kubernetes-validations" in out:
            out["x-kubernetes-validations"] = [
                _fix_rule(r) for r in out["x-kubernetes-validations"]
            ]
        if not out.get("description", True):
            del out["description"]
        # Type and description first: the YAML reads like the API reference it is.
        head: JsonSchema = {k: out[k] for k in ("type", "description") if k in out}
        return {**head, **out}

    def _flatten(self, node: JsonSchema) -> JsonSchema:
        """Inline ``$ref`` and turn ``anyOf: [X, null]`` into X; sibling keywords win."""
        if "$ref" in node:
            name = node["$ref"].rsplit("/", 1)[-1]
            target = self._flatten(self._defs[name])
            siblings = {k: v for k, v in node.items() if k != "$ref"}
            return {**target, **siblings}
        if "anyOf" in node:
            variants = [v for v in node["anyOf"] if v != {"type": "null"}]
            if len(variants) != 1:
                raise CrdSchemaError(
                    f"anyOf with {len(variants)} non-null variants is not structural"
                )
            siblings = {k: v for k, v in node.items() if k != "anyOf"}
            if siblings.get("default", ...) is None:
                del siblings["default"]  # optional: absent, never null on the wire
            return {**self._flatten(variants[0]), **siblings}
        return node

    def _describe_enum(self, enum_name: str, description: str) -> str:
        """Append one line per value, so that ``kubectl explain`` documents each choice."""
        docs = self._enum_docs.get(enum_name, {})
        if not docs:
            return description
        lines = [f"- {value}: {doc}" for value, doc in docs.items()]
        return "\n".join([description, "", *lines]).strip()


def _fix_rule(rule: Mapping[str, Any]) -> dict[str, Any]:
    """Repair the header-name rule of ``MatchRule``.

    spec.py quotes ``HEADER_NAME`` in single quotes, but the pattern itself contains a single
    quote, which ends the CEL string early and the API server cannot compile the rule. CEL
    double-quoted strings take the pattern as it is (it has no backslash or double quote).
    This is a no-op once spec.py writes the rule with double quotes.
    """
    broken = f"'{spec_module.HEADER_NAME}'"
    text = str(rule["rule"])
    if broken in text:
        return {**rule, "rule": text.replace(broken, f'"{spec_module.HEADER_NAME}"')}
    return dict(rule)


def _enum_member_docs() -> dict[str, dict[str, str]]:
    """Enum name -> {value: docstring} for the enums exported by ``istio_canary.models``.

    Python keeps no attribute docstrings at runtime, so they are read from the source.
    """
    found: dict[str, dict[str, str]] = {}
    for name in models.__all__:
        cls = getattr(models, name)
        if isinstance(cls, type) and issubclass(cls, enum.Enum):
            found[cls.__name__] = _member_docstrings(cls)
    return found


def _member_docstrings(cls: type[enum.Enum]) -> dict[str, str]:
    tree = ast.parse(textwrap.dedent(inspect.getsource(cls)))
    body = tree.body[0].body if tree.body and isinstance(tree.body[0], ast.ClassDef) else []
    docs: dict[str, str] = {}
    for assign, following in itertools.pairwise(body):
        if not (isinstance(assign, ast.Assign) and len(assign.targets) == 1):
            continue
        target = assign.targets[0]
        if not isinstance(target, ast.Name) or target.id not in cls.__members__:
            continue
        if isinstance(following, ast.Expr) and isinstance(following.value, ast.Constant):
            doc = following.value.value
            if isinstance(doc, str):
                docs[str(cls.__members__[target.id].value)] = " ".join(doc.split())
    return docs


if __name__ == "__main__":
    main()
