"""The DestinationRule builder: one subset per version, and adopting a user's DestinationRule."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from istio_canary.errors import ForeignObjectError
from istio_canary.istio import ORIGINAL_SPEC_ANNOTATION, RELEASE_LABEL, build_destination_rule

from tests.unit.test_istio_plan import make_plan


def build(plan: Any = None, *, existing: Any = None) -> dict[str, Any]:
    return build_destination_rule(
        plan=plan or make_plan(), existing=existing, release_name="reviews"
    )


def user_dr() -> dict[str, Any]:
    return {
        "apiVersion": "networking.istio.io/v1",
        "kind": "DestinationRule",
        "metadata": {
            "name": "reviews-dr",
            "namespace": "bookinfo",
            "resourceVersion": "9",
            "annotations": {"owner": "books-team"},
        },
        "spec": {
            "host": "reviews.bookinfo.svc.cluster.local",
            "trafficPolicy": {"connectionPool": {"tcp": {"maxConnections": 100}}},
            "subsets": [
                {"name": "legacy", "labels": {"version": "v0"}},
                {
                    "name": "v1",
                    "labels": {"version": "v1", "app": "reviews"},
                    "trafficPolicy": {"loadBalancer": {"simple": "LEAST_REQUEST"}},
                },
                {"name": "v3", "labels": {"version": "v3"}},
            ],
        },
    }


def test_created_destination_rule_has_a_subset_per_version() -> None:
    dr = build()

    assert dr == {
        "apiVersion": "networking.istio.io/v1",
        "kind": "DestinationRule",
        "metadata": {
            "name": "reviews",
            "namespace": "bookinfo",
            "labels": {
                "app.kubernetes.io/managed-by": "istio-canary-operator",
                RELEASE_LABEL: "reviews",
            },
        },
        "spec": {
            "host": "reviews",
            "subsets": [
                {"name": "v1", "labels": {"version": "v1"}},
                {"name": "v2", "labels": {"version": "v2"}},
            ],
        },
    }


def test_subsets_select_pods_by_the_configured_version_label() -> None:
    dr = build(make_plan(version_label="app.example.com/track"))

    assert [subset["labels"] for subset in dr["spec"]["subsets"]] == [
        {"app.example.com/track": "v1"},
        {"app.example.com/track": "v2"},
    ]


def test_job_offline_removes_the_other_versions_subset() -> None:
    dr = build(make_plan(subsets=("v2",), stable_weight=0, canary_weight=100))

    assert [subset["name"] for subset in dr["spec"]["subsets"]] == ["v2"]


def test_adoption_changes_only_the_releases_subsets() -> None:
    original = user_dr()

    dr = build(existing=original)

    spec = dr["spec"]
    assert spec["host"] == "reviews.bookinfo.svc.cluster.local"
    assert spec["trafficPolicy"] == original["spec"]["trafficPolicy"]
    assert spec["subsets"] == [
        {"name": "legacy", "labels": {"version": "v0"}},
        {
            "name": "v1",
            "labels": {"version": "v1"},
            "trafficPolicy": {"loadBalancer": {"simple": "LEAST_REQUEST"}},
        },
        {"name": "v2", "labels": {"version": "v2"}},
        {"name": "v3", "labels": {"version": "v3"}},
    ]
    assert dr["metadata"]["name"] == "reviews-dr"
    assert dr["metadata"]["annotations"]["owner"] == "books-team"
    assert json.loads(dr["metadata"]["annotations"][ORIGINAL_SPEC_ANNOTATION]) == original["spec"]
    assert "resourceVersion" not in dr["metadata"]
    assert original == user_dr(), "the builder must not modify its input"


def test_adopted_subset_policy_survives_offline_and_a_rebuild() -> None:
    offline = make_plan(subsets=("v1",), stable_weight=100, canary_weight=0)

    adopted = build(
        make_plan(subsets=("v2",), stable_weight=0, canary_weight=100), existing=user_dr()
    )
    rebuilt = build(offline, existing=adopted)

    assert rebuilt == build(offline, existing=user_dr())
    assert rebuilt["spec"]["subsets"][1]["trafficPolicy"] == {
        "loadBalancer": {"simple": "LEAST_REQUEST"}
    }


@pytest.mark.parametrize("subsets", [("v1", "v2"), ("v1",), ("v2",)])
def test_building_from_an_adopted_destination_rule_equals_building_from_the_original(
    subsets: tuple[str, ...],
) -> None:
    canary = 0 if subsets == ("v1",) else 100 if subsets == ("v2",) else 30
    plan = make_plan(subsets=subsets, stable_weight=100 - canary, canary_weight=canary)
    adopted = build(existing=user_dr())

    assert build(plan, existing=copy.deepcopy(adopted)) == build(plan, existing=user_dr())


def test_rebuilding_a_created_destination_rule_equals_building_it_fresh() -> None:
    created = build()
    created["metadata"]["resourceVersion"] = "3"

    assert build(existing=created) == build()


def test_destination_rule_of_another_release_is_refused() -> None:
    other = build_destination_rule(plan=make_plan(), existing=None, release_name="other")

    with pytest.raises(ForeignObjectError, match="belongs to release 'other'"):
        build(existing=other)
