"""The state machine, decided on plain dicts: no cluster, no clock."""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from typing import Any

from istio_canary import actions as act
from istio_canary.models import CanaryReleaseSpec, CanaryReleaseStatus, Phase
from istio_canary.phases import Decision, Observed, ReleaseRef, decide

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
RELEASE = ReleaseRef(namespace="bookinfo", name="reviews", uid="u-1", generation=1)
SERVICE = {
    "metadata": {"name": "reviews", "namespace": "bookinfo"},
    "spec": {"selector": {"app": "reviews"}, "ports": [{"name": "http", "port": 9080, "protocol": "TCP"}]},
}


def _deployment(name: str, version: str, *, ready: int = 1, ours: bool = False) -> dict[str, Any]:
    meta: dict[str, Any] = {
        "name": name,
        "namespace": "bookinfo",
        "generation": 1,
        "labels": {"app": "reviews", "version": version},
    }
    if ours:
        meta["labels"]["app.kubernetes.io/managed-by"] = "istio-canary-operator"
        meta["annotations"] = {
            "releases.istio-canary.io/release": "bookinfo/reviews",
            "releases.istio-canary.io/release-uid": "u-1",
        }
    return {
        "metadata": meta,
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": "reviews", "version": version}},
            "template": {
                "metadata": {"labels": {"app": "reviews", "version": version}},
                "spec": {"containers": [{"name": "reviews", "image": f"reviews:{version}"}]},
            },
        },
        "status": {"observedGeneration": 1, "replicas": 1, "readyReplicas": ready, "availableReplicas": ready},
    }


def _spec(**extra: Any) -> CanaryReleaseSpec:
    body: dict[str, Any] = {
        "service": "reviews",
        "stable": {"version": "v1"},
        "canary": {"version": "v2", "image": "reviews:v2"},
        "traffic": {"weight": 30},
    }
    body.update(extra)
    return CanaryReleaseSpec.model_validate(body)


def _decide(spec: CanaryReleaseSpec, observed: Observed, phase: Phase = Phase.PENDING, **kw: Any) -> Decision:
    # No drain here: these tests are about what is written, tests/unit/test_phases_lifecycle.py about when.
    kw.setdefault("drain_seconds", 0)
    return decide(
        release=RELEASE, spec=spec, observed=observed, previous=CanaryReleaseStatus(phase=phase), now=NOW, **kw
    )


def _vs(decision: Decision) -> dict[str, Any]:
    return next(a.body for a in decision.actions if isinstance(a, act.ApplyRouting) and a.kind == "VirtualService")


def _weights(vs: dict[str, Any]) -> dict[str, int]:
    route = vs["spec"]["http"][-1]["route"]
    return {d["destination"]["subset"]: d.get("weight", 100) for d in route if d.get("weight", 100) > 0}


def test_new_release_pins_stable_before_creating_the_canary() -> None:
    decision = _decide(_spec(), Observed(service=SERVICE, deployments=(_deployment("reviews-v1", "v1"),)))
    kinds = [type(a).__name__ + getattr(a, "kind", "") for a in decision.actions]
    assert kinds == ["ApplyRoutingDestinationRule", "ApplyRoutingVirtualService", "ApplyDeployment"]
    assert _weights(_vs(decision)) == {"v1": 100}
    assert decision.phase is Phase.WAITING_FOR_CANARY


def test_ready_canary_gets_the_requested_weight() -> None:
    observed = Observed(
        service=SERVICE, deployments=(_deployment("reviews-v1", "v1"), _deployment("reviews-v2", "v2", ours=True))
    )
    decision = _decide(_spec(), observed)
    assert decision.phase is Phase.PROGRESSING
    assert _weights(_vs(decision)) == {"v1": 70, "v2": 30}


def test_unready_canary_never_gets_traffic_even_with_policy_immediately() -> None:
    observed = Observed(
        service=SERVICE,
        deployments=(_deployment("reviews-v1", "v1"), _deployment("reviews-v2", "v2", ready=0, ours=True)),
    )
    decision = _decide(_spec(policy="Immediately"), observed)
    assert decision.phase is Phase.PROGRESSING
    assert _weights(_vs(decision)) == {"v1": 100}


def test_take_over_sends_all_traffic_to_the_canary_and_keeps_stable() -> None:
    observed = Observed(
        service=SERVICE, deployments=(_deployment("reviews-v1", "v1"), _deployment("reviews-v2", "v2", ours=True))
    )
    decision = _decide(_spec(takeOver="v2"), observed, Phase.PROGRESSING)
    assert decision.phase is Phase.TAKEN_OVER
    assert _weights(_vs(decision)) == {"v2": 100}
    assert not any(isinstance(a, act.DeleteObject) for a in decision.actions)


def test_offline_routes_away_before_dropping_the_subset_and_deletes_stable() -> None:
    observed = Observed(
        service=SERVICE, deployments=(_deployment("reviews-v1", "v1"), _deployment("reviews-v2", "v2", ours=True))
    )
    decision = _decide(_spec(takeOver="v2", offline=True), observed, Phase.TAKEN_OVER)
    kinds = [type(a).__name__ + getattr(a, "kind", "") for a in decision.actions]
    assert kinds == ["ApplyRoutingVirtualService", "ApplyRoutingDestinationRule", "DeleteObjectDeployment"]
    assert decision.actions[2] == act.DeleteObject(kind="Deployment", name="reviews-v1")
    assert decision.phase is Phase.TAKEN_OVER  # completed only once v1 is really gone
    after = Observed(service=SERVICE, deployments=(_deployment("reviews-v2", "v2", ours=True),))
    assert _decide(_spec(takeOver="v2", offline=True), after, Phase.TAKEN_OVER).phase is Phase.COMPLETED


def test_missing_service_fails_without_any_write() -> None:
    decision = _decide(_spec(), Observed(service=None))
    assert decision.phase is Phase.FAILED
    assert decision.actions == ()
    assert "Service bookinfo/reviews not found" in decision.message


def test_foreign_deployment_with_the_canary_name_is_never_overwritten() -> None:
    observed = Observed(service=SERVICE, deployments=(_deployment("reviews-v1", "v1"), _deployment("reviews-v2", "v2")))
    decision = _decide(_spec(), observed)
    assert decision.phase is Phase.FAILED
    assert decision.actions == ()
    assert "was not created by this release" in decision.message


def test_several_stable_deployments_are_an_error_not_a_guess() -> None:
    twin = copy.deepcopy(_deployment("reviews-v1-copy", "v1"))
    observed = Observed(service=SERVICE, deployments=(_deployment("reviews-v1", "v1"), twin))
    decision = _decide(_spec(), observed)
    assert decision.phase is Phase.FAILED and decision.actions == ()


def test_abort_pins_stable_and_removes_the_canary_before_restoring() -> None:
    vs_labels = {"releases.istio-canary.io/release": "reviews", "app.kubernetes.io/managed-by": "istio-canary-operator"}
    vs = {"metadata": {"name": "reviews", "labels": vs_labels}, "spec": {"hosts": ["reviews"], "http": []}}
    observed = Observed(
        service=SERVICE,
        deployments=(_deployment("reviews-v1", "v1"), _deployment("reviews-v2", "v2", ours=True)),
        virtual_service=vs,
    )
    decision = _decide(_spec(abort=True), observed, Phase.PROGRESSING)
    assert _weights(_vs(decision)) == {"v1": 100}
    assert decision.actions[-1] == act.DeleteObject(kind="Deployment", name="reviews-v2")
    gone = Observed(service=SERVICE, deployments=(_deployment("reviews-v1", "v1"),), virtual_service=vs)
    final = _decide(_spec(abort=True), gone, Phase.PROGRESSING)
    assert final.phase is Phase.ABORTED
    # The VirtualService the release created goes; there is no DestinationRule to give back.
    assert final.actions == (act.DeleteObject(kind="VirtualService", name="reviews"),)


def test_bad_regex_fails_before_any_write_even_while_the_canary_is_not_ready() -> None:
    spec = _spec(traffic={"weight": 30, "match": [{"headers": {"end-user": {"regex": "(?=jason)"}}}]})
    decision = _decide(spec, Observed(service=SERVICE, deployments=(_deployment("reviews-v1", "v1"),)))
    assert decision.phase is Phase.FAILED
    assert decision.actions == ()
    assert "traffic.match[0].headers.end-user.regex" in decision.message


def test_match_rule_on_a_tcp_only_service_fails_before_any_write() -> None:
    tcp_service = {
        "metadata": {"name": "reviews", "namespace": "bookinfo"},
        "spec": {"selector": {"app": "reviews"}, "ports": [{"name": "tcp-db", "port": 5432, "protocol": "TCP"}]},
    }
    spec = _spec(traffic={"weight": 0, "match": [{"uri": {"prefix": "/v2"}}]})
    decision = _decide(spec, Observed(service=tcp_service, deployments=(_deployment("reviews-v1", "v1"),)))
    assert decision.phase is Phase.FAILED and decision.actions == ()
    assert "5432" in decision.message


def test_mirror_sends_every_response_from_stable_and_copies_to_a_ready_canary() -> None:
    observed = Observed(
        service=SERVICE, deployments=(_deployment("reviews-v1", "v1"), _deployment("reviews-v2", "v2", ours=True))
    )
    decision = _decide(_spec(strategy="Mirror", traffic={"mirrorPercent": 25}), observed)
    route = _vs(decision)["spec"]["http"][-1]
    assert _weights(_vs(decision)) == {"v1": 100}
    assert route["mirror"]["subset"] == "v2" and route["mirrorPercentage"] == {"value": 25.0}


def test_blue_green_gives_the_canary_nothing_until_take_over() -> None:
    observed = Observed(
        service=SERVICE, deployments=(_deployment("reviews-v1", "v1"), _deployment("reviews-v2", "v2", ours=True))
    )
    assert _weights(_vs(_decide(_spec(strategy="BlueGreen"), observed))) == {"v1": 100}
    assert _weights(_vs(_decide(_spec(strategy="BlueGreen", takeOver="v2"), observed))) == {"v2": 100}
