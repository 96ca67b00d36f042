"""The operator in a subprocess of its own, its memory and CPU time sampled while it runs."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import psutil

__all__ = ["OperatorProcess", "Sample"]


@dataclass(frozen=True)
class Sample:
    t: float
    """Seconds since the process started."""
    rss_mb: float
    cpu_s: float
    """User and system CPU seconds so far."""


class OperatorProcess:
    """``istio-canary-operator run`` in a subprocess, with its RSS and CPU time sampled every 0.5 s."""

    def __init__(
        self,
        *,
        kubeconfig: str,
        namespaces: Sequence[str],
        log_path: Path,
        extra: Sequence[str] = (),
        traced: bool = False,
    ) -> None:
        self.kubeconfig, self.namespaces, self.log_path = kubeconfig, list(namespaces), log_path
        self.extra, self.traced = list(extra), traced
        self.proc: subprocess.Popen[bytes] | None = None
        self.samples: list[Sample] = []
        self._stop = threading.Event()
        self._sampler = threading.Thread(target=self._sample_loop, daemon=True)
        self.started = 0.0

    def _command(self) -> list[str]:
        traced = [sys.executable, str(Path(__file__).parent / "_traced_operator.py")]
        exe = [str(Path(sys.executable).parent / "istio-canary-operator")]
        scope = [arg for ns in self.namespaces for arg in ("--namespace", ns)]
        return [
            *(traced if self.traced else exe),
            "run",
            *scope,
            *("--kubeconfig", self.kubeconfig, "--log-format", "json"),
            *self.extra,
        ]

    def start(self) -> OperatorProcess:
        self._log = self.log_path.open("wb")
        self.started = time.monotonic()
        self.proc = subprocess.Popen(
            self._command(), stdout=self._log, stderr=subprocess.STDOUT, env=dict(os.environ)
        )
        self._sampler.start()
        return self

    def _sample_loop(self) -> None:
        assert self.proc is not None
        process = psutil.Process(self.proc.pid)
        while not self._stop.is_set() and self.proc.poll() is None:
            try:
                with process.oneshot():
                    rss, cpu = process.memory_info().rss, process.cpu_times()
            except psutil.Error:  # gone between poll() and the read
                break
            sample = Sample(
                t=time.monotonic() - self.started, rss_mb=rss / 2**20, cpu_s=cpu.user + cpu.system
            )
            self.samples.append(sample)
            self._stop.wait(0.5)

    def peak_hwm_mb(self) -> float:
        """The kernel's own RSS high-water mark (VmHWM), which catches peaks between samples.

        psutil does not report it, so it is read from /proc (Linux only, as kwok's nodes are).
        """
        assert self.proc is not None
        status = Path(f"/proc/{self.proc.pid}/status").read_text()
        (line,) = [line for line in status.splitlines() if line.startswith("VmHWM:")]
        return int(line.split()[1]) / 1024

    def cpu_between(self, t0: float, t1: float) -> float:
        """CPU seconds used between two sample times (seconds since start)."""
        inside = [s for s in self.samples if t0 <= s.t <= t1]
        return inside[-1].cpu_s - inside[0].cpu_s if len(inside) >= 2 else 0.0

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self) -> None:
        self._stop.set()
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        if hasattr(self, "_log"):
            self._log.close()
