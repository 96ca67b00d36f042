"""A GitOps tool that applies the same VirtualService and DestinationRule does not fight the operator.

The settings are read from docs/gitops.md, so the documented ones are the tested ones.

The tool is played as Argo CD plays it with the settings of docs/gitops.md: server-side apply
under its own field manager with `--force-conflicts`, and `RespectIgnoreDifferences` with
`managedFieldsManagers: [istio-canary-operator]` (the fields the operator owns keep their live
values). It syncs every 5 s over a window (``ICO_GITOPS_WINDOW`` seconds, 60 by default), while
the release's weight changes once; neither writer may undo the other.
"""

from __future__ import annotations

import itertools
import os
import time
from typing import Any

from devcluster import Cluster

from tests.e2e.gitops import (
    ARGO_MANAGER,
    OPERATOR_MANAGER,
    argo_sync_manifest,
    documented_argo_ignores,
    documented_block,
    live_object,
    managers,
    server_side_apply,
)
from tests.e2e.helpers import (
    apply,
    deploy_bookinfo,
    example_release,
    get,
    patch_spec,
    route_weights,
    wait_for,
)

WINDOW_SECONDS = float(os.environ.get("ICO_GITOPS_WINDOW", "60"))
SYNC_SECONDS = 5.0


def _git_objects(ns: str) -> list[dict[str, Any]]:
    """Routing for reviews as a team keeps it in Git: everything to v1, with a timeout and a retry policy."""
    meta = {"namespace": ns, "name": "reviews"}
    return [
        {
            "apiVersion": "networking.istio.io/v1", "kind": "DestinationRule", "metadata": meta,
            "spec": {
                "host": "reviews",
                "trafficPolicy": {"connectionPool": {"tcp": {"maxConnections": 100}}},
                "subsets": [{"name": "v1", "labels": {"version": "v1"}}],
            },
        },
        {
            "apiVersion": "networking.istio.io/v1", "kind": "VirtualService", "metadata": meta,
            "spec": {
                "hosts": ["reviews"],
                "http": [{
                    "timeout": "3s",
                    "retries": {"attempts": 2, "perTryTimeout": "1s"},
                    "route": [{"destination": {"host": "reviews", "subset": "v1"}}],
                }],
            },
        },
    ]


def _sync(cluster: Cluster, ns: str, *, respect_ignore_differences: bool = True) -> dict[str, dict[str, Any]]:
    """One Argo CD sync of Git's routing, with the documented settings or without them.

    Returns each object (by kind) as the sync stored it.
    """
    ignores = documented_argo_ignores() if respect_ignore_differences else {}
    stored = {}
    for git in _git_objects(ns):
        live = live_object(cluster, git["kind"].lower(), "reviews", ns)
        manifest = argo_sync_manifest(git, live, ignored_managers=ignores.get(git["kind"], set()))
        stored[git["kind"]] = server_side_apply(cluster, ns, manifest, manager=ARGO_MANAGER)
    return stored


def _looks(cluster: Cluster, ns: str) -> tuple[list[dict[str, int]], int, int]:
    """The VirtualService's weights, and the generations of the VirtualService and DestinationRule."""
    vs = get(cluster, "virtualservice", "reviews", ns) or {}
    dr = get(cluster, "destinationrule", "reviews", ns) or {}
    return route_weights(vs), int(vs["metadata"]["generation"]), int(dr["metadata"]["generation"])


def _watch_window(cluster: Cluster, ns: str, *, change_at: float) -> list[tuple[list[dict[str, int]], int, int]]:
    """Sync every 5 s for the window, change the weight once at ``change_at``, and record what is stored."""
    seen = []
    start = time.monotonic()
    next_sync, changed = start, False
    while (now := time.monotonic()) - start < WINDOW_SECONDS:
        if now >= next_sync:
            _sync(cluster, ns)
            next_sync += SYNC_SECONDS
        if not changed and now - start >= change_at:
            patch_spec(cluster, ns, "reviews", {"traffic": {"weight": 50}})
            changed = True
        seen.append(_looks(cluster, ns))
        time.sleep(0.5)
    return seen


def test_server_side_applies_with_the_documented_settings_never_flap_the_weights(
    cluster: Cluster, namespace: str, start_operator: Any
) -> None:
    ns = namespace
    deploy_bookinfo(cluster, ns)
    _sync(cluster, ns)  # the first sync creates the routing from Git
    start_operator()
    apply(cluster, ns, example_release())
    wait_for(lambda: _looks(cluster, ns)[0] == [{"v1": 70, "v2": 30}], timeout=90, what="the release's 70/30")
    _, vs_generation, dr_generation = _looks(cluster, ns)

    seen = _watch_window(cluster, ns, change_at=WINDOW_SECONDS / 2)

    weights = [w for w, _, _ in seen]
    changes = [b for a, b in itertools.pairwise(weights) if a != b]
    assert weights[0] == [{"v1": 70, "v2": 30}] and changes == [[{"v1": 50, "v2": 50}]], changes
    assert len(seen) > WINDOW_SECONDS / SYNC_SECONDS  # looked more often than the tool synced
    # One spec change of the VirtualService (the new weight); the DestinationRule never moved.
    assert {g for _, g, _ in seen} == {vs_generation, vs_generation + 1}
    assert {g for _, _, g in seen} == {dr_generation}
    vs = live_object(cluster, "virtualservice", "reviews", ns) or {}
    owners = managers(vs)
    assert ("spec", "http") in owners[OPERATOR_MANAGER]
    assert ("spec", "hosts") in owners[ARGO_MANAGER]  # the tool applies the routes as stored: it shares them
    dr = live_object(cluster, "destinationrule", "reviews", ns) or {}
    assert ("spec", "trafficPolicy", "connectionPool", "tcp", "maxConnections") in managers(dr)[ARGO_MANAGER]
    assert dr["spec"]["trafficPolicy"] == {"connectionPool": {"tcp": {"maxConnections": 100}}}

    # Without the settings the tool wins the routes at once, and the operator writes its split
    # back at its next look: they would flap (the operator watches VirtualServices, so the write
    # back may already be stored when the sync returns; what the sync stored is read from its answer).
    stored = _sync(cluster, ns, respect_ignore_differences=False)
    assert route_weights(stored["VirtualService"]) == [{"v1": 100}]
    wait_for(lambda: _looks(cluster, ns)[0] == [{"v1": 50, "v2": 50}], timeout=60, what="the operator's split back")
    assert ("spec", "http") in managers(live_object(cluster, "virtualservice", "reviews", ns) or {})[OPERATOR_MANAGER]


FLUX_MANAGER = "kustomize-controller"
FLUX_SSA = "kustomize.toolkit.fluxcd.io/ssa"


def _flux_objects(ns: str) -> list[dict[str, Any]]:
    """The VirtualService of docs/gitops.md's Flux section, and a DestinationRule marked the same way."""
    vs = documented_block(FLUX_SSA)
    vs["metadata"]["namespace"] = ns
    dr = {
        "apiVersion": "networking.istio.io/v1", "kind": "DestinationRule",
        "metadata": {"name": "reviews", "namespace": ns, "annotations": dict(vs["metadata"]["annotations"])},
        "spec": {"host": "reviews", "subsets": [{"name": "v1", "labels": {"version": "v1"}}]},
    }
    return [dr, vs]


def _flux_sync(cluster: Cluster, ns: str) -> int:
    """One kustomize-controller reconcile: objects marked IfNotPresent are applied only when missing."""
    applied = 0
    for git in _flux_objects(ns):
        if_not_present = git["metadata"].get("annotations", {}).get(FLUX_SSA) == "IfNotPresent"
        if if_not_present and get(cluster, git["kind"].lower(), "reviews", ns) is not None:
            continue
        server_side_apply(cluster, ns, git, manager=FLUX_MANAGER)
        applied += 1
    return applied


def test_flux_creates_the_documented_routing_once_and_then_leaves_it_to_the_operator(
    cluster: Cluster, namespace: str, start_operator: Any
) -> None:
    ns = namespace
    deploy_bookinfo(cluster, ns)
    assert _flux_sync(cluster, ns) == 2
    start_operator()
    apply(cluster, ns, example_release())
    wait_for(lambda: _looks(cluster, ns)[0] == [{"v1": 70, "v2": 30}], timeout=90, what="the release's 70/30")
    before = _looks(cluster, ns)

    start = time.monotonic()
    while time.monotonic() - start < WINDOW_SECONDS / 3:
        # The operator keeps Flux's annotation on what it adopted, so Flux keeps leaving it alone.
        assert _flux_sync(cluster, ns) == 0
        assert _looks(cluster, ns) == before
        time.sleep(SYNC_SECONDS)

    # An abort puts back the object as Flux created it, annotation included.
    patch_spec(cluster, ns, "reviews", {"abort": True})
    wait_for(lambda: (get(cluster, "canaryrelease", "reviews", ns) or {}).get("status", {}).get("phase") == "Aborted",
             timeout=60, what="Aborted")
    vs = get(cluster, "virtualservice", "reviews", ns) or {}
    assert vs["metadata"]["annotations"].get(FLUX_SSA) == "IfNotPresent"
    assert vs["spec"] == _flux_objects(ns)[1]["spec"]
