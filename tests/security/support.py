"""Helpers shared by the security tests: ProblemDetails checks and a digest of a store."""

from __future__ import annotations

import hashlib
from typing import Any

import httpx
import orjson

BASE = "/ngsi-ld/v1"
ERRORS = "https://uri.etsi.org/ngsi-ld/errors/"


def assert_problem(response: httpx.Response, status: int, error: str | None = None) -> str:
    """The response is a ProblemDetails with this status (and error type); its detail."""
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()
    assert isinstance(body.get("type"), str) and body["type"].startswith(ERRORS), body
    if error is not None:
        assert body["type"] == ERRORS + error, body
    assert isinstance(body.get("title"), str) and body["title"], body
    assert body.get("status") == status, body
    return str(body.get("detail", ""))


async def digest(client: httpx.AsyncClient, types: str, tenant: str = "") -> str:
    """A hash of every entity of these types (all pages, sysAttrs), to compare before/after."""
    headers = {"NGSILD-Tenant": tenant} if tenant else {}
    entities: list[Any] = []
    offset = 0
    while True:
        response = await client.get(
            f"{BASE}/entities",
            params={"type": types, "limit": "1000", "offset": str(offset), "options": "sysAttrs"},
            headers=headers,
        )
        if response.status_code == 404 and tenant:
            return "no tenant"
        assert response.status_code == 200, response.text
        page = response.json()
        entities.extend(page)
        if len(page) < 1000:
            break
        offset += 1000
    canonical = orjson.dumps(sorted(entities, key=lambda e: e["id"]), option=orjson.OPT_SORT_KEYS)
    return hashlib.sha256(canonical).hexdigest()
