"""The invariant monitor: watches one namespace during a test and checks every state it passes through.

One watch per kind (VirtualService, DestinationRule, Deployment, Service, CanaryRelease) records
every revision it delivers; ``violations()`` replays them in etcd's order (``replay.py``). The
watches talk to the test cluster's API server on loopback, through the Kubernetes client.
"""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

from tests.invariants.replay import DEFAULT_STATUS_GRACE, replay
from tests.invariants.revisions import (
    DEPLOYMENT,
    DESTINATION_RULE,
    RELEASE,
    SERVICE,
    VIRTUAL_SERVICE,
    Revision,
    Violation,
)

__all__ = ["InvariantMonitor"]

# Seconds a watch request stays open: also how long stop() may wait for a watch to notice.
WATCH_SECONDS = 2
# A watch that cannot reach the API server for this long gives up (an outage test restarts it).
GIVE_UP_SECONDS = 300


def _list_function(api_client: Any, kind: str) -> Callable[..., Any]:
    from kubernetes import client

    custom = client.CustomObjectsApi(api_client)

    def custom_list(group: str, version: str, plural: str) -> Callable[..., Any]:
        def list_objects(namespace: str, **kwargs: Any) -> Any:
            return custom.list_namespaced_custom_object(group, version, namespace, plural, **kwargs)

        return list_objects

    functions: dict[str, Callable[..., Any]] = {
        VIRTUAL_SERVICE: custom_list("networking.istio.io", "v1", "virtualservices"),
        DESTINATION_RULE: custom_list("networking.istio.io", "v1", "destinationrules"),
        RELEASE: custom_list("releases.istio-canary.io", "v1alpha1", "canaryreleases"),
        DEPLOYMENT: client.AppsV1Api(api_client).list_namespaced_deployment,
        SERVICE: client.CoreV1Api(api_client).list_namespaced_service,
    }
    return functions[kind]


class InvariantMonitor:
    """Records every revision of the watched kinds in ``namespace`` between ``start()`` and ``stop()``."""

    def __init__(
        self, api_client_factory: Callable[[], Any], namespace: str, *, status_grace: float = DEFAULT_STATUS_GRACE
    ) -> None:
        self.namespace, self.status_grace = namespace, status_grace
        self._factory = api_client_factory
        self._revisions: list[Revision] = []
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._threads: list[threading.Thread] = []
        self._synced: list[threading.Event] = []
        self._ended_at: float | None = None
        self.errors: list[str] = []
        self.gaps: list[tuple[int, int]] = []
        """resourceVersion windows in which a watch was broken and listed again (see ``replay``)."""

    def start(self, *, timeout: float = 120) -> InvariantMonitor:
        """Start the watches; returns once every kind has been listed (its current state recorded)."""
        for kind in (SERVICE, DEPLOYMENT, DESTINATION_RULE, VIRTUAL_SERVICE, RELEASE):
            synced = threading.Event()
            thread = threading.Thread(target=self._watch, args=(kind, synced), name=f"monitor-{kind}", daemon=True)
            thread.start()
            self._threads.append(thread)
            self._synced.append(synced)
        deadline = time.monotonic() + timeout
        for synced in self._synced:
            if not synced.wait(max(0.0, deadline - time.monotonic())):
                raise AssertionError(f"invariant monitor: watches not listed after {timeout} s: {self.errors}")
        return self

    def stop(self) -> None:
        """Stop the watches, after one last list of every kind (a watch may lag behind the API server)."""
        if self._ended_at is not None:
            return
        api_client = self._factory()
        for kind in (SERVICE, DEPLOYMENT, DESTINATION_RULE, VIRTUAL_SERVICE, RELEASE):
            self._list(api_client, kind)
        self._ended_at = time.monotonic()
        self._stopping.set()
        for thread in self._threads:
            thread.join(timeout=WATCH_SECONDS + 5)

    @property
    def revisions(self) -> list[Revision]:
        with self._lock:
            return list(self._revisions)

    def counts(self) -> Counter[str]:
        """How many revisions of each kind were recorded: evidence that the monitor saw the test."""
        return Counter(r.kind for r in self.revisions)

    def violations(self) -> list[Violation]:
        ended = self._ended_at if self._ended_at is not None else time.monotonic()
        return replay(
            self.revisions, namespace=self.namespace, status_grace=self.status_grace, ended_at=ended, gaps=self.gaps
        )

    def assert_clean(self) -> None:
        """Fail with every violation (the first 20 spelled out), or when a watch broke for good."""
        found = self.violations()
        assert not self.errors, f"invariant monitor: watches failed: {self.errors}"
        listed = "\n".join(str(v) for v in found[:20])
        assert not found, f"{len(found)} invariant violation(s) in namespace {self.namespace}:\n{listed}"

    # -- the watches ----------------------------------------------------------------------------

    def _record(self, kind: str, body: dict[str, Any], *, deleted: bool = False) -> None:
        meta = body.get("metadata") or {}
        revision = Revision(
            kind=kind, name=str(meta.get("name", "")), resource_version=int(meta.get("resourceVersion") or 0),
            body=body, deleted=deleted, seen_at=time.monotonic(),
        )
        with self._lock:
            self._revisions.append(revision)

    def _list(self, api_client: Any, kind: str) -> str:
        """Record every object of ``kind`` as it is now; the list's resourceVersion to watch from."""
        result = _list_function(api_client, kind)(self.namespace, _preload_content=False)
        listed = json.loads(result.data)
        for item in listed.get("items") or []:
            self._record(kind, item)
        return str(listed["metadata"]["resourceVersion"])

    def _watch(self, kind: str, synced: threading.Event) -> None:
        from kubernetes import watch

        api_client = self._factory()
        failing_since: float | None = None
        resource_version, broken_at = "", ""
        while not self._stopping.is_set():
            try:
                if not resource_version:
                    resource_version = self._list(api_client, kind)
                    if broken_at:
                        with self._lock:
                            self.gaps.append((int(broken_at), int(resource_version)))
                        broken_at = ""
                    synced.set()
                following = self._stream(watch.Watch(), api_client, kind, resource_version)
                broken_at = broken_at if following else resource_version  # 410 Gone: revisions were missed
                resource_version, failing_since = following, None
            except Exception as error:  # noqa: BLE001 - a broken watch is listed again, and timed
                failing_since = failing_since or time.monotonic()
                broken_at = resource_version or broken_at
                resource_version = ""
                if time.monotonic() - failing_since > GIVE_UP_SECONDS:
                    self.errors.append(f"{kind}: {error}")
                    synced.set()
                    return
                time.sleep(0.5)

    def _stream(self, watcher: Any, api_client: Any, kind: str, resource_version: str) -> str:
        """Follow one watch request; the resourceVersion to go on from ('' : list again)."""
        stream = watcher.stream(
            _list_function(api_client, kind), self.namespace, resource_version=resource_version,
            timeout_seconds=WATCH_SECONDS, allow_watch_bookmarks=True,
        )
        for event in stream:
            raw = event.get("raw_object") or {}
            if event.get("type") == "ERROR":
                return ""  # 410 Gone: the resourceVersion is too old; list again
            resource_version = str((raw.get("metadata") or {}).get("resourceVersion") or resource_version)
            if event.get("type") != "BOOKMARK":
                self._record(kind, raw, deleted=event.get("type") == "DELETED")
            if self._stopping.is_set():
                watcher.stop()
        return resource_version
