"""Webhook receivers for tests: a threaded HTTP server on 127.0.0.1 that records every JSON payload
POSTed to it and answers with the status code (after the delay) the test sets, per path."""

from __future__ import annotations

import http.server
import json
import threading
import time
from dataclasses import dataclass
from typing import Any, Self


@dataclass(frozen=True)
class Received:
    path: str
    payload: dict[str, Any]
    at: float
    """time.monotonic() when it arrived."""


class Receiver:
    """``code(path)`` answers; ``delay`` (seconds) holds the answer back; ``received`` lists the calls."""

    def __init__(self, *, code: int = 200, delay: float = 0.0) -> None:
        self.codes: dict[str, int] = {}
        self.default_code, self.delay = code, delay
        self.received: list[Received] = []
        self.in_flight = self.most_in_flight = 0
        """Requests being answered now, and the most ever answered at the same time."""
        self._lock = threading.Lock()
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *_: object) -> None:
                pass

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b"{}"
                path = self.path.split("?")[0]
                with receiver._lock:
                    receiver.received.append(Received(path=path, payload=json.loads(raw), at=time.monotonic()))
                    code, delay = receiver.codes.get(path, receiver.default_code), receiver.delay
                    receiver.in_flight += 1
                    receiver.most_in_flight = max(receiver.most_in_flight, receiver.in_flight)
                if delay:
                    time.sleep(delay)
                with receiver._lock:
                    receiver.in_flight -= 1
                body = b'{"secret": "receiver-body-must-not-leak"}'
                try:
                    self.send_response(code)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                except OSError:
                    pass  # the operator gave up waiting

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def url(self, path: str) -> str:
        return f"{self.base}{path}"

    def answer(self, path: str, code: int) -> None:
        with self._lock:
            self.codes[path] = code

    def calls(self, path: str) -> list[Received]:
        with self._lock:
            return [r for r in self.received if r.path == path]

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._thread.is_alive():
            self._server.shutdown()
        self._server.server_close()
