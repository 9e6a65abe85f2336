"""Measured quantities as data: plausible ranges and allowed values per attribute name.

A measurement outside its range is a broken sensor or a corrupted frame, never a fact
about the city, so the gateway drops it (and counts it) instead of writing it. The
table follows the Smart Data Models attributes the founding cities' devices report.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Quantity:
    """What a measured attribute may hold: a numeric range or a set of allowed values."""

    attribute: str
    unit_code: str = ""
    minimum: float | None = None
    maximum: float | None = None
    allowed: frozenset[str] = frozenset()

    def check(self, value: object) -> str | None:
        """Why the value is implausible, or None when it is acceptable."""
        if self.allowed:
            if isinstance(value, str) and value not in self.allowed:
                return f"{value!r} is not one of {', '.join(sorted(self.allowed))}"
            return None
        if isinstance(value, bool) or not isinstance(value, int | float):
            return None
        if value != value:  # NaN
            return "NaN is not a measurement"
        if self.minimum is not None and value < self.minimum:
            return f"{value} is below the plausible minimum {self.minimum:g}"
        if self.maximum is not None and value > self.maximum:
            return f"{value} is above the plausible maximum {self.maximum:g}"
        return None


def _q(attribute: str, unit: str, lo: float | None, hi: float | None) -> Quantity:
    return Quantity(attribute, unit, lo, hi)


def _enum(attribute: str, *values: str) -> Quantity:
    return Quantity(attribute, allowed=frozenset(values))


QUANTITIES: dict[str, Quantity] = {
    q.attribute: q
    for q in (
        # weather and indoor climate
        _q("temperature", "CEL", -60, 70),
        _q("relativeHumidity", "C62", 0, 1),
        _q("windSpeed", "MTS", 0, 100),
        _q("windDirection", "DD", 0, 360),
        _q("solarRadiation", "D54", 0, 1500),
        _q("precipitation", "MMT", 0, 500),
        _q("atmosphericPressure", "A97", 800, 1100),
        _q("co2", "59", 0, 10_000),
        # noise (dB(A))
        _q("LAeq", "2N", 0, 160),
        _q("LAmax", "2N", 0, 180),
        _q("LAS", "2N", 0, 180),
        # soil
        _q("soilMoistureVwc", "C62", 0, 1),
        _q("soilTemperature", "CEL", -40, 70),
        # energy and power
        _q("totalConsumption", "KWH", 0, None),
        _q("powerConsumption", "WTT", 0, 1_000_000),
        _q("illuminanceLevel", "C62", 0, 1),
        # containers, batteries, charging points
        _q("fillingLevel", "C62", 0, 1),
        _q("batteryLevel", "C62", -1, 1),
        _q("availableCapacity", "", 0, 1000),
        # states
        _enum("powerState", "on", "off", "low", "bootingUp"),
    )
}

# ``status`` means different things per entity type, so its allowed values are per type.
STATUS_VALUES: dict[str, frozenset[str]] = {
    "ParkingSpot": frozenset({"free", "occupied", "closed", "unknown"}),
    "Streetlight": frozenset({"ok", "defectiveLamp", "brokenLantern", "columnIssue"}),
    "EVChargingStation": frozenset(
        {"working", "outOfService", "withIncidence", "full", "almostFull", "empty", "almostEmpty"}
    ),
    "WasteContainer": frozenset(
        {"ok", "lidOpen", "dropped", "moved", "vandalized", "burning", "unknown"}
    ),
}


def implausible(entity_type: str, attribute: str, value: object) -> str | None:
    """Why a measured value cannot be true, or None when it is plausible."""
    if attribute == "status" and entity_type in STATUS_VALUES:
        return Quantity("status", allowed=STATUS_VALUES[entity_type]).check(value)
    quantity = QUANTITIES.get(attribute)
    return None if quantity is None else quantity.check(value)
