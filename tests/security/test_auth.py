"""Authentication, roles, tenant grants, public types and the audit log (both backends)."""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import jwt
import pytest
from starlette.applications import Starlette
from tests.conftest import running_app

from agilecity.app import OPEN_MODE_WARNING
from agilecity.auth import Credentials, check_password, hash_password
from agilecity.settings import Settings

BASE = "/ngsi-ld/v1"
SPOT = {"id": "urn:ngsi-ld:ParkingSpot:p1", "type": "ParkingSpot",
        "status": {"type": "Property", "value": "free"}}  # fmt: skip
METER = {"id": "urn:ngsi-ld:SmartMeteringObservation:m1", "type": "SmartMeteringObservation",
         "totalConsumption": {"type": "Property", "value": 1234.5}}  # fmt: skip
SECRET = "a-test-secret-that-is-long-enough-for-hs256"


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
async def secured(
    settings_factory: Callable[..., Settings],
) -> AsyncIterator[tuple[Starlette, httpx.AsyncClient, dict[str, str]]]:
    """A platform with auth on, one key per role (default tenant; admin: all tenants), and a
    public and a private entity."""
    async with running_app(settings_factory(auth=True, auth_jwt_secret=SECRET)) as (app, client):
        credentials: Credentials = app.state.credentials
        keys = {}
        for role in ("admin", "manager", "operator", "device"):
            _, keys[role] = await credentials.create_key(
                role, ["*"] if role == "admin" else [""], f"{role}-key"
            )
        for entity in (SPOT, METER):
            r = await client.post(f"{BASE}/entities", json=entity, headers=bearer(keys["admin"]))
            assert r.status_code == 201, r.text
        yield app, client, keys


async def test_the_public_reads_public_types_only(
    secured: tuple[Starlette, httpx.AsyncClient, dict[str, str]],
) -> None:
    _, client, _ = secured
    r = await client.get(f"{BASE}/entities", params={"type": "ParkingSpot"})
    assert r.status_code == 200 and [e["id"] for e in r.json()] == [SPOT["id"]]
    # no type, an OR of types, idPattern: private types never show
    for params in ({"idPattern": ".*"}, {"type": "ParkingSpot,SmartMeteringObservation"},
                   {"attrs": "totalConsumption"}):  # fmt: skip
        r = await client.get(f"{BASE}/entities", params=params)
        assert r.status_code == 200, r.text
        assert METER["id"] not in [e["id"] for e in r.json()], params
    assert (await client.get(f"{BASE}/entities/{METER['id']}")).status_code == 404
    assert (await client.get(f"{BASE}/entities/{SPOT['id']}")).status_code == 200
    body = {"type": "Query", "entities": [{"type": "SmartMeteringObservation"}]}
    r = await client.post(f"{BASE}/entityOperations/query", json=body)
    assert r.status_code == 200 and r.json() == []
    types = (await client.get(f"{BASE}/types")).json()["typeList"]
    assert types == ["ParkingSpot"]
    assert (await client.get(f"{BASE}/types/SmartMeteringObservation")).status_code == 404
    assert (await client.get(f"{BASE}/temporal/entities/{METER['id']}")).status_code == 404
    r = await client.get(f"{BASE}/temporal/entities", params={"idPattern": ".*"})
    assert r.status_code == 200 and [e["id"] for e in r.json()] == [SPOT["id"]]
    for path in (f"{BASE}/attributes", f"{BASE}/subscriptions", "/audit"):
        r = await client.get(path)
        assert r.status_code == 401, path
        assert r.headers["www-authenticate"].startswith("Bearer")
        assert r.json()["type"] == "about:blank" and r.json()["status"] == 401


async def test_a_context_cannot_rename_a_private_type_into_a_public_one(
    secured: tuple[Starlette, httpx.AsyncClient, dict[str, str]],
) -> None:
    _, client, keys = secured
    private_iri = "https://uri.etsi.org/ngsi-ld/default-context/SmartMeteringObservation"
    context = {"@context": {"ParkingSpot": private_iri}}
    r = await client.post(f"{BASE}/jsonldContexts", json=context, headers=bearer(keys["admin"]))
    assert r.status_code == 201, r.text
    link = f'<{r.headers["location"]}>; rel="http://www.w3.org/ns/json-ld#context"'
    hosted = (await client.get(r.headers["location"].replace("http://test", ""))).status_code
    assert hosted == 200
    r = await client.get(f"{BASE}/entities", params={"type": "ParkingSpot"}, headers={"Link": link})
    assert r.status_code == 200, r.text
    assert r.json() == []  # the term now names the meter type, which the public may not see


async def test_writes_need_a_role_and_roles_are_enforced(
    secured: tuple[Starlette, httpx.AsyncClient, dict[str, str]],
) -> None:
    _, client, keys = secured
    new = {"id": "urn:ngsi-ld:ParkingSpot:p2", "type": "ParkingSpot"}
    r = await client.post(f"{BASE}/entities", json=new)
    assert r.status_code == 401 and r.headers["www-authenticate"].startswith("Bearer")
    assert (await client.get(f"{BASE}/entities/urn:ngsi-ld:ParkingSpot:p2")).status_code == 404
    subscription = {"type": "Subscription", "entities": [{"type": "ParkingSpot"}],
                    "notification": {"endpoint": {"uri": "http://127.0.0.1:9/n"}}}  # fmt: skip
    patch = {"status": {"type": "Property", "value": "occupied"}}
    cases: list[tuple[str, str, str, Any, int]] = [
        ("device", "POST", f"{BASE}/entities", new, 403),
        ("device", "GET", f"{BASE}/entities?type=ParkingSpot", None, 403),
        ("device", "PATCH", f"{BASE}/entities/{SPOT['id']}/attrs", patch, 204),
        ("operator", "POST", f"{BASE}/subscriptions", subscription, 403),
        ("operator", "GET", f"{BASE}/subscriptions", None, 200),
        ("operator", "GET", "/audit", None, 403),
        ("operator", "POST", f"{BASE}/entities", new, 201),
        ("manager", "POST", f"{BASE}/subscriptions", subscription, 201),
        ("manager", "GET", f"{BASE}/entities/{METER['id']}", None, 200),
        ("operator", "DELETE", f"{BASE}/entities/{new['id']}", None, 204),
    ]
    for role, method, path, body, status in cases:
        r = await client.request(method, path, json=body, headers=bearer(keys[role]))
        assert r.status_code == status, (role, method, path, r.text)


async def test_tenant_grants(
    secured: tuple[Starlette, httpx.AsyncClient, dict[str, str]],
) -> None:
    _, client, keys = secured
    roubaix = {**bearer(keys["operator"]), "NGSILD-Tenant": "roubaix"}
    r = await client.post(f"{BASE}/entities", json=SPOT, headers=roubaix)
    assert r.status_code == 403 and "tenant" in r.json()["detail"]
    admin = {**bearer(keys["admin"]), "NGSILD-Tenant": "roubaix"}
    assert (await client.post(f"{BASE}/entities", json=METER, headers=admin)).status_code == 201
    r = await client.get(f"{BASE}/entities/{METER['id']}", headers=roubaix)
    assert r.status_code == 403  # reading a tenant's private data needs its grant too


async def test_bad_credentials_are_refused_even_where_public(
    secured: tuple[Starlette, httpx.AsyncClient, dict[str, str]],
) -> None:
    app, client, keys = secured
    path = f"{BASE}/entities?type=ParkingSpot"
    for headers in ({"Authorization": "Basic dXNlcjpwdw=="}, {"Authorization": "Bearer "},
                    bearer("ack_000000000000_forged"), bearer(keys["admin"] + "x"),
                    bearer("not.a.jwt"), {"X-Api-Key": "ack_nope_nope"}):  # fmt: skip
        r = await client.get(path, headers=headers)
        assert r.status_code == 401, headers
    credentials: Credentials = app.state.credentials
    (listed,) = [k for k in await credentials.list_keys() if k["name"] == "operator-key"]
    assert "hash" not in listed and keys["operator"] not in str(listed)
    assert (await client.get(f"{BASE}/subscriptions", headers=bearer(keys["operator"]))).is_success
    await credentials.revoke_key(listed["id"])
    r = await client.get(f"{BASE}/subscriptions", headers=bearer(keys["operator"]))
    assert r.status_code == 401


def _jwt(claims: dict[str, Any], secret: str = SECRET) -> str:
    return jwt.encode({"sub": "marie", "exp": int(time.time()) + 60, **claims}, secret, "HS256")


async def test_jwt_bearer_tokens(
    secured: tuple[Starlette, httpx.AsyncClient, dict[str, str]],
) -> None:
    _, client, _ = secured
    operator = _jwt({"roles": ["operator"], "tenants": [""]})
    r = await client.get(f"{BASE}/subscriptions", headers=bearer(operator))
    assert r.status_code == 200
    keycloak = _jwt({"realm_access": {"roles": ["manager", "offline_access"]}})
    body = {"type": "Subscription", "entities": [{"type": "ParkingSpot"}],
            "notification": {"endpoint": {"uri": "http://127.0.0.1:9/n"}}}  # fmt: skip
    r = await client.post(f"{BASE}/subscriptions", json=body, headers=bearer(keycloak))
    assert r.status_code == 201, r.text
    refused = [
        _jwt({"roles": ["operator"]}, secret="another-secret-of-enough-length-for-hs256"),
        _jwt({"roles": ["operator"], "exp": int(time.time()) - 10}),
        _jwt({"roles": ["superuser"]}),  # no role of ours
        jwt.encode({"roles": ["admin"]}, SECRET, "HS256"),  # no exp, no sub
    ]
    for token in refused:
        r = await client.get(f"{BASE}/subscriptions", headers=bearer(token))
        assert r.status_code == 401, token


async def test_staff_sessions(
    secured: tuple[Starlette, httpx.AsyncClient, dict[str, str]],
) -> None:
    app, client, _ = secured
    credentials: Credentials = app.state.credentials
    await credentials.add_user("marie", "correct horse battery", "operator", [""])
    wrong = await client.post("/auth/login", json={"username": "marie", "password": "nope"})
    assert wrong.status_code == 401
    unknown = await client.post("/auth/login", json={"username": "zoe", "password": "x" * 12})
    assert unknown.status_code == 401
    r = await client.post(
        "/auth/login", json={"username": "marie", "password": "correct horse battery"}
    )
    assert r.status_code == 200 and r.json()["role"] == "operator"
    cookie = r.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie
    assert (await client.get(f"{BASE}/subscriptions")).status_code == 200  # the cookie is kept
    new = {"id": "urn:ngsi-ld:ParkingSpot:p3", "type": "ParkingSpot"}
    r = await client.post(f"{BASE}/entities", json=new, headers={"Origin": "http://evil.example"})
    assert r.status_code == 403  # a cross-site write with the cookie
    r = await client.post(f"{BASE}/entities", json=new, headers={"Origin": "http://test"})
    assert r.status_code == 201
    assert (await client.post("/auth/logout")).status_code == 204
    client.cookies.clear()
    assert (await client.get(f"{BASE}/subscriptions")).status_code == 401


async def test_audit_log(secured: tuple[Starlette, httpx.AsyncClient, dict[str, str]]) -> None:
    _, client, keys = secured
    patch = {"status": {"type": "Property", "value": "occupied"}}
    path = f"{BASE}/entities/{SPOT['id']}/attrs"
    assert (await client.patch(path, json=patch, headers=bearer(keys["device"]))).is_success
    assert (await client.patch(path, json=patch)).status_code == 401
    r = await client.get("/audit", headers=bearer(keys["admin"]), params={"limit": 10})
    assert r.status_code == 200
    entries = r.json()
    assert entries[0]["actor"] == "anonymous" and entries[0]["status"] == 401
    assert entries[1] == {**entries[1], "actor": "key:device-key", "role": "device",
                          "method": "PATCH", "path": path, "status": 204, "tenant": ""}  # fmt: skip
    creations = [e for e in entries if e["method"] == "POST" and e["path"] == f"{BASE}/entities"]
    assert len(creations) == 2 and {e["actor"] for e in creations} == {"key:admin-key"}
    r = await client.get("/audit", headers=bearer(keys["admin"]), params={"actor": "anonymous"})
    assert [e["status"] for e in r.json()] == [401]
    assert all(e["method"] != "GET" for e in entries)  # reads are not audited


async def test_open_mode_says_so(
    settings_factory: Callable[..., Settings], caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="agilecity"):
        async with running_app(settings_factory(auth=False)) as (_, client):
            r = await client.post(f"{BASE}/entities", json=METER)
            assert r.status_code == 201
            assert (await client.get(f"{BASE}/entities/{METER['id']}")).status_code == 200
    assert OPEN_MODE_WARNING in caplog.text


def test_passwords_are_salted_scrypt_hashes() -> None:
    first, second = hash_password("correct horse battery"), hash_password("correct horse battery")
    assert first != second and "correct" not in first and first.startswith("scrypt$")
    assert check_password("correct horse battery", first)
    assert not check_password("correct horse batterY", first)
    assert not check_password("anything", "garbage")
