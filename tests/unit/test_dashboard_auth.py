"""The dashboard's sessions and the reviews it asks of the API server (pure parts)."""

from __future__ import annotations

import itertools

import pytest
from istio_canary.dashboard import access
from istio_canary.dashboard.sessions import Session, Sessions, User

ALICE = User(username="alice", uid="42", groups=("dev", "system:authenticated"), extra={"scopes": ["a"]})


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def sessions(clock: Clock) -> Sessions:
    counter = itertools.count()
    return Sessions(ttl_seconds=60, clock=clock, new_secret=lambda: f"secret-{next(counter)}")


class TestSessions:
    def test_a_session_is_found_by_its_id_until_it_expires(self) -> None:
        clock = Clock()
        store = sessions(clock)
        session_id, session = store.open(token="tok", user=ALICE)
        assert store.get(session_id) is session
        clock.now += 61
        assert store.get(session_id) is None
        assert len(store) == 0

    def test_an_unknown_or_missing_id_finds_nothing_and_closing_signs_out(self) -> None:
        store = sessions(Clock())
        session_id, _ = store.open(token="tok", user=ALICE)
        assert store.get("guess") is None and store.get(None) is None and store.get("") is None
        store.close(session_id)
        assert store.get(session_id) is None

    def test_the_session_id_and_the_csrf_token_are_distinct_secrets(self) -> None:
        session_id, session = sessions(Clock()).open(token="tok", user=ALICE)
        assert session_id != session.csrf

    def test_the_token_is_not_in_the_repr(self) -> None:
        _, session = sessions(Clock()).open(token="very-secret-token", user=ALICE)
        assert "very-secret-token" not in repr(session)

    @pytest.mark.parametrize(("candidate", "matches"), [("csrf", True), ("csrX", False), ("", False), (None, False)])
    def test_the_csrf_token_must_match_exactly(self, candidate: str | None, matches: bool) -> None:
        session = Session(user=ALICE, csrf="csrf", expires_at=0, token="t")
        assert session.csrf_matches(candidate) is matches

    def test_expired_sessions_are_dropped_when_another_signs_in(self) -> None:
        clock = Clock()
        store = sessions(clock)
        store.open(token="a", user=ALICE)
        clock.now += 120
        store.open(token="b", user=ALICE)
        assert len(store) == 1


class TestReviews:
    def test_a_subject_access_review_names_the_user_with_groups_uid_and_extra(self) -> None:
        body = access.review_body(ALICE, access.patch_check("bookinfo", "reviews"))
        assert body["kind"] == "SubjectAccessReview"
        assert body["spec"] == {
            "user": "alice",
            "uid": "42",
            "groups": ["dev", "system:authenticated"],
            "extra": {"scopes": ["a"]},
            "resourceAttributes": {
                "verb": "patch",
                "group": "releases.istio-canary.io",
                "resource": "canaryreleases",
                "namespace": "bookinfo",
                "name": "reviews",
            },
        }

    def test_each_page_asks_its_own_verb(self) -> None:
        assert (access.list_check("ns").verb, access.read_check("ns", "r").verb) == ("list", "get")
        events = access.events_check("ns")
        assert (events.verb, events.resource, events.group) == ("list", "events", "")

    @pytest.mark.parametrize(
        ("status", "answer"),
        [
            ({"allowed": True}, True),
            ({"allowed": False}, False),
            ({"allowed": True, "denied": True}, False),
            ({}, False),
        ],
    )
    def test_only_an_allowed_and_not_denied_answer_is_a_yes(self, status: dict[str, bool], answer: bool) -> None:
        assert access.allowed({"status": status}) is answer

    def test_an_authenticated_token_review_gives_the_user(self) -> None:
        review = {"status": {"authenticated": True, "user": {"username": "alice", "uid": "42",
                  "groups": ["dev", "system:authenticated"], "extra": {"scopes": ["a"]}}}}  # fmt: skip
        assert access.user_from_token_review(review) == ALICE

    @pytest.mark.parametrize(
        "status",
        [{"authenticated": False, "user": {"username": "alice"}}, {"authenticated": True, "user": {}}, {}],
    )
    def test_an_unauthenticated_token_review_gives_no_user(self, status: dict[str, object]) -> None:
        assert access.user_from_token_review({"status": status}) is None
