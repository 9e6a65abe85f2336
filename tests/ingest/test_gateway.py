"""The device gateway end to end: provisioning API, HTTP and MQTT (real Mosquitto) frames."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiomqtt
import httpx
import pytest

BASE = "/ngsi-ld/v1"
MQTT = ("127.0.0.1", 1883)


async def wait_until(ready: Callable[[], Awaitable[bool]], timeout: float, what: str) -> None:
    """Poll an async condition until it holds; AssertionError naming it after timeout."""
    deadline = time.monotonic() + timeout
    while not await ready():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


def _group(apikey: str, entity_type: str = "WeatherObserved") -> dict[str, Any]:
    return {
        "apikey": apikey,
        "cbroker": "http://127.0.0.1:1026",
        "entity_type": entity_type,
        "resource": "/iot/d",
        "attributes": [{"object_id": "t", "name": "temperature", "type": "Number"}],
    }


def _device(device_id: str, entity_type: str = "WeatherObserved") -> dict[str, Any]:
    return {
        "device_id": device_id,
        "entity_name": f"urn:ngsi-ld:{entity_type}:{device_id}",
        "entity_type": entity_type,
        "protocol": "PDI-IoTA-UltraLight",
        "transport": "MQTT",
        "attributes": [
            {"object_id": "h", "name": "relativeHumidity", "type": "Number"},
            {
                "object_id": "l",
                "name": "LAeq",
                "type": "Number",
                "metadata": {"unitCode": {"type": "Text", "value": "2N"}},
            },
            {"object_id": "s", "name": "status", "type": "Text"},
        ],
        "static_attributes": [
            {"name": "location", "type": "geo:point", "value": "50.69, 3.17"},
            {
                "name": "refDevice",
                "type": "Relationship",
                "value": f"urn:ngsi-ld:Device:{device_id}",
            },
        ],
    }


@pytest.fixture
async def gw(
    client_factory: Callable[..., contextlib.AbstractAsyncContextManager[httpx.AsyncClient]],
) -> AsyncIterator[httpx.AsyncClient]:
    """A client on a platform with the gateway on, its own MQTT share group, MQTT connected."""
    async with client_factory(gateway=True, mqtt_share_group=f"t{uuid.uuid4().hex}") as c:

        async def connected() -> bool:
            health = (await c.get("/health")).json()
            return bool(health["gateway"]["mqtt"])

        await wait_until(connected, 10, "the gateway's MQTT connection")
        yield c


async def _provision(c: httpx.AsyncClient, apikey: str, device_id: str, **headers: str) -> None:
    r = await c.post("/iot/services", json={"services": [_group(apikey)]}, headers=headers)
    assert r.status_code == 201, r.text
    device = {**_device(device_id), "apikey": apikey}
    r = await c.post("/iot/devices", json={"devices": [device]}, headers=headers)
    assert r.status_code == 201, r.text


async def _counters(c: httpx.AsyncClient) -> dict[str, int]:
    gateway: dict[str, int] = (await c.get("/health")).json()["gateway"]
    return gateway


async def test_provisioning_api_round_trip(gw: httpx.AsyncClient) -> None:
    await _provision(gw, "k1", "dev1")
    groups = (await gw.get("/iot/services")).json()
    assert groups["count"] == 1 and groups["services"][0]["apikey"] == "k1"
    devices = (await gw.get("/iot/devices")).json()
    assert devices["count"] == 1
    device = (await gw.get("/iot/devices/dev1")).json()
    assert device["entity_name"] == "urn:ngsi-ld:WeatherObserved:dev1"
    r = await gw.put("/iot/devices/dev1", json={"attributes": []})
    assert r.status_code == 204
    assert (await gw.get("/iot/devices/dev1")).json()["attributes"] == []
    r = await gw.put("/iot/devices/dev1", json={"entity_name": "urn:x:other"})
    assert r.status_code == 400 and r.json()["name"] == "BAD_REQUEST"
    r = await gw.put("/iot/services?resource=/iot/d&apikey=k1", json={"entity_type": "Thing"})
    assert r.status_code == 204
    assert (await gw.get("/iot/services")).json()["services"][0]["entity_type"] == "Thing"
    assert (await gw.delete("/iot/devices/dev1")).status_code == 204
    r = await gw.get("/iot/devices/dev1")
    assert r.status_code == 404 and r.json()["name"] == "DEVICE_NOT_FOUND"
    assert (await gw.delete("/iot/services?resource=/iot/d&apikey=k1")).status_code == 204
    assert (await gw.get("/iot/services")).json()["count"] == 0


async def test_a_device_without_apikey_is_bound_to_the_group_of_its_type(
    gw: httpx.AsyncClient,
) -> None:
    assert (await gw.post("/iot/services", json={"services": [_group("k1")]})).status_code == 201
    assert (await gw.post("/iot/devices", json={"devices": [_device("d1")]})).status_code == 201
    assert (await gw.get("/iot/devices/d1")).json()["apikey"] == "k1"
    assert (await gw.post("/iot/d?k=k1&i=d1", content=b"t|3")).status_code == 200
    other = _group("k2")  # a second group of the same type makes the type ambiguous
    assert (await gw.post("/iot/services", json={"services": [other]})).status_code == 201
    r = await gw.post("/iot/devices", json={"devices": [_device("d2")]})
    assert r.status_code == 400 and "apikey" in r.json()["message"]


async def test_provisioning_refuses_duplicates_and_bad_bodies(gw: httpx.AsyncClient) -> None:
    await _provision(gw, "k1", "dev1")
    r = await gw.post("/iot/devices", json={"devices": [_device("dev1")]})
    assert r.status_code == 409 and r.json()["name"] == "DUPLICATE_DEVICE_ID"
    r = await gw.post("/iot/services", json={"services": [_group("k1")]})
    assert r.status_code == 409 and r.json()["name"] == "DUPLICATE_GROUP"
    r = await gw.delete("/iot/services?resource=/iot/d&apikey=nope")
    assert r.status_code == 404 and r.json()["name"] == "DEVICE_GROUP_NOT_FOUND"
    bad_bodies: list[Any] = [
        {"devices": []},
        {"devices": [{"entity_type": "X"}]},
        {"devices": [{"device_id": "x y", "entity_type": "X"}]},
        {"devices": [{"device_id": "d", "entity_type": "X", "attributes": [{"name": "a"}]}]},
        {"devices": [{"device_id": "d", "entity_type": "X", "colour": "red"}]},
        {"devices": [{"device_id": "d", "entity_type": "X", "entity_name": "not-a-uri"}]},
        {"services": [{"apikey": "k9"}]},
        [],
    ]
    for body in bad_bodies:
        path = "/iot/services" if isinstance(body, dict) and "services" in body else "/iot/devices"
        r = await gw.post(path, json=body)
        assert r.status_code == 400, (body, r.text)
        assert set(r.json()) == {"name", "message"}
    r = await gw.post("/iot/devices", content=b"{", headers={"content-type": "application/json"})
    assert r.status_code == 400
    # nothing of the refused requests was stored
    assert [d["device_id"] for d in (await gw.get("/iot/devices")).json()["devices"]] == ["dev1"]


async def test_provisioning_is_per_fiware_service(gw: httpx.AsyncClient) -> None:
    await _provision(gw, "k1", "dev1", **{"fiware-service": "roubaix"})
    assert (await gw.get("/iot/devices")).json()["count"] == 0
    assert (await gw.get("/iot/devices", headers={"fiware-service": "roubaix"})).json()[
        "count"
    ] == 1
    r = await gw.post("/iot/d?k=k1&i=dev1", content=b"t|4")
    assert r.status_code == 200
    e = await gw.get(f"{BASE}/entities/urn:ngsi-ld:WeatherObserved:dev1")
    assert e.status_code == 404  # the measure went to the device's tenant only
    e = await gw.get(
        f"{BASE}/entities/urn:ngsi-ld:WeatherObserved:dev1", headers={"NGSILD-Tenant": "roubaix"}
    )
    assert e.json()["temperature"]["value"] == 4


async def test_http_ultralight_creates_then_updates_the_entity(gw: httpx.AsyncClient) -> None:
    await _provision(gw, "k1", "dev1")
    r = await gw.post("/iot/d?k=k1&i=dev1", content=b"t|21.5|h|0.4|l|55.2|s|ok")
    assert r.status_code == 200, r.text
    assert r.json()["written"] == 4
    entity = (await gw.get(f"{BASE}/entities/urn:ngsi-ld:WeatherObserved:dev1")).json()
    assert entity["temperature"]["value"] == 21.5
    assert entity["temperature"]["unitCode"] == "CEL"  # default unit of the quantity table
    assert entity["LAeq"]["unitCode"] == "2N"  # unit from the provisioning metadata
    assert entity["status"]["value"] == "ok"
    assert entity["location"]["value"] == {"type": "Point", "coordinates": [3.17, 50.69]}
    assert entity["refDevice"]["object"] == "urn:ngsi-ld:Device:dev1"
    assert "observedAt" in entity["temperature"]
    # two timestamped groups in one frame: two updates, two history instances, in order
    r = await gw.post(
        "/iot/d?k=k1&i=dev1", content=b"2099-01-01T00:00:00Z|t|1#2099-01-01T00:15:00Z|t|2"
    )
    assert r.status_code == 200 and r.json()["written"] == 2
    history_url = f"{BASE}/temporal/entities/urn:ngsi-ld:WeatherObserved:dev1?attrs=temperature"
    history = (await gw.get(history_url)).json()
    values = sorted((i["observedAt"], i["value"]) for i in history["temperature"])
    assert [v for _, v in values] == [21.5, 1, 2]
    assert values[-1][0] == "2099-01-01T00:15:00.000Z"
    # the same frame delivered again (MQTT QoS 1 is at-least-once): nothing is doubled
    r = await gw.post(
        "/iot/d?k=k1&i=dev1", content=b"2099-01-01T00:00:00Z|t|1#2099-01-01T00:15:00Z|t|2"
    )
    assert r.status_code == 200 and r.json()["written"] == 0 and r.json()["skipped"] == 2
    assert (await gw.get(history_url)).json() == history
    # an older measure never moves the current value back in time
    r = await gw.post("/iot/d?k=k1&i=dev1", content=b"2026-01-01T00:00:00Z|t|-3")
    assert r.json()["skipped"] == 1
    entity = (await gw.get(f"{BASE}/entities/urn:ngsi-ld:WeatherObserved:dev1")).json()
    assert entity["temperature"]["value"] == 2
    assert (await _counters(gw))["measures_not_newer"] == 3


async def test_http_json_and_get_forms(gw: httpx.AsyncClient) -> None:
    await _provision(gw, "k1", "dev1")
    r = await gw.post(
        "/iot/json?k=k1&i=dev1",
        content=b'{"t": 12, "TimeInstant": "2026-11-30T10:00:00Z"}',
        headers={"content-type": "application/json"},
    )
    assert r.status_code == 200, r.text
    entity = (await gw.get(f"{BASE}/entities/urn:ngsi-ld:WeatherObserved:dev1")).json()
    assert entity["temperature"]["observedAt"] == "2026-11-30T10:00:00.000Z"
    r = await gw.get(
        "/iot/d", params={"k": "k1", "i": "dev1", "d": "t|13", "t": "2026-11-30T11:00:00Z"}
    )
    assert r.status_code == 200, r.text
    entity = (await gw.get(f"{BASE}/entities/urn:ngsi-ld:WeatherObserved:dev1")).json()
    assert entity["temperature"]["value"] == 13
    assert entity["temperature"]["observedAt"] == "2026-11-30T11:00:00.000Z"


async def test_hostile_frames_are_counted_and_change_nothing(gw: httpx.AsyncClient) -> None:
    await _provision(gw, "k1", "dev1")
    await _provision(gw, "k2", "dev2")
    assert (await gw.post("/iot/d?k=k1&i=dev1", content=b"t|20|s|ok")).status_code == 200
    before = (await gw.get(f"{BASE}/entities/urn:ngsi-ld:WeatherObserved:dev1")).json()
    start = await _counters(gw)
    cases = [
        ("nokey", "ghost2", b"t|1", 404, "rejected_unknown_apikey"),
        ("nokey", "dev1", b"t|1", 403, "rejected_wrong_apikey"),
        ("k1", "ghost", b"t|1", 404, "rejected_unknown_device"),
        ("k2", "dev1", b"t|1", 403, "rejected_wrong_apikey"),
        ("k1", "dev1", b"t|1|h", 400, "rejected_malformed_frame"),
        ("k1", "dev1", b"t|abc", 400, "rejected_invalid_value"),
        ("k1", "dev1", b"l|400", 400, "rejected_out_of_range"),
        ("k1", "dev1", b"l|-5|t|nan", 400, "rejected_out_of_range"),
        ("k1", "dev1", b"t|" + b"9" * 20_000, 413, "rejected_frame_too_large"),
        ("k1", "dev1", b"t|1\x00", 400, "rejected_malformed_frame"),
        ("k1", "dev1", b"id|urn:evil|t|abc", 400, "rejected_invalid_value"),
        ("k1", "dev1", b"t|1e20", 400, "rejected_out_of_range"),  # would break jsonb reads
    ]
    for apikey, device_id, body, status, _ in cases:
        r = await gw.post(f"/iot/d?k={apikey}&i={device_id}", content=body)
        assert r.status_code == status, (body[:30], r.text)
        assert set(r.json()) == {"name", "message"}
    after = await _counters(gw)
    expected = {  # per frame for whole-frame causes, per measure for measure causes
        "rejected_unknown_apikey": 1,
        "rejected_wrong_apikey": 2,
        "rejected_unknown_device": 1,
        "rejected_malformed_frame": 2,
        "rejected_invalid_value": 3,  # t|abc, then id and abc of the last frame
        "rejected_out_of_range": 4,  # l|400, then l|-5 and t|nan, then t|1e20
        "rejected_frame_too_large": 1,
    }
    assert {name: after[name] - start[name] for name in expected} == expected
    now = (await gw.get(f"{BASE}/entities/urn:ngsi-ld:WeatherObserved:dev1")).json()
    assert now == before
    ghost = await gw.get(f"{BASE}/entities/urn:ngsi-ld:WeatherObserved:ghost")
    assert ghost.status_code == 404
    # a frame with one good and one bad measure writes the good one only
    r = await gw.post("/iot/d?k=k1&i=dev1", content=b"t|19|l|999")
    assert r.status_code == 200 and r.json()["written"] == 1
    assert r.json()["rejected"][0]["cause"] == "out_of_range"
    now = (await gw.get(f"{BASE}/entities/urn:ngsi-ld:WeatherObserved:dev1")).json()
    assert now["temperature"]["value"] == 19 and "LAeq" not in now
    metrics = (await gw.get("/metrics")).text
    assert 'agilecity_gateway_total{event="rejected_unknown_device"} 1' in metrics


async def test_mqtt_frames_flow_into_entities_and_history(gw: httpx.AsyncClient) -> None:
    apikey, device_id = f"k{uuid.uuid4().hex[:8]}", "dev-mqtt"
    await _provision(gw, apikey, device_id)
    entity_url = f"{BASE}/entities/urn:ngsi-ld:WeatherObserved:{device_id}"
    async with aiomqtt.Client(*MQTT) as mqtt:
        for i in range(5):
            stamp = f"2026-12-01T10:0{i}:00Z"
            await mqtt.publish(f"/{apikey}/{device_id}/attrs", f"{stamp}|t|{i}|h|0.5", qos=1)
        await mqtt.publish(f"/json/{apikey}/{device_id}/attrs", b'{"t": 42}', qos=1)
        await mqtt.publish(f"/{apikey}/{device_id}/attrs/s", b"ok", qos=1)
        hostile = [
            (f"/{apikey}/ghost/attrs", b"t|1"),  # unknown device
            (f"/{apikey}/{device_id}/attrs", b"t|not-a-number"),  # wrong type
            (f"/wrongkey/{device_id}/attrs", b"t|1"),  # not this device's key
            (f"/{apikey}/{device_id}/attrs", b"t|1|h"),  # malformed
            (f"/{apikey}/{device_id}/attrs", b"\xff\xfe\x00"),  # not text
            (f"/{apikey}/{device_id}/attrs", b"t|" + b"1" * 20_000),  # too large
            (f"/{apikey}/{device_id}/attrs", b"l|999"),  # implausible
            (f"/{apikey}/{device_id}/attrs/id", b"urn:ngsi-ld:Evil:1"),  # not a measure
        ]
        for topic, payload in hostile:
            await mqtt.publish(topic, payload, qos=1)

    async def all_arrived() -> bool:
        counters = await _counters(gw)
        return counters["frames_received"] >= 7 + len(hostile)

    await wait_until(all_arrived, 10, "9 MQTT frames")
    entity = (await gw.get(entity_url)).json()
    assert entity["temperature"]["value"] == 42  # frames of one device applied in order
    assert entity["status"]["value"] == "ok"
    history = (await gw.get(f"{BASE}/temporal/entities/urn:ngsi-ld:WeatherObserved:{device_id}",
                            params={"attrs": "temperature"})).json()  # fmt: skip
    stamped = sorted(
        (i["observedAt"], i["value"]) for i in history["temperature"] if i["value"] != 42
    )
    assert stamped == [(f"2026-12-01T10:0{i}:00.000Z", i) for i in range(5)]
    counters = await _counters(gw)
    assert {k: counters[k] for k in counters if k.startswith("rejected_")} == {
        "rejected_unknown_apikey": 0, "rejected_unknown_device": 1, "rejected_wrong_apikey": 1,
        "rejected_malformed_frame": 2, "rejected_frame_too_large": 1,
        "rejected_invalid_value": 2, "rejected_out_of_range": 1, "rejected_write_failed": 0,
        "rejected_bad_topic": 0,
    }  # fmt: skip
    assert (await gw.get(f"{BASE}/entities/urn:ngsi-ld:WeatherObserved:ghost")).status_code == 404
    after = (await gw.get(entity_url)).json()
    assert after == entity and "LAeq" not in after and "id" not in after.get("status", {})


async def test_gateway_off_by_default(client: httpx.AsyncClient) -> None:
    assert (await client.get("/iot/devices")).status_code == 404
    assert "gateway" not in (await client.get("/health")).json()
