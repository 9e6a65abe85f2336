"""NGSI-LD normalized building blocks for the demo town's entities, and reading conversion.

Entities use only the NGSI-LD core @context: attribute names (``status``, ``LAeq``, …) are
not Smart Data Models IRIs but expand to the core context's default vocabulary
(``https://uri.etsi.org/ngsi-ld/default-context/status``). Clients that send the same
short names without a context read and write the same attributes; a client using the
Smart Data Models @context would see other IRIs. DateTime values use the NGSI-LD typed
form ``{"@type": "DateTime", "@value": ...}``, as a FIWARE IoT Agent writes them.
"""

from __future__ import annotations

from typing import Any

from agilecity.ingest.simulator.base import Measure, Value, iso
from agilecity.ingest.simulator.geography import POSTAL_CODE, TOWN_NAME


def prop(value: Any, *, observed_at: str | None = None, unit: str | None = None) -> dict[str, Any]:
    """A Property (with observedAt and unitCode when given)."""
    out: dict[str, Any] = {"type": "Property", "value": value}
    if observed_at is not None:
        out["observedAt"] = observed_at
    if unit is not None:
        out["unitCode"] = unit
    return out


def rel(target: str | list[str]) -> dict[str, Any]:
    """A Relationship to one entity id (or a list, for a multi-target relationship)."""
    return {"type": "Relationship", "object": target}


def geo(geometry: dict[str, Any]) -> dict[str, Any]:
    """A GeoProperty holding a GeoJSON geometry."""
    return {"type": "GeoProperty", "value": geometry}


def geo_point(lon: float, lat: float) -> dict[str, Any]:
    """A GeoProperty Point."""
    return geo({"type": "Point", "coordinates": [lon, lat]})


def date_time(text: str) -> dict[str, str]:
    """The NGSI-LD typed DateTime value."""
    return {"@type": "DateTime", "@value": text}


def address(street: str, number: int | None, district: str) -> dict[str, Any]:
    """A schema.org PostalAddress in the fictional town."""
    out: dict[str, Any] = {
        "streetAddress": street if number is None else f"{number} {street}",
        "addressLocality": TOWN_NAME,
        "postalCode": POSTAL_CODE,
        "addressRegion": "Hauts-de-France",
        "addressCountry": "FR",
        "district": district,
    }
    return out


def typed_value(measure: Measure, value: Value) -> Any:
    """A measure's value as the attribute holds it (Number as float, DateTime typed, …)."""
    if measure.type == "Number":
        return float(value)
    if measure.type == "Integer":
        return int(value)
    if measure.type == "Boolean":
        return value if isinstance(value, bool) else str(value).lower() == "true"
    if measure.type == "DateTime":
        return date_time(str(value))
    return str(value)


def measure_attribute(measure: Measure, value: Value, observed_at: str) -> dict[str, Any]:
    """The NGSI-LD Property instance one measure of one reading becomes."""
    return prop(typed_value(measure, value), observed_at=observed_at, unit=measure.unit)


def observed_attributes(
    measures: tuple[Measure, ...], observed: dict[str, tuple[int, Value]]
) -> dict[str, dict[str, Any]]:
    """Attributes for the last value seen of each measure (object_id -> (second, value))."""
    out: dict[str, dict[str, Any]] = {}
    for measure in measures:
        if measure.object_id in observed:
            at, value = observed[measure.object_id]
            out[measure.name] = measure_attribute(measure, value, iso(at))
    return out
