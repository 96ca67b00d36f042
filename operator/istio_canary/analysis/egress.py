"""HTTP to the URLs releases name, under the outbound policy: the I/O half of ``outbound``.

:class:`GuardedSession` is a ``requests.Session`` (prometheus-api-client takes one) in which
every request, the first and every redirect:

* resolves the host itself, asks ``outbound`` about every address, and connects to the address
  that was checked (the Host header and TLS still name the host), so a name cannot resolve to
  an allowed address for the check and to the metadata service for the connection;
* follows a redirect only where the policy allows (``Session.get_redirect_target``);
* ignores the environment: no proxy settings, no ``.netrc`` credentials, no cookies kept;
* ends within ``timeout_seconds`` in all, however slowly the remote sends (a watchdog thread
  shuts the socket down at the deadline), and reads at most :data:`MAX_ANSWER_BYTES`;
* turns any answer but 2xx (or a redirect it follows) into :class:`HttpStatusError`, which
  carries the status code and nothing the remote wrote.

Messages built from these errors (``describe_failure``) are fixed texts: nothing a remote
server sent ever reaches status, Events, logs or metrics.
"""

from __future__ import annotations

import base64
import contextlib
import heapq
import http.client
import itertools
import socket
import ssl
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from http.cookiejar import DefaultCookiePolicy
from typing import Any

import requests
import urllib3
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.util.retry import Retry

from istio_canary import outbound

__all__ = [
    "MAX_ANSWER_BYTES",
    "AnswerTooLargeError",
    "AnswerTooSlowError",
    "CredentialsAuth",
    "Egress",
    "GuardedSession",
    "HttpStatusError",
    "Resolver",
    "describe_failure",
    "tls_context",
]

# The operator's queries return a handful of series per version; a megabyte is hundreds of them.
MAX_ANSWER_BYTES = 1024 * 1024
_READ_CHUNK = 64 * 1024


class HttpStatusError(requests.HTTPError):
    """The remote answered with this status code; what else it wrote is dropped unread."""

    def __init__(self, status_code: int) -> None:
        super().__init__(f"HTTP {status_code}")
        self.status_code = status_code


class AnswerTooLargeError(requests.RequestException):
    """The answer was longer than :data:`MAX_ANSWER_BYTES`."""


class AnswerTooSlowError(requests.Timeout):
    """The whole request, answer included, took longer than its deadline."""


class _UnresolvableHostError(requests.ConnectionError):
    """The host name did not resolve (the resolver's own words are not kept)."""


def describe_failure(err: BaseException, *, timeout_seconds: float) -> str:
    """A fixed text for a failed request: the status code at most, never the remote's words.

    The text of a requests or urllib3 error can quote the remote (a malformed status line, say),
    so only the type of the error chooses the words.
    """
    if isinstance(err, HttpStatusError):
        return f"answered HTTP {err.status_code}"
    if isinstance(err, AnswerTooLargeError):
        return f"answered more than {MAX_ANSWER_BYTES // 1024} KiB"
    if isinstance(err, requests.Timeout):
        return f"did not answer within {timeout_seconds:g} s"
    if isinstance(err, requests.TooManyRedirects):
        return f"redirected more than {outbound.MAX_REDIRECTS} times"
    if isinstance(err, requests.exceptions.SSLError):
        return "did not answer: the TLS handshake failed (is its certificate signed by a CA in ca.crt?)"
    if isinstance(err, _UnresolvableHostError):
        return "did not answer: its host name does not resolve"
    if isinstance(err, requests.ConnectionError):
        return "did not answer: the connection failed"
    if isinstance(err, (ValueError, KeyError, TypeError, IndexError)):
        return "answered something that is not a Prometheus query result"
    return f"did not answer: the request failed ({type(err).__name__})"


@dataclass(frozen=True)
class Resolver:
    """Host name -> addresses, from the system resolver unless an answer is fixed in advance.

    ``fixed`` works like curl's ``--resolve`` (the e2e tests point a name at a link-local
    address without a DNS server, through ``ISTIO_CANARY_RESOLVE``). Fixed answers are checked
    like any other: they cannot open an address the policy refuses.
    """

    fixed: tuple[tuple[str, str], ...] = ()

    @classmethod
    def from_text(cls, text: str) -> Resolver:
        """``host=address,host=address`` (ValueError names a pair that is not one)."""
        pairs = []
        for item in filter(None, (part.strip() for part in text.split(","))):
            host, sep, address = item.partition("=")
            if not sep or not host or not address:
                raise ValueError(f"{item!r} is not host=address")
            pairs.append((host.strip().lower(), address.strip()))
        return cls(tuple(pairs))

    def __call__(self, host: str, port: int) -> list[str]:
        answers = [address for name, address in self.fixed if name == host]
        if answers:
            return answers
        try:
            infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except (OSError, UnicodeError) as err:
            raise _UnresolvableHostError("the host name does not resolve") from err
        return list(dict.fromkeys(str(info[4][0]) for info in infos))


@dataclass(frozen=True)
class Egress:
    """How this operator process calls out: the admin's policy and the resolver it checks."""

    policy: outbound.OutboundPolicy = field(default_factory=outbound.OutboundPolicy)
    resolver: Resolver = field(default_factory=Resolver)


# -- the deadline ---------------------------------------------------------------------------


class _Watch:
    """The sockets one request used, shut down when its deadline passes."""

    def __init__(self, deadline: float) -> None:
        self.deadline = deadline
        self.sockets: list[socket.socket] = []
        self.done = False
        self.expired = False

    def expire(self) -> None:
        self.expired = True
        for sock in list(self.sockets):
            # OSError: already closed, the request ended in the meantime.
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)  # wakes the thread blocked in recv


class _Watchdog:
    """One daemon thread for all deadlines: a timer thread per request would cost more than it does."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._heap: list[tuple[float, int, _Watch]] = []
        self._order = itertools.count()
        self._thread: threading.Thread | None = None

    def watch(self, seconds: float) -> _Watch:
        watch = _Watch(time.monotonic() + seconds)
        with self._cond:
            heapq.heappush(self._heap, (watch.deadline, next(self._order), watch))
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="egress-deadlines", daemon=True)
                self._thread.start()
            self._cond.notify()
        return watch

    def _run(self) -> None:
        with self._cond:
            while True:
                now = time.monotonic()
                while self._heap and self._heap[0][0] <= now:
                    _, _, watch = heapq.heappop(self._heap)
                    if not watch.done:
                        watch.expire()
                self._cond.wait(self._heap[0][0] - now if self._heap else None)


_WATCHDOG = _Watchdog()
_current = threading.local()  # the _Watch of the request this thread is sending


class _Watched:
    """Hands the connection's socket to the watch of the request this thread is sending.

    The socket object, not the connection: a connection outlives its request (the next request
    may reconnect it), a socket is closed with the answer (``_checked`` closes the response).
    """

    sock: socket.socket | None

    def connect(self) -> None:
        super().connect()  # type: ignore[misc]
        self._watched()

    def request(self, *args: Any, **kwargs: Any) -> None:
        self._watched()  # a reused connection connects no more
        super().request(*args, **kwargs)  # type: ignore[misc]

    def _watched(self) -> None:
        watch: _Watch | None = getattr(_current, "watch", None)
        if watch is not None and self.sock is not None:
            watch.sockets.append(self.sock)


class _WatchedConnection(_Watched, HTTPConnection):
    pass


class _WatchedHTTPSConnection(_Watched, HTTPSConnection):
    pass


class _HTTPPool(HTTPConnectionPool):
    ConnectionCls = _WatchedConnection


class _HTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _WatchedHTTPSConnection


# -- the adapter ------------------------------------------------------------------------------


def tls_context(ca_pem: str) -> ssl.SSLContext:
    """A verifying TLS context that trusts the public CAs and ``ca_pem`` (ValueError: no certificate in it)."""
    context = ssl.create_default_context()
    try:
        context.load_verify_locations(cadata=ca_pem)
    except (ssl.SSLError, ValueError):
        raise ValueError("holds no certificate that can be read") from None
    return context


class _GuardedAdapter(HTTPAdapter):
    def __init__(self, *, egress: Egress, timeout_seconds: float, ca_pem: str | None = None) -> None:
        self._egress = egress
        self._timeout = timeout_seconds
        self._tls = tls_context(ca_pem) if ca_pem else None
        # No retries: the next look at the metrics is the retry.
        super().__init__(max_retries=Retry(total=0, redirect=False, raise_on_status=False))

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {"http": _HTTPPool, "https": _HTTPSPool}

    def build_connection_pool_key_attributes(
        self, request: requests.PreparedRequest, verify: Any, cert: Any = None
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        """Resolve, check, and pool the connection by the checked address instead of the name."""
        host_params, pool_kwargs = super().build_connection_pool_key_attributes(request, verify, cert)
        url = outbound.parse_url(str(request.url), allow_query=True)
        addresses = self._egress.resolver(url.host, url.port)
        host_params["host"] = self._egress.policy.check_addresses(host=url.host, addresses=addresses)
        if url.scheme == "https":
            pool_kwargs["server_hostname"] = url.host  # SNI and certificate check name the host
            if self._tls is not None and verify is not False:
                pool_kwargs["ssl_context"] = self._tls
        return host_params, pool_kwargs

    def add_headers(self, request: requests.PreparedRequest, **kwargs: Any) -> None:
        # The connection goes to an address; the Host header still names the host.
        request.headers["Host"] = outbound.parse_url(str(request.url), allow_query=True).netloc

    def send(
        self,
        request: requests.PreparedRequest,
        stream: bool = False,
        timeout: Any = None,
        verify: Any = True,
        cert: Any = None,
        proxies: Mapping[str, str] | None = None,
    ) -> requests.Response:
        watch = _WATCHDOG.watch(self._timeout)
        _current.watch = watch
        try:
            response = super().send(
                request, stream=True, timeout=timeout or self._timeout, verify=verify, cert=cert, proxies=None
            )
            checked = self._checked(response)
        except Exception as err:
            if watch.expired:
                raise AnswerTooSlowError("deadline passed") from err
            if isinstance(err, urllib3.exceptions.ReadTimeoutError):
                raise requests.ReadTimeout("read timed out") from err
            low_level = (urllib3.exceptions.HTTPError, http.client.HTTPException, OSError)
            if isinstance(err, low_level) and not isinstance(err, requests.RequestException):
                raise requests.ConnectionError("the connection failed") from err
            raise
        finally:
            watch.done = True
            _current.watch = None
        if watch.expired:
            # Cut at the deadline, http.client may still see a whole (truncated) answer.
            raise AnswerTooSlowError("deadline passed")
        return checked

    def _checked(self, response: requests.Response) -> requests.Response:
        """The answer, read within the bounds; anything but 2xx or a redirect is an error."""
        if response.is_redirect:
            response.close()
            response._content, response._content_consumed = b"", True
            return response
        if not 200 <= response.status_code < 300:
            response.close()
            raise HttpStatusError(response.status_code)
        try:
            if response.headers.get("Content-Encoding", "identity").lower() != "identity":
                raise AnswerTooLargeError("an encoding that was not asked for")  # no zip bombs
            if int(response.headers.get("Content-Length") or 0) > MAX_ANSWER_BYTES:
                raise AnswerTooLargeError("too long")
            body = bytearray()
            for chunk in response.raw.stream(_READ_CHUNK, decode_content=False):
                body += chunk
                if len(body) > MAX_ANSWER_BYTES:
                    raise AnswerTooLargeError("too long")
        finally:
            response.close()
        response._content, response._content_consumed = bytes(body), True
        return response


class CredentialsAuth(requests.auth.AuthBase):
    """Adds the credentials ``read`` gives at the moment of each request (None: none)."""

    def __init__(self, read: Callable[[], outbound.Credentials | None]) -> None:
        self._read = read

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        credentials = self._read()
        if credentials is not None and credentials.token:
            request.headers["Authorization"] = f"Bearer {credentials.token}"
        elif credentials is not None and credentials.username:
            pair = f"{credentials.username}:{credentials.password or ''}".encode()
            request.headers["Authorization"] = "Basic " + base64.b64encode(pair).decode("ascii")
        return request


class GuardedSession(requests.Session):
    """A session whose every request goes through the policy (see the module docstring)."""

    def __init__(
        self, *, egress: Egress, timeout_seconds: float, ca_pem: str | None = None, verify_tls: bool = True
    ) -> None:
        """``ca_pem``: certificates to trust besides the public ones; ``verify_tls=False`` trusts any
        (ValueError: ``ca_pem`` holds no certificate)."""
        self._egress = egress
        self._guard = _GuardedAdapter(egress=egress, timeout_seconds=timeout_seconds, ca_pem=ca_pem)
        super().__init__()
        self.verify = verify_tls
        self.trust_env = False  # no proxy from the environment, no ~/.netrc credentials
        self.max_redirects = outbound.MAX_REDIRECTS
        self.cookies.set_policy(DefaultCookiePolicy(allowed_domains=[]))  # keeps no cookie
        self.headers["Accept-Encoding"] = "identity"

    def mount(self, prefix: str, adapter: Any) -> None:
        # Every URL goes through the guard, whatever a client mounts: PrometheusConnect mounts
        # a plain HTTPAdapter at its URL.
        super().mount(prefix, self._guard)

    def get_redirect_target(self, resp: requests.Response) -> str | None:
        location = super().get_redirect_target(resp)
        if location is None:
            return None
        return str(self._egress.policy.check_redirect(current=str(resp.url), location=location))
