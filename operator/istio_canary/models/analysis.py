"""Automatic progression: the ``spec.analysis`` block and its status."""

from __future__ import annotations

import enum
from typing import Annotated

from pydantic import Field

from istio_canary.models._base import ApiModel

__all__ = ["AnalysisSpec", "AnalysisStatus", "CheckResult", "Promotion", "Verdict"]


class Promotion(str, enum.Enum):
    """How far a canary that passed every step is taken."""

    TAKE_OVER = "TakeOver"
    """Send 100% to the canary and keep stable running."""
    OFFLINE = "Offline"
    """Take over, then take the stable version offline: the release completes."""


class Verdict(str, enum.Enum):
    """The judge's answer for one look at the metrics."""

    PASS = "Pass"
    """The evidence says the canary is no worse than stable: go to the next step."""
    FAIL = "Fail"
    """The evidence says the canary is worse: roll back now."""
    INCONCLUSIVE = "Inconclusive"
    """Not enough evidence either way: hold the weight and look again."""
    NO_DATA = "NoData"
    """Prometheus answered but has no traffic for a version: hold, never promote."""
    UNREACHABLE = "Unreachable"
    """Prometheus did not answer: hold, and roll back after ``unreachableTimeoutSeconds``."""


class AnalysisSpec(ApiModel):
    """Steps, checks and deadlines for automatic progression."""

    interval_seconds: Annotated[int, Field(ge=1, le=3600)] = 10
    steps: list[Annotated[int, Field(ge=1, le=100)]] = Field(default_factory=list, max_length=100)
    step_weight: Annotated[int, Field(ge=1, le=100)] = 10
    max_weight: Annotated[int, Field(ge=1, le=100)] = 50
    promotion: Promotion = Promotion.TAKE_OVER
    max_error_rate_increase: Annotated[float, Field(ge=0, le=1)] = 0.01
    max_latency_increase_ms: Annotated[float, Field(ge=0)] = 50.0
    latency_quantile: Annotated[float, Field(gt=0, lt=1)] = 0.99
    min_requests: Annotated[int, Field(ge=1)] = 20
    unreachable_timeout_seconds: Annotated[int, Field(ge=1)] = 120
    ready_deadline_seconds: Annotated[int, Field(ge=1)] = 600
    prometheus_url: str | None = None

    def weights(self) -> list[int]:
        """The canary weight of each step, in order, ending below 100 (take over does the rest)."""
        if self.steps:
            return sorted(set(self.steps))
        return list(range(self.step_weight, self.max_weight + 1, self.step_weight))


class CheckResult(ApiModel):
    """One look at the metrics: what was measured and what the judge said."""

    time: str
    step: int
    weight: int
    verdict: Verdict
    reason: str = ""
    stable_requests: float = 0.0
    stable_errors: float = 0.0
    canary_requests: float = 0.0
    canary_errors: float = 0.0
    stable_latency_ms: float | None = None
    canary_latency_ms: float | None = None


class AnalysisStatus(ApiModel):
    """Where automatic progression stands."""

    step: int = 0
    weight: int = 0
    step_started_at: str | None = None
    unreachable_since: str | None = None
    last_verdict: Verdict | None = None
    history: list[CheckResult] = Field(default_factory=list, max_length=50)
