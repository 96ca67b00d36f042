"""``kubectl canary``: look at CanaryReleases and change them from a terminal.

Every verb only patches a field of the spec (a JSON merge patch), so whatever a person does
here a GitOps commit can do too, and the operator alone acts on the cluster. Pure functions
build the patches (``patches``) and render the views (``views``); ``command`` is the thin
I/O part that reads the kubeconfig and calls the API server.
"""

from istio_canary.plugin.command import main

__all__ = ["main"]
