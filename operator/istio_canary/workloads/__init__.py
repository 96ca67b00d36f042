"""Pure workload code: find the stable Deployment, clone it into the canary, judge readiness.

Deployments are plain dicts as the API server serves them (camelCase keys); the adapters in
``istio_canary.k8s`` read and write them.
"""

from istio_canary.workloads.clone import (
    MANAGED_BY,
    MANAGED_BY_LABEL,
    RELEASE_ANNOTATION,
    RELEASE_UID_ANNOTATION,
    build_canary_deployment,
    canary_deployment_name,
    canary_revision,
    find_provided_canary,
    find_stable_deployment,
    hand_over_patch,
    is_created_by,
)
from istio_canary.workloads.companions import HPA, PDB, build_canary_companions
from istio_canary.workloads.patch import deployment_patch
from istio_canary.workloads.readiness import has_ready_pods, ready_replicas, rolled_out

__all__ = [
    "HPA",
    "MANAGED_BY",
    "MANAGED_BY_LABEL",
    "PDB",
    "RELEASE_ANNOTATION",
    "RELEASE_UID_ANNOTATION",
    "build_canary_companions",
    "build_canary_deployment",
    "canary_deployment_name",
    "canary_revision",
    "deployment_patch",
    "find_provided_canary",
    "find_stable_deployment",
    "hand_over_patch",
    "has_ready_pods",
    "is_created_by",
    "ready_replicas",
    "rolled_out",
]
