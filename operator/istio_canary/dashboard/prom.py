"""The dashboard's Prometheus client: instant and range queries over HTTP (aiohttp)."""

from __future__ import annotations

from typing import Any

import aiohttp

__all__ = ["Prometheus", "PrometheusError"]


class PrometheusError(Exception):
    """Prometheus did not answer, or answered with an error; the page shows the charts empty."""


class Prometheus:
    """Queries ``base_url``'s HTTP API; one connection pool for the server's lifetime."""

    def __init__(self, base_url: str, *, timeout_seconds: float = 10.0) -> None:
        self._base = base_url.rstrip("/")
        self._timeout = aiohttp.ClientTimeout(total=timeout_seconds)
        self._session: aiohttp.ClientSession | None = None

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    async def _get(self, path: str, params: dict[str, str]) -> list[dict[str, Any]]:
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=self._timeout)
        try:
            async with self._session.get(f"{self._base}{path}", params=params) as response:
                body = await response.json(content_type=None)
        except (aiohttp.ClientError, TimeoutError, ValueError) as error:
            raise PrometheusError(f"Prometheus did not answer: {type(error).__name__}") from None
        if not isinstance(body, dict) or body.get("status") != "success":
            detail = body.get("error") if isinstance(body, dict) else ""
            raise PrometheusError(f"Prometheus answered an error: {detail}")
        return list(body.get("data", {}).get("result") or [])

    async def query(self, query: str, *, time: float) -> list[dict[str, Any]]:
        """An instant vector."""
        return await self._get("/api/v1/query", {"query": query, "time": f"{time:.3f}"})

    async def query_range(self, query: str, *, start: float, end: float, step: float) -> list[dict[str, Any]]:
        """A matrix: one series per label set, ``values`` of [time, "value"]."""
        params = {"query": query, "start": f"{start:.3f}", "end": f"{end:.3f}", "step": f"{step:g}"}
        return await self._get("/api/v1/query_range", params)
