"""CanaryRelease objects in every phase, with the status the operator's status builder writes.

The Argo CD health check and the kstatus conditions are tested on these, so that what they
read is what ``status.build_status`` (and the error path's ``phases.failed``) really write,
not a status typed by hand.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from istio_canary import errors
from istio_canary.models import CanaryReleaseSpec, CanaryReleaseStatus, Phase, Reason
from istio_canary.models.hooks import Approve, GateKind, GateStatus
from istio_canary.phases import Decision, failed, refused
from istio_canary.status import build_status

NOW = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)
GENERATION = 4
SPEC: dict[str, Any] = {
    "service": "reviews",
    "stable": {"version": "v1"},
    "canary": {"version": "v2", "image": "kubesphere/examples-bookinfo-reviews-v2:1.13.0"},
    "traffic": {"weight": 30},
}
ANALYSIS: dict[str, Any] = {"analysis": {"steps": [10, 50]}}
PROGRESSING = Decision(phase=Phase.PROGRESSING, reason=Reason.PROGRESSING, message="70% to v1, 30% to v2")


@dataclass(frozen=True)
class State:
    """One situation of a release: its spec, the decision taken and the status before it."""

    decision: Decision
    spec: dict[str, Any] = field(default_factory=dict)
    previous: CanaryReleaseStatus = field(default_factory=CanaryReleaseStatus)

    def release(self) -> dict[str, Any]:
        """The release as the API server serves it, status written by the operator."""
        spec = {**SPEC, **self.spec}
        status = build_status(
            spec=CanaryReleaseSpec.model_validate(spec),
            previous=self.previous,
            decision=self.decision,
            deployments=[],
            virtual_service=None,
            metrics=None,
            generation=GENERATION,
            now=NOW,
        )
        return {
            "apiVersion": "releases.istio-canary.io/v1alpha1",
            "kind": "CanaryRelease",
            "metadata": {"name": "reviews", "namespace": "bookinfo", "generation": GENERATION},
            "spec": spec,
            "status": status.to_wire(),
        }


def _rolled_back_by_analysis() -> Decision:
    return Decision(
        phase=Phase.ABORTED, reason=Reason.ANALYSIS_FAILED, abort_reason=Reason.ANALYSIS_FAILED,
        message="aborted (canary success rate 80% < stable 99%): 100% to v1, reviews-v2 removed",
    )


STATES: dict[str, State] = {
    "waiting for the canary": State(Decision(
        phase=Phase.WAITING_FOR_CANARY, reason=Reason.CANARY_NOT_READY, requeue_after=5.0,
        message="waiting for Deployment reviews-v2 to have ready pods; it gets no traffic",
    )),
    "progressing at the weight the spec asks": State(PROGRESSING),
    "progressing under analysis": State(PROGRESSING, spec=ANALYSIS),
    "waiting for an approval": State(Decision(
        phase=Phase.PROGRESSING, reason=Reason.WAITING_FOR_APPROVAL,
        message="80% to v1, 20% to v2; holding before raising the canary to 50%: waiting for an approval",
        gate=GateStatus(gate="weight-50", waiting_for=[GateKind.APPROVAL], since=NOW.isoformat(),
                        approve=Approve(before_weight=50, canary_revision="3f2a9c1d0b7e")),
    ), spec={"analysis": {"steps": [10, 50], "approvals": [{"beforeWeight": 50}]}}),
    "paused": State(
        Decision(phase=Phase.PAUSED, reason=Reason.PAUSED, message="paused: routing is left as it is"),
        spec={"policy": "Paused"},
    ),
    "taken over": State(Decision(
        phase=Phase.TAKEN_OVER, reason=Reason.TAKEN_OVER, message="v2 receives 100% of traffic",
    ), spec={"takeOver": "v2"}),
    "draining before job offline": State(Decision(
        phase=Phase.TAKEN_OVER, reason=Reason.DRAINING, requeue_after=8.0,
        message="v2 serves 100% of traffic; reviews-v1 is taken offline after a drain of 10 s",
    ), spec={"takeOver": "v2", "offline": True}),
    "completed": State(Decision(
        phase=Phase.COMPLETED, reason=Reason.COMPLETED,
        message="v2 serves 100% of traffic; reviews-v1 is taken offline",
    ), spec={"takeOver": "v2", "offline": True}),
    "rolling back as asked": State(Decision(
        phase=Phase.PROGRESSING, reason=Reason.ABORTING, requeue_after=0.5, abort_reason=Reason.ABORTED,
        message="rolling back: 100% to v1, removing reviews-v2",
    ), spec={"abort": True}),
    "aborted as asked": State(Decision(
        phase=Phase.ABORTED, reason=Reason.ABORTED, abort_reason=Reason.ABORTED,
        message="aborted: 100% to v1, reviews-v2 removed, original routing restored",
    ), spec={"abort": True}),
    "rolling back after a failed analysis": State(Decision(
        phase=Phase.PROGRESSING, reason=Reason.DRAINING, requeue_after=9.0, abort_reason=Reason.ANALYSIS_FAILED,
        message="rolling back (canary success rate 80% < stable 99%): 100% to v1, removing reviews-v2",
    ), spec=ANALYSIS),
    "rolled back by the analysis": State(_rolled_back_by_analysis(), spec=ANALYSIS),
    "rolled back by a webhook": State(Decision(
        phase=Phase.ABORTED, reason=Reason.WEBHOOK_ROLLBACK, abort_reason=Reason.WEBHOOK_ROLLBACK,
        message="aborted (PreRollout webhook smoke answered HTTP 500): 100% to v1, reviews-v2 removed",
    )),
    "rolled back, then a transient error": State(
        failed(
            previous=CanaryReleaseStatus(phase=Phase.ABORTED, abort_reason=Reason.ANALYSIS_FAILED),
            classified=errors.classify(errors.ApiUnavailableError("the API server did not answer")),
            retry_after=5.0,
        ),
        spec=ANALYSIS,
        previous=CanaryReleaseStatus(phase=Phase.ABORTED, abort_reason=Reason.ANALYSIS_FAILED),
    ),
    "failed on a spec that cannot be carried out": State(refused(
        previous=CanaryReleaseStatus(),
        error=errors.StableDeploymentNotFoundError("no Deployment has pods labelled app=reviews,version=v1"),
    )),
    "failed: the canary never became ready": State(Decision(
        phase=Phase.FAILED, reason=Reason.CANARY_NEVER_READY,
        message="canary v2 had no ready pod for 300 s (analysis.readyDeadlineSeconds); its traffic stays at 0",
    ), spec=ANALYSIS),
    "retrying a transient error": State(
        failed(
            previous=CanaryReleaseStatus(phase=Phase.PROGRESSING, message="70% to v1, 30% to v2"),
            classified=errors.classify(errors.ApiUnavailableError("the API server did not answer")),
            retry_after=10.0,
        ),
        previous=CanaryReleaseStatus(phase=Phase.PROGRESSING, message="70% to v1, 30% to v2"),
    ),
}


def release(name: str) -> dict[str, Any]:
    return STATES[name].release()
