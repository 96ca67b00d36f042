"""A real Prometheus server (Debian's package) on a free loopback port.

Scrape targets are listed in a file_sd file, so tests add and remove targets while it runs
(Prometheus watches the file) without a restart or the lifecycle API.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any, Self

__all__ = ["PrometheusServer", "free_port"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class PrometheusServer:
    """Start with ``start()``, stop with ``stop()``; ``url`` is the HTTP API base."""

    def __init__(self, *, scrape_interval: str = "1s", port: int | None = None, binary: str | None = None) -> None:
        found = binary or shutil.which("prometheus")
        if found is None:
            raise RuntimeError("prometheus is not installed: apt-get install -y prometheus")
        self.binary = found
        self.port = port or free_port()
        self.scrape_interval = scrape_interval
        self.url = f"http://127.0.0.1:{self.port}"
        self._dir = Path(tempfile.mkdtemp(prefix="prometheus-"))
        self._targets: dict[str, list[str]] = {}
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def _sd_file(self) -> Path:
        return self._dir / "targets.json"

    def start(self, *, timeout: float = 30) -> None:
        self._write_targets()
        config = (
            "global:\n"
            f"  scrape_interval: {self.scrape_interval}\n"
            f"  evaluation_interval: {self.scrape_interval}\n"
            "scrape_configs:\n"
            "  - job_name: file-sd\n"
            "    file_sd_configs:\n"
            f"      - files: ['{self._sd_file}']\n"
            "        refresh_interval: 1s\n"
        )
        (self._dir / "prometheus.yml").write_text(config)
        log = open(self._dir / "prometheus.log", "wb")  # noqa: SIM115 - lives as long as the process
        self._proc = subprocess.Popen(
            [
                self.binary,
                f"--config.file={self._dir / 'prometheus.yml'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
                f"--storage.tsdb.path={self._dir / 'data'}",
                "--storage.tsdb.retention.time=2h",
                "--web.enable-lifecycle",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise RuntimeError(f"prometheus exited: {(self._dir / 'prometheus.log').read_text()[-2000:]}")
            try:
                with urllib.request.urlopen(f"{self.url}/-/ready", timeout=1) as resp:
                    if resp.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.2)
        raise RuntimeError(f"prometheus not ready on {self.url} after {timeout} s")

    def stop(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
        self._proc = None
        shutil.rmtree(self._dir, ignore_errors=True)

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def add_scrape_target(self, job: str, address: str) -> None:
        """Scrape ``address`` (host:port, /metrics) under the label job=<job>."""
        self._targets.setdefault(job, [])
        if address not in self._targets[job]:
            self._targets[job].append(address)
        self._write_targets()

    def remove_scrape_target(self, job: str) -> None:
        self._targets.pop(job, None)
        self._write_targets()

    def _write_targets(self) -> None:
        groups = [{"targets": addrs, "labels": {"job": job}} for job, addrs in sorted(self._targets.items())]
        tmp = self._sd_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(groups))
        tmp.replace(self._sd_file)  # atomic: Prometheus never reads a half-written file

    def query(self, promql: str) -> list[dict[str, Any]]:
        """Instant query; the ``result`` list of the API's answer."""
        data = urllib.parse.urlencode({"query": promql}).encode()
        with urllib.request.urlopen(f"{self.url}/api/v1/query", data=data, timeout=5) as resp:
            body = json.load(resp)
        if body.get("status") != "success":
            raise RuntimeError(f"query {promql!r} failed: {body}")
        return list(body["data"]["result"])

    def active_targets(self) -> list[dict[str, Any]]:
        with urllib.request.urlopen(f"{self.url}/api/v1/targets", timeout=5) as resp:
            return list(json.load(resp)["data"]["activeTargets"])

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
