"""The state machine: every phase transition of a CanaryRelease, decided by pure functions.

``decide`` takes the spec, what the cluster holds now, the analysis verdict and the time, and
returns the phase plus the ordered writes that move the cluster towards the spec. It reads no
clock and calls no API, so a reconcile that is killed half-way is simply decided again by the
next operator process from what it finds (restart safety by construction).

Ordering rules the actions follow, because Envoy answers 503 for a subset it does not know and
the Service's selector matches the canary's pods too:

* routes pin traffic to stable *before* the canary Deployment exists;
* a DestinationRule gains a subset before a VirtualService points at it, and a VirtualService
  stops pointing at a subset before the DestinationRule loses it;
* a version that loses its traffic is removed only after the drain (``cleanup.drain``);
* on abort the canary is removed while routes still pin stable, and the user's original
  routing comes back only once the canary is gone.

Modules: ``dispatch`` (which part applies), ``progress`` (the split, analysis, take over),
``offline`` (job offline), ``teardown`` (abort, rollback, delete), ``cleanup`` (drains,
HPA/PDB copies, the hand-over), ``resolve`` (finding the workloads), ``routing`` (the plan and
the routing objects), ``failures`` (decisions for errors), ``model`` (the values).
"""

from istio_canary.phases.dispatch import decide
from istio_canary.phases.failures import failed, refused
from istio_canary.phases.model import DEFAULT_DRAIN_SECONDS, Decision, Observed, ReleaseRef

__all__ = ["DEFAULT_DRAIN_SECONDS", "Decision", "Observed", "ReleaseRef", "decide", "failed", "refused"]
