"""Domain errors, one small class each. Handlers turn them into status conditions.

``InvalidSpecError`` and its subclasses mean "the spec cannot be carried out as written":
the operator reports it and never moves traffic. Anything else is a bug or a cluster problem.
"""

from __future__ import annotations

__all__ = [
    "AmbiguousStableDeploymentError",
    "DeploymentConflictError",
    "ForeignObjectError",
    "InvalidSpecError",
    "MetricsUnavailableError",
    "ReleaseError",
    "RoutingError",
    "ServiceNotFoundError",
    "StableDeploymentNotFoundError",
    "WorkloadError",
]


class ReleaseError(Exception):
    """Base of every error the operator raises on purpose."""


class InvalidSpecError(ReleaseError):
    """The CanaryRelease spec (or the objects it names) cannot be carried out."""


class RoutingError(InvalidSpecError):
    """The requested routing cannot be expressed in Istio (bad regex, match rule on a TCP port...)."""


class ForeignObjectError(ReleaseError):
    """A routing object belongs to someone else: another release, or nobody the operator knows."""


class WorkloadError(InvalidSpecError):
    """The canary Deployment cannot be built from the stable one as the spec asks."""


class StableDeploymentNotFoundError(WorkloadError):
    """No Deployment runs the stable version behind the Service."""


class AmbiguousStableDeploymentError(WorkloadError):
    """Several Deployments run the stable version behind the Service; the operator will not guess."""


class ServiceNotFoundError(InvalidSpecError):
    """spec.service names no Service in the release's namespace."""


class DeploymentConflictError(InvalidSpecError):
    """The canary Deployment's name is taken by a Deployment this release did not create."""


class MetricsUnavailableError(ReleaseError):
    """Prometheus did not answer (unreachable, timed out, or refused the query): hold the weight."""
