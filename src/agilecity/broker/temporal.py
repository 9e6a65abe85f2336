"""The temporal evolution of entities: history records, temporal queries, aggregation periods.

Every write's before/after documents yield history records (one per attribute instance
created, changed or deleted) that the store appends in the same transaction, so history
can never disagree with the current state. Pure code: no I/O.
"""

from __future__ import annotations

import itertools
import re
import secrets
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Literal

from agilecity.broker.entities import Doc, Instance
from agilecity.broker.timeutil import canonical_datetime, format_datetime, parse_datetime
from agilecity.errors import BadRequestDataError

TimeProperty = Literal["observedAt", "createdAt", "modifiedAt"]
AGGREGATION_METHODS = ("totalCount", "distinctCount", "sum", "avg", "min", "max", "stddev", "sumsq")
MAX_PERIODS = 10_000
_DURATION = re.compile(
    r"^P(?:(?P<years>\d+)Y)?(?:(?P<months>\d+)M)?(?:(?P<weeks>\d+)W)?(?:(?P<days>\d+)D)?"
    r"(?:T(?:(?P<hours>\d+)H)?(?:(?P<minutes>\d+)M)?(?:(?P<seconds>\d+(?:\.\d+)?)S)?)?$"
)


@dataclass(frozen=True)
class HistoryRecord:
    """One attribute instance as it was at one moment (deleted_at set for a removal)."""

    entity_id: str
    attr: str
    instance: Instance
    instance_id: str
    modified_at: str
    deleted_at: str | None = None

    @property
    def dataset_id(self) -> str:
        """The instance's datasetId, "" for the default instance."""
        return str(self.instance.get("datasetId") or "")


def numeric_value(instance: Instance) -> float | None:
    """The number an instance holds (for aggregation), None for anything else."""
    value = instance.get("value")
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


_PROCESS = secrets.token_hex(6)  # tells this process's instanceIds from another's
_SEQUENCE = itertools.count()


def new_instance_id() -> str:
    """A fresh NGSI-LD instanceId, unique and increasing with time.

    32 hex digits like a UUID: milliseconds since 1970, this process's random tag and a
    counter. Increasing ids go to the end of the store's instanceId index instead of a
    random place in it, which keeps appending history cheap as it grows; no system call.
    """
    millis = time.time_ns() // 1_000_000
    return f"urn:ngsi-ld:Instance:{millis:012x}{_PROCESS}{next(_SEQUENCE) & 0xFFFFFFFF:08x}"


def _by_dataset(instances: list[Instance]) -> dict[str | None, Instance]:
    return {inst.get("datasetId"): inst for inst in instances}


def history_records(before: Doc | None, after: Doc | None) -> list[HistoryRecord]:
    """The instances a write created, changed or deleted, as history records."""
    if after is None:
        return []  # deleting an entity keeps its history; the store marks it deleted
    now = after["modifiedAt"]
    old_attrs = before["attrs"] if before is not None else {}
    records: list[HistoryRecord] = []
    for iri, instances in after["attrs"].items():
        previous = _by_dataset(old_attrs.get(iri, []))
        for inst in instances:
            if previous.get(inst.get("datasetId")) != inst:
                records.append(HistoryRecord(after["id"], iri, inst, new_instance_id(), now))
    for iri, instances in old_attrs.items():
        current = _by_dataset(after["attrs"].get(iri, []))
        for inst in instances:
            if inst.get("datasetId") not in current:
                records.append(
                    HistoryRecord(after["id"], iri, inst, new_instance_id(), now, deleted_at=now)
                )
    return records


def all_instances(doc: Doc, instances: dict[str, list[Instance]]) -> list[HistoryRecord]:
    """History records for explicitly given instances (temporal API writes)."""
    return [
        HistoryRecord(doc["id"], iri, inst, new_instance_id(), doc["modifiedAt"])
        for iri, items in instances.items()
        for inst in items
    ]


# -- durations and periods -------------------------------------------------------------


@dataclass(frozen=True)
class Duration:
    """An ISO 8601 duration split into calendar months and exact seconds."""

    months: int = 0
    seconds: float = 0.0

    @property
    def is_zero(self) -> bool:
        """PT0S: one period spanning the whole time range."""
        return self.months == 0 and self.seconds == 0


def parse_duration(text: str) -> Duration:
    """Parse ``P[n]Y[n]M[n]DT[n]H[n]M[n]S`` or ``P[n]W`` (aggrPeriodDuration)."""
    match = _DURATION.match(text or "")
    if match is None or text in ("P", "PT") or text.endswith("T"):
        raise BadRequestDataError(f"aggrPeriodDuration {text!r} is not an ISO 8601 duration")
    parts = {k: float(v) if v else 0.0 for k, v in match.groupdict().items()}
    months = int(parts["years"] * 12 + parts["months"])
    seconds = (
        parts["weeks"] * 7 * 86400
        + parts["days"] * 86400
        + parts["hours"] * 3600
        + parts["minutes"] * 60
        + parts["seconds"]
    )
    return Duration(months, seconds)


def _add(moment: datetime, duration: Duration) -> datetime:
    if duration.months:
        month_index = moment.month - 1 + duration.months
        year, month = moment.year + month_index // 12, month_index % 12 + 1
        day = min(moment.day, _days_in_month(year, month))
        moment = moment.replace(year=year, month=month, day=day)
    return moment + timedelta(seconds=duration.seconds)


def _days_in_month(year: int, month: int) -> int:
    following = datetime(year + month // 12, month % 12 + 1, 1, tzinfo=UTC)
    return (following - timedelta(days=1)).day


def periods(start: str, end: str, duration: Duration) -> list[tuple[str, str]]:
    """Consecutive [start, end) periods of the duration covering [start, end)."""
    if duration.is_zero:
        return [(start, end)]
    origin, stop = parse_datetime(start), parse_datetime(end)
    found: list[tuple[str, str]] = []
    begin, k = origin, 0
    while begin < stop:
        # Each boundary is origin + k durations, so month ends do not drift (Jan 31, Feb 29,
        # Mar 31, ...) the way repeatedly adding one clamped month would.
        k += 1
        following = _add(origin, Duration(duration.months * k, duration.seconds * k))
        found.append((format_datetime(begin), format_datetime(following)))
        if len(found) > MAX_PERIODS:
            raise BadRequestDataError(
                f"more than {MAX_PERIODS} aggregation periods: use a longer aggrPeriodDuration"
            )
        begin = following
    return found


# -- temporal queries ------------------------------------------------------------------


@dataclass
class TemporalParams:
    """timerel, timeAt, endTimeAt, timeproperty, lastN and aggregation of a temporal query."""

    timerel: str | None = None
    time_at: str | None = None
    end_time_at: str | None = None
    timeproperty: TimeProperty = "observedAt"
    last_n: int | None = None
    aggregated: bool = False
    aggr_methods: list[str] = field(default_factory=list)
    aggr_period: Duration = field(default_factory=Duration)

    def validate(self) -> TemporalParams:
        """Check the combination of parameters (clause 4.11) and canonicalise times."""
        if self.timerel is not None:
            if self.timerel not in ("before", "after", "between"):
                raise BadRequestDataError("timerel must be before, after or between")
            if self.time_at is None:
                raise BadRequestDataError("timerel needs timeAt")
            self.time_at = canonical_datetime(self.time_at, "timeAt")
            if self.timerel == "between":
                if self.end_time_at is None:
                    raise BadRequestDataError("timerel=between needs endTimeAt")
                self.end_time_at = canonical_datetime(self.end_time_at, "endTimeAt")
                if self.end_time_at <= self.time_at:
                    raise BadRequestDataError("endTimeAt must be after timeAt")
        elif self.time_at is not None or self.end_time_at is not None:
            raise BadRequestDataError("timeAt and endTimeAt need timerel")
        if self.timeproperty not in ("observedAt", "createdAt", "modifiedAt"):
            raise BadRequestDataError("timeproperty must be observedAt, createdAt or modifiedAt")
        if self.last_n is not None and self.last_n <= 0:
            raise BadRequestDataError("lastN must be a positive integer")
        if self.aggregated:
            unknown = set(self.aggr_methods) - set(AGGREGATION_METHODS)
            if not self.aggr_methods or unknown:
                raise BadRequestDataError(
                    "aggregatedValues needs aggrMethods among " + ", ".join(AGGREGATION_METHODS)
                )
        return self

    def bounds(self) -> tuple[str | None, str | None]:
        """The [from, to) time range selected, either end open."""
        if self.timerel == "after":
            return self.time_at, None
        if self.timerel == "before":
            return None, self.time_at
        if self.timerel == "between":
            return self.time_at, self.end_time_at
        return None, None


@dataclass
class Aggregate:
    """What the store computes per (attribute, dataset, period)."""

    count: int
    distinct: int
    numeric_count: int
    total: float | None
    minimum: float | None
    maximum: float | None
    sum_squares: float | None
    squared_deviations: float | None = None  # sum of (x - mean)^2, computed in two passes

    def value(self, method: str) -> float | int | None:
        """The value of one aggregation method (stddev is the population deviation)."""
        numeric = self.numeric_count > 0 and self.total is not None
        if method == "totalCount":
            return self.count
        if method == "distinctCount":
            return self.distinct
        if not numeric:
            return None
        assert self.total is not None and self.sum_squares is not None
        numbers = self.numeric_count
        if method == "sum":
            return self.total
        if method == "sumsq":
            return self.sum_squares
        if method == "avg":
            return self.total / numbers
        if method == "min":
            return self.minimum
        if method == "max":
            return self.maximum
        if self.squared_deviations is not None:
            return float((self.squared_deviations / numbers) ** 0.5)
        mean = self.total / numbers
        variance = max(self.sum_squares / numbers - mean * mean, 0.0)
        return float(variance**0.5)
