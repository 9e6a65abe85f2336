"""What the simulator puts on the wire: UltraLight 2.0 frames, topics, IoT Agent provisioning."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from agilecity.ingest.simulator.base import Reading
from agilecity.ingest.simulator.provisioning import device_groups, devices, topic, ultralight
from agilecity.ingest.simulator.town import Town

UNIT_CODES = {"CEL", "KWH", "WTT", "2N", "P1", "C62", "MMT", "MTS", "59", "D54"}
TYPES = {"Text", "Number", "Integer", "Boolean", "DateTime"}


def parse_ultralight(text: str) -> tuple[str | None, dict[str, str]]:
    """A tiny UltraLight 2.0 parser: one measure group, optional leading timestamp."""
    fields = text.split("|")
    timestamp = None
    if len(fields) % 2 == 1:  # an odd field count: the first is the group's timestamp
        timestamp, fields = fields[0], fields[1:]
    return timestamp, dict(zip(fields[::2], fields[1::2], strict=True))


@pytest.fixture(scope="module")
def town() -> Town:
    return Town(seed=1)


def test_ultralight_frame_shape() -> None:
    reading = Reading(
        datetime(2026, 12, 1, 10, 15, tzinfo=UTC), "key", "ps-0001", {"st": "occupied"}
    )
    assert ultralight(reading) == "2026-12-01T10:15:00Z|st|occupied"
    assert topic(reading) == "/key/ps-0001/attrs"
    several = Reading(reading.time, "key", "nm-01", {"l": 62.3, "m": 70.1, "n": 3, "b": True})
    assert ultralight(several) == "2026-12-01T10:15:00Z|l|62.3|m|70.1|n|3|b|true"
    with pytest.raises(ValueError):
        ultralight(Reading(reading.time, "key", "x", {"st": "a|b"}))


def test_ultralight_round_trips_every_kind(town: Town) -> None:
    readings = list(town.readings(town.origin, town.origin + timedelta(hours=3)))
    assert {town.kind_of(r.device_id).key for r in readings} == set(town.apikeys)
    for reading in readings:
        timestamp, measures = parse_ultralight(ultralight(reading))
        assert timestamp is not None
        assert datetime.fromisoformat(timestamp) == reading.time
        kind = town.kind_of(reading.device_id)
        assert set(measures) == set(reading.measures)
        for key, text in measures.items():
            value = reading.measures[key]
            measure = kind.measure(key)
            if measure.type == "Number":
                assert float(text) == value
            elif measure.type == "Integer":
                assert int(text) == value
            elif measure.type == "DateTime":
                assert datetime.fromisoformat(text).tzinfo is not None
                assert text == value
            else:
                assert text == value


def test_device_groups(town: Town) -> None:
    groups = device_groups(town, cbroker="http://broker:1026")["services"]
    assert len(groups) == 9
    assert {g["apikey"] for g in groups} == set(town.apikeys.values())
    kind_of_type = {d.kind.entity_type: d.kind for d in town.devices}
    for group in groups:
        assert group["cbroker"] == "http://broker:1026"
        assert group["resource"] == "/iot/d"
        kind = kind_of_type[group["entity_type"]]
        assert group["apikey"] == town.apikeys[kind.key]
        assert [a["object_id"] for a in group["attributes"]] == [m.object_id for m in kind.measures]
    assert {g["entity_type"] for g in groups} == {
        "ParkingSpot", "NoiseLevelObserved", "SmartMeteringObservation", "AirQualityObserved",
        "Streetlight", "GreenspaceRecord", "WeatherObserved", "EVChargingStation", "WasteContainer",
    }  # fmt: skip


def test_devices_map_every_measure_to_an_entity_attribute(town: Town) -> None:
    listing = devices(town)["devices"]
    entities = {e["id"]: e for e in town.entities()}
    assert len(listing) == len(town.devices) == len({d["device_id"] for d in listing})
    for device in listing:
        assert device["protocol"] == "PDI-IoTA-UltraLight" and device["transport"] == "MQTT"
        assert device["apikey"] == town.apikeys[town.kind_of(device["device_id"]).key]
        entity = entities[device["entity_name"]]
        assert entity["type"] == device["entity_type"]
        assert (
            device["entity_name"]
            == f"urn:ngsi-ld:{device['entity_type']}:demo-{device['device_id']}"
        )
        for attribute in device["attributes"]:
            assert attribute["type"] in TYPES
            assert set(attribute) <= {"object_id", "name", "type", "metadata"}
            if "metadata" in attribute:
                unit = attribute["metadata"]["unitCode"]
                assert unit["type"] == "Text" and unit["value"] in UNIT_CODES
            if attribute["type"] in ("Number", "Integer"):
                assert "metadata" in attribute, attribute
    parking = next(d for d in listing if d["device_id"] == "ps-0001")
    assert parking["attributes"] == [{"object_id": "st", "name": "status", "type": "Text"}]
    noise = next(d for d in listing if d["device_id"] == "nm-01")
    assert noise["attributes"][0] == {
        "object_id": "l", "name": "LAeq", "type": "Number",
        "metadata": {"unitCode": {"type": "Text", "value": "2N"}},
    }  # fmt: skip
