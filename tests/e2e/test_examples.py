"""Every example in examples/bookinfo is accepted by the API server and does what it says,
in istiod's generated routes as well as in the release's status.

The CanaryRelease examples are globbed, so a new file is covered without touching this test;
a YAML file there that is neither Bookinfo itself nor holds a CanaryRelease fails the test
instead of being skipped.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from devcluster import Cluster, PrometheusServer
from istio_canary.models import AnalysisSpec, CanaryReleaseSpec

from tests.e2e.helpers import (
    EXAMPLES,
    apply,
    assert_routing_invariants,
    deploy_bookinfo,
    get,
    release_phase,
    wait_for,
)
from tests.e2e.istiod_routes import assert_istiod_routes_say_status
from tests.e2e.receivers import Receiver

BOOKINFO = EXAMPLES / "bookinfo.yaml"
RELEASE_FILES = sorted(p for p in EXAMPLES.glob("*.yaml") if p != BOOKINFO)
EXAMPLE_HOOKS = "http://loadtester.test:8080"
ISTIO_PORT_PREFIXES = ("http", "http2", "https", "grpc", "grpc-web", "tcp", "tls", "mongo", "mysql", "redis")


def _documents(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def _releases(path: Path) -> list[dict[str, Any]]:
    return [d for d in _documents(path) if d.get("kind") == "CanaryRelease"]


def expected_phase(spec: dict[str, Any]) -> str:
    """The phase an example settles in with Bookinfo deployed and the operator running."""
    if spec.get("abort"):
        return "Aborted"
    if spec.get("offline"):
        return "Completed"
    if spec.get("takeOver"):
        return "TakenOver"
    if spec.get("policy") == "Paused":
        return "Paused"
    return "Progressing"


def test_bookinfo_has_four_services_with_the_tutorial_images_and_istio_port_names() -> None:
    docs = _documents(BOOKINFO)
    services = {d["metadata"]["name"]: d for d in docs if d["kind"] == "Service"}
    assert set(services) == {"productpage", "details", "ratings", "reviews"}
    for service in services.values():
        for port in service["spec"]["ports"]:
            assert port["name"].split("-")[0] in ISTIO_PORT_PREFIXES, port
    images = {
        c["image"]
        for d in docs
        if d["kind"] == "Deployment"
        for c in d["spec"]["template"]["spec"]["containers"]
    }
    assert images == {f"kubesphere/examples-bookinfo-{s}-v1:1.13.0" for s in services}
    assert not _releases(BOOKINFO)


def test_there_is_a_release_example_for_every_strategy_and_every_file_holds_one() -> None:
    strategies = set()
    for path in RELEASE_FILES:
        releases = _releases(path)
        assert releases, f"{path.name} holds no CanaryRelease: make it one, or name it here"
        for release in releases:
            CanaryReleaseSpec.model_validate(release["spec"])  # the operator accepts it too
            strategies.add(release["spec"].get("strategy", "Canary"))
    assert strategies >= {"Canary", "BlueGreen", "Mirror"}
    assert (EXAMPLES / "canary-weight.yaml") in RELEASE_FILES


@pytest.mark.parametrize("path", RELEASE_FILES, ids=[p.name for p in RELEASE_FILES])
def test_release_example_is_accepted_and_reaches_its_phase(
    path: Path,
    cluster: Cluster,
    namespace: str,
    prometheus: PrometheusServer,
    start_operator: Any,
    request: pytest.FixtureRequest,
) -> None:
    releases = _releases(path)
    assert releases, f"{path.name} holds no CanaryRelease"
    deploy_bookinfo(cluster, namespace)
    analysed = [r for r in releases if r["spec"].get("analysis")]
    if analysed:
        # Analysis reads Istio metrics: the simulator sends traffic and Prometheus scrapes it.
        mesh = request.getfixturevalue("mesh")
        for release in analysed:
            mesh.set_load(namespace=namespace, service=release["spec"]["service"], rps=50)
    text, flags = path.read_text(), ["--prometheus-url", prometheus.url]
    if any(r["spec"].get("webhooks") for r in releases):
        # The example's webhooks are answered by a local receiver that says yes to every call.
        receiver = Receiver().__enter__()
        request.addfinalizer(receiver.__exit__)
        text = text.replace(EXAMPLE_HOOKS, receiver.base)
        flags += ["--allowed-webhook-prefix", receiver.base]
    start_operator(*flags)

    apply(cluster, namespace, text)

    for release in releases:
        name, spec = release["metadata"]["name"], release["spec"]
        assert get(cluster, "canaryrelease", name, namespace) is not None, f"{name} not stored"
        if spec.get("analysis"):
            first = AnalysisSpec.model_validate(spec["analysis"]).weights()[0]
            wait_for(
                lambda name=name, first=first: _first_step_applied(cluster, namespace, name, first),  # type: ignore[misc]
                timeout=90,
                what=f"{path.name}: the first analysis step ({first}%) applied",
            )
        else:
            phase = expected_phase(spec)
            wait_for(
                lambda name=name, phase=phase: release_phase(cluster, namespace, name, phase),  # type: ignore[misc]
                timeout=90,
                what=f"{path.name}: phase {phase}",
            )
        assert_routing_invariants(cluster, namespace, spec["service"])
        # And istiod, translating what the operator wrote, routes as the status says.
        assert_istiod_routes_say_status(cluster, namespace, name)


def _first_step_applied(cluster: Cluster, namespace: str, name: str, weight: int) -> bool:
    status = (get(cluster, "canaryrelease", name, namespace) or {}).get("status") or {}
    if status.get("phase") == "Failed":
        raise AssertionError(f"release failed: {status.get('message')}")
    canary = (status.get("traffic") or {}).get("canary")
    # Past the first step (a fast promotion) counts too: it had to apply the first one.
    return canary == weight or status.get("phase") in ("TakenOver", "Completed") or (
        status.get("analysis") or {}
    ).get("step", 0) > 0
