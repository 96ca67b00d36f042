"""The invariant monitor's checks, on hand-made sequences of revisions (no cluster)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.invariants.replay import replay
from tests.invariants.revisions import Revision, Rule, in_order
from tests.invariants.routing import service_of

NS = "shop"
OURS = {"app.kubernetes.io/managed-by": "istio-canary-operator"}


class Recorder:
    """Revisions numbered in the order the test writes them, as etcd would."""

    def __init__(self) -> None:
        self.revisions: list[Revision] = []

    def _next(self) -> int:
        return 100 + len(self.revisions)

    def put(self, kind: str, name: str, spec: dict[str, Any], *, at: float = 0.0, **extra: Any) -> None:
        labels = extra.pop("labels", {})
        body = {"metadata": {"name": name, "namespace": NS, "labels": labels}, "spec": spec, **extra}
        self.revisions.append(Revision(kind, name, self._next(), body, seen_at=at))

    def delete(self, kind: str, name: str, *, at: float = 0.0) -> None:
        body = {"metadata": {"name": name}}
        self.revisions.append(Revision(kind, name, self._next(), body, deleted=True, seen_at=at))

    def rules(
        self, *, grace: float = 5.0, ended_at: float | None = None, gaps: list[tuple[int, int]] | None = None
    ) -> list[Rule]:
        found = replay(self.revisions, namespace=NS, status_grace=grace, ended_at=ended_at, gaps=gaps or [])
        return [v.rule for v in found]


def deployment(version: str, *, ready: int = 1, app: str = "reviews") -> dict[str, Any]:
    labels = {"app": app, "version": version}
    return {"replicas": 1, "selector": {"matchLabels": labels}, "template": {"metadata": {"labels": labels}}}


def release(weight: int | None = None, *, traffic: dict[str, int] | None = None) -> dict[str, Any]:
    spec: dict[str, Any] = {"service": "reviews", "stable": {"version": "v1"}, "canary": {"version": "v2"}}
    if weight is not None:
        spec["traffic"] = {"weight": weight}
    return spec


def split(v1: int, v2: int, *, host: str = "reviews") -> dict[str, Any]:
    return {"hosts": [host], "http": [{"route": [
        {"destination": {"host": host, "subset": "v1"}, "weight": v1},
        {"destination": {"host": host, "subset": "v2"}, "weight": v2},
    ]}]}


SUBSETS = {
    "host": "reviews",
    "subsets": [{"name": "v1", "labels": {"version": "v1"}}, {"name": "v2", "labels": {"version": "v2"}}],
}


@pytest.fixture
def bookinfo() -> Recorder:
    """reviews v1 and v2 ready, a release of v2, its DestinationRule: the usual start."""
    rec = Recorder()
    rec.put("Service", "reviews", {"selector": {"app": "reviews"}})
    rec.put("Deployment", "reviews-v1", deployment("v1"), status={"readyReplicas": 1})
    rec.put("Deployment", "reviews-v2", deployment("v2"), status={"readyReplicas": 1})
    rec.put("CanaryRelease", "reviews", release(30))
    rec.put("DestinationRule", "reviews", SUBSETS, labels=OURS)
    return rec


def test_a_clean_release_from_split_to_take_over_has_no_violation(bookinfo: Recorder) -> None:
    bookinfo.put("VirtualService", "reviews", split(70, 30), labels=OURS)
    bookinfo.put("VirtualService", "reviews", split(0, 100), labels=OURS)
    assert bookinfo.rules() == []


def test_weights_that_do_not_add_up_to_100_are_a_violation(bookinfo: Recorder) -> None:
    bookinfo.put("VirtualService", "reviews", split(70, 20), labels=OURS)
    assert bookinfo.rules() == [Rule.WEIGHTS_NOT_100]


def test_a_route_with_no_weight_anywhere_is_a_violation(bookinfo: Recorder) -> None:
    bookinfo.put("VirtualService", "reviews", split(0, 0), labels=OURS)
    assert bookinfo.rules() == [Rule.NO_WEIGHT_FOR_HOST]


def test_weight_on_a_subset_the_destination_rule_lacks_is_a_violation(bookinfo: Recorder) -> None:
    bookinfo.put("DestinationRule", "reviews", {"host": "reviews", "subsets": SUBSETS["subsets"][:1]}, labels=OURS)
    bookinfo.put("VirtualService", "reviews", split(70, 30), labels=OURS)
    assert bookinfo.rules() == [Rule.MISSING_SUBSET]


def test_a_zero_weight_to_a_missing_subset_is_harmless(bookinfo: Recorder) -> None:
    bookinfo.put("DestinationRule", "reviews", {"host": "reviews", "subsets": SUBSETS["subsets"][:1]}, labels=OURS)
    bookinfo.put("VirtualService", "reviews", split(100, 0), labels=OURS)
    assert bookinfo.rules() == []


def test_weight_on_a_version_whose_pods_are_not_ready_is_a_violation(bookinfo: Recorder) -> None:
    bookinfo.put("Deployment", "reviews-v2", deployment("v2"), status={"readyReplicas": 0})
    bookinfo.put("VirtualService", "reviews", split(70, 30), labels=OURS)
    assert bookinfo.rules() == [Rule.NO_READY_POD]


def test_deleting_a_deployment_before_its_route_is_caught_in_etcd_order(bookinfo: Recorder) -> None:
    bookinfo.put("VirtualService", "reviews", split(0, 100), labels=OURS)
    bookinfo.delete("Deployment", "reviews-v2")
    bookinfo.put("VirtualService", "reviews", split(100, 0), labels=OURS)
    # Delivered out of order by two watches: the replay sorts by resourceVersion.
    bookinfo.revisions.reverse()
    assert bookinfo.rules() == [Rule.NO_READY_POD]
    numbers = [r.resource_version for r in bookinfo.revisions]
    assert [r.resource_version for r in in_order(bookinfo.revisions)] == sorted(numbers)


def test_routing_mode_services_needs_each_version_service_and_its_ready_pods(bookinfo: Recorder) -> None:
    vs = split(70, 30)
    for entry, version in zip(vs["http"][0]["route"], ("v1", "v2"), strict=True):
        entry["destination"] = {"host": f"reviews-{version}.{NS}.svc.cluster.local"}
    bookinfo.put("Service", "reviews-v1", {"selector": {"app": "reviews", "version": "v1"}}, labels=OURS)
    bookinfo.put("VirtualService", "reviews", vs, labels=OURS)
    assert bookinfo.rules() == [Rule.MISSING_SERVICE]
    bookinfo.put("Service", "reviews-v2", {"selector": {"app": "reviews", "version": "v3"}}, labels=OURS)
    assert bookinfo.rules() == [Rule.MISSING_SERVICE, Rule.NO_READY_POD]


def test_a_user_route_to_another_host_must_survive_the_release(bookinfo: Recorder) -> None:
    ratings = {"match": [{"uri": {"prefix": "/ratings"}}], "route": [{"destination": {"host": "ratings"}}]}
    reviews = {"route": [{"destination": {"host": "reviews"}}], "timeout": "10s"}
    bookinfo.put("Service", "ratings", {"selector": {"app": "ratings"}})
    bookinfo.put("VirtualService", "user", {"hosts": ["reviews", "ratings"], "http": [ratings, reviews]})
    adopted = split(70, 30)["http"][0] | {"timeout": "10s"}
    bookinfo.put("VirtualService", "user", {"hosts": ["reviews", "ratings"], "http": [ratings, adopted]})
    assert bookinfo.rules() == []
    bookinfo.put("VirtualService", "user", {"hosts": ["reviews", "ratings"], "http": [adopted]})
    assert bookinfo.rules() == [Rule.KEPT_ROUTE_GONE]


def test_a_user_field_on_the_released_route_must_survive(bookinfo: Recorder) -> None:
    bookinfo.put("VirtualService", "user", {"hosts": ["reviews"], "http": [
        {"route": [{"destination": {"host": "reviews"}}], "retries": {"attempts": 3}}]})
    bookinfo.put("VirtualService", "user", split(70, 30))
    assert bookinfo.rules() == [Rule.KEPT_FIELD_GONE]


def test_a_user_subset_of_another_version_must_survive_but_the_released_ones_may_go(bookinfo: Recorder) -> None:
    v3 = {"name": "v3", "labels": {"version": "v3"}}
    bookinfo.put("DestinationRule", "user", {"host": "reviews", "subsets": [*SUBSETS["subsets"], v3]})
    bookinfo.put("DestinationRule", "user", {"host": "reviews", "subsets": [SUBSETS["subsets"][1], v3]})
    assert bookinfo.rules() == []
    bookinfo.put("DestinationRule", "user", {"host": "reviews", "subsets": [SUBSETS["subsets"][1]]})
    assert bookinfo.rules() == [Rule.KEPT_FIELD_GONE]


def test_status_may_lag_the_routes_for_the_grace_period_only(bookinfo: Recorder) -> None:
    bookinfo.put("VirtualService", "reviews", split(70, 30), labels=OURS, at=10.0)
    bookinfo.put("CanaryRelease", "reviews", release(30), status={"traffic": {"stable": 70, "canary": 30}}, at=11.0)
    bookinfo.put("VirtualService", "reviews", split(40, 60), labels=OURS, at=12.0)
    assert bookinfo.rules(grace=5.0, ended_at=16.0) == []
    assert bookinfo.rules(grace=5.0, ended_at=18.0) == [Rule.STATUS_DISAGREES]
    bookinfo.put("CanaryRelease", "reviews", release(60), status={"traffic": {"stable": 40, "canary": 60}}, at=14.0)
    assert bookinfo.rules(grace=5.0, ended_at=30.0) == []


def test_a_lasting_violation_is_reported_once_and_again_when_it_comes_back(bookinfo: Recorder) -> None:
    bookinfo.put("VirtualService", "reviews", split(70, 20), labels=OURS)
    bookinfo.put("Deployment", "reviews-v1", deployment("v1"), status={"readyReplicas": 2})
    bookinfo.put("VirtualService", "reviews", split(70, 30), labels=OURS)
    bookinfo.put("VirtualService", "reviews", split(70, 20), labels=OURS)
    assert bookinfo.rules() == [Rule.WEIGHTS_NOT_100, Rule.WEIGHTS_NOT_100]


@pytest.mark.parametrize(
    ("host", "service"),
    [("reviews", "reviews"), (f"reviews.{NS}", "reviews"), (f"reviews.{NS}.svc.cluster.local", "reviews"),
     ("reviews.other.svc.cluster.local", None), ("example.com", None)],
)
def test_hosts_are_read_as_services_of_the_namespace_only(host: str, service: str | None) -> None:
    assert service_of(host, namespace=NS) == service


def test_states_inside_a_watch_gap_are_not_judged_but_what_outlasts_the_gap_is(bookinfo: Recorder) -> None:
    bookinfo.put("VirtualService", "reviews", split(70, 30), labels=OURS)
    gap_from = bookinfo.revisions[-1].resource_version
    # Seen late: the monitor missed the VirtualService's move to v1 that preceded this deletion.
    bookinfo.delete("Deployment", "reviews-v2")
    bookinfo.put("VirtualService", "reviews", split(100, 0), labels=OURS)
    gap_to = bookinfo.revisions[-1].resource_version
    assert bookinfo.rules() == [Rule.NO_READY_POD]
    assert bookinfo.rules(gaps=[(gap_from, gap_to)]) == []
    bookinfo.put("VirtualService", "reviews", split(90, 0), labels=OURS)  # inside the window below
    bookinfo.put("VirtualService", "reviews", split(80, 0), labels=OURS)  # after it: still wrong
    assert bookinfo.rules(gaps=[(gap_from, gap_to + 1)]) == [Rule.WEIGHTS_NOT_100]
