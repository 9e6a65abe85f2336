"""Noise indicators from 1-minute LAeq samples: hourly Leq, Lday/Levening/Lnight/Lden, %HA.

Pure computations (no I/O). References, quoted in ``README.md``:

- Directive 2002/49/EC (END) Annex I: Lden = 10 lg (1/24 (12·10^(Lday/10)
  + 4·10^((Levening+5)/10) + 8·10^((Lnight+10)/10))); periods 07-19, 19-23, 23-07 local
  time by default, the start of the day chosen by the Member State, the evening shortened
  by one or two hours with the day and/or night lengthened accordingly.
- WHO Environmental Noise Guidelines for the European Region (2018), road traffic:
  Lden 53 dB, Lnight 45 dB.
- Commission Directive (EU) 2020/367 (Annex III of the END), road traffic:
  %HA = 78.9270 - 3.1162·Lden + 0.0342·Lden², %HSD = 19.4312 - 0.9336·Lnight
  + 0.0126·Lnight² (the WHO 2018 relations of Guski et al. 2017 and Basner & McGuire 2018).

Conventions. A sample's ``observedAt`` is the END of its interval (``sample_seconds`` long);
it is counted in the hour or period containing the middle of its interval. Two samples with
the same ``observedAt`` are one sample (the later in input order wins). The "day" D of the
Lden runs from the start of the day period on D to the start of the day period on D+1
(default 07:00 D to 07:00 D+1), so its night is 23:00 D to 07:00 D+1. Periods are local
clock hours in the time zone given: on a daylight-saving change the night has 7 or 9 hours
and needs 7 or 9 hours of samples; the Lden still weighs the periods by their nominal
hours (12/4/8), as the Directive's formula does.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import numpy as np
from numpy.typing import NDArray

Sample = tuple[datetime, float]  # (observedAt = end of the interval, LAeq in dB(A))
PERIOD_NAMES = ("day", "evening", "night")


def energetic_mean(levels: Iterable[float]) -> float:
    """Energetic average 10·lg(mean(10^(L/10))) of levels in dB."""
    values = np.asarray(list(levels), dtype=float)
    if values.size == 0:
        raise ValueError("energetic_mean of no levels")
    return _db(float(np.mean(np.power(10.0, values / 10.0))))


def energetic_sum(levels: Iterable[float]) -> float:
    """Energetic sum 10·lg(Σ 10^(L/10)) of levels in dB (incoherent sources)."""
    values = np.asarray(list(levels), dtype=float)
    if values.size == 0:
        raise ValueError("energetic_sum of no levels")
    return _db(float(np.sum(np.power(10.0, values / 10.0))))


def penalised_average(terms: Iterable[tuple[float, float, float]]) -> float:
    """10·lg(Σ h·10^((L+p)/10) / Σ h) over (level, hours, penalty) terms: Lden, Ldn, Lde..."""
    energy, hours = 0.0, 0.0
    for level, duration, penalty in terms:
        energy += duration * 10.0 ** ((level + penalty) / 10.0)
        hours += duration
    if hours <= 0:
        raise ValueError("penalised_average needs a positive total duration")
    return _db(energy / hours)


@dataclass(frozen=True)
class Periods:
    """Day, evening and night as local clock hours, with the evening and night penalties."""

    day_start: int = 7
    day_hours: int = 12
    evening_hours: int = 4
    night_hours: int = 8
    evening_penalty_db: float = 5.0
    night_penalty_db: float = 10.0

    def __post_init__(self) -> None:
        hours = (self.day_hours, self.evening_hours, self.night_hours)
        if not 0 <= self.day_start < 24:
            raise ValueError(f"day_start must be an hour 0-23, not {self.day_start}")
        if min(hours) < 1 or sum(hours) != 24:
            raise ValueError(f"period hours {hours} must be positive and add up to 24")

    def hours(self, name: str) -> int:
        """Nominal duration of a period ("day", "evening", "night") in hours."""
        return {"day": self.day_hours, "evening": self.evening_hours}.get(name, self.night_hours)

    def penalty(self, name: str) -> float:
        """Penalty in dB of a period in the Lden."""
        return {"day": 0.0, "evening": self.evening_penalty_db}.get(name, self.night_penalty_db)

    def bounds(self, day: date, tz: ZoneInfo) -> list[tuple[str, datetime, datetime]]:
        """(name, start, end) of the day, evening and night of day D, aware local datetimes."""
        offsets = (0, self.day_hours, self.day_hours + self.evening_hours, 24)
        edges = [_wall(day, self.day_start + offset, tz) for offset in offsets]
        return [(name, edges[i], edges[i + 1]) for i, name in enumerate(PERIOD_NAMES)]

    def day_of(self, instant: datetime, tz: ZoneInfo) -> date:
        """The day D whose day-evening-night span contains this instant."""
        local = instant.astimezone(tz).replace(tzinfo=None)
        return (local - timedelta(hours=self.day_start)).date()


END_PERIODS = Periods()  # the Directive's default 07-19, 19-23, 23-07


@dataclass(frozen=True)
class Completeness:
    """Sampling interval and the share of expected samples a period needs to be complete."""

    min_coverage: float = 0.75
    sample_seconds: int = 60

    def __post_init__(self) -> None:
        if not 0.0 < self.min_coverage <= 1.0:
            raise ValueError("min_coverage must be in (0, 1]")
        if self.sample_seconds <= 0:
            raise ValueError("sample_seconds must be positive")


DEFAULT_COMPLETENESS = Completeness()  # 1-minute samples, 75 % of each period


@dataclass(frozen=True)
class PeriodLevel:
    """Leq of one time span with its sample count and coverage."""

    name: str  # "hour", "day", "evening" or "night"
    start: datetime  # aware, local time zone
    end: datetime
    samples: int
    expected: int
    coverage: float  # samples / expected, at most 1
    complete: bool  # coverage >= min_coverage
    level: float | None  # Leq in dB, None unless complete
    partial_level: float | None  # Leq of the samples there are (None without any)


@dataclass(frozen=True)
class DayIndicators:
    """Lday, Levening, Lnight and Lden of one sensor for day D."""

    day: date
    day_period: PeriodLevel
    evening: PeriodLevel
    night: PeriodLevel
    lden: float | None  # None unless all three periods are complete

    @property
    def lday(self) -> float | None:
        """Lday in dB (None if incomplete)."""
        return self.day_period.level

    @property
    def levening(self) -> float | None:
        """Levening in dB (None if incomplete)."""
        return self.evening.level

    @property
    def lnight(self) -> float | None:
        """Lnight in dB (None if incomplete)."""
        return self.night.level

    @property
    def complete(self) -> bool:
        """Whether all three periods are complete."""
        return self.lden is not None

    @property
    def coverage(self) -> float:
        """Samples over expected samples across the whole day D."""
        periods = (self.day_period, self.evening, self.night)
        expected = sum(p.expected for p in periods)
        return min(1.0, sum(p.samples for p in periods) / expected) if expected else 0.0


def lden(lday: float, levening: float, lnight: float, periods: Periods = END_PERIODS) -> float:
    """Lden of the END Annex I from the three period levels (weights: the periods' hours)."""
    return penalised_average(
        (level, periods.hours(name), periods.penalty(name))
        for name, level in zip(PERIOD_NAMES, (lday, levening, lnight), strict=True)
    )


def hourly_levels(
    samples: Sequence[Sample], tz: ZoneInfo, completeness: Completeness = DEFAULT_COMPLETENESS
) -> list[PeriodLevel]:
    """Leq of every local clock hour from the first sample's hour to the last one's."""
    series = _Series(samples, completeness.sample_seconds)
    if series.empty:
        return []
    start = _local_hour_floor(series.instant(0), tz).astimezone(UTC)
    last = series.instant(-1)
    out: list[PeriodLevel] = []
    while start <= last:
        # UTC arithmetic: aware local datetimes add wall-clock time, which skips a repeated hour
        end = _local_hour_floor(start + timedelta(hours=1, seconds=1), tz).astimezone(UTC)
        out.append(series.period("hour", start, end, tz, completeness))
        start = end
    return out


def day_indicators(
    samples: Sequence[Sample],
    day: date,
    tz: ZoneInfo,
    periods: Periods = END_PERIODS,
    completeness: Completeness = DEFAULT_COMPLETENESS,
) -> DayIndicators:
    """Lday, Levening, Lnight and Lden of day D (night 23:00 D to 07:00 D+1 by default)."""
    return _day(_Series(samples, completeness.sample_seconds), day, tz, periods, completeness)


def daily_indicators(
    samples: Sequence[Sample],
    tz: ZoneInfo,
    periods: Periods = END_PERIODS,
    completeness: Completeness = DEFAULT_COMPLETENESS,
) -> list[DayIndicators]:
    """Indicators of every day D from the first sample's to the last sample's."""
    series = _Series(samples, completeness.sample_seconds)
    if series.empty:
        return []
    day, last = periods.day_of(series.instant(0), tz), periods.day_of(series.instant(-1), tz)
    out = []
    while day <= last:
        out.append(_day(series, day, tz, periods, completeness))
        day += timedelta(days=1)
    return out


@dataclass(frozen=True)
class LongTermIndicators:
    """Indicators over many days: energetic mean of each period over its complete days."""

    lday: float | None
    levening: float | None
    lnight: float | None
    lden: float | None
    complete_days: dict[str, int]  # per period: days whose period was complete
    days: int


def long_term_indicators(
    days: Sequence[DayIndicators], periods: Periods = END_PERIODS, min_day_share: float = 0.75
) -> LongTermIndicators:
    """Long-term Lday/Levening/Lnight/Lden; a period needs min_day_share of days complete."""
    levels: dict[str, float | None] = {}
    counts: dict[str, int] = {}
    for name in PERIOD_NAMES:
        values = [v for v in (_period(d, name).level for d in days) if v is not None]
        counts[name] = len(values)
        enough = bool(days) and len(values) >= min_day_share * len(days)
        levels[name] = energetic_mean(values) if values and enough else None
    day_, evening, night = (levels[name] for name in PERIOD_NAMES)
    total = (
        lden(day_, evening, night, periods)
        if day_ is not None and evening is not None and night is not None
        else None
    )
    return LongTermIndicators(day_, evening, night, total, counts, len(days))


@dataclass(frozen=True)
class Thresholds:
    """Exceedance thresholds in dB; defaults: WHO 2018 guideline levels for road traffic."""

    lden: float = 53.0
    lnight: float = 45.0


WHO_ROAD_2018 = Thresholds()


@dataclass(frozen=True)
class Exceedance:
    """One indicator against its threshold; exceeded is None when the level is unknown."""

    indicator: str  # "Lden" or "Lnight"
    level: float | None
    threshold: float
    exceeded: bool | None
    margin_db: float | None  # level - threshold


def exceedances(
    lden_db: float | None, lnight_db: float | None, thresholds: Thresholds = WHO_ROAD_2018
) -> list[Exceedance]:
    """Lden and Lnight against their thresholds (a level above the threshold exceeds it)."""
    out = []
    for name, level, limit in (
        ("Lden", lden_db, thresholds.lden),
        ("Lnight", lnight_db, thresholds.lnight),
    ):
        margin = None if level is None else round(level - limit, 6)
        out.append(Exceedance(name, level, limit, None if margin is None else margin > 0, margin))
    return out


HA_ROAD = (78.9270, -3.1162, 0.0342)  # %HA = a + b·Lden + c·Lden², Directive (EU) 2020/367
HSD_ROAD = (19.4312, -0.9336, 0.0126)  # %HSD = a + b·Lnight + c·Lnight², same Annex III
HA_RANGE = (40.0, 80.0)  # Lden range of the WHO 2018 evidence (see README)
HSD_RANGE = (40.0, 65.0)  # Lnight range of the WHO 2018 evidence (see README)


def _relation(
    level: float, coefficients: tuple[float, float, float], valid: tuple[float, float]
) -> float:
    if level < valid[0]:
        return 0.0
    x = min(level, valid[1])
    a, b, c = coefficients
    return max(0.0, (a + b * x + c * x * x) / 100.0)


def highly_annoyed_share(lden_db: float, valid: tuple[float, float] = HA_RANGE) -> float:
    """Share (0-1) of residents highly annoyed by road traffic at this Lden (2020/367)."""
    return _relation(lden_db, HA_ROAD, valid)


def highly_sleep_disturbed_share(lnight_db: float, valid: tuple[float, float] = HSD_RANGE) -> float:
    """Share (0-1) of residents highly sleep-disturbed by road traffic at this Lnight."""
    return _relation(lnight_db, HSD_ROAD, valid)


def people_highly_annoyed(exposures: Iterable[tuple[float, float]]) -> float:
    """Σ population × %HA(Lden) over (population, Lden) pairs, e.g. one per building."""
    return sum(population * highly_annoyed_share(level) for population, level in exposures)


def people_highly_sleep_disturbed(exposures: Iterable[tuple[float, float]]) -> float:
    """Σ population × %HSD(Lnight) over (population, Lnight) pairs."""
    return sum(pop * highly_sleep_disturbed_share(level) for pop, level in exposures)


END_LDEN_EXPOSURE = (55, 60, 65, 70, 75)  # END Annex VI 1.5: 55-59 ... >75 dB Lden
END_LNIGHT_EXPOSURE = (50, 55, 60, 65, 70)  # END Annex VI 1.5: 50-54 ... >70 dB Lnight


def exposure_label(level: float, bands: Sequence[int]) -> str | None:
    """The END Annex VI band of a level ("55-59" ... ">=75"), None below the first one.

    The level is rounded to 0.1 dB first, as on the maps: 59.96 dB is in 60-64.
    """
    shown = round(level, 1)
    if shown < bands[0]:
        return None
    for lower, upper in zip(bands[:-1], bands[1:], strict=True):
        if shown < upper:
            return f"{lower}-{upper - 1}"
    return f">={bands[-1]}"


def exposure_bands(
    exposures: Iterable[tuple[float, float]], bands: Sequence[int]
) -> dict[str, float]:
    """People per END band over (population, level) pairs: every band, 0 when empty."""
    labels = [f"{lower}-{upper - 1}" for lower, upper in zip(bands[:-1], bands[1:], strict=True)]
    out = dict.fromkeys([*labels, f">={bands[-1]}"], 0.0)
    for population, level in exposures:
        label = exposure_label(level, bands)
        if label is not None:
            out[label] += population
    return out


def round_to_hundred(people: float) -> int:
    """END Annex VI reports people "rounded to the nearest hundred" (half up)."""
    return int(math.floor(people / 100.0 + 0.5)) * 100


# -- internals ---------------------------------------------------------------------------


def _db(energy: float) -> float:
    return 10.0 * math.log10(energy) if energy > 0 else -math.inf


def _wall(day: date, hours: int, tz: ZoneInfo) -> datetime:
    """Local wall-clock time ``hours`` after midnight of ``day`` (may be on a later date)."""
    naive = datetime.combine(day, time()) + timedelta(hours=hours)
    return naive.replace(tzinfo=tz)


def _local_hour_floor(instant: datetime, tz: ZoneInfo) -> datetime:
    return instant.astimezone(tz).replace(minute=0, second=0, microsecond=0)


def _period(day: DayIndicators, name: str) -> PeriodLevel:
    return {"day": day.day_period, "evening": day.evening}.get(name, day.night)


class _Series:
    """Samples as sorted unique mid-interval epoch seconds and energies."""

    def __init__(self, samples: Sequence[Sample], sample_seconds: int) -> None:
        ends = np.empty(len(samples), dtype=float)
        levels = np.empty(len(samples), dtype=float)
        for i, (observed, level) in enumerate(samples):
            if observed.tzinfo is None or observed.utcoffset() is None:
                raise ValueError(f"observedAt {observed.isoformat()} has no time zone")
            ends[i] = observed.timestamp()
            levels[i] = level
        # np.unique keeps the first of equal values: reverse so that the last sample wins
        ends_unique, index = np.unique(ends[::-1], return_index=True)
        self.mids: NDArray[np.float64] = ends_unique - sample_seconds / 2.0
        self.energy: NDArray[np.float64] = np.power(10.0, levels[::-1][index] / 10.0)
        self.sample_seconds = sample_seconds

    @property
    def empty(self) -> bool:
        return self.mids.size == 0

    def instant(self, i: int) -> datetime:
        return datetime.fromtimestamp(float(self.mids[i]), UTC)

    def period(
        self, name: str, start: datetime, end: datetime, tz: ZoneInfo, rules: Completeness
    ) -> PeriodLevel:
        lo, hi = np.searchsorted(self.mids, [start.timestamp(), end.timestamp()], side="left")
        count = int(hi - lo)
        expected = max(1, round((end.timestamp() - start.timestamp()) / self.sample_seconds))
        coverage = min(1.0, count / expected)
        partial = _db(float(np.mean(self.energy[lo:hi]))) if count else None
        complete = coverage >= rules.min_coverage
        return PeriodLevel(
            name, start.astimezone(tz), end.astimezone(tz), count, expected, coverage,
            complete, partial if complete else None, partial,
        )  # fmt: skip


def _day(
    series: _Series, day: date, tz: ZoneInfo, periods: Periods, rules: Completeness
) -> DayIndicators:
    parts = [
        series.period(name, start, end, tz, rules) for name, start, end in periods.bounds(day, tz)
    ]
    d, e, n = parts
    total = (
        lden(d.level, e.level, n.level, periods)
        if d.level is not None and e.level is not None and n.level is not None
        else None
    )
    return DayIndicators(day, d, e, n, total)
