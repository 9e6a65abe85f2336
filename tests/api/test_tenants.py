"""Multi-tenancy through the NGSILD-Tenant header (clause 4.14, 6.3.14).

Tenants are fully isolated. A tenant comes into existence when an entity is first written
to it (the default tenant always exists); reading from any other tenant is a
NonexistentTenant error.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest

BASE = "/ngsi-ld/v1"
ERRORS = "https://uri.etsi.org/ngsi-ld/errors/"
BIN = "urn:ngsi-ld:Bin:001"


def tenant(name: str | bytes | None) -> dict[str, Any]:
    return {} if name is None else {"NGSILD-Tenant": name}


def waste_bin(fill: float, **extra: Any) -> dict[str, Any]:
    return {"id": BIN, "type": "Bin", "fill": {"type": "Property", "value": fill}, **extra}


async def create(client: httpx.AsyncClient, name: str | None, entity: dict[str, Any]) -> None:
    response = await client.post(f"{BASE}/entities", json=entity, headers=tenant(name))
    assert response.status_code == 201, response.text


def assert_problem(response: httpx.Response, status: int, error_type: str) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert body["type"] == ERRORS + error_type
    assert isinstance(body["title"], str) and body["title"]


async def get_ok(client: httpx.AsyncClient, path: str, name: str | None, **params: str) -> Any:
    response = await client.get(f"{BASE}{path}", params=params, headers=tenant(name))
    assert response.status_code == 200, response.text
    return response.json()


#: Every read operation, as (path, query parameters).
READS = [
    pytest.param(f"/entities/{BIN}", {}, id="retrieve"),
    pytest.param("/entities", {"type": "Bin"}, id="query"),
    pytest.param("/types", {}, id="types"),
    pytest.param("/types/Bin", {}, id="type-info"),
    pytest.param("/attributes", {}, id="attributes"),
    pytest.param("/attributes/fill", {}, id="attribute-info"),
]


async def test_entities_are_invisible_from_other_tenants(client: httpx.AsyncClient) -> None:
    await create(client, "roubaix", waste_bin(0.8))
    bench = {"id": "urn:ngsi-ld:Bench:001", "type": "Bench", "seats": 4}
    await create(client, "carouge", bench)

    for name in (None, "carouge"):
        missing = await client.get(f"{BASE}/entities/{BIN}", headers=tenant(name))
        assert_problem(missing, 404, "ResourceNotFound")
        assert await get_ok(client, "/entities", name, type="Bin") == []
        assert await get_ok(client, "/entities", name, attrs="fill") == []
        assert "Bin" not in (await get_ok(client, "/types", name))["typeList"]
        assert "fill" not in (await get_ok(client, "/attributes", name))["attributeList"]
        assert_problem(
            await client.get(f"{BASE}/types/Bin", headers=tenant(name)), 404, "ResourceNotFound"
        )

    assert (await get_ok(client, "/types", "carouge"))["typeList"] == ["Bench"]
    assert (await get_ok(client, "/types", "roubaix"))["typeList"] == ["Bin"]
    assert (await get_ok(client, f"/entities/{BIN}", "roubaix"))["fill"]["value"] == 0.8


async def test_the_default_tenant_is_invisible_from_named_tenants(
    client: httpx.AsyncClient,
) -> None:
    await create(client, None, waste_bin(0.1))
    await create(client, "carouge", {"id": "urn:ngsi-ld:Bench:001", "type": "Bench"})

    missing = await client.get(f"{BASE}/entities/{BIN}", headers=tenant("carouge"))

    assert_problem(missing, 404, "ResourceNotFound")
    assert await get_ok(client, "/entities", "carouge", type="Bin") == []
    assert (await get_ok(client, f"/entities/{BIN}", None))["fill"]["value"] == 0.1


async def test_the_same_id_can_hold_different_content_per_tenant(
    client: httpx.AsyncClient,
) -> None:
    await create(client, "roubaix", waste_bin(0.8, colour="green"))
    await create(client, "carouge", waste_bin(0.2))

    roubaix = await get_ok(client, f"/entities/{BIN}", "roubaix")
    carouge = await get_ok(client, f"/entities/{BIN}", "carouge")

    assert roubaix == waste_bin(0.8, colour={"type": "Property", "value": "green"})
    assert carouge == waste_bin(0.2)
    carouge_types = await get_ok(client, "/types/Bin", "carouge")
    assert [a["attributeName"] for a in carouge_types["attributeDetails"]] == ["fill"]


async def test_writes_stay_in_their_tenant(client: httpx.AsyncClient) -> None:
    await create(client, "roubaix", waste_bin(0.8))
    await create(client, "carouge", waste_bin(0.2))

    patched = await client.patch(
        f"{BASE}/entities/{BIN}/attrs",
        json={"fill": {"type": "Property", "value": 1.0}},
        headers=tenant("roubaix"),
    )
    batch = await client.post(
        f"{BASE}/entityOperations/upsert", json=[waste_bin(0.5)], headers=tenant("lille")
    )

    assert patched.status_code == 204, patched.text
    assert batch.status_code == 201, batch.text
    assert (await get_ok(client, f"/entities/{BIN}", "roubaix"))["fill"]["value"] == 1.0
    assert (await get_ok(client, f"/entities/{BIN}", "carouge"))["fill"]["value"] == 0.2
    assert (await get_ok(client, f"/entities/{BIN}", "lille"))["fill"]["value"] == 0.5


async def test_delete_in_one_tenant_leaves_the_other(client: httpx.AsyncClient) -> None:
    await create(client, "roubaix", waste_bin(0.8))
    await create(client, "carouge", waste_bin(0.2))

    deleted = await client.delete(f"{BASE}/entities/{BIN}", headers=tenant("roubaix"))

    assert deleted.status_code == 204, deleted.text
    gone = await client.get(f"{BASE}/entities/{BIN}", headers=tenant("roubaix"))
    assert_problem(gone, 404, "ResourceNotFound")
    assert (await get_ok(client, f"/entities/{BIN}", "carouge"))["fill"]["value"] == 0.2
    assert (await get_ok(client, "/types", "roubaix"))["typeList"] == []
    assert (await get_ok(client, "/types", "carouge"))["typeList"] == ["Bin"]


async def test_batch_delete_in_one_tenant_leaves_the_other(client: httpx.AsyncClient) -> None:
    await create(client, "roubaix", waste_bin(0.8))
    await create(client, "carouge", waste_bin(0.2))

    deleted = await client.post(
        f"{BASE}/entityOperations/delete", json=[BIN], headers=tenant("carouge")
    )

    assert deleted.status_code == 204, deleted.text
    assert await get_ok(client, "/entities", "carouge", type="Bin") == []
    assert [e["id"] for e in await get_ok(client, "/entities", "roubaix", type="Bin")] == [BIN]


@pytest.mark.parametrize(("path", "params"), READS)
async def test_reading_a_tenant_never_written_is_nonexistent_tenant(
    client: httpx.AsyncClient, path: str, params: dict[str, str]
) -> None:
    await create(client, "roubaix", waste_bin(0.8))

    response = await client.get(f"{BASE}{path}", params=params, headers=tenant("lille"))

    assert_problem(response, 404, "NonexistentTenant")
    assert "lille" in response.json()["detail"]


async def test_deleting_in_a_tenant_never_written_is_nonexistent_tenant(
    client: httpx.AsyncClient,
) -> None:
    response = await client.delete(f"{BASE}/entities/{BIN}", headers=tenant("lille"))

    assert_problem(response, 404, "NonexistentTenant")


@pytest.mark.parametrize(("path", "params"), READS)
async def test_the_default_tenant_always_exists(
    client: httpx.AsyncClient, path: str, params: dict[str, str]
) -> None:
    response = await client.get(f"{BASE}{path}", params=params)

    assert response.status_code in (200, 404), response.text
    if response.status_code == 404:
        assert response.json()["type"] == ERRORS + "ResourceNotFound"


async def test_a_tenant_exists_once_written(client: httpx.AsyncClient) -> None:
    assert_problem(
        await client.get(f"{BASE}/types", headers=tenant("lille")), 404, "NonexistentTenant"
    )

    await create(client, "lille", waste_bin(0.3))

    assert (await get_ok(client, "/types", "lille"))["typeList"] == ["Bin"]


#: SQLiteStore._run_job inserts the tenant row before applying the mutations and keeps it
#: when they fail, although store/base.py says "a tenant exists once something was written".
FAILED_WRITES = [
    pytest.param("PATCH", f"/entities/{BIN}", {"fill": 1}, id="merge-entity"),
    pytest.param("PUT", f"/entities/{BIN}", {"type": "Bin"}, id="replace-entity"),
    pytest.param("POST", f"/entities/{BIN}/attrs", {"fill": 1}, id="append-attrs"),
    pytest.param("PATCH", f"/entities/{BIN}/attrs", {"fill": 1}, id="update-attrs"),
    pytest.param(
        "PATCH",
        f"/entities/{BIN}/attrs/fill",
        {"value": 1},
        id="partial-update",
    ),
    pytest.param(
        "POST",
        "/entityOperations/update",
        [{"id": BIN, "fill": 1}],
        id="batch-update",
    ),
    pytest.param(
        "POST",
        "/entityOperations/merge",
        [{"id": BIN, "fill": 1}],
        id="batch-merge",
    ),
    pytest.param("POST", "/entityOperations/delete", [BIN], id="batch-delete"),
    pytest.param("POST", "/entityOperations/create", [{"id": BIN}], id="batch-create-invalid"),
]


@pytest.mark.parametrize(("method", "path", "body"), FAILED_WRITES)
async def test_a_failed_write_does_not_create_the_tenant(
    client: httpx.AsyncClient, method: str, path: str, body: Any
) -> None:
    """Only a successful write brings a tenant into existence (store/base.py contract)."""
    response = await client.request(method, f"{BASE}{path}", json=body, headers=tenant("ghost"))
    assert response.status_code in (207, 404, 400), response.text

    after = await client.get(f"{BASE}/entities", params={"type": "Bin"}, headers=tenant("ghost"))

    assert_problem(after, 404, "NonexistentTenant")


INVALID_NAMES = [
    pytest.param("roubaix nord", id="space"),
    pytest.param("o'brien", id="quote"),
    pytest.param('a"b', id="double-quote"),
    pytest.param("a;b", id="semicolon"),
    pytest.param("x" * 129, id="too-long"),
    pytest.param("caf\u00e9".encode(), id="non-ascii"),
    pytest.param("a\tb", id="tab"),
    pytest.param("<script>", id="angle-brackets"),
]


@pytest.mark.parametrize("name", INVALID_NAMES)
async def test_an_invalid_tenant_name_is_bad_request(
    client: httpx.AsyncClient, name: str | bytes
) -> None:
    write = await client.post(f"{BASE}/entities", json=waste_bin(0.1), headers=tenant(name))
    read = await client.get(f"{BASE}/entities", params={"type": "Bin"}, headers=tenant(name))
    batch = await client.post(
        f"{BASE}/entityOperations/create", json=[waste_bin(0.1)], headers=tenant(name)
    )

    for response in (write, read, batch):
        assert_problem(response, 400, "BadRequestData")
    assert await get_ok(client, "/entities", None, type="Bin") == []


@pytest.mark.parametrize("name", ["roubaix", "city.roubaix", "urn:ngsi-ld:Tenant:1", "a/b-c_d"])
async def test_valid_tenant_names_are_accepted(client: httpx.AsyncClient, name: str) -> None:
    await create(client, name, waste_bin(0.4))

    assert (await get_ok(client, f"/entities/{BIN}", name))["fill"]["value"] == 0.4
    assert_problem(await client.get(f"{BASE}/entities/{BIN}"), 404, "ResourceNotFound")
