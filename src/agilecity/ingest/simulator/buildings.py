"""Schools and public buildings: heat and electricity meters, indoor temperature and CO2.

Models chosen from the Smart Data Models reference:

- meters are ``SmartMeteringObservation`` entities (cumulative ``totalConsumption`` in
  kWh, ``meterType`` "Heat" or "Electricity"), one per meter, because that model is a
  register reading of any commodity and takes ``observedAt`` as its timestamp;
- the indoor sensor of each building is an ``AirQualityObserved`` entity with
  ``typeofLocation`` "indoor": among the reference schemas it is the one that holds
  ``co2``, ``temperature`` and ``relativeHumidity`` together (``DeviceMeasurement`` has
  one generic value per entity).

Physics, per building, in 15-minute steps (explicit Euler, stable at this step):

- heating: a one-node thermal model ``C dT/dt = P_heat + gains - UA (T - T_out)`` with
  ``UA = 1.1 W/(m²·K)`` of floor area and a 15-hour time constant; the controller aims at
  20 °C while occupied (from two hours before) and 17 °C otherwise, feeds forward the
  envelope loss and corrects the error within about an hour; heating is off on days whose
  mean outdoor temperature is above 15.5 °C;
- electricity: a base load of 1.5 W/m² plus 5–7 W/m² times the occupancy;
- CO2 of a representative room (a classroom of 26 pupils, an office or hall): the exact
  single-zone mass balance per step, 5 mL/s of CO2 per person, 0.3 air changes per hour
  when empty, 1–3 when occupied (seeded per building), windows opened at breaks.

The state (indoor temperature and both registers) is integrated from an anchor a week
before the town's start, one day at a time and memoized, so any window gives the same
values. Occupancy follows French school days and holidays and each building's hours.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import numpy as np

from agilecity.ingest.simulator.almanac import (
    day_date,
    is_school_day,
    is_working_day,
    local_hours_of,
)
from agilecity.ingest.simulator.base import (
    DAY,
    Device,
    Kind,
    Measure,
    Value,
    iso,
    periodic_count,
    rng,
)
from agilecity.ingest.simulator.entities import (
    geo_point,
    observed_attributes,
    prop,
    rel,
)
from agilecity.ingest.simulator.weather import SAMPLES, STEP, day_weather

METER = Kind(
    "meter", "SmartMeteringObservation", (Measure("c", "totalConsumption", "Number", "KWH"),), 12
)
INDOOR = Kind(
    "indoor",
    "AirQualityObserved",
    (
        Measure("t", "temperature", "Number", "CEL"),
        Measure("c", "co2", "Number", "59"),
        Measure("h", "relativeHumidity", "Number", "C62"),
        Measure("d", "dateObserved", "DateTime"),
    ),
    13,
)
OUTDOOR_CO2 = 420.0


def _between(hours: np.ndarray, spans: list[tuple[float, float, float]]) -> np.ndarray:
    out = np.zeros_like(hours)
    for start, end, level in spans:
        out = np.where((hours >= start) & (hours < end), level, out)
    return out


def occupancy(role: str, day: date, hours: np.ndarray) -> np.ndarray:
    """Occupancy fraction (0..1) of a building by local hour of a calendar day."""
    weekday = day.weekday()
    if role == "school":
        if is_school_day(day):
            return _between(hours, [(8.5, 11.75, 1.0), (13.5, 16.5, 1.0), (16.5, 18.0, 0.15)])
        return np.zeros_like(hours)
    if role == "townhall":
        if is_working_day(day):
            return _between(hours, [(8.5, 12.0, 0.7), (12.0, 13.5, 0.3), (13.5, 17.5, 0.7)])
        return _between(hours, [(9.0, 12.0, 0.4)]) if weekday == 5 else np.zeros_like(hours)
    if role == "sports":
        if weekday == 6:
            return _between(hours, [(9.0, 13.0, 0.5)])
        if weekday == 5:
            return _between(hours, [(9.0, 18.0, 0.7)])
        return _between(hours, [(10.0, 16.0, 0.3), (17.0, 22.0, 0.9)])
    if weekday in (0, 6) or (weekday < 5 and not is_working_day(day)):
        return np.zeros_like(hours)  # library and social centre: Tuesday to Saturday
    return _between(hours, [(10.0, 12.5, 0.5), (12.5, 14.0, 0.3), (14.0, 18.0, 0.6)])


@dataclass(frozen=True)
class BuildingDay:
    """15-minute results of one building-day (values at the 96 step instants)."""

    heat_total: np.ndarray  # kWh register
    electricity_total: np.ndarray  # kWh register
    temperature: np.ndarray  # indoor, °C
    co2: np.ndarray  # ppm
    humidity: np.ndarray  # 0..1
    end_state: tuple[float, float, float, float]


@dataclass
class BuildingPhysics:
    """The thermal, electrical and air model of one building, memoized per day."""

    seed: int
    index: int
    role: str
    floor_area: float
    anchor: int  # UTC day the integration starts from
    _days: dict[int, BuildingDay] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        g = rng(self.seed, METER.stream, 1000 + self.index)
        self.ua = 1.1 * self.floor_area  # W/K
        self.capacity = self.ua * 15 * 3600  # J/K
        self.ach = float(g.uniform(1.0, 3.0))
        self.room_people = 26 if self.role == "school" else 12
        self.room_volume = 180.0 if self.role == "school" else 250.0
        self.people = self.floor_area / (12 if self.role == "school" else 25)
        self.base_w = 1.5 * self.floor_area
        self.use_w = (5.0 if self.role == "school" else 7.0) * self.floor_area
        self.registers = (float(g.uniform(50_000, 400_000)), float(g.uniform(20_000, 200_000)))

    def _initial(self) -> tuple[float, float, float, float]:
        return (19.0, self.registers[0], self.registers[1], OUTDOOR_CO2)

    def day(self, day: int) -> BuildingDay:
        """The results of one UTC day (integrating the days since the anchor as needed)."""
        found = self._days.get(day)
        if found is not None:
            return found
        if day <= self.anchor:
            result = self._compute(day, self._initial())
        else:
            known = day - 1
            while known > self.anchor and known not in self._days:
                known -= 1
            state = self.day(known).end_state
            for d in range(known + 1, day):
                step = self._compute(d, state)
                self._days[d] = step
                state = step.end_state
            result = self._compute(day, state)
        self._days[day] = result
        return result

    def _compute(self, day: int, state: tuple[float, float, float, float]) -> BuildingDay:
        weather = day_weather(self.seed, day)
        g = rng(self.seed, METER.stream, 2000 + self.index, day)
        today = day_date(day)
        local = local_hours_of(weather.times)
        occ = occupancy(self.role, today, local)
        soon = occupancy(self.role, today, local + 2.0)
        setpoint = np.where((occ > 0) | (soon > 0), 20.0, 17.0)
        heating_on = weather.mean_temperature < 15.5
        breaks = ((local >= 10.0) & (local < 10.25)) | ((local >= 11.75) & (local < 12.25))
        airing = breaks & (self.role == "school") & is_school_day(today)
        temp, heat, elec, co2 = state
        temps, heats, elecs, co2s = (np.empty(SAMPLES) for _ in range(4))
        elec_w = (self.base_w + self.use_w * occ) * (1 + g.normal(0, 0.05, SAMPLES))
        for k in range(SAMPLES):
            t_out = float(weather.temperature[k])
            gains = float(elec_w[k]) * 0.8 + 80 * self.people * float(occ[k])
            power = 0.0
            if heating_on:
                wanted = self.ua * (setpoint[k] - t_out) - gains
                wanted += self.capacity / 3600 * (setpoint[k] - temp)
                power = min(max(wanted, 0.0), self.ua * 45)
            temp += (power + gains - self.ua * (temp - t_out)) * STEP / self.capacity
            heat += power * STEP / 3.6e6
            elec += float(elec_w[k]) * STEP / 3.6e6
            people = self.room_people * float(occ[k])
            ach = (self.ach * (4 if airing[k] else 1)) if occ[k] > 0 or airing[k] else 0.3
            steady = OUTDOOR_CO2 + people * 5e-6 / self.room_volume * 1e6 * 3600 / ach
            co2 = steady + (co2 - steady) * math.exp(-ach * STEP / 3600)
            temps[k], heats[k], elecs[k], co2s[k] = temp, heat, elec, co2
        humidity = 0.33 + 0.2 * (weather.humidity - 0.75) + 0.12 * occ - (0.06 if heating_on else 0)
        humidity = np.clip(humidity + g.normal(0, 0.01, SAMPLES), 0.2, 0.8)
        return BuildingDay(heats, elecs, temps, co2s, humidity, (temp, heat, elec, co2))


@dataclass(kw_only=True)
class Meter(Device):
    """A heat or electricity meter sending its cumulative register every 15 minutes."""

    kind = METER
    physics: BuildingPhysics
    meter_type: str  # Heat | Electricity
    building_id: str
    address: dict[str, Any]

    def day(self, day: int) -> list[tuple[int, dict[str, Value]]]:
        """Register readings at the 96 quarter hours."""
        result = self.physics.day(day)
        register = result.heat_total if self.meter_type == "Heat" else result.electricity_total
        return [
            (day * DAY + k * STEP, {"c": value})
            for k, value in enumerate(np.round(register, 1).tolist())
        ]

    def count(self, start: int, end: int) -> int:
        """Readings in [start, end), by arithmetic."""
        return periodic_count(start, end, STEP, 0)

    def entity(self, observed: dict[str, tuple[int, Value]]) -> dict[str, Any]:
        """The normalized SmartMeteringObservation entity."""
        entity: dict[str, Any] = {
            "id": self.entity_id,
            "type": "SmartMeteringObservation",
            "name": prop(self.name),
            "meterType": prop(self.meter_type),
            "location": geo_point(self.lon, self.lat),
            "address": prop(self.address),
            "refBuilding": rel(self.building_id),
        }
        entity.update(observed_attributes(METER.measures, observed))
        return entity


@dataclass(kw_only=True)
class IndoorSensor(Device):
    """A classroom/office sensor: temperature, CO2 and humidity every 15 minutes."""

    kind = INDOOR
    physics: BuildingPhysics
    building_id: str
    address: dict[str, Any]

    def day(self, day: int) -> list[tuple[int, dict[str, Value]]]:
        """Readings at the 96 quarter hours, with sensor noise."""
        result = self.physics.day(day)
        g = self.rng(day)
        temps = np.round(result.temperature + g.normal(0, 0.05, SAMPLES), 1).tolist()
        co2 = np.round(np.maximum(result.co2 + g.normal(0, 10, SAMPLES), 380)).tolist()
        rh = np.round(result.humidity, 2).tolist()
        out: list[tuple[int, dict[str, Value]]] = []
        for k in range(SAMPLES):
            t = day * DAY + k * STEP
            out.append((t, {"t": temps[k], "c": co2[k], "h": rh[k], "d": iso(t)}))
        return out

    def count(self, start: int, end: int) -> int:
        """Readings in [start, end), by arithmetic."""
        return periodic_count(start, end, STEP, 0)

    def entity(self, observed: dict[str, tuple[int, Value]]) -> dict[str, Any]:
        """The normalized AirQualityObserved (indoor) entity."""
        entity: dict[str, Any] = {
            "id": self.entity_id,
            "type": "AirQualityObserved",
            "name": prop(self.name),
            "typeofLocation": prop("indoor"),
            "location": geo_point(self.lon, self.lat),
            "address": prop(self.address),
            "refPointOfInterest": rel(self.building_id),
        }
        entity.update(observed_attributes(INDOOR.measures, observed))
        return entity
