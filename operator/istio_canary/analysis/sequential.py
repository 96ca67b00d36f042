"""Always-valid one-sided tests of a binomial proportion: mixtures of likelihood ratios.

The judge looks at the metrics every interval, as often as it likes, and must stop as soon
as the evidence is clear. A fixed-sample test (a p-value computed at every look) would be
wrong ever more often the more it looks; a *test martingale* is not. For ``k`` events in
``n`` trials and a null proportion ``p0``, the likelihood ratio of an alternative ``p1``

    LR(p1) = (p1 / p0) ** k * ((1 - p1) / (1 - p0)) ** (n - k)

has expectation at most 1 at every ``n`` when the true proportion lies on the null's side
of ``p0`` (it is a nonnegative supermartingale). So is any weighted average of them, the
*mixture* ``E = sum_j w_j LR(p_j)`` with ``sum_j w_j = 1``. Ville's inequality then bounds
the chance that ``E`` *ever* reaches ``1 / alpha`` by ``alpha``: rejecting the null when it
does is a test with level ``alpha`` however often, and whenever, one looks. This is Wald's
SPRT with the single known alternative replaced by a mixture over a grid of alternatives
(Robbins' method of mixtures), because the judge does not know how bad a canary is. The
mixture pays ``log(1 / w_j)`` of evidence for not knowing, against the component closest
to the truth, and nothing else.

Alternatives are spaced by odds ratio ``r``: ``odds(p_j) = r_j * odds(p0)``. For the judge's
conditional test of error counts (canary versus stable), ``r`` is exactly the ratio of the
canary's error rate to stable's, which is how people talk about a bad canary ("10x the
errors").

Everything here is pure and returns natural logarithms of the evidence ("log e-values").
"""

from __future__ import annotations

import math
from collections.abc import Sequence

__all__ = [
    "BETTER_ODDS_RATIOS",
    "WORSE_ODDS_RATIOS",
    "log_evidence_above",
    "log_evidence_below",
    "log_likelihood_ratios",
    "log_mix",
]

# Alternatives for "the canary is worse". The grid runs from "a bit worse" to "all its
# requests fail"; the weights lean on the large ratios because a clearly bad canary is the
# case where every request counts (it must be stopped after a handful of failures), while a
# mildly bad one is caught a little later by the small ratios. See docs/analysis.md for the
# measured cost against Wald's SPRT, which knows the true rates.
WORSE_ODDS_RATIOS: tuple[tuple[float, float], ...] = (
    (1.5, 0.05),
    (2.0, 0.05),
    (3.0, 0.05),
    (5.0, 0.10),
    (10.0, 0.15),
    (30.0, 0.15),
    (100.0, 0.15),
    (1000.0, 0.30),
)
"""``(odds ratio, weight)`` pairs above 1; weights sum to 1."""

# Alternatives for "the rate is below the bound": the smallest ratio stands for "no events
# at all", which is what a healthy canary usually shows.
BETTER_ODDS_RATIOS: tuple[tuple[float, float], ...] = (
    (0.9, 0.1),
    (0.8, 0.15),
    (0.6, 0.1),
    (0.4, 0.1),
    (0.2, 0.1),
    (0.1, 0.15),
    (0.01, 0.3),
)
"""``(odds ratio, weight)`` pairs below 1; weights sum to 1."""


def log_likelihood_ratios(
    *, events: int, trials: int, p0: float, grid: Sequence[tuple[float, float]]
) -> tuple[float, ...]:
    """The log likelihood ratio of each alternative of ``grid`` against ``p0``, unweighted.

    Kept apart from the mixture so that a test can run over several stretches of data (the
    steps of a release, each at its own canary share): the products of each alternative's
    ratios, mixed with :func:`log_mix` only at the end, are one test martingale over all of
    them. A mixture of mixtures would not be.
    """
    _check(events, trials)
    if trials == 0 or not 0.0 < p0 < 1.0:
        return tuple(0.0 for _ in grid)
    # With p1 = r p0 / (1 - p0 + r p0): p1 / p0 = r / d and (1 - p1) / (1 - p0) = 1 / d, where
    # d = 1 + (r - 1) p0. Written so, no ratio is formed of numbers that round to 0 or 1 (a
    # canary share of 1 - 1e-14 would make 1 - p1 exactly 0).
    return tuple(
        events * math.log(odds_ratio) - trials * math.log1p((odds_ratio - 1.0) * p0) for odds_ratio, _weight in grid
    )


def log_mix(log_ratios: Sequence[float], grid: Sequence[tuple[float, float]]) -> float:
    """``log(sum_j w_j * exp(log_ratios[j]))``: the mixture's log evidence, computed stably."""
    if len(log_ratios) != len(grid):
        raise ValueError(f"{len(log_ratios)} log ratios for {len(grid)} alternatives")
    terms = [math.log(weight) + r for (_odds, weight), r in zip(grid, log_ratios, strict=True)]
    top = max(terms)
    if math.isinf(top):
        return top
    return top + math.log(sum(math.exp(t - top) for t in terms))


def _log_mixture(*, events: int, trials: int, p0: float, grid: Sequence[tuple[float, float]]) -> float:
    return log_mix(log_likelihood_ratios(events=events, trials=trials, p0=p0, grid=grid), grid)


def _check(events: int, trials: int) -> None:
    if trials < 0 or not 0 <= events <= trials:
        raise ValueError(f"need 0 <= events <= trials, got {events} events in {trials} trials")


def log_evidence_above(
    *, events: int, trials: int, p0: float, grid: Sequence[tuple[float, float]] = WORSE_ODDS_RATIOS
) -> float:
    """Log evidence against "the proportion is at most ``p0``" from ``events`` in ``trials``.

    Reject at level ``alpha`` when the result reaches ``log(1 / alpha)``. It is 0 before any
    trial, grows with every event and shrinks with every non-event.

    >>> log_evidence_above(events=0, trials=0, p0=0.1)
    0.0
    >>> log_evidence_above(events=5, trials=5, p0=0.1) > math.log(100)
    True
    """
    _check(events, trials)
    if trials == 0:
        return 0.0
    if p0 <= 0.0:
        return math.inf if events else 0.0
    if p0 >= 1.0:
        return 0.0
    return _log_mixture(events=events, trials=trials, p0=p0, grid=grid)


def log_evidence_below(
    *, events: int, trials: int, p0: float, grid: Sequence[tuple[float, float]] = BETTER_ODDS_RATIOS
) -> float:
    """Log evidence against "the proportion is at least ``p0``" from ``events`` in ``trials``.

    The mirror image of :func:`log_evidence_above`: it grows with every trial without an
    event. A bound ``p0 >= 1`` holds trivially (infinite evidence); ``p0 <= 0`` never can.
    """
    _check(events, trials)
    if p0 >= 1.0:
        return math.inf
    if trials == 0 or p0 <= 0.0:
        return 0.0
    return _log_mixture(events=events, trials=trials, p0=p0, grid=grid)
