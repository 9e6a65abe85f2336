"""Soil-moisture probes in the parks (``GreenspaceRecord``) and the weather station
(``WeatherObserved``), both every 15 minutes.

Soil water is a single-bucket balance over the root zone (250–350 mm, seeded per probe),
per 15-minute step: rain minus 15 % interception enters; actual evapotranspiration
leaves, that is the Makkink reference ET0 = 0.65 · Δ/(Δ+γ) · Rs/λ times a crop factor of
0.85 and a water-stress factor falling linearly below 70 % of the available water;
water above field capacity drains with a time constant of 12 hours. No watering:
that is for the watering service to decide. The state is integrated day by day from an
anchor a week before the town's start and memoized. Soil temperature at 10 cm is the
72-hour mean air temperature plus a quarter of the 3-hour-lagged departure from it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from agilecity.ingest.simulator.base import (
    DAY,
    Device,
    Kind,
    Measure,
    Value,
    iso,
    periodic_count,
)
from agilecity.ingest.simulator.entities import geo_point, observed_attributes, prop, rel
from agilecity.ingest.simulator.weather import SAMPLES, STEP, day_weather

SOIL = Kind(
    "soil",
    "GreenspaceRecord",
    (
        Measure("m", "soilMoistureVwc", "Number", "C62"),
        Measure("t", "soilTemperature", "Number", "CEL"),
        Measure("d", "dateObserved", "DateTime"),
    ),
    stream=15,
)
WEATHER = Kind(
    "weather",
    "WeatherObserved",
    (
        Measure("t", "temperature", "Number", "CEL"),
        Measure("h", "relativeHumidity", "Number", "C62"),
        Measure("w", "windSpeed", "Number", "MTS"),
        Measure("r", "solarRadiation", "Number", "D54"),
        Measure("p", "precipitation", "Number", "MMT"),
        Measure("d", "dateObserved", "DateTime"),
    ),
    stream=16,
)
_LAMBDA = 2.45e6  # J/kg, latent heat of vaporisation
_GAMMA = 0.066  # kPa/K, psychrometric constant near sea level
_DRAINAGE = 12 * 3600  # s, time constant of the drainage above field capacity


def makkink_et0(temperature: float, solar: float, seconds: float) -> float:
    """Makkink reference evapotranspiration in mm over ``seconds`` of irradiance ``solar``."""
    es = 0.6108 * math.exp(17.27 * temperature / (temperature + 237.3))
    delta = 4098 * es / (temperature + 237.3) ** 2
    return 0.65 * delta / (delta + _GAMMA) * solar * seconds / _LAMBDA


@dataclass(kw_only=True)
class SoilProbe(Device):
    """A soil moisture and temperature probe in a park."""

    kind = SOIL
    garden_id: str
    field_capacity: float
    wilting_point: float
    depth_mm: float
    anchor: int
    _moisture: dict[int, np.ndarray] = field(default_factory=dict, repr=False, compare=False)

    def moisture(self, day: int) -> np.ndarray:
        """Volumetric water content at the 96 instants of a UTC day (memoized chain)."""
        found = self._moisture.get(day)
        if found is not None:
            return found
        if day <= self.anchor:
            start = self.field_capacity - 0.03
        else:
            known = day - 1
            while known > self.anchor and known not in self._moisture:
                known -= 1
            start = float(self.moisture(known)[-1])
            for d in range(known + 1, day):
                start = float(self._step_day(d, start)[-1])
        return self._step_day(day, start)

    def _step_day(self, day: int, theta: float) -> np.ndarray:
        weather = day_weather(self.seed, day)
        fc, wp = self.field_capacity, self.wilting_point
        out = np.empty(SAMPLES)
        for k in range(SAMPLES):
            rain = 0.85 * float(weather.rain[k])
            et0 = makkink_et0(float(weather.temperature[k]), float(weather.solar[k]), STEP)
            stress = min(1.0, max(0.0, (theta - wp) / (0.7 * (fc - wp))))
            theta += (rain - 0.85 * et0 * stress) / self.depth_mm
            if theta > fc:
                theta -= (theta - fc) * (1 - math.exp(-STEP / _DRAINAGE))
            theta = min(max(theta, 0.6 * wp), 0.48)
            out[k] = theta
        self._moisture[day] = out
        return out

    def soil_temperature(self, day: int) -> np.ndarray:
        """Soil temperature at 10 cm at the 96 instants of a UTC day."""
        air = np.concatenate(
            [day_weather(self.seed, d).temperature for d in range(day - 3, day + 1)]
        )
        window = 3 * SAMPLES
        cumulative = np.concatenate([[0.0], np.cumsum(air)])
        mean = (cumulative[window:] - cumulative[:-window]) / window  # ends at each instant
        mean = mean[-SAMPLES:]
        lagged = air[-SAMPLES - 12 : -12]
        soil: np.ndarray = mean + 0.25 * (lagged - mean)
        return soil

    def day(self, day: int) -> list[tuple[int, dict[str, Value]]]:
        """One reading per quarter hour."""
        theta = np.round(self.moisture(day), 3).tolist()
        soil_t = np.round(self.soil_temperature(day), 1).tolist()
        return [
            (t, {"m": theta[k], "t": soil_t[k], "d": iso(t)})
            for k, t in enumerate(range(day * DAY, (day + 1) * DAY, STEP))
        ]

    def count(self, start: int, end: int) -> int:
        """Readings in [start, end), by arithmetic."""
        return periodic_count(start, end, STEP, 0)

    def entity(self, observed: dict[str, tuple[int, Value]]) -> dict[str, Any]:
        """The normalized GreenspaceRecord entity."""
        entity: dict[str, Any] = {
            "id": self.entity_id,
            "type": "GreenspaceRecord",
            "name": prop(self.name),
            "location": geo_point(self.lon, self.lat),
            "refGreenspace": rel(self.garden_id),
        }
        entity.update(observed_attributes(SOIL.measures, observed))
        return entity


@dataclass(kw_only=True)
class WeatherStation(Device):
    """The town's weather station, on the town hall roof."""

    kind = WEATHER

    def day(self, day: int) -> list[tuple[int, dict[str, Value]]]:
        """The weather model's values at the quarter hours."""
        w = day_weather(self.seed, day)
        columns = (
            np.round(w.temperature, 1).tolist(),
            np.round(w.humidity, 2).tolist(),
            np.round(w.wind, 1).tolist(),
            np.round(w.solar, 0).tolist(),
            np.round(w.rain, 1).tolist(),
        )
        out: list[tuple[int, dict[str, Value]]] = []
        for k, t in enumerate(w.times.tolist()):
            temp, rh, wind, solar, rain = (c[k] for c in columns)
            out.append((t, {"t": temp, "h": rh, "w": wind, "r": solar, "p": rain, "d": iso(t)}))
        return out

    def count(self, start: int, end: int) -> int:
        """Readings in [start, end), by arithmetic."""
        return periodic_count(start, end, STEP, 0)

    def entity(self, observed: dict[str, tuple[int, Value]]) -> dict[str, Any]:
        """The normalized WeatherObserved entity."""
        entity: dict[str, Any] = {
            "id": self.entity_id,
            "type": "WeatherObserved",
            "name": prop(self.name),
            "location": geo_point(self.lon, self.lat),
        }
        entity.update(observed_attributes(WEATHER.measures, observed))
        return entity
