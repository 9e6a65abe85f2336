"""The entity every scenario writes, reads and queries (and the raw-store ceiling inserts).

Modelled on Stellio's load-test entity: 6 properties (temperature with two datasetIds, the
raw and the calibrated reading), 1 relationship and 1 GeoProperty. Values are a pure
function of the entity's index, spread so that the benchmark queries match a known share:
``Q`` about 15 % of the entities, ``near;maxDistance==500`` about 250 of 100,000 (the
entities cover ±0.1° around Roubaix, about 22 × 14 km).
"""

from __future__ import annotations

import hashlib
from typing import Any

TYPE = "Sensor"
CENTER = (3.17, 50.69)
SPREAD = 0.1  # degrees either side of CENTER
RAW = "urn:ngsi-ld:Dataset:raw"
CALIBRATED = "urn:ngsi-ld:Dataset:calibrated"
Q = 'temperature>30;status=="ok"'  # P(raw > 30) = 1/6, times 90 % "ok": 15 %
STATUSES = ("ok",) * 90 + ("maintenance",) * 7 + ("fault",) * 3


def seed_id(prefix: str, i: int | str) -> str:
    """The id of the i-th entity a run seeds under ``prefix``."""
    return f"urn:ngsi-ld:{TYPE}:{prefix}-{i}"


def unit_values(i: int) -> tuple[float, float, float, float]:
    """Four independent pseudo-random numbers in [0, 1) for entity i (deterministic)."""
    digest = hashlib.blake2b(i.to_bytes(8, "little"), digest_size=16).digest()
    a, b, c, d = (int.from_bytes(digest[k : k + 4], "little") / 2**32 for k in (0, 4, 8, 12))
    return a, b, c, d


def point(i: int) -> list[float]:
    """Where entity i stands: uniform over the city-sized square."""
    _, _, x, y = unit_values(i)
    return [round(CENTER[0] + SPREAD * (2 * x - 1), 6), round(CENTER[1] + SPREAD * (2 * y - 1), 6)]


def entity(entity_id: str, i: int) -> dict[str, Any]:
    """The benchmark entity with index i (its values) and the given id."""
    t, h, _, _ = unit_values(i)
    observed = f"2026-11-30T08:{i % 60:02d}:00Z"
    temperature = round(5 + 30 * t, 2)
    return {
        "id": entity_id,
        "type": TYPE,
        "name": {"type": "Property", "value": f"Sensor {i}"},
        "status": {"type": "Property", "value": STATUSES[i % 100], "observedAt": observed},
        "temperature": [
            {
                "type": "Property",
                "value": temperature,
                "unitCode": "CEL",
                "observedAt": observed,
                "datasetId": RAW,
            },
            {
                "type": "Property",
                "value": round(temperature - 0.3, 2),
                "unitCode": "CEL",
                "observedAt": observed,
                "datasetId": CALIBRATED,
            },
        ],  # fmt: skip
        "humidity": {
            "type": "Property",
            "value": round(30 + 60 * h, 1),
            "unitCode": "P1",
            "observedAt": observed,
        },  # fmt: skip
        "pm10": {
            "type": "Property",
            "value": round(5 + 40 * h * t, 1),
            "unitCode": "GQ",
            "observedAt": observed,
        },  # fmt: skip
        "batteryLevel": {"type": "Property", "value": round(0.2 + 0.8 * (1 - t), 2)},
        "refBuilding": {"type": "Relationship", "object": f"urn:ngsi-ld:Building:b{i % 500}"},
        "location": {"type": "GeoProperty", "value": {"type": "Point", "coordinates": point(i)}},
    }
