"""Façade levels per floor: road segments as exact line sources, receivers 2 m in front.

Pure computations (no I/O). The propagation is that of ``propagation.py`` — ISO 9613-2
point-source divergence Adiv = 20·lg(d/1 m) + 11 dB in 3-D, energies added, emission LW'
per street kind calibrated on the meters — with the sum over point sources replaced by its
exact integral along each straight street segment: a segment of emission LW' gives at a
receiver at perpendicular distance p (3-D, to the segment's line) and along-line ends t1 < t2
the energy 10^(LW'/10)·(atan(t2/p) − atan(t1/p)) / (10^1.1·p), the limit of
``propagation.point_sources`` as the spacing tends to 0 (no discretisation error near the
road, and one term per segment: 834 segments instead of 23 000 points for the demo town).

Receivers: for every (building, segment) pair, the point of the footprint's boundary nearest
to the segment, moved 2 m out towards it (the façade nearest each source), at each floor's
mid-height (1.5 m + 3 m × floor) and at the END assessment height of 4 m. Each segment is
heard at its own nearest façade, so a building's level is that of its most exposed façade.
Incident levels (END Annex I): no +3 dB reflection from the façade itself. Not modelled:
screening by other buildings, ground effect, air absorption, reflections.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from agilecity.services.noise.propagation import (
    FLOOR_HEIGHT_M,
    MAP_HEIGHT_M,
    SOURCE_HEIGHT_M,
    LocalProjection,
    LonLat,
    Street,
    levels_from_transfer,
)

Floats = NDArray[np.float64]
FACADE_OFFSET_M = 2.0  # receiver distance in front of the façade
_POINT_SOURCE = 10.0**1.1  # 4π rounded as ISO 9613-2's +11 dB: energy = Δl / (10^1.1 · d²)
_CHUNK = 1_000_000  # (building, edge, segment) triples per block (memory bound)


@dataclass(frozen=True)
class Building:
    """A building: footprint ring (lon, lat), number of floors, residents."""

    id: str
    footprint: Sequence[LonLat]
    floors: int
    population: float = 0.0


@dataclass(frozen=True)
class Segments:
    """Straight street segments in metres: ends a, b (n, 2), kind index, source height."""

    a: Floats
    b: Floats
    kind_index: NDArray[np.int64]
    kinds: tuple[str, ...]
    height_m: float = SOURCE_HEIGHT_M

    def onehot(self) -> Floats:
        """(segments, kinds) matrix of ones: sums energies per street kind."""
        out = np.zeros((self.a.shape[0], len(self.kinds)))
        out[np.arange(self.a.shape[0]), self.kind_index] = 1.0
        return out


def street_segments(
    streets: Sequence[Street], projection: LocalProjection, height_m: float = SOURCE_HEIGHT_M
) -> Segments:
    """Every straight piece of every street, projected to metres (zero-length ones dropped)."""
    kinds = tuple(sorted({street.kind for street in streets}))
    a, b, kind_index = [], [], []
    for street in streets:
        vertices = projection.to_metres(street.coordinates)
        for start, end in zip(vertices[:-1], vertices[1:], strict=True):
            if np.hypot(*(end - start)) > 0:
                a.append(start)
                b.append(end)
                kind_index.append(kinds.index(street.kind))
    if not a:
        return Segments(np.empty((0, 2)), np.empty((0, 2)), np.empty(0, np.int64), kinds, height_m)
    return Segments(np.array(a), np.array(b), np.array(kind_index), kinds, height_m)


def line_energy(receivers: Floats, a: Floats, b: Floats, dz: Floats | float) -> Floats:
    """Energy per unit emission (10^(LW'/10) = 1) of segments a→b at receivers (x, y) with
    height difference dz: ∫ dl / (10^1.1·r²) along the segment, r clamped at 1 m (d0).

    Shapes broadcast: receivers (..., 2), a and b (..., 2), dz (...).
    """
    edge = b - a
    length = np.sqrt((edge**2).sum(axis=-1))
    unit = edge / np.maximum(length, 1e-12)[..., None]
    rel = a - receivers
    t1 = (rel * unit).sum(axis=-1)
    across = rel[..., 0] * unit[..., 1] - rel[..., 1] * unit[..., 0]
    p = np.maximum(np.sqrt(across**2 + np.asarray(dz) ** 2), 1.0)
    energy: Floats = (np.arctan((t1 + length) / p) - np.arctan(t1 / p)) / (_POINT_SOURCE * p)
    return energy


def segment_transfer(segments: Segments, receivers_xyz: Floats) -> Floats:
    """(receivers, kinds) energy per unit LW' of each street kind at point receivers."""
    receivers = np.asarray(receivers_xyz, dtype=float).reshape(-1, 3)
    if segments.a.shape[0] == 0:
        return np.zeros((receivers.shape[0], len(segments.kinds)))
    energy = line_energy(
        receivers[:, None, :2], segments.a[None], segments.b[None],
        receivers[:, None, 2] - segments.height_m,
    )  # fmt: skip
    return np.asarray(energy @ segments.onehot())


@dataclass(frozen=True)
class FacadeModel:
    """The geometry part of the façade levels, computed once: transfers per street kind.

    ``floor_transfer`` has one row per floor, building after building (``offsets[i]`` is
    building i's first row); ``assessment_transfer`` one row per building at 4 m.
    """

    buildings: tuple[Building, ...]
    kinds: tuple[str, ...]
    floor_heights_m: Floats  # one per row of floor_transfer
    offsets: NDArray[np.int64]  # len(buildings) + 1
    floor_transfer: Floats
    assessment_transfer: Floats
    assessment_height_m: float

    def floor_levels(self, emission_db_per_m: Mapping[str, float]) -> list[Floats]:
        """Level at each floor's most exposed façade, one array per building."""
        flat = levels_from_transfer(self.floor_transfer, self.kinds, emission_db_per_m)
        return [flat[lo:hi] for lo, hi in zip(self.offsets[:-1], self.offsets[1:], strict=True)]

    def assessment_levels(self, emission_db_per_m: Mapping[str, float]) -> Floats:
        """Level at the most exposed façade at the assessment height, one per building."""
        return levels_from_transfer(self.assessment_transfer, self.kinds, emission_db_per_m)


def facade_model(
    buildings: Sequence[Building],
    segments: Segments,
    projection: LocalProjection,
    floor_height_m: float = FLOOR_HEIGHT_M,
    offset_m: float = FACADE_OFFSET_M,
    assessment_height_m: float = MAP_HEIGHT_M,
) -> FacadeModel:
    """Transfers of every building's floors (mid-height) and of its 4 m receiver."""
    floors = np.array([max(1, int(b.floors)) for b in buildings], dtype=np.int64)
    offsets = np.concatenate([[0], np.cumsum(floors)]).astype(np.int64)
    per_floor = [floor_height_m * (np.arange(n) + 0.5) for n in floors]
    heights = np.concatenate(per_floor) if per_floor else np.empty(0)
    kinds, n_seg = segments.kinds, segments.a.shape[0]
    floor_transfer = np.zeros((int(offsets[-1]), len(kinds)))
    assessment = np.zeros((len(buildings), len(kinds)))
    if n_seg == 0 or not buildings:
        return FacadeModel(tuple(buildings), kinds, heights, offsets, floor_transfer,
                           assessment, assessment_height_m)  # fmt: skip
    rings = _rings(buildings, projection)  # (B, E, 2), padded by repeating the last edge
    onehot = segments.onehot()
    step = max(1, _CHUNK // (rings.shape[1] * n_seg))
    for lo in range(0, len(buildings), step):
        receivers = _receivers(rings[lo : lo + step], segments, offset_m)  # (b, S, 2)
        block = floors[lo : lo + step]
        for floor in range(int(block.max())):
            has = np.nonzero(block > floor)[0]
            dz = floor_height_m * (floor + 0.5) - segments.height_m
            energy = line_energy(receivers[has], segments.a[None], segments.b[None], dz)
            floor_transfer[offsets[lo + has] + floor] = energy @ onehot
        dz = assessment_height_m - segments.height_m
        assessment[lo : lo + step] = (
            line_energy(receivers, segments.a[None], segments.b[None], dz) @ onehot
        )
    return FacadeModel(tuple(buildings), kinds, heights, offsets, floor_transfer, assessment,
                       assessment_height_m)  # fmt: skip


def _rings(buildings: Sequence[Building], projection: LocalProjection) -> Floats:
    """(B, E, 2) open rings in metres, all padded to the longest by repeating the last vertex."""
    rings = []
    for building in buildings:
        ring = projection.to_metres(building.footprint)
        if len(ring) > 1 and np.allclose(ring[0], ring[-1]):
            ring = ring[:-1]
        rings.append(ring)
    longest = max(len(r) for r in rings)
    return np.stack([np.vstack([r, np.repeat(r[-1:], longest - len(r), axis=0)]) for r in rings])


def _receivers(rings: Floats, segments: Segments, offset_m: float) -> Floats:
    """(B, S, 2) receiver of each building for each segment: the boundary point nearest to
    the segment, moved offset_m towards it (less when the segment is nearer than that)."""
    ea = rings[:, :, None]  # (B, E, 1, 2) façade edge starts
    eb = np.roll(rings, -1, axis=1)[:, :, None]  # ends: closes each ring
    sa, sb = segments.a[None, None], segments.b[None, None]  # (1, 1, S, 2)
    shape = (rings.shape[0], rings.shape[1], segments.a.shape[0], 2)
    # closest points of two non-crossing segments: an end of one and its projection on the
    # other (façade corners are the edges' starts: the ring's ends are the next edges' starts)
    best_gap = np.full(shape[:3], np.inf)
    best_q, best_p = np.zeros(shape), np.zeros(shape)
    for facade, street in (
        (_project(sa, ea, eb), np.broadcast_to(sa, shape)),
        (_project(sb, ea, eb), np.broadcast_to(sb, shape)),
        (np.broadcast_to(ea, shape), _project(ea, sa, sb)),
    ):
        gap = ((street - facade) ** 2).sum(axis=-1)
        better = gap < best_gap
        best_gap = np.where(better, gap, best_gap)
        best_q = np.where(better[..., None], facade, best_q)
        best_p = np.where(better[..., None], street, best_p)
    edge = np.argmin(best_gap, axis=1)  # (B, S) nearest façade edge per segment
    b_idx, s_idx = np.indices(edge.shape)
    q = best_q[b_idx, edge, s_idx]
    towards = best_p[b_idx, edge, s_idx] - q
    distance = np.sqrt((towards**2).sum(axis=-1))
    move = np.minimum(offset_m, distance) / np.maximum(distance, 1e-12)
    return np.asarray(q + towards * move[..., None])


def _project(point: Floats, a: Floats, b: Floats) -> Floats:
    """Nearest point of segment a→b to point (broadcasting)."""
    edge = b - a
    length2 = np.maximum((edge**2).sum(axis=-1), 1e-12)
    t = np.clip(((point - a) * edge).sum(axis=-1) / length2, 0.0, 1.0)
    return np.asarray(a + t[..., None] * edge)


def building_from_feature(feature: Mapping[str, object]) -> Building | None:
    """A Building from a GeoJSON Feature (Polygon: its exterior ring; MultiPolygon: the
    largest part's), or None for other geometries."""
    geometry = feature.get("geometry")
    props = feature.get("properties")
    if not isinstance(geometry, dict) or not isinstance(props, dict):
        return None
    coordinates = geometry.get("coordinates")
    if geometry.get("type") == "Polygon" and coordinates:
        ring = coordinates[0]
    elif geometry.get("type") == "MultiPolygon" and coordinates:
        ring = max((part[0] for part in coordinates), key=len)
    else:
        return None
    floors = props.get("floors") or 1
    population = props.get("population") or 0
    return Building(
        str(props.get("id", feature.get("id", ""))),
        [(float(c[0]), float(c[1])) for c in ring],
        max(1, int(math.ceil(float(floors)))),
        float(population),
    )
