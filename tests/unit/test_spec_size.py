"""Every spec the CRD admits is small enough for its copies (kubectl's annotation, our VirtualService)."""

from __future__ import annotations

import json
from typing import Any

import pydantic
import pytest
from istio_canary.models import CanaryReleaseSpec, metric_checks, sessions
from istio_canary.models import hooks as hooks_module
from istio_canary.models import spec as spec_module


def _json_size(spec: dict[str, Any]) -> int:
    """Bytes of the spec as the API server stores it: compact JSON in UTF-8."""
    return len(json.dumps(spec, separators=(",", ":"), ensure_ascii=False).encode())


def _longest_query(character: str) -> str:
    """A PromQL template of the longest length a check admits, its label value filled with
    ``character`` (a quote written escaped, as PromQL wants it: two characters, four bytes of JSON)."""
    head, tail = 'sum(rate(x{a="', '"}[{{ interval }}]))'
    fill = '\\"' if character == '"' else character
    room = metric_checks.MAX_QUERY - len(head) - len(tail)
    return head + fill * (room // len(fill)) + tail


def largest_spec(character: str = "a") -> dict[str, Any]:
    """The largest spec the CRD admits: every string at its maxLength, every list and map full.

    ``character`` fills the free-text strings (match values, images); "a" is one byte of
    JSON, a quote (escaped) or "é" (UTF-8) two.
    """
    version = "v" * 63

    def value(length: int = spec_module.MAX_MATCH_VALUE) -> dict[str, str]:
        return {"prefix": character * length}  # the longest of exact | prefix | regex

    rule = {
        "headers": {
            f"x-{i}-".ljust(spec_module.MAX_HEADER_NAME, "h"): value()
            for i in range(spec_module.MAX_HEADERS_PER_RULE)
        },
        "uri": value(),
        "cookie": {"name": "c" * 256, "value": value()},
        "os": ["Android"] * 5,
    }
    return {
        "service": "s" * 63,
        "versionLabel": character * 316,
        "stable": {"version": "w" * 63},
        # images outweighs image, and a rule allows only one of them.
        "canary": {
            "version": version,
            "images": {
                f"c{i}-".ljust(63, "c"): character * spec_module.MAX_IMAGE
                for i in range(spec_module.MAX_CONTAINERS)
            },
            "replicas": 10000,
        },
        # sessionAffinity needs Canary; it outweighs the three more characters of "BlueGreen".
        "strategy": "Canary",
        "traffic": {
            "weight": 100,
            "match": [rule] * spec_module.MAX_MATCH_RULES,
            "mirrorPercent": 12.345678901234567,
            "sessionAffinity": {"cookieName": "k" * sessions.MAX_COOKIE_NAME, "maxAge": 604800},
        },
        "policy": "WaitForWorkloadReady",
        "takeOver": version,
        "offline": True,
        "offlineAction": "ScaleToZero",
        "drainSeconds": 3600,
        "abort": False,
        "analysis": {
            "intervalSeconds": 3600,
            "steps": [100] * 100,
            "stepWeight": 100,
            "maxWeight": 100,
            "promotion": "TakeOver",
            "maxErrorRateIncrease": 0.012345678901234567,
            "maxLatencyIncreaseMs": 1234567.8901234567,
            "latencyQuantile": 0.12345678901234568,
            "minRequests": 1_000_000_000,  # the largest each field admits
            "maxFalseRollbackRate": 0.12345678901234568,
            "maxFalsePromotionRate": 0.12345678901234568,
            "unreachableTimeoutSeconds": 86400,
            "noDataTimeoutSeconds": 86400,
            "readyDeadlineSeconds": 86400,
            # A URL holds no character that JSON escapes (the CRD's rules refuse them): it is
            # 2,048 bytes whatever fills the free text.
            "prometheusUrl": "https://prometheus.example/" + "p" * (2048 - 27),
            "prometheusAuth": {
                "secretRef": {"name": "s" * 253},
                # A header value is printable ASCII without quote or backslash: JSON escapes none of it.
                "headers": {f"x-{i}-" + "h" * 59: "h" * 96 for i in range(4)},
                "insecureSkipTLSVerify": True,
            },
            "metrics": [
                {
                    "name": f"m{i}-".ljust(63, "m"),
                    "query": _longest_query(character),
                    "thresholdRange": {"min": -1.2345678901234567e-300, "max": 1.2345678901234567e300},
                    "comparison": "DifferenceFromStable",
                    "failureLimit": 100,
                }
                for i in range(4)
            ],
            "approvals": [{"beforePromotion": True}] * 16,
        },
        "routing": {"virtualServices": [{"name": "v" * 253, "namespace": "n" * 63}] * 8, "mode": "Subsets"},
        "notifications": {"receivers": [f"r{i}-".ljust(63, "r") for i in range(8)], "severity": "Warning"},
        "webhooks": [
            {
                "name": f"h{i}-".ljust(63, "h"),
                "type": "ConfirmPromotion",
                # A URL, like prometheusUrl, holds no character JSON escapes.
                "url": "https://hooks.example/" + "u" * (hooks_module.MAX_HOOK_URL - 22),
                "timeoutSeconds": hooks_module.MAX_TIMEOUT_SECONDS,
                "metadata": {
                    f"k{j}-".ljust(63, "k"): character * hooks_module.MAX_METADATA_VALUE
                    for j in range(hooks_module.MAX_METADATA)
                },
            }
            for i in range(hooks_module.MAX_WEBHOOKS)
        ],
        "approve": {"beforeWeight": 100, "beforePromotion": False, "canaryRevision": "r" * 64},
    }


def test_the_largest_spec_the_crd_admits_is_accepted_and_fits_the_budget() -> None:
    largest = largest_spec()
    accepted = CanaryReleaseSpec.model_validate(largest).to_wire()
    assert accepted == largest, "the builder must set every field the models know"
    assert _json_size(largest) <= spec_module.SPEC_JSON_BUDGET


def test_the_largest_spec_leaves_kubectls_annotations_room_even_when_every_character_needs_escaping() -> None:
    # kubectl apply keeps a copy in the last-applied-configuration annotation: 256 KiB in all,
    # and the other annotations of the object need room too.
    assert _json_size(largest_spec('"')) < 144 * 1024


def test_a_spec_within_every_field_limit_but_too_large_as_json_is_refused_with_the_reason() -> None:
    escaped = largest_spec('"')  # two bytes of JSON per character
    with pytest.raises(pydantic.ValidationError, match="bytes of JSON, more than the 98304 the operator handles"):
        CanaryReleaseSpec.model_validate(escaped)


def test_the_spec_of_the_issue_32_rules_of_16_headers_with_500_character_regexes_is_refused() -> None:
    headers = {f"x-header-{i}": {"regex": "a" * 500} for i in range(16)}
    oversized = {
        "service": "reviews",
        "stable": {"version": "v1"},
        "canary": {"version": "v2", "image": "reviews:v2"},
        "traffic": {"match": [{"headers": headers}] * 32},
    }
    with pytest.raises(pydantic.ValidationError) as refused:
        CanaryReleaseSpec.model_validate(oversized)
    assert ("traffic", "match") in [e["loc"] for e in refused.value.errors() if e["type"] == "too_long"]


@pytest.mark.parametrize(
    "wire",
    [
        pytest.param({"traffic": {"match": [{"headers": {"x" * 65: {"exact": "y"}}}]}}, id="header-name"),
        pytest.param({"traffic": {"match": [{"uri": {"prefix": "/" * 257}}]}}, id="match-value"),
        pytest.param({"traffic": {"match": [{"uri": {"prefix": "/"}}] * 17}}, id="match-rules"),
        pytest.param({"canary": {"version": "v2", "image": "r" * 1025}}, id="image"),
        pytest.param({"canary": {"version": "v2", "images": {"c" * 64: "r"}}}, id="container-name"),
        pytest.param({"canary": {"version": "v2", "images": {"Main": "r"}}}, id="container-name-not-a-dns-label"),
    ],
)
def test_a_spec_one_past_a_limit_is_refused(wire: dict[str, Any]) -> None:
    spec = {"service": "reviews", "stable": {"version": "v1"}, "canary": {"version": "v2"}, **wire}
    with pytest.raises(pydantic.ValidationError):
        CanaryReleaseSpec.model_validate(spec)
