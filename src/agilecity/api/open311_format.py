"""Open311 GeoReport v2 documents in JSON and XML (UTF-8, with the XML declaration)."""

from __future__ import annotations

import re
from typing import Any
from xml.etree import ElementTree

import orjson
from starlette.responses import Response

from agilecity.reports.categories import Category
from agilecity.reports.model import CLOSED

JSON_TYPE, XML_TYPE = "application/json; charset=utf-8", "text/xml; charset=utf-8"
_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
#: The members of a service request, in the spec's order.
REQUEST_FIELDS = (
    "service_request_id",
    "status",
    "status_notes",
    "service_name",
    "service_code",
    "description",
    "agency_responsible",
    "service_notice",
    "requested_datetime",
    "updated_datetime",
    "expected_datetime",
    "address",
    "address_id",
    "zipcode",
    "lat",
    "long",
    "media_url",
)


def _element(parent: ElementTree.Element, name: str, value: Any) -> None:
    child = ElementTree.SubElement(parent, name)
    if isinstance(value, dict):
        for key, item in value.items():
            _element(child, key, item)
    elif isinstance(value, list):
        singular = {
            "attributes": "attribute",
            "values": "value",
            "endpoints": "endpoint",
            "formats": "format",
        }.get(name, "item")
        for item in value:
            _element(child, singular, item)
    elif isinstance(value, bool):
        child.text = "true" if value else "false"
    elif value is not None:
        child.text = _NOT_XML.sub("", str(value))


def xml_document(root: str, item: str | None, content: Any) -> bytes:
    """``content`` as XML: a list becomes ``<root><item>...</item>...</root>``, a dict
    ``<root><key>...</key></root>``."""
    top = ElementTree.Element(root)
    if isinstance(content, list):
        for entry in content:
            _element(top, item or "item", entry)
    else:
        for key, value in content.items():
            _element(top, key, value)
    body: bytes = ElementTree.tostring(top, "utf-8", xml_declaration=False)
    return b'<?xml version="1.0" encoding="UTF-8"?>\n' + body


def render(
    content: Any, xml: bool, root: str, item: str | None = None, status: int = 200
) -> Response:
    """A response in the format the path's extension asked for."""
    if xml:
        return Response(xml_document(root, item, content), status, media_type=XML_TYPE)
    return Response(orjson.dumps(content), status, media_type=JSON_TYPE)


def render_errors(code: int, description: str, xml: bool) -> Response:
    """The spec's error list with one error."""
    errors = [{"code": code, "description": description}]
    return render(errors, xml, "errors", "error", status=code)


def service_item(category: Category) -> dict[str, Any]:
    """GET services: one service."""
    return {
        "service_code": category.code,
        "service_name": category.name,
        "description": category.description,
        "metadata": category.metadata,
        "type": "realtime",
        "keywords": ", ".join(category.keywords),
        "group": category.group,
    }


def service_definition(category: Category) -> dict[str, Any]:
    """GET services/{code}: the service definition with its attributes."""
    attributes = [
        {
            "variable": a.variable,
            "code": a.code,
            "datatype": a.datatype,
            "required": a.required,
            "datatype_description": a.datatype_description,
            "order": a.order,
            "description": a.description,
            "values": [{"key": key, "name": name} for key, name in a.values],
        }
        for a in sorted(category.attributes, key=lambda a: a.order)
    ]
    return {"service_code": category.code, "attributes": attributes}


def request_item(entity: dict[str, Any]) -> dict[str, Any]:
    """GET requests: one service request from its public entity (keyValues)."""
    location = entity.get("location") or {}
    coordinates = location.get("coordinates") or [None, None]
    workflow = entity.get("workflow_status", "")
    notice = "Closed: " + workflow.replace("_", " ") if workflow in CLOSED else None
    values = {
        **{name: entity.get(name) for name in REQUEST_FIELDS},
        "address": entity.get("address_string"),
        "lat": coordinates[1],
        "long": coordinates[0],
        "service_notice": notice,
    }
    return {name: values[name] for name in REQUEST_FIELDS}
