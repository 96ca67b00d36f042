"""The paths around Envoy that the operator can see: Service type, external IPs, Ingresses, injection."""

from __future__ import annotations

from typing import Any

from istio_canary.k8s import cache
from istio_canary.phases.bypass import bypass_paths, ingresses_to, injected

from tests.unit.builders import SERVICE


def ingress(name: str, *, service: str, default: bool = False) -> dict[str, Any]:
    backend = {"service": {"name": service, "port": {"number": 9080}}}
    spec: dict[str, Any] = {"defaultBackend": backend} if default else {
        "rules": [{"http": {"paths": [{"path": "/", "pathType": "Prefix", "backend": backend}]}}]
    }
    return {"metadata": {"name": name}, "spec": spec}


def test_a_mesh_only_service_in_an_injected_namespace_has_no_bypass() -> None:
    assert bypass_paths(SERVICE, namespace_labels={"istio-injection": "enabled"}, ingresses=()) == ""


def test_an_ingress_to_the_service_is_a_bypass_and_one_to_another_service_is_not() -> None:
    found = bypass_paths(SERVICE, ingresses=[ingress("web", service="reviews"), ingress("other", service="details")])
    assert "Ingress web sends to it" in found and "other" not in found
    assert ingresses_to([ingress("edge", service="reviews", default=True)], service="reviews") == ["edge"]


def test_a_namespace_without_injection_is_a_bypass_but_an_unseen_one_says_nothing() -> None:
    assert "no sidecar injection" in bypass_paths(SERVICE, namespace_labels={})
    assert bypass_paths(SERVICE, namespace_labels=None) == ""


def test_injection_follows_istios_namespace_labels() -> None:
    assert injected({"istio-injection": "enabled"})
    assert injected({"istio.io/rev": "canary"})
    assert not injected({"istio.io/rev": "canary", "istio-injection": "disabled"})
    assert not injected({"team": "reviews"})


def test_the_cache_gives_the_namespaces_labels_and_its_ingresses() -> None:
    seen = cache.observe_cached(
        namespace="bookinfo", service="reviews",
        services={("bookinfo", "reviews"): [SERVICE]}, deployments={}, virtual_services={}, destination_rules={},
        namespaces={"bookinfo": [{"istio-injection": "enabled"}]},
        ingresses={"bookinfo": [ingress("web", service="reviews")], "other": [ingress("x", service="reviews")]},
    )
    assert seen.namespace_labels == {"istio-injection": "enabled"}
    assert [i["metadata"]["name"] for i in seen.ingresses] == ["web"]
