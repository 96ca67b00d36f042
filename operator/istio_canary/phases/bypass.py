"""Paths to the Service's pods that bypass Envoy, as far as the operator can see them.

Traffic that does not pass a sidecar is balanced by the Service's selector over every version's
pods, whatever the weights. From what the operator watches it can see four such paths: a
NodePort or LoadBalancer Service (reached from outside the cluster), external IPs, an Ingress
that sends to the Service (an ingress controller reads the Service's endpoints, not Envoy's
routes), and a release namespace without sidecar injection (its clients call the Service
directly). Other paths (clients in other namespaces without sidecars) are not visible here.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

__all__ = ["bypass_paths", "ingresses_to", "injected"]

# The namespace labels under which Istio's injector adds a sidecar to every pod.
INJECTION_LABEL = "istio-injection"
REVISION_LABEL = "istio.io/rev"


def bypass_paths(
    service: Mapping[str, Any] | None,
    *,
    namespace_labels: Mapping[str, str] | None = None,
    ingresses: Iterable[Mapping[str, Any]] = (),
) -> str:
    """How clients can reach the Service's pods without Envoy's routes ("" when none is seen).

    ``namespace_labels`` None: the namespace was not seen, so nothing is said of injection.
    """
    spec = (service or {}).get("spec") or {}
    name = str(((service or {}).get("metadata") or {}).get("name", ""))
    paths = []
    if spec.get("type") in ("NodePort", "LoadBalancer"):
        paths.append(f"the Service is of type {spec['type']}")
    if spec.get("externalIPs"):
        paths.append("the Service has externalIPs")
    paths += [f"Ingress {ingress} sends to it by its endpoints" for ingress in ingresses_to(ingresses, service=name)]
    if namespace_labels is not None and not injected(namespace_labels):
        paths.append(
            f"its namespace has no sidecar injection (label {INJECTION_LABEL}=enabled or {REVISION_LABEL}), "
            "so clients there call it directly unless their pods ask for a sidecar"
        )
    if not paths:
        return ""
    return (
        f"{' and '.join(paths)}: clients that reach it that way are balanced over both versions' pods by "
        "the selector, whatever the weights (routing.mode Services keeps them on one version)"
    )


def injected(labels: Mapping[str, str]) -> bool:
    """Whether Istio injects a sidecar into the pods of a namespace with these labels."""
    if labels.get(INJECTION_LABEL) == "disabled":
        return False
    return labels.get(INJECTION_LABEL) == "enabled" or bool(labels.get(REVISION_LABEL))


def ingresses_to(ingresses: Iterable[Mapping[str, Any]], *, service: str) -> list[str]:
    """The names of the Ingresses with a backend (a rule's path or the default) that is ``service``."""
    found = []
    for ingress in ingresses:
        spec = ingress.get("spec") or {}
        backends = [spec.get("defaultBackend") or {}]
        backends += [
            path.get("backend") or {}
            for rule in spec.get("rules") or []
            for path in (rule.get("http") or {}).get("paths") or []
        ]
        if any((backend.get("service") or {}).get("name") == service for backend in backends):
            found.append(str(ingress.get("metadata", {}).get("name", "")))
    return sorted(found)
