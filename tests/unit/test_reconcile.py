"""The reconcile loop over an in-memory cluster: what it writes, what it reports, how it fails.

The in-memory adapter stores what each action asks for, as the API server would (a
resourceVersion per object, 409 on a stale replace). The e2e tests prove the same on the real
control plane; these run in milliseconds.
"""

from __future__ import annotations

import asyncio
import copy
from typing import Any

import pytest
from istio_canary import actions as act
from istio_canary import errors
from istio_canary.k8s.cluster import Executed
from istio_canary.phases import Observed
from istio_canary.reconcile import Reconciler, Settings

SERVICE = {
    "metadata": {"name": "reviews", "namespace": "bookinfo"},
    "spec": {"selector": {"app": "reviews"}, "ports": [{"name": "http", "port": 9080, "protocol": "TCP"}]},
}


def stable() -> dict[str, Any]:
    labels = {"app": "reviews", "version": "v1"}
    return {
        "metadata": {"name": "reviews-v1", "namespace": "bookinfo", "generation": 1, "labels": labels},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": labels},
            "template": {"metadata": {"labels": labels}, "spec": {"containers": [{"name": "reviews", "image": "r:1"}]}},
        },
        "status": {"observedGeneration": 1, "replicas": 1, "updatedReplicas": 1, "readyReplicas": 1},
    }


class InMemoryCluster:
    """Objects by (kind, name); a write bumps resourceVersion, a stale replace is a conflict."""

    api = None

    def __init__(self) -> None:
        self.objects: dict[tuple[str, str], dict[str, Any]] = {("Deployment", "reviews-v1"): stable()}
        self.writes: list[str] = []
        self.refuse: str | None = None
        self._version = 1

    def observe(self, namespace: str, release: str, spec: Any) -> Observed:
        def by_kind(kind: str) -> tuple[dict[str, Any], ...]:
            return tuple(copy.deepcopy(o) for (k, _), o in self.objects.items() if k == kind)

        return Observed(
            service=copy.deepcopy(SERVICE),
            deployments=by_kind("Deployment"),
            virtual_service=next(iter(by_kind("VirtualService")), None),
            destination_rule=next(iter(by_kind("DestinationRule")), None),
        )

    def make_ready(self, name: str) -> None:
        dep = self.objects[("Deployment", name)]
        dep["status"] = {"observedGeneration": dep["metadata"].get("generation", 1), "replicas": 1,
                         "updatedReplicas": 1, "readyReplicas": 1}

    def execute(self, action: act.Action, *, observed: Observed, namespace: str) -> Executed:
        kind = getattr(action, "kind", "Deployment")
        body = getattr(action, "body", None)
        name = body["metadata"]["name"] if body is not None else action.name  # type: ignore[union-attr]
        if self.refuse == kind:
            raise errors.ApiRefusedError(f"the API server refused {kind} {name} (HTTP 400): denied", code=400)
        current = self.objects.get((kind, name))
        if isinstance(action, act.DeleteObject):
            if current is None:
                return Executed(stored=None, wrote=False)
            del self.objects[(kind, name)]
            self.writes.append(f"delete {kind}")
            return Executed(stored=None, wrote=True)
        assert body is not None
        if current is not None and _comparable(current) == _comparable(body):
            return Executed(stored=current, wrote=False)
        # Like the real adapter: a replace carries the resourceVersion of the object as observed.
        seen = _observed(observed, kind, name)
        if (
            current is not None
            and seen is not None
            and seen["metadata"]["resourceVersion"] != current["metadata"]["resourceVersion"]
        ):
            raise errors.ConflictError(f"{kind} {name} changed")
        self._version += 1
        stored = copy.deepcopy(body)
        stored["metadata"]["resourceVersion"] = str(self._version)
        if kind == "Deployment":
            stored["metadata"]["generation"] = 1
            stored.setdefault("status", {})
        self.objects[(kind, name)] = stored
        self.writes.append(f"{'create' if current is None else 'write'} {kind}")
        return Executed(stored=stored, wrote=True)


def _observed(observed: Observed, kind: str, name: str) -> dict[str, Any] | None:
    listed = {"VirtualService": (observed.virtual_service,), "DestinationRule": (observed.destination_rule,)}
    return next((o for o in listed.get(kind, observed.deployments) if o and o["metadata"]["name"] == name), None)


def _comparable(obj: dict[str, Any]) -> Any:
    meta = {k: v for k, v in obj["metadata"].items() if k in ("name", "labels", "annotations")}
    return meta, obj.get("spec")


def release(**spec: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": "reviews", "namespace": "bookinfo", "uid": "u-1", "generation": 1},
        "spec": {"service": "reviews", "stable": {"version": "v1"}, "canary": {"version": "v2", "image": "r:2"},
                 "traffic": {"weight": 30}, **spec},
    }


def reconcile(reconciler: Reconciler, cluster: InMemoryCluster, body: dict[str, Any]) -> Any:
    events: list[act.Event] = []
    outcome = asyncio.run(reconciler.reconcile(body=body, emit=events.append, observe=cluster.observe))
    if outcome.status_patch:
        body["status"] = _merge(body.get("status") or {}, outcome.status_patch)
    return outcome, events


def _merge(stored: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    """A JSON merge patch applied as the API server applies it (RFC 7386)."""
    merged = dict(stored)
    for key, value in patch.items():
        if value is None:
            merged.pop(key, None)
        elif isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


@pytest.fixture
def cluster() -> InMemoryCluster:
    return InMemoryCluster()


@pytest.fixture
def reconciler(cluster: InMemoryCluster) -> Reconciler:
    return Reconciler(cluster=cluster, settings=Settings(drain_seconds=0))


def test_a_release_converges_and_a_repeated_reconcile_writes_nothing(
    cluster: InMemoryCluster, reconciler: Reconciler
) -> None:
    body = release()
    reconcile(reconciler, cluster, body)
    assert cluster.writes == ["create DestinationRule", "create VirtualService", "create Deployment"]
    cluster.make_ready("reviews-v2")
    outcome, _ = reconcile(reconciler, cluster, body)
    assert outcome.decision.phase.value == "Progressing"
    assert body["status"]["traffic"] == {"stable": 70, "canary": 30, "matchedToCanary": False}
    before = list(cluster.writes)
    again, events = reconcile(reconciler, cluster, body)
    assert again.writes == 0 and cluster.writes == before
    assert again.status_patch is None and events == []
    assert len(before) <= 5  # routing, the canary, the 30% split: at most 5 writes to converge


def test_a_refused_write_ends_failed_with_the_message_and_backs_off(
    cluster: InMemoryCluster, reconciler: Reconciler
) -> None:
    cluster.refuse = "VirtualService"
    body = release()
    outcome, events = reconcile(reconciler, cluster, body)
    assert body["status"]["phase"] == "Failed"
    assert "denied" in body["status"]["message"]
    assert [e.reason for e in events] == ["ApiRefused"] and events[0].type == "Warning"
    assert outcome.decision.requeue_after == 5.0
    assert cluster.writes == ["create DestinationRule"]  # nothing after the refused write
    second, _ = reconcile(reconciler, cluster, body)
    assert second.decision.requeue_after == 10.0  # exponential back-off
    cluster.refuse = None
    recovered, _ = reconcile(reconciler, cluster, body)
    assert recovered.decision.phase.value == "WaitingForCanary"


def test_an_unexpected_error_keeps_the_phase_and_is_reported_not_raised(
    cluster: InMemoryCluster, reconciler: Reconciler
) -> None:
    body = release()
    reconcile(reconciler, cluster, body)

    def broken(*_: Any, **__: Any) -> Executed:
        raise KeyError("spec")

    cluster.execute = broken  # type: ignore[method-assign]
    body["spec"]["traffic"]["weight"] = 40
    outcome, events = reconcile(reconciler, cluster, body)
    assert body["status"]["phase"] == "WaitingForCanary"
    assert "unexpected KeyError" in body["status"]["message"] and "retrying in" in body["status"]["message"]
    assert [e.reason for e in events] == ["UnexpectedError"]
    assert outcome.decision.requeue_after == 5.0


def test_a_conflict_is_raised_so_the_caller_decides_again_from_fresh_state(
    cluster: InMemoryCluster, reconciler: Reconciler
) -> None:
    body = release()
    reconcile(reconciler, cluster, body)
    cluster.make_ready("reviews-v2")
    stale = cluster.observe("bookinfo", "reviews", None)
    cluster.objects[("VirtualService", "reviews")]["metadata"]["resourceVersion"] = "999"  # someone else wrote
    cluster.observe = lambda namespace, release, spec: stale  # type: ignore[method-assign]
    with pytest.raises(errors.ConflictError):
        reconcile(reconciler, cluster, body)
