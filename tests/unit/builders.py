"""Objects as the API server serves them, for the unit tests of the pure decision code.

One place builds a Bookinfo ``reviews`` Service, its Deployments and its routing, so that each
test says only what differs from the plain case.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from istio_canary.istio import ownership
from istio_canary.models import CanaryReleaseSpec, CanaryReleaseStatus
from istio_canary.phases import Decision, Observed, ReleaseRef, decide

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
NAMESPACE = "bookinfo"
SERVICE: dict[str, Any] = {
    "metadata": {"name": "reviews", "namespace": NAMESPACE},
    "spec": {"selector": {"app": "reviews"}, "ports": [{"name": "http", "port": 9080, "protocol": "TCP"}]},
}
OURS = {"releases.istio-canary.io/release": "reviews", "app.kubernetes.io/managed-by": "istio-canary-operator"}


def deployment(
    version: str,
    *,
    name: str | None = None,
    image: str = "",
    ready: int = 1,
    replicas: int = 1,
    ours: bool = False,
    app: str = "reviews",
) -> dict[str, Any]:
    """A Deployment of ``app`` at ``version``; ``ours``: created by the release ``reviews``."""
    labels = {"app": app, "version": version}
    meta: dict[str, Any] = {
        "name": name or f"{app}-{version}", "namespace": NAMESPACE, "generation": 1, "labels": dict(labels),
    }
    if ours:
        meta["labels"]["app.kubernetes.io/managed-by"] = "istio-canary-operator"
        meta["annotations"] = {
            "releases.istio-canary.io/release": f"{NAMESPACE}/reviews",
            "releases.istio-canary.io/release-uid": "u-1",
        }
    return {
        "metadata": meta,
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {"containers": [{"name": app, "image": image or f"{app}:{version}"}]},
            },
        },
        "status": {
            "observedGeneration": 1, "replicas": replicas, "updatedReplicas": replicas,
            "readyReplicas": ready, "availableReplicas": ready,
        },
    }


def spec(**fields: Any) -> CanaryReleaseSpec:
    """reviews v1 -> v2 (by image) at 30%, with ``fields`` replacing the top-level ones."""
    body: dict[str, Any] = {
        "service": "reviews",
        "stable": {"version": "v1"},
        "canary": {"version": "v2", "image": "reviews:v2"},
        "traffic": {"weight": 30},
    }
    body.update(fields)
    return CanaryReleaseSpec.model_validate(body)


def adopted(kind: str, body: dict[str, Any], *, name: str = "reviews") -> dict[str, Any]:
    """A user's VirtualService or DestinationRule that the release ``reviews`` has adopted."""
    meta = {
        "name": name, "namespace": NAMESPACE, "resourceVersion": "7",
        "labels": {ownership.RELEASE_LABEL: "reviews"},
        "annotations": {ownership.ORIGINAL_SPEC_ANNOTATION: json.dumps(body, sort_keys=True)},
    }
    return {"apiVersion": "networking.istio.io/v1", "kind": kind, "metadata": meta, "spec": body}


def user_object(kind: str, body: dict[str, Any], *, name: str = "reviews") -> dict[str, Any]:
    """A VirtualService or DestinationRule the user wrote, not yet touched by any release."""
    meta = {"name": name, "namespace": NAMESPACE, "resourceVersion": "5"}
    return {"apiVersion": "networking.istio.io/v1", "kind": kind, "metadata": meta, "spec": body}


def run(
    the_spec: CanaryReleaseSpec,
    observed: Observed,
    previous: CanaryReleaseStatus,
    *,
    now: datetime = NOW,
    deleting: bool = False,
    drain_seconds: int = 10,
) -> Decision:
    """One decision of the release ``reviews``."""
    release = ReleaseRef(namespace=NAMESPACE, name="reviews", uid="u-1", generation=1, deleting=deleting)
    return decide(
        release=release, spec=the_spec, observed=observed, previous=previous, now=now, drain_seconds=drain_seconds
    )
