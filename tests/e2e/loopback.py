"""An HTTP server on 127.0.0.1 that answers as a test says and records every request it gets.

It plays whatever a release might point the operator at: an internal admin endpoint whose
answer holds a token, a redirect to the metadata service, a server that never stops talking.
"""

from __future__ import annotations

import http.server
import socket
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Self


@dataclass(frozen=True)
class Seen:
    """One request the server received."""

    path: str
    headers: dict[str, str]
    body: bytes = b""


@dataclass(frozen=True)
class Answer:
    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    drip_seconds: float | None = None
    """Send the status line, then one byte of header every this many seconds, never finishing."""


Answering = Callable[[Seen], Answer]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class LoopbackServer:
    def __init__(self, answer: Answering, *, tls: ssl.SSLContext | None = None) -> None:
        """``tls``: serve HTTPS with this server-side context."""
        self.answer = answer
        self.scheme = "https" if tls is not None else "http"
        self.seen: list[Seen] = []
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *_: object) -> None:
                pass

            def do_GET(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                sent = self.rfile.read(min(length, 1024 * 1024)) if length else b""
                seen = Seen(path=self.path, headers={k.lower(): v for k, v in self.headers.items()}, body=sent)
                server.seen.append(seen)
                reply = server.answer(seen)
                try:
                    if reply.drip_seconds is not None:
                        self.wfile.write(b"HTTP/1.1 200 OK\r\n")
                        for _ in range(600):
                            self.wfile.write(b"X")
                            self.wfile.flush()
                            time.sleep(reply.drip_seconds)
                        return
                    self.send_response(reply.status)
                    for name, value in reply.headers.items():
                        self.send_header(name, value)
                    self.send_header("Content-Length", str(len(reply.body)))
                    self.end_headers()
                    self.wfile.write(reply.body)
                except OSError:
                    pass  # the client hung up, as it should on an answer it refuses

            do_POST = do_GET

        self._httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        if tls is not None:
            self._httpd.socket = tls.wrap_socket(self._httpd.socket, server_side=True)
        self._httpd.daemon_threads = True
        self.port = int(self._httpd.server_address[1])
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    def url(self, path: str = "", *, host: str = "127.0.0.1") -> str:
        return f"{self.scheme}://{host}:{self.port}{path}"

    def start(self) -> Self:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
