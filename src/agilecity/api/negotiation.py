"""NGSI-LD request plumbing: bodies, media types, @context sources, options, responses."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response

from agilecity.broker.context import CORE_CONTEXT_URL, ContextSource, TermMap
from agilecity.broker.representation import Format, RenderOptions
from agilecity.errors import (
    BadRequestDataError,
    InvalidRequestError,
    NotAcceptableError,
    PayloadTooLargeError,
    UnsupportedMediaTypeError,
)

JSON = "application/json"
JSON_LD = "application/ld+json"
GEO_JSON = "application/geo+json"
MERGE_PATCH = "application/merge-patch+json"
CONTEXT_REL = "http://www.w3.org/ns/json-ld#context"
_LINK = re.compile(r"<([^>]*)>\s*((?:;\s*[^;,]+)*)")


@dataclass
class Body:
    """A parsed request body and the @context sources that came with it."""

    data: Any
    context: list[ContextSource] | None
    media_type: str


def tenant_of(request: Request) -> str:
    """The NGSILD-Tenant header, "" for the default tenant."""
    return request.headers.get("ngsild-tenant", "").strip()


def link_context(request: Request) -> list[ContextSource] | None:
    """The @context URL given in a Link header, if any."""
    header = request.headers.get("link")
    if not header:
        return None
    for match in _LINK.finditer(header):
        url, params = match.group(1), match.group(2)
        rels: set[str] = set()
        for param in params.split(";"):
            key, _, value = param.strip().partition("=")
            if key.strip().lower() == "rel":
                rels.update(value.strip().strip('"').split())
        if CONTEXT_REL in rels:
            if not url.strip():
                raise BadRequestDataError("the Link header's @context URL is empty")
            return [url.strip()]
    raise BadRequestDataError(f'the Link header has no rel="{CONTEXT_REL}" link')


def check_json(data: Any, max_depth: int, *, strings: bool = True) -> None:
    """Refuse nesting beyond max_depth, NUL characters and numbers beyond ±2^63 (no store
    keeps them alike: PostgreSQL's jsonb gives 1e20 back as an integer orjson cannot write).

    Recursive only into containers and never deeper than max_depth, so hostile input cannot
    exhaust the stack. ``strings=False`` skips the NUL checks (the caller saw the body has
    no ``\\u0000``: JSON text cannot hold a raw NUL).
    """
    if type(data) is dict or type(data) is list:
        _check_container(data, 1, max_depth, strings)
    elif type(data) is str:
        if strings and "\x00" in data:
            raise BadRequestDataError("strings must not contain the NUL character")
    elif type(data) is float and abs(data) >= 2.0**63:
        raise BadRequestDataError(f"number {data!r} is beyond ±2^63")


def _check_container(value: Any, depth: int, max_depth: int, strings: bool) -> None:
    if depth > max_depth:
        raise BadRequestDataError(f"the body nests deeper than {max_depth} levels")
    if type(value) is dict:
        if strings and any("\x00" in key for key in value):
            raise BadRequestDataError("names must not contain the NUL character")
        items = value.values()
    else:
        items = value
    for item in items:
        kind = type(item)
        if kind is dict or kind is list:
            _check_container(item, depth + 1, max_depth, strings)
        elif kind is str:
            if strings and "\x00" in item:
                raise BadRequestDataError("strings must not contain the NUL character")
        elif kind is float and abs(item) >= 2.0**63:
            raise BadRequestDataError(f"number {item!r} is beyond ±2^63")


async def read_raw_body(request: Request, max_bytes: int) -> bytes:
    """The request body as bytes, refused with 413 past ``max_bytes`` (read in chunks)."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > max_bytes:
        raise PayloadTooLargeError(f"the body exceeds {max_bytes} bytes")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > max_bytes:
            raise PayloadTooLargeError(f"the body exceeds {max_bytes} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


async def read_body(
    request: Request,
    max_bytes: int,
    *,
    max_depth: int = 32,
    merge_patch: bool = False,
    context_document: bool = False,
) -> Body:
    """Read and parse a JSON body, enforcing the size limit and the media-type rules.

    A ``context_document`` (POST /jsonldContexts) is a JSON-LD context itself: its
    ``@context`` member is its content, not the request's context.
    """
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    allowed = {JSON, JSON_LD} | ({MERGE_PATCH} if merge_patch else set())
    if media_type not in allowed:
        raise UnsupportedMediaTypeError(
            f"Content-Type must be one of {', '.join(sorted(allowed))}, not {media_type!r}"
        )
    raw = await read_raw_body(request, max_bytes)
    if not raw.strip():
        raise InvalidRequestError("the request body is empty")
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InvalidRequestError(f"the body is not valid JSON: {exc}") from exc
    check_json(data, max_depth, strings=b"\\u0000" in raw)
    context: list[ContextSource] | None
    if context_document:
        context = None
    elif media_type == JSON_LD:
        context = _body_context(data)
        if context is None:
            raise BadRequestDataError("an application/ld+json body must carry an @context")
        if request.headers.get("link"):
            raise BadRequestDataError("with application/ld+json the @context goes in the body")
    else:
        if _has_body_context(data):
            raise BadRequestDataError(
                "an application/json body must not carry @context: use a Link header"
            )
        context = link_context(request)
    return Body(data, context, media_type)


def _has_body_context(data: Any) -> bool:
    if isinstance(data, dict):
        return "@context" in data
    return isinstance(data, list) and any(isinstance(i, dict) and "@context" in i for i in data)


def _body_context(data: Any) -> list[ContextSource] | None:
    item = data
    if isinstance(data, list):
        contexts = [i.get("@context") for i in data if isinstance(i, dict)]
        if not contexts or any(c is None for c in contexts) or len(contexts) != len(data):
            return None
        first = contexts[0]
        if any(c != first for c in contexts[1:]):
            raise BadRequestDataError("every entity of a batch must carry the same @context")
        item = {"@context": first}
    if not isinstance(item, dict) or "@context" not in item:
        return None
    raw = item["@context"]
    sources = raw if isinstance(raw, list) else [raw]
    for source in sources:
        if not isinstance(source, str | dict):
            raise BadRequestDataError("@context entries must be URLs or objects")
    return sources


def strip_contexts(data: Any) -> Any:
    """The body without its @context members (the term map already holds them)."""
    if isinstance(data, dict):
        return {k: v for k, v in data.items() if k != "@context"}
    if isinstance(data, list):
        return [strip_contexts(i) if isinstance(i, dict) else i for i in data]
    return data


def negotiate(request: Request, *, geo: bool = False) -> str:
    """The response media type chosen from Accept (clause 6.3.4)."""
    header = request.headers.get("accept", "")
    if not header.strip():
        return JSON
    offered = [JSON, JSON_LD] + ([GEO_JSON] if geo else [])
    best: tuple[float, str] | None = None
    for part in header.split(","):
        pieces = part.strip().split(";")
        media = pieces[0].strip().lower()
        quality = 1.0
        for param in pieces[1:]:
            key, _, value = param.strip().partition("=")
            if key == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        candidates = offered if media in ("*/*", "application/*") else [media]
        for candidate in candidates:
            if candidate in offered and quality > 0 and (best is None or quality > best[0]):
                best = (quality, candidate)
    if best is None:
        raise NotAcceptableError(f"cannot produce any of: {header}")
    return best[1]


def split_list(value: str | None) -> list[str]:
    """A comma-separated parameter as a list (empty items dropped)."""
    if not value:
        return []
    return [v.strip() for v in value.split(",") if v.strip()]


def options_of(request: Request) -> set[str]:
    """The ``options`` parameter as a set."""
    return set(split_list(request.query_params.get("options")))


def int_param(request: Request, name: str) -> int | None:
    """An integer query parameter, or BadRequestData."""
    raw = request.query_params.get(name)
    if raw is None:
        return None
    if not re.fullmatch(r"-?[0-9]{1,9}", raw):
        raise BadRequestDataError(f"{name} must be an integer, got {raw!r}")
    return int(raw)


def bool_param(request: Request, name: str) -> bool:
    """A boolean query parameter (true/false), or BadRequestData."""
    raw = request.query_params.get(name)
    if raw is None:
        return False
    if raw not in ("true", "false"):
        raise BadRequestDataError(f"{name} must be true or false, got {raw!r}")
    return raw == "true"


_DEFAULT_RENDER = RenderOptions()


def render_options(
    request: Request, terms: TermMap, *, attrs: list[str] | None = None
) -> RenderOptions:
    """Representation options from options, format, attrs, pick, omit and lang.

    ``attrs`` replaces the query parameter (POST /entityOperations/query carries it in
    the body).
    """
    if attrs is None and not request.scope.get("query_string"):
        return _DEFAULT_RENDER  # the usual request: no parameters to read
    options = options_of(request)
    fmt: Format = "normalized"
    if "keyValues" in options or "simplified" in options:
        fmt = "keyValues"
    elif "concise" in options:
        fmt = "concise"
    explicit = request.query_params.get("format")
    if explicit is not None:
        if explicit in ("keyValues", "simplified"):
            fmt = "keyValues"
        elif explicit in ("concise", "normalized"):
            fmt = explicit  # type: ignore[assignment]
        else:
            raise BadRequestDataError(f"unknown format {explicit!r}")
    unknown = options - {"keyValues", "simplified", "concise", "normalized", "sysAttrs", "count"}
    if unknown:
        raise BadRequestDataError(f"unknown options: {', '.join(sorted(unknown))}")
    if attrs is None:
        attrs = split_list(request.query_params.get("attrs"))
    pick = split_list(request.query_params.get("pick"))
    omit = split_list(request.query_params.get("omit"))
    if pick and omit:
        raise BadRequestDataError("pick and omit cannot be used together")
    from agilecity.broker.entities import expand_name

    keep: frozenset[str] | None = None
    members = ("id", "type", "scope")
    selected = [a for a in attrs + pick if a not in members]
    if attrs or pick:
        keep = frozenset(expand_name(terms, a) for a in selected)

    def kept(member: str) -> bool:
        return (not pick or member in pick) and member not in omit

    return RenderOptions(
        format=fmt,
        sys_attrs="sysAttrs" in options,
        lang=request.query_params.get("lang"),
        attrs=keep,
        omit=frozenset(expand_name(terms, a) for a in omit if a not in members),
        keep_id=kept("id"),
        keep_type=kept("type"),
        keep_scope=kept("scope"),
    )


def json_response(
    data: Any,
    *,
    status: int = 200,
    media_type: str = JSON,
    terms: TermMap | None = None,
    headers: dict[str, str] | None = None,
) -> Response:
    """A JSON response carrying the @context the way the media type wants (clause 6.3.5)."""
    all_headers = dict(headers or {})
    context: Any = CORE_CONTEXT_URL
    if terms is not None and terms.urls:
        urls = list(terms.urls)
        if CORE_CONTEXT_URL not in urls:
            urls.append(CORE_CONTEXT_URL)
        context = urls if len(urls) > 1 else urls[0]
    if media_type == JSON_LD:
        if isinstance(data, dict):
            data = {**data, "@context": context}
        elif isinstance(data, list):
            data = [{**d, "@context": context} if isinstance(d, dict) else d for d in data]
    else:
        first = terms.urls[0] if terms is not None and terms.urls else CORE_CONTEXT_URL
        all_headers["Link"] = f'<{first}>; rel="{CONTEXT_REL}"; type="{JSON_LD}"'
    return Response(
        orjson.dumps(data), status_code=status, media_type=media_type, headers=all_headers
    )
