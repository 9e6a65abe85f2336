"""The generated map of the demo town: districts, streets, buildings and green spaces.

Everything is laid out in metres on a local plane (x east, y north, origin at the town
centre) and converted to WGS84 lon/lat only on output, with the equirectangular formula
(error well under a metre over a few kilometres). The street network is a jittered,
slightly rotated grid clipped to an irregular boundary; blocks between streets carry a
perimeter of buildings whose height and kind depend on the distance to the centre.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import shapely
from shapely.geometry import MultiPoint, Point, Polygon
from shapely.geometry.polygon import orient

from agilecity.ingest.simulator.almanac import CENTRE_LAT, CENTRE_LON
from agilecity.ingest.simulator.base import rng

Coord = tuple[float, float]

TOWN_NAME = "Bellemarque"
POSTAL_CODE = "59999"
_M_PER_DEG_LAT = 110_574.0
_M_PER_DEG_LON = 111_320.0 * math.cos(math.radians(CENTRE_LAT))
_STREAM = 1

_PEOPLE = [
    "Victor Hugo", "Jules Ferry", "Louis Pasteur", "Émile Zola", "Gambetta",
    "Léon Blum", "Pierre Curie", "Marie Curie", "Jean Moulin", "Anatole France", "George Sand",
    "Voltaire", "Molière", "Paul Bert", "Carnot", "Danton", "Condorcet", "Lamartine", "Racine",
    "Corneille", "Jean Lebas", "Roger Salengro", "Gustave Eiffel", "Louise Michel", "Rabelais",
    "Jules Verne", "Albert Camus", "Colette", "Berthe Morisot", "Paul Verlaine", "Camille Claudel",
    "Henri Matisse", "Arthur Rimbaud", "Olympe de Gouges", "Simone Veil", "Aristide Briand",
    "Jean Macé", "Marceline Desbordes-Valmore", "Pierre Mendès France",
]  # fmt: skip
_THINGS = [
    "de la Gare", "du Moulin", "des Écoles", "de la Paix", "de la Liberté", "des Tilleuls",
    "des Lilas", "des Peupliers", "des Acacias", "du Château", "de l'Église", "du 8 Mai 1945",
    "du 11 Novembre", "de Lille", "de Tourcoing", "de la Filature", "du Tissage", "des Prés",
    "de la Marque", "du Canal", "des Fusillés", "de la Briqueterie", "des Jardins", "du Calvaire",
    "de la Ferme", "des Hauts-Champs", "du Bois", "de la Fontaine", "du Marais", "des Vergers",
    "des Roses", "du Stade", "de la Mairie", "du Marché", "des Cerisiers", "de la Poste",
]  # fmt: skip
_DISTRICTS = [
    "La Gare",
    "Saint-Martin",
    "Les Prés",
    "Le Moulin",
    "La Briqueterie",
    "Les Hauts-Champs",
]
_PARKS = [
    ("Parc de la Mairie", "public"), ("Parc des Tilleuls", "public"),
    ("Jardin de la Briqueterie", "community"), ("Square Jean Moulin", "public"),
    ("Parc du Moulin", "public"), ("Jardin botanique des Prés", "botanical"),
    ("Square des Hauts-Champs", "public"),
]  # fmt: skip
_SCHOOLS = [
    "École Jules Ferry", "École Louise Michel", "École Jean Macé", "École George Sand",
    "Collège Albert Camus", "Collège Simone Veil",
]  # fmt: skip
_PUBLIC = [
    ("Hôtel de ville", "civic"), ("Médiathèque Colette", "public"),
    ("Salle des sports Roger Salengro", "civic"), ("Centre social des Prés", "public"),
]  # fmt: skip


def to_lonlat(x: float, y: float) -> list[float]:
    """WGS84 [lon, lat] (6 decimals, about 0.1 m) of a point of the local plane."""
    return [round(CENTRE_LON + x / _M_PER_DEG_LON, 6), round(CENTRE_LAT + y / _M_PER_DEG_LAT, 6)]


def ring_lonlat(points: list[Coord]) -> list[list[float]]:
    """A closed GeoJSON ring of local points."""
    ring = [to_lonlat(x, y) for x, y in points]
    if ring[0] != ring[-1]:
        ring.append(ring[0])
    return ring


@dataclass
class Street:
    """A named street (one line of the grid)."""

    id: str
    name: str
    kind: str  # primary | secondary | residential


@dataclass
class Segment:
    """A street between two consecutive crossings."""

    id: str
    street: Street
    a: Coord
    b: Coord

    @property
    def length(self) -> float:
        """Length in metres."""
        return math.dist(self.a, self.b)

    def point(self, s: float, side: float = 0.0) -> Coord:
        """The point ``s`` metres from ``a``, ``side`` metres to the left (negative: right)."""
        ux, uy = (self.b[0] - self.a[0]) / self.length, (self.b[1] - self.a[1]) / self.length
        return (self.a[0] + s * ux - side * uy, self.a[1] + s * uy + side * ux)

    @property
    def midpoint(self) -> Coord:
        """The middle of the segment."""
        return self.point(self.length / 2)


@dataclass
class Building:
    """A building footprint of the map."""

    id: str
    category: str
    floors: int
    footprint: list[Coord]
    district: str
    street: str
    number: int
    population: int = 0
    name: str | None = None

    @property
    def centroid(self) -> Coord:
        """The footprint's vertex average (the footprints are convex)."""
        xs, ys = zip(*self.footprint, strict=True)
        return (sum(xs) / len(xs), sum(ys) / len(ys))

    @property
    def area(self) -> float:
        """Footprint area in m²."""
        return float(Polygon(self.footprint).area)


@dataclass
class GreenSpace:
    """A park or garden."""

    id: str
    name: str
    category: str
    polygon: list[Coord]
    district: str


@dataclass
class District:
    """An administrative district of the town."""

    id: str
    name: str
    polygon: Polygon


@dataclass
class Block:
    """The land between four crossings."""

    corners: list[Coord]
    sides: list[Segment]
    district: str = ""
    use: str = "built"

    @property
    def centre(self) -> Coord:
        """The vertex average of the block."""
        xs, ys = zip(*self.corners, strict=True)
        return (sum(xs) / 4, sum(ys) / 4)


@dataclass
class Layout:
    """The whole map, in local metres."""

    boundary: Polygon
    districts: list[District]
    streets: list[Street]
    segments: list[Segment]
    blocks: list[Block]
    buildings: list[Building] = field(default_factory=list)
    green_spaces: list[GreenSpace] = field(default_factory=list)

    def district_of(self, point: Coord) -> str:
        """The name of the district containing a point (the nearest one outside)."""
        p = Point(point)
        return min(self.districts, key=lambda d: d.polygon.distance(p)).name

    @property
    def population(self) -> int:
        """Inhabitants summed over residential buildings."""
        return sum(b.population for b in self.buildings)


def _spread(candidates: list[Block], count: int, g: np.random.Generator) -> list[Block]:
    """``count`` blocks far from each other (greedy farthest-point sampling)."""
    chosen = [candidates[int(g.integers(len(candidates)))]]
    while len(chosen) < count:
        best = max(candidates, key=lambda b: min(math.dist(b.centre, c.centre) for c in chosen))
        chosen.append(best)
    return chosen


def _grid(g: np.random.Generator) -> tuple[Polygon, dict[tuple[int, int], Coord], float, float]:
    angle = g.uniform(-0.2, 0.2)
    sx, sy = g.uniform(125, 150), g.uniform(125, 150)
    rx, ry = 1800.0, 1500.0
    phis = np.linspace(0, 2 * np.pi, 128, endpoint=False)
    wobble = np.ones_like(phis)
    for k in (2, 3, 5):
        wobble += g.uniform(0.0, 0.07) * np.cos(k * phis + g.uniform(0, 2 * np.pi))
    boundary = Polygon(np.column_stack([rx * wobble * np.cos(phis), ry * wobble * np.sin(phis)]))
    nx, ny = int(rx * 1.25 // sx) + 1, int(ry * 1.25 // sy) + 1
    cos_a, sin_a = math.cos(angle), math.sin(angle)
    nodes: dict[tuple[int, int], Coord] = {}
    for i in range(-nx, nx + 1):
        for j in range(-ny, ny + 1):
            gx = i * sx + (g.normal(0, 7) if i else 0.0)
            gy = j * sy + (g.normal(0, 7) if j else 0.0)
            x, y = gx * cos_a - gy * sin_a, gx * sin_a + gy * cos_a
            if boundary.contains(Point(x, y)):
                nodes[(i, j)] = (x, y)
    return boundary, nodes, sx, sy


def _streets(
    nodes: dict[tuple[int, int], Coord], g: np.random.Generator
) -> tuple[list[Street], list[Segment], dict[tuple[tuple[int, int], tuple[int, int]], Segment]]:
    names = [f"Rue {p}" for p in _PEOPLE] + [f"Rue {t}" for t in _THINGS]
    order = g.permutation(len(names))
    pool = [names[int(k)] for k in order]
    streets: list[Street] = []
    segments: list[Segment] = []
    by_nodes: dict[tuple[tuple[int, int], tuple[int, int]], Segment] = {}
    lines = sorted({("row", j) for _, j in nodes} | {("col", i) for i, _ in nodes})
    for axis, k in lines:
        keys = sorted(n for n in nodes if (n[1] if axis == "row" else n[0]) == k)
        pairs = [(p, q) for p, q in zip(keys, keys[1:], strict=False)
                 if (q[0] - p[0], q[1] - p[1]) in ((1, 0), (0, 1))]  # fmt: skip
        if not pairs:
            continue
        kind = "primary" if k == 0 else "secondary" if k % 4 == 0 else "residential"
        base = pool.pop() if pool else f"Rue n° {len(streets) + 1}"
        if kind == "primary":
            name = "Boulevard de la République" if axis == "row" else "Avenue Jean Jaurès"
        elif kind == "secondary":
            name = base.replace("Rue ", "Avenue ", 1)
        else:
            name = base
        street = Street(id=f"street-{len(streets) + 1:03d}", name=name, kind=kind)
        streets.append(street)
        for p, q in pairs:
            seg = Segment(
                id=f"segment-{len(segments) + 1:04d}", street=street, a=nodes[p], b=nodes[q]
            )
            segments.append(seg)
            by_nodes[(p, q)] = seg
    return streets, segments, by_nodes


def _districts(boundary: Polygon, g: np.random.Generator) -> list[District]:
    seeds = [(0.0, 0.0)]
    for k in range(6):
        phi = k * math.pi / 3 + g.uniform(-0.3, 0.3)
        r = g.uniform(0.5, 0.65)
        seeds.append((1800 * r * math.cos(phi), 1500 * r * math.sin(phi)))
    cells = shapely.voronoi_polygons(MultiPoint(seeds), extend_to=boundary)
    names = ["Centre"] + [_DISTRICTS[int(k)] for k in g.permutation(len(_DISTRICTS))]
    out = []
    for n, (sx, sy) in enumerate(seeds):
        cell = next(c for c in cells.geoms if c.contains(Point(sx, sy)))
        part = cell.intersection(boundary)
        if not isinstance(part, Polygon):  # a concave boundary may cut a cell in pieces
            part = max(part.geoms, key=lambda piece: piece.area)
        shape = orient(part, 1.0)
        out.append(District(id=f"district-{n + 1:02d}", name=names[n], polygon=shape))
    return out


def _inner(corners: list[Coord], inset: float) -> list[Coord] | None:
    shape = orient(Polygon(corners).buffer(-inset, join_style="mitre"), 1.0)
    if shape.is_empty or not isinstance(shape, Polygon):
        return None
    ring = list(shape.exterior.coords)[:-1]
    return [(float(x), float(y)) for x, y in ring] if len(ring) == 4 else None


def _sub_quad(q: list[Coord], u0: float, u1: float, v0: float, v1: float) -> list[Coord]:
    """The part of a convex quad between bilinear parameters u0..u1, v0..v1 (CCW kept)."""

    def at(u: float, v: float) -> Coord:
        (ax, ay), (bx, by), (cx, cy), (dx, dy) = q
        x = (1 - u) * (1 - v) * ax + u * (1 - v) * bx + u * v * cx + (1 - u) * v * dx
        y = (1 - u) * (1 - v) * ay + u * (1 - v) * by + u * v * cy + (1 - u) * v * dy
        return (x, y)

    return [at(u0, v0), at(u1, v0), at(u1, v1), at(u0, v1)]


def _perimeter(block: Block, radius: float, g: np.random.Generator) -> list[Building]:
    """Rows of buildings along the four sides of a built block."""
    inner = _inner(block.corners, 6.0)
    if inner is None:
        return []
    out: list[Building] = []
    industrial = radius > 1350 and g.random() < 0.15
    if industrial:
        shape = _sub_quad(inner, 0.15, 0.85, 0.2, 0.8)
        side = block.sides[0]
        out.append(Building("", "industrial", 1, shape, block.district, side.street.name, 1))
        return out
    for n in range(4):
        p, q = inner[n], inner[(n + 1) % 4]
        length = math.dist(p, q)
        ux, uy = (q[0] - p[0]) / length, (q[1] - p[1]) / length
        nx, ny = -uy, ux
        if radius < 600:
            depth, widths, floors = 14.0, (18.0, 32.0), (4, 7)
        elif radius < 1200:
            depth, widths, floors = 12.0, (16.0, 40.0), (2, 5)
        else:
            depth, widths, floors = 10.0, (9.0, 36.0), (1, 3)
        s = depth
        middle = ((p[0] + q[0]) / 2, (p[1] + q[1]) / 2)
        segment = min(block.sides, key=lambda seg: math.dist(seg.midpoint, middle))
        while s + widths[0] <= length - depth:
            width = min(float(g.uniform(*widths)), length - depth - s)
            a = (p[0] + s * ux, p[1] + s * uy)
            b = (p[0] + (s + width) * ux, p[1] + (s + width) * uy)
            shape = [a, b, (b[0] + depth * nx, b[1] + depth * ny),
                     (a[0] + depth * nx, a[1] + depth * ny)]  # fmt: skip
            level = int(g.integers(floors[0], floors[1]))
            roll = g.random()
            category = "residential"
            if radius < 600 and roll < 0.25:
                category = "retail" if roll < 0.12 else "office"
            elif segment.street.kind != "residential" and roll < 0.08:
                category = "commercial"
            number = 2 * int(s // 12) + 1 + (n % 2)
            out.append(
                Building("", category, level, shape, block.district, segment.street.name, number)
            )
            s += width + float(g.uniform(0.0, 3.0 if radius > 1200 else 0.5))
    return out


def _allocate(weights: list[float], total: int) -> list[int]:
    """Integers proportional to ``weights`` summing exactly to ``total`` (largest remainder)."""
    w = np.asarray(weights, dtype=float)
    exact = w / w.sum() * total
    base = np.floor(exact).astype(int)
    short = total - int(base.sum())
    order = np.argsort(-(exact - base), kind="stable")
    base[order[:short]] += 1
    return [int(v) for v in base]


def build_layout(seed: int, population: int = 50_000) -> Layout:
    """Generate the town of ``seed``: same seed, same map."""
    g = rng(seed, _STREAM)
    boundary, nodes, _, _ = _grid(g)
    streets, segments, by_nodes = _streets(nodes, g)
    districts = _districts(boundary, g)
    layout = Layout(boundary, districts, streets, segments, [])
    for i, j in sorted(nodes):
        keys = [(i, j), (i + 1, j), (i + 1, j + 1), (i, j + 1)]
        if not all(k in nodes for k in keys):
            continue
        sides = [by_nodes[(i, j), (i + 1, j)], by_nodes[(i + 1, j), (i + 1, j + 1)],
                 by_nodes[(i, j + 1), (i + 1, j + 1)], by_nodes[(i, j), (i, j + 1)]]  # fmt: skip
        block = Block([nodes[k] for k in keys], sides)
        block.district = layout.district_of(block.centre)
        layout.blocks.append(block)
    _assign_uses(layout, g)
    for block in layout.blocks:
        if block.use == "built":
            layout.buildings.extend(_perimeter(block, math.hypot(*block.centre), g))
    residents = [b for b in layout.buildings if b.category == "residential"]
    shares = _allocate([b.area * b.floors for b in residents], population)
    for building, people in zip(residents, shares, strict=True):
        building.population = people
    for n, building in enumerate(layout.buildings):
        building.id = f"building-{n + 1:05d}"
    return layout


def _assign_uses(layout: Layout, g: np.random.Generator) -> None:
    blocks = sorted(layout.blocks, key=lambda b: math.hypot(*b.centre))
    hall = blocks[0]
    hall.use = "public:0"
    parks = [blocks[1]] + _spread([b for b in blocks[8:] if b.use == "built"], 6, g)
    for n, block in enumerate(parks):
        block.use = f"park:{n}"
    free = [b for b in blocks[4:] if b.use == "built" and math.hypot(*b.centre) < 1300]
    for n, block in enumerate(_spread(free, len(_SCHOOLS), g)):
        block.use = f"school:{n}"
    near = [b for b in blocks[2:40] if b.use == "built"]
    for n, block in enumerate(_spread(near, len(_PUBLIC) - 1, g)):
        block.use = f"public:{n + 1}"
    for block in layout.blocks:
        use, _, number = block.use.partition(":")
        if use == "built":
            continue
        inner = _inner(block.corners, 6.0)
        assert inner is not None
        k = int(number)
        if use == "park":
            name, category = _PARKS[k]
            layout.green_spaces.append(
                GreenSpace(f"green-{k + 1:02d}", name, category, inner, block.district)
            )
            continue
        name, category = (_SCHOOLS[k], "school") if use == "school" else _PUBLIC[k]
        if use == "school":
            shape = _sub_quad(inner, 0.2, 0.8, 0.08, 0.35)
        else:
            shape = _sub_quad(inner, 0.25, 0.75, 0.1, 0.5)
        floors = 2 if use == "school" else 3 if k == 0 else 1 if "sports" in name else 2
        street = min(block.sides, key=lambda seg: seg.street.kind == "residential").street.name
        layout.buildings.append(
            Building("", category, floors, shape, block.district, street, 1 + 2 * k, name=name)
        )


def _feature(geometry: dict[str, Any], properties: dict[str, Any]) -> dict[str, Any]:
    return {"type": "Feature", "geometry": geometry, "properties": properties}


def polygon_geojson(points: list[Coord]) -> dict[str, Any]:
    """A GeoJSON Polygon (lon/lat) of a local ring."""
    return {"type": "Polygon", "coordinates": [ring_lonlat(points)]}


def feature_collections(layout: Layout) -> dict[str, dict[str, Any]]:
    """The map as GeoJSON FeatureCollections: districts, streets, buildings, green_spaces."""
    people: dict[str, int] = {}
    for b in layout.buildings:
        people[b.district] = people.get(b.district, 0) + b.population
    districts = [
        _feature(
            {"type": "Polygon", "coordinates": [ring_lonlat(list(d.polygon.exterior.coords))]},
            {"id": d.id, "name": d.name, "population": people.get(d.name, 0)},
        )
        for d in layout.districts
    ]
    streets = [
        _feature(
            {"type": "LineString", "coordinates": [to_lonlat(*s.a), to_lonlat(*s.b)]},
            {
                "id": s.id,
                "street": s.street.id,
                "name": s.street.name,
                "kind": s.street.kind,
                "length_m": round(s.length, 1),
            },
        )  # fmt: skip
        for s in layout.segments
    ]
    buildings = [
        _feature(
            polygon_geojson(b.footprint),
            {
                "id": b.id,
                "category": b.category,
                "floors": b.floors,
                "population": b.population,
                "district": b.district,
                "address": f"{b.number} {b.street}",
                "name": b.name,
            },
        )  # fmt: skip
        for b in layout.buildings
    ]
    greens = [
        _feature(
            polygon_geojson(p.polygon),
            {
                "id": p.id,
                "name": p.name,
                "category": p.category,
                "district": p.district,
                "area_m2": round(Polygon(p.polygon).area),
            },
        )  # fmt: skip
        for p in layout.green_spaces
    ]
    return {
        name: {"type": "FeatureCollection", "features": features}
        for name, features in (
            ("districts", districts),
            ("streets", streets),
            ("buildings", buildings),
            ("green_spaces", greens),
        )
    }
