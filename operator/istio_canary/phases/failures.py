"""Decisions for a release that cannot go on: an unusable spec, or an error raised on the way."""

from __future__ import annotations

from dataclasses import replace

from istio_canary import actions as act
from istio_canary import errors
from istio_canary.models import CanaryReleaseStatus, Phase
from istio_canary.phases.model import RETRY_INVALID_SECONDS, Decision

__all__ = ["failed", "refused"]


def refused(*, previous: CanaryReleaseStatus, error: errors.InvalidSpecError, reason: str | None = None) -> Decision:
    """Failed, with the error's message: the spec (or a write the API server refused) cannot be carried out.

    Nothing is written and traffic stays as it is; the release is looked at again later, so it
    proceeds by itself once the cause is gone (a Service applied after the release, say).
    """
    message = str(error)
    reason = reason or type(error).__name__.removesuffix("Error")
    events: tuple[act.Event, ...] = ()
    if previous.phase is not Phase.FAILED or previous.message != message:
        events = (act.Event(type="Warning", reason=reason, message=message),)
    return Decision(
        phase=Phase.FAILED,
        reason=reason,
        message=message,
        events=events,
        invalid=True,
        requeue_after=RETRY_INVALID_SECONDS,
    )


def failed(*, previous: CanaryReleaseStatus, classified: errors.Classified, retry_after: float) -> Decision:
    """What an error raised while reconciling leaves in status (``errors.classify`` sorted it).

    An unusable spec or object (another release's routing, a write the API server refused) is
    ``Failed``; a transient error keeps the phase and says it is retrying. Both are looked at
    again after ``retry_after`` and proceed by themselves once the cause is gone.
    """
    if classified.disposition is errors.Disposition.INVALID:
        decision = refused(
            previous=previous, error=errors.InvalidSpecError(classified.message), reason=classified.reason
        )
        return replace(decision, requeue_after=retry_after, drain=previous.drain)
    message = f"{classified.message} (retrying in {retry_after:g} s)"
    events: tuple[act.Event, ...] = ()
    if classified.message not in previous.message:
        events = (act.Event(type="Warning", reason=classified.reason, message=message),)
    return Decision(
        phase=previous.phase,
        reason=classified.reason,
        message=message,
        events=events,
        requeue_after=retry_after,
        drain=previous.drain,
    )
