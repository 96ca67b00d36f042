"""The outbound policy: which URLs a CanaryRelease may make the operator call, and where it connects.

A release names URLs (``analysis.prometheusUrl`` today) and the operator calls them from its own
pod, which reaches what the release's author cannot: the cloud's metadata service, cluster-internal
admin endpoints, the API server. So the cluster admin decides (flags ``--allow-release-prometheus-urls``,
``--allowed-url-prefix`` and ``--refuse-network``; chart values ``outbound.*``), and by default a
release may name no URL at all: the operator queries only its own ``--prometheus-url``.

Everything here is pure; the adapter (``analysis.egress``) does the I/O in this order:

1. :func:`parse_url` checks the form: http or https, a host, no user or password, no query and
   no fragment (either would cut off the API path the client appends), no dot segments;
2. :meth:`OutboundPolicy.check_release_prometheus_url` checks the URL against the admin's policy,
   before any request and before any DNS lookup;
3. the adapter resolves the host, :meth:`OutboundPolicy.check_addresses` refuses link-local and
   metadata addresses (and the admin's own refused networks) whatever name leads to them, and
   the adapter connects to the very address that was checked, so a second DNS answer cannot
   slip in between;
4. a redirect is followed only where :meth:`OutboundPolicy.check_redirect` allows, and its
   address is checked again by step 3.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from urllib.parse import unquote, urljoin, urlsplit

from istio_canary import errors

__all__ = [
    "ALWAYS_REFUSED",
    "MAX_REDIRECTS",
    "RESERVED_HEADERS",
    "Credentials",
    "OutboundPolicy",
    "Url",
    "UrlFormError",
    "UrlPrefix",
    "address_refusal",
    "credentials_from",
    "header_problem",
    "parse_url",
    "url_form_problem",
]

IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

MAX_REDIRECTS = 3
DEFAULT_PORTS = {"http": 80, "https": 443}
MAX_SHOWN = 200  # characters of a URL repeated in a message

# Refused whatever the policy says: no Prometheus lives there, and what does is dangerous.
ALWAYS_REFUSED: tuple[tuple[IpNetwork, str], ...] = (
    (
        ipaddress.ip_network("169.254.0.0/16"),
        "a link-local address (cloud metadata services answer at 169.254.169.254)",
    ),
    (ipaddress.ip_network("fe80::/10"), "an IPv6 link-local address"),
    (ipaddress.ip_network("fd00:ec2::254/128"), "the IPv6 address of the AWS metadata service"),
    (ipaddress.ip_network("100.100.100.200/32"), "the address of the Alibaba Cloud metadata service"),
    # Connecting to 0.0.0.0 or :: reaches the operator's own pod.
    (ipaddress.ip_network("0.0.0.0/8"), "an unspecified address"),
    (ipaddress.ip_network("::/128"), "an unspecified address"),
)
# NAT64 (RFC 6052) carries an IPv4 address in the last 32 bits; a gateway forwards it there.
_NAT64 = ipaddress.ip_network("64:ff9b::/96")

# RFC 3986 characters; anything else (spaces, backslashes, non-ASCII) must be percent-encoded.
_URL_CHARACTERS = re.compile(r"[A-Za-z0-9\-._~:/?#\[\]@!$&'()*+,;=%]+")
_HOST_NAME = re.compile(r"[a-z0-9]([a-z0-9_-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9_-]*[a-z0-9])?)*")


class UrlFormError(ValueError):
    """A URL is not an http(s) base URL the operator may call."""


@dataclass(frozen=True)
class Url:
    """An http(s) URL taken apart and normalised: lowercase scheme and host, explicit port."""

    scheme: str
    host: str
    """Lowercase; an IPv6 address without brackets, in its compressed form."""
    port: int
    path: str
    query: str = ""

    @property
    def netloc(self) -> str:
        """``host[:port]`` as the Host header carries it (no port when it is the default)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return host if DEFAULT_PORTS[self.scheme] == self.port else f"{host}:{self.port}"

    def __str__(self) -> str:
        query = f"?{self.query}" if self.query else ""
        return f"{self.scheme}://{self.netloc}{self.path}{query}"


@dataclass(frozen=True)
class UrlPrefix:
    """Every URL with the same scheme, host and port whose path lies under this one's."""

    url: Url

    @classmethod
    def parse(cls, text: str) -> UrlPrefix:
        return cls(parse_url(text, what="allowed URL prefix"))

    def covers(self, url: Url) -> bool:
        if (url.scheme, url.host, url.port) != (self.url.scheme, self.url.host, self.url.port):
            return False
        # Whole segments only: /prom covers /prom and /prom/api, never /prometheus-admin.
        base = self.url.path.rstrip("/")
        return url.path == base or url.path.startswith(base + "/")

    def __str__(self) -> str:
        return str(self.url)


@dataclass(frozen=True)
class Credentials:
    """What a request carries to authenticate, read from a Secret just before it is sent.

    ``repr`` shows none of it, so a log line or a traceback that prints the object shows no secret.
    """

    token: str | None = field(default=None, repr=False)
    username: str | None = field(default=None, repr=False)
    password: str | None = field(default=None, repr=False)
    ca_pem: str | None = field(default=None, repr=False)
    """PEM certificates to trust besides the public ones (not secret, but read with the rest)."""


# Headers neither a release nor a flag may set: the operator's own (Host, Accept-Encoding),
# credentials (only from a Secret or a mounted file), and framing a header could break.
RESERVED_HEADERS = frozenset({
    "authorization", "proxy-authorization", "cookie", "host", "accept-encoding", "connection",
    "content-length", "content-type", "transfer-encoding", "te", "upgrade",
})
_HEADER_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9-]{0,63}")
_HEADER_VALUE = re.compile(r"[ !#-\[\]-~]{0,96}")


def header_problem(name: str, value: str) -> str | None:
    """What is wrong with sending this header to Prometheus, or None.

    >>> header_problem("X-Scope-OrgID", "team-a") is None
    True
    >>> header_problem("Authorization", "Bearer x")
    'may not be set: credentials come from a Secret'
    """
    if not _HEADER_NAME.fullmatch(name):
        return "is not a header name (letters, digits and -, at most 64)"
    if name.lower() in RESERVED_HEADERS:
        return "may not be set: credentials come from a Secret"
    if not _HEADER_VALUE.fullmatch(value):
        return "has a value that is not printable ASCII (no quote or backslash) of at most 96 characters"
    return None


def credentials_from(values: dict[str, str], *, where: str) -> Credentials:
    """Credentials from a Secret's keys: ``token``, or ``username`` and ``password``, and/or ``ca.crt``."""
    ca_pem = values.get("ca.crt") or None
    if ca_pem is not None and "-----BEGIN CERTIFICATE-----" not in ca_pem:
        raise errors.CredentialsError(f"key ca.crt of {where} holds no PEM certificate")
    if values.get("token"):
        return Credentials(token=values["token"], ca_pem=ca_pem)
    if values.get("username") and "password" in values:
        return Credentials(username=values["username"], password=values["password"], ca_pem=ca_pem)
    if ca_pem is not None:
        return Credentials(ca_pem=ca_pem)
    raise errors.CredentialsError(
        f"{where} has none of the keys token, username and password, or ca.crt"
    )


def _shown(text: str) -> str:
    return repr(text if len(text) <= MAX_SHOWN else text[:MAX_SHOWN] + "...")


def parse_url(text: str, *, what: str = "URL", allow_query: bool = False) -> Url:
    """The URL taken apart, or :class:`UrlFormError` saying what is wrong with it.

    A base URL (``allow_query=False``) has no query: the client appends ``/api/v1/query`` to it,
    and ``?`` or ``#`` would turn that path into a query parameter or a fragment.
    """
    problem = None
    if not text:
        problem = "is empty"
    elif not _URL_CHARACTERS.fullmatch(text):
        problem = "has characters a URL cannot hold unencoded (spaces, backslashes, non-ASCII)"
    elif "#" in text:
        problem = "has a fragment (#...)"
    elif "?" in text and not allow_query:
        problem = "has a query (?...): it is a base URL, the API path is appended to it"
    if problem is not None:
        raise UrlFormError(f"{what} {_shown(text)} {problem}")
    parts = urlsplit(text)
    scheme = parts.scheme.lower()
    if scheme not in DEFAULT_PORTS:
        raise UrlFormError(f"{what} {_shown(text)} must be http or https")
    if "@" in parts.netloc:
        raise UrlFormError(
            f"{what} {_shown(text)} carries a user name or password: put credentials in a Secret "
            "(analysis.prometheusAuth)"
        )
    try:
        port = parts.port
    except ValueError:
        raise UrlFormError(f"{what} {_shown(text)} has an invalid port") from None
    host = _host(parts.netloc, parts.hostname)
    if host is None:
        raise UrlFormError(f"{what} {_shown(text)} has no valid host")
    if port == 0:
        raise UrlFormError(f"{what} {_shown(text)} has an invalid port")
    path = parts.path or "/"
    if not path.startswith("/") or any(seg in (".", "..") for seg in unquote(path).split("/")):
        raise UrlFormError(f"{what} {_shown(text)} has . or .. path segments")
    return Url(scheme=scheme, host=host, port=port or DEFAULT_PORTS[scheme], path=path, query=parts.query)


def _host(netloc: str, hostname: str | None) -> str | None:
    if not hostname:
        return None
    if netloc.startswith("["):
        try:
            # A zone (fe80::1%eth0) names an interface of the operator's node: no URL needs one.
            return ipaddress.IPv6Address(hostname).compressed if "%" not in hostname else None
        except ValueError:
            return None
    host = hostname.lower().removesuffix(".")  # "prom." and "prom" are one name
    return host if _HOST_NAME.fullmatch(host) else None


def url_form_problem(text: str) -> str | None:
    """Why ``text`` is no base URL the operator may call, or None (the models repeat the CRD's rules)."""
    try:
        parse_url(text)
    except UrlFormError as err:
        return str(err)
    return None


def address_refusal(address: IpAddress, refused: Iterable[tuple[IpNetwork, str]] = ALWAYS_REFUSED) -> str | None:
    """Why the operator never connects to ``address``, or None.

    An IPv4 address written as IPv6 (``::ffff:169.254.169.254``, or NAT64's ``64:ff9b::/96``)
    is judged as the IPv4 address it reaches.
    """
    candidates: list[IpAddress] = [address]
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            candidates.append(address.ipv4_mapped)
        if address in _NAT64:
            candidates.append(ipaddress.IPv4Address(int(address) & 0xFFFFFFFF))
    for candidate in candidates:
        for network, reason in refused:
            if candidate.version == network.version and candidate in network:
                return reason
    return None


@dataclass(frozen=True, kw_only=True)
class OutboundPolicy:
    """The cluster admin's rules for the URLs releases name. The default allows none of them."""

    operator_prometheus: Url | None = None
    """The operator's own ``--prometheus-url``: always allowed, it is the admin's choice."""
    allow_release_prometheus_urls: bool = False
    allowed_prefixes: tuple[UrlPrefix, ...] = ()
    refused_networks: tuple[IpNetwork, ...] = ()
    """Refused on top of :data:`ALWAYS_REFUSED` (the cluster's Service range, say)."""
    allowed_webhook_prefixes: tuple[UrlPrefix, ...] = ()
    """Where ``spec.webhooks[].url`` may point; none by default."""

    @classmethod
    def build(
        cls,
        *,
        prometheus_url: str | None = None,
        allow_release_prometheus_urls: bool = False,
        allowed_url_prefixes: Iterable[str] = (),
        refused_networks: Iterable[str] = (),
        allowed_webhook_prefixes: Iterable[str] = (),
    ) -> OutboundPolicy:
        """The policy from the operator's flags; :class:`ValueError` names a flag value that is wrong."""
        networks = []
        for text in refused_networks:
            try:
                networks.append(ipaddress.ip_network(text, strict=False))
            except ValueError:
                raise ValueError(f"refused network {_shown(text)} is not a CIDR like 10.0.0.0/8") from None
        return cls(
            operator_prometheus=parse_url(prometheus_url.rstrip("/"), what="--prometheus-url")
            if prometheus_url
            else None,
            allow_release_prometheus_urls=allow_release_prometheus_urls,
            allowed_prefixes=tuple(UrlPrefix.parse(p) for p in allowed_url_prefixes),
            refused_networks=tuple(networks),
            allowed_webhook_prefixes=tuple(
                UrlPrefix(parse_url(p, what="allowed webhook prefix", allow_query=True))
                for p in allowed_webhook_prefixes
            ),
        )

    def allows(self, url: Url) -> bool:
        """Whether ``url`` lies under the operator's own Prometheus or under an allowed prefix."""
        own = () if self.operator_prometheus is None else (UrlPrefix(self.operator_prometheus),)
        return any(prefix.covers(url) for prefix in (*own, *self.allowed_prefixes))

    def check_release_prometheus_url(self, text: str) -> Url:
        """``analysis.prometheusUrl`` if the policy allows it; else :class:`~errors.OutboundRefusedError`."""
        where = "analysis.prometheusUrl"
        try:
            url = parse_url(text.rstrip("/"), what=where)
        except UrlFormError as err:
            raise errors.OutboundRefusedError(str(err)) from None
        if url == self.operator_prometheus:
            return url
        if not self.allow_release_prometheus_urls:
            raise errors.OutboundRefusedError(
                f"{where} {_shown(text)} is refused by the operator's outbound policy: this operator "
                "queries only its own Prometheus (--prometheus-url); remove prometheusUrl, or ask the "
                "cluster admin to allow per-release URLs (chart values outbound.allowReleasePrometheusUrls "
                "and outbound.allowedUrlPrefixes)"
            )
        if not any(prefix.covers(url) for prefix in self.allowed_prefixes):
            allowed = ", ".join(str(p) for p in self.allowed_prefixes) or "none"
            raise errors.OutboundRefusedError(
                f"{where} {_shown(text)} is refused by the operator's outbound policy: it is under no "
                f"allowed URL prefix (outbound.allowedUrlPrefixes: {allowed})"
            )
        return url

    def check_webhook_url(self, text: str, *, name: str) -> Url:
        """A webhook's URL if the policy allows it; else :class:`~errors.OutboundRefusedError`.

        The message names the webhook, never its URL: a query may carry a token.
        """
        where = f"webhook {name!r}"
        try:
            url = parse_url(text, what="url", allow_query=True)
        except UrlFormError:
            raise errors.OutboundRefusedError(f"{where}: its url is not an http(s) URL the operator may call") from None
        if not any(prefix.covers(url) for prefix in self.allowed_webhook_prefixes):
            raise errors.OutboundRefusedError(
                f"{where}: its url is refused by the operator's outbound policy: it is under no allowed "
                "webhook prefix (operator flag --allowed-webhook-prefix, chart value outbound.allowedWebhookPrefixes)"
            )
        return url

    def check_redirect(self, *, current: str, location: str) -> Url:
        """Where a redirect from ``current`` leads, if the policy allows going there."""
        target_text = urljoin(current, location)
        try:
            target = parse_url(target_text, what="redirect target", allow_query=True)
            origin = parse_url(current, what="redirected URL", allow_query=True)
        except UrlFormError as err:
            raise errors.OutboundRefusedError(f"a redirect was not followed: {err}") from None
        if origin.scheme == "https" and target.scheme == "http":
            raise errors.OutboundRefusedError(
                f"a redirect from https to http ({_shown(target_text)}) was not followed"
            )
        if not self.allows(target):
            raise errors.OutboundRefusedError(
                f"a redirect to {_shown(target_text)} was not followed: it is outside the operator's "
                "Prometheus and the allowed URL prefixes"
            )
        return target

    def check_addresses(self, *, host: str, addresses: Sequence[str]) -> str:
        """The address to connect to: the first one ``host`` resolved to, if none of them is refused.

        One refused address refuses the name: a name that also leads to the metadata service is
        not one to trust with the others.
        """
        if not addresses:
            raise errors.OutboundRefusedError(f"{host} resolves to no address")
        refused = (
            *ALWAYS_REFUSED,
            *((n, f"in {n}, a network the cluster admin refused") for n in self.refused_networks),
        )
        for text in addresses:
            try:
                address = ipaddress.ip_address(text)
            except ValueError:
                raise errors.OutboundRefusedError(f"{host} resolves to {_shown(text)}, not an IP address") from None
            reason = address_refusal(address, refused)
            if reason is not None:
                what = f"{host} is" if host == address.compressed else f"{host} resolves to {address.compressed},"
                raise errors.OutboundRefusedError(f"{what} {reason}: the operator never connects there")
        return addresses[0]
