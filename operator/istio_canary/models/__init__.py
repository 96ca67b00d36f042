"""Pydantic models of the CanaryRelease API: the single source of the CRD schema."""

from istio_canary.models.analysis import (
    AnalysisSpec,
    AnalysisStatus,
    CheckResult,
    Promotion,
    Verdict,
)
from istio_canary.models.marks import GROUP, KIND, PLURAL, VERSION
from istio_canary.models.spec import (
    CanaryReleaseSpec,
    CanarySpec,
    CookieMatch,
    MatchRule,
    ObjectRef,
    OfflineAction,
    OperatingSystem,
    Policy,
    RoutingMode,
    RoutingSpec,
    StableSpec,
    Strategy,
    StringMatch,
    TrafficSpec,
)
from istio_canary.models.status import (
    CanaryReleaseStatus,
    Condition,
    ConditionType,
    DrainStatus,
    Phase,
    Reason,
    Role,
    RoutedObject,
    TrafficStatus,
    VersionMetrics,
    VersionStatus,
)

__all__ = [
    "GROUP", "KIND", "PLURAL", "VERSION",
    "AnalysisSpec", "AnalysisStatus", "CanaryReleaseSpec", "CanaryReleaseStatus", "CanarySpec",
    "CheckResult", "Condition", "ConditionType", "CookieMatch", "DrainStatus", "MatchRule", "ObjectRef", "OfflineAction",
    "OperatingSystem", "Phase", "Policy", "Promotion", "Reason", "Role", "RoutedObject", "RoutingMode", "RoutingSpec", "StableSpec", "Strategy",
    "StringMatch", "TrafficSpec", "TrafficStatus", "Verdict", "VersionMetrics", "VersionStatus",
]
