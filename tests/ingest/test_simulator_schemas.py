"""Every entity the demo town creates validates against its Smart Data Models schema, as
created and after a day of readings applied through the provisioning's attribute mapping."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta
from typing import Any

import pytest
from tests.ingest.simulator_support import SCHEMAS, apply_readings, key_values, schema_errors

from agilecity.ingest.simulator.town import Town


@pytest.fixture(scope="module")
def town() -> Town:
    return Town(seed=1)


@pytest.fixture(scope="module")
def entities(town: Town) -> list[dict[str, Any]]:
    return town.entities()


def test_every_entity_type_has_a_reference_schema(entities: list[dict[str, Any]]) -> None:
    assert {e["type"] for e in entities} == set(SCHEMAS)


def test_entity_counts(entities: list[dict[str, Any]]) -> None:
    assert Counter(e["type"] for e in entities) == {
        "ParkingSpot": 200,
        "OnStreetParking": 22,
        "NoiseLevelObserved": 10,
        "Building": 10,
        "SmartMeteringObservation": 20,
        "AirQualityObserved": 10,
        "Streetlight": 120,
        "Garden": 7,
        "GreenspaceRecord": 8,
        "WeatherObserved": 1,
        "EVChargingStation": 6,
        "WasteContainer": 40,
    }


def test_created_entities_validate(entities: list[dict[str, Any]]) -> None:
    errors = [message for e in entities for message in schema_errors(e)]
    assert errors == []


def test_the_validator_rejects_what_the_schema_forbids(entities: list[dict[str, Any]]) -> None:
    """Guard against a validator that accepts everything (e.g. refs left unresolved)."""
    spot = next(e for e in entities if e["type"] == "ParkingSpot")
    assert schema_errors({**spot, "status": {"type": "Property", "value": "parked"}})
    weather = next(e for e in entities if e["type"] == "WeatherObserved")
    no_zone = {"type": "Property", "value": "2026-01-05T10:00:00"}
    assert schema_errors({**weather, "dateObserved": no_zone})
    spot_without_site = {k: v for k, v in spot.items() if k != "refParkingSite"}
    assert schema_errors(spot_without_site)
    bad_point = {"type": "GeoProperty", "value": {"type": "Point", "coordinates": "3.1"}}
    assert schema_errors({**spot, "location": bad_point})  # through common-schema.json


def test_entities_validate_after_a_day_of_readings(
    town: Town, entities: list[dict[str, Any]]
) -> None:
    readings = list(town.readings(town.origin, town.origin + timedelta(days=1)))
    updated = apply_readings(town, entities, readings)
    touched = {r.device_id for r in readings}
    assert len(touched) == len(town.devices)  # every device reported on the first day
    errors = [message for e in updated.values() for message in schema_errors(e)]
    assert errors == []
    # The values really changed: the noise meter's last minute of the day is there.
    noise = updated["urn:ngsi-ld:NoiseLevelObserved:demo-nm-01"]
    assert key_values(noise)["dateObservedTo"].startswith(
        (town.origin + timedelta(days=1) - timedelta(minutes=1)).strftime("%Y-%m-%dT%H:%M")
    )


def test_initial_values_are_the_last_readings_before_the_origin(
    town: Town, entities: list[dict[str, Any]]
) -> None:
    """ParkingSpot.status (required) and the measured attributes start at the device state."""
    origin = town.origin
    for entity in entities:
        if entity["type"] != "ParkingSpot":
            continue
        status = entity["status"]
        before = town.device_readings(
            entity["id"].rsplit("demo-", 1)[1], origin - timedelta(hours=2), origin
        )
        assert status["value"] == before[-1].measures["st"]
        assert status["observedAt"] == before[-1].time.strftime("%Y-%m-%dT%H:%M:%SZ")
