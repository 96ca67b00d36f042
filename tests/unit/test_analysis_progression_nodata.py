"""A canary that Prometheus cannot see (verdict NoData) holds only until noDataTimeoutSeconds."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from istio_canary.analysis import progression
from istio_canary.models import AnalysisSpec, AnalysisStatus, CheckResult, Verdict

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
SPEC = AnalysisSpec(steps=[20, 50], interval_seconds=10)  # the default timeout: 60 s
STARTED = AnalysisStatus(step=0, weight=20, step_started_at=(NOW - timedelta(seconds=30)).isoformat())
IDLE = "no requests to canary in this step"


def look(verdict: Verdict, at: datetime, reason: str = IDLE) -> CheckResult:
    return CheckResult(time=at.isoformat(), step=0, weight=20, verdict=verdict, reason=reason)


def advance(
    status: AnalysisStatus, verdict: Verdict | None, *, after: float, spec: AnalysisSpec = SPEC
) -> progression.Advance:
    """One call of ``advance`` ``after`` seconds past NOW, with a look of ``verdict`` (None: no look)."""
    at = NOW + timedelta(seconds=after)
    check = look(verdict, at) if verdict is not None else None
    return progression.advance(spec=spec, status=status, check=check, now=at)


def no_data_since_now() -> AnalysisStatus:
    first = advance(STARTED, Verdict.NO_DATA, after=0)
    assert first.status.no_data_since == NOW.isoformat()
    return first.status


def test_no_data_below_the_timeout_holds_the_weight_without_an_event() -> None:
    held = advance(no_data_since_now(), Verdict.NO_DATA, after=59)
    assert held.outcome is progression.Outcome.HOLD
    assert held.events == ()
    assert held.status.no_data_since == NOW.isoformat(), "a later NoData keeps the first one's time"


def test_no_data_for_the_timeout_rolls_back_with_a_warning_that_says_what_to_check() -> None:
    rolled = advance(no_data_since_now(), Verdict.NO_DATA, after=60)
    assert rolled.outcome is progression.Outcome.ROLLBACK
    [event] = rolled.events
    assert (event.type, event.reason) == ("Warning", "NoData")
    assert "no data in Prometheus for 60 s (analysis.noDataTimeoutSeconds)" in event.message
    assert IDLE in event.message
    assert "Istio sidecar" in event.message and "`version` label" in event.message


def test_the_rollback_cause_for_status_message_names_the_timeout_and_the_last_reason() -> None:
    rolled = advance(no_data_since_now(), Verdict.NO_DATA, after=60)
    cause = progression.rollback_cause(spec=SPEC, status=rolled.status)
    assert cause.startswith(f"no data in Prometheus for 60 s (analysis.noDataTimeoutSeconds): {IDLE}; ")
    assert "Istio sidecar" in cause


@pytest.mark.parametrize("verdict", [None, Verdict.PASS], ids=["no-new-look", "a-pass"])
def test_a_no_data_rollback_is_sticky_whatever_the_next_call_brings(verdict: Verdict | None) -> None:
    rolled = advance(no_data_since_now(), Verdict.NO_DATA, after=60)
    again = advance(rolled.status, verdict, after=70)
    assert again.outcome is progression.Outcome.ROLLBACK
    assert again.events == (), "the look that decided warned once"


def test_time_alone_does_not_roll_back_the_next_look_does() -> None:
    # NoData is what a look says; between looks (or while the canary cannot be routed to and
    # gets no looks) there is no new evidence, unlike an Unreachable Prometheus's silence.
    assert advance(no_data_since_now(), None, after=600).outcome is progression.Outcome.HOLD


def test_a_pass_in_between_restarts_the_no_data_clock() -> None:
    passed = advance(no_data_since_now(), Verdict.PASS, after=30)
    assert passed.status.no_data_since is None
    again = advance(passed.status, Verdict.NO_DATA, after=70)
    assert again.outcome is progression.Outcome.HOLD
    assert again.status.no_data_since == (NOW + timedelta(seconds=70)).isoformat()
    assert advance(again.status, Verdict.NO_DATA, after=129).outcome is progression.Outcome.HOLD
    assert advance(again.status, Verdict.NO_DATA, after=130).outcome is progression.Outcome.ROLLBACK


@pytest.mark.parametrize("verdict", [Verdict.INCONCLUSIVE, Verdict.UNREACHABLE])
def test_any_other_verdict_clears_the_no_data_clock(verdict: Verdict) -> None:
    other = advance(no_data_since_now(), verdict, after=30)
    assert other.outcome is progression.Outcome.HOLD
    assert other.status.no_data_since is None
    assert advance(other.status, Verdict.NO_DATA, after=60).outcome is progression.Outcome.HOLD


def test_no_data_clears_the_unreachable_clock() -> None:
    silent = advance(STARTED, Verdict.UNREACHABLE, after=0)
    assert silent.status.unreachable_since is not None
    empty = advance(silent.status, Verdict.NO_DATA, after=10)
    assert empty.status.unreachable_since is None
    assert empty.status.no_data_since == (NOW + timedelta(seconds=10)).isoformat()


@pytest.mark.parametrize(
    ("interval", "timeout"),
    [pytest.param(1, 60, id="short-looks-wait-a-minute"), pytest.param(10, 60, id="default"),
     pytest.param(30, 90, id="long-looks-wait-three")],
)
def test_the_default_timeout_is_three_intervals_and_at_least_a_minute(interval: int, timeout: int) -> None:
    assert AnalysisSpec(interval_seconds=interval).no_data_timeout() == timeout


def test_no_data_timeout_seconds_overrides_the_default() -> None:
    spec = AnalysisSpec.model_validate({"steps": [20, 50], "intervalSeconds": 10, "noDataTimeoutSeconds": 300})
    assert spec.no_data_timeout() == 300
    status = advance(STARTED, Verdict.NO_DATA, after=0, spec=spec).status
    assert advance(status, Verdict.NO_DATA, after=299, spec=spec).outcome is progression.Outcome.HOLD
    rolled = advance(status, Verdict.NO_DATA, after=300, spec=spec)
    assert rolled.outcome is progression.Outcome.ROLLBACK
    assert "for 300 s" in rolled.events[0].message


def test_no_data_never_promotes_even_at_the_last_step() -> None:
    last = AnalysisStatus(step=1, weight=50, step_started_at=NOW.isoformat())
    assert advance(last, Verdict.NO_DATA, after=0).outcome is progression.Outcome.HOLD
