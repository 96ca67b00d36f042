"""Domain errors, one small class each. Handlers turn them into status conditions.

``InvalidSpecError`` and its subclasses mean "the spec cannot be carried out as written":
the operator reports it and never moves traffic. Anything else is a bug or a cluster problem.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

__all__ = [
    "AmbiguousCanaryDeploymentError",
    "AmbiguousStableDeploymentError",
    "ApiRefusedError",
    "ApiUnavailableError",
    "CanaryDeploymentNotFoundError",
    "Classified",
    "ConflictError",
    "CredentialsError",
    "DeploymentConflictError",
    "Disposition",
    "ForeignObjectError",
    "InvalidSpecError",
    "MetricsUnavailableError",
    "OutboundRefusedError",
    "ReleaseError",
    "RoutingError",
    "ServiceNotFoundError",
    "StableDeploymentNotFoundError",
    "WorkloadError",
    "classify",
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


class CanaryDeploymentNotFoundError(WorkloadError):
    """The canary is provided, and no Deployment behind the Service runs its version (or the named one is missing)."""


class AmbiguousCanaryDeploymentError(WorkloadError):
    """The canary is provided, and several Deployments behind the Service run its version."""


class ServiceNotFoundError(InvalidSpecError):
    """spec.service names no Service in the release's namespace."""


class DeploymentConflictError(InvalidSpecError):
    """The canary Deployment's name is taken by a Deployment this release did not create."""


class MetricsUnavailableError(ReleaseError):
    """Prometheus did not answer (unreachable, timed out, or refused the query): hold the weight."""

    def __init__(self, message: str, *, status_code: int | None = None) -> None:
        super().__init__(message)
        self.status_code = status_code
        """The HTTP status Prometheus answered with, when it answered at all."""


class OutboundRefusedError(InvalidSpecError):
    """The outbound policy refuses a URL or an address the release would make the operator call.

    Raised before anything is sent: the message names the URL or address and the rule, never
    anything a remote server said.
    """


class CredentialsError(InvalidSpecError):
    """The Secret a release names for credentials is missing, lacks a key, or cannot be read."""


class ApiRefusedError(InvalidSpecError):
    """The API server refused a write with a 4xx answer (403 Forbidden, 422 from an admission webhook...)."""

    def __init__(self, message: str, *, code: int) -> None:
        super().__init__(message)
        self.code = code


class ApiUnavailableError(ReleaseError):
    """The API server did not carry out a request (5xx, timeout, connection refused): try again later."""


class ConflictError(ReleaseError):
    """Someone else changed an object between our read and our write: decide again."""


class Disposition(str, enum.Enum):
    """What the handler edge does with an error raised while reconciling."""

    INVALID = "Invalid"
    """The spec or the objects it names cannot be used: phase Failed until something changes."""
    RETRY = "Retry"
    """Transient: keep the phase, report it, and try again with exponential back-off."""
    CONFLICT = "Conflict"
    """An object changed under us: decide again at once from fresh state, report nothing."""


@dataclass(frozen=True, kw_only=True)
class Classified:
    disposition: Disposition
    reason: str
    message: str


# Messages from the API server or a webhook can be long; status and Events stay readable.
MAX_MESSAGE = 1024


def classify(error: BaseException) -> Classified:
    """The one place that decides how an error raised during a reconcile is handled."""
    reason = type(error).__name__.removesuffix("Error")
    message = _clip(str(error) or type(error).__name__)
    if isinstance(error, ConflictError):
        return Classified(disposition=Disposition.CONFLICT, reason=reason, message=message)
    if isinstance(error, (InvalidSpecError, ForeignObjectError)):
        return Classified(disposition=Disposition.INVALID, reason=reason, message=message)
    if isinstance(error, ReleaseError):
        return Classified(disposition=Disposition.RETRY, reason=reason, message=message)
    # A bug or an unexpected answer: never a crash loop, never a silent traceback.
    return Classified(
        disposition=Disposition.RETRY,
        reason="UnexpectedError",
        message=_clip(f"unexpected {type(error).__name__}: {error}"),
    )


def _clip(text: str) -> str:
    return text if len(text) <= MAX_MESSAGE else text[: MAX_MESSAGE - 3] + "..."
