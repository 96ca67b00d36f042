"""istiod's Envoy configuration for a namespace, read through ``istio-xds-routes``: the only I/O
of the istiod routing source.

``istio-xds-routes`` (built from hack/xdsdump by hack/build-controlplane.sh) connects to
istiod's plaintext xDS port as a sidecar of the namespace and prints one JSON line per push.
:func:`fetch_config` runs it once (``--once``); :class:`XdsWatch` keeps it running and holds
the latest push, restarting it if it exits (istiod restarted, say) while routing goes on by
the last configuration it had. Nothing here dials anything but istiod's address.
"""

from __future__ import annotations

import collections
import json
import logging
import os
import shutil
import subprocess
import threading
from collections.abc import Callable, Mapping
from pathlib import Path

from meshsim.envoy_routes import EnvoyConfig, parse_config

__all__ = ["BINARY", "XdsError", "XdsWatch", "fetch_config", "find_binary"]

log = logging.getLogger(__name__)

BINARY = "istio-xds-routes"
RESTART_DELAY_S = 1.0


class XdsError(RuntimeError):
    """istio-xds-routes is missing, failed, or istiod sent nothing in time."""


def find_binary(explicit: str | None = None) -> str:
    """``explicit``, else $ISTIO_XDS_ROUTES, else ``.bin/`` of this checkout, else $PATH."""
    for candidate in (explicit, os.environ.get("ISTIO_XDS_ROUTES")):
        if candidate:
            return candidate
    for parent in Path(__file__).resolve().parents:
        built = parent / ".bin" / BINARY
        if built.exists():
            return str(built)
    found = shutil.which(BINARY)
    if found is None:
        raise XdsError(f"{BINARY} not found: run hack/build-controlplane.sh or set ISTIO_XDS_ROUTES")
    return found


def _command(binary: str, *, xds_address: str, namespace: str) -> list[str]:
    return [binary, "--xds", xds_address, "--namespace", namespace, "--name", "meshsim-client"]


def fetch_config(
    *,
    xds_address: str,
    namespace: str,
    binary: str | None = None,
    timeout: float = 30.0,
    gateway_labels: Mapping[str, str] | None = None,
) -> EnvoyConfig:
    """What istiod pushes to a sidecar of ``namespace`` right now (one complete snapshot).

    With ``gateway_labels``: what it pushes to an ingress gateway's proxy with those labels
    (the Gateways whose selector they match), whose route configurations are named
    ``http.<port>``.
    """
    command = [*_command(find_binary(binary), xds_address=xds_address, namespace=namespace), "--once"]
    command += ["--timeout", f"{timeout:.0f}s"]
    if gateway_labels is not None:
        labels = ",".join(f"{k}={v}" for k, v in sorted(gateway_labels.items()))
        command += ["--proxy-type", "router", "--labels", labels]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout + 5, check=False)
    except subprocess.TimeoutExpired as error:
        raise XdsError(f"{BINARY} gave no snapshot of {namespace} in {timeout:.0f} s") from error
    if done.returncode != 0:
        raise XdsError(f"{BINARY} failed ({done.returncode}): {done.stderr.strip()}")
    return parse_config(json.loads(done.stdout))


class XdsWatch:
    """One long-running ``istio-xds-routes`` for one namespace; ``latest`` is the last push."""

    def __init__(
        self,
        *,
        xds_address: str,
        namespace: str,
        binary: str | None = None,
        on_push: Callable[[str, EnvoyConfig], None] | None = None,
    ) -> None:
        self.namespace = namespace
        self._command = _command(find_binary(binary), xds_address=xds_address, namespace=namespace)
        self._on_push = on_push
        self._lock = threading.Lock()
        self._pushed = threading.Condition(self._lock)
        self._latest: EnvoyConfig | None = None
        self.pushes = 0
        self._stopping = threading.Event()
        self._proc: subprocess.Popen[str] | None = None
        self._thread: threading.Thread | None = None
        self.last_error: str = ""

    @property
    def latest(self) -> EnvoyConfig | None:
        with self._lock:
            return self._latest

    def start(self) -> None:
        self._thread = threading.Thread(target=self._supervise, name=f"xds-{self.namespace}", daemon=True)
        self._thread.start()

    def wait_for_push(self, *, after: int = 0, timeout: float = 30.0) -> EnvoyConfig:
        """Block until more than ``after`` pushes arrived; the latest configuration."""
        with self._pushed:
            if not self._pushed.wait_for(lambda: self.pushes > after, timeout=timeout):
                raise XdsError(
                    f"no push from istiod for {self.namespace} in {timeout:.0f} s {self.last_error}".strip()
                )
            assert self._latest is not None
            return self._latest

    def stop(self) -> None:
        self._stopping.set()
        proc = self._proc
        if proc is not None and proc.poll() is None:
            proc.terminate()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def _supervise(self) -> None:
        while not self._stopping.is_set():
            self._run_once()
            if not self._stopping.wait(RESTART_DELAY_S):
                log.warning("%s for %s exited (%s); restarting", BINARY, self.namespace, self.last_error)

    def _run_once(self) -> None:
        proc = subprocess.Popen(
            self._command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, bufsize=1
        )
        self._proc = proc
        assert proc.stdout is not None and proc.stderr is not None
        for line in proc.stdout:
            self._accept(line)
        proc.wait()
        errors = collections.deque(proc.stderr, maxlen=5)
        self.last_error = f"exit {proc.returncode}: {' '.join(e.strip() for e in errors)}"

    def _accept(self, line: str) -> None:
        try:
            config = parse_config(json.loads(line))
        except (ValueError, KeyError, TypeError) as error:
            log.warning("unreadable line from %s: %s", BINARY, error)
            return
        with self._pushed:
            self._latest = config
            self.pushes += 1
            self._pushed.notify_all()
        if self._on_push is not None:
            self._on_push(self.namespace, config)
