"""Fault injection for restart-safety tests, wrapped around the cluster adapter (never in the loop itself)."""

from __future__ import annotations

import os
import threading
from typing import Any

from istio_canary import actions as act
from istio_canary.k8s.cluster import Executed
from istio_canary.phases import Observed

__all__ = ["CRASH_AFTER_WRITES_ENV", "CrashAfterWrites"]

CRASH_AFTER_WRITES_ENV = "ISTIO_CANARY_CRASH_AFTER_WRITES"


class CrashAfterWrites:
    """The cluster adapter, except that the process dies (like SIGKILL) right after its Nth write.

    No cleanup, no finalizer and no status write follow: the next operator process has to make
    sense of whatever was left half-done.
    """

    def __init__(self, cluster: Any, *, writes: int) -> None:
        """``cluster`` is the adapter to wrap (``k8s.cluster.Cluster``)."""
        self._cluster, self._left, self._lock = cluster, writes, threading.Lock()

    @property
    def api(self) -> Any:
        return self._cluster.api

    def execute(self, action: act.Action, *, observed: Observed, namespace: str) -> Executed:
        done: Executed = self._cluster.execute(action, observed=observed, namespace=namespace)
        if done.wrote:
            with self._lock:
                self._left -= 1
                if self._left <= 0:
                    os._exit(137)
        return done

    def patch_status(self, *, namespace: str, name: str, patch: dict[str, Any]) -> None:
        self._cluster.patch_status(namespace=namespace, name=name, patch=patch)

    def post_event(self, *, release: Any, event: act.Event) -> None:
        self._cluster.post_event(release=release, event=event)
