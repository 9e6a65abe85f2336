"""Device measures -> NGSI-LD attribute fragments (pure: typing, units, plausibility)."""

from __future__ import annotations

import math
from typing import Any

import orjson

from agilecity.broker.timeutil import canonical_or_none
from agilecity.ingest.devices import Mapping
from agilecity.ingest.quantities import QUANTITIES, implausible

_TRUE = {"true", "1", "yes", "on"}
_FALSE = {"false", "0", "no", "off"}


class MeasureError(ValueError):
    """A measure that cannot be written; ``cause`` is the counter it goes to."""

    def __init__(self, cause: str, message: str) -> None:
        super().__init__(message)
        self.cause = cause


def _number(raw: object, integer: bool) -> int | float:
    if isinstance(raw, bool):
        raise MeasureError("invalid_value", "a boolean is not a number")
    if isinstance(raw, int | float):
        value: int | float = raw
    elif isinstance(raw, str):
        try:
            value = int(raw) if integer else float(raw)
        except ValueError:
            raise MeasureError("invalid_value", f"{raw[:40]!r} is not a number") from None
    else:
        raise MeasureError("invalid_value", "not a number")
    if isinstance(value, float) and not math.isfinite(value):
        raise MeasureError("out_of_range", f"{value} is not a finite number")
    if integer and isinstance(value, float):
        if not value.is_integer():
            raise MeasureError("invalid_value", f"{value} is not an integer")
        value = int(value)
    return value


def _inferred(raw: object) -> object:
    """An unmapped measure's value: a number when it reads as one, else the text."""
    if isinstance(raw, str):
        try:
            value = float(raw)
        except ValueError:
            return raw
        return value if math.isfinite(value) else raw
    return raw


def typed_value(raw: object, kind: str) -> Any:
    """The measure as the attribute type asks; raises MeasureError."""
    if kind in ("Number", "Float"):
        return _number(raw, integer=False)
    if kind == "Integer":
        return _number(raw, integer=True)
    if kind == "Boolean":
        if isinstance(raw, bool):
            return raw
        text = str(raw).strip().lower()
        if text in _TRUE:
            return True
        if text in _FALSE:
            return False
        raise MeasureError("invalid_value", f"{str(raw)[:40]!r} is not a boolean")
    if kind == "DateTime":
        stamp = canonical_or_none(raw)
        if stamp is None:
            raise MeasureError("invalid_value", f"{str(raw)[:40]!r} is not a date-time")
        return stamp
    if kind in ("Text", "String", "Relationship"):
        if not isinstance(raw, str):
            raise MeasureError("invalid_value", "expected text")
        return raw
    if kind in ("geo:point",):
        return _point(raw)
    if kind in ("geo:json", "GeoProperty"):
        return _geojson(raw)
    if kind in ("Object", "Array", "Property"):
        return _inferred(raw)
    raise MeasureError("invalid_value", f"unknown attribute type {kind!r}")


def _point(raw: object) -> dict[str, Any]:
    """IoT Agent geo:point text ``"lat, lon"`` as a GeoJSON Point."""
    if not isinstance(raw, str):
        raise MeasureError("invalid_value", "geo:point must be 'latitude, longitude'")
    parts = raw.replace("/", ",").split(",")
    try:
        lat, lon = (float(p) for p in parts)
    except ValueError:
        raise MeasureError("invalid_value", f"{raw[:40]!r} is not 'latitude, longitude'") from None
    if not (-90 <= lat <= 90 and -180 <= lon <= 180):
        raise MeasureError("out_of_range", f"{raw[:40]!r} is not on Earth")
    return {"type": "Point", "coordinates": [lon, lat]}


def _geojson(raw: object) -> dict[str, Any]:
    if isinstance(raw, str):
        try:
            raw = orjson.loads(raw)
        except orjson.JSONDecodeError:
            raise MeasureError("invalid_value", "not a GeoJSON geometry") from None
    if not isinstance(raw, dict) or "type" not in raw:
        raise MeasureError("invalid_value", "not a GeoJSON geometry")
    return raw


def fragment(
    entity_type: str, mapping: Mapping | None, object_id: str, raw: object, observed_at: str
) -> tuple[str, dict[str, Any]]:
    """(attribute name, NGSI-LD attribute) for one measure; raises MeasureError."""
    if mapping is None:
        name, kind, unit, metadata = object_id, "Property", None, {}
    else:
        name, kind, unit, metadata = mapping.name, mapping.type, mapping.unit_code, mapping.metadata
    if name in ("id", "type", "@context"):
        raise MeasureError("invalid_value", f"{name!r} cannot be a measure")
    value = typed_value(raw, kind)
    if isinstance(value, int | float) and not isinstance(value, bool) and abs(value) >= 2**63:
        # beyond ±2^63: PostgreSQL's jsonb hands 1e20 back as an integer orjson cannot write
        raise MeasureError("out_of_range", f"{name}: {value} is beyond ±2^63")
    reason = implausible(entity_type, name, value)
    if reason is not None:
        raise MeasureError("out_of_range", f"{name}: {reason}")
    if kind == "Relationship":
        attr: dict[str, Any] = {"type": "Relationship", "object": value}
    elif kind in ("geo:point", "geo:json", "GeoProperty"):
        attr = {"type": "GeoProperty", "value": value}
    elif kind == "DateTime":
        attr = {"type": "Property", "value": {"@type": "DateTime", "@value": value}}
    else:
        attr = {"type": "Property", "value": value}
    attr["observedAt"] = observed_at
    quantity = QUANTITIES.get(name)
    unit = unit or (quantity.unit_code if quantity is not None else None)
    if unit and attr["type"] == "Property":
        attr["unitCode"] = unit
    for key, meta in metadata.items():
        if isinstance(meta, dict) and "value" in meta and key not in attr:
            attr[key] = {"type": "Property", "value": meta["value"]}
    return name, attr


def static_attributes(items: list[dict[str, Any]]) -> dict[str, Any]:
    """A device's static attributes as NGSI-LD attributes (no observedAt: not measured)."""
    result: dict[str, Any] = {}
    for item in items:
        kind, value = item.get("type"), item.get("value")
        if kind == "Relationship":
            result[item["name"]] = {"type": "Relationship", "object": value}
        elif kind in ("geo:point", "geo:json", "GeoProperty"):
            point = _point(value) if kind == "geo:point" else _geojson(value)
            result[item["name"]] = {"type": "GeoProperty", "value": point}
        else:
            result[item["name"]] = {"type": "Property", "value": value}
    return result
