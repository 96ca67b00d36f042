"""Sends notices to the receivers, in a thread of its own: a slow chat service never slows a release.

Notices wait in a bounded queue (when it is full the newest is dropped and counted); each is
posted with a deadline and retried a few times on a timeout, a refused connection, 429 or a
5xx. A receiver's URL is read from its file (a mounted Secret) just before each post and goes
nowhere else: logs, metrics and Events name the receiver, and failures are fixed words.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import structlog

from istio_canary import errors
from istio_canary import metrics as opmetrics
from istio_canary.analysis import egress as egress_
from istio_canary.models.notifications import NotificationsSpec
from istio_canary.notifications import formats
from istio_canary.notifications.notice import Notice, Receiver, chosen

__all__ = ["Notifier"]

log = structlog.get_logger(__name__)

_RETRIED_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})


class Notifier:
    """Posts notices to the configured receivers from a background thread."""

    def __init__(
        self,
        receivers: Sequence[Receiver],
        *,
        egress: egress_.Egress,
        timeout_seconds: float = 5.0,
        attempts: int = 3,
        backoff_seconds: float = 1.0,
        queue_size: int = 1000,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.receivers = tuple(receivers)
        self._session = egress_.GuardedSession(egress=egress, timeout_seconds=timeout_seconds)
        self._timeout = timeout_seconds
        self._attempts = attempts
        self._backoff = backoff_seconds
        self._sleep = sleep
        self._queue: queue.Queue[tuple[Receiver, Notice] | None] = queue.Queue(maxsize=queue_size)
        self._thread = threading.Thread(target=self._run, name="notifier", daemon=True)
        self._thread.start()

    def unknown(self, spec: NotificationsSpec | None) -> list[str]:
        """Receivers a release names that this operator does not have."""
        known = {r.name for r in self.receivers}
        return [name for name in (spec.receivers or []) if name not in known] if spec else []

    def notify(self, notice: Notice, spec: NotificationsSpec | None) -> None:
        """Queue the notice for every receiver that should hear it; never blocks."""
        for receiver in chosen(self.receivers, spec, notice.severity):
            try:
                self._queue.put_nowait((receiver, notice))
            except queue.Full:
                opmetrics.DEFAULT.count_notification(receiver=receiver.name, result="dropped")
                log.warning("notification dropped: the queue is full", receiver=receiver.name)

    def close(self, *, wait_seconds: float = 5.0) -> None:
        """Send what is queued (for at most ``wait_seconds``), then stop the thread."""
        self._queue.put(None)
        self._thread.join(wait_seconds)

    def _run(self) -> None:
        while (item := self._queue.get()) is not None:
            receiver, notice = item
            result = self._deliver(receiver, notice)
            opmetrics.DEFAULT.count_notification(receiver=receiver.name, result=result)

    def _deliver(self, receiver: Receiver, notice: Notice) -> str:
        """Post with retries: "sent" or "failed" (and the reason, in fixed words, in the log)."""
        bound = log.bind(receiver=receiver.name, namespace=notice.namespace, name=notice.release)
        try:
            url = Path(receiver.url_file).read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError):
            bound.warning("notification not sent: the receiver's URL file cannot be read")
            return "failed"
        payload = formats.body(receiver.provider, notice)
        for attempt in range(1, self._attempts + 1):
            try:
                self._session.post(url, json=payload, timeout=self._timeout)
                bound.info("notification sent", reason=notice.reason, severity=notice.severity.value)
                return "sent"
            except Exception as err:  # noqa: BLE001 - every failure is logged in fixed words
                why = egress_.describe_failure(err, timeout_seconds=self._timeout)
                if isinstance(err, errors.OutboundRefusedError):
                    bound.warning("notification not sent: the outbound policy refuses it", refused=str(err))
                    return "failed"
                retried = not isinstance(err, egress_.HttpStatusError) or err.status_code in _RETRIED_STATUS
                if not retried or attempt == self._attempts:
                    bound.warning("notification not sent", receiver_answer=f"the receiver {why}", attempts=attempt)
                    return "failed"
                self._sleep(self._backoff * attempt)
        return "failed"
