"""Ready, Reconciling and Stalled: the conditions `kubectl wait`, Flux (kstatus) and Argo CD read."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest
from istio_canary.models import CanaryReleaseStatus, Condition, Phase, Reason
from istio_canary.phases import Decision
from istio_canary.status import summary_conditions

from tests.unit.release_states import NOW, STATES, release

# (Ready, Reconciling, Stalled) in each situation: exactly one is True, or none while the
# release holds what the spec asks and waits for a person's next change.
EXPECTED = {
    "waiting for the canary": (False, True, False),
    "progressing at the weight the spec asks": (False, False, False),
    "progressing under analysis": (False, True, False),
    "waiting for an approval": (False, False, False),
    "rolled back by a webhook": (False, False, True),
    "paused": (False, False, False),
    "taken over": (False, False, False),
    "draining before job offline": (False, True, False),
    "completed": (True, False, False),
    "rolling back as asked": (False, True, False),
    "aborted as asked": (True, False, False),
    "rolling back after a failed analysis": (False, False, True),
    "rolled back by the analysis": (False, False, True),
    "rolled back, then a transient error": (False, False, True),
    "failed on a spec that cannot be carried out": (False, False, True),
    "failed: the canary never became ready": (False, False, True),
    "retrying a transient error": (False, True, False),
}


def _conditions(obj: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["type"]: c for c in obj["status"]["conditions"]}


def _reason_word(decision: Decision) -> str:
    return decision.reason.value if isinstance(decision.reason, Reason) else decision.reason


def test_every_situation_has_an_expectation() -> None:
    assert set(EXPECTED) == set(STATES)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_ready_reconciling_and_stalled_say_where_the_release_is(name: str) -> None:
    conditions = _conditions(release(name))
    got = tuple(conditions[t]["status"] == "True" for t in ("Ready", "Reconciling", "Stalled"))
    assert got == EXPECTED[name]


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_each_condition_carries_the_release_reason_message_and_generation(name: str) -> None:
    obj = release(name)
    status = obj["status"]
    for type_ in ("Ready", "Reconciling", "Stalled"):
        condition = _conditions(obj)[type_]
        assert condition["message"] == status["message"]
        assert condition["reason"] == _reason_word(STATES[name].decision)
        assert condition["observedGeneration"] == obj["metadata"]["generation"] == status["observedGeneration"]


def test_the_reason_is_the_release_reason_word_not_an_enum_repr() -> None:
    conditions = _conditions(release("completed"))
    assert conditions["Ready"]["reason"] == "Completed"
    assert _conditions(release("rolled back by the analysis"))["Stalled"]["reason"] == "AnalysisFailed"
    assert _conditions(release("failed on a spec that cannot be carried out"))["Stalled"]["reason"] == (
        "StableDeploymentNotFound"
    )


def test_a_transient_error_on_an_aborted_release_keeps_who_aborted_it() -> None:
    asked = CanaryReleaseStatus(phase=Phase.ABORTED, abort_reason=Reason.ABORTED)
    retrying = Decision(phase=Phase.ABORTED, reason="ApiUnavailable", message="retrying", requeue_after=5.0)
    conditions = summary_conditions(
        [], decision=retrying, previous=asked, analysis_running=False, now=NOW, generation=1
    )
    assert {c.type: c.status for c in conditions} == {"Ready": "True", "Reconciling": "False", "Stalled": "False"}


def test_ready_moves_its_transition_time_only_when_it_flips() -> None:
    progressing = Decision(phase=Phase.PROGRESSING, reason=Reason.PROGRESSING, message="70/30")
    done = Decision(phase=Phase.COMPLETED, reason=Reason.COMPLETED, message="done")
    previous = CanaryReleaseStatus()

    def look(conditions: list[Condition], decision: Decision, now: datetime, generation: int) -> list[Condition]:
        return summary_conditions(
            conditions, decision=decision, previous=previous, analysis_running=False, now=now, generation=generation
        )

    first = look([], progressing, NOW, 1)
    later = NOW + timedelta(minutes=5)
    again = look(first, progressing, later, 2)
    flipped = look(again, done, later, 3)
    ready = {c.type: c for c in again}["Ready"]
    assert ready.last_transition_time == NOW.isoformat() and ready.observed_generation == 2
    assert {c.type: c for c in flipped}["Ready"].last_transition_time == later.isoformat()
