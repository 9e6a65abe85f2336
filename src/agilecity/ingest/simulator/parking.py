"""On-street parking bays with infrared sensors (Smart Data Models ``ParkingSpot``).

Each UTC day of each bay is drawn on its own: whether a car is parked at the day's first
second (UTC midnight, 01:00 or 02:00 in France) is a draw of that midnight alone, so two
adjacent days agree on it without either depending on the other. Within the day, a car
parked overnight leaves in the morning, arrivals follow a time-of-day rate (busy shopping
hours in commercial streets, evening returns in residential ones) with lognormal dwell
times, and a car arrives in the evening when the next midnight is occupied. Only on
weekends may a car stay a whole day, so no ordinary stay lasts longer than Friday evening
to Monday morning (under three days): the long stays of the scenario stand out.

The scenario's long-stay cars override the bay (free half an hour on each side of the
stay), stuck sensors freeze in one state or fall silent. Every bay re-sends its status
every hour (heartbeat) besides each change.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from agilecity.ingest.simulator.almanac import day_date, local_clock
from agilecity.ingest.simulator.base import DAY, Device, Kind, Measure, Value, iso
from agilecity.ingest.simulator.entities import geo_point, prop, rel

PARKING = Kind("parking", "ParkingSpot", (Measure("st", "status", "Text"),), stream=10)

#: Seconds kept free around a scenario stay, so its arrival and departure are clean.
MARGIN = 1800

#: Arrivals per hour at a free bay, by local hour: commercial streets on shopping days.
_COMMERCIAL = [0.05] * 7 + [0.8, 1.4] + [2.2] * 3 + [1.6] * 2 + [2.2] * 5 + [0.6] * 3 + [0.05] * 2
_RESIDENTIAL = [0.03] * 6 + [0.15] * 3 + [0.3] * 7 + [0.6] * 4 + [0.3] * 3 + [0.03]
_RATE_MAX = 2.5


@dataclass(frozen=True)
class Stay:
    """A scenario car occupying a bay from ``arrival`` to ``departure`` (epoch seconds)."""

    arrival: int
    departure: int


@dataclass(kw_only=True)
class ParkingSpotSensor(Device):
    """One bay sensor: ``status`` free/occupied on change and every hour."""

    kind = PARKING
    zone_id: str
    usage: str  # commercial | residential
    phase: int  # heartbeat offset in the hour, seconds
    stays: list[Stay] = field(default_factory=list)
    #: (mode, since): mode "occupied"/"free" freezes the reported state, "silent" stops it.
    stuck: tuple[str, int] | None = None

    def _midnight_occupied(self, day: int) -> bool:
        return bool(self.rng(day, 1).random() < (0.8 if self.usage == "residential" else 0.25))

    def _rate(self, day_index: int, hour: float) -> float:
        weekday = day_date(day_index).weekday()
        if self.usage == "commercial":
            return _COMMERCIAL[int(hour) % 24] * (0.3 if weekday == 6 else 1.0)
        return _RESIDENTIAL[int(hour) % 24] * (1.1 if weekday >= 5 else 1.0)

    def _dwell(self, g: np.random.Generator) -> float:
        if self.usage == "commercial":
            return float(min(5 * 3600, 3300 * g.lognormal(0, 0.8)))
        return float(min(12 * 3600, 7200 * g.lognormal(0, 1.0)))

    def _ordinary(self, day: int) -> list[tuple[int, int]]:
        """The day's occupied intervals [start, end) in epoch seconds, clipped to the day."""
        g = self.rng(day, 0)
        d0, d1 = day * DAY, (day + 1) * DAY
        first, last = self._midnight_occupied(day), self._midnight_occupied(day + 1)
        weekend = day_date(day).weekday() >= 5
        if first and last and weekend and g.random() < 0.3:
            return [(d0, d1)]
        out: list[tuple[int, int]] = []
        t = d0
        if first:
            morning = 7.8 if self.usage == "residential" else 8.5
            leave = local_clock(day, float(np.clip(g.normal(morning, 1.0), 5.0, 11.0)))
            out.append((d0, leave))
            t = leave + 60
        evening: int | None = None
        if last:
            hour = 18.5 if self.usage == "residential" else 19.5
            evening = local_clock(day, float(np.clip(g.normal(hour, 1.5), 16.0, 23.9)))
            evening = min(max(evening, t + 600), d1 - 60)
        limit = evening if evening is not None else d1 - 300
        now = float(t)
        while True:
            now += g.exponential(3600 / _RATE_MAX)
            if now >= limit:
                break
            local_hour = (now - local_clock(day, 0)) / 3600
            if g.random() * _RATE_MAX >= self._rate(day, local_hour):
                continue
            arrive = int(now)
            leave = int(arrive + self._dwell(g))
            if leave >= limit - 120:
                if evening is not None:  # this car stays the night instead
                    out.append((arrive, d1))
                    evening = None
                break
            out.append((arrive, leave))
            now = leave + 60.0
        if evening is not None:
            out.append((evening, d1))
        return out

    def occupied(self, day: int) -> list[tuple[int, int]]:
        """The day's occupied intervals with the scenario stays applied."""
        d0, d1 = day * DAY, (day + 1) * DAY
        spans = self._ordinary(day)
        for stay in self.stays:
            lo, hi = stay.arrival - MARGIN, stay.departure + MARGIN
            if hi <= d0 or lo >= d1:
                continue
            clipped: list[tuple[int, int]] = []
            for s, e in spans:
                if s < lo:
                    clipped.append((s, min(e, lo)))
                if e > hi:
                    clipped.append((max(s, hi), e))
            clipped.append((max(stay.arrival, d0), min(stay.departure, d1)))
            spans = sorted((s, e) for s, e in clipped if e > s)
        return spans

    def day(self, day: int) -> list[tuple[int, dict[str, Value]]]:
        """Status changes and hourly heartbeats of one UTC day."""
        d0, d1 = day * DAY, (day + 1) * DAY
        spans = self.occupied(day)
        events: list[tuple[int, dict[str, Value]]] = []
        for s, e in spans:
            if s > d0:
                events.append((s, {"st": "occupied"}))
            if e < d1:
                events.append((e, {"st": "free"}))
        starts = [s for s, _ in spans]

        def status(t: int) -> str:
            k = bisect.bisect_right(starts, t) - 1
            return "occupied" if k >= 0 and spans[k][0] <= t < spans[k][1] else "free"

        beats: list[tuple[int, dict[str, Value]]] = [
            (t, {"st": status(t)}) for t in range(d0 + self.phase, d1, 3600)
        ]
        out: list[tuple[int, dict[str, Value]]] = sorted(events + beats, key=lambda e: e[0])
        if self.stuck is None or self.stuck[1] >= d1:
            return out
        mode, since = self.stuck
        out = [e for e in out if e[0] < since]
        if mode == "silent":
            return out
        if since >= d0:
            out.append((since, {"st": mode}))
        out.extend((t, {"st": mode}) for t in range(d0 + self.phase, d1, 3600) if t > since)
        return out

    def entity(self, observed: dict[str, tuple[int, Value]]) -> dict[str, Any]:
        """The normalized ParkingSpot entity, with its last status before the start."""
        at, status = observed.get("st", (0, "unknown"))
        return {
            "id": self.entity_id,
            "type": "ParkingSpot",
            "name": prop(self.name),
            "category": prop(["onStreet"]),
            "status": prop(status, observed_at=iso(at) if at else None),
            "refParkingSite": rel(self.zone_id),
            "location": geo_point(self.lon, self.lat),
            "width": prop(2.0, unit="MTR"),
            "length": prop(5.5, unit="MTR"),
        }
