"""Hypothesis strategies for CanaryRelease specs and spec edits: valid, nearly valid and hostile.

``hostile_edits`` never yields an edit that a correct API server and operator should act on: each
one changes an immutable field, breaks a type or a range, names a value outside an enum, carries
a regex RE2 refuses, nests deeply or adds a field the schema does not know. ``release_specs``
yields whole specs for new releases, some valid, all aimed at a Service that is already in a
release or that does not exist, so that none of them may move traffic either.
"""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

__all__ = ["BAD_REGEXES", "BASE_SPEC", "hostile_edits", "release_names", "release_specs"]

BASE_SPEC: dict[str, Any] = {
    "service": "reviews",
    "stable": {"version": "v1"},
    "canary": {"version": "v2", "image": "example.com/bookinfo/reviews:v2"},
    "strategy": "Canary",
    "traffic": {"weight": 30},
}
# Go's regexp (Istio's webhook) or RE2 (Envoy, the operator) refuse every one of these.
BAD_REGEXES = ("(?=x)", "(?!x)y", "(a)\\1", "(unclosed", "[z-a]", "a{2,1}", "(?<=a)b", "x**", "\\", "a{1001}")

json_scalars = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=30),
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=12,
)
# Long strings cheaply: one character repeated, up to the API server's request size region.
huge_text = st.builds(lambda char, n: char * n, st.characters(), st.integers(min_value=300, max_value=200_000))
unicode_text = st.text(alphabet=st.characters(min_codepoint=0x80, max_codepoint=0x10FFFF, exclude_categories=["Cs"]),
                       min_size=1, max_size=40)
odd_text = st.one_of(st.text(min_size=1, max_size=40), huge_text, unicode_text)
not_a_number = st.one_of(st.text(max_size=10), st.lists(st.integers(), max_size=2), st.booleans(),
                         st.dictionaries(st.text(max_size=4), st.integers(), max_size=2),
                         st.floats(allow_nan=False, allow_infinity=False).filter(lambda x: not float(x).is_integer()))
out_of_percent = st.one_of(st.integers(max_value=-1), st.integers(min_value=101, max_value=2**62))


def _nested(depth: int, leaf: Any) -> Any:
    value = leaf
    for level in range(depth):
        value = {"n": value} if level % 2 else [value]
    return value


deeply_nested = st.builds(_nested, st.integers(min_value=20, max_value=400), json_scalars)


def _other_than(current: str) -> st.SearchStrategy[str]:
    return odd_text.filter(lambda s: s != current)


POLICIES = ("WaitForWorkloadReady", "Immediately", "Paused")
NESTED_FIELDS = ("traffic", "stable", "canary", "analysis", "routing")


def hostile_edits() -> st.SearchStrategy[dict[str, Any]]:
    """Merge patches of the live release's spec that must change nothing in the mesh."""
    return st.one_of(
        st.builds(lambda s: {"service": s}, _other_than("reviews")),
        st.builds(lambda s: {"stable": {"version": s}}, _other_than("v1")),
        st.builds(lambda s: {"canary": {"version": s}}, _other_than("v2")),
        st.just({"routing": {"mode": "Services"}}),
        st.builds(lambda w: {"traffic": {"weight": w}}, st.one_of(not_a_number, out_of_percent)),
        st.builds(lambda w: {"traffic": {"mirrorPercent": w}}, st.one_of(not_a_number, out_of_percent)),
        st.builds(lambda s: {"strategy": s}, odd_text.filter(lambda s: s not in ("Canary", "BlueGreen", "Mirror"))),
        st.builds(lambda s: {"policy": s}, odd_text.filter(lambda s: s not in POLICIES)),
        st.builds(lambda s: {"takeOver": s}, odd_text.filter(lambda s: s not in ("", "v1", "v2"))),
        st.just({"offline": True}),  # without takeOver
        st.builds(lambda v: {"abort": v}, st.one_of(st.text(max_size=5), st.integers(), st.lists(st.booleans()))),
        st.builds(_regex_edit, st.sampled_from(BAD_REGEXES), st.sampled_from(("header", "uri", "cookie"))),
        # A list where an object belongs: refused. (An object would not be: the API server prunes
        # its unknown fields, and `analysis: {}` left over is a valid request for an analysis.)
        st.builds(lambda k, v: {k: [v]}, st.sampled_from(NESTED_FIELDS), deeply_nested),
        st.builds(lambda k, v: {f"x{k}": v}, st.text(max_size=20), json_values),  # a field nobody defined
        # Not null: a merge patch with null removes traffic, a valid edit (back to the defaults).
        st.builds(lambda v: {"traffic": v}, st.one_of(json_scalars.filter(lambda v: v is not None),
                                                      st.lists(json_scalars))),
    )


def _regex_edit(regex: str, where: str) -> dict[str, Any]:
    rules: dict[str, dict[str, Any]] = {
        "header": {"headers": {"end-user": {"regex": regex}}},
        "uri": {"uri": {"regex": regex}},
        "cookie": {"cookie": {"name": "canary", "value": {"regex": regex}}},
    }
    rule = rules[where]
    return {"traffic": {"match": [rule]}}


def release_names() -> st.SearchStrategy[str]:
    """Mostly valid object names; now and then one the API server must refuse."""
    valid = st.from_regex(r"\Afuzz-[a-z0-9]{1,12}\Z")
    return st.one_of(valid, valid, valid, st.text(min_size=1, max_size=20), huge_text)


def release_specs() -> st.SearchStrategy[dict[str, Any]]:
    """Whole specs for a new release of a Service already in a release, or of one that does not exist."""
    service = st.one_of(st.just("reviews"), st.from_regex(r"\Anosuch-[a-z]{1,8}\Z"))
    good_match = st.lists(st.fixed_dictionaries({"headers": st.just({"end-user": {"exact": "jason"}})}), max_size=2)
    traffic: st.SearchStrategy[tuple[str, dict[str, Any]]] = st.one_of(
        st.tuples(st.just("Canary"), st.fixed_dictionaries({"weight": st.integers(0, 100), "match": good_match})),
        st.tuples(st.just("BlueGreen"), st.just({})),
        st.tuples(st.just("Mirror"), st.fixed_dictionaries({"mirrorPercent": st.integers(0, 100)})),
    )
    valid = st.builds(lambda svc, split: {**BASE_SPEC, "service": svc, "strategy": split[0], "traffic": split[1]},
                      service, traffic)
    hostile = st.builds(_merged, valid, hostile_edits())
    return st.one_of(valid, valid, hostile, st.dictionaries(st.text(max_size=10), json_values, max_size=4))


def _merged(base: dict[str, Any], edit: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in edit.items():
        out[key] = {**out[key], **value} if isinstance(out.get(key), dict) and isinstance(value, dict) else value
    return out
