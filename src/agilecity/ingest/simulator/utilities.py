"""EV charging points (``EVChargingStation``) and waste containers (``WasteContainer``).

Charging: each socket of a station draws its own day of sessions (arrivals 07:00–21:00
local at a time-varying rate, lognormal durations of median 1.5 h, none over midnight);
the station reports ``availableCapacity`` and ``status`` (working, full, or outOfService
during the scenario's outage) on every change and every hour.

Waste: a container fills by a seeded daily amount (more at weekends), deposited evenly
between 07:00 and 21:00 local, and is emptied on its collection days at its round's time;
the fill level is the sum of the deposits since the last emptying, capped at 1 (an
overflowing bin stays at 1). Ultrasonic sensors report hourly, and once right after an
emptying with ``dateLastEmptying``.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from agilecity.ingest.simulator.almanac import day_date, local_clock
from agilecity.ingest.simulator.base import DAY, Device, Kind, Measure, Value, iso
from agilecity.ingest.simulator.entities import geo_point, observed_attributes, prop

EV = Kind(
    "ev",
    "EVChargingStation",
    (Measure("a", "availableCapacity", "Integer", "C62"), Measure("s", "status", "Text")),
    stream=17,
)
WASTE = Kind(
    "waste",
    "WasteContainer",
    (Measure("f", "fillingLevel", "Number", "C62"), Measure("e", "dateLastEmptying", "DateTime")),
    stream=18,
)
#: Collection weekdays (Monday = 0) per stored waste kind; glass every other Friday.
COLLECTION_DAYS = {"inorganic": (0, 3), "plastic": (2,), "paper": (1,), "glass": (4,)}


@dataclass(kw_only=True)
class ChargingStation(Device):
    """A public charging station with ``capacity`` sockets."""

    kind = EV
    capacity: int
    phase: int
    outage: tuple[int, int] | None = None

    def sessions(self, day: int, socket: int) -> list[tuple[int, int]]:
        """Charging sessions [start, end) of one socket on one UTC day."""
        g = self.rng(day, socket)
        out: list[tuple[int, int]] = []
        now = float(local_clock(day, 7.0))
        closing = local_clock(day, 21.0)
        limit = (day + 1) * DAY - 600
        while True:
            local_hour = (now - local_clock(day, 0)) / 3600
            rate = 0.45 if 8 <= local_hour < 19 else 0.25  # arrivals per hour at a free socket
            now += g.exponential(3600 / rate)
            if now >= closing:
                break
            end = now + min(6 * 3600, 5400 * g.lognormal(0, 0.6))
            if end >= limit:
                break
            out.append((int(now), int(end)))
            now = end + 120
        return out

    def _available(self, t: int, spans: list[list[tuple[int, int]]]) -> int:
        busy = 0
        for socket in spans:
            starts = [s for s, _ in socket]
            k = bisect.bisect_right(starts, t) - 1
            busy += k >= 0 and socket[k][0] <= t < socket[k][1]
        return self.capacity - busy

    def _measures(self, t: int, spans: list[list[tuple[int, int]]]) -> dict[str, Value]:
        if self.outage is not None and self.outage[0] <= t < self.outage[1]:
            return {"a": 0, "s": "outOfService"}
        available = self._available(t, spans)
        return {"a": available, "s": "full" if available == 0 else "working"}

    def day(self, day: int) -> list[tuple[int, dict[str, Value]]]:
        """Changes of availability and hourly reports of one UTC day."""
        d0, d1 = day * DAY, (day + 1) * DAY
        spans = [self.sessions(day, socket) for socket in range(self.capacity)]
        moments = {t for socket in spans for span in socket for t in span}
        if self.outage is not None:
            moments |= {t for t in self.outage if d0 <= t < d1}
        out: list[tuple[int, dict[str, Value]]] = []
        previous = self._measures(d0, spans)
        for t in sorted(moments):
            current = self._measures(t, spans)
            if current != previous:
                out.append((t, current))
            previous = current
        out.extend((t, self._measures(t, spans)) for t in range(d0 + self.phase, d1, 3600))
        out.sort(key=lambda e: e[0])
        return out

    def entity(self, observed: dict[str, tuple[int, Value]]) -> dict[str, Any]:
        """The normalized EVChargingStation entity."""
        entity: dict[str, Any] = {
            "id": self.entity_id,
            "type": "EVChargingStation",
            "name": prop(self.name),
            "location": geo_point(self.lon, self.lat),
            "capacity": prop(self.capacity),
            "socketNumber": prop(self.capacity),
            "socketType": prop(["Type2"]),
            "allowedVehicleType": prop(["car"]),
            "chargeType": prop(["flat"]),
            "operator": prop("Régie municipale"),
            "openingHours": prop("Mo-Su 00:00-23:59"),
        }
        entity.update(observed_attributes(EV.measures, observed))
        return entity


@dataclass(kw_only=True)
class WasteSensor(Device):
    """An ultrasonic fill-level sensor in a street container."""

    kind = WASTE
    waste_kind: str
    daily_fill: float  # mean fraction of the volume deposited per day
    round_hour: float  # local time of the collection round
    phase: int
    _memo: dict[tuple[str, int], Any] = field(default_factory=dict, repr=False, compare=False)

    def collection(self, day: int) -> int | None:
        """The second this container is emptied on UTC day ``day``, or None."""
        key = ("collection", day)
        if key not in self._memo:
            self._memo[key] = self._collection(day)
        found: int | None = self._memo[key]
        return found

    def _collection(self, day: int) -> int | None:
        today = day_date(day)
        if today.weekday() not in COLLECTION_DAYS[self.waste_kind]:
            return None
        if self.waste_kind == "glass" and today.isocalendar().week % 2:
            return None
        jitter = float(self.rng(day, 1).normal(0, 0.2))
        return local_clock(day, self.round_hour + jitter)

    def deposit(self, day: int) -> float:
        """The fraction of the volume deposited over a whole UTC day."""
        key = ("deposit", day)
        if key not in self._memo:
            self._memo[key] = self._deposit(day)
        found: float = self._memo[key]
        return found

    def _deposit(self, day: int) -> float:
        weekend = day_date(day).weekday() >= 5
        return float(
            self.daily_fill * (1.3 if weekend else 1.0) * self.rng(day, 2).lognormal(0, 0.3)
        )

    def _deposited(self, day: int, t0: int, t1: int) -> float:
        """What was deposited on ``day`` between t0 and t1 (07:00-21:00 local, evenly)."""
        open_, close = local_clock(day, 7.0), local_clock(day, 21.0)
        lo, hi = max(t0, open_), min(t1, close)
        return self.deposit(day) * max(0, hi - lo) / (close - open_)

    def last_emptying(self, t: int) -> int:
        """The last emptying at or before ``t`` (looking back at most three weeks)."""
        for day in range(t // DAY, t // DAY - 22, -1):
            moment = self.collection(day)
            if moment is not None and moment <= t:
                return moment
        return (t // DAY - 21) * DAY

    def fill(self, t: int) -> float:
        """The fill level (0..1) at second ``t``."""
        since = self.last_emptying(t)
        total = sum(self._deposited(day, since, t) for day in range(since // DAY, t // DAY + 1))
        return min(1.0, total)

    def day(self, day: int) -> list[tuple[int, dict[str, Value]]]:
        """Hourly fill levels and the report right after an emptying."""
        g = self.rng(day, 3)
        d0, d1 = day * DAY, (day + 1) * DAY
        times = list(range(d0 + self.phase, d1, 3600))
        noise = g.normal(0, 0.01, len(times) + 1)
        out: list[tuple[int, dict[str, Value]]] = []
        for n, t in enumerate(times):
            level = float(np.clip(self.fill(t) + noise[n], 0.0, 1.0))
            out.append((t, {"f": round(level, 2)}))
        emptied = self.collection(day)
        if emptied is not None:
            report = emptied + 60
            level = float(np.clip(self.fill(report) + abs(noise[-1]), 0.0, 1.0))
            out.append((report, {"f": round(level, 2), "e": iso(emptied)}))
            out.sort(key=lambda e: e[0])
        return out

    def entity(self, observed: dict[str, tuple[int, Value]]) -> dict[str, Any]:
        """The normalized WasteContainer entity."""
        entity: dict[str, Any] = {
            "id": self.entity_id,
            "type": "WasteContainer",
            "name": prop(self.name),
            "location": geo_point(self.lon, self.lat),
            "category": prop(["fixed"]),
            "storedWasteKind": prop(self.waste_kind),
            "storedWasteOrigin": prop("household"),
            "status": prop("ok"),
            "binCapacity": prop(660.0, unit="LTR"),
        }
        entity.update(observed_attributes(WASTE.measures, observed))
        return entity
