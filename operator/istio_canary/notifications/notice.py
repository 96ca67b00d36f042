"""Notices: what the operator tells chat rooms and webhooks about a release, and who hears it. (pure)

A notice is made from each Kubernetes Event a release emits (a phase change, a step passed, a
rollback), with the release's versions and weights, and goes to the receivers the cluster
admin configured (``--notification-receiver``) that the release selects (``spec.notifications``)
at or above the severity both ask for.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from istio_canary.models.notifications import NotificationsSpec, Severity
from istio_canary.models.spec import CanaryReleaseSpec

__all__ = [
    "PROVIDERS", "QUIET_REASONS", "REPEAT_SECONDS", "Notice", "Receiver", "Told", "chosen", "notice_for",
    "parse_receiver", "severity_of",
]

PROVIDERS = ("Slack", "MSTeams", "Discord", "GoogleChat", "Webhook")

# Events that are plumbing rather than news: a webhook that answered 2xx (a Rollout hook answers
# at every look). A webhook that failed is a Warning, and is told.
QUIET_REASONS = frozenset({"WebhookCalled"})

# A notice that says again what the last one of the same reason said (a release waiting for its
# canary emits the same Event at every look) is told at most once in this many seconds.
REPEAT_SECONDS = 3600.0

# Event reasons that mean the operator rolled the canary back, whatever the phase says.
_ROLLBACKS = frozenset({"AnalysisFailed", "CanaryNeverReady"})


@dataclass(frozen=True, kw_only=True)
class Notice:
    """One thing that happened to a release, with what a reader needs to know about it."""

    namespace: str
    release: str
    service: str
    stable: str
    canary: str
    phase: str
    reason: str
    message: str
    severity: Severity
    stable_weight: int | None = None
    canary_weight: int | None = None
    time: str = ""

    @property
    def title(self) -> str:
        return f"{self.release} in {self.namespace}: {self.reason}"

    @property
    def weights(self) -> str:
        if self.stable_weight is None or self.canary_weight is None:
            return "not routed"
        return f"{self.stable} {self.stable_weight}% / {self.canary} {self.canary_weight}%"

    def facts(self) -> list[tuple[str, str]]:
        """What every format shows besides the title and the message."""
        return [
            ("Service", self.service),
            ("Versions", f"stable {self.stable}, canary {self.canary}"),
            ("Phase", self.phase),
            ("Weights", self.weights),
            ("Severity", self.severity.value),
        ]


@dataclass
class Told:
    """What one release's receivers last heard, per reason, so a repeated Event is not told again."""

    last: dict[str, tuple[tuple[str, str, str], float]] = field(default_factory=dict)

    def is_news(self, notice: Notice, *, now: float, repeat_seconds: float = REPEAT_SECONDS) -> bool:
        """True (and remembered) unless the last notice of this reason said the same within ``repeat_seconds``."""
        said = (notice.phase, notice.message, notice.weights)
        before = self.last.get(notice.reason)
        if before is not None and before[0] == said and now - before[1] < repeat_seconds:
            return False
        self.last[notice.reason] = (said, now)
        return True


@dataclass(frozen=True)
class Receiver:
    """A destination the cluster admin configured: its URL is read from ``url_file`` when sending."""

    name: str
    provider: str
    url_file: str
    severity: Severity = Severity.INFO
    default: bool = False


def notice_for(
    *,
    namespace: str,
    name: str,
    spec: CanaryReleaseSpec,
    phase: str,
    weights: tuple[int, int] | None,
    event: tuple[str, str, str],
    time: str,
) -> Notice:
    """The notice of one Event (``(type, reason, message)``) of a release now in ``phase``."""
    event_type, reason, message = event
    return Notice(
        namespace=namespace, release=name, service=spec.service, stable=spec.stable.version,
        canary=spec.canary.version, phase=phase, reason=reason, message=message,
        severity=severity_of(event_type, reason, phase=phase),
        stable_weight=weights[0] if weights else None, canary_weight=weights[1] if weights else None, time=time,
    )


def severity_of(event_type: str, reason: str, *, phase: str) -> Severity:
    """Error for a failed release or an automatic rollback, Warning for any other Warning Event, else Info."""
    if phase == "Failed" or reason in _ROLLBACKS:
        return Severity.ERROR
    return Severity.WARNING if event_type == "Warning" else Severity.INFO


def chosen(receivers: Sequence[Receiver], spec: NotificationsSpec | None, severity: Severity) -> list[Receiver]:
    """The receivers that hear a notice of ``severity`` from a release with this ``spec.notifications``."""
    wanted = spec.receivers if spec is not None else None
    floor = spec.severity if spec is not None else Severity.INFO
    if severity.rank < floor.rank:
        return []
    picked = [r for r in receivers if r.default] if wanted is None else [r for r in receivers if r.name in wanted]
    return [r for r in picked if severity.rank >= r.severity.rank]


def parse_receiver(text: str) -> Receiver:
    """``name=team-a,type=Slack,url-file=/etc/...,severity=Warning,default=true`` (ValueError says what is wrong)."""
    fields: dict[str, str] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        key, sep, value = item.partition("=")
        if not sep or key not in {"name", "type", "url-file", "severity", "default"}:
            raise ValueError(f"{item!r} is not one of name=, type=, url-file=, severity=, default=")
        fields[key] = value
    missing = [key for key in ("name", "type", "url-file") if not fields.get(key)]
    if missing:
        raise ValueError(f"needs {', '.join(missing)}")
    if fields["type"] not in PROVIDERS:
        raise ValueError(f"type {fields['type']!r} is none of {', '.join(PROVIDERS)}")
    severities = {s.value.lower(): s for s in Severity}
    severity = severities.get(fields.get("severity", "info").lower())
    if severity is None:
        raise ValueError(f"severity {fields['severity']!r} is none of Info, Warning, Error")
    if fields.get("default", "false") not in ("true", "false"):
        raise ValueError("default must be true or false")
    return Receiver(
        name=fields["name"], provider=fields["type"], url_file=fields["url-file"], severity=severity,
        default=fields.get("default") == "true",
    )
