"""The CRD generated from the models: structural, with defaults, rules and printer columns."""

from __future__ import annotations

import pathlib
from collections.abc import Iterator
from typing import Any

import pytest
import yaml
from istio_canary import models
from istio_canary.models import crd
from pydantic import BaseModel, Field

REPO = pathlib.Path(__file__).resolve().parents[2]


def _version() -> dict[str, Any]:
    versions: list[dict[str, Any]] = crd.build_crd()["spec"]["versions"]
    assert len(versions) == 1
    return versions[0]


def _root() -> dict[str, Any]:
    root: dict[str, Any] = _version()["schema"]["openAPIV3Schema"]
    return root


def _spec() -> dict[str, Any]:
    spec: dict[str, Any] = _root()["properties"]["spec"]
    return spec


def _walk(node: Any, path: str = "") -> Iterator[tuple[str, Any]]:
    yield path, node
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _walk(value, f"{path}.{key}")
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _walk(value, f"{path}[{index}]")


def _apply_defaults(schema: dict[str, Any], value: Any) -> Any:
    """What the API server does with ``default``: fill absent fields, recursively."""
    if isinstance(value, dict) and "properties" in schema:
        filled = dict(value)
        for name, prop in schema["properties"].items():
            if name not in filled and "default" in prop:
                filled[name] = prop["default"]
            if name in filled:
                filled[name] = _apply_defaults(prop, filled[name])
        return filled
    if isinstance(value, list) and "items" in schema:
        return [_apply_defaults(schema["items"], item) for item in value]
    return value


def test_committed_crd_matches_the_models() -> None:
    committed = (REPO / crd.CRD_FILE).read_text()
    assert committed == crd.render_crd_yaml(), (
        f"{crd.CRD_FILE} is out of date with the models; regenerate it with `make crds` "
        f"(that is: {crd.REGENERATE_COMMAND})"
    )


def test_rendered_yaml_parses_back_to_the_built_crd() -> None:
    text = crd.render_crd_yaml()
    assert yaml.safe_load(text) == crd.build_crd()
    assert "&id" not in text, "anchors make the CRD hard to read"


def test_crd_names_the_group_kind_and_short_names() -> None:
    built = crd.build_crd()
    assert built["metadata"]["name"] == "canaryreleases.releases.istio-canary.io"
    assert built["spec"]["group"] == "releases.istio-canary.io"
    assert built["spec"]["scope"] == "Namespaced"
    names = built["spec"]["names"]
    assert names["kind"] == "CanaryRelease"
    assert names["plural"] == "canaryreleases"
    assert names["shortNames"] == ["crel", "canary"]
    assert names["categories"] == ["istio-canary"]
    assert _version()["name"] == "v1alpha1"


def test_status_is_a_subresource() -> None:
    assert _version()["subresources"] == {"status": {}}


def test_printer_columns_show_strategy_phase_weights_success_and_age() -> None:
    columns = {c["name"]: c for c in _version()["additionalPrinterColumns"]}
    assert list(columns) == ["Strategy", "Phase", "Stable", "Canary", "Success", "Age"]
    assert columns["Strategy"]["jsonPath"] == ".spec.strategy"
    assert columns["Phase"]["jsonPath"] == ".status.phase"
    assert (columns["Stable"]["jsonPath"], columns["Stable"]["type"]) == (
        ".status.traffic.stable",
        "integer",
    )
    assert (columns["Canary"]["jsonPath"], columns["Canary"]["type"]) == (
        ".status.traffic.canary",
        "integer",
    )
    assert (columns["Success"]["jsonPath"], columns["Success"]["type"]) == (
        ".status.successRate",
        "number",
    )
    assert columns["Success"]["priority"] == 0
    assert columns["Age"]["type"] == "date"


def test_schema_has_no_constructs_a_structural_schema_forbids() -> None:
    forbidden = {"$ref", "$defs", "anyOf", "oneOf", "allOf", "title", "const"}
    for path, node in _walk(_root()):
        # Under "properties" the keys are field names (a field may be called "type"), not keywords.
        if isinstance(node, dict) and not path.endswith(".properties"):
            assert not forbidden & set(node), f"{path} has {forbidden & set(node)}"
            assert node.get("additionalProperties") is not False, path
            if "properties" in node or "additionalProperties" in node:
                assert node["type"] == "object", path


def test_every_schema_node_names_its_type() -> None:
    def check(node: dict[str, Any], path: str) -> None:
        assert "type" in node, f"{path} has no type"
        for name, prop in node.get("properties", {}).items():
            check(prop, f"{path}.{name}")
        if isinstance(node.get("additionalProperties"), dict):
            check(node["additionalProperties"], f"{path}.*")
        if "items" in node:
            check(node["items"], f"{path}[]")

    check(_root(), "")


def test_status_schema_is_generated_not_preserved() -> None:
    status = _root()["properties"]["status"]
    for path, node in _walk(status):
        assert not (isinstance(node, dict) and node.get("x-kubernetes-preserve-unknown-fields")), (
            path
        )
    assert set(status["properties"]) >= {
        "phase",
        "traffic",
        "versions",
        "conditions",
        "successRate",
    }
    assert status["properties"]["phase"]["enum"] == [p.value for p in models.Phase]


def test_status_schema_has_no_defaults_so_status_holds_what_the_operator_wrote() -> None:
    for path, node in _walk(_root()["properties"]["status"]):
        assert not (isinstance(node, dict) and "default" in node and "type" in node), path


def test_conditions_are_a_list_map_keyed_by_type() -> None:
    conditions = _root()["properties"]["status"]["properties"]["conditions"]
    assert conditions["x-kubernetes-list-type"] == "map"
    assert conditions["x-kubernetes-list-map-keys"] == ["type"]
    assert "type" in conditions["items"]["required"]


def test_spec_defaults_are_the_ones_the_models_apply() -> None:
    minimal = {"service": "reviews", "stable": {"version": "v1"}, "canary": {"version": "v2"}}
    defaulted = _apply_defaults(_spec(), minimal)
    assert defaulted["strategy"] == "Canary"
    assert defaulted["policy"] == "WaitForWorkloadReady"
    assert defaulted["versionLabel"] == "version"
    assert defaulted["traffic"]["mirrorPercent"] == 100
    expected = models.CanaryReleaseSpec.model_validate(minimal).to_wire()
    assert defaulted == expected


def test_defaults_inside_analysis_are_filled_when_analysis_is_given() -> None:
    given = {
        "service": "reviews",
        "stable": {"version": "v1"},
        "canary": {"version": "v2"},
        "analysis": {},
        "traffic": {"match": [{"uri": {"prefix": "/"}}]},
    }
    defaulted = _apply_defaults(_spec(), given)
    assert defaulted == models.CanaryReleaseSpec.model_validate(given).to_wire()
    assert defaulted["analysis"]["intervalSeconds"] == 10


def test_optional_fields_have_no_null_default() -> None:
    for path, node in _walk(_spec()):
        assert not (isinstance(node, dict) and "default" in node and node["default"] is None), path
    assert "default" not in _spec()["properties"]["analysis"]


def test_required_fields_follow_the_models() -> None:
    assert _spec()["required"] == ["service", "stable", "canary"]
    assert _root()["required"] == ["spec"]


def test_enums_are_inlined_with_a_line_per_value() -> None:
    strategy = _spec()["properties"]["strategy"]
    assert strategy["type"] == "string"
    assert strategy["enum"] == ["Canary", "BlueGreen", "Mirror"]
    assert "- BlueGreen: The canary runs with no traffic" in strategy["description"]


def test_exclusive_bounds_use_the_openapi_v3_form() -> None:
    quantile = _spec()["properties"]["analysis"]["properties"]["latencyQuantile"]
    assert quantile["minimum"] == 0 and quantile["exclusiveMinimum"] is True
    assert quantile["maximum"] == 1 and quantile["exclusiveMaximum"] is True


def test_limits_from_the_models_are_kept() -> None:
    props = _spec()["properties"]
    assert props["service"]["maxLength"] == 63
    assert props["service"]["pattern"] == models.spec.DNS_LABEL
    assert props["traffic"]["properties"]["weight"]["maximum"] == 100
    assert props["traffic"]["properties"]["match"]["maxItems"] == models.spec.MAX_MATCH_RULES
    assert props["traffic"]["properties"]["mirrorPercent"]["maximum"] == 100


def test_transition_rules_sit_on_the_spec_property() -> None:
    rules = [r["rule"] for r in _spec()["x-kubernetes-validations"]]
    assert "self.stable.version == oldSelf.stable.version" in rules
    assert any("oldSelf.offline" in r for r in rules)
    for path, node in _walk(_root()):
        if isinstance(node, dict) and path != ".properties.spec":
            for rule in node.get("x-kubernetes-validations", []):
                assert "oldSelf" not in rule["rule"], f"transition rule at {path}"


def _match_rule_schema() -> dict[str, Any]:
    rule: dict[str, Any] = _spec()["properties"]["traffic"]["properties"]["match"]["items"]
    return rule


def test_header_name_rule_quotes_the_pattern_so_cel_can_compile_it() -> None:
    rule = next(
        r["rule"]
        for r in _match_rule_schema()["x-kubernetes-validations"]
        if "headers.all" in r["rule"]
    )
    assert f'"{models.spec.HEADER_NAME}"' in rule
    assert f"'{models.spec.HEADER_NAME}'" not in rule


def test_maps_that_a_rule_iterates_are_bounded_for_the_cel_cost_estimator() -> None:
    assert _match_rule_schema()["properties"]["headers"]["maxProperties"] <= 64


def test_every_string_in_the_spec_schema_has_a_max_length() -> None:
    # An enum's values bound its length already.
    unbounded = [
        path
        for path, node in _walk(_spec())
        if isinstance(node, dict) and node.get("type") == "string" and "enum" not in node and "maxLength" not in node
    ]
    assert unbounded == []


def test_every_list_and_map_in_the_spec_schema_has_a_size_limit() -> None:
    unbounded = [
        path
        for path, node in _walk(_spec())
        if isinstance(node, dict)
        and (
            (node.get("type") == "array" and "maxItems" not in node)
            or (isinstance(node.get("additionalProperties"), dict) and "maxProperties" not in node)
        )
    ]
    assert unbounded == []


def test_the_keys_of_every_map_in_the_spec_are_bounded_by_a_rule_of_the_object_that_holds_it() -> None:
    # A structural schema has no propertyNames: only a CEL rule can bound a map's keys.
    maps = 0
    for path, node in _walk(_spec()):
        if not (isinstance(node, dict) and isinstance(node.get("properties"), dict)):
            continue
        rules = [r["rule"] for r in node.get("x-kubernetes-validations", [])]
        for name, prop in node["properties"].items():
            if isinstance(prop.get("additionalProperties"), dict):
                maps += 1
                assert any(f"self.{name}.all(k, size(k) <= " in r for r in rules), f"{path}.{name}"
    assert maps == 4, "match headers, images, Prometheus headers and webhook metadata"


def test_a_union_of_two_types_is_refused_rather_than_written_loosely() -> None:
    class Loose(BaseModel):
        value: int | str

    with pytest.raises(crd.CrdSchemaError, match="anyOf"):
        crd.structural_schema(Loose, with_defaults=True)


def test_an_unknown_json_schema_keyword_is_refused() -> None:
    class Tupled(BaseModel):
        pair: tuple[int, str]

    with pytest.raises(crd.CrdSchemaError, match="prefixItems"):
        crd.structural_schema(Tupled, with_defaults=True)


def test_the_first_json_schema_example_becomes_the_openapi_example() -> None:
    class Documented(BaseModel):
        url: str = Field(examples=["http://prometheus:9090", "http://other:9090"])

    schema = crd.structural_schema(Documented, with_defaults=True)
    assert schema["properties"]["url"]["example"] == "http://prometheus:9090"
    assert "examples" not in schema["properties"]["url"]
