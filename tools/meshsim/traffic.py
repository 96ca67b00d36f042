"""How simulated versions answer and what synthetic clients send. Pure, given an RNG.

A version answers with HTTP 500 with probability ``error_rate`` and otherwise 200; its latency
is lognormal, fitted so that its median and 99th percentile are the given ``p50``/``p99``
(real service latencies are right-skewed, and two quantiles pin a lognormal down).
"""

from __future__ import annotations

import dataclasses
import math
import random
from collections.abc import Mapping
from typing import Any

__all__ = [
    "DEFAULT_BEHAVIOUR",
    "LoadSpec",
    "RequestTemplate",
    "SpecError",
    "VersionBehaviour",
    "draw_poisson",
]

# z-score of the 99th percentile of the standard normal distribution
_Z99 = 2.3263478740408408


class SpecError(ValueError):
    """A behaviour or load given to the simulator is not valid."""


@dataclasses.dataclass(frozen=True)
class VersionBehaviour:
    """How one version of a service answers."""

    error_rate: float = 0.0
    latency_p50_ms: float = 10.0
    latency_p99_ms: float = 50.0

    def __post_init__(self) -> None:
        if not 0.0 <= self.error_rate <= 1.0:
            raise SpecError(f"errorRate must be within 0..1, not {self.error_rate}")
        if self.latency_p50_ms <= 0 or self.latency_p99_ms < self.latency_p50_ms:
            raise SpecError("latencyMs needs 0 < p50 <= p99")

    def draw(self, rng: random.Random) -> tuple[int, float]:
        """One response: (HTTP status, latency in milliseconds)."""
        sigma = (math.log(self.latency_p99_ms) - math.log(self.latency_p50_ms)) / _Z99
        latency = rng.lognormvariate(math.log(self.latency_p50_ms), sigma)
        code = 500 if rng.random() < self.error_rate else 200
        return code, latency

    @classmethod
    def from_json(
        cls, body: Mapping[str, Any], *, base: VersionBehaviour | None = None
    ) -> VersionBehaviour:
        """Parse ``{"errorRate": 0.1, "latencyMs": {"p50": 20, "p99": 80}}``.

        Keys left out keep their value in ``base``.
        """
        base = base or DEFAULT_BEHAVIOUR
        latency = body.get("latencyMs") or {}
        try:
            return cls(
                error_rate=float(body.get("errorRate", base.error_rate)),
                latency_p50_ms=float(latency.get("p50", base.latency_p50_ms)),
                latency_p99_ms=float(latency.get("p99", base.latency_p99_ms)),
            )
        except (TypeError, ValueError) as error:
            raise SpecError(str(error)) from error

    def to_json(self) -> dict[str, Any]:
        return {
            "errorRate": self.error_rate,
            "latencyMs": {"p50": self.latency_p50_ms, "p99": self.latency_p99_ms},
        }


DEFAULT_BEHAVIOUR = VersionBehaviour()


@dataclasses.dataclass(frozen=True)
class RequestTemplate:
    """A kind of request in the mix: what share of requests look like this, and how."""

    fraction: float
    headers: Mapping[str, str] = dataclasses.field(default_factory=dict)
    path: str | None = None

    @classmethod
    def from_json(cls, body: Mapping[str, Any]) -> RequestTemplate:
        """Parse ``{"fraction": 0.1, "headers": {...}, "userAgent": "...", "cookies": {...}}``."""
        headers = {str(k).lower(): str(v) for k, v in (body.get("headers") or {}).items()}
        if body.get("userAgent"):
            headers["user-agent"] = str(body["userAgent"])
        cookies = body.get("cookies") or {}
        if cookies:
            headers["cookie"] = "; ".join(f"{name}={value}" for name, value in cookies.items())
        fraction = float(body.get("fraction", 0.0))
        if not 0.0 <= fraction <= 1.0:
            raise SpecError(f"a mix fraction must be within 0..1, not {fraction}")
        path = body.get("path")
        return cls(fraction=fraction, headers=headers, path=str(path) if path else None)

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {"fraction": self.fraction, "headers": dict(self.headers)}
        if self.path:
            body["path"] = self.path
        return body


@dataclasses.dataclass(frozen=True)
class LoadSpec:
    """Synthetic load on one service: a Poisson stream of ``rps`` requests per second.

    Each request takes the shape of one ``mix`` template with that template's probability;
    what the fractions leave over is plain requests to ``path`` without extra headers.
    """

    rps: float
    port: int | None = None
    path: str = "/"
    mix: tuple[RequestTemplate, ...] = ()
    # The client Deployment the requests come from (its pod labels go into the source_* metric
    # labels, as a sidecar reports them); "" is the simulator's own client.
    source: str = ""

    def __post_init__(self) -> None:
        if self.rps < 0:
            raise SpecError(f"rps must not be negative, not {self.rps}")
        if sum(t.fraction for t in self.mix) > 1.0 + 1e-9:
            raise SpecError("the mix fractions add up to more than 1")

    def draw(self, rng: random.Random) -> tuple[str, Mapping[str, str]]:
        """The path and headers of one synthetic request."""
        point = rng.random()
        for template in self.mix:
            if point < template.fraction:
                return template.path or self.path, template.headers
            point -= template.fraction
        return self.path, {}

    @classmethod
    def from_json(cls, body: Mapping[str, Any]) -> LoadSpec:
        """Parse ``{"rps": 20, "port": 9080, "path": "/", "mix": [...]}``."""
        try:
            port = body.get("port")
            return cls(
                rps=float(body.get("rps", 0.0)),
                port=int(port) if port is not None else None,
                path=str(body.get("path") or "/"),
                mix=tuple(RequestTemplate.from_json(t) for t in body.get("mix") or ()),
                source=str(body.get("source") or ""),
            )
        except (TypeError, ValueError, AttributeError) as error:
            if isinstance(error, SpecError):
                raise
            raise SpecError(str(error)) from error

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "rps": self.rps,
            "port": self.port,
            "path": self.path,
            "mix": [t.to_json() for t in self.mix],
        }
        if self.source:
            body["source"] = self.source
        return body


def draw_poisson(mean: float, rng: random.Random) -> int:
    """A Poisson-distributed count: how many requests arrive in one time step."""
    if mean <= 0:
        return 0
    if mean > 50:
        # The normal approximation is accurate here and avoids a loop of ~mean iterations.
        return max(0, round(rng.gauss(mean, math.sqrt(mean))))
    # Knuth's method: multiply uniforms until the product drops below e^-mean.
    limit = math.exp(-mean)
    count, product = 0, rng.random()
    while product > limit:
        count += 1
        product *= rng.random()
    return count
