"""Restoring the user's routing, and reading back what a stored VirtualService does."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from istio_canary.errors import ForeignObjectError
from istio_canary.istio import (
    ORIGINAL_SPEC_ANNOTATION,
    RELEASE_LABEL,
    ServicePort,
    build_destination_rule,
    build_virtual_service,
    read_back_traffic,
    restore_original,
    restored_object,
)
from istio_canary.models import MatchRule, StringMatch, TrafficStatus

from tests.unit.test_istio_destination_rule import user_dr
from tests.unit.test_istio_plan import make_plan
from tests.unit.test_istio_virtual_service import user_vs

HTTP = [ServicePort(name="http", port=9080)]
JASON = MatchRule(headers={"end-user": StringMatch(exact="jason")})


def build_vs(plan: Any = None, *, existing: Any = None, ports: Any = HTTP) -> dict[str, Any]:
    return build_virtual_service(
        plan=plan or make_plan(), ports=ports, existing=existing, release_name="reviews"
    )


def read(vs: dict[str, Any], **kwargs: Any) -> TrafficStatus:
    return read_back_traffic(
        vs, service="reviews", stable_version="v1", canary_version="v2", **kwargs
    )


def test_restore_of_a_created_object_says_delete_it() -> None:
    assert restore_original(build_vs()) is None
    assert restored_object(build_vs()) is None


def test_restore_of_an_adopted_virtual_service_gives_the_original_spec() -> None:
    original = user_vs()
    adopted = build_vs(make_plan(match=(JASON,), mirror_percent=10.0), existing=original)
    moved_on = build_vs(make_plan(stable_weight=0, canary_weight=100), existing=adopted)

    assert restore_original(moved_on) == original["spec"]


def test_restore_of_an_adopted_destination_rule_gives_the_original_spec() -> None:
    original = user_dr()
    adopted = build_destination_rule(plan=make_plan(), existing=original, release_name="reviews")

    assert restore_original(adopted) == original["spec"]


def test_restored_object_drops_the_operators_marks_and_keeps_the_rest() -> None:
    original = user_vs()
    adopted = build_vs(existing=original)
    adopted["metadata"]["resourceVersion"] = "43"

    restored = restored_object(adopted)

    assert restored is not None
    assert restored["spec"] == original["spec"]
    assert restored["metadata"]["labels"] == {"team": "books"}
    assert restored["metadata"]["annotations"] == {"note": "hand-written"}
    assert restored["metadata"]["resourceVersion"] == "43"
    assert ORIGINAL_SPEC_ANNOTATION in adopted["metadata"]["annotations"], "input left unchanged"


def test_restored_object_without_other_labels_keeps_emptied_maps_so_a_merge_patch_removes_only_our_marks() -> None:
    original = user_vs()
    del original["metadata"]["labels"], original["metadata"]["annotations"]

    restored = restored_object(build_vs(existing=original))

    # Empty, not missing: as a merge patch, a missing map would also delete the annotations
    # that the watch cache leaves out (kubectl's last-applied-configuration).
    assert restored is not None
    assert restored["metadata"]["labels"] == {}
    assert restored["metadata"]["annotations"] == {}


def test_restore_refuses_an_object_the_operator_never_touched() -> None:
    with pytest.raises(ForeignObjectError, match="neither created nor adopted"):
        restore_original(user_vs())


def test_restore_refuses_a_corrupt_annotation() -> None:
    broken = copy.deepcopy(user_vs())
    broken["metadata"]["annotations"][ORIGINAL_SPEC_ANNOTATION] = "{not json"
    broken["metadata"]["labels"][RELEASE_LABEL] = "reviews"

    with pytest.raises(ForeignObjectError, match="is not JSON"):
        restore_original(broken)


def test_read_back_reports_weights_match_and_mirror_as_stored() -> None:
    vs = build_vs(
        make_plan(stable_weight=80, canary_weight=20, match=(JASON,), mirror_percent=12.5)
    )

    assert read(vs) == TrafficStatus(
        stable=80, canary=20, matched_to_canary=True, mirror_percent=12.5
    )


def test_read_back_reads_the_stored_object_not_the_plan() -> None:
    vs = build_vs(make_plan(stable_weight=80, canary_weight=20))
    vs["spec"]["http"][0]["route"][0]["weight"] = 55
    vs["spec"]["http"][0]["route"][1]["weight"] = 45

    assert (read(vs).stable, read(vs).canary) == (55, 45)


def test_read_back_of_a_single_destination_counts_it_as_100() -> None:
    vs = build_vs(make_plan(stable_weight=0, canary_weight=100))

    assert read(vs) == TrafficStatus(stable=0, canary=100)


def test_read_back_of_a_multi_port_service_reads_the_first_port() -> None:
    ports = [ServicePort(name="http", port=9080), ServicePort(name="tcp-admin", port=9000)]

    vs = build_vs(make_plan(stable_weight=65, canary_weight=35), ports=ports)

    assert (read(vs).stable, read(vs).canary) == (65, 35)


def test_read_back_of_a_tcp_only_service_reads_the_tcp_route() -> None:
    vs = build_vs(
        make_plan(stable_weight=90, canary_weight=10), ports=[ServicePort(name="tcp", port=1)]
    )

    assert (read(vs).stable, read(vs).canary) == (90, 10)


def test_read_back_of_the_users_original_routing() -> None:
    # The user's default route sends everything to v1; jason's route goes to v2.
    assert read(user_vs(), namespace="bookinfo") == TrafficStatus(
        stable=100, canary=0, matched_to_canary=True
    )


def test_read_back_ignores_routes_to_the_bare_service_and_other_hosts() -> None:
    vs = {
        "spec": {
            "http": [
                {"route": [{"destination": {"host": "ratings", "subset": "v2"}}]},
                {"route": [{"destination": {"host": "reviews"}}]},
            ]
        }
    }

    assert read(vs) == TrafficStatus(stable=0, canary=0)


def test_read_back_of_a_mirror_without_percentage_is_100() -> None:
    vs = build_vs(make_plan(stable_weight=100, canary_weight=0, mirror_percent=40.0))
    del vs["spec"]["http"][0]["mirrorPercentage"]

    assert read(vs).mirror_percent == 100.0


def test_read_back_does_not_count_a_mirror_elsewhere() -> None:
    vs = build_vs()
    vs["spec"]["http"][0]["mirror"] = {"host": "shadow", "subset": "v2"}

    assert read(vs).mirror_percent is None
