"""The ground truth planted in the town: long stays, stuck sensors, failed lamps, an outage.

Every time is an offset from the town's ``origin`` (the start of the simulation, i.e. of
the backfill when there is one), so a backfill of N days followed by live running holds
the same events whatever the wall-clock date. Everything ends by :attr:`Scenario.horizon`
(about 12.5 days after the origin): a backfill of 13 days contains the whole scenario.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

#: The French legal limit of a continuous stay on a public street (Code de la route
#: R417-12): a car parked longer is a "voiture ventouse".
LEGAL_LIMIT = timedelta(hours=168)


@dataclass(frozen=True)
class LongStay:
    """A car parked for days on one bay: flagged when it overstays the legal limit."""

    spot: str  # ParkingSpot entity id
    device_id: str
    arrival: datetime
    departure: datetime

    @property
    def duration(self) -> timedelta:
        """How long the car stays."""
        return self.departure - self.arrival

    @property
    def over_limit(self) -> bool:
        """True when the stay exceeds the 168-hour legal limit."""
        return self.duration > LEGAL_LIMIT


@dataclass(frozen=True)
class StuckSensor:
    """A bay sensor that froze (``mode`` occupied or free) or fell silent at ``since``."""

    spot: str
    device_id: str
    mode: str  # occupied | free | silent
    since: datetime


@dataclass(frozen=True)
class FailedLamp:
    """A street light whose lamp fails at ``since`` (status defectiveLamp, no power)."""

    streetlight: str  # Streetlight entity id
    device_id: str
    since: datetime


@dataclass(frozen=True)
class ChargerOutage:
    """A charging station out of service over [start, end)."""

    station: str
    device_id: str
    start: datetime
    end: datetime


@dataclass(frozen=True)
class Scenario:
    """Everything planted in the town, with absolute times derived from ``origin``."""

    origin: datetime
    long_stays: tuple[LongStay, ...]
    stuck_sensors: tuple[StuckSensor, ...]
    failed_lamps: tuple[FailedLamp, ...]
    charger_outages: tuple[ChargerOutage, ...]

    @property
    def overstays(self) -> tuple[LongStay, ...]:
        """The long stays a long-stay detector must flag (over the legal limit)."""
        return tuple(s for s in self.long_stays if s.over_limit)

    @property
    def horizon(self) -> datetime:
        """The instant after which nothing of the scenario starts or ends any more."""
        ends = [s.departure for s in self.long_stays]
        ends += [s.since for s in self.stuck_sensors] + [f.since for f in self.failed_lamps]
        ends += [o.end for o in self.charger_outages]
        return max(ends)


#: Long stays as (arrival offset hours, duration hours, jitter hours): three over the
#: limit, two under it (negatives: 3 and 6 days).
LONG_STAYS = ((5.0, 195.0, 6.0), (44.0, 240.0, 8.0), (81.0, 174.0, 2.0),
              (12.0, 76.0, 4.0), (66.0, 140.0, 4.0))  # fmt: skip
#: Stuck sensors as (mode, offset hours, usage of the zone).
STUCK = (("occupied", 3.0, "residential"), ("free", 20.0, "commercial"),
         ("silent", 36.0, "residential"))  # fmt: skip
#: Lamp failures, offset hours.
LAMP_FAILURES = (12.0, 55.0, 137.0)
#: Charger outage: offset hours and duration hours.
CHARGER_OUTAGE = (54.0, 36.0)
