"""Pure computations of the long-stay parking service: stays, long stays, sensor health.

The input is the time-ordered ``status`` history of each ``ParkingSpot`` (free, occupied,
closed, unknown). Sensors re-send their status as a heartbeat, so equal consecutive values
are one state: a *stay* starts at the first ``occupied`` after another value and ends at the
next value that is not ``occupied``. :class:`SpotState` is that state machine, fed one
observation at a time and serialisable to a JSON-safe dict, so a service can persist it and
resume after a restart. Nothing here does I/O; the zone KPIs, the entities and the
enforcement list are in :mod:`.entities`; README.md gives the rules, defaults and references.

A service's loop::

    state.feed(observed_at, value)             # for each notification
    findings = long_stays(states, now, limits) # now: the newest observation time seen
    ...write or update the Alert entities...
    acknowledge(states_by_spot, findings)      # then persist {spot: state.to_dict()}
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta
from typing import Any, Literal

OCCUPIED = "occupied"
FREE = "free"
UNKNOWN = "unknown"
#: The values of ``ParkingSpot.status`` (Smart Data Models enum); anything else is unknown.
STATUSES = frozenset({"free", "occupied", "closed", "unknown"})

#: Code de la route, article R417-12: parking "ininterrompu ... pendant une durée excédant
#: sept jours" is abusive (a municipal order may set a shorter limit).
LEGAL_LIMIT = timedelta(days=7)

#: Days of arrival counts a state keeps (the turnover window may not be longer).
ARRIVAL_DAYS = 14
#: How long a stay that ended without an alert waits for an evaluation to report it (the
#: longest such stay is kept, so a short one after it cannot hide it).
REPORT_WINDOW = timedelta(days=1)

Phase = Literal["new", "ongoing", "ended", "withdrawn"]
IssueKind = Literal["silent", "stuckOccupied", "stuckFree"]

_STATE_VERSION = 1


@dataclass(frozen=True)
class HealthRules:
    """Thresholds of the plausibility and sensor-health rules (README.md says why)."""

    #: How often a healthy sensor re-sends its status.
    heartbeat: timedelta = timedelta(hours=1)
    #: A sensor is silent after ``heartbeat * tolerance`` without any message.
    tolerance: float = 3.0
    #: Occupied longer than this: a frozen sensor, not a long stay (> every zone's limit).
    max_occupied: timedelta = timedelta(days=12)
    #: Free longer than this while the zone's other spots turn over: a frozen sensor.
    max_free: timedelta = timedelta(days=7)
    #: ... where "turn over" means a median of more than this many arrivals per spot per day.
    min_turnover: float = 1.0
    #: The trailing window the zone's turnover is measured over.
    turnover_window: timedelta = timedelta(days=7)

    def __post_init__(self) -> None:
        if self.heartbeat <= timedelta(0) or self.tolerance < 1:
            raise ValueError("heartbeat must be positive and tolerance at least 1")
        if not timedelta(days=1) <= self.turnover_window <= timedelta(days=ARRIVAL_DAYS):
            raise ValueError(f"turnover_window must be between 1 and {ARRIVAL_DAYS} days")

    @property
    def silent_after(self) -> timedelta:
        """The silence after which a sensor is reported silent."""
        return self.heartbeat * self.tolerance


DEFAULT_RULES = HealthRules()


@dataclass(frozen=True)
class Stay:
    """One occupied interval of one spot: ``departure`` is None while the car is there."""

    spot: str
    zone: str | None
    arrival: datetime
    #: The newest observation of the stay (heartbeats included).
    last_seen: datetime
    departure: datetime | None = None
    #: False when the history starts with the car already there (arrival is a lower bound).
    arrival_seen: bool = True

    @property
    def end(self) -> datetime:
        """The departure, or the last observation of a stay still running."""
        return self.departure if self.departure is not None else self.last_seen

    @property
    def duration(self) -> timedelta:
        """How long the car was observed on the spot."""
        return self.end - self.arrival

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe form."""
        return {
            "spot": self.spot,
            "zone": self.zone,
            "arrival": self.arrival.isoformat(),
            "lastSeen": self.last_seen.isoformat(),
            "departure": None if self.departure is None else self.departure.isoformat(),
            "arrivalSeen": self.arrival_seen,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Stay:
        """The stay :meth:`to_dict` wrote."""
        departure = data["departure"]
        return cls(
            spot=data["spot"],
            zone=data["zone"],
            arrival=_parse(data["arrival"]),
            last_seen=_parse(data["lastSeen"]),
            departure=None if departure is None else _parse(departure),
            arrival_seen=bool(data["arrivalSeen"]),
        )


@dataclass(frozen=True)
class LongStay:
    """A stay over its zone's limit, and what to do with its alert (``phase``).

    new: open an alert; ongoing: update it; ended: the car left (close it at
    ``departure``); withdrawn: the stay outgrew the plausibility bound, the sensor is
    suspect (close the alert, see :func:`sensor_health`).
    """

    spot: str
    zone: str | None
    arrival: datetime
    arrival_seen: bool
    duration: timedelta
    limit: timedelta
    phase: Phase
    departure: datetime | None = None
    #: When the alert ends: the departure, or the moment the plausibility bound was passed.
    closed: datetime | None = None

    @property
    def over_since(self) -> datetime:
        """The moment the stay passed the limit."""
        return self.arrival + self.limit


@dataclass(frozen=True)
class SensorIssue:
    """A suspect sensor: silent, or frozen in one state far beyond plausibility."""

    spot: str
    zone: str | None
    kind: IssueKind
    #: Silent: the last message; frozen: the start of the state it is stuck in.
    since: datetime
    #: When the rule fired (``since`` plus the rule's threshold).
    detected: datetime
    #: How long it has lasted at the evaluation time.
    duration: timedelta


def normalise_status(value: object) -> str:
    """The ParkingSpot status a value stands for (``unknown`` when it is none of them)."""
    text = value.strip().lower() if isinstance(value, str) else ""
    return text if text in STATUSES else UNKNOWN


@dataclass
class SpotState:
    """The incremental state of one spot: feed it observations in time order."""

    spot: str
    zone: str | None = None
    status: str | None = None
    #: The first observation of the current status.
    since: datetime | None = None
    last_message: datetime | None = None
    first_seen: datetime | None = None
    #: Whether the current stay's arrival was observed (it followed another status).
    arrival_seen: bool = False
    #: The arrival of the current stay when its long-stay alert is open (acknowledged).
    alerted: datetime | None = None
    #: Stays whose alert was open when the car left, until their "ended" is acknowledged.
    closing: list[Stay] = field(default_factory=list)
    #: The longest stay that ended without an alert lately (see REPORT_WINDOW), until reported.
    unreported: Stay | None = None
    #: Observed arrivals per UTC day (ISO date), for the turnover.
    arrivals: dict[str, int] = field(default_factory=dict)

    def feed(self, at: datetime, value: object) -> Stay | None:
        """Apply one observation; the stay it ends, if any. Older than the last: ignored."""
        at = as_utc(at)
        status = normalise_status(value)
        if self.last_message is not None and at < self.last_message:
            return None
        if self.first_seen is None:
            self.first_seen = at
        ended = None
        if status != self.status:
            if self.status == OCCUPIED:
                ended = self._depart(at)
            if status == OCCUPIED:
                self.arrival_seen = self.status is not None
                if self.arrival_seen:
                    self._count_arrival(at)
            self.status, self.since = status, at
        self.last_message = at
        return ended

    def _depart(self, at: datetime) -> Stay:
        assert self.since is not None and self.last_message is not None
        stay = Stay(self.spot, self.zone, self.since, self.last_message, at, self.arrival_seen)
        kept = self.unreported
        if self.alerted == self.since:
            self.closing.append(stay)
        elif kept is None or stay.duration >= kept.duration or kept.end < at - REPORT_WINDOW:
            self.unreported = stay
        self.alerted = None
        return stay

    def _count_arrival(self, at: datetime) -> None:
        day = at.date()
        key = day.isoformat()
        self.arrivals[key] = self.arrivals.get(key, 0) + 1
        oldest = (day - timedelta(days=ARRIVAL_DAYS - 1)).isoformat()
        for old in [k for k in self.arrivals if k < oldest]:
            del self.arrivals[old]

    @property
    def current(self) -> Stay | None:
        """The stay in progress (up to the last observation), or None when not occupied."""
        if self.status != OCCUPIED or self.since is None or self.last_message is None:
            return None
        return Stay(self.spot, self.zone, self.since, self.last_message, None, self.arrival_seen)

    def observed_until(self, now: datetime, silent_after: timedelta) -> datetime | None:
        """Up to when the status is known: ``now`` while the sensor speaks, else its last word."""
        if self.last_message is None:
            return None
        if as_utc(now) - self.last_message > silent_after:
            return self.last_message
        return max(as_utc(now), self.last_message)

    def turnover(
        self, now: datetime, window: timedelta = DEFAULT_RULES.turnover_window
    ) -> float | None:
        """Observed arrivals per day over the trailing window (None before a day of data)."""
        if self.first_seen is None:
            return None
        now = as_utc(now)
        first_day = now.date() - timedelta(days=max(1, window.days) - 1)
        start = max(self.first_seen, datetime.combine(first_day, time(), UTC))
        days = (now - start) / timedelta(days=1)
        if days < 1:
            return None
        low, high = first_day.isoformat(), now.date().isoformat()
        return sum(n for day, n in self.arrivals.items() if low <= day <= high) / days

    def acknowledge(self, finding: LongStay) -> None:
        """Record that the service acted on a finding of this spot (opened or closed its alert)."""
        current = self.current
        if finding.phase == "new" and current is not None and current.arrival == finding.arrival:
            self.alerted = finding.arrival
        elif finding.phase == "withdrawn" and self.alerted == finding.arrival:
            self.alerted = None
        elif finding.phase == "ended":
            self.closing = [s for s in self.closing if s.arrival != finding.arrival]
            if self.unreported is not None and self.unreported.arrival == finding.arrival:
                self.unreported = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe form, for the service to persist."""
        return {
            "version": _STATE_VERSION,
            "spot": self.spot,
            "zone": self.zone,
            "status": self.status,
            "since": _iso_or_none(self.since),
            "lastMessage": _iso_or_none(self.last_message),
            "firstSeen": _iso_or_none(self.first_seen),
            "arrivalSeen": self.arrival_seen,
            "alerted": _iso_or_none(self.alerted),
            "closing": [s.to_dict() for s in self.closing],
            "unreported": None if self.unreported is None else self.unreported.to_dict(),
            "arrivals": dict(sorted(self.arrivals.items())),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SpotState:
        """The state :meth:`to_dict` wrote."""
        if data.get("version") != _STATE_VERSION:
            raise ValueError(f"unsupported SpotState version {data.get('version')!r}")
        unreported = data["unreported"]
        return cls(
            spot=data["spot"],
            zone=data["zone"],
            status=data["status"],
            since=_parse_or_none(data["since"]),
            last_message=_parse_or_none(data["lastMessage"]),
            first_seen=_parse_or_none(data["firstSeen"]),
            arrival_seen=bool(data["arrivalSeen"]),
            alerted=_parse_or_none(data["alerted"]),
            closing=[Stay.from_dict(s) for s in data["closing"]],
            unreported=None if unreported is None else Stay.from_dict(unreported),
            arrivals={str(k): int(v) for k, v in data["arrivals"].items()},
        )


def stays_from_series(
    series: Iterable[tuple[datetime, object]], spot: str, zone: str | None = None
) -> list[Stay]:
    """Every stay of one spot's status series (sorted by time; the last may be open)."""
    state = SpotState(spot, zone)
    out: list[Stay] = []
    for at, value in sorted(series, key=lambda item: item[0]):
        ended = state.feed(at, value)
        if ended is not None:
            out.append(ended)
    if state.current is not None:
        out.append(state.current)
    return out


def zone_limit(
    zone: str | None,
    limits: Mapping[str, timedelta] | None = None,
    default: timedelta = LEGAL_LIMIT,
    rules: HealthRules = DEFAULT_RULES,
) -> timedelta:
    """The long-stay limit of a zone (R417-12's 7 days unless the zone has its own)."""
    limit = (limits or {}).get(zone, default) if zone is not None else default
    if not timedelta(0) < limit < rules.max_occupied:
        raise ValueError(f"limit {limit} of zone {zone!r} must be positive and below max_occupied")
    return limit


def overstays(
    stays: Iterable[Stay],
    limits: Mapping[str, timedelta] | None = None,
    *,
    default_limit: timedelta = LEGAL_LIMIT,
    rules: HealthRules = DEFAULT_RULES,
) -> list[Stay]:
    """The stays over their zone's limit and within the plausibility bound (batch form)."""
    return [
        stay
        for stay in stays
        if zone_limit(stay.zone, limits, default_limit, rules) < stay.duration <= rules.max_occupied
    ]


def long_stays(
    states: Iterable[SpotState],
    now: datetime,
    limits: Mapping[str, timedelta] | None = None,
    *,
    default_limit: timedelta = LEGAL_LIMIT,
    rules: HealthRules = DEFAULT_RULES,
) -> list[LongStay]:
    """The long stays at ``now`` (the service's clock) with the phase of their alert."""
    out: list[LongStay] = []
    for state in states:
        limit = zone_limit(state.zone, limits, default_limit, rules)
        for left in state.closing:
            out.append(_finding(left, limit, "ended", left.duration, left.departure))
        late = state.unreported
        if late is not None and limit < late.duration <= rules.max_occupied:
            out.append(_finding(late, limit, "ended", late.duration, late.departure))
        stay = state.current
        until = state.observed_until(now, rules.silent_after)
        if stay is None or until is None:
            continue
        duration = until - stay.arrival
        alerted = state.alerted == stay.arrival
        if duration > rules.max_occupied:
            if alerted:
                closed = stay.arrival + rules.max_occupied
                out.append(_finding(stay, limit, "withdrawn", duration, closed))
        elif duration > limit:
            out.append(_finding(stay, limit, "ongoing" if alerted else "new", duration, None))
    return sorted(out, key=lambda f: (f.spot, f.arrival))


def _finding(
    stay: Stay, limit: timedelta, phase: Phase, duration: timedelta, closed: datetime | None
) -> LongStay:
    return LongStay(
        stay.spot, stay.zone, stay.arrival, stay.arrival_seen, duration, limit, phase,
        stay.departure, closed,
    )  # fmt: skip


def acknowledge(states: Mapping[str, SpotState], findings: Iterable[LongStay]) -> None:
    """Record that the service wrote the alerts of ``findings`` (:meth:`SpotState.acknowledge`)."""
    for finding in findings:
        state = states.get(finding.spot)
        if state is not None:
            state.acknowledge(finding)


def sensor_health(
    states: Iterable[SpotState], now: datetime, rules: HealthRules = DEFAULT_RULES
) -> list[SensorIssue]:
    """The suspect sensors at ``now``: silent, stuck occupied, or stuck free in a busy zone."""
    now = as_utc(now)
    states = list(states)
    by_zone: dict[str | None, list[SpotState]] = {}
    for state in states:
        by_zone.setdefault(state.zone, []).append(state)
    rates = {s.spot: s.turnover(now, rules.turnover_window) for s in states}
    out: list[SensorIssue] = []
    for state in states:
        if state.last_message is None or state.since is None:
            continue
        silence = now - state.last_message
        if silence > rules.silent_after:
            detected = state.last_message + rules.silent_after
            out.append(
                SensorIssue(state.spot, state.zone, "silent", state.last_message, detected, silence)
            )
            continue
        held = max(now, state.last_message) - state.since
        if state.status == OCCUPIED and held > rules.max_occupied:
            detected = state.since + rules.max_occupied
            out.append(
                SensorIssue(state.spot, state.zone, "stuckOccupied", state.since, detected, held)
            )
        elif state.status == FREE and held > rules.max_free:
            others = [
                rate
                for other in by_zone[state.zone]
                if other.spot != state.spot and (rate := rates[other.spot]) is not None
            ]
            if others and statistics.median(others) > rules.min_turnover:
                detected = state.since + rules.max_free
                out.append(
                    SensorIssue(state.spot, state.zone, "stuckFree", state.since, detected, held)
                )
    return sorted(out, key=lambda i: i.spot)


def as_utc(moment: datetime) -> datetime:
    """The same instant in UTC; naive datetimes are refused (observations carry a zone)."""
    if moment.tzinfo is None:
        raise ValueError(f"naive datetime {moment!r}: observation times need a time zone")
    return moment.astimezone(UTC)


def _parse(text: str) -> datetime:
    return as_utc(datetime.fromisoformat(text))


def _parse_or_none(text: str | None) -> datetime | None:
    return None if text is None else _parse(text)


def _iso_or_none(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat()
