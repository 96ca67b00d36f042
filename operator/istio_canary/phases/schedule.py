"""When a release is looked at again: pure, from the decision and the spec."""

from __future__ import annotations

from istio_canary.models import CanaryReleaseSpec, Phase
from istio_canary.phases.model import Decision

__all__ = ["next_look_in"]


def next_look_in(
    *, decision: Decision, spec: CanaryReleaseSpec, resync_seconds: float, metrics_in: float | None
) -> float:
    """Seconds until the release is looked at again (pure).

    What the decision asks for (or the resync period), sooner for an analysis step, and soon
    enough to refresh the per-version metrics in status while the release is not final.
    """
    due = decision.requeue_after if decision.requeue_after is not None else resync_seconds
    if spec.analysis is not None and decision.phase is Phase.PROGRESSING:
        due = min(due, spec.analysis.interval_seconds)
    if metrics_in is not None and not decision.phase.is_final:
        due = min(due, metrics_in)
    return due
