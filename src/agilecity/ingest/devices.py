"""Device groups and devices, in the FIWARE IoT Agent's northbound JSON model.

A *group* (IoT Agent "config group" / "service") holds an API key, the entity type and
default attribute mappings of its devices; a *device* maps a device id to an entity
(``entity_name``, ``entity_type``) and its measures (``object_id``) to attributes
(``name``, ``type``, ``metadata.unitCode``). Both are kept as store records, per tenant
(the ``fiware-service`` header). The same JSON fields as the IoT Agent are accepted and
returned, so FIWARE's provisioning requests work unchanged.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from agilecity.broker.broker import Broker
from agilecity.errors import AlreadyExistsError, BadRequestDataError, ResourceNotFoundError
from agilecity.store.base import Record

GROUP = "iot_group"
DEVICE = "iot_device"
DEFAULT_RESOURCE = "/iot/d"
_ID = re.compile(r"^[A-Za-z0-9_\-.:@]{1,128}$")
_ATTR_TYPES = {
    "Number", "Float", "Integer", "Boolean", "Text", "String", "DateTime", "Property",
    "Relationship", "GeoProperty", "geo:point", "geo:json", "Object", "Array",
}  # fmt: skip
_GROUP_FIELDS = {
    "apikey", "resource", "entity_type", "cbroker", "attributes", "static_attributes", "lazy",
    "commands", "explicitAttrs", "timestamp", "description", "service", "subservice",
    "service_path", "trust", "timezone", "protocol", "transport", "internal_attributes",
    "autoprovision", "entityNameExp", "payloadType", "ngsiVersion", "defaultEntityNameConjunction",
}  # fmt: skip
_DEVICE_FIELDS = {
    "device_id", "entity_name", "entity_type", "apikey", "protocol", "transport", "timezone",
    "attributes", "static_attributes", "lazy", "commands", "explicitAttrs", "timestamp",
    "endpoint", "service", "service_path", "internal_attributes", "polling", "ngsiVersion",
    "payloadType", "description",
}  # fmt: skip


class DeviceNotFoundError(ResourceNotFoundError):
    """No such device."""

    title = "Device not found"
    iot_name = "DEVICE_NOT_FOUND"


class GroupNotFoundError(ResourceNotFoundError):
    """No such device group."""

    title = "Device group not found"
    iot_name = "DEVICE_GROUP_NOT_FOUND"


class DuplicateGroupError(AlreadyExistsError):
    """A group with this resource and API key exists."""

    iot_name = "DUPLICATE_GROUP"


@dataclass(frozen=True)
class Mapping:
    """How one measure of a device becomes one attribute of its entity."""

    object_id: str
    name: str
    type: str
    unit_code: str | None
    metadata: dict[str, Any]


def _text(doc: dict[str, Any], key: str, *, required: bool = False, pattern: bool = True) -> str:
    value = doc.get(key)
    if value is None or value == "":
        if required:
            raise BadRequestDataError(f"{key} is required")
        return ""
    if not isinstance(value, str) or len(value) > 256:
        raise BadRequestDataError(f"{key} must be a string of at most 256 characters")
    if pattern and not _ID.match(value):
        raise BadRequestDataError(f"{key} {value[:40]!r} holds characters that are not allowed")
    return value


def _check_attributes(doc: dict[str, Any], key: str) -> None:
    items = doc.get(key, [])
    if not isinstance(items, list):
        raise BadRequestDataError(f"{key} must be an array")
    for item in items:
        if not isinstance(item, dict):
            raise BadRequestDataError(f"each of {key} must be an object")
        name = item.get("name")
        if not isinstance(name, str) or not name or name in ("id", "type"):
            raise BadRequestDataError(f"each of {key} needs a name (not id or type)")
        kind = item.get("type")
        if not isinstance(kind, str) or not kind:
            raise BadRequestDataError(f"attribute {name!r} needs a type")
        if key == "attributes" and kind not in _ATTR_TYPES:
            raise BadRequestDataError(
                f"attribute {name!r}: type {kind!r} is not one of {', '.join(sorted(_ATTR_TYPES))}"
            )
        object_id = item.get("object_id", name)
        if not isinstance(object_id, str) or not object_id:
            raise BadRequestDataError(f"attribute {name!r}: object_id must be a string")
        metadata = item.get("metadata", {})
        if not isinstance(metadata, dict):
            raise BadRequestDataError(f"attribute {name!r}: metadata must be an object")
        if key == "static_attributes" and "value" not in item:
            raise BadRequestDataError(f"static attribute {name!r} needs a value")


def _check_fields(doc: object, allowed: set[str], what: str) -> dict[str, Any]:
    if not isinstance(doc, dict):
        raise BadRequestDataError(f"a {what} must be a JSON object")
    unknown = sorted(set(doc) - allowed)
    if unknown:
        raise BadRequestDataError(f"unknown {what} field(s): {', '.join(unknown)}")
    for key in ("attributes", "static_attributes", "lazy", "commands"):
        _check_attributes(doc, key)
    if "explicitAttrs" in doc and not isinstance(doc["explicitAttrs"], bool):
        raise BadRequestDataError("explicitAttrs must be true or false")
    return doc


def check_group(doc: object) -> dict[str, Any]:
    """A validated group document (resource defaults to /iot/d); raises BadRequestData."""
    group = dict(_check_fields(doc, _GROUP_FIELDS, "group"))
    _text(group, "apikey", required=True)
    _text(group, "entity_type", required=True)
    resource = _text(group, "resource", pattern=False) or DEFAULT_RESOURCE
    if not resource.startswith("/"):
        raise BadRequestDataError("resource must be a path starting with /")
    group["resource"] = resource
    return group


def check_device(doc: object) -> dict[str, Any]:
    """A validated device document; raises BadRequestData."""
    device = dict(_check_fields(doc, _DEVICE_FIELDS, "device"))
    _text(device, "device_id", required=True)
    _text(device, "apikey")
    _text(device, "entity_type")
    name = _text(device, "entity_name", pattern=False)
    if name and ":" not in name:
        raise BadRequestDataError("entity_name must be a URI (e.g. urn:ngsi-ld:Type:id)")
    return device


def group_key(resource: str, apikey: str) -> str:
    """The record key of a group: (resource, apikey) is unique per tenant."""
    return f"{resource}|{apikey}"


def mappings(device: dict[str, Any], group: dict[str, Any] | None) -> dict[str, Mapping]:
    """object_id -> Mapping, the device's own attributes overriding its group's."""
    result: dict[str, Mapping] = {}
    for source in (group or {}, device):
        for item in source.get("attributes", []):
            metadata = dict(item.get("metadata") or {})
            unit = metadata.pop("unitCode", None)
            unit_code = unit.get("value") if isinstance(unit, dict) else unit
            result[item.get("object_id", item["name"])] = Mapping(
                item.get("object_id", item["name"]),
                item["name"],
                item["type"],
                unit_code if isinstance(unit_code, str) else None,
                metadata,
            )
    return result


class DeviceRegistry:
    """Provisioning operations on groups and devices, kept as store records."""

    def __init__(self, broker: Broker) -> None:
        self.broker = broker

    # groups

    async def create_groups(self, tenant: str, payload: object) -> list[str]:
        """POST /iot/services: ``{"services": [...]}``; all validated before any is stored."""
        groups = [check_group(g) for g in _items(payload, "services")]
        keys = [group_key(g["resource"], g["apikey"]) for g in groups]
        if len(set(keys)) != len(keys):
            raise BadRequestDataError("the same (resource, apikey) appears twice")
        for key in keys:
            if await self.broker.get_record(GROUP, tenant, key) is not None:
                resource, _, apikey = key.partition("|")
                raise DuplicateGroupError(
                    f"a group with resource {resource!r} and apikey {apikey!r} already exists"
                )
        for key, group in zip(keys, groups, strict=True):
            await self.broker.put_record(Record(GROUP, tenant, key, group), create=True)
        return keys

    async def list_groups(self, tenant: str) -> list[dict[str, Any]]:
        """GET /iot/services."""
        return [r.doc for r in await self.broker.list_records(GROUP, tenant)]

    async def update_group(
        self, tenant: str, resource: str, apikey: str, changes: object
    ) -> dict[str, Any]:
        """PUT /iot/services?resource=&apikey=: merge the given fields."""
        key = group_key(resource, apikey)
        record = await self.broker.get_record(GROUP, tenant, key)
        if record is None:
            raise GroupNotFoundError(f"no group with resource {resource!r} and this apikey")
        if not isinstance(changes, dict):
            raise BadRequestDataError("the body must be a JSON object")
        merged = check_group({**record.doc, **changes, "resource": resource, "apikey": apikey})
        await self.broker.put_record(Record(GROUP, tenant, key, merged), create=False)
        return merged

    async def delete_group(self, tenant: str, resource: str, apikey: str) -> None:
        """DELETE /iot/services?resource=&apikey=."""
        if not await self.broker.delete_record(GROUP, tenant, group_key(resource, apikey)):
            raise GroupNotFoundError(f"no group with resource {resource!r} and this apikey")

    # devices

    async def create_devices(self, tenant: str, payload: object) -> list[str]:
        """POST /iot/devices: ``{"devices": [...]}``; all validated before any is stored."""
        devices = [check_device(d) for d in _items(payload, "devices")]
        ids = [d["device_id"] for d in devices]
        if len(set(ids)) != len(ids):
            raise BadRequestDataError("the same device_id appears twice")
        groups = await self.list_groups(tenant)
        for device in devices:
            group = _group_of(groups, device)
            if group is None and not device.get("entity_type"):
                raise BadRequestDataError(
                    f"device {device['device_id']!r} has no entity_type and no group gives one"
                )
            if group is not None and not device.get("apikey"):
                device["apikey"] = group["apikey"]  # bound to its group from now on
            if await self.broker.get_record(DEVICE, tenant, device["device_id"]) is not None:
                raise AlreadyExistsError(f"device {device['device_id']!r} already exists")
        for device in devices:
            await self.broker.put_record(
                Record(DEVICE, tenant, device["device_id"], device), create=True
            )
        return ids

    async def list_devices(self, tenant: str) -> list[dict[str, Any]]:
        """GET /iot/devices."""
        return [r.doc for r in await self.broker.list_records(DEVICE, tenant)]

    async def get_device(self, tenant: str, device_id: str) -> dict[str, Any]:
        """GET /iot/devices/{id}."""
        record = await self.broker.get_record(DEVICE, tenant, device_id)
        if record is None:
            raise DeviceNotFoundError(f"no device {device_id!r}")
        return record.doc

    async def update_device(self, tenant: str, device_id: str, changes: object) -> dict[str, Any]:
        """PUT /iot/devices/{id}: merge fields; the id, entity name and type stay."""
        current = await self.get_device(tenant, device_id)
        if not isinstance(changes, dict):
            raise BadRequestDataError("the body must be a JSON object")
        for fixed in ("device_id", "entity_name", "entity_type"):
            if fixed in changes and changes[fixed] != current.get(fixed):
                raise BadRequestDataError(f"{fixed} cannot be changed")
        merged = check_device({**current, **changes})
        await self.broker.put_record(Record(DEVICE, tenant, device_id, merged), create=False)
        return merged

    async def delete_device(self, tenant: str, device_id: str) -> None:
        """DELETE /iot/devices/{id} (the entity and its history stay)."""
        if not await self.broker.delete_record(DEVICE, tenant, device_id):
            raise DeviceNotFoundError(f"no device {device_id!r}")


def _group_of(groups: list[dict[str, Any]], device: dict[str, Any]) -> dict[str, Any] | None:
    """A device's group: by its apikey, else the one group of its entity type."""
    apikey = device.get("apikey")
    if apikey:
        return next((g for g in groups if g["apikey"] == apikey), None)
    same_type = [g for g in groups if g.get("entity_type") == device.get("entity_type")]
    if len(same_type) > 1:
        raise BadRequestDataError(
            f"device {device['device_id']!r}: several groups serve entity type "
            f"{device.get('entity_type')!r}; give the device an apikey"
        )
    return same_type[0] if same_type else None


def _items(payload: object, key: str) -> list[Any]:
    if not isinstance(payload, dict) or not isinstance(payload.get(key), list):
        raise BadRequestDataError(f'the body must be {{"{key}": [...]}}')
    items: list[Any] = payload[key]
    if not items:
        raise BadRequestDataError(f"{key} is empty")
    if len(items) > 1000:
        raise BadRequestDataError(f"at most 1000 {key} per request")
    return items
