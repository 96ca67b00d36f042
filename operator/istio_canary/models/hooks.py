"""Webhooks, gates and manual approvals: ``spec.webhooks``, ``analysis.approvals``, ``spec.approve``.

The vocabulary of the webhook types is Flagger's, which users already know; what each type does
to a release is decided in ``phases.gates`` and the calls are made by ``hooks.caller``.
"""

from __future__ import annotations

import enum
import re
from typing import Annotated

from pydantic import ConfigDict, Field, JsonValue, field_validator, model_validator

from istio_canary import outbound
from istio_canary.models._base import ApiModel, DnsLabel

__all__ = [
    "MAX_WEBHOOKS",
    "Approval",
    "Approve",
    "GateKind",
    "GateStatus",
    "HookType",
    "Webhook",
    "WebhookCall",
    "WebhooksStatus",
]

MAX_WEBHOOKS = 8
MAX_HOOK_URL = 512
MAX_METADATA = 8
MAX_METADATA_VALUE = 128
MAX_TIMEOUT_SECONDS = 30
META_KEY = r"^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$"

# The form of a webhook URL, checked by the API server (outbound.parse_url repeats it; the
# operator's outbound policy decides, later, whether the URL may be called at all).
WEBHOOK_URL_RULES: list[JsonValue] = [
    {"rule": "isURL(self)", "message": "url must be an absolute URL"},
    {
        "rule": "!isURL(self) || url(self).getScheme() in ['http', 'https']",
        "message": "url must be an http or https URL",
    },
    {"rule": "!isURL(self) || url(self).getHostname() != ''", "message": "url needs a host"},
    {
        "rule": "!self.matches('^[^:/?#]*://[^/?#]*@')",
        "message": "url must not carry a user name or password",
    },
    {"rule": "!self.contains('#')", "message": "url must have no fragment"},
]


class HookType(str, enum.Enum):
    """When a webhook is called, and what its answer does to the release."""

    CONFIRM_ROLLOUT = "ConfirmRollout"
    """Before the canary is created: the release waits in Pending until every such hook answers 2xx."""
    PRE_ROLLOUT = "PreRollout"
    """Once, when the canary is ready and before it gets traffic: a failure rolls the release back."""
    ROLLOUT = "Rollout"
    """At every look of the analysis: a failure is a failed check (the canary is rolled back)."""
    CONFIRM_TRAFFIC_INCREASE = "ConfirmTrafficIncrease"
    """Before each weight increase of the analysis: the weight holds until the hook answers 2xx."""
    CONFIRM_PROMOTION = "ConfirmPromotion"
    """Before the analysis promotes the canary: the release holds until the hook answers 2xx."""
    POST_ROLLOUT = "PostRollout"
    """Once, after the release reached Completed or Aborted; its answer changes nothing."""
    ROLLBACK = "Rollback"
    """At every look (the analysis interval) while the canary has or waits for traffic: a 2xx answer rolls it back."""
    EVENT = "Event"
    """At every phase change; its answer changes nothing."""


MetadataValue = Annotated[str, Field(max_length=MAX_METADATA_VALUE, description="A value sent as is.")]
_META_KEYS_RULE: JsonValue = {
    # A structural schema cannot bound the keys of a map; this rule does.
    "rule": "!has(self.metadata) || self.metadata.all(k, size(k) <= 63 && k.matches('" + META_KEY + "'))",
    "message": "metadata keys are alphanumeric (and -_.), at most 63 characters",
}


class Webhook(ApiModel):
    """An HTTP endpoint the operator POSTs a JSON description of the release to, at the moments its type names."""

    model_config = ApiModel.model_config | ConfigDict(json_schema_extra={"x-kubernetes-validations": [_META_KEYS_RULE]})

    name: DnsLabel
    """Unique among the release's webhooks; named in status, Events and the payload."""
    type: HookType
    url: Annotated[str, Field(min_length=1, max_length=MAX_HOOK_URL)] = Field(
        description="http or https, no user name or password, no fragment. The operator calls it only "
        "when its outbound policy allows (--allowed-webhook-prefix); the URL is never written to "
        "status, Events or logs.",
        json_schema_extra={"x-kubernetes-validations": WEBHOOK_URL_RULES},
    )
    timeout_seconds: Annotated[int, Field(ge=1, le=MAX_TIMEOUT_SECONDS)] = 10
    """Seconds one attempt may take, answer included; a failed attempt is tried once more."""
    metadata: dict[str, MetadataValue] = Field(
        default_factory=dict, max_length=MAX_METADATA
    )
    """Sent as is in the payload's `metadata` (for example a load test's command)."""

    @field_validator("url")
    @classmethod
    def _a_url(cls, url: str) -> str:
        try:
            outbound.parse_url(url, what="webhook url", allow_query=True)
        except outbound.UrlFormError as err:
            raise ValueError(str(err)) from None
        return url

    @field_validator("metadata")
    @classmethod
    def _keys(cls, metadata: dict[str, str]) -> dict[str, str]:
        for key in metadata:
            if len(key) > 63 or not re.match(META_KEY, key):
                raise ValueError(f"metadata key {key[:20]!r} must be alphanumeric (and -_.), at most 63 characters")
        return metadata


WEBHOOK_LIST_RULES: list[JsonValue] = [
    {"rule": "self.all(x, self.exists_one(y, y.name == x.name))", "message": "webhook names must be unique"},
]


class Approval(ApiModel):
    """A point where the analysis holds until a person approves: `beforeWeight` or `beforePromotion`."""

    model_config = ApiModel.model_config | ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                {
                    "rule": "has(self.beforeWeight) != (has(self.beforePromotion) && self.beforePromotion)",
                    "message": "set exactly one of beforeWeight or beforePromotion: true",
                }
            ]
        }
    )

    before_weight: Annotated[int, Field(ge=1, le=100)] | None = None
    """Hold before the canary's weight is raised to this step's weight."""
    before_promotion: bool = False
    """Hold before the canary that passed every step is promoted."""

    @model_validator(mode="after")
    def _exactly_one(self) -> Approval:
        if (self.before_weight is not None) == self.before_promotion:
            raise ValueError("set exactly one of beforeWeight or beforePromotion: true")
        return self

    @property
    def gate(self) -> str:
        """The gate this approval holds: ``weight-50`` or ``promotion``."""
        return "promotion" if self.before_promotion else f"weight-{self.before_weight}"


class Approve(ApiModel):
    """A person's approval of the gate that waits (`kubectl canary approve NAME` writes it)."""

    model_config = Approval.model_config

    before_weight: Annotated[int, Field(ge=1, le=100)] | None = None
    """Approves the hold before this weight."""
    before_promotion: bool = False
    """Approves the hold before promotion."""
    canary_revision: Annotated[str, Field(min_length=1, max_length=64)] = Field(
        description="The canary revision approved (`status.gate.approve.canaryRevision`, the same as "
        "`status.canaryRevision`): an approval of another canary does not count."
    )

    @model_validator(mode="after")
    def _exactly_one(self) -> Approve:
        if (self.before_weight is not None) == self.before_promotion:
            raise ValueError("set exactly one of beforeWeight or beforePromotion: true")
        return self

    @property
    def gate(self) -> str:
        return "promotion" if self.before_promotion else f"weight-{self.before_weight}"


class WebhookCall(ApiModel):
    """One call of a webhook and how it ended (never the answer's body, never the URL)."""

    name: Annotated[str, Field(max_length=63)]
    """The webhook's name."""
    type: HookType
    time: Annotated[str, Field(max_length=64)]
    """When the call ended."""
    ok: bool
    """True when the hook answered 2xx."""
    code: int | None = None
    """The HTTP status code of the last attempt, if the hook answered at all."""
    result: Annotated[str, Field(max_length=200)] = ""
    """What happened, in fixed words (`answered HTTP 500`, `did not answer within 2 s`)."""
    gate: Annotated[str, Field(max_length=64)] = ""
    """The gate or moment the call was for (`rollout`, `pre-rollout`, `weight-50`, `promotion`...)."""


class WebhooksStatus(ApiModel):
    """The webhooks' calls and the gates they decided."""

    calls: list[WebhookCall] = Field(default_factory=list, max_length=20)
    """The last calls, newest last."""
    passed: list[Annotated[str, Field(max_length=128)]] = Field(default_factory=list, max_length=128)
    """`hook/gate@canary-revision` entries whose last call answered 2xx."""
    failed: list[Annotated[str, Field(max_length=128)]] = Field(default_factory=list, max_length=128)
    """`hook/gate@canary-revision` entries whose last call failed."""


class GateKind(str, enum.Enum):
    """What a holding gate waits for."""

    WEBHOOK = "Webhook"
    """A webhook's 2xx answer."""
    APPROVAL = "Approval"
    """A person's approval in `spec.approve`."""


class GateStatus(ApiModel):
    """The gate the release holds at, while it holds."""

    gate: Annotated[str, Field(max_length=64)]
    """`confirm-rollout`, `weight-<N>` or `promotion`."""
    waiting_for: list[GateKind] = Field(default_factory=list, max_length=2)
    """What the gate still waits for."""
    webhooks: list[Annotated[str, Field(max_length=63)]] = Field(default_factory=list, max_length=MAX_WEBHOOKS)
    """The webhooks that have not answered 2xx yet."""
    approve: Approve | None = None
    """What `spec.approve` must say to approve this gate (`kubectl canary approve NAME` writes it)."""
    since: Annotated[str, Field(max_length=64)]
    """When the release began to hold here."""
