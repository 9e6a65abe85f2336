"""The OpenAPI description of the Open311 routes (``/open311``) and of the reports back
office (``/reports``); ``openapi.py`` merges it into the platform's document."""

from __future__ import annotations

from typing import Any

from agilecity.api.openapi import operation, ref

Schema = dict[str, Any]
JSON, XML, PROBLEM = "application/json", "text/xml", "application/problem+json"
STRING: Schema = {"type": "string"}
NULLABLE: Schema = {"type": ["string", "null"]}
NUMBER_OR_NULL: Schema = {"type": ["number", "null"]}
OBJECT: Schema = {"type": "object"}
BINARY: Schema = {"type": "string", "format": "binary"}


def _list(items: Schema) -> Schema:
    return {"type": "array", "items": items}


def _object(required: tuple[str, ...] = (), /, **properties: Schema) -> Schema:
    body: Schema = {"type": "object", "properties": properties}
    if required:
        body["required"] = list(required)
    return body


REQUEST_MEMBERS = (
    "service_request_id", "status", "status_notes", "service_name", "service_code",
    "description", "agency_responsible", "service_notice", "requested_datetime",
    "updated_datetime", "expected_datetime", "address", "address_id", "zipcode", "media_url",
)  # fmt: skip
FORM_FIELDS = (
    "service_code", "lat", "long", "address_string", "address_id", "zipcode", "description",
    "media_url", "email", "first_name", "last_name", "phone", "device_id", "account_id",
    "api_key", "jurisdiction_id",
)  # fmt: skip
SCHEMAS: dict[str, Schema] = {
    "Open311Errors": _list(_object(("code", "description"), code={"type": "integer"},
                                   description=STRING)),
    "Open311Services": _list(_object(
        ("service_code", "service_name", "metadata", "type"), service_code=STRING,
        service_name=STRING, description=STRING, metadata={"type": "boolean"},
        type={"enum": ["realtime", "batch", "blackbox"]}, keywords=STRING, group=STRING)),
    "Open311ServiceDefinition": _object(
        ("service_code", "attributes"), service_code=STRING,
        attributes=_list(_object(
            ("variable", "code", "datatype", "required", "order", "description"),
            variable={"type": "boolean"}, code=STRING, datatype=STRING,
            required={"type": "boolean"}, datatype_description=STRING,
            order={"type": "integer"}, description=STRING,
            values=_list(_object(("key", "name"), key=STRING, name=STRING))))),
    "Open311Requests": _list({
        **_object(("service_request_id", "status"), **{m: NULLABLE for m in REQUEST_MEMBERS},
                  lat=NUMBER_OR_NULL, long=NUMBER_OR_NULL),
        "description": "A service request: only public fields (no contact details)."}),
    "Open311Created": _list(_object(("service_request_id", "token"), service_request_id=STRING,
                                    token=STRING, service_notice=NULLABLE,
                                    account_id=NULLABLE)),
    "Open311Tokens": _list(_object(("service_request_id", "token"), service_request_id=STRING,
                                   token=STRING)),
    "Open311Discovery": _object(("endpoints",), changeset=STRING, contact=STRING,
                                key_service=STRING, endpoints=_list(OBJECT)),
    "Open311Form": {
        **_object(("service_code",), **{f: STRING for f in FORM_FIELDS}),
        "description": "Form fields; attribute[code]=value for the service's attributes.",
    },
    "Open311Multipart": {
        **_object(("service_code",), **{f: STRING for f in FORM_FIELDS}, media=BINARY),
        "description": "As the form, with a photo in media (JPEG, PNG or WebP).",
    },
}  # fmt: skip


def _param(name: str, where: str, schema: Schema, description: str) -> Schema:
    body: Schema = {"name": name, "in": where, "schema": schema, "description": description}
    if where == "path":
        body["required"] = True
    return body


PARAMETERS: dict[str, Schema] = {
    "open311Format": _param("format", "path", {"enum": ["json", "xml"]}, "Response format."),
    "serviceCode": _param("service_code", "path", STRING, "Service (category) code."),
    "serviceRequestId": _param("service_request_id", "path", STRING, "Service request id."),
    "token": _param("token", "path", STRING, "The token given when the request was filed."),
    "photoId": _param("photo_id", "path", STRING, "Photo id."),
    "exportFormat": _param("format", "path", {"enum": ["csv", "geojson"]}, "Export format."),
    "jurisdictionId": _param("jurisdiction_id", "query", STRING, "The city (optional)."),
    "serviceRequestIds": _param("service_request_id", "query", STRING,
                                "Comma-separated ids (the other filters are then ignored)."),
    "serviceCodes": _param("service_code", "query", STRING, "Comma-separated service codes."),
    "startDate": _param("start_date", "query", {"type": "string", "format": "date-time"},
                        "Requests filed at or after this time."),
    "endDate": _param("end_date", "query", {"type": "string", "format": "date-time"},
                      "Requests filed at or before this time (90 days at most from start)."),
    "open311Status": _param("status", "query", STRING, "open, closed or open,closed."),
    "page": _param("page", "query", {"type": "integer", "minimum": 1}, "Page (extension)."),
    "pageSize": _param("page_size", "query", {"type": "integer", "minimum": 1, "maximum": 1000},
                       "Requests per page (1000)."),
    "lat": _param("lat", "query", {"type": "number"}, "Latitude (WGS 84)."),
    "long": _param("long", "query", {"type": "number"}, "Longitude (WGS 84)."),
    "nearbyCode": _param("service_code", "query", STRING, "Service code."),
    "workflowStatus": _param("status", "query", STRING, "Workflow status."),
    "queueCode": _param("service_code", "query", STRING, "Service code."),
    "district": _param("district", "query", STRING, "District name."),
    "queueLimit": _param("limit", "query", {"type": "integer", "minimum": 1, "maximum": 500},
                         "Page size (50)."),
    "queueOffset": _param("offset", "query", {"type": "integer", "minimum": 0}, "Page start."),
    "reportPageLang": _param("lang", "query", {"type": "string", "enum": ["fr", "en"]},
                             "Page language (remembered in a cookie); French by default."),
    "staffTenant": _param("NGSILD-Tenant", "header", STRING, "Tenant (default: the default)."),
}  # fmt: skip
RESPONSES: dict[str, Schema] = {
    "Open311Error": {
        "description": "Open311 errors (400, 401, 403, 404, 405, 413, 429): JSON or XML as "
        "the path's extension asks.",
        "content": {JSON: {"schema": ref("schemas", "Open311Errors")}, XML: {"schema": STRING}},
    },
}


def _ok(description: str, schema: Schema | None = None, media: str = JSON) -> Schema:
    response: Schema = {"description": description}
    if schema is not None:
        response["content"] = {media: {"schema": schema}}
    return response


def _open311_ok(description: str, schema: str, status: int = 200) -> dict[int, Schema]:
    return {status: {"description": description, "content": {
        JSON: {"schema": ref("schemas", schema)}, XML: {"schema": STRING}}}}  # fmt: skip


def _op(operation_id: str, summary: str, tag: str, responses: dict[int, Schema],
        params: tuple[str, ...] = (), body: Schema | None = None,
        errors: tuple[int, ...] = (400, 404)) -> Schema:  # fmt: skip
    """An operation of these families (most answer 400 and 404)."""
    return operation(operation_id, summary, tag, responses, params=params, body=body,
                     errors=errors)  # fmt: skip


def _json_body(schema: Schema) -> Schema:
    return {"required": True, "content": {JSON: {"schema": schema}}}


def open311_paths() -> dict[str, dict[str, Schema]]:
    """GeoReport v2 and its citizen extensions."""
    tag, v2, f, j = "Open311", "/open311/v2", "open311Format", "jurisdictionId"
    form = {"required": True, "content": {
        "application/x-www-form-urlencoded": {"schema": ref("schemas", "Open311Form")},
        "multipart/form-data": {"schema": ref("schemas", "Open311Multipart")}}}  # fmt: skip
    small = {"content": {JSON: {"schema": _object(email=STRING, note=STRING)},
                         "application/x-www-form-urlencoded": {"schema": OBJECT}}}  # fmt: skip
    return {
        f"{v2}/discovery.{{format}}": {"get": _op(
            "getOpen311Discovery", "Service discovery", tag,
            _open311_ok("The endpoints.", "Open311Discovery"), (f, j), errors=(404,))},
        f"{v2}/services.{{format}}": {"get": _op(
            "listOpen311Services", "Service categories", tag,
            _open311_ok("The services.", "Open311Services"), (f, j))},
        f"{v2}/services/{{service_code}}.{{format}}": {"get": _op(
            "getOpen311ServiceDefinition", "A service definition with its attributes", tag,
            _open311_ok("The definition.", "Open311ServiceDefinition"),
            ("serviceCode", f, j))},
        f"{v2}/requests.{{format}}": {
            "get": _op("listOpen311Requests", "Service requests", tag,
                       _open311_ok("The requests.", "Open311Requests"),
                       (f, j, "serviceRequestIds", "serviceCodes", "startDate", "endDate",
                        "open311Status", "page", "pageSize")),
            "post": _op("createOpen311Request", "File a service request", tag,
                        _open311_ok("Filed.", "Open311Created", 201), (f,), form,
                        errors=(400, 404, 413, 429)),
        },
        f"{v2}/requests/{{service_request_id}}.{{format}}": {"get": _op(
            "getOpen311Request", "One service request", tag,
            _open311_ok("A list of one request.", "Open311Requests"),
            ("serviceRequestId", f, j))},
        f"{v2}/tokens/{{token}}.{{format}}": {"get": _op(
            "getOpen311Token", "The service request id of a token", tag,
            _open311_ok("A list of one.", "Open311Tokens"), ("token", f, j))},
        "/open311/requests/{service_request_id}/follow": {"post": _op(
            "followOpen311Request", "\"Me too\": follow a request (optional e-mail)", tag,
            {200: _ok("The follower count.", _object(service_request_id=STRING,
                                                     followers={"type": "integer"}))},
            ("serviceRequestId",), small, errors=(400, 404, 409, 413, 429))},
        "/open311/tokens/{token}/reopen": {"post": _op(
            "reopenOpen311Request", "The reporter reopens a request marked fixed", tag,
            {200: _ok("Reopened.", _object(service_request_id=STRING, status=STRING))},
            ("token",), small, errors=(400, 404, 409, 413))},
        "/open311/nearby": {"get": _op(
            "listNearbyOpen311Requests", "Open requests of a category near a point", tag,
            {200: _ok("Nearest first, with distance_m.", _list(OBJECT))},
            ("nearbyCode", "lat", "long"))},
        "/open311/media/{photo_id}": {"get": _op(
            "getOpen311Photo", "A published photo (no metadata)", tag,
            {200: _ok("JPEG.", BINARY, "image/jpeg")}, ("photoId", "tenant"), errors=(404,))},
        "/open311/media/{photo_id}/thumbnail": {"get": _op(
            "getOpen311Thumbnail", "A published photo's thumbnail", tag,
            {200: _ok("JPEG.", BINARY, "image/jpeg")}, ("photoId", "tenant"), errors=(404,))},
        "/open311/export.{format}": {"get": _op(
            "exportOpen311Requests", "Open data of reports (no personal data, no free text)",
            tag, {200: {"description": "CSV or GeoJSON.", "content": {
                "text/csv": {"schema": STRING},
                "application/geo+json": {"schema": OBJECT}}}},
            ("exportFormat", "tenant"), errors=(404,))},
    }  # fmt: skip


def report_staff_paths() -> dict[str, dict[str, Schema]]:
    """The back office (staff roles)."""
    tag, r, t = "Reports (staff)", "/reports/{service_request_id}", "staffTenant"
    one = {200: _ok("The report.", OBJECT)}
    rid = ("serviceRequestId", t)
    photo = {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": _object(("photo",), photo=BINARY, kind={"enum": ["before", "after"]})
            }
        },
    }
    return {
        "/reports": {"get": _op(
            "listReports", "The queue", tag, {200: _ok("Reports.", _list(OBJECT))},
            ("workflowStatus", "queueCode", "district", "queueLimit", "queueOffset", t),
            errors=(400,))},
        "/reports/statistics": {"get": _op(
            "getReportStatistics", "Open/closed per category and district, medians vs "
            "targets", tag, {200: _ok("Statistics.", OBJECT)}, (t,), errors=())},
        r: {"get": _op("getReport", "One report, contact details included", tag, one, rid)},
        f"{r}/status": {"post": _op(
            "changeReportStatus", "Change the status, with a note", tag, one, rid,
            _json_body(_object(("status",), status=STRING, note=STRING)),
            errors=(400, 404, 409, 413))},
        f"{r}/assignment": {"post": _op(
            "assignReport", "Route to a team or a staff member", tag, one, rid,
            _json_body(_object(team=STRING, assignee=STRING)), errors=(400, 404, 413))},
        f"{r}/moderation": {"post": _op(
            "moderateReport", "Publish (edited) description and address, or withdraw", tag,
            one, rid, _json_body(_object(("publish",), publish={"type": "boolean"},
                                         description=STRING, address_string=STRING,
                                         media_url={"type": "boolean"})),
            errors=(400, 404, 413))},
        f"{r}/merge": {"post": _op(
            "mergeReport", "Merge into another open report (a duplicate)", tag, one, rid,
            _json_body(_object(("into",), into=STRING)), errors=(400, 404, 409, 413))},
        f"{r}/duplicates": {"get": _op(
            "listReportDuplicates", "Open reports of its category close to it", tag,
            {200: _ok("Candidates.", _list(OBJECT))}, rid)},
        f"{r}/photos": {"post": _op(
            "addReportPhoto", "Attach a photo (an \"after\" photo is public at once)", tag,
            {201: _ok("The photo.", OBJECT)}, rid, photo, errors=(400, 404, 413))},
        f"{r}/photos/{{photo_id}}": {"get": _op(
            "getReportPhoto", "A sanitised photo, published or not", tag,
            {200: _ok("JPEG.", BINARY, "image/jpeg")}, ("serviceRequestId", "photoId", t))},
        f"{r}/photos/{{photo_id}}/publication": {"post": _op(
            "publishReportPhoto", "Publish with black boxes, or withdraw", tag,
            {200: _ok("The photo.", OBJECT)}, ("serviceRequestId", "photoId", t),
            _json_body(_object(("publish",), publish={"type": "boolean"},
                               boxes=_list(_list({"type": "number"})))),
            errors=(400, 404, 413))},
    }  # fmt: skip


def report_page_paths() -> dict[str, dict[str, Schema]]:
    """The report pages (HTML, in the visitor's language)."""
    tag = "Web"
    page = {200: _ok("The page (HTML).", STRING, "text/html")}
    return {
        "/report": {
            "get": _op(
                "showReportPage",
                "File a report, follow one, open reports",
                tag,
                page,
                ("reportPageLang",),
                errors=(),
            )
        },
        "/staff/reports": {
            "get": _op(
                "showReportOffice",
                "The reports back office",
                tag,
                page,
                ("reportPageLang",),
                errors=(),
            )
        },
    }
