"""The operator's one scheduler table: due times, wake-ups, and taking what is due."""

from __future__ import annotations

import asyncio
import time

from istio_canary.due import DueTable


def test_a_release_is_taken_once_when_due_and_not_again_until_its_next_due_time_is_set() -> None:
    table = DueTable()
    table.set("ns/a", seconds=0)
    table.set("ns/b", seconds=60)

    assert table.take() == ["ns/a"]
    assert table.take() == [], "taken: not due again while its look runs"
    table.set("ns/a", seconds=0)
    assert table.take() == ["ns/a"]


def test_wake_makes_a_known_release_due_now_and_ignores_an_unknown_one() -> None:
    table = DueTable()
    table.set("ns/a", seconds=60)
    table.wake("ns/a")
    table.wake("ns/unknown")
    assert table.take() == ["ns/a"]
    assert table.take() == [], "an unknown release is never taken: kopf's handlers look at it first"


def test_a_failed_look_is_retried_no_later_than_asked() -> None:
    table = DueTable()
    table.set("ns/a", seconds=0)
    assert table.take() == ["ns/a"]
    table.retry("ns/a", seconds=0)
    assert table.take() == ["ns/a"]
    table.forget("ns/a")
    table.retry("ns/a", seconds=0)
    assert table.take() == []


def test_wait_returns_at_the_earliest_due_time_or_when_woken() -> None:
    async def scenario() -> tuple[float, float]:
        table = DueTable()
        table.set("ns/a", seconds=0.2)
        await table.wait(at_most=0)  # a change wakes the waiter at once; clear it first
        started = time.monotonic()
        await table.wait(at_most=5)
        until_due = time.monotonic() - started
        table.set("ns/a", seconds=60)
        await table.wait(at_most=0)  # clears the change flag
        started = time.monotonic()
        asyncio.get_running_loop().call_later(0.1, table.wake, "ns/a")
        await table.wait(at_most=5)
        return until_due, time.monotonic() - started

    until_due, until_woken = asyncio.run(scenario())
    assert 0.1 <= until_due < 2, until_due
    assert until_woken < 2, until_woken
