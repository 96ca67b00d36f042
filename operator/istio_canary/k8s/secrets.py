"""Credentials from a Secret in a release's own namespace, read just before they are used.

Only ``get`` of one named Secret: the operator never lists or watches Secrets, so it keeps none
in memory between looks and needs no more than ``get`` (the chart grants it only when releases
may name their own Prometheus, and ``rbac.secretNames`` can narrow it to a few names). Nothing
read here is logged or written anywhere: errors name the Secret and its keys, never a value.
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

import urllib3
from kubernetes import client
from kubernetes.client.rest import ApiException

from istio_canary import errors, outbound

__all__ = ["SECRET_RBAC_HINT", "read_credentials"]

SECRET_RBAC_HINT = (
    "the Helm chart grants get on Secrets only with outbound.allowReleasePrometheusUrls=true, and "
    "only the Secrets named in rbac.secretNames when it is set"
)


def read_credentials(api: client.ApiClient, *, namespace: str, name: str) -> outbound.Credentials:
    """Key ``token`` (a bearer token), or keys ``username`` and ``password`` (basic auth), and/or
    ``ca.crt`` (PEM certificates to trust).

    A missing Secret or key, or a Secret the operator may not read, is a
    :class:`~istio_canary.errors.CredentialsError` (the release is Failed until it is fixed);
    an API server that does not answer is :class:`~istio_canary.errors.ApiUnavailableError`.
    """
    where = f"Secret {name} in namespace {namespace} (analysis.prometheusAuth)"
    try:
        response = client.CoreV1Api(api).read_namespaced_secret(name, namespace, _preload_content=False)
        body: dict[str, Any] = json.loads(response.data)
    except ApiException as err:
        if err.status == 404:
            raise errors.CredentialsError(f"{where} does not exist") from None
        if err.status == 403:
            raise errors.CredentialsError(f"the operator may not read {where}: {SECRET_RBAC_HINT}") from None
        raise errors.ApiUnavailableError(f"the API server did not return {where} (HTTP {err.status})") from None
    except (OSError, urllib3.exceptions.HTTPError, ValueError):
        raise errors.ApiUnavailableError(f"the API server did not return {where}") from None
    data = body.get("data") or {}
    values = {
        key: _decoded(data[key], key=key, where=where)
        for key in ("token", "username", "password", "ca.crt")
        if key in data
    }
    return outbound.credentials_from(values, where=where)


def _decoded(value: Any, *, key: str, where: str) -> str:
    try:
        # Written with `kubectl create secret --from-file`, a token often ends in a newline.
        return base64.b64decode(str(value), validate=True).decode("utf-8").strip()
    except (binascii.Error, UnicodeDecodeError):
        raise errors.CredentialsError(f"key {key} of {where} is not UTF-8 text") from None
