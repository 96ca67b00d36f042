"""The web dashboard: releases, their charts and the namespace's topology, steered by the
signed-in user's own Kubernetes rights.

Kubernetes does the authentication and the authorisation: a user signs in with a bearer token,
which ``TokenReview`` turns into a user, and every read and action is asked of the API server
with a ``SubjectAccessReview`` for that user first; actions are then sent with the user's own
token, so RBAC is applied twice and the audit log names the user. The token stays in the
server's memory, behind a random session id in an HttpOnly, SameSite=Strict cookie.

Pure parts: ``sessions`` (who is signed in), ``access`` (which review each request needs),
``views`` (release rows, timeline, verdicts), ``series`` (PromQL and chart series) and
``topology`` (the graph). I/O: ``kube`` (the API server), ``prom`` (Prometheus), and the
aiohttp application in ``server`` and ``api``. The operator never imports this package.
"""

__all__: list[str] = []
