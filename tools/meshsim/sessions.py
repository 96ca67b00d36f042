"""Simulated clients that keep cookies: what a browser does with the mesh's Set-Cookie. Pure.

A :class:`SessionGroup` is N clients, each with a cookie jar. Each client sends its requests
with a ``Cookie`` header built from its jar and stores every ``Set-Cookie`` of the responses
(``Max-Age=0`` or less deletes the cookie). Groups live in the simulator under a name, so the
same clients come back after the routes changed (a higher canary weight) and a test can ask
whether the clients a canary once served are still served by it.

There is no clock: a cookie is never expired by time, only by ``Max-Age<=0``; cookie
attributes other than Max-Age (Path, Domain, Secure) are ignored.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["ClientReport", "CookieJar", "SessionGroup", "parse_set_cookie"]


def parse_set_cookie(value: str) -> tuple[str, str, int | None] | None:
    """``name=value; Max-Age=60; Path=/`` -> (name, value, max age); None if it names no cookie."""
    first, *attributes = [part.strip() for part in value.split(";")]
    name, equals, cookie = first.partition("=")
    if not equals or not name.strip():
        return None
    max_age = None
    for attribute in attributes:
        key, _, setting = attribute.partition("=")
        if key.strip().lower() == "max-age":
            try:
                max_age = int(setting.strip())
            except ValueError:
                continue  # RFC 6265: an invalid Max-Age is ignored
    return name.strip(), cookie.strip(), max_age


@dataclasses.dataclass
class CookieJar:
    """The cookies one client holds, in the order it received them."""

    cookies: dict[str, str] = dataclasses.field(default_factory=dict)

    def header(self) -> str | None:
        """The Cookie request header (``a=1; b=2``), None when the jar is empty."""
        return "; ".join(f"{name}={value}" for name, value in self.cookies.items()) or None

    def receive(self, set_cookies: list[str]) -> None:
        for raw in set_cookies:
            parsed = parse_set_cookie(raw)
            if parsed is None:
                continue
            name, value, max_age = parsed
            if max_age is not None and max_age <= 0:
                self.cookies.pop(name, None)
            else:
                self.cookies[name] = value


@dataclasses.dataclass(frozen=True)
class ClientReport:
    """What one client saw in one round: the version that served each request, and its cookies after."""

    client: int
    versions: tuple[str | None, ...]
    codes: tuple[int, ...]
    cookies: Mapping[str, str]

    def to_json(self) -> dict[str, Any]:
        return {"client": self.client, "versions": list(self.versions), "codes": list(self.codes),
                "cookies": dict(self.cookies)}


# One request sent through the mesh: (extra headers) -> (version, code, response headers).
Send = Callable[[Mapping[str, str]], tuple[str | None, int, tuple[tuple[str, str], ...]]]


@dataclasses.dataclass
class SessionGroup:
    """N clients with cookie jars, kept between rounds."""

    jars: list[CookieJar] = dataclasses.field(default_factory=list)

    def round(self, send: Send, *, clients: int, requests: int, headers: Mapping[str, str]) -> list[ClientReport]:
        """Each of the first ``clients`` clients sends ``requests`` requests, one after another."""
        while len(self.jars) < clients:
            self.jars.append(CookieJar())
        reports = []
        for index, jar in enumerate(self.jars[:clients]):
            versions: list[str | None] = []
            codes: list[int] = []
            for _ in range(requests):
                cookie = jar.header()
                version, code, answered = send({**headers, **({"cookie": cookie} if cookie else {})})
                jar.receive([value for name, value in answered if name.lower() == "set-cookie"])
                versions.append(version)
                codes.append(code)
            reports.append(ClientReport(index, tuple(versions), tuple(codes), dict(jar.cookies)))
        return reports
