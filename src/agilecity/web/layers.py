"""The map's built-in layers, one per Smart Data Models type the platform knows, as data.

City services add their own layers through their ``SERVICE.panel`` (``services.base.Layer``);
a service layer of the same entity type replaces the built-in one. Colours were chosen for
contrast on the light basemap (WCAG 2.1 non-text contrast, 3:1) and are always paired with
a legend label, never the only cue.
"""

from __future__ import annotations

from agilecity.services.base import Layer

STATUS_OK, STATUS_WARN, STATUS_BAD, STATUS_OFF = "#1a7f37", "#b35900", "#c62828", "#6e7781"

BUILTIN_LAYERS: tuple[Layer, ...] = (
    Layer("ParkingSpot", "status",
          colours=(("free", STATUS_OK), ("occupied", STATUS_BAD), ("closed", STATUS_OFF))),
    Layer("NoiseLevelObserved", "LAeq", chart=("LAeq", "LAmax"), unit="dB(A)",
          bands=((0.0, "#2e7d32"), (55.0, "#c49000"), (65.0, "#e53935"), (75.0, "#6a1b9a"))),
    Layer("Streetlight", "status", chart=("powerConsumption", "illuminanceLevel"),
          colours=(("ok", STATUS_OK), ("defectiveLamp", STATUS_WARN),
                   ("brokenLantern", STATUS_BAD), ("columnIssue", STATUS_BAD))),
    Layer("WasteContainer", "fillingLevel", chart=("fillingLevel",),
          bands=((0.0, STATUS_OK), (0.7, STATUS_WARN), (0.9, STATUS_BAD))),
    Layer("EVChargingStation", "status", chart=("availableCapacity",),
          colours=(("working", STATUS_OK), ("outOfService", STATUS_BAD),
                   ("withIncidence", STATUS_WARN))),
    Layer("GreenspaceRecord", "soilMoistureVwc", chart=("soilMoistureVwc", "soilTemperature"),
          bands=((0.0, STATUS_BAD), (0.15, STATUS_WARN), (0.25, STATUS_OK))),
    Layer("WeatherObserved", chart=("temperature", "relativeHumidity", "windSpeed",
                                    "precipitation"), colour="#1f5fa8"),
    Layer("AirQualityObserved", "co2", chart=("co2", "temperature", "relativeHumidity"),
          unit="ppm", bands=((0.0, STATUS_OK), (800.0, STATUS_WARN), (1500.0, STATUS_BAD))),
    Layer("Building", colour="#7a5c3e", shown=False),
    Layer("Garden", colour="#2e7d32", shown=False),
    Layer("service_requests", "status",
          colours=(("open", STATUS_WARN), ("closed", STATUS_OK))),
)  # fmt: skip


def map_layers(service_layers: list[tuple[str, Layer]]) -> list[tuple[str, Layer]]:
    """(owning service or "", layer): the built-in layers, replaced or extended by services'."""
    by_type = {layer.entity_type: ("", layer) for layer in BUILTIN_LAYERS}
    for service, layer in service_layers:
        by_type[layer.entity_type] = (service, layer)
    return list(by_type.values())
