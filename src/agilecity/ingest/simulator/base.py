"""Shared pieces of the simulator: readings, measure descriptions, device kinds, day maths."""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, ClassVar

import numpy as np

#: Seconds in a simulated day; every device model works in UTC days of this length.
DAY = 86_400

#: A measure value as a device sends it.
Value = str | int | float


@dataclass(frozen=True, slots=True)
class Reading:
    """One message of one device: its time, its key, its id and its measures by object_id."""

    time: datetime
    apikey: str
    device_id: str
    measures: dict[str, Value]


@dataclass(frozen=True, slots=True)
class Measure:
    """How one short measurement name of a device maps to an NGSI-LD attribute."""

    object_id: str
    name: str
    type: str  # IoT Agent attribute type: Text, Number, Integer, Boolean, DateTime
    unit: str | None = None  # UN/CEFACT common code, carried as unitCode


@dataclass(frozen=True, slots=True)
class Kind:
    """A kind of device: one IoT Agent device group, one Smart Data Models entity type."""

    key: str
    entity_type: str
    measures: tuple[Measure, ...]
    #: Small integer mixed into every random stream of this kind (keeps kinds independent).
    stream: int

    def measure(self, object_id: str) -> Measure:
        """The description of one object_id of this kind."""
        for item in self.measures:
            if item.object_id == object_id:
                return item
        raise KeyError(object_id)


def apikey_for(seed: int, kind: str) -> str:
    """The deterministic API key of a kind's device group in the town of ``seed``."""
    return hashlib.blake2b(f"agilecity-demo:{seed}:{kind}".encode(), digest_size=10).hexdigest()


def rng(seed: int, *stream: int) -> np.random.Generator:
    """An independent random generator for one (seed, stream...) address."""
    return np.random.default_rng([seed, *stream])


def to_seconds(moment: datetime) -> int:
    """Whole UTC seconds since the Unix epoch of an aware datetime (naive = UTC)."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp())


def from_seconds(seconds: int) -> datetime:
    """The aware UTC datetime of whole seconds since the epoch."""
    return datetime.fromtimestamp(seconds, UTC)


def iso(seconds: int) -> str:
    """``2026-12-01T10:15:00Z``: the timestamp form devices send."""
    return from_seconds(seconds).strftime("%Y-%m-%dT%H:%M:%SZ")


def day_range(start: int, end: int) -> range:
    """The UTC day numbers that [start, end) touches."""
    if end <= start:
        return range(0)
    return range(start // DAY, (end - 1) // DAY + 1)


@dataclass(kw_only=True)
class Device:
    """One simulated device: identity, place, and a per-day reading generator.

    Subclasses implement :meth:`day` (the sorted (second, measures) pairs of one UTC day,
    a pure function of the town's seed and the day). Days are cached, a few at a time, so
    the live clock asking for tiny windows stays cheap.
    """

    kind: ClassVar[Kind]
    device_id: str
    entity_id: str
    name: str
    lon: float
    lat: float
    seed: int
    index: int
    _cache: OrderedDict[int, list[tuple[int, dict[str, Value]]]] = field(
        default_factory=OrderedDict, repr=False, compare=False
    )

    def day(self, day: int) -> list[tuple[int, dict[str, Value]]]:
        """The readings of UTC day ``day`` (seconds since the epoch, measures), sorted."""
        raise NotImplementedError

    def rng(self, *stream: int) -> np.random.Generator:
        """A random generator private to this device and ``stream``."""
        return rng(self.seed, self.kind.stream, self.index, *stream)

    def cached_day(self, day: int) -> list[tuple[int, dict[str, Value]]]:
        """:meth:`day`, remembered for the last few days asked."""
        found = self._cache.get(day)
        if found is None:
            found = self.day(day)
            self._cache[day] = found
            while len(self._cache) > 3:
                self._cache.popitem(last=False)
        else:
            self._cache.move_to_end(day)
        return found

    def window(self, start: int, end: int) -> list[tuple[int, dict[str, Value]]]:
        """The readings with start <= second < end, in time order."""
        out: list[tuple[int, dict[str, Value]]] = []
        for day in day_range(start, end):
            entries = self.cached_day(day)
            if start <= day * DAY and end >= (day + 1) * DAY:
                out.extend(entries)
            else:
                out.extend(e for e in entries if start <= e[0] < end)
        return out

    def latest(self, before: int, lookback: int = 2 * DAY) -> dict[str, tuple[int, Value]]:
        """The last value of each object_id sent in [before - lookback, before)."""
        out: dict[str, tuple[int, Value]] = {}
        for t, measures in self.window(before - lookback, before):
            for key, value in measures.items():
                out[key] = (t, value)
        return out

    def entity(self, observed: dict[str, tuple[int, Value]]) -> dict[str, Any]:
        """The device's NGSI-LD entity, with the last values in ``observed``."""
        raise NotImplementedError

    def count(self, start: int, end: int) -> int:
        """How many readings [start, end) holds (overridden where arithmetic is enough)."""
        return len(self.window(start, end))


def periodic_times(day: int, step: int, phase: int) -> np.ndarray:
    """The seconds day*DAY + phase + k*step that fall inside the day (phase < step)."""
    first = day * DAY + phase
    return np.arange(first, (day + 1) * DAY, step, dtype=np.int64)


def periodic_count(start: int, end: int, step: int, phase: int) -> int:
    """How many times phase + k*step (k any integer, UTC-day aligned) fall in [start, end)."""
    if end <= start:
        return 0
    # DAY is a multiple of every step used, so the grid is the same on every day.
    first = -((phase - start) // step)  # smallest k with phase + k*step >= start
    last = -((phase - end) // step)  # smallest k with phase + k*step >= end
    return max(0, last - first)


def rounded(values: np.ndarray, digits: int) -> list[float]:
    """Python floats rounded to ``digits`` (numpy's rounding, then plain floats)."""
    return [float(v) for v in np.round(values, digits)]
