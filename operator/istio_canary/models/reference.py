"""The CanaryRelease field reference (``docs/reference.md``), generated from the models.

It walks the same structural schema that the CRD holds (``crd.spec_schema()`` and
``crd.status_schema()``), so the names are the wire names, the defaults are the ones the API
server fills in, and the allowed values are the ones it enforces. Descriptions come from the
models (a docstring under each field), so the CRD carries the same words for ``kubectl
explain``; ``FIELD_NOTES`` holds only what a model cannot carry (a map's values, a list's
items). ``missing_descriptions()`` and ``stale_notes()`` let a test fail when a field is added
without a description or a note outlives its field.

``python -m istio_canary.models.reference`` prints the Markdown that ``docs/reference.md`` holds.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from istio_canary import models
from istio_canary.models import crd

__all__ = [
    "FIELD_NOTES",
    "REFERENCE_FILE",
    "REGENERATE_COMMAND",
    "Field",
    "fields",
    "main",
    "missing_descriptions",
    "render_reference",
    "stale_notes",
]

REFERENCE_FILE = "docs/reference.md"
REGENERATE_COMMAND = f"python -m istio_canary.models.reference > {REFERENCE_FILE}"

# Descriptions the models cannot carry: a map's values and a list's items. Every other field is
# described on its model (a docstring under the field, or Field(description=...)).
FIELD_NOTES: Mapping[str, str] = {
    "spec.canary.images.<name>": "The new image of that container.",
    "status.versions[]": "One version's workload, weight and traffic health.",
}

_STRING_MATCH_FIELDS = {
    "exact": "The whole value equals this.",
    "prefix": "The value starts with this.",
    "regex": "The whole value matches this RE2 regular expression.",
}


@dataclass(frozen=True)
class Field:
    """One row of the reference."""

    path: str
    type: str
    default: str
    allowed: str
    description: str
    required: bool


def fields() -> Iterator[Field]:
    """Every field of spec and status, parents before children, in model order."""
    for root, schema in (("spec", crd.spec_schema()), ("status", crd.status_schema())):
        yield from (f for f in _walk(schema, root, required=False) if f.path != root)


def missing_descriptions() -> list[str]:
    """Paths that neither the models nor ``FIELD_NOTES`` describe."""
    return [f.path for f in fields() if not f.description]


def stale_notes() -> list[str]:
    """``FIELD_NOTES`` keys that name no field (left over after a rename or removal)."""
    known = {f.path for f in fields()}
    return sorted(set(FIELD_NOTES) - known)


def _walk(node: Mapping[str, Any], path: str, *, required: bool) -> Iterator[Field]:
    yield _field(node, path, required=required)
    needed = set(node.get("required", []))
    for name, child in (node.get("properties") or {}).items():
        yield from _walk(child, f"{path}.{name}", required=name in needed)
    if isinstance(node.get("additionalProperties"), dict):
        yield from _walk(node["additionalProperties"], f"{path}.<name>", required=False)
    if isinstance(node.get("items"), dict) and node["items"].get("type") == "object":
        yield from _walk(node["items"], f"{path}[]", required=False)


def _field(node: Mapping[str, Any], path: str, *, required: bool) -> Field:
    leaf = path.rsplit(".", 1)[-1]
    described = node.get("description", "").split("\n\n- ", 1)[0].strip()
    note = FIELD_NOTES.get(path) or (_STRING_MATCH_FIELDS.get(leaf, "") if _in_string_match(path) else "")
    default = node.get("default")
    return Field(
        path=path,
        type=_type(node),
        default="" if default is None else json.dumps(default),
        allowed=_allowed(node),
        description=_markdown(described or note),
        required=required,
    )


def _in_string_match(path: str) -> bool:
    parent = path.rsplit(".", 1)[0]
    return parent.endswith((".uri", ".value", ".headers.<name>"))


def _type(node: Mapping[str, Any]) -> str:
    kind = str(node.get("type", "object"))
    if kind == "array":
        return f"[]{_type(node.get('items') or {})}"
    if kind == "object" and isinstance(node.get("additionalProperties"), dict):
        return f"map[string]{_type(node['additionalProperties'])}"
    return kind


def _allowed(node: Mapping[str, Any]) -> str:
    parts: list[str] = []
    if "enum" in node:
        docs = _enum_docs(node.get("description", ""))
        parts.append("; ".join(f"`{v}`" + (f": {docs[v].rstrip('.')}" if v in docs else "") for v in node["enum"]))
    if "items" in node and "enum" in node["items"]:
        parts.append("each one of " + ", ".join(f"`{v}`" for v in node["items"]["enum"]))
    low, high = node.get("minimum"), node.get("maximum")
    if low is not None or high is not None:
        left = "(" if node.get("exclusiveMinimum") else "["
        right = ")" if node.get("exclusiveMaximum") else "]"
        parts.append(f"{left}{_num(low)}, {_num(high)}{right}")
    for key, text in (
        ("minLength", "length >= {}"),
        ("maxLength", "length <= {}"),
        ("maxItems", "at most {} items"),
        ("maxProperties", "at most {} entries"),
    ):
        if key in node and not (key == "minLength" and node[key] == 1 and "pattern" in node):
            parts.append(text.format(node[key]))
    if "pattern" in node:
        parts.append("DNS label" if node["pattern"] == _DNS_LABEL else f"pattern {_code(node['pattern'])}")
    return _markdown("; ".join(parts))


_DNS_LABEL = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"


def _code(text: str) -> str:
    """A Markdown code span, also for text that holds a backtick."""
    return f"`` {text} ``" if "`" in text else f"`{text}`"


def _num(value: Any) -> str:
    if value is None:
        return "…"
    return str(int(value)) if float(value).is_integer() else str(value)


def _enum_docs(description: str) -> dict[str, str]:
    """The ``- Value: doc`` lines that the CRD generator appends to an enum's description."""
    docs: dict[str, str] = {}
    for line in description.splitlines():
        if line.startswith("- ") and ": " in line:
            value, _, doc = line[2:].partition(": ")
            docs[value] = doc
    return docs


def _markdown(text: str) -> str:
    """Table-cell safe: reST double backticks to Markdown, pipes escaped, one line."""
    return " ".join(text.replace("``", "`").replace("|", "\\|").split())


def _rules(node: Mapping[str, Any], path: str) -> Iterator[tuple[str, str]]:
    for rule in node.get("x-kubernetes-validations", []):
        yield path, str(rule["message"])
    for name, child in (node.get("properties") or {}).items():
        yield from _rules(child, f"{path}.{name}")
    if isinstance(node.get("additionalProperties"), dict):
        yield from _rules(node["additionalProperties"], f"{path}.<name>")
    if isinstance(node.get("items"), dict):
        yield from _rules(node["items"], f"{path}[]")


def _table(rows: list[Field], *, with_defaults: bool) -> list[str]:
    head = ["field", "type", *(["default"] if with_defaults else []), "allowed values", "description"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for f in rows:
        name = f"`{f.path}`" + (" (required)" if f.required else "")
        cells = [name, f"`{f.type}`", *([f"`{f.default}`" if f.default else ""] if with_defaults else []),
                 f.allowed, f.description]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def render_reference() -> str:
    """The Markdown of ``docs/reference.md``."""
    spec_rows = [f for f in fields() if f.path.startswith("spec.")]
    status_rows = [f for f in fields() if f.path.startswith("status.")]
    rules = sorted(set(_rules(crd.spec_schema(), "spec")))
    short_names = ", ".join(f"`{n}`" for n in crd.build_crd()["spec"]["names"]["shortNames"])
    lines = [
        "<!-- Generated from the pydantic models in istio_canary.models; do not edit. -->",
        f"<!-- Regenerate: {REGENERATE_COMMAND} -->",
        "",
        "# CanaryRelease reference",
        "",
        (
            f"`apiVersion: {models.GROUP}/{models.VERSION}`, `kind: {models.KIND}`, namespaced "
            f"(`kubectl get {models.PLURAL}`, short names {short_names})."
        ),
        "",
        (
            "Paths use `[]` for an item of a list and `<name>` for a key of a map. Defaults are "
            "filled in by the API server; the allowed values are enforced by it at `kubectl apply`."
        ),
        "",
        "## spec",
        "",
        *_table(spec_rows, with_defaults=True),
        "",
        "### Rules across fields",
        "",
        "The API server refuses a spec that breaks one of these, with this message:",
        "",
        *(f"- `{path}`: {_markdown(message)}" for path, message in rules),
        "",
        "## status",
        "",
        "Written by the operator only.",
        "",
        *_table(status_rows, with_defaults=False),
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    sys.stdout.write(render_reference())


if __name__ == "__main__":
    main()
