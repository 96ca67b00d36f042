"""The release-wide tests: evidence that adds up from one step to the next. (pure)

Each of the judge's four tests (errors worse, latency slower, errors within the tolerance,
latency within it) is a mixture over alternatives ``j`` of likelihood ratios. Over a step, an
alternative's ratio is computed at that step's canary share; over the release, it is the
product of its steps' ratios. The product is still a test martingale under the null,
whatever the shares were, because each step's ratio has expectation at most 1 given
everything before it; so is the mixture of the products, ``sum_j w_j prod_steps LR_j``
(mixing each step first and multiplying the mixtures would not be). Ville's inequality then
holds over the whole release: the weight can change at every step and the evidence of
earlier steps still counts.

:class:`~istio_canary.models.analysis.Evidence` holds, per test, the logs of those products
for the steps already passed: what ``status.analysis.evidence`` keeps across restarts.
"""

from __future__ import annotations

from collections.abc import Sequence

from istio_canary.analysis import latency, sequential
from istio_canary.models.analysis import Evidence

__all__ = ["GRIDS", "best", "combine", "mixed"]

GRIDS: dict[str, tuple[tuple[float, float], ...]] = {
    "errors_worse": sequential.WORSE_ODDS_RATIOS,
    "latency_worse": latency.SLOWER_GRID,
    "errors_within": sequential.BETTER_ODDS_RATIOS,
    "latency_within": latency.WITHIN_GRID,
}
"""Each test's mixture, by the name of its field in :class:`Evidence`."""

_COUNTS = ("stable_requests", "stable_errors", "canary_requests", "canary_errors")


def combine(earlier: Evidence | None, step: Evidence) -> Evidence:
    """The evidence of ``earlier`` stretches followed by ``step``: log ratios and counts add up.

    A test that ``earlier`` has no numbers for (status written before the test existed, or
    with another mixture) starts from ``step``'s.
    """
    if earlier is None:
        return step
    fields: dict[str, object] = {}
    for name, grid in GRIDS.items():
        fields[name] = _add(getattr(earlier, name), getattr(step, name), len(grid))
    for name in _COUNTS:
        fields[name] = getattr(earlier, name) + getattr(step, name)
    return Evidence.model_validate(fields)


def mixed(evidence: Evidence, test: str) -> float:
    """The natural log of one test's mixture: reject its null at level alpha when >= log(1/alpha)."""
    grid = GRIDS[test]
    ratios: Sequence[float] = getattr(evidence, test)
    if len(ratios) != len(grid):
        return 0.0
    return sequential.log_mix(ratios, grid)


def best(evidence: Evidence, test: str) -> float:
    """The natural log of one test's strongest alternative alone: how far the evidence has come.

    Not a test (picking the best alternative after the fact is what the mixture pays to avoid):
    the ramp follows it to choose the weight, and only the mixture promotes.
    """
    ratios: Sequence[float] = getattr(evidence, test)
    return max(ratios) if len(ratios) == len(GRIDS[test]) else 0.0


def _add(earlier: list[float], step: list[float], size: int) -> list[float]:
    if len(step) != size:
        return list(earlier) if len(earlier) == size else []
    if len(earlier) != size:
        return list(step)
    return [a + b for a, b in zip(earlier, step, strict=True)]
