"""The CanaryRelease spec: the API contract of design.md section 2.

These models are the single source of the CRD schema (``crds/`` is generated from them).
Rules that the API server can check are also written as CEL (``x-kubernetes-validations``)
in ``json_schema_extra`` so that a bad spec is refused at ``kubectl apply``; the pydantic
validators repeat them so the operator never acts on a spec that slipped past an old CRD.
"""

from __future__ import annotations

import enum
import json
import re
from typing import Annotated

from pydantic import ConfigDict, Field, JsonValue, field_validator, model_validator

from istio_canary.models._base import DNS_LABEL, DNS_SUBDOMAIN, ApiModel, DnsLabel
from istio_canary.models.analysis import AnalysisSpec
from istio_canary.models.hooks import MAX_WEBHOOKS, WEBHOOK_LIST_RULES, Approve, Webhook
from istio_canary.models.notifications import NotificationsSpec
from istio_canary.models.routing import ObjectRef, RoutingMode, RoutingSpec, version_service_name
from istio_canary.models.sessions import AFFINITY_RULE, SessionAffinity, check_strategy

__all__ = [
    "DNS_LABEL",
    "CanaryReleaseSpec",
    "CanarySpec",
    "CookieMatch",
    "MatchRule",
    "ObjectRef",
    "OfflineAction",
    "OperatingSystem",
    "Policy",
    "RoutingMode",
    "RoutingSpec",
    "StableSpec",
    "Strategy",
    "StringMatch",
    "TrafficSpec",
]

# Lowercase HTTP token characters (RFC 9110): Istio requires lowercase header names.
HEADER_NAME = r"^[a-z0-9!#$%&'*+.^_`|~-]+$"

# Size limits. Every string and collection of the spec is bounded: the API server's CEL cost
# estimator sizes a rule by the maxLength/maxItems of what it reads, and every copy of the spec
# must fit where it goes: `kubectl apply`'s last-applied annotation (256 KiB of annotations per
# object), and the VirtualService, which repeats each match rule per operating system and port
# (1.5 MiB per object in etcd). kopf keeps only a hash (handlers.HashDiffBaseStorage).
# The largest spec the CRD admits (tests/unit/test_spec_size.py builds it) is 83,129 bytes of
# compact JSON: traffic.match 35 KiB (16 rules x 4 headers x (64 + 256) ...), canary.images
# 17 KiB (16 x 1,087), webhooks 16 KiB (8 x (URL 512 + 8 metadata x 191)), analysis.metrics
# 3 KiB, the rest 10 KiB. Written with quotes only, which JSON escapes to two bytes, it is 134,509
# bytes (URLs and header values hold no quote). SPEC_JSON_BUDGET refuses, as a second line of
# defence, what an older, looser CRD let through, and text JSON makes much longer than it looks.
MAX_MATCH_RULES = 16
MAX_HEADERS_PER_RULE = 4
MAX_HEADER_NAME = 64
MAX_MATCH_VALUE = 256
MAX_IMAGE = 1024  # a reference is at most about 520 (name 255, tag 128, sha512 digest)
MAX_CONTAINERS = 16  # canary.images names containers and init containers
SPEC_JSON_BUDGET = 96 * 1024

ImageRef = Annotated[str, Field(min_length=1, max_length=MAX_IMAGE)]
MatchValue = Annotated[str, Field(max_length=MAX_MATCH_VALUE)]


class Strategy(str, enum.Enum):
    """How traffic is shared between the stable and the canary version."""

    CANARY = "Canary"
    """Weights (``traffic.weight``) and request-content rules (``traffic.match``) send some requests to the canary."""
    BLUE_GREEN = "BlueGreen"
    """The canary runs with no traffic until ``takeOver`` names it; then everything switches at once."""
    MIRROR = "Mirror"
    """Stable answers every request; ``traffic.mirrorPercent`` of them are copied to the canary."""


class Policy(str, enum.Enum):
    """When traffic may start to flow to the canary."""

    WAIT_FOR_WORKLOAD_READY = "WaitForWorkloadReady"
    """Route to the canary only once its Deployment has ready pods (the default)."""
    IMMEDIATELY = "Immediately"
    """Write the routes at once; weights still never point at a version without ready pods."""
    PAUSED = "Paused"
    """Create and keep the workloads, but leave the routing exactly as it is."""


class OfflineAction(str, enum.Enum):
    """What job offline does to the workload of the version that is taken offline."""

    DELETE = "Delete"
    """Delete the Deployment."""
    SCALE_TO_ZERO = "ScaleToZero"
    """Scale it to zero replicas and keep it: for workloads that GitOps or another tool owns."""


class OperatingSystem(str, enum.Enum):
    """Client operating systems recognised from the User-Agent header."""

    WINDOWS = "Windows"
    MACOS = "macOS"
    LINUX = "Linux"
    ANDROID = "Android"
    IOS = "iOS"


# The canary is provided (someone else deployed it) when no image is named, in CEL on a CanarySpec.
_CEL_PROVIDED = "(!has(self.image) && (!has(self.images) || size(self.images) == 0))"
_DEPLOYMENT_AND_IMAGE = (
    "canary.deployment names a Deployment you provide, which the release never changes: "
    "leave image and images out"
)
_REPLICAS_OF_PROVIDED = (
    "canary.replicas sizes a canary the release creates (with image or images); "
    "a Deployment you provide keeps its own replicas"
)

_ONE_OF_STRING_MATCH = "[has(self.exact), has(self.prefix), has(self.regex)].filter(x, x).size() == 1"


class StringMatch(ApiModel):
    """Exactly one of ``exact``, ``prefix`` or ``regex`` (RE2 syntax, whole-value match)."""

    model_config = ApiModel.model_config | ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                {"rule": _ONE_OF_STRING_MATCH, "message": "set exactly one of exact, prefix or regex"}
            ]
        }
    )

    exact: MatchValue | None = None
    prefix: MatchValue | None = None
    regex: MatchValue | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> StringMatch:
        chosen = [v for v in (self.exact, self.prefix, self.regex) if v is not None]
        if len(chosen) != 1:
            raise ValueError("set exactly one of exact, prefix or regex")
        return self


class CookieMatch(ApiModel):
    """One cookie inside the Cookie header, matched by name and value."""

    name: Annotated[str, Field(min_length=1, max_length=256, pattern=r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")]
    """Cookie name."""
    value: StringMatch


class MatchRule(ApiModel):
    """One request-content rule: every condition set here must hold (AND)."""

    model_config = ApiModel.model_config | ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                {
                    "rule": "(has(self.headers) && size(self.headers) > 0) || has(self.uri) "
                    "|| has(self.cookie) || (has(self.os) && size(self.os) > 0)",
                    "message": "a match rule needs at least one condition (headers, uri, cookie or os)",
                },
                {
                    "rule": '!has(self.headers) || self.headers.all(k, k.matches("' + HEADER_NAME + '"))',
                    "message": "header names must be lowercase HTTP tokens, as Istio requires",
                },
                # A structural schema cannot bound the keys of a map; this rule does.
                {
                    "rule": f"!has(self.headers) || self.headers.all(k, size(k) <= {MAX_HEADER_NAME})",
                    "message": f"header names are at most {MAX_HEADER_NAME} characters",
                },
            ]
        }
    )

    headers: dict[str, StringMatch] = Field(default_factory=dict, max_length=MAX_HEADERS_PER_RULE)
    """Request header name (lowercase) -> how its value must match."""
    uri: StringMatch | None = None
    cookie: CookieMatch | None = None
    os: list[OperatingSystem] = Field(default_factory=list, max_length=5)
    """Client operating systems, from the User-Agent header (any of them)."""

    @field_validator("headers")
    @classmethod
    def _lowercase_header_names(cls, headers: dict[str, StringMatch]) -> dict[str, StringMatch]:
        for name in headers:
            if not re.match(HEADER_NAME, name):
                raise ValueError(f"header name {name!r} must be a lowercase HTTP token, as Istio requires")
            if len(name) > MAX_HEADER_NAME:
                raise ValueError(f"header name {name[:20]!r}... is longer than {MAX_HEADER_NAME} characters")
        return headers

    @model_validator(mode="after")
    def _not_empty(self) -> MatchRule:
        if not (self.headers or self.uri or self.cookie or self.os):
            raise ValueError("a match rule needs at least one condition (headers, uri, cookie or os)")
        return self


class TrafficSpec(ApiModel):
    """How much traffic the canary gets, and which requests."""

    weight: Annotated[int, Field(ge=0, le=100)] = 0
    """Canary strategy: percent of requests sent to the canary."""
    match: list[MatchRule] = Field(default_factory=list, max_length=MAX_MATCH_RULES)
    """Canary strategy: request-content rules, ORed; a matching request goes to the canary, the rest are split by `weight`. BlueGreen: test requests that reach the canary before it takes over (all others stay on stable)."""
    mirror_percent: Annotated[float, Field(ge=0, le=100)] = 100.0
    """Mirror strategy: percent of requests copied to the canary."""
    session_affinity: SessionAffinity | None = None
    """Canary strategy: once the weight sends a client to the canary, a cookie keeps it on the canary until the release ends."""


class StableSpec(ApiModel):
    """The running version."""

    version: DnsLabel
    """Value of the version label on the running Deployment. Immutable."""


class CanarySpec(ApiModel):
    """The new version: with `image` or `images`, a copy of the stable Deployment that the release creates and removes; with neither (or with `deployment`), a Deployment you deployed, which the release only routes to."""

    model_config = ApiModel.model_config | ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                {
                    "rule": "!(has(self.image) && has(self.images) && size(self.images) > 0)",
                    "message": "set image (single-container pods) or images (container name -> image), not both",
                },
                # A structural schema cannot bound the keys of a map; this rule does.
                {
                    "rule": '!has(self.images) || self.images.all(k, size(k) <= 63 && k.matches("' + DNS_LABEL + '"))',
                    "message": "the keys of images are container names: DNS labels of at most 63 characters",
                },
                {
                    "rule": "!has(self.deployment) || " + _CEL_PROVIDED,
                    "message": _DEPLOYMENT_AND_IMAGE,
                },
                {
                    "rule": "!has(self.replicas) || !(" + _CEL_PROVIDED + ")",
                    "message": _REPLICAS_OF_PROVIDED,
                },
            ]
        }
    )

    version: DnsLabel
    """Version label value of the new version; the canary Deployment is named `<service>-<version>`. Immutable."""
    image: ImageRef | None = None
    """New image of the pod's only container."""
    images: dict[str, ImageRef] = Field(default_factory=dict, max_length=MAX_CONTAINERS)
    """Container name -> new image, for pods with several containers."""
    replicas: Annotated[int, Field(ge=0, le=10000)] | None = None
    """Replicas of the canary Deployment the release creates; default: the stable Deployment's."""
    deployment: Annotated[str, Field(min_length=1, max_length=253, pattern=DNS_SUBDOMAIN)] | None = None
    """A Deployment you deployed that runs the new version; the release routes to it and never changes it. Default, with no `image` or `images`: the one Deployment behind the Service whose pods carry `versionLabel: version`."""

    @property
    def provided(self) -> bool:
        """Is the canary a Deployment someone else deployed (the release only routes to it)?"""
        return self.deployment is not None or (self.image is None and not self.images)

    @field_validator("images")
    @classmethod
    def _container_names(cls, images: dict[str, str]) -> dict[str, str]:
        for name in images:
            if len(name) > 63 or not re.match(DNS_LABEL, name):
                raise ValueError(
                    f"images key {name[:20]!r} is not a container name (a DNS label of at most 63 characters)"
                )
        return images

    @model_validator(mode="after")
    def _image_or_images(self) -> CanarySpec:
        if self.image is not None and self.images:
            raise ValueError("set image (single-container pods) or images (container name -> image), not both")
        if self.deployment is not None and (self.image is not None or self.images):
            raise ValueError(_DEPLOYMENT_AND_IMAGE)
        if self.replicas is not None and self.provided:
            raise ValueError(_REPLICAS_OF_PROVIDED)
        return self


_MODE = "(has({0}.routing) && has({0}.routing.mode) ? {0}.routing.mode : 'Subsets')"
_SPEC_RULES: list[JsonValue] = [
    {
        "rule": "self.stable.version != self.canary.version",
        "message": "canary.version must differ from stable.version",
    },
    {
        "rule": "!has(self.takeOver) || self.takeOver == '' || self.takeOver == self.stable.version "
        "|| self.takeOver == self.canary.version",
        "message": "takeOver must be empty or name stable.version or canary.version",
    },
    {
        "rule": "!has(self.offline) || !self.offline || (has(self.takeOver) && self.takeOver != '')",
        "message": "offline needs takeOver: name the version that keeps the traffic first",
    },
    AFFINITY_RULE,
    {"rule": "self.service == oldSelf.service", "message": "service is immutable"},
    {"rule": f"{_MODE.format('self')} == {_MODE.format('oldSelf')}", "message": "routing.mode is immutable"},
    {
        "rule": "(!has(self.canary.image) && (!has(self.canary.images) || size(self.canary.images) == 0)) == "
        "(!has(oldSelf.canary.image) && (!has(oldSelf.canary.images) || size(oldSelf.canary.images) == 0))",
        "message": "a canary the release creates (image or images) and one you provide cannot be swapped on a "
        "live release: create a new CanaryRelease",
    },
    {
        "rule": "(has(self.canary.deployment) ? self.canary.deployment : '') == "
        "(has(oldSelf.canary.deployment) ? oldSelf.canary.deployment : '')",
        "message": "canary.deployment is immutable",
    },
    {"rule": "self.stable.version == oldSelf.stable.version", "message": "stable.version is immutable"},
    {"rule": "self.canary.version == oldSelf.canary.version", "message": "canary.version is immutable"},
    {
        "rule": "!has(oldSelf.offline) || !oldSelf.offline || (has(self.offline) && self.offline)",
        "message": "offline cannot be undone: the other version is already removed",
    },
]


class CanaryReleaseSpec(ApiModel):
    """What the user wants; every verb (take over, offline, abort) is a field."""

    model_config = ApiModel.model_config | ConfigDict(json_schema_extra={"x-kubernetes-validations": _SPEC_RULES})

    service: DnsLabel
    """Service in the release's namespace whose traffic is split. Immutable."""
    version_label: Annotated[str, Field(min_length=1, max_length=316)] = "version"
    """Pod label whose value tells the versions apart."""
    stable: StableSpec
    canary: CanarySpec
    strategy: Strategy = Strategy.CANARY
    traffic: TrafficSpec = Field(default_factory=TrafficSpec)
    policy: Policy = Policy.WAIT_FOR_WORKLOAD_READY
    take_over: Annotated[str, Field(max_length=63)] = ""
    """Empty, or one of the two versions: that version gets 100% of traffic and the other keeps running."""
    offline: bool = False
    """With `takeOver` set: remove the other version's workload and routes; the release completes. Cannot be undone."""
    offline_action: OfflineAction = OfflineAction.DELETE
    drain_seconds: Annotated[int, Field(ge=0, le=3600)] | None = Field(
        default=None,
        description="Seconds to wait between moving traffic off a version and deleting or scaling down "
        "its Deployment (offline, abort, delete), so in-flight requests and proxies that have not yet "
        "received the new routes finish. Default: the operator's --drain-seconds (10).",
    )
    abort: bool = False
    """Send 100% to stable, remove the canary and restore the original routing; phase `Aborted`."""
    analysis: AnalysisSpec | None = None
    routing: RoutingSpec = Field(default_factory=RoutingSpec)
    notifications: NotificationsSpec | None = None
    webhooks: list[Webhook] = Field(
        default_factory=list, max_length=MAX_WEBHOOKS, json_schema_extra={"x-kubernetes-validations": WEBHOOK_LIST_RULES}
    )
    """HTTP endpoints called at given moments of the release; gates hold it until they answer 2xx (docs/webhooks.md)."""
    approve: Approve | None = None
    """A person's approval of the gate the release waits at (`analysis.approvals`); `kubectl canary approve NAME` sets it."""

    @field_validator("webhooks")
    @classmethod
    def _unique_hook_names(cls, hooks: list[Webhook]) -> list[Webhook]:
        names = [h.name for h in hooks]
        if len(set(names)) != len(names):
            raise ValueError("webhook names must be unique")
        return hooks

    @property
    def metric_aliases(self) -> tuple[str, ...]:
        """Other Service names Istio reports this service's requests under (routing mode Services)."""
        if self.routing.mode is not RoutingMode.SERVICES:
            return ()
        return tuple(version_service_name(self.service, v) for v in (self.stable.version, self.canary.version))

    @model_validator(mode="after")
    def _cross_field_rules(self) -> CanaryReleaseSpec:
        if self.stable.version == self.canary.version:
            raise ValueError("canary.version must differ from stable.version")
        if self.take_over not in ("", self.stable.version, self.canary.version):
            raise ValueError(
                f"takeOver {self.take_over!r} must be empty or name stable.version "
                f"{self.stable.version!r} or canary.version {self.canary.version!r}"
            )
        if self.offline and not self.take_over:
            raise ValueError("offline needs takeOver: name the version that keeps the traffic first")
        check_strategy(self.traffic.session_affinity, canary=self.strategy is Strategy.CANARY)
        return self

    @model_validator(mode="after")
    def _fits_the_budget(self) -> CanaryReleaseSpec:
        # Bytes as the API server stores them: compact JSON in UTF-8.
        size = len(json.dumps(self.to_wire(), separators=(",", ":"), ensure_ascii=False).encode())
        if size > SPEC_JSON_BUDGET:
            raise ValueError(
                f"the spec is {size} bytes of JSON, more than the {SPEC_JSON_BUDGET} the operator handles: "
                "use fewer or shorter traffic.match rules"
            )
        return self
