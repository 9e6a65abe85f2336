"""The temporal API (ETSI GS CIM 009 clauses 5.6.12-19, 5.7.3-4, 6.18-6.22) over HTTP.

Every write to the current state appends attribute instances to the history; the temporal
endpoints read it (normalized, temporalValues, aggregatedValues), write it directly, and
delete from it; the retention job purges what was recorded too long ago.

Aggregations are checked against numpy computations over randomly generated series (fixed
seeds), never against the product's own output.
"""

from __future__ import annotations

import calendar
import contextlib
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import numpy as np
import pytest
from starlette.applications import Starlette

import agilecity.broker.broker as broker_module
from agilecity.app import build_app
from agilecity.broker.broker import Broker, Retention
from agilecity.broker.timeutil import now_iso
from agilecity.settings import Settings

BASE = "/ngsi-ld/v1"
ENTITIES = f"{BASE}/entities"
TEMPORAL = f"{BASE}/temporal/entities"
ERRORS = "https://uri.etsi.org/ngsi-ld/errors/"
INSTANCE_PREFIX = "urn:ngsi-ld:Instance:"
SENSOR = "urn:ngsi-ld:Sensor:S1"
OTHER = "urn:ngsi-ld:Sensor:S2"
ROAD = "urn:ngsi-ld:Road:R1"
UNKNOWN = "urn:ngsi-ld:Sensor:nobody"
NORTH = "urn:ngsi-ld:Dataset:north"
SOUTH = "urn:ngsi-ld:Dataset:south"
STATION_A = "urn:ngsi-ld:Station:A"
STATION_B = "urn:ngsi-ld:Station:B"
METHODS = ("totalCount", "distinctCount", "sum", "avg", "min", "max", "stddev", "sumsq")
ALL_METHODS = ",".join(METHODS)
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
HOUR_MS = 3_600_000
DAY_MS = 24 * HOUR_MS
SettingsFactory = Callable[..., Settings]


# -- helpers ---------------------------------------------------------------------------------


def at(hour: float, day: str = "2024-05-01") -> str:
    """A canonical timestamp on a day, ``hour`` hours after midnight UTC."""
    moment = datetime.fromisoformat(f"{day}T00:00:00+00:00") + timedelta(hours=hour)
    return iso_of(moment)


def iso_of(moment: datetime) -> str:
    """The broker's canonical DateTime form (UTC, milliseconds)."""
    moment = moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def iso(ms: int) -> str:
    return iso_of(EPOCH + timedelta(milliseconds=int(ms)))


def ms_of(text: str) -> int:
    return (datetime.fromisoformat(text.replace("Z", "+00:00")) - EPOCH) // timedelta(
        milliseconds=1
    )


def prop(value: Any, observed: str | None = None, **members: Any) -> dict[str, Any]:
    """A normalized Property (with observedAt when given)."""
    found: dict[str, Any] = {"type": "Property", "value": value}
    if observed is not None:
        found["observedAt"] = observed
    found.update(members)
    return found


def rel(target: str, observed: str | None = None, **members: Any) -> dict[str, Any]:
    found: dict[str, Any] = {"type": "Relationship", "object": target}
    if observed is not None:
        found["observedAt"] = observed
    found.update(members)
    return found


def assert_problem(response: httpx.Response, status: int, error_type: str) -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["type"] == ERRORS + error_type
    assert isinstance(body["title"], str) and body["title"]


def assert_no_content(response: httpx.Response) -> None:
    assert response.status_code == 204, response.text
    assert response.content == b""


async def create(client: httpx.AsyncClient, payload: dict[str, Any], **headers: str) -> None:
    response = await client.post(ENTITIES, json=payload, headers=headers)
    assert response.status_code == 201, response.text


async def temporal_create(client: httpx.AsyncClient, payload: dict[str, Any]) -> None:
    response = await client.post(TEMPORAL, json=payload)
    assert response.status_code == 201, response.text


async def raw_history(
    client: httpx.AsyncClient, entity_id: str = SENSOR, headers: dict[str, str] | None = None,
    **params: str,
) -> dict[str, Any]:  # fmt: skip
    response = await client.get(f"{TEMPORAL}/{entity_id}", params=params, headers=headers or {})
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def strip_instance_ids(body: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """The body without instanceIds (checked to be unique instance URIs), and those ids."""
    stripped: dict[str, Any] = {}
    ids: list[str] = []
    for name, member in body.items():
        if isinstance(member, list):
            instances = []
            for instance in member:
                instance = dict(instance)
                instance_id = instance.pop("instanceId")
                assert instance_id.startswith(INSTANCE_PREFIX), instance_id
                ids.append(instance_id)
                instances.append(instance)
            stripped[name] = instances
        else:
            stripped[name] = member
    assert len(ids) == len(set(ids)), "instanceIds must be unique"
    return stripped, ids


async def history(
    client: httpx.AsyncClient, entity_id: str = SENSOR, **params: str
) -> dict[str, Any]:
    """GET /temporal/entities/{id} (normalized) without the instanceIds."""
    return strip_instance_ids(await raw_history(client, entity_id, **params))[0]


async def instance_ids(client: httpx.AsyncClient, attr: str, entity_id: str = SENSOR) -> list[str]:
    body = await raw_history(client, entity_id)
    return [i["instanceId"] for i in body[attr]]


async def current(client: httpx.AsyncClient, entity_id: str = SENSOR) -> dict[str, Any]:
    response = await client.get(f"{ENTITIES}/{entity_id}")
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


# == history is automatic =====================================================================


async def test_creation_records_every_attribute(client: httpx.AsyncClient) -> None:
    await create(
        client,
        {
            "id": SENSOR,
            "type": "Sensor",
            "temperature": prop(20.5, at(0), unitCode="CEL", accuracy=prop(0.1)),
            "humidity": prop(55),
            "observedBy": rel(STATION_A),
        },
    )
    assert await history(client) == {
        "id": SENSOR,
        "type": "Sensor",
        "temperature": [
            {
                "type": "Property",
                "value": 20.5,
                "observedAt": at(0),
                "unitCode": "CEL",
                "accuracy": {"type": "Property", "value": 0.1},
            },
        ],  # fmt: skip
        "humidity": [{"type": "Property", "value": 55}],
        "observedBy": [{"type": "Relationship", "object": STATION_A}],
    }


async def test_patch_attrs_appends_and_leaves_other_attributes_alone(
    client: httpx.AsyncClient,
) -> None:
    await create(client, {"id": SENSOR, "type": "Sensor", "temperature": prop(20, at(0)),
                          "humidity": prop(55)})  # fmt: skip
    response = await client.patch(
        f"{ENTITIES}/{SENSOR}/attrs", json={"temperature": prop(21, at(1))}
    )
    assert_no_content(response)
    response = await client.patch(
        f"{ENTITIES}/{SENSOR}/attrs", json={"temperature": prop(22, at(2))}
    )
    assert_no_content(response)
    assert await history(client) == {
        "id": SENSOR,
        "type": "Sensor",
        "temperature": [prop(20, at(0)), prop(21, at(1)), prop(22, at(2))],
        "humidity": [prop(55)],  # unchanged: recorded once
    }


async def test_partial_update_appends(client: httpx.AsyncClient) -> None:
    await create(client, {"id": SENSOR, "type": "Sensor", "temperature": prop(20, at(0)),
                          "humidity": prop(55)})  # fmt: skip
    response = await client.patch(
        f"{ENTITIES}/{SENSOR}/attrs/temperature", json={"value": 23, "observedAt": at(3)}
    )
    assert_no_content(response)
    assert await history(client) == {
        "id": SENSOR,
        "type": "Sensor",
        "temperature": [prop(20, at(0)), prop(23, at(3))],
        "humidity": [prop(55)],
    }


async def test_merge_appends_adds_and_deletes(client: httpx.AsyncClient) -> None:
    await create(client, {"id": SENSOR, "type": "Sensor", "temperature": prop(20, at(0)),
                          "humidity": prop(55), "status": prop("ok")})  # fmt: skip
    response = await client.patch(
        f"{ENTITIES}/{SENSOR}",
        json={"temperature": {"value": 24, "observedAt": at(4)}, "pressure": prop(1013, at(4)),
              "status": None},
    )  # fmt: skip
    assert_no_content(response)
    assert await history(client) == {
        "id": SENSOR,
        "type": "Sensor",
        "temperature": [prop(20, at(0)), prop(24, at(4))],
        "humidity": [prop(55)],
        "status": [prop("ok")],  # deleted now, but its past instance stays
        "pressure": [prop(1013, at(4))],
    }
    assert "status" not in await current(client)


async def test_append_attributes_appends(client: httpx.AsyncClient) -> None:
    await create(client, {"id": SENSOR, "type": "Sensor", "temperature": prop(20, at(0))})
    response = await client.post(
        f"{ENTITIES}/{SENSOR}/attrs",
        json={"temperature": prop(25, at(5)), "humidity": prop(40, at(5))},
    )
    assert_no_content(response)
    assert await history(client) == {
        "id": SENSOR,
        "type": "Sensor",
        "temperature": [prop(20, at(0)), prop(25, at(5))],
        "humidity": [prop(40, at(5))],
    }


@pytest.mark.parametrize("mode", ["update", "replace"])
async def test_batch_upsert_appends(client: httpx.AsyncClient, mode: str) -> None:
    await create(client, {"id": SENSOR, "type": "Sensor", "temperature": prop(20, at(0))})
    batch = [
        {"id": SENSOR, "type": "Sensor", "temperature": prop(26, at(6))},
        {"id": OTHER, "type": "Sensor", "temperature": prop(10, at(6))},
    ]
    response = await client.post(
        f"{BASE}/entityOperations/upsert", json=batch, params={"options": mode}
    )
    assert response.status_code == 201, response.text  # OTHER was created
    assert await history(client) == {
        "id": SENSOR,
        "type": "Sensor",
        "temperature": [prop(20, at(0)), prop(26, at(6))],
    }
    assert await history(client, OTHER) == {
        "id": OTHER,
        "type": "Sensor",
        "temperature": [prop(10, at(6))],
    }


async def test_batch_upsert_update_leaves_untouched_attributes(client: httpx.AsyncClient) -> None:
    await create(client, {"id": SENSOR, "type": "Sensor", "temperature": prop(20, at(0)),
                          "humidity": prop(55)})  # fmt: skip
    response = await client.post(
        f"{BASE}/entityOperations/upsert",
        json=[{"id": SENSOR, "type": "Sensor", "temperature": prop(21, at(1))}],
        params={"options": "update"},
    )
    assert_no_content(response)
    body = await history(client)
    assert body["humidity"] == [prop(55)]
    assert body["temperature"] == [prop(20, at(0)), prop(21, at(1))]


async def test_instances_are_in_time_order_whatever_the_write_order(
    client: httpx.AsyncClient,
) -> None:
    await create(client, {"id": SENSOR, "type": "Sensor", "temperature": prop(20, at(5))})
    for value, hour in [(18, 1), (19, 3), (17, 0)]:
        response = await client.patch(
            f"{ENTITIES}/{SENSOR}/attrs", json={"temperature": prop(value, at(hour))}
        )
        assert_no_content(response)
    body = await history(client)
    assert body["temperature"] == [
        prop(17, at(0)), prop(18, at(1)), prop(19, at(3)), prop(20, at(5)),
    ]  # fmt: skip


async def test_datasets_are_recorded_one_by_one(client: httpx.AsyncClient) -> None:
    await create(
        client,
        {"id": SENSOR, "type": "Sensor",
         "temperature": [prop(20, at(0)), prop(30, at(0), datasetId=NORTH)]},
    )  # fmt: skip
    response = await client.patch(
        f"{ENTITIES}/{SENSOR}/attrs/temperature",
        json={"value": 31, "observedAt": at(1), "datasetId": NORTH},
    )
    assert_no_content(response)
    body = await history(client)
    assert body["temperature"] == [
        prop(20, at(0)),
        prop(30, at(0), datasetId=NORTH),
        prop(31, at(1), datasetId=NORTH),
    ]


async def test_deleting_an_attribute_keeps_its_past_instances(client: httpx.AsyncClient) -> None:
    await create(client, {"id": SENSOR, "type": "Sensor", "temperature": prop(20, at(0)),
                          "humidity": prop(55, at(0))})  # fmt: skip
    await client.patch(f"{ENTITIES}/{SENSOR}/attrs", json={"temperature": prop(21, at(1))})
    assert_no_content(await client.delete(f"{ENTITIES}/{SENSOR}/attrs/temperature"))
    assert "temperature" not in await current(client)
    assert await history(client) == {
        "id": SENSOR,
        "type": "Sensor",
        "temperature": [prop(20, at(0)), prop(21, at(1))],
        "humidity": [prop(55, at(0))],
    }
    # A new instance after the deletion simply follows the old ones.
    response = await client.post(f"{ENTITIES}/{SENSOR}/attrs", json={"temperature": prop(5, at(2))})
    assert_no_content(response)
    body = await history(client)
    assert body["temperature"] == [prop(20, at(0)), prop(21, at(1)), prop(5, at(2))]


async def test_deleted_entity_is_still_retrievable_in_temporal(client: httpx.AsyncClient) -> None:
    await create(client, {"id": SENSOR, "type": "Sensor", "temperature": prop(20, at(0))})
    await client.patch(f"{ENTITIES}/{SENSOR}/attrs", json={"temperature": prop(21, at(1))})
    assert_no_content(await client.delete(f"{ENTITIES}/{SENSOR}"))
    assert_problem(await client.get(f"{ENTITIES}/{SENSOR}"), 404, "ResourceNotFound")
    assert await history(client) == {
        "id": SENSOR,
        "type": "Sensor",
        "temperature": [prop(20, at(0)), prop(21, at(1))],
    }


async def test_recreated_entity_continues_its_history(client: httpx.AsyncClient) -> None:
    await create(client, {"id": SENSOR, "type": "Sensor", "temperature": prop(20, at(0))})
    assert_no_content(await client.delete(f"{ENTITIES}/{SENSOR}"))
    await create(client, {"id": SENSOR, "type": "Sensor", "temperature": prop(9, at(9))})
    body = await history(client)
    assert body["temperature"] == [prop(20, at(0)), prop(9, at(9))]


async def test_history_is_per_tenant(client: httpx.AsyncClient) -> None:
    await create(client, {"id": SENSOR, "type": "Sensor", "temperature": prop(1, at(0))},
                 **{"NGSILD-Tenant": "roubaix"})  # fmt: skip
    response = await client.get(f"{TEMPORAL}/{SENSOR}")
    assert_problem(response, 404, "ResourceNotFound")
    body = await raw_history(client, headers={"NGSILD-Tenant": "roubaix"})
    assert strip_instance_ids(body)[0]["temperature"] == [prop(1, at(0))]


# == query parameters ===========================================================================

#: The history of SENSOR written by ``given_series``: (time, value) per attribute/dataset.
TEMPERATURES = [(at(h), 10 + h) for h in range(6)]
NORTH_TEMPERATURES = [(at(1.5), 101.5), (at(4.5), 104.5)]
OBSERVERS = [(at(0), STATION_A), (at(3), STATION_B)]


async def given_series(client: httpx.AsyncClient) -> None:
    await temporal_create(
        client,
        {
            "id": SENSOR,
            "type": "Sensor",
            "temperature": [prop(v, t) for t, v in TEMPERATURES]
            + [prop(v, t, datasetId=NORTH) for t, v in NORTH_TEMPERATURES],
            "observedBy": [rel(o, t) for t, o in OBSERVERS],
        },
    )


def expected_series(low: str | None = None, high: str | None = None) -> dict[str, Any]:
    """The normalized temporal entity restricted to [low, high) on observedAt."""

    def keep(moment: str) -> bool:
        return (low is None or moment >= low) and (high is None or moment < high)

    temperatures = [(t, prop(v, t)) for t, v in TEMPERATURES] + [
        (t, prop(v, t, datasetId=NORTH)) for t, v in NORTH_TEMPERATURES
    ]
    body: dict[str, Any] = {"id": SENSOR, "type": "Sensor"}
    found = [i for t, i in sorted(temperatures, key=lambda p: p[0]) if keep(t)]
    if found:
        body["temperature"] = found
    observers = [rel(o, t) for t, o in OBSERVERS if keep(t)]
    if observers:
        body["observedBy"] = observers
    return body


async def test_whole_history_without_timerel(client: httpx.AsyncClient) -> None:
    await given_series(client)
    assert await history(client) == expected_series()


async def test_timerel_after_includes_time_at(client: httpx.AsyncClient) -> None:
    await given_series(client)
    body = await history(client, timerel="after", timeAt=at(3))
    assert body == expected_series(low=at(3))
    assert body["temperature"][0] == prop(13, at(3))
    assert body["observedBy"] == [rel(STATION_B, at(3))]


async def test_timerel_before_excludes_time_at(client: httpx.AsyncClient) -> None:
    await given_series(client)
    body = await history(client, timerel="before", timeAt=at(3))
    assert body == expected_series(high=at(3))
    assert body["temperature"][-1] == prop(12, at(2))
    assert body["observedBy"] == [rel(STATION_A, at(0))]


async def test_timerel_between_is_half_open(client: httpx.AsyncClient) -> None:
    await given_series(client)
    body = await history(client, timerel="between", timeAt=at(1), endTimeAt=at(4))
    assert body == expected_series(low=at(1), high=at(4))
    assert body["temperature"] == [
        prop(11, at(1)), prop(101.5, at(1.5), datasetId=NORTH), prop(12, at(2)), prop(13, at(3)),
    ]  # fmt: skip


async def test_time_at_in_another_offset_is_the_same_instant(client: httpx.AsyncClient) -> None:
    await given_series(client)
    body = await history(client, timerel="after", timeAt="2024-05-01T05:00:00+02:00")
    assert body == expected_series(low=at(3))


async def test_timerel_matching_nothing(client: httpx.AsyncClient) -> None:
    await given_series(client)
    assert await history(client, timerel="before", timeAt="2000-01-01T00:00:00Z") == {
        "id": SENSOR,
        "type": "Sensor",
    }


async def test_timerel_on_observed_at_skips_instances_without_it(
    client: httpx.AsyncClient,
) -> None:
    await create(client, {"id": SENSOR, "type": "Sensor", "temperature": prop(20, at(0)),
                          "humidity": prop(55)})  # fmt: skip
    assert await history(client, timerel="after", timeAt="2000-01-01T00:00:00Z") == {
        "id": SENSOR,
        "type": "Sensor",
        "temperature": [prop(20, at(0))],
    }


@pytest.mark.parametrize("time_property", ["modifiedAt", "createdAt"])
async def test_timeproperty_system_times(client: httpx.AsyncClient, time_property: str) -> None:
    started = now_iso()
    await create(client, {"id": SENSOR, "type": "Sensor", "temperature": prop(20, at(0)),
                          "humidity": prop(55)})  # fmt: skip
    await client.patch(f"{ENTITIES}/{SENSOR}/attrs", json={"temperature": prop(21, at(1))})
    everything = {
        "id": SENSOR,
        "type": "Sensor",
        "temperature": [prop(20, at(0)), prop(21, at(1))],
        "humidity": [prop(55)],
    }
    # Instances were recorded now, long after their observation in 2024.
    body = await history(client, timeproperty=time_property, timerel="after", timeAt=started)
    assert body == everything
    body = await history(client, timeproperty=time_property, timerel="before", timeAt=started)
    assert body == {"id": SENSOR, "type": "Sensor"}
    body = await history(
        client, timeproperty=time_property, timerel="before", timeAt="2024-06-01T00:00:00Z"
    )
    assert body == {"id": SENSOR, "type": "Sensor"}


async def test_timeproperty_modified_at_orders_by_recording(client: httpx.AsyncClient) -> None:
    await create(client, {"id": SENSOR, "type": "Sensor", "temperature": prop(20, at(5))})
    await client.patch(f"{ENTITIES}/{SENSOR}/attrs", json={"temperature": prop(21, at(1))})
    body = await history(client, timeproperty="modifiedAt", options="sysAttrs")
    assert [i["value"] for i in body["temperature"]] == [20, 21]  # the recording order
    body = await history(client)
    assert [i["value"] for i in body["temperature"]] == [21, 20]  # the observation order


async def test_attrs_selects_attributes(client: httpx.AsyncClient) -> None:
    await given_series(client)
    body = await history(client, attrs="observedBy")
    assert body == {"id": SENSOR, "type": "Sensor",
                    "observedBy": [rel(o, t) for t, o in OBSERVERS]}  # fmt: skip
    assert await history(client, attrs="temperature,observedBy") == expected_series()
    assert await history(client, attrs="nothing") == {"id": SENSOR, "type": "Sensor"}


async def test_last_n_larger_than_the_history_returns_everything(
    client: httpx.AsyncClient,
) -> None:
    await given_series(client)
    assert await history(client, lastN="100") == expected_series()


async def test_last_n_returns_the_newest_in_ascending_order(
    client: httpx.AsyncClient,
) -> None:
    await create(client, {"id": SENSOR, "type": "Sensor", "temperature": prop(10, at(0)),
                          "humidity": prop(50, at(0))})  # fmt: skip
    for hour in range(1, 6):
        await client.patch(
            f"{ENTITIES}/{SENSOR}/attrs", json={"temperature": prop(10 + hour, at(hour))}
        )
    assert await history(client, lastN="2") == {
        "id": SENSOR,
        "type": "Sensor",
        "temperature": [prop(14, at(4)), prop(15, at(5))],
        "humidity": [prop(50, at(0))],
    }


async def test_last_n_within_a_timerel(
    client: httpx.AsyncClient,
) -> None:
    await given_series(client)
    body = await history(client, lastN="1", timerel="before", timeAt=at(4))
    assert body == {
        "id": SENSOR,
        "type": "Sensor",
        "temperature": [prop(13, at(3))],
        "observedBy": [rel(STATION_B, at(3))],
    }


async def test_temporal_values(client: httpx.AsyncClient) -> None:
    await given_series(client)
    body = await raw_history(client, options="temporalValues")
    assert set(body) == {"id", "type", "temperature", "observedBy"}
    assert (body["id"], body["type"]) == (SENSOR, "Sensor")
    assert isinstance(body["temperature"], list)  # two datasets: one object each
    assert by_dataset(body["temperature"]) == {
        None: {"type": "Property", "values": [[v, t] for t, v in TEMPERATURES]},
        NORTH: {"type": "Property", "datasetId": NORTH,
                "values": [[v, t] for t, v in NORTH_TEMPERATURES]},
    }  # fmt: skip
    assert body["observedBy"] == {
        "type": "Relationship",
        "objects": [[o, t] for t, o in OBSERVERS],
    }


async def test_temporal_values_with_timerel_and_format(client: httpx.AsyncClient) -> None:
    await given_series(client)
    expected = {
        "id": SENSOR,
        "type": "Sensor",
        "temperature": {"type": "Property", "values": [[12, at(2)], [13, at(3)]]},
        "observedBy": {"type": "Relationship", "objects": [[STATION_B, at(3)]]},
    }
    params = {"timerel": "between", "timeAt": at(2), "endTimeAt": at(4)}
    assert await raw_history(client, options="temporalValues", **params) == expected
    assert await raw_history(client, format="temporalValues", **params) == expected
    body = await raw_history(client, options="temporalValues", timeproperty="modifiedAt")
    assert [v for v, _ in body["observedBy"]["objects"]] == [STATION_A, STATION_B]
    assert all(t > at(24) for _, t in body["observedBy"]["objects"])  # recorded now


async def test_sys_attrs(client: httpx.AsyncClient) -> None:
    started = now_iso()
    await create(client, {"id": SENSOR, "type": "Sensor", "temperature": prop(20, at(0))})
    await client.patch(f"{ENTITIES}/{SENSOR}/attrs", json={"temperature": prop(21, at(1))})
    finished = now_iso()
    body = (await history(client, options="sysAttrs"))["temperature"]
    assert [{k: v for k, v in i.items() if k not in ("createdAt", "modifiedAt")} for i in body] == [
        prop(20, at(0)),
        prop(21, at(1)),
    ]
    for instance in body:
        assert started <= instance["createdAt"] <= instance["modifiedAt"] <= finished
    assert body[0]["modifiedAt"] <= body[1]["modifiedAt"]
    plain = (await history(client))["temperature"]
    assert all("createdAt" not in i and "modifiedAt" not in i for i in plain)


async def given_city(client: httpx.AsyncClient) -> None:
    """Two sensors (Lille, Geneva) and a road, each with two temperature instances."""
    lille = {"type": "GeoProperty", "value": {"type": "Point", "coordinates": [3.06, 50.63]}}
    geneva = {"type": "GeoProperty", "value": {"type": "Point", "coordinates": [6.14, 46.20]}}
    await create(client, {"id": SENSOR, "type": "Sensor", "temperature": prop(15, at(0)),
                          "location": lille})  # fmt: skip
    await create(client, {"id": OTHER, "type": "Sensor", "temperature": prop(15, at(0)),
                          "location": geneva})  # fmt: skip
    await create(client, {"id": ROAD, "type": "Road", "temperature": prop(2, at(0))})
    for entity_id, value in [(SENSOR, 12), (OTHER, 25), (ROAD, 3)]:
        response = await client.patch(
            f"{ENTITIES}/{entity_id}/attrs", json={"temperature": prop(value, at(1))}
        )
        assert_no_content(response)


async def query(client: httpx.AsyncClient, **params: str) -> list[dict[str, Any]]:
    response = await client.get(TEMPORAL, params=params)
    assert response.status_code == 200, response.text
    return [strip_instance_ids(e)[0] for e in response.json()]


async def current_ids(client: httpx.AsyncClient, **params: str) -> list[str]:
    response = await client.get(ENTITIES, params=params)
    assert response.status_code == 200, response.text
    return [e["id"] for e in response.json()]


async def test_query_by_type(client: httpx.AsyncClient) -> None:
    await given_city(client)
    found = await query(client, type="Sensor", attrs="temperature")
    assert [e["id"] for e in found] == await current_ids(client, type="Sensor")
    assert {e["id"]: e for e in found} == {
        SENSOR: {"id": SENSOR, "type": "Sensor", "temperature": [prop(15, at(0)), prop(12, at(1))]},
        OTHER: {"id": OTHER, "type": "Sensor", "temperature": [prop(15, at(0)), prop(25, at(1))]},
    }


async def test_query_q_selects_on_the_current_state_and_returns_all_history(
    client: httpx.AsyncClient,
) -> None:
    await given_city(client)
    found = await query(client, type="Sensor", q="temperature>20", attrs="temperature")
    assert found == [
        {"id": OTHER, "type": "Sensor", "temperature": [prop(15, at(0)), prop(25, at(1))]}
    ]
    found = await query(client, q="temperature<5", options="temporalValues")
    assert found == [
        {"id": ROAD, "type": "Road",
         "temperature": {"type": "Property", "values": [[2, at(0)], [3, at(1)]]}}
    ]  # fmt: skip


async def test_query_geo(client: httpx.AsyncClient) -> None:
    await given_city(client)
    found = await query(
        client, type="Sensor", georel="near;maxDistance==20000", geometry="Point",
        coordinates="[3.07,50.64]", attrs="temperature",
    )  # fmt: skip
    assert found == [
        {"id": SENSOR, "type": "Sensor", "temperature": [prop(15, at(0)), prop(12, at(1))]}
    ]
    found = await query(
        client, type="Sensor", georel="within", geometry="Polygon",
        coordinates="[[[5,45],[7,45],[7,47],[5,47],[5,45]]]", attrs="temperature",
        timerel="after", timeAt=at(1),
    )  # fmt: skip
    assert found == [{"id": OTHER, "type": "Sensor", "temperature": [prop(25, at(1))]}]


async def test_query_pagination_and_count(client: httpx.AsyncClient) -> None:
    await given_city(client)
    pages = []
    for offset in range(4):
        params = {"type": "Sensor,Road", "attrs": "temperature", "limit": "1",
                  "offset": str(offset), "count": "true"}  # fmt: skip
        response = await client.get(TEMPORAL, params=params)
        assert response.status_code == 200, response.text
        assert response.headers["NGSILD-Results-Count"] == "3"
        page = response.json()
        assert [e["id"] for e in page] == await current_ids(client, **params)
        pages.extend(e["id"] for e in page)
    assert sorted(pages) == sorted([SENSOR, OTHER, ROAD])
    response = await client.get(TEMPORAL, params={"type": "Sensor", "options": "count",
                                                  "limit": "0"})  # fmt: skip
    assert response.status_code == 200, response.text
    assert response.json() == []
    assert response.headers["NGSILD-Results-Count"] == "2"
    response = await client.get(TEMPORAL, params={"type": "Sensor"})
    assert "NGSILD-Results-Count" not in response.headers


async def test_query_with_no_match(client: httpx.AsyncClient) -> None:
    await given_city(client)
    assert await query(client, type="Bridge") == []


#: Invalid temporal parameters, each a 400 BadRequestData on both GET endpoints.
BAD_PARAMS = [
    pytest.param({"timerel": "after"}, id="timerel-without-timeAt"),
    pytest.param({"timerel": "between", "timeAt": at(1)}, id="between-without-endTimeAt"),
    pytest.param({"timerel": "between", "timeAt": at(2), "endTimeAt": at(1)}, id="end-before"),
    pytest.param({"timerel": "between", "timeAt": at(2), "endTimeAt": at(2)}, id="end-equal"),
    pytest.param({"timerel": "during", "timeAt": at(1)}, id="unknown-timerel"),
    pytest.param({"timeAt": at(1)}, id="timeAt-without-timerel"),
    pytest.param({"timerel": "after", "timeAt": "yesterday"}, id="bad-timeAt"),
    pytest.param({"timerel": "between", "timeAt": at(1), "endTimeAt": "soon"}, id="bad-end"),
    pytest.param({"timeproperty": "deletedAt"}, id="bad-timeproperty"),
    pytest.param({"lastN": "0"}, id="lastN-zero"),
    pytest.param({"lastN": "-3"}, id="lastN-negative"),
    pytest.param({"lastN": "three"}, id="lastN-not-a-number"),
    pytest.param({"options": "fancy"}, id="unknown-option"),
    pytest.param({"options": "keyValues"}, id="entity-option"),
    pytest.param(
        {"options": "temporalValues,aggregatedValues", "aggrMethods": "sum"},
        id="both-representations",
    ),  # fmt: skip
    pytest.param({"options": "aggregatedValues"}, id="aggregated-without-methods"),
    pytest.param({"options": "aggregatedValues", "aggrMethods": "sum,median"}, id="bad-method"),
    pytest.param(
        {"options": "aggregatedValues", "aggrMethods": "sum", "aggrPeriodDuration": "P1H"},
        id="bad-duration",
    ),  # fmt: skip
    pytest.param(
        {"options": "aggregatedValues", "aggrMethods": "sum", "aggrPeriodDuration": "1D"},
        id="duration-without-P",
    ),  # fmt: skip
    pytest.param(
        {"options": "aggregatedValues", "aggrMethods": "sum", "aggrPeriodDuration": "PT"},
        id="empty-duration",
    ),  # fmt: skip
    pytest.param(
        {
            "options": "aggregatedValues",
            "aggrMethods": "sum",
            "aggrPeriodDuration": "PT1S",
            "timerel": "between",
            "timeAt": "2024-01-01T00:00:00Z",
            "endTimeAt": "2024-01-02T00:00:00Z",
        },
        id="too-many-periods",
    ),  # fmt: skip
    pytest.param({"format": "fancy"}, id="unknown-format"),
]


@pytest.mark.parametrize("params", BAD_PARAMS)
async def test_bad_parameters_on_retrieve(
    client: httpx.AsyncClient, params: dict[str, str]
) -> None:
    await given_series(client)
    response = await client.get(f"{TEMPORAL}/{SENSOR}", params=params)
    assert_problem(response, 400, "BadRequestData")


@pytest.mark.parametrize("params", BAD_PARAMS)
async def test_bad_parameters_on_query(client: httpx.AsyncClient, params: dict[str, str]) -> None:
    await given_series(client)
    response = await client.get(TEMPORAL, params={"type": "Sensor", **params})
    assert_problem(response, 400, "BadRequestData")


async def test_unknown_query_parameter(client: httpx.AsyncClient) -> None:
    response = await client.get(TEMPORAL, params={"type": "Sensor", "lastn": "1"})
    assert_problem(response, 400, "BadRequestData")


async def test_unknown_entity_is_not_found(client: httpx.AsyncClient) -> None:
    await given_series(client)
    assert_problem(await client.get(f"{TEMPORAL}/{UNKNOWN}"), 404, "ResourceNotFound")
    response = await client.get(f"{TEMPORAL}/{UNKNOWN}", params={"options": "temporalValues"})
    assert_problem(response, 404, "ResourceNotFound")


async def test_entity_id_must_be_a_uri(client: httpx.AsyncClient) -> None:
    assert_problem(await client.get(f"{TEMPORAL}/not-a-uri"), 400, "BadRequestData")


# == aggregation ================================================================================


async def aggregated(
    client: httpx.AsyncClient, entity_id: str = SENSOR, **params: str
) -> dict[str, Any]:
    body = await raw_history(
        client, entity_id, options="aggregatedValues", aggrMethods=ALL_METHODS, **params
    )
    return body


def by_dataset(member: dict[str, Any] | list[dict[str, Any]]) -> dict[str | None, dict[str, Any]]:
    """An aggregated/temporalValues attribute keyed by datasetId (None: default instance)."""
    items = member if isinstance(member, list) else [member]
    if isinstance(member, list):
        assert len(items) > 1, "a single series must be an object, not a list"
    found: dict[str | None, dict[str, Any]] = {}
    for item in items:
        key = item.get("datasetId")
        assert key not in found, f"datasetId {key} appears twice"
        found[key] = item
    return found


async def test_aggregation_shape_with_one_and_several_datasets(client: httpx.AsyncClient) -> None:
    await temporal_create(
        client,
        {
            "id": SENSOR,
            "type": "Sensor",
            "temperature": [prop(1, at(0)), prop(3, at(1)), prop(3, at(2)),
                            prop(10, at(0), datasetId=NORTH), prop(20, at(3), datasetId=NORTH)],
            "humidity": [prop(50, at(0)), prop(70, at(1))],
        },
    )  # fmt: skip
    body = await raw_history(
        client, options="aggregatedValues", aggrMethods="totalCount,sum,avg,max",
        aggrPeriodDuration="PT0S", timerel="between", timeAt=at(0), endTimeAt=at(24),
    )  # fmt: skip
    whole = [at(0), at(24)]
    assert body["humidity"] == {
        "type": "Property",
        "totalCount": [[2, *whole]],
        "sum": [[120, *whole]],
        "avg": [[60, *whole]],
        "max": [[70, *whole]],
    }
    assert isinstance(body["temperature"], list)
    assert by_dataset(body["temperature"]) == {
        None: {"type": "Property", "totalCount": [[3, *whole]], "sum": [[7, *whole]],
               "avg": [[pytest.approx(7 / 3), *whole]], "max": [[3, *whole]]},
        NORTH: {"type": "Property", "datasetId": NORTH, "totalCount": [[2, *whole]],
                "sum": [[30, *whole]], "avg": [[15, *whole]], "max": [[20, *whole]]},
    }  # fmt: skip
    assert set(body) == {"id", "type", "temperature", "humidity"}


async def test_aggregation_omits_periods_without_data(client: httpx.AsyncClient) -> None:
    await temporal_create(
        client,
        {"id": SENSOR, "type": "Sensor",
         "temperature": [prop(1, at(1)), prop(2, at(2)), prop(4, at(50)), prop(8, at(51))]},
    )  # fmt: skip
    body = await raw_history(
        client, options="aggregatedValues", aggrMethods="sum,totalCount",
        aggrPeriodDuration="P1D", timerel="after", timeAt=at(0),
    )  # fmt: skip
    day0, day2, day3 = at(0), at(48), at(72)
    assert body == {
        "id": SENSOR,
        "type": "Sensor",
        "temperature": {
            "type": "Property",
            "sum": [[3, day0, at(24)], [12, day2, day3]],
            "totalCount": [[2, day0, at(24)], [2, day2, day3]],
        },
    }


async def test_aggregation_periods_start_at_time_at(client: httpx.AsyncClient) -> None:
    await temporal_create(
        client,
        {"id": SENSOR, "type": "Sensor",
         "temperature": [prop(1, at(1)), prop(2, at(7)), prop(4, at(13))]},
    )  # fmt: skip
    body = await raw_history(
        client, options="aggregatedValues", aggrMethods="sum", aggrPeriodDuration="PT6H",
        timerel="between", timeAt=at(0.5), endTimeAt=at(12.5),
    )  # fmt: skip
    assert body["temperature"] == {
        "type": "Property",
        "sum": [[1, at(0.5), at(6.5)], [2, at(6.5), at(12.5)]],
    }
    body = await raw_history(
        client, options="aggregatedValues", aggrMethods="sum", aggrPeriodDuration="PT0S",
    )  # fmt: skip
    # Without timerel the range is [first, last + 1 ms).
    assert body["temperature"] == {
        "type": "Property",
        "sum": [[7, at(1), "2024-05-01T13:00:00.001Z"]],
    }


async def test_aggregation_of_nothing(client: httpx.AsyncClient) -> None:
    await temporal_create(client, {"id": SENSOR, "type": "Sensor", "temperature": [prop(1, at(1))]})
    for params in (
        {"timerel": "after", "timeAt": at(2)},
        {"timerel": "before", "timeAt": at(0)},
        {"timerel": "between", "timeAt": at(2), "endTimeAt": at(3)},
    ):
        body = await aggregated(client, aggrPeriodDuration="PT1H", **params)
        assert body == {"id": SENSOR, "type": "Sensor"}, params


# -- random series against numpy ---------------------------------------------------------------


@dataclass
class Series:
    attr: str
    dataset: str | None
    times: np.ndarray  # int64 milliseconds since the epoch, increasing
    values: np.ndarray  # float64

    def instances(self, part: slice) -> list[dict[str, Any]]:
        extra = {} if self.dataset is None else {"datasetId": self.dataset}
        return [
            prop(float(v), iso(int(t)), **extra)
            for t, v in zip(self.times[part], self.values[part], strict=True)
        ]


SERIES_START = ms_of("2024-01-03T07:13:21.500Z")
#: attribute, datasetId, mean, spread of each generated series
SERIES_SPECS = [
    ("temperature", None, 18.0, 6.0),
    ("temperature", NORTH, 12.0, 4.0),
    ("temperature", SOUTH, 25.0, 3.0),
    ("humidity", None, 60.0, 15.0),
]


def generate(seed: int) -> list[Series]:
    """Irregular readings: mostly minutes apart, sometimes hours, now and then days."""
    rng = np.random.default_rng(seed)
    found = []
    for attr, dataset, mean, spread in SERIES_SPECS:
        n = int(rng.integers(150, 500))
        kind = rng.random(n)
        gaps = np.where(
            kind < 0.8,
            rng.exponential(20 * 60_000, n),
            np.where(kind < 0.95, rng.uniform(HOUR_MS, 12 * HOUR_MS, n),
                     rng.uniform(DAY_MS, 4 * DAY_MS, n)),
        )  # fmt: skip
        gaps = np.maximum(gaps.astype(np.int64), 1000)
        times = SERIES_START + int(rng.integers(0, 6 * HOUR_MS)) + np.cumsum(gaps)
        values = np.round(rng.normal(mean, spread, n), 1)  # rounding makes duplicates
        found.append(Series(attr, dataset, times.astype(np.int64), values))
    return found


def add_months(moment: datetime, months: int) -> datetime:
    index = moment.month - 1 + months
    year, month = moment.year + index // 12, index % 12 + 1
    return moment.replace(
        year=year, month=month, day=min(moment.day, calendar.monthrange(year, month)[1])
    )


def period_edges(since: int, until: int, duration: str) -> list[int]:
    """Starts of consecutive periods from ``since`` covering [since, until), plus the last end."""
    if duration == "PT0S":
        return [since, until]
    edges = [since]
    if duration == "P1M":
        origin = EPOCH + timedelta(milliseconds=since)
        while edges[-1] < until:
            edges.append(ms_of(iso_of(add_months(origin, len(edges)))))
        return edges
    step = {"P1D": DAY_MS, "PT6H": 6 * HOUR_MS}[duration]
    while edges[-1] < until:
        edges.append(edges[-1] + step)
    return edges


def numpy_aggregation(
    series: list[Series], since: int | None, until: int | None, duration: str
) -> dict[str, dict[str | None, dict[str, list[tuple[Any, str, str]]]]]:
    """attr -> datasetId -> method -> [(value, start, end)], computed with numpy."""

    def in_range(times: np.ndarray, low: int | None, high: int | None) -> np.ndarray:
        mask = np.ones(times.shape, dtype=bool)
        if low is not None:
            mask &= times >= low
        if high is not None:
            mask &= times < high
        return mask

    selected = np.concatenate([s.times[in_range(s.times, since, until)] for s in series])
    if selected.size == 0:
        return {}
    low = since if since is not None else int(selected.min())
    high = until if until is not None else int(selected.max()) + 1
    edges = np.array(period_edges(low, high, duration), dtype=np.int64)
    result: dict[str, dict[str | None, dict[str, list[tuple[Any, str, str]]]]] = {}
    for s in series:
        mask = in_range(s.times, low, high)
        times, values = s.times[mask], s.values[mask]
        if times.size == 0:
            continue
        index = np.searchsorted(edges, times, side="right") - 1
        assert index.min() >= 0 and index.max() < len(edges) - 1
        methods: dict[str, list[tuple[Any, str, str]]] = {m: [] for m in METHODS}
        for k in np.unique(index):
            chunk = values[index == k]
            start, end = iso(int(edges[k])), iso(int(edges[k + 1]))
            computed = {
                "totalCount": int(chunk.size),
                "distinctCount": int(np.unique(chunk).size),
                "sum": float(chunk.sum()),
                "avg": float(chunk.mean()),
                "min": float(chunk.min()),
                "max": float(chunk.max()),
                "stddev": float(chunk.std(ddof=0)),
                "sumsq": float(np.sum(chunk * chunk)),
            }
            for method in METHODS:
                methods[method].append((computed[method], start, end))
        result.setdefault(s.attr, {})[s.dataset] = methods
    return result


def assert_value(method: str, got: Any, want: Any, where: str) -> None:
    if method in ("totalCount", "distinctCount"):
        assert got == want and isinstance(got, int), where
    elif method in ("min", "max"):
        assert got == want, where
    elif method == "stddev":
        # abs: n equal values give sqrt(rounding noise) ~ 1e-7 with sumsq/n - mean^2
        assert got == pytest.approx(want, rel=1e-6, abs=1e-6), where
    else:
        assert got == pytest.approx(want, rel=1e-9), where


def assert_aggregation(body: dict[str, Any], expected: dict[str, Any], label: str) -> None:
    assert set(body) == {"id", "type", *expected}, label
    for attr, datasets in expected.items():
        got = by_dataset(body[attr])
        assert set(got) == set(datasets), f"{label} {attr}"
        for dataset, methods in datasets.items():
            item = got[dataset]
            members = {"type", *METHODS} | ({"datasetId"} if dataset else set())
            assert set(item) == members, f"{label} {attr} {dataset}"
            assert item["type"] == "Property"
            for method in METHODS:
                where = f"{label} {attr} {dataset} {method}"
                have, want = item[method], methods[method]
                assert [h[1:] for h in have] == [[w[1], w[2]] for w in want], where
                for h, w in zip(have, want, strict=True):
                    assert_value(method, h[0], w[0], f"{where} {w[1]}")


#: (timerel parameters, since, until) of each aggregated query.
AGGREGATION_QUERIES = [
    ({}, None, None),
    ({"timerel": "after", "timeAt": "2024-01-20T00:00:00.000Z"}, "2024-01-20T00:00:00.000Z", None),
    ({"timerel": "before", "timeAt": "2024-02-05T00:00:00.000Z"}, None, "2024-02-05T00:00:00.000Z"),
    ({"timerel": "between", "timeAt": "2024-01-10T09:30:00.000Z",
      "endTimeAt": "2024-02-20T06:00:00.000Z"},
     "2024-01-10T09:30:00.000Z", "2024-02-20T06:00:00.000Z"),
]  # fmt: skip
PERIODS = ("P1D", "PT6H", "P1M", "PT0S")


@pytest.mark.parametrize("seed", [7, 2024, 31337, 4242])
async def test_aggregation_of_random_series_matches_numpy(
    client: httpx.AsyncClient, seed: int
) -> None:
    series = generate(seed)
    total = sum(s.times.size for s in series)
    assert 600 <= total <= 2000
    # Written through the temporal API: half by creation, the rest appended to the entity.
    first = {"id": SENSOR, "type": "WeatherObserved"}
    rest: dict[str, Any] = {}
    for s in series:
        half = s.times.size // 2
        first.setdefault(s.attr, []).extend(s.instances(slice(None, half)))
        rest.setdefault(s.attr, []).extend(s.instances(slice(half, None)))
    await temporal_create(client, first)
    assert_no_content(await client.post(f"{TEMPORAL}/{SENSOR}/attrs", json=rest))

    gaps_seen = False
    for params, since, until in AGGREGATION_QUERIES:
        for duration in PERIODS:
            label = f"seed={seed} {params} {duration}"
            expected = numpy_aggregation(
                series,
                ms_of(since) if since else None,
                ms_of(until) if until else None,
                duration,
            )
            assert expected, f"{label}: the generated data should fall in the range"
            body = await aggregated(client, aggrPeriodDuration=duration, **params)
            assert_aggregation(body, expected, label)
            if duration == "PT6H":
                for datasets in expected.values():
                    for methods in datasets.values():
                        starts = [ms_of(p[1]) for p in methods["sum"]]
                        gaps_seen |= any(
                            b - a > 6 * HOUR_MS for a, b in zip(starts, starts[1:], strict=False)
                        )
    assert gaps_seen, "some 6-hour periods without data must have been left out"


async def test_aggregation_of_one_attribute_and_other_time_property(
    client: httpx.AsyncClient,
) -> None:
    series = generate(99)
    payload: dict[str, Any] = {"id": SENSOR, "type": "WeatherObserved"}
    for s in series:
        payload.setdefault(s.attr, []).extend(s.instances(slice(None)))
    await temporal_create(client, payload)
    humidity = [s for s in series if s.attr == "humidity"]
    params = {"timerel": "after", "timeAt": "2024-01-15T00:00:00.000Z"}
    body = await aggregated(client, aggrPeriodDuration="P1D", attrs="humidity", **params)
    assert_aggregation(
        body, numpy_aggregation(humidity, ms_of(params["timeAt"]), None, "P1D"), "attrs=humidity"
    )
    # On modifiedAt every instance was recorded at the same moment: one period holds them all.
    body = await aggregated(client, aggrPeriodDuration="PT0S", timeproperty="modifiedAt")
    counts = {
        (attr, dataset): item["totalCount"][0][0]
        for attr in ("temperature", "humidity")
        for dataset, item in by_dataset(body[attr]).items()
    }
    assert counts == {(s.attr, s.dataset): s.times.size for s in series}


async def test_stddev_of_values_with_a_large_offset(client: httpx.AsyncClient) -> None:
    rng = np.random.default_rng(5)
    values = 123_456_789.0 + np.round(rng.normal(0.0, 2.0, 500), 3)  # an odometer, in metres
    times = SERIES_START + np.arange(500, dtype=np.int64) * 60_000
    series = Series("odometer", None, times, values)
    await temporal_create(
        client, {"id": SENSOR, "type": "Vehicle", "odometer": series.instances(slice(None))}
    )
    body = await aggregated(client, aggrPeriodDuration="PT0S")
    assert_aggregation(body, numpy_aggregation([series], None, None, "PT0S"), "odometer")


# == temporal writes ============================================================================


async def test_create_temporal_entity(client: httpx.AsyncClient) -> None:
    response = await client.post(
        TEMPORAL,
        json={
            "id": SENSOR,
            "type": "Sensor",
            "temperature": [prop(20, at(2)), prop(18, at(0)), prop(19, at(1)),
                            prop(5, at(1), datasetId=NORTH)],
            "observedBy": rel(STATION_A, at(0)),
        },
    )  # fmt: skip
    assert response.status_code == 201, response.text
    assert response.headers["Location"] == f"{TEMPORAL}/{SENSOR}"
    assert response.content == b""
    assert await history(client) == {
        "id": SENSOR,
        "type": "Sensor",
        "temperature": [prop(18, at(0)), prop(19, at(1)), prop(5, at(1), datasetId=NORTH),
                        prop(20, at(2))],
        "observedBy": [rel(STATION_A, at(0))],
    }  # fmt: skip
    # The current state holds the latest instance of each dataset.
    assert await current(client) == {
        "id": SENSOR,
        "type": "Sensor",
        "temperature": [prop(20, at(2)), prop(5, at(1), datasetId=NORTH)],
        "observedBy": rel(STATION_A, at(0)),
    }


async def test_posting_to_an_existing_entity_adds_instances(client: httpx.AsyncClient) -> None:
    await create(client, {"id": SENSOR, "type": "Sensor", "temperature": prop(20, at(0)),
                          "humidity": prop(55, at(0))})  # fmt: skip
    response = await client.post(
        TEMPORAL,
        json={"id": SENSOR, "type": "Sensor", "temperature": [prop(21, at(1)), prop(22, at(2))]},
    )
    assert_no_content(response)
    assert await history(client) == {
        "id": SENSOR,
        "type": "Sensor",
        "temperature": [prop(20, at(0)), prop(21, at(1)), prop(22, at(2))],
        "humidity": [prop(55, at(0))],
    }
    assert (await current(client))["temperature"] == prop(22, at(2))


async def test_backfilling_old_instances_keeps_the_current_state(
    client: httpx.AsyncClient,
) -> None:
    await temporal_create(
        client,
        {"id": SENSOR, "type": "Sensor", "temperature": [prop(30, "2024-06-01T00:00:00.000Z")]},
    )
    response = await client.post(
        TEMPORAL,
        json={
            "id": SENSOR,
            "type": "Sensor",
            "temperature": [prop(10, "2023-06-01T00:00:00.000Z")],
        },
    )
    assert_no_content(response)
    assert (await current(client))["temperature"] == prop(30, "2024-06-01T00:00:00.000Z")


async def test_a_new_temporal_entity_needs_a_type(client: httpx.AsyncClient) -> None:
    response = await client.post(TEMPORAL, json={"id": SENSOR, "temperature": [prop(1, at(0))]})
    assert_problem(response, 400, "BadRequestData")
    assert_problem(await client.get(f"{TEMPORAL}/{SENSOR}"), 404, "ResourceNotFound")
    response = await client.post(TEMPORAL, json={"type": "Sensor", "temperature": [prop(1, at(0))]})
    assert_problem(response, 400, "BadRequestData")


async def test_append_temporal_attributes(client: httpx.AsyncClient) -> None:
    await given_series(client)
    response = await client.post(
        f"{TEMPORAL}/{SENSOR}/attrs",
        json={"temperature": [prop(16, at(6)), prop(106, at(6), datasetId=NORTH)],
              "humidity": [prop(40, at(6))]},
    )  # fmt: skip
    assert_no_content(response)
    body = await history(client)
    assert body["temperature"][-2:] == [prop(16, at(6)), prop(106, at(6), datasetId=NORTH)]
    assert len(body["temperature"]) == len(TEMPERATURES) + len(NORTH_TEMPERATURES) + 2
    assert body["humidity"] == [prop(40, at(6))]
    assert (await current(client))["humidity"] == prop(40, at(6))


async def test_append_temporal_attributes_to_an_unknown_entity(client: httpx.AsyncClient) -> None:
    response = await client.post(
        f"{TEMPORAL}/{UNKNOWN}/attrs", json={"temperature": [prop(16, at(6))]}
    )
    assert_problem(response, 404, "ResourceNotFound")
    assert_problem(await client.get(f"{TEMPORAL}/{UNKNOWN}"), 404, "ResourceNotFound")
    assert_problem(await client.get(f"{ENTITIES}/{UNKNOWN}"), 404, "ResourceNotFound")


async def test_modify_an_instance(client: httpx.AsyncClient) -> None:
    await given_series(client)
    before = await raw_history(client)
    index = 3  # 10, 11, 101.5 (north), 12, ...
    target = before["temperature"][index]
    assert (target["value"], target["observedAt"]) == (12, at(2))
    response = await client.patch(
        f"{TEMPORAL}/{SENSOR}/attrs/temperature/{target['instanceId']}",
        json=prop(-12, at(2), unitCode="CEL"),
    )
    assert_no_content(response)
    after = await raw_history(client)
    changed = dict(before)
    changed["temperature"] = list(before["temperature"])
    changed["temperature"][index] = {**prop(-12, at(2), unitCode="CEL"),
                                 "instanceId": target["instanceId"]}  # fmt: skip
    assert after == changed


async def test_modify_an_instance_to_another_time_moves_it(client: httpx.AsyncClient) -> None:
    await given_series(client)
    ids = await instance_ids(client, "observedBy")
    response = await client.patch(
        f"{TEMPORAL}/{SENSOR}/attrs/observedBy/{ids[0]}", json=rel(STATION_B, at(9))
    )
    assert_no_content(response)
    body = await raw_history(client, attrs="observedBy")
    assert body["observedBy"] == [
        {**rel(STATION_B, at(3)), "instanceId": ids[1]},
        {**rel(STATION_B, at(9)), "instanceId": ids[0]},
    ]


async def test_aggregation_sees_a_modified_instance(client: httpx.AsyncClient) -> None:
    await temporal_create(
        client,
        {"id": SENSOR, "type": "Sensor",
         "temperature": [prop(1, at(0)), prop(2, at(1)), prop(3, at(2))]},
    )  # fmt: skip
    ids = await instance_ids(client, "temperature")
    response = await client.patch(
        f"{TEMPORAL}/{SENSOR}/attrs/temperature/{ids[1]}", json=prop(20, at(1))
    )
    assert_no_content(response)
    body = await raw_history(
        client, options="aggregatedValues", aggrMethods="sum,max",
        timerel="between", timeAt=at(0), endTimeAt=at(3),
    )  # fmt: skip
    assert body["temperature"] == {
        "type": "Property",
        "sum": [[24, at(0), at(3)]],
        "max": [[20, at(0), at(3)]],
    }


async def test_modify_unknown_instances(client: httpx.AsyncClient) -> None:
    await given_series(client)
    ids = await instance_ids(client, "temperature")
    url = f"{TEMPORAL}/{SENSOR}/attrs/temperature/{INSTANCE_PREFIX}missing"
    assert_problem(await client.patch(url, json=prop(1, at(1))), 404, "ResourceNotFound")
    # An instance id of another attribute, or of an unknown entity.
    url = f"{TEMPORAL}/{SENSOR}/attrs/observedBy/{ids[0]}"
    assert_problem(await client.patch(url, json=rel(STATION_A)), 404, "ResourceNotFound")
    url = f"{TEMPORAL}/{UNKNOWN}/attrs/temperature/{ids[0]}"
    assert_problem(await client.patch(url, json=prop(1, at(1))), 404, "ResourceNotFound")
    assert await history(client) == expected_series()


async def test_delete_an_instance(client: httpx.AsyncClient) -> None:
    await given_series(client)
    ids = await instance_ids(client, "temperature")
    url = f"{TEMPORAL}/{SENSOR}/attrs/temperature/{ids[0]}"
    assert_no_content(await client.delete(url))
    body = await raw_history(client)
    assert [i["instanceId"] for i in body["temperature"]] == ids[1:]
    assert strip_instance_ids(body)[0]["temperature"] == expected_series()["temperature"][1:]
    assert_problem(await client.delete(url), 404, "ResourceNotFound")
    other = f"{TEMPORAL}/{SENSOR}/attrs/observedBy/{ids[1]}"
    assert_problem(await client.delete(other), 404, "ResourceNotFound")


async def test_delete_a_temporal_attribute_default_instances_only(
    client: httpx.AsyncClient,
) -> None:
    await given_series(client)
    assert_no_content(await client.delete(f"{TEMPORAL}/{SENSOR}/attrs/temperature"))
    assert await history(client) == {
        "id": SENSOR,
        "type": "Sensor",
        "temperature": [prop(v, t, datasetId=NORTH) for t, v in NORTH_TEMPERATURES],
        "observedBy": [rel(o, t) for t, o in OBSERVERS],
    }
    response = await client.delete(f"{TEMPORAL}/{SENSOR}/attrs/temperature")
    assert_problem(response, 404, "ResourceNotFound")


async def test_delete_a_temporal_attribute_dataset(client: httpx.AsyncClient) -> None:
    await given_series(client)
    response = await client.delete(
        f"{TEMPORAL}/{SENSOR}/attrs/temperature", params={"datasetId": NORTH}
    )
    assert_no_content(response)
    assert await history(client) == {
        "id": SENSOR,
        "type": "Sensor",
        "temperature": [prop(v, t) for t, v in TEMPERATURES],
        "observedBy": [rel(o, t) for t, o in OBSERVERS],
    }
    response = await client.delete(
        f"{TEMPORAL}/{SENSOR}/attrs/temperature", params={"datasetId": SOUTH}
    )
    assert_problem(response, 404, "ResourceNotFound")


async def test_delete_a_temporal_attribute_entirely(client: httpx.AsyncClient) -> None:
    await given_series(client)
    response = await client.delete(
        f"{TEMPORAL}/{SENSOR}/attrs/temperature", params={"deleteAll": "true"}
    )
    assert_no_content(response)
    assert await history(client) == {
        "id": SENSOR,
        "type": "Sensor",
        "observedBy": [rel(o, t) for t, o in OBSERVERS],
    }
    response = await client.delete(
        f"{TEMPORAL}/{SENSOR}/attrs/temperature", params={"deleteAll": "true"}
    )
    assert_problem(response, 404, "ResourceNotFound")
    response = await client.delete(
        f"{TEMPORAL}/{SENSOR}/attrs/nothing", params={"deleteAll": "true"}
    )
    assert_problem(response, 404, "ResourceNotFound")


async def test_delete_a_temporal_entity(client: httpx.AsyncClient) -> None:
    await given_series(client)
    await create(client, {"id": OTHER, "type": "Sensor", "temperature": prop(1, at(0))})
    assert_no_content(await client.delete(f"{TEMPORAL}/{SENSOR}"))
    assert_problem(await client.get(f"{TEMPORAL}/{SENSOR}"), 404, "ResourceNotFound")
    assert_problem(await client.get(f"{ENTITIES}/{SENSOR}"), 404, "ResourceNotFound")
    assert_problem(await client.delete(f"{TEMPORAL}/{SENSOR}"), 404, "ResourceNotFound")
    assert (await history(client, OTHER))["temperature"] == [prop(1, at(0))]


async def test_delete_the_history_of_an_entity_deleted_before(client: httpx.AsyncClient) -> None:
    await create(client, {"id": SENSOR, "type": "Sensor", "temperature": prop(1, at(0))})
    assert_no_content(await client.delete(f"{ENTITIES}/{SENSOR}"))
    assert_no_content(await client.delete(f"{TEMPORAL}/{SENSOR}"))
    assert_problem(await client.get(f"{TEMPORAL}/{SENSOR}"), 404, "ResourceNotFound")


async def test_delete_an_unknown_temporal_entity(client: httpx.AsyncClient) -> None:
    assert_problem(await client.delete(f"{TEMPORAL}/{UNKNOWN}"), 404, "ResourceNotFound")
    response = await client.delete(f"{TEMPORAL}/{UNKNOWN}/attrs/temperature")
    assert_problem(response, 404, "ResourceNotFound")


# == retention ==================================================================================


@contextlib.asynccontextmanager
async def running_app(settings: Settings) -> AsyncIterator[tuple[Starlette, httpx.AsyncClient]]:
    """The app (as conftest builds it) and a client, inside the app's lifespan."""
    app = build_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            yield app, client


TENANTS = ("", "roubaix", "carouge")


async def given_tenants(client: httpx.AsyncClient) -> None:
    """In each tenant, a sensor observed in 2020 (long ago) and updated once."""
    for name in TENANTS:
        headers = {"NGSILD-Tenant": name} if name else {}
        sensor = {
            "id": SENSOR,
            "type": "Sensor",
            "temperature": prop(1, "2020-01-01T00:00:00.000Z"),
        }
        await create(client, sensor, **headers)
        response = await client.patch(
            f"{ENTITIES}/{SENSOR}/attrs",
            json={"temperature": prop(2, "2020-01-02T00:00:00.000Z")},
            headers=headers,
        )
        assert_no_content(response)


async def kept(client: httpx.AsyncClient) -> dict[str, list[Any]]:
    """Tenant -> the temperature values still in its history."""
    found = {}
    for name in TENANTS:
        headers = {"NGSILD-Tenant": name} if name else {}
        body = await raw_history(client, headers=headers)
        found[name] = [i["value"] for i in body.get("temperature", [])]
    return found


@contextlib.contextmanager
def clock_ahead(monkeypatch: pytest.MonkeyPatch, days: float) -> Iterator[str]:
    """The broker's clock (for purge_history) moved some days ahead."""
    future = iso_of(datetime.now(UTC) + timedelta(days=days))
    with monkeypatch.context() as patch:
        patch.setattr(broker_module, "now_iso", lambda: future)
        yield future


def spy_purges(broker: Broker, monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, str]]:
    calls: list[tuple[str, str]] = []
    real = broker.store.purge_history

    async def purge(tenant: str, older_than: str) -> int:
        calls.append((tenant, older_than))
        return await real(tenant, older_than)

    monkeypatch.setattr(broker.store, "purge_history", purge)
    return calls


def test_retention_settings() -> None:
    retention = Retention(days=30, per_tenant={"roubaix": 2, "carouge": 0})
    assert retention.enabled
    assert [retention.days_for(t) for t in ("", "roubaix", "carouge", "lyon")] == [30, 2, 0, 30]
    assert not Retention().enabled
    assert not Retention(per_tenant={"roubaix": 0}).enabled
    assert Retention(per_tenant={"roubaix": 5}).enabled


async def test_store_purge_deletes_what_was_recorded_before(
    settings_factory: SettingsFactory,
) -> None:
    async with running_app(settings_factory()) as (app, client):
        await given_tenants(client)
        store = app.state.broker.store
        assert await store.purge_history("", "2000-01-01T00:00:00.000Z") == 0
        # The observation times (2020) do not matter: only the recording time does.
        assert await store.purge_history("", "2021-01-01T00:00:00.000Z") == 0
        future = iso_of(datetime.now(UTC) + timedelta(minutes=5))
        assert await store.purge_history("roubaix", future) == 2
        assert await kept(client) == {"": [1, 2], "roubaix": [], "carouge": [1, 2]}
        # The current state is not history: it stays.
        response = await client.get(f"{ENTITIES}/{SENSOR}", headers={"NGSILD-Tenant": "roubaix"})
        assert response.json()["temperature"] == prop(2, "2020-01-02T00:00:00.000Z")
        assert await store.purge_history("roubaix", future) == 0


async def test_retention_keeps_recent_records_of_old_observations(
    settings_factory: SettingsFactory,
) -> None:
    async with running_app(settings_factory(history_retention_days=1)) as (app, client):
        await given_tenants(client)
        broker: Broker = app.state.broker
        assert broker.retention == Retention(days=1, per_tenant={})
        assert await broker.purge_history() == 0
        assert await kept(client) == {name: [1, 2] for name in TENANTS}


async def test_retention_days_purges_every_tenant(
    settings_factory: SettingsFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with running_app(settings_factory(history_retention_days=1)) as (app, client):
        await given_tenants(client)
        broker: Broker = app.state.broker
        calls = spy_purges(broker, monkeypatch)
        with clock_ahead(monkeypatch, 0.5):
            assert await broker.purge_history() == 0  # recorded half a day "ago"
        assert sorted(c[0] for c in calls) == sorted(TENANTS)
        with clock_ahead(monkeypatch, 2) as future:
            assert await broker.purge_history() == 6
        cutoff = iso_of(datetime.fromisoformat(future.replace("Z", "+00:00")) - timedelta(days=1))
        assert sorted(calls[-3:]) == sorted((name, cutoff) for name in TENANTS)
        assert await kept(client) == {name: [] for name in TENANTS}
        # The temporal entities themselves remain retrievable, without instances.
        assert await raw_history(client) == {"id": SENSOR, "type": "Sensor"}


async def test_retention_override_applies_only_to_its_tenant(
    settings_factory: SettingsFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with running_app(settings_factory(history_retention_tenants="roubaix=2")) as (
        app,
        client,
    ):
        await given_tenants(client)
        broker: Broker = app.state.broker
        assert broker.retention == Retention(days=0, per_tenant={"roubaix": 2})
        calls = spy_purges(broker, monkeypatch)
        assert await broker.purge_history() == 0
        assert [c[0] for c in calls] == ["roubaix"]
        with clock_ahead(monkeypatch, 1):
            assert await broker.purge_history() == 0  # 1 day old < 2 days kept
        with clock_ahead(monkeypatch, 3):
            assert await broker.purge_history() == 2
        assert [c[0] for c in calls] == ["roubaix"] * 3
        assert await kept(client) == {"": [1, 2], "roubaix": [], "carouge": [1, 2]}


async def test_retention_per_tenant_overrides_the_default(
    settings_factory: SettingsFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with running_app(settings_factory()) as (app, client):
        await given_tenants(client)
        broker: Broker = app.state.broker
        broker.retention = Retention(days=5, per_tenant={"roubaix": 1, "carouge": 0})
        calls = spy_purges(broker, monkeypatch)
        with clock_ahead(monkeypatch, 3):
            assert await broker.purge_history() == 2
        assert [c[0] for c in calls] == ["", "roubaix"]  # carouge keeps everything
        assert await kept(client) == {"": [1, 2], "roubaix": [], "carouge": [1, 2]}
        with clock_ahead(monkeypatch, 6):
            assert await broker.purge_history() == 2
        assert await kept(client) == {"": [], "roubaix": [], "carouge": [1, 2]}
