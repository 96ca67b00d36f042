"""PromQL over Istio's standard metrics, kept apart from the code that runs it. (pure)

Every query is per version (``by (destination_version)``) and reads only what the
destination's sidecar reported (``reporter="destination"``), so a request is counted once
and by the version that served it. Istio fills ``destination_version`` from the pod's
``version`` label (or ``app.kubernetes.io/version``), whatever ``spec.versionLabel`` says.

Counts use ``increase`` over the time since the step started, which is what the judge
compares, every series counted from its first request (see :func:`_counted`); health for
``status.versions`` uses ``rate`` over a short window. Prometheus needs two samples inside a
range to compute either, so a window shorter than two scrape intervals returns nothing, which
the judge reads as "no data" and holds.
"""

from __future__ import annotations

import string
from collections.abc import Sequence

__all__ = [
    "BUCKET_INCREASE",
    "ERROR_INCREASE",
    "ERROR_RATE",
    "LATENCY_QUANTILE",
    "REQUEST_INCREASE",
    "REQUEST_RATE",
    "escape_label_value",
    "render",
]

_SELECTOR = (
    'reporter="destination",'
    'destination_workload_namespace="$namespace",'
    "destination_service_name$service_matcher"
)
# RE2's metacharacters; Service names (DNS labels) have none, but a matcher never trusts that.
_REGEX_META = frozenset("\\.+*?()|[]{}^$")
_ERRORS = 'response_code=~"5.."'


def _counted(metric: str, by: str, *, selector: str = _SELECTOR) -> str:
    """The increase of ``metric`` over ``$window``, every series counted from its first request.

    Istio creates a series at its first request (a version's first 5xx, a new canary pod), and
    ``increase()`` reads a series' first sample as its starting point, so whatever a series
    counted before its first scrape is lost: at a canary's first step that is its first errors,
    and a look could pass it on requests alone. A series absent at the window's start began at
    zero inside it, so its whole value is its increase.
    """
    series = metric + "{" + selector + "}"
    return (
        f"sum by ({by}) ("
        f"(increase({series}[$window]) and {series} offset $window) "
        f"or ({series} unless {series} offset $window))"
    )


REQUEST_INCREASE = string.Template(_counted("istio_requests_total", "destination_version"))
"""Requests each version served in the window."""

ERROR_INCREASE = string.Template(
    _counted("istio_requests_total", "destination_version", selector=_SELECTOR + "," + _ERRORS)
)
"""Requests each version answered with a 5xx in the window. Missing version: no errors."""

BUCKET_INCREASE = string.Template(_counted("istio_request_duration_milliseconds_bucket", "destination_version, le"))
"""Cumulative latency bucket counts (``le`` in ms) of each version in the window."""

REQUEST_RATE = string.Template(
    "sum by (destination_version) (rate(istio_requests_total{" + _SELECTOR + "}[$window]))"
)
"""Requests per second of each version."""

ERROR_RATE = string.Template(
    "sum by (destination_version) "
    "(rate(istio_requests_total{" + _SELECTOR + "," + _ERRORS + "}[$window]))"
)
"""5xx responses per second of each version.

The success rate is ``1 - ERROR_RATE / REQUEST_RATE``, computed by the adapter: a PromQL
division would drop a version that has no 5xx series at all (the healthy case) or no
non-5xx series (the worst case), exactly where the answer matters.
"""

LATENCY_QUANTILE = string.Template(
    "histogram_quantile($quantile, sum by (destination_version, le) "
    "(rate(istio_request_duration_milliseconds_bucket{" + _SELECTOR + "}[$window])))"
)
"""The ``quantile`` of each version's latency in ms, interpolated inside a bucket."""


def escape_label_value(value: str) -> str:
    """Escape a value for a double-quoted PromQL label matcher."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def render(
    template: string.Template,
    *,
    namespace: str,
    service: str,
    window_seconds: int,
    quantile: float | None = None,
    aliases: Sequence[str] = (),
) -> str:
    """The query text for one service; ``quantile`` only for :data:`LATENCY_QUANTILE`.

    ``aliases`` are other Service names its requests are reported under: with routing mode
    Services, Istio labels a request with the version's own Service (``reviews-v2``).

    >>> render(REQUEST_RATE, namespace="bookinfo", service="reviews", window_seconds=60)[:52]
    'sum by (destination_version) (rate(istio_requests_to'
    """
    if window_seconds < 1:
        raise ValueError(f"window_seconds must be at least 1, got {window_seconds}")
    if ("$quantile" in template.template) != (quantile is not None):
        raise ValueError("give quantile exactly for templates that have one")
    if quantile is not None and not 0 < quantile < 1:
        raise ValueError(f"quantile must be between 0 and 1, got {quantile}")
    return template.substitute(
        namespace=escape_label_value(namespace),
        service_matcher=_service_matcher(service, aliases),
        window=f"{int(window_seconds)}s",
        quantile="" if quantile is None else repr(float(quantile)),
    )


def _service_matcher(service: str, aliases: Sequence[str]) -> str:
    """``="reviews"``, or with aliases an anchored alternation: ``=~"reviews|reviews-v1|reviews-v2"``."""
    if not aliases:
        return f'="{escape_label_value(service)}"'
    names = "|".join("".join(f"\\{c}" if c in _REGEX_META else c for c in name) for name in (service, *aliases))
    return f'=~"{escape_label_value(names)}"'
