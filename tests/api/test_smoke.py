"""The health and version endpoints answer once the store is open."""

from __future__ import annotations

import httpx

from agilecity import __version__


async def test_health_is_ok_once_ready(client: httpx.AsyncClient) -> None:
    response = await client.get("/health")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


async def test_version_names_the_package(client: httpx.AsyncClient) -> None:
    response = await client.get("/version")
    assert response.json()["version"] == __version__
