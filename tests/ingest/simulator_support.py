"""Helpers of the simulator tests: offline Smart Data Models validation, applying readings.

The reference schemas live in ``../shared/reference/smart-data-models/`` beside the
repository. :func:`validator_for` builds a Draft 2020-12 validator whose remote ``$ref``
URLs resolve through ``ref-map.json`` (no network) and whose ``date-time`` and ``uri``
formats are checked with the standard library.
"""

from __future__ import annotations

import os
from datetime import datetime
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import orjson
import pytest
from jsonschema import Draft202012Validator, FormatChecker
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from agilecity.ingest.simulator.base import Reading
from agilecity.ingest.simulator.entities import measure_attribute
from agilecity.ingest.simulator.town import Town

#: A verbatim copy of ../shared/reference/smart-data-models (CC BY 4.0, licences kept; see
#: its INDEX.md), shipped so a clean checkout validates offline wherever it lives.
REFERENCE = Path(__file__).resolve().parents[1] / "data" / "smart-data-models"

#: Entity type -> schema file, relative to REFERENCE.
SCHEMAS = {
    "ParkingSpot": "dataModel.Parking/ParkingSpot/schema.json",
    "OnStreetParking": "dataModel.Parking/OnStreetParking/schema.json",
    "NoiseLevelObserved": "dataModel.Environment/NoiseLevelObserved/schema.json",
    "AirQualityObserved": "dataModel.Environment/AirQualityObserved/schema.json",
    "Streetlight": "dataModel.Streetlighting/Streetlight/schema.json",
    "Building": "dataModel.Building/Building/schema.json",
    "WeatherObserved": "dataModel.Weather/WeatherObserved/schema.json",
    "Garden": "dataModel.ParksAndGardens/Garden/schema.json",
    "GreenspaceRecord": "dataModel.ParksAndGardens/GreenspaceRecord/schema.json",
    "SmartMeteringObservation": "dataModel.Device/SmartMeteringObservation/schema.json",
    "EVChargingStation": "dataModel.Transportation/EVChargingStation/schema.json",
    "WasteContainer": "dataModel.WasteManagement/WasteContainer/schema.json",
}


def reference_dir() -> Path:
    """The reference folder; skip (fail in CI) when it is not beside the repository."""
    if not (REFERENCE / "ref-map.json").exists():
        reason = f"Smart Data Models reference not found at {REFERENCE}"
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)
    return REFERENCE


def _load(path: Path) -> Any:
    return orjson.loads(path.read_bytes())


@cache
def _registry() -> Registry[Any]:
    root = reference_dir()
    mapping = _load(root / "ref-map.json")
    resources = []
    for url, local in mapping.items():
        if url == "description":
            continue
        resources.append((url, Resource.from_contents(_load(root / local), DRAFT202012)))
    return Registry().with_resources(resources)


def _checker() -> FormatChecker:
    checker = FormatChecker(formats=())

    @checker.checks("date-time", raises=ValueError)
    def date_time(value: object) -> bool:
        if not isinstance(value, str):
            return True
        if "T" not in value or not (value.endswith("Z") or "+" in value[10:] or "-" in value[10:]):
            raise ValueError(f"{value!r} has no time zone")
        datetime.fromisoformat(value)
        return True

    @checker.checks("uri", raises=ValueError)
    def uri(value: object) -> bool:
        if isinstance(value, str) and not urlparse(value).scheme:
            raise ValueError(f"{value!r} has no scheme")
        return True

    return checker


@cache
def validator_for(entity_type: str) -> Draft202012Validator:
    """A validator of the key-values form of ``entity_type``."""
    schema = _load(reference_dir() / SCHEMAS[entity_type])
    return Draft202012Validator(schema, registry=_registry(), format_checker=_checker())


def key_values(entity: dict[str, Any]) -> dict[str, Any]:
    """Reduce a normalized entity to key-values as INDEX.md says (typed DateTime unwrapped)."""
    out: dict[str, Any] = {}
    for name, attr in entity.items():
        if name == "@context":
            continue
        if name in ("id", "type"):
            out[name] = attr
            continue
        principal = attr["object"] if attr["type"] == "Relationship" else attr["value"]
        if isinstance(principal, dict) and principal.get("@type") == "DateTime":
            principal = principal["@value"]
        out[name] = principal
    return out


def schema_errors(entity: dict[str, Any]) -> list[str]:
    """Messages of every schema violation of a normalized entity (empty when valid)."""
    validator = validator_for(entity["type"])
    return [
        f"{entity['id']}: {'/'.join(map(str, e.absolute_path))}: {e.message}"
        for e in validator.iter_errors(key_values(entity))
    ]


def apply_readings(
    town: Town, entities: list[dict[str, Any]], readings: list[Reading]
) -> dict[str, dict[str, Any]]:
    """The entities after the readings, mapped through the provisioning (as a gateway would)."""
    from agilecity.ingest.simulator.provisioning import devices

    by_id = {e["id"]: orjson.loads(orjson.dumps(e)) for e in entities}
    mapping = {d["device_id"]: d for d in devices(town)["devices"]}
    for reading in readings:
        device = mapping[reading.device_id]
        entity = by_id[device["entity_name"]]
        kind = town.kind_of(reading.device_id)
        observed = reading.time.strftime("%Y-%m-%dT%H:%M:%SZ")
        for key, value in reading.measures.items():
            attribute = next(a for a in device["attributes"] if a["object_id"] == key)
            entity[attribute["name"]] = measure_attribute(kind.measure(key), value, observed)
    return by_id
