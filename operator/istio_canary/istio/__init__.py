"""Pure builders of Istio VirtualService and DestinationRule objects, and their read-back.

Nothing here talks to the API server: every function takes plain dicts and models and returns
JSON-ready dicts, so the same input always gives the same object.
"""

from istio_canary.istio.destination_rule import build_destination_rule
from istio_canary.istio.match import match_requests
from istio_canary.istio.ownership import (
    MANAGED_BY,
    MANAGED_BY_LABEL,
    ORIGINAL_SPEC_ANNOTATION,
    RELEASE_LABEL,
    created_by_operator,
)
from istio_canary.istio.plan import PortKind, RoutePlan, ServicePort, service_ports
from istio_canary.istio.restore import read_back_traffic, restore_original, restored_object
from istio_canary.istio.routes import is_service_host
from istio_canary.istio.virtual_service import build_virtual_service

__all__ = [
    "MANAGED_BY",
    "MANAGED_BY_LABEL",
    "ORIGINAL_SPEC_ANNOTATION",
    "RELEASE_LABEL",
    "PortKind",
    "RoutePlan",
    "ServicePort",
    "build_destination_rule",
    "build_virtual_service",
    "created_by_operator",
    "is_service_host",
    "match_requests",
    "read_back_traffic",
    "restore_original",
    "restored_object",
    "service_ports",
]
