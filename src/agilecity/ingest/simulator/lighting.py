"""Street lights with a lamp controller each (Smart Data Models ``Streetlight``).

Lamps switch on ten minutes after sunset and off ten minutes before sunrise (astral's
times for the town centre, plus a few seconds per circuit); in residential streets they
dim to half power from 23:00 to 05:00 local time, as many French towns do. A controller
reports every hour and at every switching; a failed lamp reports ``defectiveLamp`` and no
power from the scenario's failure time on, whatever it is commanded to do.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from agilecity.ingest.simulator.almanac import day_date, local_clock, sun_times
from agilecity.ingest.simulator.base import (
    DAY,
    Device,
    Kind,
    Measure,
    Value,
    iso,
)
from agilecity.ingest.simulator.entities import geo_point, observed_attributes, prop

STREETLIGHT = Kind(
    "streetlight",
    "Streetlight",
    (
        Measure("p", "powerState", "Text"),
        Measure("w", "powerConsumption", "Number", "WTT"),
        Measure("i", "illuminanceLevel", "Number", "C62"),
        Measure("s", "status", "Text"),
        Measure("on", "dateLastSwitchingOn", "DateTime"),
        Measure("off", "dateLastSwitchingOff", "DateTime"),
    ),
    stream=14,
)
#: Lamp power in W by street kind (LED lanterns).
RATED_W = {"primary": 110.0, "secondary": 75.0, "residential": 40.0}
SWITCH_DELAY = 600


@dataclass(kw_only=True)
class StreetlightController(Device):
    """One lamp: commanded by the dusk/dawn schedule, reporting hourly and on switching."""

    kind = STREETLIGHT
    street_kind: str
    circuit: str
    circuit_delay: int  # seconds added to both switchings (cabinet photocell spread)
    phase: int
    failed_at: int | None = None

    def switching(self, day: int) -> tuple[int, int, int | None, int | None]:
        """Off (morning), on (evening), dim start and dim end (residential) of a UTC day."""
        rise, down = sun_times(day_date(day))
        off_at = rise - SWITCH_DELAY + self.circuit_delay
        on_at = down + SWITCH_DELAY + self.circuit_delay
        if self.street_kind != "residential":
            return off_at, on_at, None, None
        return off_at, on_at, local_clock(day, 23.0), local_clock(day, 5.0)

    def commanded(self, t: int) -> tuple[str, float]:
        """Power state and illuminance level the schedule commands at second ``t``."""
        off_at, on_at, dim_from, dim_to = self.switching(t // DAY)
        if off_at <= t < on_at:
            return "off", 0.0
        if dim_from is not None and dim_to is not None and (t < dim_to or t >= dim_from):
            return "low", 0.5
        return "on", 1.0

    def _measures(self, t: int, g: np.random.Generator) -> dict[str, Value]:
        state, level = self.commanded(t)
        failed = self.failed_at is not None and t >= self.failed_at
        watts = 0.0 if failed or state == "off" else RATED_W[self.street_kind] * level
        watts *= float(1 + g.normal(0, 0.015))
        return {
            "p": state,
            "w": round(watts, 1),
            "i": level,
            "s": "defectiveLamp" if failed else "ok",
        }

    def day(self, day: int) -> list[tuple[int, dict[str, Value]]]:
        """Hourly reports, switching reports and the failure report of a UTC day."""
        g = self.rng(day)
        d0, d1 = day * DAY, (day + 1) * DAY
        off_at, on_at, dim_from, dim_to = self.switching(day)
        out = [(t, self._measures(t, g)) for t in range(d0 + self.phase, d1, 3600)]
        out.append((off_at, {**self._measures(off_at, g), "off": iso(off_at)}))
        out.append((on_at, {**self._measures(on_at, g), "on": iso(on_at)}))
        for moment in (dim_from, dim_to):
            if moment is not None and d0 <= moment < d1:
                out.append((moment, self._measures(moment, g)))
        if self.failed_at is not None and d0 <= self.failed_at < d1:
            out.append((self.failed_at, self._measures(self.failed_at, g)))
        out.sort(key=lambda e: e[0])
        return out

    def entity(self, observed: dict[str, tuple[int, Value]]) -> dict[str, Any]:
        """The normalized Streetlight entity with the last report before the start."""
        entity: dict[str, Any] = {
            "id": self.entity_id,
            "type": "Streetlight",
            "name": prop(self.name),
            "location": geo_point(self.lon, self.lat),
            "circuit": prop(self.circuit),
            "locationCategory": prop("road"),
            "lanternHeight": prop(8.0 if self.street_kind != "residential" else 6.0, unit="MTR"),
            "powerRating": prop(RATED_W[self.street_kind], unit="WTT"),
            "controllingMethod": prop("group"),
            "status": prop("ok"),
        }
        entity.update(observed_attributes(STREETLIGHT.measures, observed))
        return entity
