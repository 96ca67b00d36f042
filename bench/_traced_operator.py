"""``istio-canary-operator`` with tracemalloc on: SIGUSR1 writes the largest live allocations.

For finding what holds the operator's memory in a benchmark::

    python bench/_traced_operator.py run --all-namespaces ...   # then: kill -USR1 <pid>

The report goes to the file named by ``ISTIO_CANARY_TRACEMALLOC_OUT`` (default
``tracemalloc.txt`` in the working directory). tracemalloc slows the process down and adds
its own memory, so RSS numbers come from untraced runs.
"""

from __future__ import annotations

import collections
import gc
import os
import signal
import sys
import tracemalloc
from types import FrameType

from istio_canary.cli import main

_OUT = os.environ.get("ISTIO_CANARY_TRACEMALLOC_OUT", "tracemalloc.txt")


def _dump(_signum: int, _frame: FrameType | None) -> None:
    # A census of live objects by type first: quick even on a large heap, and written at once.
    census = collections.Counter(type(o).__qualname__ for o in gc.get_objects())
    with open(_OUT, "w") as out:
        out.write(f"live objects tracked by gc: {sum(census.values())}\n")
        out.writelines(f"{n:9d} {name}\n" for name, n in census.most_common(30))
        out.flush()
        snapshot = tracemalloc.take_snapshot()
        stats = snapshot.statistics("lineno")
        total = sum(s.size for s in stats)
        out.write(f"\ntraced: {total / 2**20:.1f} MB\n== by line\n")
        out.writelines(
            f"{stat.size / 2**20:8.1f} MB {stat.count:9d} {stat.traceback[0]}\n"
            for stat in stats[:30]
        )


if __name__ == "__main__":
    tracemalloc.start(1)  # one frame: a snapshot of a large heap stays quick
    signal.signal(signal.SIGUSR1, _dump)
    sys.exit(main())
