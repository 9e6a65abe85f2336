"""The town's outdoor weather: a deterministic, pure function of the seed and the UTC day.

Simplifications, each a published rule of thumb rather than a forecast model:

- temperature: a yearly cosine fitted to Lille normals (January 3.5 °C, July 18.5 °C),
  a synoptic anomaly (a moving average of daily Gaussian draws, σ ≈ 3 K, so warm and
  cold spells last days), and a diurnal cosine peaking at 15:00 solar time whose
  amplitude shrinks under clouds;
- clouds: one cover fraction per day; solar radiation is the Haurwitz clear-sky global
  irradiance, reduced by the Kasten–Czeplak factor ``1 - 0.75 c^3.4``;
- rain: a day rains with probability ``0.15 + 0.7 c²``; it then has 1–3 showers of random
  start, duration and intensity (heavier in summer), cut at midnight;
- relative humidity runs opposite to the temperature cycle and saturates under rain;
  wind has a lognormal daily mean, stronger in the afternoon and in winter.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from agilecity.ingest.simulator.almanac import CENTRE_LON, day_of_year, sun_elevation
from agilecity.ingest.simulator.base import DAY, rng

#: Seconds between two weather samples (and the 15-minute readings built on them).
STEP = 900
SAMPLES = DAY // STEP
_STREAM = 2
_ANOMALY_WEIGHTS = np.array([0.35, 0.3, 0.2, 0.1, 0.05])
_ANOMALY_SCALE = 3.0 / float(np.sqrt((_ANOMALY_WEIGHTS**2).sum()))


@dataclass(frozen=True)
class DayWeather:
    """The weather of one UTC day at the 96 instants day*DAY + k*900.

    ``rain`` is the precipitation in mm during the 15 minutes ending at each instant.
    """

    times: np.ndarray
    temperature: np.ndarray  # °C
    humidity: np.ndarray  # relative, 0..1
    wind: np.ndarray  # m/s
    solar: np.ndarray  # global horizontal irradiance, W/m²
    rain: np.ndarray  # mm per 15 minutes
    cloud: float

    @property
    def mean_temperature(self) -> float:
        """The day's mean air temperature."""
        return float(self.temperature.mean())


@lru_cache(maxsize=8192)
def _draws(seed: int, day: int) -> tuple[float, float, float]:
    g = rng(seed, _STREAM, day)
    return float(g.standard_normal()), float(g.standard_normal()), float(g.standard_normal())


def _anomaly(seed: int, day: int) -> float:
    values = np.array([_draws(seed, day - j)[0] for j in range(len(_ANOMALY_WEIGHTS))])
    return float(_ANOMALY_SCALE * (_ANOMALY_WEIGHTS * values).sum())


def _season(doy: np.ndarray | float) -> np.ndarray | float:
    """-1 in late January .. +1 in late July."""
    return -np.cos(2 * np.pi * (np.asarray(doy) - 20) / 365.25)


@lru_cache(maxsize=8192)
def cloud_cover(seed: int, day: int) -> float:
    """The cloud cover fraction (0..1) of a UTC day."""
    doy = day_of_year(day * DAY + DAY // 2)
    mean = 0.68 - 0.1 * float(_season(doy))
    z = 0.75 * _draws(seed, day)[1] + 0.45 * _draws(seed, day - 1)[1]
    logit = math.log(mean / (1 - mean)) + 1.3 * z
    return 1 / (1 + math.exp(-logit))


@lru_cache(maxsize=2048)
def _elevations(day: int) -> np.ndarray:
    return np.array([sun_elevation(day * DAY + k * STEP) for k in range(SAMPLES)])


def _rain(seed: int, day: int, cloud: float, season: float) -> np.ndarray:
    g = rng(seed, _STREAM + 1, day)
    rain = np.zeros(SAMPLES)
    if g.random() >= 0.15 + 0.7 * cloud * cloud:
        return rain
    showers = 1 + min(2, int(g.poisson(1.0 * cloud)))
    mean_rate = 1.6 + 1.0 * season  # mm/h: drizzle in winter, showers in summer
    last = (SAMPLES - 1) * STEP  # showers end by 23:45 so each day keeps its own rain
    upper = np.arange(SAMPLES) * STEP  # the value at instant k covers (k*900 - 900, k*900]
    lower = upper - STEP
    for _ in range(showers):
        start = g.uniform(0, last - 1800)
        end = min(last, start + g.uniform(0.5, 4.0) * 3600)
        rate = g.exponential(mean_rate) / 3600  # mm per second
        rain += np.clip(np.minimum(upper, end) - np.maximum(lower, start), 0, None) * rate
    return rain


@lru_cache(maxsize=512)
def day_weather(seed: int, day: int) -> DayWeather:
    """The weather of one UTC day of the town of ``seed`` (cached)."""
    times = day * DAY + np.arange(SAMPLES, dtype=np.int64) * STEP
    doy = day_of_year(day * DAY + DAY // 2)
    season = float(_season(doy))
    cloud = cloud_cover(seed, day)
    g = rng(seed, _STREAM + 2, day)
    # Temperature: yearly cycle + anomaly interpolated between day centres + diurnal cycle.
    frac = (times - day * DAY) / DAY
    centre = np.where(frac < 0.5, frac + 0.5, frac - 0.5)
    before = np.where(frac < 0.5, _anomaly(seed, day - 1), _anomaly(seed, day))
    after = np.where(frac < 0.5, _anomaly(seed, day), _anomaly(seed, day + 1))
    anomaly = before + (after - before) * centre
    yearly = 11.0 + 7.5 * np.asarray(_season(doy - 0.5 + frac))
    amplitude = (7.0 + 3.0 * season) * (1 - 0.6 * cloud)  # peak to peak, K
    solar_hour = (times % DAY) / 3600 + CENTRE_LON / 15
    diurnal = amplitude / 2 * np.cos(2 * np.pi * (solar_hour - 15) / 24)
    rain = _rain(seed, day, cloud, season)
    raining = rain > 0
    temperature = yearly + anomaly + diurnal - 1.5 * raining + g.normal(0, 0.15, SAMPLES)
    # Solar radiation: Haurwitz clear sky, Kasten–Czeplak clouds, dimmer under rain.
    sin_e = np.sin(np.radians(_elevations(day)))
    clear = np.where(sin_e > 0.01, 1098 * sin_e * np.exp(-0.057 / np.maximum(sin_e, 0.01)), 0.0)
    flicker = 1 - 0.35 * cloud * g.random(SAMPLES)
    solar = clear * (1 - 0.75 * cloud**3.4) * flicker * np.where(raining, 0.35, 1.0)
    # Humidity: opposite to the temperature cycle, saturating in rain.
    humidity = 0.80 - 0.05 * season - 0.12 * np.cos(2 * np.pi * (solar_hour - 15) / 24)
    humidity = humidity + 0.08 * (cloud - 0.6) + g.normal(0, 0.02, SAMPLES)
    humidity = np.where(raining, np.maximum(humidity, 0.93), humidity)
    humidity = np.clip(humidity, 0.3, 1.0)
    # Wind: lognormal daily mean, windier in winter and in the afternoon, gusty samples.
    daily_wind = 3.6 * math.exp(0.35 * _draws(seed, day)[2]) * (1 - 0.15 * season)
    afternoon = 1 + 0.3 * np.cos(2 * np.pi * (solar_hour - 14) / 24)
    wind = daily_wind * afternoon * np.exp(g.normal(0, 0.25, SAMPLES))
    return DayWeather(
        times=times,
        temperature=temperature,
        humidity=humidity,
        wind=wind,
        solar=np.maximum(solar, 0.0),
        rain=rain,
        cloud=cloud,
    )
