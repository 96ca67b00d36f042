"""Which question each request puts to the API server about the signed-in user. (pure)

Every read and every action of the dashboard maps to one Kubernetes verb on one resource in one
namespace; the server asks a SubjectAccessReview for exactly that before it does anything.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from istio_canary.dashboard.sessions import User
from istio_canary.models import GROUP, PLURAL

__all__ = [
    "Check",
    "allowed",
    "events_check",
    "list_check",
    "patch_check",
    "read_check",
    "review_body",
    "user_from_token_review",
]


@dataclass(frozen=True)
class Check:
    """May the user ``verb`` the ``resource`` (named ``name``) in ``namespace``?"""

    verb: str
    namespace: str
    resource: str = PLURAL
    group: str = GROUP
    name: str = ""


def list_check(namespace: str) -> Check:
    """The release list and the topology of a namespace."""
    return Check(verb="list", namespace=namespace)


def read_check(namespace: str, name: str) -> Check:
    """A release page: the release, its charts and its verdicts."""
    return Check(verb="get", namespace=namespace, name=name)


def events_check(namespace: str) -> Check:
    """The Events on a release page's timeline (left out when not allowed)."""
    return Check(verb="list", namespace=namespace, resource="events", group="")


def patch_check(namespace: str, name: str) -> Check:
    """Every action: each is a merge patch of the release's spec."""
    return Check(verb="patch", namespace=namespace, name=name)


def review_body(user: User, check: Check) -> dict[str, Any]:
    """The SubjectAccessReview that asks the API server about ``user``."""
    attributes = {
        "verb": check.verb,
        "group": check.group,
        "resource": check.resource,
        "namespace": check.namespace,
    }
    if check.name:
        attributes["name"] = check.name
    spec: dict[str, Any] = {"user": user.username, "resourceAttributes": attributes}
    if user.uid:
        spec["uid"] = user.uid
    if user.groups:
        spec["groups"] = list(user.groups)
    if user.extra:
        spec["extra"] = {key: list(values) for key, values in user.extra.items()}
    return {"apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview", "spec": spec}


def allowed(review: dict[str, Any]) -> bool:
    """An answer is a yes only when it says allowed and not denied."""
    status = review.get("status") or {}
    return bool(status.get("allowed")) and not status.get("denied")


def user_from_token_review(review: dict[str, Any]) -> User | None:
    """The user of an authenticated TokenReview; None when the token was not accepted."""
    status = review.get("status") or {}
    info = status.get("user") or {}
    if not status.get("authenticated") or not info.get("username"):
        return None
    extra = {str(k): [str(v) for v in values or ()] for k, values in (info.get("extra") or {}).items()}
    return User(
        username=str(info["username"]),
        uid=str(info.get("uid") or ""),
        groups=tuple(str(g) for g in info.get("groups") or ()),
        extra=extra,
    )
