"""What the gateway is told about the town's devices (FIWARE IoT Agent northbound JSON),
and how readings are encoded on the wire (UltraLight 2.0).

``device_groups`` is the body of ``POST /iot/services`` (one group per device kind, each
with its own API key), ``devices`` the body of ``POST /iot/devices``. An attribute maps a
device's short ``object_id`` to an NGSI-LD attribute ``name`` of IoT Agent ``type`` Text,
Number, Integer, Boolean or DateTime, with the UN/CEFACT unit in ``metadata.unitCode``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from agilecity.ingest.simulator.base import Kind, Measure, Reading

if TYPE_CHECKING:
    from agilecity.ingest.simulator.town import Town

PROTOCOL = "PDI-IoTA-UltraLight"
RESOURCE = "/iot/d"


def attribute_mapping(measure: Measure) -> dict[str, Any]:
    """The IoT Agent attribute entry of one measure."""
    out: dict[str, Any] = {
        "object_id": measure.object_id,
        "name": measure.name,
        "type": measure.type,
    }
    if measure.unit is not None:
        out["metadata"] = {"unitCode": {"type": "Text", "value": measure.unit}}
    return out


def device_groups(town: Town, cbroker: str = "http://127.0.0.1:1026") -> dict[str, Any]:
    """The ``{"services": [...]}`` body: one device group per kind of device."""
    kinds: dict[str, Kind] = {}
    for device in town.devices:
        kinds.setdefault(device.kind.key, device.kind)
    return {
        "services": [
            {
                "apikey": town.apikeys[kind.key],
                "cbroker": cbroker,
                "entity_type": kind.entity_type,
                "resource": RESOURCE,
                "attributes": [attribute_mapping(m) for m in kind.measures],
            }
            for kind in kinds.values()
        ]
    }


def devices(town: Town) -> dict[str, Any]:
    """The ``{"devices": [...]}`` body: every device with its entity and attribute mapping."""
    return {
        "devices": [
            {
                "device_id": d.device_id,
                "apikey": town.apikeys[d.kind.key],
                "entity_name": d.entity_id,
                "entity_type": d.kind.entity_type,
                "protocol": PROTOCOL,
                "transport": "MQTT",
                "attributes": [attribute_mapping(m) for m in d.kind.measures],
                "static_attributes": [],
            }
            for d in town.devices
        ]
    }


def topic(reading: Reading) -> str:
    """The MQTT topic a device publishes a reading on: ``/<apikey>/<device_id>/attrs``."""
    return f"/{reading.apikey}/{reading.device_id}/attrs"


def ultralight(reading: Reading) -> str:
    """UltraLight 2.0 text of a reading, timestamp first: ``2026-12-01T10:15:00Z|st|occupied``."""
    parts = [reading.time.strftime("%Y-%m-%dT%H:%M:%SZ")]
    for key, value in reading.measures.items():
        text = ("true" if value else "false") if isinstance(value, bool) else str(value)
        if any(c in text for c in "|#") or any(c in key for c in "|#"):
            raise ValueError(f"UltraLight cannot carry {key!r}={text!r}")
        parts.append(key)
        parts.append(text)
    return "|".join(parts)
