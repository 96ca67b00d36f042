"""``spec.notifications``: which of the operator's receivers hear about a release, and from what severity."""

from __future__ import annotations

import enum
from typing import Annotated

from pydantic import Field

from istio_canary.models._base import ApiModel

__all__ = ["NotificationsSpec", "Severity"]

RECEIVER_NAME = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"


class Severity(str, enum.Enum):
    """How much a notice matters, lowest first."""

    INFO = "Info"
    """The release moved on: progressing, a step passed, taken over, completed."""
    WARNING = "Warning"
    """Something needs a look: paused, no data, Prometheus silent, a path around the mesh, aborted by a person."""
    ERROR = "Error"
    """The release failed, or the analysis rolled the canary back."""

    @property
    def rank(self) -> int:
        return list(Severity).index(self)


class NotificationsSpec(ApiModel):
    """Notices of this release to the operator's receivers (Slack, Microsoft Teams, Discord, Google Chat, a JSON webhook), which the cluster admin configures with their URLs in Secrets: a release names receivers, never a URL."""

    receivers: list[Annotated[str, Field(max_length=63, pattern=RECEIVER_NAME)]] | None = Field(
        default=None,
        max_length=8,
        description="Names of the operator's receivers to notify. Unset: the receivers the admin marked as default; empty: none.",
    )
    severity: Severity = Field(
        default=Severity.INFO, description="The lowest severity notified: Info (everything), Warning, or Error."
    )
