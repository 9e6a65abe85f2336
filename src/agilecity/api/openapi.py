"""The platform's OpenAPI 3.1 description, built from data and served at GET /openapi.json.

It describes what the handlers really do: every route of ``app.py`` (NGSI-LD context
information, temporal and subscription APIs, the IoT Agent API when the gateway is on,
/auth and /audit, /health, /version, /metrics), the query parameters each handler reads,
the security the access rules (``api/access.py``) give each operation, the headers, loose
request schemas that accept any valid NGSI-LD payload, and every status code and body shape
a handler answers with. ``tests/security/test_openapi.py`` holds it to the app: the routes
and the description must match, and schemathesis checks the answers against it. Operation
ids are the ETSI NGSI-LD OpenAPI's (GS CIM 009 1.8) where ETSI names the operation.
"""

from __future__ import annotations

import functools
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response

from agilecity import __version__
from agilecity.api.access import EVERYONE, SESSION_COOKIE, roles_for

NGSI_LD = "/ngsi-ld/v1"
JSON, JSON_LD, GEO_JSON = "application/json", "application/ld+json", "application/geo+json"
MERGE_PATCH, TEXT = "application/merge-patch+json", "text/plain"
HTML, EVENT_STREAM = "text/html", "text/event-stream"
Schema = dict[str, Any]


def ref(kind: str, name: str) -> Schema:
    """A ``$ref`` to ``#/components/<kind>/<name>``."""
    return {"$ref": f"#/components/{kind}/{name}"}


def _schema(name: str) -> Schema:
    return ref("schemas", name)


def _list(items: Schema) -> Schema:
    return {"type": "array", "items": items}


def _object(required: tuple[str, ...] = (), **properties: Schema) -> Schema:
    body: Schema = {"type": "object", "properties": properties}
    if required:
        body["required"] = list(required)
    return body


STRING: Schema = {"type": "string"}
INTEGER: Schema = {"type": "integer"}
BOOLEAN: Schema = {"type": "boolean"}
ANY_OBJECT: Schema = {"type": "object"}
URI: Schema = {"type": "string", "pattern": r"^[A-Za-z][A-Za-z0-9+.\-]*:\S+$"}
DATE_TIME: Schema = {"type": "string", "format": "date-time"}

# -- schemas ----------------------------------------------------------------------------

SCHEMAS: dict[str, Schema] = {
    "ProblemDetails": {
        **_object(("type", "title", "status"), type=STRING, title=STRING, status=INTEGER,
                  detail=STRING, instance=STRING),
        "description": "RFC 9457 problem with an ETSI NGSI-LD error type URI "
        "(https://uri.etsi.org/ngsi-ld/errors/...; about:blank for 401 and 403).",
    },
    "IotError": _object(("name", "message"), name=STRING, message=STRING),
    "LdContext": {"anyOf": [STRING, ANY_OBJECT, _list({"anyOf": [STRING, ANY_OBJECT]})]},
    "EntityType": {"anyOf": [STRING, _list(STRING)]},
    "Entity": {
        **_object(("id", "type"), id=URI, type=_schema("EntityType"),
                  scope={"anyOf": [STRING, _list(STRING)]}),
        "description": "An NGSI-LD entity (normalized or concise); attributes are free-form "
        "here (any further member is allowed) and checked by the broker (clause 4.5).",
    },
    "EntityLd": {
        "allOf": [_schema("Entity"), _object(("@context",), **{"@context": _schema("LdContext")})]
    },
    "EntityBatch": _list(_schema("Entity")),
    "EntityLdBatch": _list(_schema("EntityLd")),
    "EntityFragment": ANY_OBJECT,
    "EntityOutput": {**_object(id=STRING, type=_schema("EntityType")),
                     "description": "id and type are left out when pick or omit say so."},
    "Feature": _object(("type",), type={"const": "Feature"}, id=STRING,
                       geometry={"type": ["object", "null"]}, properties=ANY_OBJECT),
    "FeatureCollection": _object(("type", "features"), type={"const": "FeatureCollection"},
                                 features=_list(_schema("Feature"))),
    "EntityIdList": _list(STRING),
    "BatchOperationResult": _object(
        ("success", "errors"), success=_list(STRING),
        errors=_list(_object(("entityId", "error"), entityId=STRING,
                             error=_schema("ProblemDetails"))),
    ),
    "UpdateResult": _object(
        ("updated", "notUpdated"), updated=_list(STRING),
        notUpdated=_list(_object(("attributeName", "reason"), attributeName=STRING,
                                 reason=STRING)),
    ),
    "Query": {
        **_object(("type",), type={"const": "Query"},
                  entities=_list(_object(id=STRING, idPattern=STRING, type=STRING)),
                  attrs=_list(STRING), q=STRING, scopeQ=STRING,
                  geoQ=_object(georel=STRING, geometry=STRING, coordinates={},
                               geoproperty=STRING)),
    },
    "EntityTypeList": _object(("id", "type", "typeList"), id=STRING,
                              type={"const": "EntityTypeList"}, typeList=_list(STRING)),
    "EntityTypeDetails": _object(("id", "type", "typeName", "attributeNames"), id=STRING,
                                 type={"const": "EntityType"}, typeName=STRING,
                                 attributeNames=_list(STRING)),
    "EntityTypeInfo": _object(
        ("id", "type", "typeName", "entityCount", "attributeDetails"), id=STRING,
        type={"const": "EntityTypeInfo"}, typeName=STRING, entityCount=INTEGER,
        attributeDetails=_list(_object(("id", "type", "attributeName", "attributeTypes"),
                                       id=STRING, type={"const": "Attribute"},
                                       attributeName=STRING, attributeTypes=_list(STRING))),
    ),
    "AttributeList": _object(("id", "type", "attributeList"), id=STRING,
                             type={"const": "AttributeList"}, attributeList=_list(STRING)),
    "Attribute": _object(("id", "type", "attributeName", "typeNames"), id=STRING,
                         type={"const": "Attribute"}, attributeName=STRING,
                         attributeCount=INTEGER, attributeTypes=_list(STRING),
                         typeNames=_list(STRING)),
    "ContextInfo": _object(("URL", "localId", "kind"), URL=STRING, localId=STRING,
                           kind={"enum": ["Hosted", "Cached", "ImplicitlyCreated"]},
                           createdAt=STRING, lastUsage={"type": ["string", "null"]},
                           numberOfHits=INTEGER),
    "ContextDocument": _object(("@context",), **{"@context": {}}),
    "Subscription": {
        **_object(id=URI, type={"const": "Subscription"}, entities=_list(ANY_OBJECT),
                  watchedAttributes=_list(STRING), q=STRING, notification=ANY_OBJECT),
        "description": "clause 5.2.12; the broker checks the members.",
    },
    "SubscriptionOutput": _object(id=STRING, type=STRING),
    "TemporalEntity": _object(("id", "type"), id=URI, type=_schema("EntityType")),
    "TemporalEntityOutput": _object(id=STRING, type=_schema("EntityType")),
    "Health": _object(("status",), status={"enum": ["ok", "starting"]}, gateway=ANY_OBJECT),
    "Version": _object(("name", "version", "ngsi-ld"), name=STRING, version=STRING,
                       **{"ngsi-ld": STRING}),
    "IotAbout": _object(("libVersion", "version"), libVersion=STRING, version=STRING,
                        baseRoot=STRING, mqtt=BOOLEAN),
    "ConfigGroups": _object(("services",), services=_list(ANY_OBJECT)),
    "ConfigGroupList": _object(("count", "services"), count=INTEGER,
                               services=_list(ANY_OBJECT)),
    "Devices": _object(("devices",), devices=_list(ANY_OBJECT)),
    "DeviceList": _object(("count", "devices"), count=INTEGER, devices=_list(ANY_OBJECT)),
    "Login": _object(("username", "password"), username=STRING, password=STRING),
    "Session": _object(("username", "role", "tenants"), username=STRING, role=STRING,
                       tenants=_list(STRING)),
    "AuditEntry": _object(("at", "actor", "role", "tenant", "method", "path", "status"),
                          at=STRING, actor=STRING, role=STRING, tenant=STRING, method=STRING,
                          path=STRING, status=INTEGER),
    "ServiceInfo": _object(("name", "title", "routes"), name=STRING, title=STRING,
                           routes=_list(STRING), panel={"type": ["object", "null"]}),
    "MeasureResult": _object(("entity", "written", "rejected"), entity=STRING,
                             written={}, rejected={}),
}  # fmt: skip

# -- parameters -------------------------------------------------------------------------


def _param(name: str, where: str, schema: Schema, description: str, **extra: Any) -> Schema:
    body: Schema = {"name": name, "in": where, "schema": schema, "description": description}
    if where == "path":
        body["required"] = True
    return {**body, **extra}


def _csv(items: Schema, description: str, name: str) -> Schema:
    """A comma-separated list parameter (``a,b,c``)."""
    return _param(name, "query", {**_list(items), "minItems": 1}, description,
                  style="form", explode=False)  # fmt: skip


def _enum(*values: str) -> Schema:
    return {"type": "string", "enum": list(values)}


def _query(name: str, schema: Schema, description: str, **extra: Any) -> Schema:
    return _param(name, "query", schema, description, **extra)


OPTIONS = ("keyValues", "simplified", "concise", "normalized", "sysAttrs")
TEMPORAL_OPTIONS = ("temporalValues", "aggregatedValues", "sysAttrs", "count")
PARAMETERS: dict[str, Schema] = {
    "entityId": _param("entityId", "path", STRING, "Entity id (a URI)."),
    "assetPath": _param("assetPath", "path", STRING, "File path under /static/."),
    "pageLang": _param("lang", "query", {"type": "string", "enum": ["fr", "en"]},
                       "Page language (remembered in a cookie); French by default."),
    "attrId": _param("attrId", "path", STRING, "Attribute name (expanded with the @context)."),
    "instanceId": _param("instanceId", "path", STRING, "Attribute instance id (a URI)."),
    "entityTypeName": _param("type", "path", STRING, "Entity type name."),
    "attributeName": _param("attrId", "path", STRING, "Attribute name."),
    "subscriptionId": _param("subscriptionId", "path", URI, "Subscription id (a URI)."),
    "contextId": _param("contextId", "path", STRING, "Local id or URL of a stored @context."),
    "deviceId": _param("deviceId", "path", STRING, "Device id."),
    "tenant": _param("NGSILD-Tenant", "header",
                     {"type": "string", "pattern": r"^[A-Za-z0-9_.:\-/]{1,128}$"},
                     "Tenant (clause 6.3.14); absent: the default tenant."),
    "link": _param("Link", "header", STRING,
                   'The @context: <URL>; rel="http://www.w3.org/ns/json-ld#context" '
                   "(GET, DELETE and application/json bodies)."),
    "fiwareService": _param("fiware-service", "header", STRING,
                            "Tenant of the IoT Agent API (NGSILD-Tenant is read too)."),
    "id": _csv(URI, "Entity ids.", "id"),
    "type": _query("type", STRING, "Entity type expression (clause 4.17)."),
    "idPattern": _query("idPattern", STRING, "Regular expression on entity ids (RE2 syntax)."),
    "attrs": _csv(STRING, "Attributes to match and return.", "attrs"),
    "pick": _csv(STRING, "Entity members to keep (id, type, scope, attributes).", "pick"),
    "omit": _csv(STRING, "Entity members to leave out.", "omit"),
    "q": _query("q", STRING, "Query language filter (clause 4.9)."),
    "scopeQ": _query("scopeQ", STRING, "Scope query (clause 4.19)."),
    "georel": _query("georel", STRING, "near;maxDistance==m, within, contains, intersects, "
                     "overlaps, disjoint, equals (clause 4.10)."),
    "geometry": _query("geometry", _enum("Point", "MultiPoint", "LineString",
                       "MultiLineString", "Polygon", "MultiPolygon"), "Geo-query geometry."),
    "coordinates": _query("coordinates", STRING, "Geo-query coordinates, as JSON."),
    "geoproperty": _query("geoproperty", STRING, "GeoProperty of the geo-query (location)."),
    "geometryProperty": _query("geometryProperty", STRING,
                               "GeoProperty of a GeoJSON Feature's geometry (location)."),
    "lang": _query("lang", STRING, "Preferred language of LanguageProperty values."),
    "limit": _query("limit", {"type": "integer", "minimum": 0},
                    "Page size; above max_page_size: 403 TooManyResults."),
    "offset": _query("offset", {"type": "integer", "minimum": 0}, "Page start."),
    "count": _query("count", BOOLEAN, "Add NGSILD-Results-Count."),
    "options": _csv(_enum(*OPTIONS, "count"), "Representation options.", "options"),
    "format": _query("format", _enum("normalized", "concise", "keyValues", "simplified"),
                     "Representation (instead of options)."),
    "local": _query("local", BOOLEAN, "Accepted; no effect (no context sources)."),
    "csf": _query("csf", STRING, "Accepted; no effect (no context source registrations)."),
    "details": _query("details", BOOLEAN, "Objects instead of a list of names."),
    "optionsNoOverwrite": _csv(_enum("noOverwrite"), "Keep existing attributes.", "options"),
    "optionsUpsert": _csv(_enum("update", "replace"), "Update or replace existing entities "
                          "(default replace).", "options"),
    "datasetId": _query("datasetId", URI, "The instance to delete (multi-attribute)."),
    "deleteAll": _query("deleteAll", BOOLEAN, "Delete every instance of the attribute."),
    "kind": _query("kind", _enum("Hosted", "Cached", "ImplicitlyCreated"), "Context kind."),
    "reload": _query("reload", BOOLEAN, "Re-fetch a cached context instead of dropping it."),
    "timerel": _query("timerel", _enum("before", "after", "between"), "Temporal relation."),
    "timeAt": _query("timeAt", DATE_TIME, "Time of timerel."),
    "endTimeAt": _query("endTimeAt", DATE_TIME, "End time of timerel=between."),
    "timeproperty": _query("timeproperty", _enum("observedAt", "createdAt", "modifiedAt"),
                           "Which time the temporal query uses (observedAt)."),
    "lastN": _query("lastN", {"type": "integer", "minimum": 1}, "Last N instances."),
    "aggrMethods": _csv(_enum("totalCount", "distinctCount", "sum", "avg", "min", "max",
                              "stddev", "sumsq"), "Aggregation methods.", "aggrMethods"),
    "aggrPeriodDuration": _query("aggrPeriodDuration", STRING,
                                 "ISO 8601 duration of aggregation periods (PT0S: one)."),
    "temporalOptions": _csv(_enum(*TEMPORAL_OPTIONS), "Temporal options.", "options"),
    "temporalFormat": _query("format", _enum("normalized", "temporalValues",
                             "aggregatedValues"), "Temporal representation."),
    "resource": _query("resource", STRING, "Resource of the config group (/iot/d)."),
    "apikey": _query("apikey", STRING, "API key of the config group.", required=True),
    "iotLimit": _query("limit", {"type": "integer", "minimum": 0}, "Page size (20)."),
    "iotOffset": _query("offset", {"type": "integer", "minimum": 0}, "Page start."),
    "k": _query("k", STRING, "API key of the device's group.", required=True),
    "i": _query("i", STRING, "Device id.", required=True),
    "t": _query("t", DATE_TIME, "Time of the measures (observedAt); now without it."),
    "d": _query("d", STRING, "UltraLight 2.0 payload (a|1|b|2)."),
    "since": _query("since", DATE_TIME, "Entries at or after this time."),
    "until": _query("until", DATE_TIME, "Entries before this time."),
    "actor": _query("actor", STRING, "Entries of this user or API key name."),
    "auditTenant": _query("tenant", STRING, "Entries of this tenant."),
    "auditLimit": _query("limit", {"type": "integer", "minimum": 1, "maximum": 1000},
                         "Page size (100)."),
    "auditOffset": _query("offset", {"type": "integer", "minimum": 0}, "Page start."),
}  # fmt: skip

# -- responses --------------------------------------------------------------------------

_ERRORS = {
    400: ("BadRequest", "BadRequestData or InvalidRequest."),
    401: ("Unauthorized", "Missing or invalid credentials (authentication on)."),
    403: ("Forbidden", "TooManyResults, or credentials without the right (authentication on)."),
    404: ("NotFound", "ResourceNotFound or NonexistentTenant."),
    405: ("MethodNotAllowed", "Method not allowed on this path (Allow lists the methods)."),
    406: ("NotAcceptable", "Accept lists no media type the operation produces."),
    409: ("Conflict", "AlreadyExists."),
    413: ("PayloadTooLarge", "The body exceeds max_body_bytes."),
    415: ("UnsupportedMediaType", "Content-Type not accepted."),
    503: ("LdContextNotAvailable", "A remote @context could not be fetched."),
}
RESPONSES: dict[str, Schema] = {
    name: {"description": text, "content": {JSON: {"schema": _schema("ProblemDetails")}}}
    for name, text in _ERRORS.values()
}
RESPONSES["IotError"] = {
    "description": "IoT Agent error (400, 401, 403, 404, 409, 413).",
    "content": {JSON: {"schema": _schema("IotError")}},
}
RESPONSES["Problem"] = {
    "description": "RFC 9457 problem (400, 401, 403, 413).",
    "content": {"application/problem+json": {"schema": _schema("ProblemDetails")}},
}
HEADERS: dict[str, Schema] = {
    "Location": {"description": "The created resource.", "required": True, "schema": STRING},
    "Link": {"description": "The @context of a JSON body.", "schema": STRING},
    "NGSILD-Results-Count": {"description": "Matches in total (count=true).",
                             "schema": INTEGER},
    "Set-Cookie": {"description": "The staff session cookie.", "schema": STRING},
}  # fmt: skip


def content(schema: Schema, *media_types: str) -> Schema:
    """A content map giving every media type the same schema (JSON by default)."""
    return {media: {"schema": schema} for media in media_types or (JSON,)}


def ok(description: str, schema: Schema | None = None, *media_types: str,
       headers: tuple[str, ...] = ()) -> Schema:  # fmt: skip
    """A success response, with a body when a schema is given."""
    response: Schema = {"description": description}
    if schema is not None:
        response["content"] = content(schema, *media_types)
    if headers:
        response["headers"] = {name: ref("headers", name) for name in headers}
    return response


def request_body(schema: Schema, *media_types: str) -> Schema:
    """A required request body (JSON by default)."""
    return {"required": True, "content": content(schema, *media_types)}


def ngsi_ld_body(schema: str, *, merge_patch: bool = False, ld_schema: str | None = None) -> Schema:
    """A request body as application/json (context in Link) or application/ld+json."""
    ld = _schema(ld_schema) if ld_schema else {
        "allOf": [_schema(schema), _object(("@context",), **{"@context": _schema("LdContext")})]
    }  # fmt: skip
    body = {JSON: {"schema": _schema(schema)}, JSON_LD: {"schema": ld}}
    if merge_patch:
        body[MERGE_PATCH] = {"schema": _schema(schema)}
    return {"required": True, "content": body}


# -- operations -------------------------------------------------------------------------

SECURED: list[dict[str, list[str]]] = [{"bearerAuth": []}, {"apiKey": []}, {"session": []}]
READ = (JSON, JSON_LD)
READ_GEO = (JSON, JSON_LD, GEO_JSON)


def operation(
    operation_id: str,
    summary: str,
    tag: str,
    responses: dict[int, Schema],
    *,
    params: tuple[str, ...] = (),
    body: Schema | None = None,
    errors: tuple[int, ...] = (),
) -> Schema:
    """One operation, its parameters referenced from components (errors: see ``secure``)."""
    op: Schema = {"operationId": operation_id, "summary": summary, "tags": [tag]}
    if params:
        op["parameters"] = [ref("parameters", name) for name in params]
    if body is not None:
        op["requestBody"] = body
    op["responses"] = {str(status): r for status, r in responses.items()}
    op["x-errors"] = list(errors)
    return op


def secure(path: str, method: str, op: Schema) -> Schema:
    """The operation's security, from the access rules (``api/access.py``), and its error
    responses in its API family's shape. Credentials are checked wherever they are given,
    so every operation may answer 401; anonymous visitors read the public entity types."""
    errors = {*op.pop("x-errors"), 401}
    roles = roles_for(method.upper(), path)
    if roles is EVERYONE:
        op["security"] = []
        if method != "get":
            errors.add(403)  # a session cookie writes only from the platform's own pages
    else:
        op["security"] = SECURED + ([{}] if "public" in roles else [])
        errors.add(403)
    for status in sorted(errors):
        if path.startswith(NGSI_LD):
            name = _ERRORS[status][0]
        elif path.startswith("/open311/"):
            name = "Open311Error"
        else:
            name = "IotError" if path.startswith("/iot/") else "Problem"
        op["responses"][str(status)] = ref("responses", name)
    return op


NGSI_READ = (400, 404, 406, 503)  # Link's @context may be unreachable: 503
NGSI_WRITE = (400, 404, 413, 415, 503)
ENTITY_READ = ("attrs", "pick", "omit", "options", "format", "lang")
SELECTION = ("id", "type", "idPattern", "attrs", "q", "scopeQ", "georel", "geometry",
             "coordinates", "geoproperty", "limit", "offset", "count", "local")  # fmt: skip
TEMPORAL = ("timerel", "timeAt", "endTimeAt", "timeproperty", "lastN", "aggrMethods",
            "aggrPeriodDuration", "temporalOptions", "temporalFormat")  # fmt: skip
T, L = "tenant", "link"
NO_CONTENT = {204: ok("Done.")}
ENTITIES = {200: ok("The entities.", {"anyOf": [_list(_schema("EntityOutput")),
                                                _schema("FeatureCollection")]},
                    *READ_GEO, headers=("Link", "NGSILD-Results-Count"))}  # fmt: skip
UPDATED = {204: ok("Every attribute was written."),
           207: ok("Some attributes were not written.", _schema("UpdateResult"))}  # fmt: skip
BATCH = {204: ok("Every entity was written."),
         207: ok("Some entities failed.", _schema("BatchOperationResult"))}  # fmt: skip
CREATED = {201: ok("Created.", headers=("Location",))}
BATCH_BODY = ngsi_ld_body("EntityBatch", ld_schema="EntityLdBatch")


def read(op_id: str, summary: str, tag: str, responses: dict[int, Schema], *params: str,
         errors: tuple[int, ...] = NGSI_READ, link: bool = True) -> Schema:  # fmt: skip
    """An NGSI-LD operation without a body: tenant and Link headers, then ``params``."""
    headers = (T, L) if link else (T,)
    return operation(op_id, summary, tag, responses, params=(*params, *headers), errors=errors)


def write(op_id: str, summary: str, tag: str, responses: dict[int, Schema], *params: str,
          body: Schema | None = None, errors: tuple[int, ...] = NGSI_WRITE) -> Schema:  # fmt: skip
    """An NGSI-LD operation with a body (an entity fragment unless told)."""
    return operation(op_id, summary, tag, responses, params=(*params, T, L),
                     body=body or ngsi_ld_body("EntityFragment"), errors=errors)  # fmt: skip


def ngsi_ld_paths() -> dict[str, dict[str, Schema]]:
    """The /ngsi-ld/v1 paths (clause 6 of ETSI GS CIM 009)."""
    e, ent = "Entities", f"{NGSI_LD}/entities"
    entity = {200: ok("The entity.", {"anyOf": [_schema("EntityOutput"), _schema("Feature")]},
                      *READ_GEO, headers=("Link",))}  # fmt: skip
    temporal = {200: ok("The temporal representation.", _schema("TemporalEntityOutput"), *READ,
                        headers=("Link",))}  # fmt: skip
    temporal_list = {200: ok("Temporal representations.", _list(_schema("TemporalEntityOutput")),
                             *READ, headers=("Link", "NGSILD-Results-Count"))}  # fmt: skip
    ids = {201: ok("Ids of the entities created.", _schema("EntityIdList"))}
    subscription = {200: ok("The subscription.", _schema("SubscriptionOutput"), *READ,
                            headers=("Link",))}  # fmt: skip
    subscriptions = {200: ok("A page of subscriptions.", _list(_schema("SubscriptionOutput")),
                             *READ, headers=("Link", "NGSILD-Results-Count"))}  # fmt: skip
    d, c, s = "Discovery", "Contexts", "Subscriptions"
    batch, tmp = f"{NGSI_LD}/entityOperations", f"{NGSI_LD}/temporal/entities"
    sub, ctx = f"{NGSI_LD}/subscriptions", f"{NGSI_LD}/jsonldContexts"
    eid, attr, ta = "entityId", ("entityId", "attrId"), ("entityId", "attrId", "instanceId")
    kinds = {"anyOf": [_schema("EntityTypeList"), _list(_schema("EntityTypeDetails"))]}
    attrs = {"anyOf": [_schema("AttributeList"), _list(_schema("Attribute"))]}
    contexts = {"anyOf": [_list(STRING), _list(_schema("ContextInfo"))]}
    return {
        ent: {
            "get": read("queryEntity", "Query entities", e, ENTITIES, *SELECTION, "pick", "omit",
                        "options", "format", "lang", "geometryProperty", "csf",
                        errors=(*NGSI_READ, 403)),
            "post": write("createEntity", "Create an entity", e, CREATED,
                          body=ngsi_ld_body("Entity", ld_schema="EntityLd"),
                          errors=(*NGSI_WRITE, 409)),
        },
        f"{ent}/{{entityId}}": {
            "get": read("retrieveEntity", "Retrieve an entity", e, entity, eid, *ENTITY_READ,
                        "geometryProperty"),
            "put": write("replaceEntity", "Replace an entity", e, NO_CONTENT, eid),
            "patch": write("mergeEntity", "Merge-patch an entity (null deletes)", e, NO_CONTENT,
                           eid, body=ngsi_ld_body("EntityFragment", merge_patch=True)),
            "delete": read("deleteEntity", "Delete an entity", e, NO_CONTENT, eid,
                           errors=(400, 404), link=False),
        },
        f"{ent}/{{entityId}}/attrs": {
            "post": write("appendAttrs", "Append attributes", e, UPDATED, eid,
                          "optionsNoOverwrite"),
            "patch": write("updateEntity", "Update existing attributes", e, UPDATED, eid),
        },
        f"{ent}/{{entityId}}/attrs/{{attrId}}": {
            "patch": write("updateAttrs", "Partially update an attribute", e, NO_CONTENT, *attr),
            "put": write("replaceAttrs", "Replace an attribute", e, NO_CONTENT, *attr),
            "delete": read("deleteAttrs", "Delete an attribute", e, NO_CONTENT, *attr,
                           "datasetId", "deleteAll", errors=(400, 404, 503)),
        },
        f"{batch}/create": {"post": write("createBatch", "Create entities", "Batch",
                                          {**ids, 207: BATCH[207]}, body=BATCH_BODY)},
        f"{batch}/upsert": {"post": write("upsertBatch", "Create or update entities", "Batch",
                                          {**ids, **BATCH}, "optionsUpsert", body=BATCH_BODY)},
        f"{batch}/update": {"post": write("updateBatch", "Update entities", "Batch", BATCH,
                                          "optionsNoOverwrite", body=BATCH_BODY)},
        f"{batch}/merge": {"post": write("mergeBatch", "Merge entities", "Batch", BATCH,
                                         body=BATCH_BODY)},
        f"{batch}/delete": {"post": write("deleteBatch", "Delete entities", "Batch", BATCH,
                                          body=request_body(_schema("EntityIdList")))},
        f"{batch}/query": {"post": write(
            "queryBatch", "Query entities with a Query object", "Batch", ENTITIES, "limit",
            "offset", "count", "options", "format", "pick", "omit", "lang", "geometryProperty",
            body=ngsi_ld_body("Query"), errors=(*NGSI_WRITE, 403, 406))},
        f"{NGSI_LD}/types": {"get": read(
            "retrieveEntityTypes", "Entity types", d, {200: ok(
                "Type names, or EntityType objects (details=true).", kinds, *READ,
                headers=("Link",))}, "details")},
        f"{NGSI_LD}/types/{{type}}": {"get": read(
            "retrieveEntityTypeInfo", "One entity type", d, {200: ok(
                "EntityTypeInfo.", _schema("EntityTypeInfo"), *READ, headers=("Link",))},
            "entityTypeName")},
        f"{NGSI_LD}/attributes": {"get": read(
            "retrieveAttrTypes", "Attributes", d, {200: ok(
                "Attribute names, or Attribute objects (details=true).", attrs, *READ,
                headers=("Link",))}, "details")},
        f"{NGSI_LD}/attributes/{{attrId}}": {"get": read(
            "retrieveAttrTypeInfo", "One attribute", d, {200: ok(
                "Attribute.", _schema("Attribute"), *READ, headers=("Link",))}, "attributeName")},
        ctx: {
            "get": operation("listContexts", "Stored @contexts", c, {200: ok(
                "URLs, or ContextInfo objects (details=true).", contexts)},
                params=("details", "kind"), errors=(400,)),
            "post": operation("createContext", "Host a @context", c, CREATED,
                              body=request_body(_schema("ContextDocument"), JSON, JSON_LD),
                              errors=(400, 409, 413, 415)),
        },
        f"{ctx}/{{contextId}}": {
            "get": operation("retrieveContext", "One stored @context", c, {200: ok(
                "The @context document.", _schema("ContextDocument"), JSON_LD)},
                params=("contextId",), errors=(404,)),
            "delete": operation("deleteContext", "Delete (or reload) a stored @context", c,
                                NO_CONTENT, params=("contextId", "reload"),
                                errors=(400, 404, 503)),
        },
        sub: {
            "post": write("createSubscription", "Create a subscription", s, CREATED,
                          body=ngsi_ld_body("Subscription"), errors=(*NGSI_WRITE, 409)),
            "get": read("querySubscription", "Subscriptions", s, subscriptions, "limit",
                        "offset", "count", errors=(400, 403, 404, 406), link=False),
        },
        f"{sub}/{{subscriptionId}}": {
            "get": read("retrieveSubscription", "One subscription", s, subscription,
                        "subscriptionId", errors=(400, 404, 406), link=False),
            "patch": write("updateSubscription", "Update a subscription", s, NO_CONTENT,
                           "subscriptionId", body=ngsi_ld_body("Subscription", merge_patch=True)),
            "delete": read("deleteSubscription", "Delete a subscription", s, NO_CONTENT,
                           "subscriptionId", errors=(400, 404), link=False),
        },
        tmp: {
            "get": read("queryTemporal", "Query entity histories", "Temporal", temporal_list,
                        *SELECTION, *TEMPORAL, errors=(*NGSI_READ, 403)),
            "post": write("upsertTemporal", "Create a history or add instances", "Temporal",
                          {**CREATED, **NO_CONTENT}, body=ngsi_ld_body("TemporalEntity")),
        },
        f"{tmp}/{{entityId}}": {
            "get": read("retrieveTemporal", "One entity's history", "Temporal", temporal, eid,
                        "attrs", *TEMPORAL),
            "delete": read("deleteTemporal", "Delete an entity and its history", "Temporal",
                           NO_CONTENT, eid, errors=(400, 404, 503)),
        },
        f"{tmp}/{{entityId}}/attrs": {"post": write(
            "appendAttrsTemporal", "Add attribute instances", "Temporal", NO_CONTENT, eid)},
        f"{tmp}/{{entityId}}/attrs/{{attrId}}": {"delete": read(
            "deleteAttrsTemporal", "Delete an attribute's history", "Temporal", NO_CONTENT,
            *attr, "datasetId", "deleteAll", errors=(400, 404, 503))},
        f"{tmp}/{{entityId}}/attrs/{{attrId}}/{{instanceId}}": {
            "patch": write("updateAttrsTemporal", "Modify an attribute instance", "Temporal",
                           NO_CONTENT, *ta),
            "delete": read("deleteAttrInstanceTemporal", "Delete an attribute instance",
                           "Temporal", NO_CONTENT, *ta, errors=(400, 404, 503)),
        },
    }  # fmt: skip


def platform_paths() -> dict[str, dict[str, Schema]]:
    """/health, /version, /metrics, /services (the routes of each enabled service are not
    described) and this document."""
    tag = "Platform"
    return {
        "/health": {"get": operation(
            "getHealth", "Readiness (and the gateway's counters)", tag,
            {200: ok("Ready.", _schema("Health")), 503: ok("Starting.", _schema("Health"))})},
        "/version": {"get": operation("getVersion", "Version", tag,
                                      {200: ok("Versions.", _schema("Version"))})},
        "/metrics": {"get": operation(
            "getMetrics", "Prometheus metrics", tag,
            {200: ok("Metrics in the Prometheus text format.", STRING, TEXT)})},
        "/services": {"get": operation(
            "listServices", "The city services enabled in the tenant, with their panels", tag,
            {200: ok("Services.", _list(_schema("ServiceInfo")))}, params=("tenant",))},
        "/openapi.json": {"get": operation(
            "getOpenApi", "This OpenAPI description", tag,
            {200: ok("OpenAPI 3.1 document.", ANY_OBJECT)})},
    }  # fmt: skip


def iot_agent_paths() -> dict[str, dict[str, Schema]]:
    """The IoT Agent API (provisioning and HTTP measures), when the gateway is on."""
    tag, s, f = "IoT Agent", "fiwareService", (400, 413)
    measure = {200: ok("What was written.", _schema("MeasureResult"))}
    device = ("deviceId", s)
    return {
        "/iot/about": {"get": operation("getIotAbout", "Gateway version", tag,
                                        {200: ok("About.", _schema("IotAbout"))})},
        "/iot/services": {
            "get": operation("listConfigGroups", "Config groups", tag,
                             {200: ok("A page of groups.", _schema("ConfigGroupList"))},
                             params=(s, "iotLimit", "iotOffset"), errors=(400,)),
            "post": operation("createConfigGroups", "Create config groups", tag,
                              {201: ok("Created.")}, params=(s,), errors=(*f, 409),
                              body=request_body(_schema("ConfigGroups"))),
            "put": operation("updateConfigGroup", "Update a config group", tag, NO_CONTENT,
                             params=(s, "resource", "apikey"), errors=(*f, 404),
                             body=request_body(ANY_OBJECT)),
            "delete": operation("deleteConfigGroup", "Delete a config group", tag,
                                NO_CONTENT, params=(s, "resource", "apikey"),
                                errors=(400, 404)),
        },
        "/iot/devices": {
            "get": operation("listDevices", "Devices", tag,
                             {200: ok("A page of devices.", _schema("DeviceList"))},
                             params=(s, "iotLimit", "iotOffset"), errors=(400,)),
            "post": operation("createDevices", "Provision devices", tag,
                              {201: ok("Created.")}, params=(s,), errors=(*f, 409),
                              body=request_body(_schema("Devices"))),
        },
        "/iot/devices/{deviceId}": {
            "get": operation("retrieveDevice", "One device", tag,
                             {200: ok("The device.", ANY_OBJECT)}, params=device,
                             errors=(400, 404)),
            "put": operation("updateDevice", "Update a device", tag, NO_CONTENT,
                             params=device, errors=(*f, 404),
                             body=request_body(ANY_OBJECT)),
            "delete": operation("deleteDevice", "Delete a device", tag, NO_CONTENT,
                                params=device, errors=(400, 404)),
        },
        "/iot/d": {
            "get": operation("receiveUltralightQuery", "UltraLight 2.0 measures in d", tag,
                             measure, params=("k", "i", "t", "d"), errors=(400, 403, 404)),
            "post": operation("receiveUltralight", "UltraLight 2.0 measures", tag, measure,
                              params=("k", "i", "t"), errors=(*f, 403, 404),
                              body=request_body(STRING, TEXT)),
        },
        "/iot/json": {"post": operation(
            "receiveJson", "JSON measures", tag, measure, params=("k", "i", "t"),
            errors=(*f, 403, 404),
            body=request_body(ANY_OBJECT))},
    }  # fmt: skip


def web_paths() -> dict[str, dict[str, Schema]]:
    """The web pages, their assets, the basemap and the live event stream."""
    tag = "Web"
    page = {200: ok("The page (HTML, in the visitor's language).", STRING, HTML)}
    return {
        "/": {"get": operation("showDashboard", "The public city dashboard", tag, page,
                               params=("pageLang",))},
        "/staff": {"get": operation("showStaffConsole", "The staff console (or its login)",
                                    tag, page, params=("pageLang",))},
        "/web/basemap.geojson": {"get": operation(
            "getBasemap", "The offline basemap (streets, buildings, districts, green spaces)",
            tag, {200: ok("A FeatureCollection.", ANY_OBJECT, GEO_JSON)})},
        "/web/events": {"get": operation(
            "streamWebEvents", "Live entity changes for the map (server-sent events)", tag,
            {200: ok("An event stream of keyValues entities.", STRING, EVENT_STREAM)})},
        "/static/{assetPath}": {"get": operation(
            "getAsset", "A script, style or front-end package file of the pages", tag,
            {200: ok("The file.", STRING, "application/octet-stream")},
            params=("assetPath",), errors=(404,))},
    }  # fmt: skip


def staff_paths() -> dict[str, dict[str, Schema]]:
    """Staff sessions and the audit log."""
    tag = "Staff"
    return {
        "/auth/login": {"post": operation(
            "login", "Start a staff session (a cookie)", tag,
            {200: ok("The session's user, role and tenants.", _schema("Session"),
                     headers=("Set-Cookie",))},
            body=request_body(_schema("Login")), errors=(400, 413))},
        "/auth/logout": {"post": operation(
            "logout", "End the session of the cookie", tag,
            {204: ok("Ended (the cookie is cleared).", headers=("Set-Cookie",))})},
        "/audit": {"get": operation(
            "listAudit", "The audit log of writes, newest first", tag,
            {200: ok("Audit entries.", _list(_schema("AuditEntry")))},
            params=("since", "until", "actor", "auditTenant", "auditLimit", "auditOffset"),
            errors=(400,))},
    }  # fmt: skip


DESCRIPTION = f"""\
AgileCity's NGSI-LD context broker (ETSI GS CIM 009 1.8) and its device gateway.

Credentials: `Authorization: Bearer <API key or JWT>`, an `X-API-Key` header, or a staff
session cookie (`{SESSION_COOKIE}`, from POST /auth/login). Which roles may call an
operation is in docs/security.md. An operation whose security list holds `{{}}` is open to
anonymous visitors for the entity types the `public_types` setting lists. In the open mode
(`auth = false`, for development and conformance tests) no credentials are needed.
Errors of /ngsi-ld are ProblemDetails (`type`, `title`, `status`, `detail`), of /iot
`{{"name", "message"}}`, of /open311 Open311's `[{{"code", "description"}}]` (XML for
`.xml` paths), elsewhere RFC 9457 problems; a method a path does not support
is 405 with an `Allow` header.
"""
SECURITY_SCHEMES: dict[str, Schema] = {
    "bearerAuth": {"type": "http", "scheme": "bearer", "bearerFormat": "API key or JWT",
                   "description": "An AgileCity API key or a JWT (settings auth_jwt_*)."},
    "apiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key",
               "description": "An AgileCity API key."},
    "session": {"type": "apiKey", "in": "cookie", "name": SESSION_COOKIE,
                "description": "A staff session; writes only from the platform's pages."},
}  # fmt: skip


def openapi_document(*, gateway: bool = True) -> dict[str, Any]:
    """The OpenAPI 3.1 document of the platform (the IoT Agent paths when ``gateway``)."""
    from agilecity.api import openapi_open311  # it builds on this module's helpers

    families = [platform_paths(), ngsi_ld_paths(), iot_agent_paths() if gateway else {},
                openapi_open311.open311_paths(), openapi_open311.report_staff_paths(),
                staff_paths(), web_paths(), openapi_open311.report_page_paths()]  # fmt: skip
    paths = {
        path: {method: secure(path, method, op) for method, op in item.items()}
        for family in families
        for path, item in family.items()
    }
    return {
        "openapi": "3.1.0",
        "info": {"title": "AgileCity", "version": __version__, "description": DESCRIPTION,
                 "license": {"name": "EUPL-1.2", "identifier": "EUPL-1.2"}},
        "paths": paths,
        "components": {"schemas": {**SCHEMAS, **openapi_open311.SCHEMAS},
                       "parameters": {**PARAMETERS, **openapi_open311.PARAMETERS},
                       "responses": {**RESPONSES, **openapi_open311.RESPONSES},
                       "headers": HEADERS, "securitySchemes": SECURITY_SCHEMES},
    }  # fmt: skip


@functools.lru_cache(maxsize=2)
def _encoded(gateway: bool) -> bytes:
    return orjson.dumps(openapi_document(gateway=gateway))


async def get_openapi(request: Request) -> Response:
    """GET /openapi.json: the description of this app (with /iot when its gateway runs)."""
    gateway = getattr(request.app.state, "gateway", None) is not None
    return Response(_encoded(gateway), media_type=JSON)
