"""The demo town: its map, its devices, its scenario and the readings they send."""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np

from agilecity.ingest.simulator import scenario as plan
from agilecity.ingest.simulator.base import (
    DAY,
    Device,
    Kind,
    Reading,
    apikey_for,
    day_range,
    from_seconds,
    rng,
)
from agilecity.ingest.simulator.buildings import INDOOR, METER, BuildingPhysics, IndoorSensor, Meter
from agilecity.ingest.simulator.entities import address, geo, prop, rel
from agilecity.ingest.simulator.geography import (
    Building,
    Coord,
    Layout,
    Segment,
    build_layout,
    feature_collections,
    polygon_geojson,
    to_lonlat,
)
from agilecity.ingest.simulator.greenspaces import SOIL, WEATHER, SoilProbe, WeatherStation
from agilecity.ingest.simulator.lighting import STREETLIGHT, StreetlightController
from agilecity.ingest.simulator.noise import NOISE, NoiseMeter
from agilecity.ingest.simulator.parking import PARKING, ParkingSpotSensor, Stay
from agilecity.ingest.simulator.scenario import (
    ChargerOutage,
    FailedLamp,
    LongStay,
    Scenario,
    StuckSensor,
)
from agilecity.ingest.simulator.utilities import EV, WASTE, ChargingStation, WasteSensor

#: Every kind of device, in the order readings of the same second are listed.
KINDS: tuple[Kind, ...] = (PARKING, NOISE, METER, INDOOR, STREETLIGHT, SOIL, WEATHER, EV, WASTE)
#: The default start of the simulation (a Monday in term time).
DEFAULT_ORIGIN = datetime(2026, 1, 5, tzinfo=UTC)
_STREAM = 3
_PREFIX = "urn:ngsi-ld"


def entity_id(entity_type: str, local_id: str) -> str:
    """The NGSI-LD id of a demo-town entity: ``urn:ngsi-ld:<Type>:demo-<id>``."""
    return f"{_PREFIX}:{entity_type}:demo-{local_id}"


@dataclass
class ParkingZone:
    """One side of one street segment with sensor-equipped bays (``OnStreetParking``)."""

    id: str
    name: str
    usage: str  # commercial | residential
    segment: Segment
    spots: list[str]
    polygon: list[Coord]

    def entity(self) -> dict[str, Any]:
        """The normalized OnStreetParking entity."""
        commercial = self.usage == "commercial"
        return {
            "id": self.id,
            "type": "OnStreetParking",
            "name": prop(self.name),
            "category": prop(["feeCharged", "shortTerm"] if commercial else ["free", "public"]),
            "allowedVehicleType": prop(["car"]),
            "maximumParkingDuration": prop("PT2H" if commercial else "P7D"),
            "chargeType": prop(["temporaryPrice"] if commercial else ["free"]),
            "totalSpotNumber": prop(len(self.spots)),
            "occupancyDetectionType": prop(["singleSpaceDetection"]),
            "parkingMode": prop("parallelParking"),
            "refParkingSpot": rel(self.spots),
            "location": geo(polygon_geojson(self.polygon)),
        }


class Town:
    """A fictional town of about 50,000 inhabitants, generated from ``seed``.

    ``origin`` is the start of the simulation: the scenario's times are offsets from it,
    and the integrated states (building heat, soil water) start a week before it. Same
    seed and origin, same town, byte for byte.
    """

    def __init__(
        self, seed: int = 1, origin: datetime = DEFAULT_ORIGIN, population: int = 50_000
    ) -> None:
        if origin.tzinfo is None:
            origin = origin.replace(tzinfo=UTC)
        self.seed = seed
        self.origin = origin.astimezone(UTC).replace(microsecond=0)
        self.origin_s = int(self.origin.timestamp())
        self.anchor = self.origin_s // DAY - 7
        self.layout: Layout = build_layout(seed, population)
        self.apikeys = {kind.key: apikey_for(seed, kind.key) for kind in KINDS}
        self._g = rng(seed, _STREAM)
        self.zones: list[ParkingZone] = []
        self.public_buildings: list[tuple[Building, str]] = []
        self.devices: list[Device] = []
        self._place_parking()
        self._place_noise()
        self._place_buildings()
        self._place_lights()
        self._place_greenspaces()
        self._place_utilities()
        self.by_id = {d.device_id: d for d in self.devices}
        self.scenario = self._plant_scenario()

    # -- placement ---------------------------------------------------------------------

    def _pick(self, segments: list[Segment], count: int) -> list[Segment]:
        order = self._g.permutation(len(segments))[:count]
        return [segments[int(k)] for k in sorted(order)]

    def _device_args(
        self, local_id: str, entity_type: str, name: str, point: Coord
    ) -> dict[str, Any]:
        lon, lat = to_lonlat(*point)
        return {
            "device_id": local_id,
            "entity_id": entity_id(entity_type, local_id),
            "name": name,
            "lon": lon,
            "lat": lat,
            "seed": self.seed,
            "index": len(self.devices),
        }

    def _place_parking(self) -> None:
        segs = self.layout.segments
        centre = [s for s in segs if s.street.kind != "residential" and s.length >= 90
                  and math.hypot(*s.midpoint) < 700]  # fmt: skip
        homes = [s for s in segs if s.street.kind == "residential" and s.length >= 90
                 and 500 < math.hypot(*s.midpoint) < 1500]  # fmt: skip
        chosen = [(s, "commercial") for s in self._pick(centre, 8)]
        chosen += [(s, "residential") for s in self._pick(homes, 14)]
        counts = [10, 10] + [9] * (len(chosen) - 2)
        for z, ((segment, usage), count) in enumerate(zip(chosen, counts, strict=True)):
            zone_id = entity_id("OnStreetParking", f"zone-{z + 1:02d}")
            first, pitch = 10.0, 5.5
            far = first + count * pitch
            polygon = [segment.point(first, 3.0), segment.point(far, 3.0),
                       segment.point(far, 5.5), segment.point(first, 5.5)]  # fmt: skip
            name = f"{segment.street.name} — zone {z + 1:02d}"
            zone = ParkingZone(zone_id, name, usage, segment, [], polygon)
            for k in range(count):
                n = sum(isinstance(d, ParkingSpotSensor) for d in self.devices) + 1
                local = f"ps-{n:04d}"
                point = segment.point(first + (k + 0.5) * pitch, 4.25)
                label = f"{segment.street.name} {k + 1}"
                args = self._device_args(local, "ParkingSpot", label, point)
                spot = ParkingSpotSensor(
                    **args, zone_id=zone_id, usage=usage, phase=int(self._g.integers(3600))
                )
                zone.spots.append(spot.entity_id)
                self.devices.append(spot)
            self.zones.append(zone)

    def _place_noise(self) -> None:
        segs = self.layout.segments
        picks = []
        for kind, count in (("primary", 4), ("secondary", 3), ("residential", 3)):
            pool = [s for s in segs if s.street.kind == kind and math.hypot(*s.midpoint) < 1400]
            picks += self._pick(pool, count)
        for n, segment in enumerate(picks):
            local = f"nm-{n + 1:02d}"
            point = segment.point(segment.length / 2, 7.0)
            where = address(segment.street.name, None, self.layout.district_of(point))
            args = self._device_args(
                local, "NoiseLevelObserved", f"Sonomètre {segment.street.name}", point
            )
            self.devices.append(
                NoiseMeter(
                    **args,
                    street_kind=segment.street.kind,
                    offset_db=float(self._g.uniform(-2, 2)),
                    phase=int(self._g.integers(60)),
                    address=where,
                )
            )

    def _place_buildings(self) -> None:
        named = [b for b in self.layout.buildings if b.name]
        schools = sorted((b for b in named if b.category == "school"), key=lambda b: b.name or "")
        public = sorted((b for b in named if b.category != "school"), key=lambda b: b.name or "")
        for n, building in enumerate(schools + public):
            school = building.category == "school"
            short = f"s{n + 1:02d}" if school else f"p{n - len(schools) + 1:02d}"
            name = building.name or ""
            role = (
                "school"
                if school
                else "townhall"
                if "ville" in name
                else "sports"
                if "sports" in name
                else "public"
            )
            building_id = entity_id("Building", f"{'school' if school else 'public'}-{short[1:]}")
            self.public_buildings.append((building, building_id))
            floor_area = building.area * building.floors
            physics = BuildingPhysics(self.seed, n, role, floor_area, self.anchor)
            where = address(building.street, building.number, building.district)
            point = building.centroid
            for meter_type, prefix in (("Heat", "hm"), ("Electricity", "em")):
                local = f"{prefix}-{short}"
                label = "chauffage" if meter_type == "Heat" else "électricité"
                args = self._device_args(
                    local, "SmartMeteringObservation", f"{name} — {label}", point
                )
                self.devices.append(
                    Meter(
                        **args,
                        physics=physics,
                        meter_type=meter_type,
                        building_id=building_id,
                        address=where,
                    )  # fmt: skip
                )
            args = self._device_args(
                f"iaq-{short}", "AirQualityObserved", f"{name} — qualité de l'air", point
            )
            self.devices.append(
                IndoorSensor(**args, physics=physics, building_id=building_id, address=where)
            )
        # Kind order for readings: meters first, then indoor sensors.
        self.devices.sort(key=lambda d: KINDS.index(d.kind))

    def _place_lights(self) -> None:
        segs = self.layout.segments
        main = [
            s for s in segs if s.street.kind != "residential" and math.hypot(*s.midpoint) < 1200
        ]
        homes = [
            s for s in segs if s.street.kind == "residential" and math.hypot(*s.midpoint) < 1400
        ]
        n = 0
        for segment in self._pick(main, 8) + self._pick(homes, 22):
            delay = int(
                rng(self.seed, STREETLIGHT.stream, 9999, int(segment.street.id[-3:])).integers(
                    -90, 90
                )
            )
            for k in range(4):
                n += 1
                local = f"sl-{n:03d}"
                side = 7.0 if k % 2 == 0 else -7.0
                point = segment.point(segment.length * (k + 0.5) / 4, side)
                args = self._device_args(
                    local, "Streetlight", f"Lampadaire {segment.street.name} {k + 1}", point
                )
                self.devices.append(
                    StreetlightController(
                        **args,
                        street_kind=segment.street.kind,
                        circuit=f"C-{segment.street.id}",
                        circuit_delay=delay,
                        phase=int(self._g.integers(3600)),
                    )
                )

    def _place_greenspaces(self) -> None:
        greens = self.layout.green_spaces
        biggest = max(greens, key=lambda p: _area(p.polygon))
        for n, park in enumerate(greens + [biggest]):
            cx = sum(x for x, _ in park.polygon) / len(park.polygon)
            cy = sum(y for _, y in park.polygon) / len(park.polygon)
            point = (cx + float(self._g.uniform(-25, 25)), cy + float(self._g.uniform(-25, 25)))
            args = self._device_args(
                f"sp-{n + 1:02d}", "GreenspaceRecord", f"Sonde {park.name}", point
            )
            self.devices.append(
                SoilProbe(
                    **args,
                    garden_id=entity_id("Garden", park.id),
                    field_capacity=float(self._g.uniform(0.28, 0.34)),
                    wilting_point=float(self._g.uniform(0.09, 0.13)),
                    depth_mm=float(self._g.uniform(250, 350)),
                    anchor=self.anchor,
                )
            )
        hall = next(b for b, _ in self.public_buildings if "ville" in (b.name or ""))
        args = self._device_args(
            "ws-01", "WeatherObserved", "Station météo de l'hôtel de ville", hall.centroid
        )
        self.devices.append(WeatherStation(**args))

    def _place_utilities(self) -> None:
        near: list[Segment] = []
        for building, _ in self.public_buildings[-4:]:
            near.append(
                min(self.layout.segments, key=lambda s: math.dist(s.midpoint, building.centroid))
            )
        central = sorted(self.layout.segments, key=lambda s: math.hypot(*s.midpoint))[4:40]
        near += self._pick(central, 2)
        for n, segment in enumerate(near):
            point = segment.point(segment.length * 0.7, -4.0)
            label = f"Borne {segment.street.name}"
            args = self._device_args(f"ev-{n + 1:02d}", "EVChargingStation", label, point)
            self.devices.append(
                ChargingStation(
                    **args, capacity=4 if n < 2 else 2, phase=int(self._g.integers(3600))
                )
            )
        homes = [s for s in self.layout.segments if s.street.kind == "residential"]
        kinds = ["inorganic"] * 16 + ["plastic"] * 10 + ["paper"] * 8 + ["glass"] * 6
        fills = {
            "inorganic": (0.15, 0.3),
            "plastic": (0.1, 0.2),
            "paper": (0.06, 0.14),
            "glass": (0.03, 0.07),
        }
        for n, (segment, kind) in enumerate(zip(self._pick(homes, len(kinds)), kinds, strict=True)):
            point = segment.point(segment.length / 2, -5.0)
            label = f"Conteneur {kind} {segment.street.name}"
            args = self._device_args(f"wc-{n + 1:02d}", "WasteContainer", label, point)
            self.devices.append(
                WasteSensor(
                    **args,
                    waste_kind=kind,
                    daily_fill=float(self._g.uniform(*fills[kind])),
                    round_hour=float(self._g.uniform(6, 10)),
                    phase=int(self._g.integers(3600)),
                )
            )

    def _plant_scenario(self) -> Scenario:
        g = rng(self.seed, _STREAM, 1)
        spots = [d for d in self.devices if isinstance(d, ParkingSpotSensor)]
        homes = [s for s in spots if s.usage == "residential"]
        shops = [s for s in spots if s.usage == "commercial"]
        picked = [homes[int(k)] for k in g.permutation(len(homes))[: len(plan.LONG_STAYS) + 2]]
        stays = []
        for spot, (offset, hours, jitter) in zip(picked, plan.LONG_STAYS, strict=False):
            arrival = self.origin_s + int((offset + g.uniform(-1, 1)) * 3600)
            departure = arrival + int((hours + g.uniform(-jitter, jitter)) * 3600)
            spot.stays.append(Stay(arrival, departure))
            stays.append(
                LongStay(
                    spot.entity_id, spot.device_id, from_seconds(arrival), from_seconds(departure)
                )
            )
        spare = picked[len(plan.LONG_STAYS) :]
        stuck = []
        for mode, offset, usage in plan.STUCK:
            spot = spare.pop() if usage == "residential" else shops[int(g.integers(len(shops)))]
            since = self.origin_s + int(offset * 3600 + g.uniform(0, 1800))
            spot.stuck = (mode, since)
            stuck.append(StuckSensor(spot.entity_id, spot.device_id, mode, from_seconds(since)))
        lamps = [d for d in self.devices if isinstance(d, StreetlightController)]
        failed = []
        for offset, k in zip(plan.LAMP_FAILURES, g.permutation(len(lamps)), strict=False):
            lamp = lamps[int(k)]
            lamp.failed_at = self.origin_s + int(offset * 3600 + g.uniform(0, 3600))
            failed.append(FailedLamp(lamp.entity_id, lamp.device_id, from_seconds(lamp.failed_at)))
        station = next(d for d in self.devices if isinstance(d, ChargingStation))
        start = self.origin_s + int(plan.CHARGER_OUTAGE[0] * 3600)
        station.outage = (start, start + int(plan.CHARGER_OUTAGE[1] * 3600))
        outage = ChargerOutage(station.entity_id, station.device_id, from_seconds(start),
                               from_seconds(station.outage[1]))  # fmt: skip
        return Scenario(self.origin, tuple(stays), tuple(stuck), tuple(failed), (outage,))

    # -- outputs -----------------------------------------------------------------------

    def geography(self) -> dict[str, dict[str, Any]]:
        """The map as GeoJSON FeatureCollections, plus ``devices`` (one Point per device)."""
        out = feature_collections(self.layout)
        out["devices"] = {
            "type": "FeatureCollection",
            "features": [
                {
                    "type": "Feature",
                    "geometry": {"type": "Point", "coordinates": [d.lon, d.lat]},
                    "properties": {
                        "device_id": d.device_id,
                        "kind": d.kind.key,
                        "entity_id": d.entity_id,
                        "name": d.name,
                    },
                }  # fmt: skip
                for d in self.devices
            ],
        }
        return out

    def entities(self) -> list[dict[str, Any]]:
        """Every static NGSI-LD entity (normalized), with device values just before the origin."""
        out = [zone.entity() for zone in self.zones]
        out += [_building_entity(b, i) for b, i in self.public_buildings]
        for park in self.layout.green_spaces:
            out.append({
                "id": entity_id("Garden", park.id),
                "type": "Garden",
                "name": prop(park.name),
                "category": prop([park.category]),
                "areaServed": prop(park.district),
                "location": geo(polygon_geojson(park.polygon)),
                "openingHours": prop("Mo-Su 08:00-20:00"),
            })  # fmt: skip
        out += [d.entity(d.latest(self.origin_s)) for d in self.devices]
        return out

    def readings(self, start: datetime, end: datetime) -> Iterator[Reading]:
        """Every reading with start <= time < end, in time order (then device order)."""
        lo, hi = _ceil_seconds(start), _ceil_seconds(end)
        for day in day_range(lo, hi):
            a, b = max(lo, day * DAY), min(hi, (day + 1) * DAY)
            batch: list[tuple[int, int, Device, dict[str, Any]]] = []
            for order, device in enumerate(self.devices):
                batch.extend((t, order, device, m) for t, m in device.window(a, b))
            batch.sort(key=lambda e: (e[0], e[1]))
            moments: dict[int, datetime] = {}
            for t, _, device, measures in batch:
                moment = moments.get(t)
                if moment is None:
                    moment = moments[t] = from_seconds(t)
                yield Reading(
                    moment, self.apikeys[device.kind.key], device.device_id, dict(measures)
                )

    def device_readings(self, device_id: str, start: datetime, end: datetime) -> list[Reading]:
        """The readings of one device with start <= time < end."""
        device = self.by_id[device_id]
        key = self.apikeys[device.kind.key]
        lo, hi = _ceil_seconds(start), _ceil_seconds(end)
        return [Reading(from_seconds(t), key, device_id, dict(m)) for t, m in device.window(lo, hi)]

    def count_readings(self, start: datetime, end: datetime) -> int:
        """How many readings :meth:`readings` yields for [start, end)."""
        lo, hi = _ceil_seconds(start), _ceil_seconds(end)
        return sum(d.count(lo, hi) for d in self.devices)

    def kind_of(self, device_id: str) -> Kind:
        """The kind of a device."""
        return self.by_id[device_id].kind


def _ceil_seconds(moment: datetime) -> int:
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return math.ceil(moment.timestamp())


def _area(points: list[Coord]) -> float:
    xs, ys = np.array([p[0] for p in points]), np.array([p[1] for p in points])
    return float(abs(np.dot(xs, np.roll(ys, 1)) - np.dot(ys, np.roll(xs, 1))) / 2)


def _building_entity(building: Building, building_id: str) -> dict[str, Any]:
    school = building.category == "school"
    pupils = round(building.area * building.floors / 12) if school else None
    entity: dict[str, Any] = {
        "id": building_id,
        "type": "Building",
        "name": prop(building.name),
        "category": prop([building.category]),
        "address": prop(address(building.street, building.number, building.district)),
        "location": geo(polygon_geojson(building.footprint)),
        "floorsAboveGround": prop(building.floors),
        "floorsBelowGround": prop(0),
    }
    if pupils is not None:
        entity["peopleCapacity"] = prop(pupils)
        entity["openingHours"] = prop(["Mo,Tu,Th,Fr 08:30-16:30"])
    return entity
