"""Names the operator writes into other objects, and the coordinates of the kinds it writes: one place each."""

from __future__ import annotations

__all__ = [
    "GROUP",
    "ISTIO_API_VERSION",
    "ISTIO_GROUP",
    "ISTIO_VERSION",
    "KIND",
    "MANAGED_BY",
    "MANAGED_BY_LABEL",
    "ORIGINAL_SELECTOR_ANNOTATION",
    "ORIGINAL_SPEC_ANNOTATION",
    "PLURAL",
    "RELEASE_ANNOTATION",
    "RELEASE_LABEL",
    "RELEASE_UID_ANNOTATION",
    "SERVER_METADATA",
    "VERSION",
]

# The CanaryRelease API.
GROUP = "releases.istio-canary.io"
VERSION = "v1alpha1"
KIND = "CanaryRelease"
PLURAL = "canaryreleases"

# Istio's networking API, as the operator reads and writes it.
ISTIO_GROUP = "networking.istio.io"
ISTIO_VERSION = "v1"
ISTIO_API_VERSION = f"{ISTIO_GROUP}/{ISTIO_VERSION}"

# On objects the operator created (the canary Deployment and its HPA/PDB copies, routing).
MANAGED_BY_LABEL = "app.kubernetes.io/managed-by"
MANAGED_BY = "istio-canary-operator"
# The release that wrote a routing object (a label, so that it can be selected on) ...
RELEASE_LABEL = f"{GROUP}/release"
# ... and the release that created a workload, as namespace/name, with its uid.
RELEASE_ANNOTATION = f"{GROUP}/release"
RELEASE_UID_ANNOTATION = f"{GROUP}/release-uid"
# The spec of a routing object before the release adopted it, as JSON.
ORIGINAL_SPEC_ANNOTATION = f"{GROUP}/original-spec"
# The selector of the released Service before routing.mode Services pinned it, as JSON.
ORIGINAL_SELECTOR_ANNOTATION = f"{GROUP}/original-selector"

# Metadata the API server sets: a desired object leaves them out (a replace adds resourceVersion back).
SERVER_METADATA = (
    "creationTimestamp",
    "deletionGracePeriodSeconds",
    "deletionTimestamp",
    "generation",
    "managedFields",
    "resourceVersion",
    "selfLink",
    "uid",
)
