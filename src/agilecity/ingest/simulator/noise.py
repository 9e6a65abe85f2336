"""Street noise meters sending one-minute LAeq samples (Smart Data Models ``NoiseLevelObserved``).

The level follows an hourly traffic profile per street kind (day level about 69 dB(A) on
primary streets, 62 on secondary and 51 on residential ones; nights 9–12 dB quieter,
residential nights the quietest; weekends quieter and later in the morning), plus a
meter offset of ±2 dB, a smoothed Gaussian minute-to-minute variation (σ ≈ 1.5 dB) and
occasional loud events (a lorry, a horn: +2 to +10 dB). LAmax is LAeq plus a gamma-
distributed crest. Each UTC day is drawn on its own.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from agilecity.ingest.simulator.almanac import day_date, local_hours_of
from agilecity.ingest.simulator.base import (
    DAY,
    Device,
    Kind,
    Measure,
    Value,
    iso,
    periodic_count,
    periodic_times,
)
from agilecity.ingest.simulator.entities import geo_point, observed_attributes, prop

NOISE = Kind(
    "noise",
    "NoiseLevelObserved",
    (
        Measure("l", "LAeq", "Number", "2N"),
        Measure("m", "LAmax", "Number", "2N"),
        Measure("df", "dateObservedFrom", "DateTime"),
        Measure("dt", "dateObservedTo", "DateTime"),
    ),
    stream=11,
)
STEP = 60

#: Day level (07:00-19:00) in dB(A) per street kind.
DAY_LEVEL = {"primary": 69.0, "secondary": 62.0, "residential": 51.0}
#: Level relative to the day level, by local hour, on working days.
_PROFILE = np.array(
    [-11, -12, -12.5, -12.5, -12, -10, -6, -1.5, 0, -0.5, -1, -1,
     -0.5, -0.5, -0.7, -0.7, 0, 0.2, -0.5, -2, -3, -4, -5, -8], dtype=float,
)  # fmt: skip
_WEEKEND = np.array(
    [-9, -10.5, -12, -12.5, -12.5, -12, -10, -8, -5, -3, -2, -1.5,
     -1.5, -2, -2, -2, -2, -2, -2, -2.5, -3, -3.5, -4.5, -7], dtype=float,
)  # fmt: skip
_KERNEL = np.exp(-np.arange(8) / 2.5)
_KERNEL /= np.sqrt((_KERNEL**2).sum())


@dataclass(kw_only=True)
class NoiseMeter(Device):
    """A class-1 sound level meter on a facade."""

    kind = NOISE
    street_kind: str
    offset_db: float
    phase: int  # seconds after the minute
    address: dict[str, Any]

    def levels(self, day: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Sample times, LAeq and LAmax of one UTC day (unrounded)."""
        times = periodic_times(day, STEP, self.phase)
        g = self.rng(day)
        hours = local_hours_of(times)
        weekday = day_date(day).weekday()
        profile = _WEEKEND if weekday >= 5 else _PROFILE
        deeper = 1.2 if self.street_kind == "residential" else 1.0  # quieter residential nights
        rel_level = np.interp(hours, np.arange(24) + 0.5, profile, period=24)
        rel_level = np.where(rel_level < -3, rel_level * deeper, rel_level)
        base = DAY_LEVEL[self.street_kind] + self.offset_db + rel_level
        wobble = np.convolve(g.normal(0, 1.5, len(times) + len(_KERNEL) - 1), _KERNEL, "valid")
        loud = (g.random(len(times)) < 0.03) * g.uniform(2, 10, len(times))
        laeq = base + wobble + loud
        lamax = laeq + 3 + g.gamma(2.0, 2.5, len(times))
        return times, laeq, lamax

    def day(self, day: int) -> list[tuple[int, dict[str, Value]]]:
        """One sample a minute: LAeq and LAmax over the minute, and the minute's bounds."""
        times, laeq, lamax = self.levels(day)
        out: list[tuple[int, dict[str, Value]]] = []
        for t, level, peak in zip(
            times.tolist(), np.round(laeq, 1).tolist(), np.round(lamax, 1).tolist(), strict=True
        ):
            out.append((t, {"l": level, "m": peak, "df": iso(t - STEP), "dt": iso(t)}))
        return out

    def count(self, start: int, end: int) -> int:
        """Samples in [start, end), by arithmetic."""
        return periodic_count(start, end, STEP, self.phase)

    def entity(self, observed: dict[str, tuple[int, Value]]) -> dict[str, Any]:
        """The normalized NoiseLevelObserved entity with its last sample before the start."""
        entity: dict[str, Any] = {
            "id": self.entity_id,
            "type": "NoiseLevelObserved",
            "name": prop(self.name),
            "location": geo_point(self.lon, self.lat),
            "sonometerClass": prop("1"),
            "address": prop(self.address),
        }
        entity.update(observed_attributes(NOISE.measures, observed))
        return entity


assert DAY % STEP == 0
