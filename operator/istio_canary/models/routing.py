"""Which routing objects a release splits, and how the mesh tells its versions apart."""

from __future__ import annotations

import enum
from typing import Annotated

from pydantic import Field

from istio_canary.models._base import DNS_SUBDOMAIN, ApiModel, DnsLabel

__all__ = ["MAX_LISTED_VIRTUAL_SERVICES", "ObjectRef", "RoutingMode", "RoutingSpec", "version_service_name"]


def version_service_name(service: str, version: str) -> str:
    """The Service of one version in routing mode Services: ``reviews-v2``."""
    return f"{service}-{version}"


class RoutingMode(str, enum.Enum):
    """How the mesh tells the versions apart; see `routing.mode`."""

    SUBSETS = "Subsets"
    """DestinationRule subsets; clients that bypass Envoy are balanced over both versions by the selector."""
    SERVICES = "Services"
    """One Service per version, and the released Service's selector pinned to the version with all traffic."""


class ObjectRef(ApiModel):
    """An object by name, in the release's namespace unless another is given."""

    name: Annotated[str, Field(min_length=1, max_length=253, pattern=DNS_SUBDOMAIN)]
    """The object's name."""
    namespace: DnsLabel | None = None
    """The object's namespace; default: the release's."""


MAX_LISTED_VIRTUAL_SERVICES = 8


class RoutingSpec(ApiModel):
    """Which routing objects the release splits, beyond those it finds by itself."""

    virtual_services: list[ObjectRef] = Field(default_factory=list, max_length=MAX_LISTED_VIRTUAL_SERVICES)
    """VirtualServices that route to the Service from elsewhere (a gateway's in istio-system, a delegate in another namespace). Those in the release's namespace that route to the Service are split without being listed."""
    mode: RoutingMode = RoutingMode.SUBSETS
    """`Subsets` (default), or `Services`: each version gets its own Service (`<service>-<version>`) that the routes name, and the released Service's selector is pinned to the version with all the traffic (stable until a take over), so clients outside the mesh never reach a canary that has none; the selector is restored exactly at the end. Immutable."""
