"""Time of the town: French local time, school and public holidays, sunrise and sunset.

Local time follows the EU rule (CET, UTC+1; CEST, UTC+2 from the last Sunday of March to
the last Sunday of October, switching at 01:00 UTC), computed here so that no time-zone
database is needed. School holidays are those of zone B (académie de Lille), by rule
rather than by the published decree: close to the real dates, never exact.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from functools import lru_cache

import numpy as np
from astral import Observer
from astral.sun import elevation, sunrise, sunset

from agilecity.ingest.simulator.base import DAY

#: The centre of the fictional town (WGS84), near Roubaix in northern France.
CENTRE_LON = 2.98  # a fictional spot south-west of Lille, clear of real Roubaix
CENTRE_LAT = 50.58
OBSERVER = Observer(latitude=CENTRE_LAT, longitude=CENTRE_LON, elevation=30)


def _last_sunday(year: int, month: int) -> date:
    last = date(year, month + 1, 1) - timedelta(days=1)
    return last - timedelta(days=(last.weekday() + 1) % 7)


@lru_cache(maxsize=64)
def _summer_time_bounds(year: int) -> tuple[int, int]:
    start = datetime.combine(_last_sunday(year, 3), datetime.min.time(), UTC) + timedelta(hours=1)
    end = datetime.combine(_last_sunday(year, 10), datetime.min.time(), UTC) + timedelta(hours=1)
    return int(start.timestamp()), int(end.timestamp())


def utc_offset(seconds: int) -> int:
    """The offset of French local time from UTC at this instant, in seconds."""
    year = datetime.fromtimestamp(seconds, UTC).year
    start, end = _summer_time_bounds(year)
    return 7200 if start <= seconds < end else 3600


def local_hours(seconds: int) -> float:
    """French local time of day in hours (0 <= h < 24)."""
    return ((seconds + utc_offset(seconds)) % DAY) / 3600


def local_date(seconds: int) -> date:
    """French local calendar date of an instant."""
    return datetime.fromtimestamp(seconds + utc_offset(seconds), UTC).date()


def _easter(year: int) -> date:
    """Gregorian Easter Sunday (the anonymous Meeus/Jones/Butcher algorithm)."""
    a, b, c = year % 19, year // 100, year % 100
    d, e = b // 4, b % 4
    f = (b + 8) // 25
    g = (b - f + 1) // 3
    h = (19 * a + b - d - g + 15) % 30
    i, k = c // 4, c % 4
    el = (32 + 2 * e + 2 * i - h - k) % 7
    m = (a + 11 * h + 22 * el) // 451
    month = (h + el - 7 * m + 114) // 31
    day = (h + el - 7 * m + 114) % 31 + 1
    return date(year, month, day)


@lru_cache(maxsize=64)
def public_holidays(year: int) -> frozenset[date]:
    """The eleven French public holidays of a year."""
    easter = _easter(year)
    fixed = [(1, 1), (5, 1), (5, 8), (7, 14), (8, 15), (11, 1), (11, 11), (12, 25)]
    moving = [easter + timedelta(days=n) for n in (1, 39, 50)]  # Monday, Ascension, Whit Monday
    return frozenset([date(year, m, d) for m, d in fixed] + moving)


def _saturday_from(year: int, month: int, day: int) -> date:
    first = date(year, month, day)
    return first + timedelta(days=(5 - first.weekday()) % 7)


@lru_cache(maxsize=64)
def school_holidays(year: int) -> tuple[tuple[date, date], ...]:
    """Zone B school holidays touching a year, as [first, last] day ranges (approximate)."""
    spans = []
    for y in (year - 1, year):
        spans.append((_saturday_from(y, 10, 18), 15))  # Toussaint
        spans.append((_saturday_from(y, 12, 17), 15))  # Noël
    spans.append((_saturday_from(year, 2, 8), 15))  # hiver
    spans.append((_saturday_from(year, 4, 5), 15))  # printemps
    summer_start = _saturday_from(year, 7, 4)
    out = [(first, first + timedelta(days=length)) for first, length in spans]
    out.append((summer_start, date(year, 8, 31)))
    return tuple(out)


@lru_cache(maxsize=2048)
def is_school_day(day: date) -> bool:
    """True on a day pupils are at school (Mon, Tue, Thu, Fri outside holidays)."""
    if day.weekday() in (2, 5, 6) or day in public_holidays(day.year):
        return False
    return not any(first <= day <= last for first, last in school_holidays(day.year))


@lru_cache(maxsize=2048)
def is_working_day(day: date) -> bool:
    """True Monday to Friday except public holidays."""
    return day.weekday() < 5 and day not in public_holidays(day.year)


@lru_cache(maxsize=2048)
def sun_times(day: date) -> tuple[int, int]:
    """Sunrise and sunset of a calendar date in the town, as UTC epoch seconds."""
    rise = sunrise(OBSERVER, day, tzinfo=UTC)
    down = sunset(OBSERVER, day, tzinfo=UTC)
    return int(rise.timestamp()), int(down.timestamp())


def sun_elevation(seconds: int) -> float:
    """Solar elevation above the horizon in degrees at an instant, in the town."""
    return float(elevation(OBSERVER, datetime.fromtimestamp(seconds, UTC)))


def day_of_year(seconds: int) -> int:
    """1..366: the UTC day of year of an instant."""
    return datetime.fromtimestamp(seconds, UTC).timetuple().tm_yday


def utc_offsets(times: np.ndarray) -> np.ndarray:
    """:func:`utc_offset` of many instants of one year (vectorised)."""
    year = datetime.fromtimestamp(int(times[0]), UTC).year
    start, end = _summer_time_bounds(year)
    offsets: np.ndarray = np.where((times >= start) & (times < end), 7200, 3600)
    return offsets


def local_hours_of(times: np.ndarray) -> np.ndarray:
    """:func:`local_hours` of many instants of one year (vectorised)."""
    hours: np.ndarray = ((times + utc_offsets(times)) % DAY) / 3600
    return hours


def local_clock(day: int, hours: float) -> int:
    """The UTC epoch second at which French local clocks show ``hours`` on UTC day ``day``.

    ``hours`` may exceed 24 or be negative; the offset is the one in force at noon UTC.
    """
    noon = day * DAY + DAY // 2
    return int(day * DAY + hours * 3600 - utc_offset(noon))


def day_date(day: int) -> date:
    """The French calendar date of UTC day ``day`` (its date at noon)."""
    return local_date(day * DAY + DAY // 2)
