"""Noise maps: IDW of measured levels and a calibrated road-source model (façades: facades.py).

Pure computations (no I/O). Coordinates come in as WGS 84 (lon, lat) and are projected on
a local equirectangular plane around the grid centre: x = R·cos(φ0)·Δλ, y = R·Δφ with
R = 6 371 008.8 m. The east-west scale is off by about tan(φ0)·Δφ, so distances are good to
0.1 % within 5 km of the centre at 50° N (0.01 dB of geometric divergence).

Propagation (ISO 9613-2, simplified): each street is a line source split into point sources
every ``spacing_m`` at 0.5 m height, each of sound power LW = LW' + 10·lg(Δl) where LW' is
the street kind's emission per metre; Lp = LW − Adiv − Aatm with Adiv = 20·lg(d/1 m) + 11
(point source, free field, Dc = 0) and Aatm = α·d/1000. Ground, barriers, screening by
buildings and reflections are ignored; energies of all sources add. Calibration fits LW'
per street kind so that the model reproduces the sensors' levels (least squares in dB).
Levels are incident levels (END Annex I): no +3 dB façade reflection unless asked for.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

EARTH_RADIUS_M = 6_371_008.8  # mean Earth radius, as in agilecity.broker.geo
SOURCE_HEIGHT_M = 0.5  # road source height of CNOSSOS-EU
MAP_HEIGHT_M = 4.0  # END Annex I assessment height for strategic maps
FLOOR_HEIGHT_M = 3.0
END_BANDS = (55, 60, 65, 70, 75)  # lower bounds of the END map classes (Lden)
_CHUNK = 2_000_000  # receiver × source pairs per block (memory bound)

Floats = NDArray[np.float64]
LonLat = tuple[float, float]


@dataclass(frozen=True)
class LocalProjection:
    """Local equirectangular projection in metres around (lon0, lat0)."""

    lon0: float
    lat0: float

    @classmethod
    def around(cls, points: Sequence[LonLat]) -> LocalProjection:
        """Projection centred on the bounding box of these points."""
        lons, lats = zip(*points, strict=True)
        return cls((min(lons) + max(lons)) / 2, (min(lats) + max(lats)) / 2)

    def to_metres(self, points: Sequence[LonLat] | Floats) -> Floats:
        """(n, 2) array of x east, y north in metres."""
        lonlat = np.asarray(points, dtype=float).reshape(-1, 2)
        scale = math.radians(1.0) * EARTH_RADIUS_M
        x = (lonlat[:, 0] - self.lon0) * scale * math.cos(math.radians(self.lat0))
        return np.column_stack([x, (lonlat[:, 1] - self.lat0) * scale])

    def to_lonlat(self, xy: Floats) -> Floats:
        """(n, 2) array of lon, lat in degrees."""
        xy = np.asarray(xy, dtype=float).reshape(-1, 2)
        scale = math.radians(1.0) * EARTH_RADIUS_M
        lon = self.lon0 + xy[:, 0] / (scale * math.cos(math.radians(self.lat0)))
        return np.column_stack([lon, self.lat0 + xy[:, 1] / scale])


@dataclass(frozen=True)
class GridSpec:
    """A regular grid: cell (0, 0) is south-west, its centre at (x0, y0) metres."""

    projection: LocalProjection
    x0: float
    y0: float
    cell_m: float
    nx: int
    ny: int

    def centres(self) -> Floats:
        """(ny·nx, 2) cell centres in metres, row by row from the south."""
        xs = self.x0 + self.cell_m * np.arange(self.nx)
        ys = self.y0 + self.cell_m * np.arange(self.ny)
        gx, gy = np.meshgrid(xs, ys)
        return np.column_stack([gx.ravel(), gy.ravel()])


def grid_over(bbox: tuple[float, float, float, float], cell_m: float) -> GridSpec:
    """Grid of cell_m squares covering (min_lon, min_lat, max_lon, max_lat)."""
    if cell_m <= 0:
        raise ValueError("cell_m must be positive")
    projection = LocalProjection((bbox[0] + bbox[2]) / 2, (bbox[1] + bbox[3]) / 2)
    (x_min, y_min), (x_max, y_max) = projection.to_metres([bbox[:2], bbox[2:]])
    nx = max(1, math.ceil((x_max - x_min) / cell_m))
    ny = max(1, math.ceil((y_max - y_min) / cell_m))
    x0 = (x_min + x_max) / 2 - (nx - 1) * cell_m / 2
    y0 = (y_min + y_max) / 2 - (ny - 1) * cell_m / 2
    return GridSpec(projection, x0, y0, cell_m, nx, ny)


@dataclass(frozen=True)
class NoiseGrid:
    """Levels in dB on a grid, shape (ny, nx), row 0 south."""

    spec: GridSpec
    levels: Floats


# -- (a) interpolation of measured levels ----------------------------------------------


def idw_levels(
    sensors_xy: Floats, levels: Sequence[float], points_xy: Floats, power: float = 2.0
) -> Floats:
    """Inverse-distance weighting of energies 10^(L/10) at points (metres); exact at sensors."""
    sensors = np.asarray(sensors_xy, dtype=float).reshape(-1, 2)
    points = np.asarray(points_xy, dtype=float).reshape(-1, 2)
    energy = np.power(10.0, np.asarray(levels, dtype=float) / 10.0)
    if sensors.shape[0] == 0 or sensors.shape[0] != energy.size:
        raise ValueError("idw_levels needs one level per sensor and at least one sensor")
    out = np.empty(points.shape[0])
    step = max(1, _CHUNK // sensors.shape[0])
    for lo in range(0, points.shape[0], step):
        d = np.hypot(*(points[lo : lo + step, None, :] - sensors[None, :, :]).transpose(2, 0, 1))
        at = d < 1e-6
        weights = np.where(at, 0.0, 1.0 / np.maximum(d, 1e-6) ** power)
        value = (weights @ energy) / weights.sum(axis=1)
        hit = at.any(axis=1)
        value[hit] = energy[np.argmax(at[hit], axis=1)]
        out[lo : lo + step] = 10.0 * np.log10(value)
    return out


def idw_map(
    sensors: Sequence[tuple[float, float, float]], spec: GridSpec, power: float = 2.0
) -> NoiseGrid:
    """Map of (lon, lat, level) sensors by IDW on energies."""
    xy = spec.projection.to_metres([(lon, lat) for lon, lat, _ in sensors])
    levels = idw_levels(xy, [level for *_, level in sensors], spec.centres(), power)
    return NoiseGrid(spec, levels.reshape(spec.ny, spec.nx))


# -- (b) propagation from road sources --------------------------------------------------


@dataclass(frozen=True)
class Street:
    """A street centre line of a kind ("primary", "residential"...), (lon, lat) vertices."""

    kind: str
    coordinates: Sequence[LonLat]


@dataclass(frozen=True)
class PointSources:
    """Streets split into point sources: positions (n, 3) m, kind index, length Δl (m)."""

    xyz: Floats
    kind_index: NDArray[np.int64]
    length_m: Floats
    kinds: tuple[str, ...]


def point_sources(
    streets: Sequence[Street],
    projection: LocalProjection,
    spacing_m: float = 5.0,
    height_m: float = SOURCE_HEIGHT_M,
) -> PointSources:
    """Split streets into point sources at most spacing_m apart (one per piece's middle)."""
    kinds = tuple(sorted({street.kind for street in streets}))
    xy, kind_index, lengths = [], [], []
    for street in streets:
        vertices = projection.to_metres(street.coordinates)
        for a, b in zip(vertices[:-1], vertices[1:], strict=True):
            length = float(np.hypot(*(b - a)))
            if length == 0:
                continue
            n = math.ceil(length / spacing_m)
            t = (np.arange(n) + 0.5) / n
            xy.append(a + t[:, None] * (b - a))
            kind_index.append(np.full(n, kinds.index(street.kind)))
            lengths.append(np.full(n, length / n))
    if not xy:
        return PointSources(np.empty((0, 3)), np.empty(0, np.int64), np.empty(0), kinds)
    plane = np.concatenate(xy)
    xyz = np.column_stack([plane, np.full(len(plane), height_m)])
    return PointSources(xyz, np.concatenate(kind_index), np.concatenate(lengths), kinds)


def geometric_divergence(distance_m: Floats | float) -> Floats:
    """ISO 9613-2 point-source divergence Adiv = 20·lg(d/d0) + 11 dB, d0 = 1 m."""
    d: Floats = np.asarray(distance_m, dtype=float)
    return 20.0 * np.log10(d) + 11.0


def point_source_level(
    power_db: float, distance_m: Floats | float, air_absorption_db_per_km: float = 0.0
) -> Floats:
    """Level at distance_m from a point source of sound power power_db: LW − Adiv − Aatm."""
    d = np.asarray(distance_m, dtype=float)
    return power_db - geometric_divergence(d) - air_absorption_db_per_km * d / 1000.0


def kind_transfer(
    sources: PointSources, receivers_xyz: Floats, air_absorption_db_per_km: float = 0.0
) -> Floats:
    """(receivers, kinds) Σ Δl·10^(−(Adiv+Aatm)/10): energy per unit LW' of each kind."""
    receivers = np.asarray(receivers_xyz, dtype=float).reshape(-1, 3)
    out = np.zeros((receivers.shape[0], len(sources.kinds)))
    n = sources.xyz.shape[0]
    if n == 0:
        return out
    onehot = np.zeros((n, len(sources.kinds)))
    onehot[np.arange(n), sources.kind_index] = sources.length_m
    step = max(1, _CHUNK // n)
    for lo in range(0, receivers.shape[0], step):
        block = receivers[lo : lo + step]
        d2 = (block[:, None, 0] - sources.xyz[None, :, 0]) ** 2
        d2 += (block[:, None, 1] - sources.xyz[None, :, 1]) ** 2
        d2 += (block[:, None, 2] - sources.xyz[None, :, 2]) ** 2
        out[lo : lo + step] = _energy(d2, air_absorption_db_per_km) @ onehot
    return out


def _energy(d2: Floats, air_absorption_db_per_km: float) -> Floats:
    """10^(−(Adiv+Aatm)/10) from squared distances: 1/(10^1.1·d²), d clamped at d0 = 1 m."""
    d2 = np.maximum(d2, 1.0)
    energy: Floats = 1.0 / (10.0**1.1 * d2)
    if air_absorption_db_per_km:
        energy *= np.power(10.0, -air_absorption_db_per_km * np.sqrt(d2) / 10_000.0)
    return energy


def levels_from_transfer(
    transfer: Floats, kinds: Sequence[str], emission_db_per_m: Mapping[str, float]
) -> Floats:
    """Levels 10·lg Σ_k 10^(LW'_k/10)·T_k at receivers."""
    missing = [kind for kind in kinds if kind not in emission_db_per_m]
    if missing:
        raise ValueError(f"no emission level for street kinds {missing}")
    power = np.power(10.0, np.array([emission_db_per_m[kind] for kind in kinds]) / 10.0)
    with np.errstate(divide="ignore"):
        return 10.0 * np.log10(np.asarray(transfer) @ power)


@dataclass(frozen=True)
class Calibration:
    """Fitted emission LW' per street kind and how well it reproduces the sensors."""

    emission_db_per_m: dict[str, float]
    predicted_db: tuple[float, ...]  # -inf for a sensor no street reaches (left out of the fit)
    residuals_db: tuple[float, ...]  # predicted − measured (after facade_correction_db)
    rms_db: float
    iterations: int


def calibrate_emission(
    sources: PointSources,
    sensors: Sequence[tuple[float, float, float]],
    projection: LocalProjection,
    prior_db_per_m: Mapping[str, float],
    sensor_height_m: float = MAP_HEIGHT_M,
    air_absorption_db_per_km: float = 0.0,
    facade_correction_db: float = 0.0,
    prior_weight: float = 1e-4,
) -> Calibration:
    """Fit LW' per kind to (lon, lat, level) sensors by Gauss-Newton least squares in dB.

    A weak pull (prior_weight per dB²) towards the prior keeps kinds no sensor hears at
    their prior. Use facade_correction_db=-3 for meters on a façade (END: incident sound).
    """
    xy = projection.to_metres([(lon, lat) for lon, lat, _ in sensors])
    receivers = np.column_stack([xy, np.full(len(xy), sensor_height_m)])
    transfer = kind_transfer(sources, receivers, air_absorption_db_per_km)
    measured = np.array([level for *_, level in sensors], dtype=float) + facade_correction_db
    return calibrate_transfer(transfer, sources.kinds, measured, prior_db_per_m, prior_weight)


def calibrate_transfer(
    transfer: Floats,
    kinds: Sequence[str],
    measured: Floats,
    prior_db_per_m: Mapping[str, float],
    prior_weight: float = 1e-4,
) -> Calibration:
    """The fit of calibrate_emission from any (sensors, kinds) transfer matrix (energy per
    unit LW' of each kind at each sensor) and the measured levels."""
    missing = [kind for kind in kinds if kind not in prior_db_per_m]
    if missing:
        raise ValueError(f"no prior emission level for street kinds {missing}")
    prior = np.array([prior_db_per_m[kind] for kind in kinds], dtype=float)
    measured = np.asarray(measured, dtype=float)
    heard = transfer.sum(axis=1) > 0
    if not heard.any():
        raise ValueError("no sensor hears any street")

    def model(u: Floats) -> Floats:
        return np.asarray(10.0 * np.log10(transfer[heard] @ np.power(10.0, u / 10.0)))

    def cost(u: Floats) -> float:
        r = model(u) - measured[heard]
        return float(r @ r + prior_weight * (u - prior) @ (u - prior))

    u = prior + float(np.mean(measured[heard] - model(prior)))
    root = math.sqrt(prior_weight)
    iterations = 0
    while iterations < 100:
        iterations += 1
        contributions = transfer[heard] * np.power(10.0, u / 10.0)
        jacobian = contributions / contributions.sum(axis=1, keepdims=True)
        a = np.vstack([jacobian, root * np.eye(u.size)])
        b = -np.concatenate([model(u) - measured[heard], root * (u - prior)])
        step = np.linalg.lstsq(a, b, rcond=None)[0]
        before, scale = cost(u), 1.0
        while cost(u + scale * step) > before and scale > 1e-4:
            scale /= 2
        u = u + scale * step
        if np.max(np.abs(scale * step)) < 1e-7:
            break
    predicted = levels_from_transfer(transfer, kinds, dict(zip(kinds, u, strict=True)))
    residuals = predicted - measured
    fitted = residuals[heard]
    return Calibration(
        {kind: float(v) for kind, v in zip(kinds, u, strict=True)},
        tuple(float(v) for v in predicted),
        tuple(float(v) for v in residuals),
        float(np.sqrt(np.mean(fitted**2))),
        iterations,
    )


def propagation_map(
    sources: PointSources,
    emission_db_per_m: Mapping[str, float],
    spec: GridSpec,
    receiver_height_m: float = MAP_HEIGHT_M,
    air_absorption_db_per_km: float = 0.0,
) -> NoiseGrid:
    """Map of the road-source model at receiver_height_m (sources in spec.projection)."""
    xy = spec.centres()
    receivers = np.column_stack([xy, np.full(len(xy), receiver_height_m)])
    transfer = kind_transfer(sources, receivers, air_absorption_db_per_km)
    levels = levels_from_transfer(transfer, sources.kinds, emission_db_per_m)
    return NoiseGrid(spec, levels.reshape(spec.ny, spec.nx))


# -- GeoJSON --------------------------------------------------------------------------


def noise_band(level: float, bands: Sequence[int] = END_BANDS) -> tuple[str, int | None]:
    """END map class of a level: ("<55", None), ("55-59", 55) ... (">=75", 75)."""
    if level < bands[0]:
        return f"<{bands[0]}", None
    for lower, upper in zip(bands[:-1], bands[1:], strict=True):
        if level < upper:
            return f"{lower}-{upper - 1}", lower
    return f">={bands[-1]}", bands[-1]


def grid_to_geojson(
    grid: NoiseGrid, as_points: bool = False, bands: Sequence[int] = END_BANDS
) -> dict[str, Any]:
    """FeatureCollection of the grid's cells (squares, or centre points) with level and band."""
    spec, half = grid.spec, grid.spec.cell_m / 2
    centres = spec.centres()
    corners = np.array([[-half, -half], [half, -half], [half, half], [-half, half]])
    features = []
    for (x, y), level in zip(centres, grid.levels.ravel(), strict=True):
        if not np.isfinite(level):
            continue
        shown = round(float(level), 1)
        band, band_min = noise_band(shown, bands)
        if as_points:
            lon, lat = spec.projection.to_lonlat(np.array([[x, y]]))[0]
            geometry: dict[str, Any] = {"type": "Point", "coordinates": [lon, lat]}
        else:
            ring = spec.projection.to_lonlat(corners + [x, y]).tolist()
            geometry = {"type": "Polygon", "coordinates": [[*ring, ring[0]]]}
        properties = {"level": shown, "band": band, "band_min": band_min}
        features.append({"type": "Feature", "geometry": geometry, "properties": properties})
    return {"type": "FeatureCollection", "features": features}
