"""A watch on the fleet's VirtualServices: when each one first showed each canary weight."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence

from _fleet import canary_weight
from istio_canary.models.marks import ISTIO_GROUP, ISTIO_VERSION
from kubernetes import client, watch
from kubernetes.client.rest import ApiException

__all__ = ["WeightWatcher"]


class WeightWatcher:
    """Watches VirtualServices in some namespaces and remembers when each showed each canary weight."""

    def __init__(self, api: client.ApiClient, namespaces: Sequence[str]) -> None:
        self.custom = client.CustomObjectsApi(api)
        self.namespaces = list(namespaces)
        self.seen: dict[tuple[str, str], list[tuple[float, int | None]]] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._ready = threading.Barrier(len(self.namespaces) + 1)
        self._threads = [
            threading.Thread(target=self._watch, args=(ns,), daemon=True) for ns in self.namespaces
        ]

    def start(self) -> WeightWatcher:
        for t in self._threads:
            t.start()
        self._ready.wait(timeout=60)
        return self

    def stop(self) -> None:
        self._stop.set()

    def _watch(self, namespace: str) -> None:
        listed = self.custom.list_namespaced_custom_object(
            ISTIO_GROUP, ISTIO_VERSION, namespace, "virtualservices"
        )
        rv = listed["metadata"]["resourceVersion"]
        self._ready.wait(timeout=60)
        while not self._stop.is_set():
            w = watch.Watch()
            try:
                for ev in w.stream(
                    self.custom.list_namespaced_custom_object,
                    ISTIO_GROUP,
                    ISTIO_VERSION,
                    namespace,
                    "virtualservices",
                    resource_version=rv,
                    timeout_seconds=60,
                ):
                    now = time.monotonic()
                    obj = ev["object"]
                    rv = obj["metadata"]["resourceVersion"]
                    with self._lock:
                        self.seen.setdefault((namespace, obj["metadata"]["name"]), []).append(
                            (now, canary_weight(obj))
                        )
                    if self._stop.is_set():
                        break
            except ApiException as err:
                if err.status == 410:  # expired resourceVersion: start from now
                    rv = self.custom.list_namespaced_custom_object(
                        ISTIO_GROUP, ISTIO_VERSION, namespace, "virtualservices"
                    )["metadata"]["resourceVersion"]
                else:
                    raise

    def first_seen(self, key: tuple[str, str], weight: int, *, after: float) -> float | None:
        with self._lock:
            for t, w in self.seen.get(key, []):
                if w == weight and t >= after:
                    return t
        return None

    def wait_all(
        self, wanted: dict[tuple[str, str], int], *, after: float, timeout: float
    ) -> dict[tuple[str, str], float]:
        """First time each release's VirtualService showed its wanted weight (missing ones omitted)."""
        deadline = time.monotonic() + timeout
        found: dict[tuple[str, str], float] = {}
        while time.monotonic() < deadline:
            for key, weight in wanted.items():
                if key not in found:
                    t = self.first_seen(key, weight, after=after)
                    if t is not None:
                        found[key] = t
            if len(found) == len(wanted):
                break
            time.sleep(0.01)
        return found
