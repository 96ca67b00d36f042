"""Each provider's JSON for a notice: Slack, Microsoft Teams, Discord, Google Chat, a plain webhook. (pure)

Each body is what the provider's incoming webhook takes: Slack's ``text`` with an attachment
whose colour is the severity; a Teams workflow's message with an Adaptive Card; Discord's
``embeds``; Google Chat's ``text``; and for any other receiver the notice's fields as JSON.
"""

from __future__ import annotations

from typing import Any

from istio_canary.models.notifications import Severity
from istio_canary.notifications.notice import Notice

__all__ = ["body"]

_COLOURS = {Severity.INFO: "#2eb67d", Severity.WARNING: "#ecb22e", Severity.ERROR: "#e01e5a"}


def body(provider: str, notice: Notice) -> dict[str, Any]:
    """The JSON the provider's webhook takes (ValueError: no such provider)."""
    match provider:
        case "Slack":
            return _slack(notice)
        case "MSTeams":
            return _teams(notice)
        case "Discord":
            return _discord(notice)
        case "GoogleChat":
            return _google_chat(notice)
        case "Webhook":
            return _webhook(notice)
    raise ValueError(f"no notification format for {provider!r}")


def _text(notice: Notice) -> str:
    return f"{notice.title}\n{notice.message}"


def _slack(notice: Notice) -> dict[str, Any]:
    return {
        "text": _text(notice),
        "attachments": [
            {
                "color": _COLOURS[notice.severity],
                "fields": [{"title": name, "value": value, "short": True} for name, value in notice.facts()],
            }
        ],
    }


def _teams(notice: Notice) -> dict[str, Any]:
    card = {
        "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
        "type": "AdaptiveCard",
        "version": "1.4",
        "body": [
            {"type": "TextBlock", "text": notice.title, "weight": "Bolder", "size": "Medium", "wrap": True},
            {"type": "TextBlock", "text": notice.message, "wrap": True},
            {"type": "FactSet", "facts": [{"title": name, "value": value} for name, value in notice.facts()]},
        ],
    }
    return {
        "type": "message",
        "attachments": [{"contentType": "application/vnd.microsoft.card.adaptive", "content": card}],
    }


def _discord(notice: Notice) -> dict[str, Any]:
    return {
        "content": notice.title,
        "embeds": [
            {
                "title": notice.title[:256],
                "description": notice.message[:4096],
                "color": int(_COLOURS[notice.severity].lstrip("#"), 16),
                "fields": [{"name": name, "value": value, "inline": True} for name, value in notice.facts()],
            }
        ],
    }


def _google_chat(notice: Notice) -> dict[str, Any]:
    facts = "\n".join(f"*{name}*: {value}" for name, value in notice.facts())
    return {"text": f"*{notice.title}*\n{notice.message}\n{facts}"}


def _webhook(notice: Notice) -> dict[str, Any]:
    return {
        "namespace": notice.namespace,
        "name": notice.release,
        "service": notice.service,
        "stable": {"version": notice.stable, "weight": notice.stable_weight},
        "canary": {"version": notice.canary, "weight": notice.canary_weight},
        "phase": notice.phase,
        "reason": notice.reason,
        "message": notice.message,
        "severity": notice.severity.value,
        "time": notice.time,
    }
