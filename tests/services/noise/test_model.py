"""Noise service pure computations against their references (each test names its source)."""

from __future__ import annotations

import math
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import numpy as np
import pytest
import shapely.geometry

from agilecity.services.noise import model as m
from agilecity.services.noise import propagation as p

PARIS = ZoneInfo("Europe/Paris")
LEVELS = {"day": 65.0, "evening": 60.0, "night": 55.0}


def samples_of_day(
    day: date,
    levels: dict[str, float] = LEVELS,
    periods: m.Periods = m.END_PERIODS,
    keep: float = 1.0,
) -> list[m.Sample]:
    """One sample a minute over day D (observedAt = end of each minute), per-period levels.

    keep < 1 keeps only that share of each evening's minutes (the first ones).
    """
    out: list[m.Sample] = []
    for name, start, end in periods.bounds(day, PARIS):
        # UTC difference: aware datetimes of one zone subtract as wall-clock times
        minutes = round((end.astimezone(UTC) - start.astimezone(UTC)).total_seconds() / 60)
        kept = round(minutes * keep) if name == "evening" else minutes
        first = start.astimezone(UTC)
        out += [(first + timedelta(minutes=i + 1), levels[name]) for i in range(kept)]
    return out


# -- energetic averaging and the END formula -----------------------------------------------


def test_energetic_mean_hand_computed() -> None:
    """L = 10·lg(mean(10^(Li/10))): 60 and 70 dB → 10·lg(5.5e6) = 67.40 dB (by hand)."""
    assert m.energetic_mean([60.0, 70.0]) == pytest.approx(67.4036, abs=1e-4)
    assert m.energetic_mean([63.2] * 7) == pytest.approx(63.2)
    assert m.energetic_sum([50.0, 50.0]) == pytest.approx(50 + 10 * math.log10(2))
    with pytest.raises(ValueError):
        m.energetic_mean([])


def test_lden_formula_of_end_annex_i() -> None:
    """END Annex I: Lden = 10·lg(1/24·(12·10^(Ld/10) + 4·10^((Le+5)/10) + 8·10^((Ln+10)/10))).

    Hand-computed: (65, 60, 55) → every term is 10^6.5, Lden = 65.0 exactly;
    (65, 62, 58) → (37 947 332 + 20 047 489 + 50 476 587)/24 = 4 519 642 → 66.55 dB.
    """
    assert m.lden(65.0, 60.0, 55.0) == pytest.approx(65.0, abs=1e-9)
    assert m.lden(65.0, 62.0, 58.0) == pytest.approx(66.551, abs=1e-3)
    assert m.lden(60.0, 60.0, 60.0) == pytest.approx(60 + 10 * math.log10(104.649 / 24), abs=1e-4)


def test_penalised_average_reproduces_published_ldn_example() -> None:
    """Ldn worked example (calculator7.snowdaycalculatornow.com/?p=11428, "Day-Night Average
    Sound Level Calculation"): Lday 64 dB over 15 h, Lnight 50 dB over 9 h with +10 dB
    → "≈ 62.9 dB". Same weighted-energy machinery as the Lden."""
    assert m.penalised_average([(64.0, 15, 0.0), (50.0, 9, 10.0)]) == pytest.approx(62.9, abs=0.05)


def test_shortened_evening_weights_the_periods_by_their_hours() -> None:
    """END Annex I lets a Member State shorten the evening by 1-2 h and lengthen the
    day/night: evening 19-22, night 22-07 → weights 12/3/9 (hand: 60 + 10·lg(111.487/24))."""
    periods = m.Periods(evening_hours=3, night_hours=9)
    assert m.lden(60.0, 60.0, 60.0, periods) == pytest.approx(66.670, abs=1e-3)
    names = [(n, s.hour, e.hour) for n, s, e in periods.bounds(date(2024, 6, 3), PARIS)]
    assert names == [("day", 7, 19), ("evening", 19, 22), ("night", 22, 7)]
    with pytest.raises(ValueError):
        m.Periods(evening_hours=3)  # 12 + 3 + 8 ≠ 24
    with pytest.raises(ValueError):
        m.Periods(day_start=24)


def test_shifted_day_start_moves_all_three_periods() -> None:
    """END Annex I: "the start of the day (and consequently the start of the evening and the
    start of the night) shall be chosen by the Member State"; e.g. 06-18, 18-22, 22-06 (the
    variant of app.impulsion-acoustique.fr/lden). Each local hour h has level 40 + h."""
    periods = m.Periods(day_start=6)
    day = date(2024, 6, 3)
    samples = []
    for _, start, end in periods.bounds(day, PARIS):
        t = start.astimezone(UTC)
        while t < end:
            t += timedelta(minutes=1)
            samples.append((t, 40.0 + (t - timedelta(seconds=30)).astimezone(PARIS).hour))
    result = m.day_indicators(samples, day, PARIS, periods)
    assert result.day_period.start.hour == 6 and result.night.end.hour == 6
    assert result.lday == pytest.approx(m.energetic_mean(40.0 + h for h in range(6, 18)))
    assert result.levening == pytest.approx(m.energetic_mean(40.0 + h for h in range(18, 22)))
    night_hours = [22, 23, 0, 1, 2, 3, 4, 5]
    assert result.lnight == pytest.approx(m.energetic_mean(40.0 + h for h in night_hours))
    assert result.lden == pytest.approx(m.lden(result.lday, result.levening, result.lnight))


# -- time zone, daylight saving, completeness ----------------------------------------------


@pytest.mark.parametrize(
    ("day", "night_hours"),
    [(date(2024, 3, 30), 7), (date(2024, 10, 26), 9), (date(2024, 6, 1), 8)],
)
def test_dst_night_has_7_or_9_hours_and_is_complete(day: date, night_hours: int) -> None:
    """Periods are local clock hours (END Annex I "local time"): in Europe/Paris the night
    23:00 D - 07:00 D+1 lasts 7 h on 2024-03-30/31 and 9 h on 2024-10-26/27."""
    result = m.day_indicators(samples_of_day(day), day, PARIS)
    assert result.night.expected == result.night.samples == night_hours * 60
    assert result.night.coverage == 1.0 and result.complete
    assert (result.night.start.hour, result.night.end.hour) == (23, 7)
    assert result.lden == pytest.approx(65.0)  # nominal 12/4/8 weights, as in the formula


def test_hourly_levels_on_the_25_hour_day() -> None:
    """On 2024-10-27 Europe/Paris repeats 02:00-03:00: 25 local hours, each of 60 samples."""
    samples = [
        (datetime(2024, 10, 26, 22, 0, tzinfo=UTC) + timedelta(minutes=i + 1), 50.0 + i % 2)
        for i in range(25 * 60)
    ]
    hours = m.hourly_levels(samples, PARIS)
    assert len(hours) == 25
    assert all(h.samples == h.expected == 60 and h.complete for h in hours)
    assert [h.start.hour for h in hours[:4]] == [0, 1, 2, 2]
    assert hours[2].start.utcoffset() != hours[3].start.utcoffset()
    assert hours[0].level == pytest.approx(m.energetic_mean([50.0, 51.0]))


def test_incomplete_period_is_flagged_with_its_coverage() -> None:
    """Completeness rule (README): a period under 75 % of its expected samples gets no level."""
    day = date(2024, 6, 3)
    result = m.day_indicators(samples_of_day(day, keep=0.5), day, PARIS)
    assert result.evening.samples == 120 and result.evening.expected == 240
    assert result.evening.coverage == 0.5 and not result.evening.complete
    assert result.levening is None and result.evening.partial_level == pytest.approx(60.0)
    assert result.lden is None and not result.complete
    assert result.lday == pytest.approx(65.0) and result.lnight == pytest.approx(55.0)
    assert result.coverage == pytest.approx((720 + 120 + 480) / 1440)
    lenient = m.Completeness(min_coverage=0.5)
    assert m.day_indicators(
        samples_of_day(day, keep=0.5), day, PARIS, completeness=lenient
    ).complete


def test_empty_period_and_sample_conventions() -> None:
    """observedAt is the end of the minute: a sample ending 07:00:00 belongs to the night
    (its middle is 06:59:30); one ending 07:01:00 to the day. Duplicates count once."""
    day = date(2024, 6, 3)
    seven = datetime(2024, 6, 3, 7, 0, tzinfo=PARIS)
    samples = [(seven, 50.0), (seven + timedelta(minutes=1), 70.0), (seven, 52.0)]
    result = m.day_indicators(samples, day, PARIS)
    assert result.night.samples == 0 and result.night.partial_level is None
    assert result.day_period.samples == 1 and result.day_period.partial_level == 70.0
    before = m.day_indicators(samples, date(2024, 6, 2), PARIS)
    assert before.night.samples == 1 and before.night.partial_level == 52.0  # last one wins
    with pytest.raises(ValueError):
        m.day_indicators([(datetime(2024, 6, 3, 8), 50.0)], day, PARIS)


def test_daily_and_long_term_indicators() -> None:
    """Long-term levels are energetic means over complete days (END: "over all the day
    periods of a year"); an incomplete period is left out and counted."""
    days = [date(2024, 6, 3), date(2024, 6, 4), date(2024, 6, 5)]
    louder = {"day": 68.0, "evening": 60.0, "night": 55.0}
    samples = samples_of_day(days[0]) + samples_of_day(days[1], louder)
    samples += samples_of_day(days[2], keep=0.2)
    daily = m.daily_indicators(samples, PARIS)
    assert [d.day for d in daily] == days and [d.complete for d in daily] == [True, True, False]
    total = m.long_term_indicators(daily, min_day_share=0.5)
    assert total.complete_days == {"day": 3, "evening": 2, "night": 3}
    assert total.lday == pytest.approx(m.energetic_mean([65.0, 68.0, 65.0]))
    assert total.levening == pytest.approx(60.0)
    assert total.lden == pytest.approx(m.lden(total.lday or 0, 60.0, 55.0))
    assert m.long_term_indicators(daily).levening is None  # 2 of 3 days < 75 %


# -- exceedance and exposure-response ------------------------------------------------------


def test_exceedances_against_who_2018_road_traffic() -> None:
    """WHO Environmental Noise Guidelines (2018), road traffic: Lden 53 dB, Lnight 45 dB."""
    lden_check, lnight_check = m.exceedances(55.0, None)
    assert (lden_check.threshold, lden_check.exceeded, lden_check.margin_db) == (53.0, True, 2.0)
    assert lnight_check.threshold == 45.0 and lnight_check.exceeded is None
    assert m.exceedances(53.0, 44.5)[0].exceeded is False
    assert m.exceedances(50.0, 46.0, m.Thresholds(lden=55.0, lnight=50.0))[1].exceeded is False


@pytest.mark.parametrize(
    ("lden_db", "percent"), [(40.0, 8.999), (55.0, 10.991), (60.0, 15.075), (70.0, 28.373)]
)
def test_highly_annoyed_road_relation_of_2020_367_annex_iii(lden_db: float, percent: float) -> None:
    """Commission Directive (EU) 2020/367, Annex III, road traffic (the WHO 2018 relation of
    Guski et al. 2017): %HA = 78.9270 − 3.1162·Lden + 0.0342·Lden². Values by hand, e.g.
    Lden 55: 78.9270 − 171.391 + 103.4550 = 10.991 %."""
    assert 100 * m.highly_annoyed_share(lden_db) == pytest.approx(percent, abs=1e-3)


@pytest.mark.parametrize(("lnight_db", "percent"), [(45.0, 2.934), (50.0, 4.251), (55.0, 6.198)])
def test_highly_sleep_disturbed_road_relation_of_2020_367_annex_iii(
    lnight_db: float, percent: float
) -> None:
    """Directive (EU) 2020/367, Annex III, road traffic (Basner & McGuire 2018):
    %HSD = 19.4312 − 0.9336·Lnight + 0.0126·Lnight². Lnight 50: 19.4312 − 46.68 + 31.5."""
    assert 100 * m.highly_sleep_disturbed_share(lnight_db) == pytest.approx(percent, abs=1e-3)


def test_relations_outside_their_range_and_people_counts() -> None:
    """Outside the evidence range (README: Lden 40-80, Lnight 40-65) nobody is counted below
    and the value at the upper end is held above; people = population × %HA per building."""
    assert m.highly_annoyed_share(39.9) == 0.0 and m.highly_sleep_disturbed_share(35.0) == 0.0
    assert m.highly_annoyed_share(90.0) == pytest.approx(m.highly_annoyed_share(80.0))
    assert m.highly_sleep_disturbed_share(70.0) == pytest.approx(0.11982, abs=1e-5)
    assert m.people_highly_annoyed([(100.0, 55.0), (50.0, 30.0)]) == pytest.approx(10.991, 1e-4)
    assert m.people_highly_sleep_disturbed([(200.0, 50.0)]) == pytest.approx(8.502, abs=1e-3)


# -- ISO 9613-2 divergence and line sources ------------------------------------------------


def test_iso_9613_2_geometric_divergence() -> None:
    """ISO 9613-2 eq. (7): Adiv = 20·lg(d/d0) + 11 dB, d0 = 1 m: 11 dB at 1 m, +6.02 dB per
    doubling of distance."""
    assert float(p.geometric_divergence(1.0)) == pytest.approx(11.0)
    steps = np.diff(p.geometric_divergence(np.array([1.0, 2.0, 4.0, 8.0, 16.0])))
    assert steps == pytest.approx([20 * math.log10(2)] * 4)
    assert float(p.point_source_level(100.0, 10.0)) == pytest.approx(69.0)
    assert float(p.point_source_level(100.0, 1000.0, 2.0)) == pytest.approx(27.0)


def test_closely_spaced_points_behave_as_a_line_source() -> None:
    """Incoherent point sources along an infinite line: Σ Δl/(4π r²) → 1/(4d), so
    Lp = LW' − 10·lg(4d), 3.01 dB per doubling of distance perpendicular to the line."""
    projection = p.LocalProjection(3.0, 50.0)
    ends = projection.to_lonlat(np.array([[-20_000.0, 0.0], [20_000.0, 0.0]]))
    street = p.Street("primary", [tuple(v) for v in ends.tolist()])
    sources = p.point_sources([street], projection, spacing_m=1.0, height_m=0.0)
    distances = np.array([10.0, 20.0, 40.0, 80.0])
    receivers = np.column_stack([np.zeros(4), distances, np.zeros(4)])
    transfer = p.kind_transfer(sources, receivers)
    levels = p.levels_from_transfer(transfer, sources.kinds, {"primary": 80.0})
    assert np.diff(levels) == pytest.approx([-10 * math.log10(2)] * 3, abs=0.02)
    assert levels == pytest.approx(80.0 - 10 * np.log10(4 * distances), abs=0.05)


def test_local_projection_accuracy() -> None:
    """Equirectangular projection: round trip exact; a 5 km distance at 50° N within 0.1 %
    of the haversine distance (sphere of radius 6 371 008.8 m)."""
    projection = p.LocalProjection(3.0, 50.0)
    points = [(3.0, 50.0), (3.05, 50.03)]
    xy = projection.to_metres(points)
    assert projection.to_lonlat(xy) == pytest.approx(np.array(points))
    lat1, lat2, dlon = math.radians(50.0), math.radians(50.03), math.radians(0.05)
    a = math.sin((lat2 - lat1) / 2) ** 2 + math.cos(lat1) * math.cos(lat2) * math.sin(dlon / 2) ** 2
    haversine = 2 * p.EARTH_RADIUS_M * math.asin(math.sqrt(a))
    assert float(np.hypot(*(xy[1] - xy[0]))) == pytest.approx(haversine, rel=1e-3)


# -- noise maps ----------------------------------------------------------------------------

PROJECTION = p.LocalProjection(3.0, 50.0)
TRUE_EMISSION = {"primary": 85.0, "secondary": 78.0, "residential": 67.0}


def town() -> tuple[p.PointSources, list[tuple[float, float, float]]]:
    """Three streets (one per kind) and six façade sensors whose levels the model gives."""

    def line(*xy: tuple[float, float]) -> list[tuple[float, float]]:
        return [(lon, lat) for lon, lat in PROJECTION.to_lonlat(np.array(xy)).tolist()]

    streets = [
        p.Street("primary", line((-500, 0), (500, 0))),
        p.Street("secondary", line((0, -500), (0, 500))),
        p.Street("residential", line((-500, 200), (0, 200), (500, 230))),
    ]
    sources = p.point_sources(streets, PROJECTION)
    sensors_xy = np.array([[100, 8], [-200, -10], [6, 300], [-8, -250], [300, 222], [-150, 206]])
    receivers = np.column_stack([sensors_xy, np.full(6, p.MAP_HEIGHT_M)])
    transfer = p.kind_transfer(sources, receivers)
    levels = p.levels_from_transfer(transfer, sources.kinds, TRUE_EMISSION)
    lonlat = PROJECTION.to_lonlat(sensors_xy)
    return sources, [(lon, lat, float(v)) for (lon, lat), v in zip(lonlat, levels, strict=True)]


def test_idw_on_energies_is_exact_at_sensors_and_bounded() -> None:
    """IDW of energies 10^(L/10): exact at a sensor, within [min, max]; halfway between 60
    and 70 dB sensors it gives the energetic mean 67.4 dB, not the arithmetic 65."""
    xy = np.array([[0.0, 0.0], [100.0, 0.0]])
    at = p.idw_levels(xy, [60.0, 70.0], np.array([[0.0, 0.0], [50.0, 0.0], [100.0, 0.0]]))
    assert at == pytest.approx([60.0, 67.4036, 70.0], abs=1e-4)
    _, sensors = town()
    spec = p.grid_over((2.99, 49.995, 3.01, 50.005), 25.0)
    grid = p.idw_map(sensors, spec)
    levels = [s[2] for s in sensors]
    assert grid.levels.shape == (spec.ny, spec.nx)
    assert min(levels) - 1e-9 <= grid.levels.min() and grid.levels.max() <= max(levels) + 1e-9
    on_sensor = p.idw_levels(PROJECTION.to_metres([sensors[0][:2]]), [60.0], np.zeros((1, 2)))
    assert on_sensor[0] == pytest.approx(60.0)


def test_calibrated_model_reproduces_its_sensors() -> None:
    """Least-squares fit of LW' per street kind: from a flat 75 dB/m prior it recovers the
    emissions that produced the sensor levels and reproduces them within 0.05 dB."""
    sources, sensors = town()
    prior = dict.fromkeys(TRUE_EMISSION, 75.0)
    fit = p.calibrate_emission(sources, sensors, PROJECTION, prior)
    assert fit.rms_db < 0.05 and max(map(abs, fit.residuals_db)) < 0.05
    for kind, value in TRUE_EMISSION.items():
        assert fit.emission_db_per_m[kind] == pytest.approx(value, abs=0.1)


def test_calibration_with_measurement_scatter_and_facade_correction() -> None:
    """With ±1 dB scatter on six sensors for three kinds the fit stays within the scatter;
    a -3 dB façade correction (END Annex I) lowers every fitted emission by ~3 dB."""
    sources, sensors = town()
    scatter = [1.0, -1.0, 0.5, -0.5, 1.0, -1.0]
    noisy = [(lon, lat, level + e) for (lon, lat, level), e in zip(sensors, scatter, strict=True)]
    prior = dict.fromkeys(TRUE_EMISSION, 75.0)
    fit = p.calibrate_emission(sources, noisy, PROJECTION, prior)
    assert fit.rms_db < 1.0 and max(map(abs, fit.residuals_db)) < 1.5
    exact = p.calibrate_emission(sources, sensors, PROJECTION, prior, facade_correction_db=-3.0)
    for kind, value in TRUE_EMISSION.items():
        assert exact.emission_db_per_m[kind] == pytest.approx(value - 3.0, abs=0.1)


def test_propagation_map_as_geojson_with_end_bands() -> None:
    """Grid as an RFC 7946 FeatureCollection: valid squares (shapely) with level and the END
    strategic-map classes <55, 55-59, 60-64, 65-69, 70-74, >=75."""
    sources, sensors = town()
    spec = p.grid_over((2.99, 49.995, 3.01, 50.005), 25.0)
    grid = p.propagation_map(sources, {**TRUE_EMISSION, "primary": 90.0}, spec)
    collection = p.grid_to_geojson(grid)
    assert collection["type"] == "FeatureCollection"
    assert len(collection["features"]) == spec.nx * spec.ny
    bands = set()
    for feature in collection["features"]:
        polygon = shapely.geometry.shape(feature["geometry"])
        assert polygon.is_valid and polygon.exterior.is_ccw and polygon.area > 0
        props = feature["properties"]
        assert p.noise_band(props["level"]) == (props["band"], props["band_min"])
        bands.add(props["band"])
    assert bands == {"<55", "55-59", "60-64", "65-69", "70-74", ">=75"}
    points = p.grid_to_geojson(grid, as_points=True)["features"]
    assert shapely.geometry.shape(points[0]["geometry"]).geom_type == "Point"
    assert [p.noise_band(v)[0] for v in (54.9, 55.0, 59.9, 60.0, 74.9, 75.0)] == [
        "<55", "55-59", "55-59", "60-64", "70-74", ">=75",
    ]  # fmt: skip


# -- END Annex VI exposure statistics ------------------------------------------------------


def test_exposure_bands_of_end_annex_vi() -> None:
    """END Annex VI 1.5: people per band of Lden 55-59, 60-64, 65-69, 70-74, >75 and of Lnight
    50-54 ... >70 at the most exposed façade; a level is banded at 0.1 dB as on the maps
    (59.96 → 60.0 → 60-64), and below the first band nobody is counted."""
    assert m.exposure_label(54.94, m.END_LDEN_EXPOSURE) is None
    assert m.exposure_label(54.96, m.END_LDEN_EXPOSURE) == "55-59"
    assert m.exposure_label(59.96, m.END_LDEN_EXPOSURE) == "60-64"
    assert m.exposure_label(75.0, m.END_LDEN_EXPOSURE) == ">=75"
    assert m.exposure_label(69.9, m.END_LNIGHT_EXPOSURE) == "65-69"
    pairs = [(10.0, 52.0), (20.0, 57.0), (30.0, 58.0), (5.0, 71.0), (7.0, 80.0)]
    assert m.exposure_bands(pairs, m.END_LDEN_EXPOSURE) == {
        "55-59": 50.0, "60-64": 0.0, "65-69": 0.0, "70-74": 5.0, ">=75": 7.0,
    }  # fmt: skip
    night = m.exposure_bands(pairs, m.END_LNIGHT_EXPOSURE)
    assert list(night) == ["50-54", "55-59", "60-64", "65-69", ">=70"]
    assert night["50-54"] == 10.0 and night[">=70"] == 12.0
