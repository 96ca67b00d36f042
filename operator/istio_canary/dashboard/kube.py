"""The dashboard's only code that talks to the API server.

The server's own client (in-cluster credentials or a kubeconfig) reviews tokens, asks
SubjectAccessReviews, reads releases and Events and records what a user did; a patch is sent
with the user's own token, so the API server applies the user's RBAC a second time. The
Kubernetes client is synchronous: every call runs in a worker thread.
"""

from __future__ import annotations

import asyncio
import copy
import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, TypeVar

from kubernetes import client
from kubernetes.client.rest import ApiException

from istio_canary.dashboard import access
from istio_canary.dashboard.sessions import User
from istio_canary.models import GROUP, KIND, PLURAL, VERSION

__all__ = ["ApiError", "ForbiddenError", "KubeGateway", "NotFoundError"]

T = TypeVar("T")
COMPONENT = "istio-canary-dashboard"


class ApiError(Exception):
    """The API server refused a request; ``status`` is its HTTP status, the text its message."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class ForbiddenError(ApiError):
    """401 or 403: the user (or the dashboard) may not do this."""


class NotFoundError(ApiError):
    """404: no such object."""


def _translate(error: ApiException) -> ApiError:
    status = int(error.status or 500)
    try:
        message = str(json.loads(error.body or "{}").get("message") or error.reason)
    except ValueError:
        message = str(error.reason)
    if status in (401, 403):
        return ForbiddenError(status, message)
    if status == 404:
        return NotFoundError(status, message)
    return ApiError(status, message)


class KubeGateway:
    """Async calls on a ``kubernetes.client.ApiClient``; answers are plain JSON dicts."""

    def __init__(self, api: client.ApiClient) -> None:
        self._api = api
        self._custom = client.CustomObjectsApi(api)
        self._core = client.CoreV1Api(api)

    async def _call(self, fn: Callable[[], T]) -> T:
        def run() -> T:
            try:
                return fn()
            except ApiException as error:
                raise _translate(error) from None

        return await asyncio.to_thread(run)

    def _json(self, obj: Any) -> Any:
        return self._api.sanitize_for_serialization(obj)

    async def review_token(self, token: str) -> User | None:
        """The user the token belongs to, or None when the API server does not accept it."""
        body = {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview", "spec": {"token": token}}
        api = client.AuthenticationV1Api(self._api)
        answer = await self._call(lambda: self._json(api.create_token_review(body)))
        return access.user_from_token_review(answer)

    async def can(self, user: User, check: access.Check) -> bool:
        api = client.AuthorizationV1Api(self._api)
        body = access.review_body(user, check)
        answer = await self._call(lambda: self._json(api.create_subject_access_review(body)))
        return access.allowed(answer)

    async def list_releases(self, namespace: str | None = None) -> list[dict[str, Any]]:
        if namespace is None:
            found = await self._call(lambda: self._custom.list_cluster_custom_object(GROUP, VERSION, PLURAL))
        else:
            found = await self._call(
                lambda: self._custom.list_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL)
            )
        return list(found.get("items") or [])

    async def get_release(self, namespace: str, name: str) -> dict[str, Any]:
        """The stored release; :class:`NotFoundError` when there is none."""
        found = await self._call(
            lambda: self._custom.get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name)
        )
        return dict(found)

    async def release_events(self, namespace: str, name: str) -> list[dict[str, Any]]:
        selector = f"involvedObject.kind={KIND},involvedObject.name={name}"
        found = await self._call(
            lambda: self._json(self._core.list_namespaced_event(namespace, field_selector=selector))
        )
        return list(found.get("items") or [])

    async def patch_release_as(self, token: str, *, namespace: str, name: str, patch: dict[str, Any]) -> None:
        """Merge-patch the release's spec with the user's token, not the dashboard's credentials."""

        def run() -> None:
            with client.ApiClient(_user_configuration(self._api.configuration, token)) as api:
                client.CustomObjectsApi(api).patch_namespaced_custom_object(
                    GROUP, VERSION, namespace, PLURAL, name, patch
                )

        await self._call(run)

    async def record_action(self, release: dict[str, Any], *, user: User, change: str, now: datetime) -> None:
        """A Normal Event on the release: who changed what from the dashboard."""
        meta = release["metadata"]
        stamp = now.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        event = {
            "metadata": {"generateName": f"{meta['name']}.dashboard.", "namespace": meta["namespace"]},
            "involvedObject": {"apiVersion": f"{GROUP}/{VERSION}", "kind": KIND, "name": meta["name"],
                               "namespace": meta["namespace"], "uid": meta.get("uid")},
            "reason": "DashboardAction",
            "message": f"{user.username} set {change} from the dashboard",
            "type": "Normal",
            "source": {"component": COMPONENT},
            "firstTimestamp": stamp,
            "lastTimestamp": stamp,
            "count": 1,
        }
        await self._call(lambda: self._core.create_namespaced_event(meta["namespace"], event))


def _user_configuration(base: client.Configuration, token: str) -> client.Configuration:
    """The server's address and CA, the user's bearer token, and none of the server's credentials."""
    config = copy.deepcopy(base)
    config.api_key = {"authorization": f"Bearer {token}"}
    config.api_key_prefix = {}
    config.refresh_api_key_hook = None
    config.cert_file = config.key_file = None
    config.username = config.password = None
    return config
