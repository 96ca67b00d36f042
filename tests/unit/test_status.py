"""The status builder: read-back traffic, per-version rows, conditions and stale metrics."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from istio_canary.models import (
    CanaryReleaseSpec,
    CanaryReleaseStatus,
    Phase,
    VersionMetrics,
    VersionStatus,
)
from istio_canary.models.status import Role
from istio_canary.phases import Decision
from istio_canary.status import build_status, set_condition

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
SPEC = CanaryReleaseSpec.model_validate(
    {
        "service": "reviews",
        "stable": {"version": "v1"},
        "canary": {"version": "v2", "image": "r:2"},
        "traffic": {"weight": 30},
    }
)


def _deployment(name: str, version: str, ready: int) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "generation": 1},
        "spec": {"replicas": 2, "template": {"metadata": {"labels": {"app": "reviews", "version": version}}}},
        "status": {"observedGeneration": 1, "readyReplicas": ready},
    }


def _vs(v1: int, v2: int) -> dict[str, Any]:
    return {
        "metadata": {"name": "reviews"},
        "spec": {
            "hosts": ["reviews"],
            "http": [
                {
                    "name": "istio-canary-reviews-9080-weighted",
                    "route": [
                        {"destination": {"host": "reviews", "subset": "v1"}, "weight": v1},
                        {"destination": {"host": "reviews", "subset": "v2"}, "weight": v2},
                    ],
                }
            ],
        },
    }


def _build(**kw: Any) -> CanaryReleaseStatus:
    args: dict[str, Any] = {
        "spec": SPEC,
        "previous": CanaryReleaseStatus(),
        "decision": Decision(
            phase=Phase.PROGRESSING, reason="Progressing", message="70/30", stable_deployment="reviews-v1"
        ),
        "deployments": [_deployment("reviews-v1", "v1", 2), _deployment("reviews-v2", "v2", 1)],
        "virtual_service": _vs(70, 30),
        "metrics": None,
        "generation": 3,
        "now": NOW,
    }
    args.update(kw)
    return build_status(**args)


def test_traffic_is_read_back_from_the_stored_virtual_service_not_the_plan() -> None:
    status = _build(virtual_service=_vs(90, 10))
    assert status.traffic is not None
    assert (status.traffic.stable, status.traffic.canary) == (90, 10)
    assert [(v.version, v.weight) for v in status.versions] == [("v1", 90), ("v2", 10)]


def test_each_version_shows_its_deployment_and_ready_replicas() -> None:
    status = _build()
    rows = {v.version: v for v in status.versions}
    assert (rows["v1"].deployment, rows["v1"].ready_replicas, rows["v1"].role) == ("reviews-v1", 2, Role.STABLE)
    assert (rows["v2"].deployment, rows["v2"].ready_replicas, rows["v2"].role) == ("reviews-v2", 1, Role.CANARY)
    assert status.observed_generation == 3


def test_ready_condition_keeps_its_transition_time_while_the_status_holds() -> None:
    first = set_condition([], type_="Ready", status=True, reason="A", message="", now=NOW, generation=1)
    later = set_condition(
        first, type_="Ready", status=True, reason="B", message="", now=NOW + timedelta(hours=1), generation=2
    )
    flipped = set_condition(
        later, type_="Ready", status=False, reason="C", message="", now=NOW + timedelta(hours=2), generation=2
    )
    assert later[0].last_transition_time == NOW.isoformat()
    assert later[0].reason == "B"
    assert flipped[0].last_transition_time == (NOW + timedelta(hours=2)).isoformat()


def test_last_good_metrics_are_kept_and_marked_stale_when_prometheus_fails() -> None:
    good = VersionMetrics(request_rate=10.0, success_rate=99.0, updated_at="2026-11-26T11:59:00Z")
    previous = CanaryReleaseStatus(
        versions=[VersionStatus(version="v2", role=Role.CANARY, deployment="reviews-v2", metrics=good)]
    )
    kept = _build(previous=previous, metrics=None, metrics_stale=False)
    stale = _build(previous=previous, metrics=None, metrics_stale=True)
    assert kept.versions[1].metrics == good
    assert stale.versions[1].metrics is not None
    assert stale.versions[1].metrics.stale and stale.versions[1].metrics.request_rate == 10.0


def test_success_rate_column_comes_from_the_canary_metrics_in_percent() -> None:
    status = _build(metrics={"v2": VersionMetrics(request_rate=3.0, success_rate=90.0)})
    assert status.success_rate == 90.0


def test_invalid_decision_sets_spec_valid_false_with_its_message() -> None:
    decision = Decision(phase=Phase.FAILED, reason="ServiceNotFound", message="Service x/y not found", invalid=True)
    status = _build(decision=decision, virtual_service=None)
    cond = {c.type: c for c in status.conditions}
    assert cond["SpecValid"].status == "False" and cond["SpecValid"].message == "Service x/y not found"
    assert cond["Ready"].status == "False"


def test_the_status_patch_removes_a_nested_key_that_is_gone_instead_of_merging_it() -> None:
    from istio_canary.models import CanaryReleaseStatus, TrafficStatus
    from istio_canary.status import status_patch

    stored = {"phase": "Progressing", "traffic": {"stable": 100, "canary": 0, "mirrorPercent": 40.0}}
    now = CanaryReleaseStatus(phase=Phase.PROGRESSING, traffic=TrafficStatus(stable=70, canary=30))
    patch = status_patch(previous=stored, status=now)
    assert patch is not None
    assert patch["traffic"] == {"stable": 70, "canary": 30, "mirrorPercent": None, "matchedToCanary": False}
    assert "phase" not in patch
