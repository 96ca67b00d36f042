"""Reads what the data plane needs from a Kubernetes API server: the only module that does.

The simulator polls (a list of four kinds per namespace every half second) rather than
watches: a poll cannot miss an event or hold a stale resourceVersion, and the load on a test
API server is small.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from typing import Any

import kubernetes.client
from kubernetes.client.exceptions import ApiException

from meshsim.mesh import MeshSnapshot, snapshot_from_objects

__all__ = ["ClusterReader"]

log = logging.getLogger(__name__)

ISTIO_GROUP = "networking.istio.io"
# v1 first; older Istio CRDs serve only v1beta1 (the objects are the same).
ISTIO_VERSIONS = ("v1", "v1beta1")


class ClusterReader:
    """Lists VirtualServices, DestinationRules, Services and Deployments into a snapshot.

    ``namespaces`` empty means every namespace. With ``istio_objects=False`` (routing by
    istiod's Envoy configuration) only Services and Deployments are read.
    """

    def __init__(
        self,
        api_client: kubernetes.client.ApiClient,
        *,
        namespaces: Sequence[str],
        istio_objects: bool = True,
    ) -> None:
        self._custom = kubernetes.client.CustomObjectsApi(api_client)
        self._core = kubernetes.client.CoreV1Api(api_client)
        self._apps = kubernetes.client.AppsV1Api(api_client)
        self._namespaces = tuple(namespaces)
        self._istio_version: str | None = None
        self._istio_objects = istio_objects

    def read(self) -> MeshSnapshot:
        return snapshot_from_objects(
            virtual_services=self._istio("virtualservices"),
            destination_rules=self._istio("destinationrules"),
            services=self._listed(
                self._core.list_namespaced_service, self._core.list_service_for_all_namespaces
            ),
            deployments=self._listed(
                self._apps.list_namespaced_deployment, self._apps.list_deployment_for_all_namespaces
            ),
        )

    def _listed(self, namespaced: Any, everywhere: Any) -> list[dict[str, Any]]:
        # Raw JSON keeps the camelCase field names the routing engine reads, as for Istio objects.
        if not self._namespaces:
            return _items(everywhere(_preload_content=False))
        items: list[dict[str, Any]] = []
        for namespace in self._namespaces:
            items.extend(_items(namespaced(namespace, _preload_content=False)))
        return items

    def _istio(self, plural: str) -> list[dict[str, Any]]:
        if not self._istio_objects:
            return []
        versions = (self._istio_version,) if self._istio_version else ISTIO_VERSIONS
        for version in versions:
            try:
                items = self._list_istio(plural, version=version)
            except ApiException as error:
                if error.status == 404:
                    continue
                raise
            self._istio_version = version
            return items
        log.warning("no %s.%s served by the API server; treating as none", plural, ISTIO_GROUP)
        return []

    def _list_istio(self, plural: str, *, version: str) -> list[dict[str, Any]]:
        if not self._namespaces:
            return _custom_items(
                self._custom.list_cluster_custom_object(ISTIO_GROUP, version, plural)
            )
        items: list[dict[str, Any]] = []
        for namespace in self._namespaces:
            body = self._custom.list_namespaced_custom_object(
                ISTIO_GROUP, version, namespace, plural
            )
            items.extend(_custom_items(body))
        return items


def _items(response: Any) -> list[dict[str, Any]]:
    return list(json.loads(response.data).get("items") or [])


def _custom_items(body: object) -> list[dict[str, Any]]:
    # The custom-objects API returns the decoded JSON list but is typed as ``object``.
    assert isinstance(body, dict)
    return list(body.get("items") or [])
