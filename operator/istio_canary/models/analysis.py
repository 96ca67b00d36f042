"""Automatic progression: the ``spec.analysis`` block and its status."""

from __future__ import annotations

import enum
from typing import Annotated

from pydantic import ConfigDict, Field, JsonValue, field_validator, model_validator

from istio_canary import outbound
from istio_canary.models._base import ApiModel
from istio_canary.models.hooks import Approval
from istio_canary.models.metric_checks import MetricCheck

__all__ = [
    "AnalysisSpec",
    "AnalysisStatus",
    "CheckResult",
    "Evidence",
    "PrometheusAuth",
    "Promotion",
    "SecretRef",
    "Verdict",
]

DNS_SUBDOMAIN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"

# The form of analysis.prometheusUrl, checked by the API server (outbound.parse_url repeats it,
# and the operator's outbound policy decides, later, whether the URL may be called at all).
# The client appends /api/v1/query to the URL: a "?" or "#" would make that suffix a query
# parameter or a fragment, and the request would go to the path the release chose.
PROMETHEUS_URL_RULES: list[JsonValue] = [
    {"rule": "isURL(self)", "message": "prometheusUrl must be an absolute URL"},
    {
        "rule": "!isURL(self) || url(self).getScheme() in ['http', 'https']",
        "message": "prometheusUrl must be an http or https URL",
    },
    {"rule": "!isURL(self) || url(self).getHostname() != ''", "message": "prometheusUrl needs a host"},
    {
        "rule": "!self.matches('^[^:/?#]*://[^/?#]*@')",
        "message": "prometheusUrl must not carry a user name or password: put credentials in a Secret "
        "(prometheusAuth)",
    },
    {
        "rule": "!self.contains('#') && !self.contains('?')",
        "message": "prometheusUrl must have no query and no fragment: it is a base URL, the API path "
        "is appended to it",
    },
    {
        "rule": "!self.matches('/(\\\\.|%2[eE]){1,2}(/|$)') && !self.contains('\\\\')",
        "message": "prometheusUrl must have no . or .. path segments and no backslash",
    },
]


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
    """Prometheus answered but has no traffic for a version: hold, never promote, and roll back
    after ``noDataTimeoutSeconds``."""
    UNREACHABLE = "Unreachable"
    """Prometheus did not answer: hold, and roll back after ``unreachableTimeoutSeconds``."""
    BAD_DATA = "BadData"
    """Prometheus answered with counts that cannot be counts (NaN, infinite, negative): hold,
    never promote, and roll back after ``noDataTimeoutSeconds``, as for ``NoData``."""


class SecretRef(ApiModel):
    """A Secret in the release's own namespace: a release can name no Secret elsewhere."""

    name: Annotated[str, Field(min_length=1, max_length=253, pattern=DNS_SUBDOMAIN)] = Field(
        description="Name of the Secret, in the release's namespace."
    )


HEADER_NAME = r"^[A-Za-z0-9][A-Za-z0-9-]{0,63}$"
# Printable ASCII: no CR or LF can split a request; no quote or backslash, which JSON doubles.
HEADER_VALUE = r'^[ !#-\[\]-~]{0,96}$'


class PrometheusAuth(ApiModel):
    """How the operator talks to prometheusUrl: credentials and a CA bundle from a Secret in the release's namespace (key `token`: a bearer token, or keys `username` and `password`: basic auth; key `ca.crt`: PEM certificates to trust besides the public ones), and headers such as a tenant ID for Thanos, Cortex or Mimir. The operator reads the Secret just before each look and writes its contents nowhere. TLS certificates are always verified unless insecureSkipTLSVerify is true."""

    model_config = ApiModel.model_config | ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                {
                    "rule": "!has(self.headers) || self.headers.all(h, !(h.lowerAscii() in "
                    + str(sorted(outbound.RESERVED_HEADERS)).replace('"', "'")
                    + "))",
                    "message": "prometheusAuth.headers may not set Authorization, Cookie, Host or a framing "
                    "header: credentials come from secretRef",
                },
                {
                    "rule": "!has(self.headers) || self.headers.all(k, size(k) <= 64 && k.matches('" + HEADER_NAME + "'))",
                    "message": "prometheusAuth.headers: a header name is letters, digits and -, at most 64",
                },
            ]
        }
    )

    secret_ref: SecretRef | None = Field(
        default=None, description="The Secret holding `token`, or `username` and `password`, and/or `ca.crt`."
    )
    headers: Annotated[
        dict[str, Annotated[str, Field(max_length=96, pattern=HEADER_VALUE, description="The header's value.")]],
        Field(max_length=4),
    ] = Field(
        default_factory=dict,
        description="Headers sent with every query, e.g. X-Scope-OrgID: team-a. They are part of the "
        "spec, visible to anyone who may read the release: put no secret here.",
    )
    insecure_skip_tls_verify: bool = Field(
        default=False,
        alias="insecureSkipTLSVerify",
        description="Accept any TLS certificate from prometheusUrl. For tests only: anyone on the path "
        "can then read and change the answers that decide the release.",
    )

    @field_validator("headers")
    @classmethod
    def _no_reserved_header(cls, headers: dict[str, str]) -> dict[str, str]:
        for name, value in headers.items():
            problem = outbound.header_problem(name, value)
            if problem:
                raise ValueError(f"prometheusAuth.headers {name!r} {problem}")
        return headers


class AnalysisSpec(ApiModel):
    """Steps, checks and deadlines for automatic progression (see docs/analysis.md). While it runs, traffic.weight is ignored: status.analysis.weight is the canary's weight."""

    model_config = ApiModel.model_config | ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                {
                    "rule": "!has(self.prometheusAuth) || has(self.prometheusUrl)",
                    "message": "prometheusAuth needs prometheusUrl: the operator's own Prometheus uses the "
                    "operator's credentials",
                },
                {
                    "rule": "!has(self.metrics) || self.metrics.all(m, self.metrics.exists_one(n, n.name == m.name))",
                    "message": "every analysis.metrics check needs a name of its own",
                },
            ]
        }
    )

    interval_seconds: Annotated[int, Field(ge=1, le=3600)] = Field(
        default=10, description="Seconds between two looks at the metrics."
    )
    scrape_interval_seconds: Annotated[int, Field(ge=1, le=600)] | None = Field(
        default=None,
        description="Prometheus' scrape interval for the mesh's metrics (5 recommended, with "
        "intervalSeconds 5 to 10). When set, a step's first look waits for two scrapes, and every "
        "query window is rounded up to whole scrapes: increase() needs two samples in its window.",
    )
    steps: list[Annotated[int, Field(ge=1, le=100)]] = Field(
        default_factory=list,
        max_length=100,
        description="Canary weights, in percent, one per step. Empty: stepWeight up to maxWeight.",
    )
    step_weight: Annotated[int, Field(ge=1, le=100)] = Field(
        default=10, description="Weight added at each step when steps is empty."
    )
    max_weight: Annotated[int, Field(ge=1, le=100)] = Field(
        default=50, description="Weight of the last step when steps is empty; take over follows it."
    )
    probe_weight: Annotated[int, Field(ge=1, le=20)] | None = Field(
        default=None,
        description="Weight of a short probe before the first step (1 or 2 recommended): a canary "
        "that fails grossly hurts few requests. The probe ends once both versions served minRequests "
        "and nothing failed. Unset: no probe.",
    )
    promotion: Promotion = Field(
        default=Promotion.TAKE_OVER, description="What happens after the last step passed."
    )
    max_error_rate_increase: Annotated[float, Field(gt=0, le=1)] = Field(
        default=0.01,
        description="Largest tolerated excess of the canary's 5xx rate over stable's, as a fraction "
        "(0.01 = one percentage point). A canary is failed only when it exceeds this.",
    )
    max_latency_increase_ms: Annotated[float, Field(ge=0, le=3600000)] = Field(
        default=50.0,
        description="Largest tolerated excess of the canary's latency quantile over stable's, in ms.",
    )
    latency_quantile: Annotated[float, Field(gt=0, lt=1)] = Field(
        default=0.99, description="The latency quantile that is compared (0.99 = p99)."
    )
    min_requests: Annotated[int, Field(ge=1, le=1_000_000_000)] = Field(
        default=20, description="Requests each version must serve in a step before the step can pass."
    )
    max_false_rollback_rate: Annotated[float, Field(gt=0, le=0.5)] = Field(
        default=0.01,
        description="Largest chance that a canary no worse than stable is rolled back, over the "
        "whole release. Smaller waits for more evidence before a rollback.",
    )
    max_false_promotion_rate: Annotated[float, Field(gt=0, le=0.5)] = Field(
        default=0.05,
        description="Largest chance that a step passes a canary worse than the tolerances allow. "
        "Smaller waits for more requests before each step passes.",
    )
    unreachable_timeout_seconds: Annotated[int, Field(ge=1, le=86400)] = Field(
        default=120, description="Roll back when Prometheus has not answered for this long."
    )
    no_data_timeout_seconds: Annotated[int, Field(ge=1, le=86400)] | None = Field(
        default=None,
        description="Roll back when Prometheus has answered NoData (no requests to a version: pods "
        "without the version label or without an Istio sidecar) for this long. "
        "Default: 3 x intervalSeconds, at least 60.",
    )
    ready_deadline_seconds: Annotated[int, Field(ge=1, le=86400)] = Field(
        default=600, description="Fail when the canary Deployment has no ready pod after this long."
    )
    prometheus_url: Annotated[str, Field(max_length=2048)] | None = Field(
        default=None,
        description="Prometheus base URL (http or https, no user name or password, no query, no "
        "fragment); default: the operator's --prometheus-url. The operator calls it only when its "
        "outbound policy allows (see docs/security.md): by default a release may name no URL but "
        "the operator's own.",
        json_schema_extra={"x-kubernetes-validations": PROMETHEUS_URL_RULES},
    )
    prometheus_auth: PrometheusAuth | None = None
    metrics: list[MetricCheck] = Field(
        default_factory=list,
        max_length=4,
        description="PromQL checks beside Istio's request metrics; a step passes only when every one is "
        "within its range, and a check outside it failureLimit looks in a row rolls the canary back.",
    )
    approvals: list[Approval] = Field(default_factory=list, max_length=16)
    """Points where the analysis holds until `spec.approve` approves them, for the canary revision that runs."""

    @field_validator("prometheus_url")
    @classmethod
    def _a_base_url(cls, url: str | None) -> str | None:
        problem = None if url is None else outbound.url_form_problem(url)
        if problem is not None:
            raise ValueError(problem)
        return url

    @model_validator(mode="after")
    def _auth_needs_a_url(self) -> AnalysisSpec:
        if self.prometheus_auth is not None and not self.prometheus_url:
            raise ValueError(
                "prometheusAuth needs prometheusUrl: the operator's own Prometheus uses the operator's credentials"
            )
        names = [m.name for m in self.metrics]
        if len(set(names)) != len(names):
            raise ValueError("every analysis.metrics check needs a name of its own")
        return self

    @model_validator(mode="after")
    def _approvals_at_steps(self) -> AnalysisSpec:
        later = self.weights()[1:]
        for approval in self.approvals:
            if approval.before_weight is not None and approval.before_weight not in later:
                raise ValueError(
                    f"approvals: beforeWeight {approval.before_weight} is not the weight of a step after the "
                    f"first (steps: {', '.join(map(str, self.weights()))})"
                )
        return self

    def weights(self) -> list[int]:
        """The canary weight of each step, in order, ending below 100 (take over does the rest).

        The probe, when there is one below the first step, is step 0.
        """
        ladder = self._ladder()
        return [self.probe_weight, *ladder] if self.probe_weight is not None and self.has_probe() else ladder

    def has_probe(self) -> bool:
        """Is step 0 a probe (``probeWeight`` below the first step's weight)?"""
        return self.probe_weight is not None and self.probe_weight < self._ladder()[0]

    def _ladder(self) -> list[int]:
        if self.steps:
            return sorted(set(self.steps))
        return list(range(self.step_weight, self.max_weight + 1, self.step_weight))

    def no_data_timeout(self) -> int:
        """Seconds of ``NoData`` before a rollback: ``noDataTimeoutSeconds``, else a few looks.

        Three looks, so that one quiet interval at the start of a step is no reason; at least a
        minute, so that short intervals do not roll back a canary whose first requests are on
        their way.
        """
        if self.no_data_timeout_seconds is not None:
            return self.no_data_timeout_seconds
        return max(3 * self.interval_seconds, 60)


class Evidence(ApiModel):
    """What the analysis has learnt so far, as numbers that add up from one stretch to the next.

    Each list holds the natural log of one likelihood ratio per alternative of a test's mixture
    (see analysis/sequential.py), summed over the stretches it covers; the counts are summed too.
    Kept in status so that the evidence of earlier steps survives a step change and a restart.
    """

    errors_worse: list[float] = Field(default_factory=list, max_length=64)
    """Evidence that the canary fails more often than stable, per alternative."""
    latency_worse: list[float] = Field(default_factory=list, max_length=64)
    """Evidence that the canary is slower than stable, per (tail, alternative)."""
    errors_within: list[float] = Field(default_factory=list, max_length=64)
    """Evidence that the canary's error rate is within the tolerance, per alternative."""
    latency_within: list[float] = Field(default_factory=list, max_length=64)
    """Evidence that the canary's latency is within the tolerance, per alternative."""
    stable_requests: float = 0.0
    """Requests stable served in the stretches covered."""
    stable_errors: float = 0.0
    """5xx answers of stable in the stretches covered."""
    canary_requests: float = 0.0
    """Requests the canary served in the stretches covered."""
    canary_errors: float = 0.0
    """5xx answers of the canary in the stretches covered."""


class CheckResult(ApiModel):
    """One look at the metrics: what was measured and what the judge said."""

    time: str
    """When the metrics were read."""
    step: int
    """Step index at that look."""
    weight: int
    """Canary weight at that look."""
    verdict: Verdict
    reason: str = ""
    """Why the judge answered so."""
    stable_requests: float = 0.0
    """Requests served by stable in the step."""
    stable_errors: float = 0.0
    """5xx answers of stable in the step."""
    canary_requests: float = 0.0
    """Requests served by the canary in the step."""
    canary_errors: float = 0.0
    """5xx answers of the canary in the step."""
    stable_latency_ms: float | None = None
    """Stable's latency quantile, in ms."""
    canary_latency_ms: float | None = None
    """The canary's latency quantile, in ms."""
    evidence: Evidence | None = None
    """The evidence of the current step up to this look (kept in status only until the next look)."""
    metrics_outside: list[Annotated[str, Field(max_length=63)]] = Field(default_factory=list, max_length=4)
    """The analysis.metrics checks whose value was outside its thresholdRange at this look."""


class AnalysisStatus(ApiModel):
    """Where automatic progression stands."""

    step: int = 0
    """Index of the current step."""
    weight: int = 0
    """Canary weight of the current step."""
    step_started_at: str | None = None
    """When the current step began."""
    unreachable_since: str | None = None
    """Since when Prometheus has not answered, if it has not."""
    no_data_since: str | None = None
    """Since when Prometheus has answered `NoData` at every look, if it has."""
    last_verdict: Verdict | None = None
    history: list[CheckResult] = Field(default_factory=list, max_length=50)
    """The last looks at the metrics, newest last."""
    evidence: Evidence | None = None
    """The evidence of the steps already passed, carried into every later look (a release-wide test)."""
