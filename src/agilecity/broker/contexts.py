"""The context registry: hosted contexts, remote ones fetched once and cached, term maps.

Remote fetches are restricted (http/https only, size and time limits, no loopback or
private addresses unless allowed) so a context URL cannot be used to reach inside the
city's network. Fetched and hosted documents are kept in the store, so a restart does not
fetch again; the term maps built from them are cached in memory.
"""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import orjson

from agilecity.broker.context import (
    ContextSource,
    TermMap,
    build_term_map,
    context_key,
    core_term_map,
    is_core_context,
    load_core_context,
)
from agilecity.broker.network import refuse_private
from agilecity.broker.timeutil import now_iso
from agilecity.errors import (
    AlreadyExistsError,
    BadRequestDataError,
    LdContextNotAvailableError,
    ResourceNotFoundError,
)
from agilecity.store.base import ContextRecord, Store

MAX_NESTING = 8


@dataclass(frozen=True)
class FetchPolicy:
    """Limits on fetching remote contexts."""

    timeout: float = 5.0
    max_bytes: int = 1024 * 1024
    allow_private: bool = False


class ContextRegistry:
    """Resolves request contexts to term maps and manages the /jsonldContexts resources."""

    def __init__(self, store: Store, policy: FetchPolicy, base_url: str = "") -> None:
        self.store = store
        self.policy = policy
        self.base_url = base_url
        self._records: dict[str, ContextRecord] = {}
        self._term_maps: dict[str, TermMap] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    async def load(self, preload_dir: str = "") -> None:
        """Read stored contexts, then preload local files listed in preload_dir/index.json."""
        for record in await self.store.list_contexts():
            self._records[record.url] = record
        if preload_dir:
            folder = Path(preload_dir)
            index = orjson.loads((folder / "index.json").read_bytes())
            for file_name, url in index.items():
                body = orjson.loads((folder / file_name).read_bytes())
                if url not in self._records:
                    await self._remember(url, "Cached", body)

    def hosted_url(self, local_id: str) -> str:
        """The URL under which a hosted context is served."""
        return f"{self.base_url}/ngsi-ld/v1/jsonldContexts/{local_id}"

    async def term_map(self, sources: list[ContextSource] | None) -> TermMap:
        """The term map for a request's context (the core context when none is given)."""
        if not sources:
            return core_term_map()
        key = context_key(sources)
        cached = self._term_maps.get(key)
        if cached is not None:
            return cached
        documents: list[dict[str, Any]] = []
        for source in sources:
            await self._flatten(source, documents, depth=0)
        urls = tuple(s for s in sources if isinstance(s, str))
        term_map = build_term_map(documents, urls)
        if len(self._term_maps) > 1000:
            self._term_maps.clear()
        self._term_maps[key] = term_map
        return term_map

    async def _flatten(self, source: object, out: list[dict[str, Any]], depth: int) -> None:
        if depth > MAX_NESTING:
            raise BadRequestDataError("@context nests too deeply")
        if isinstance(source, list):
            for item in source:
                await self._flatten(item, out, depth + 1)
        elif isinstance(source, str):
            if is_core_context(source):
                return
            body = await self.document(source)
            await self._flatten(body.get("@context", {}), out, depth + 1)
        elif isinstance(source, dict):
            nested = {k: v for k, v in source.items() if k != "@import"}
            out.append(nested)
        elif source is not None:
            raise BadRequestDataError("@context must be a URL, an object or an array of those")

    async def document(self, url: str) -> dict[str, Any]:
        """The JSON-LD document at a context URL: hosted, cached, or fetched now."""
        if is_core_context(url):
            return load_core_context()
        record = self._records.get(url)
        if record is None:
            lock = self._locks.setdefault(url, asyncio.Lock())
            async with lock:
                record = self._records.get(url)
                if record is None:
                    record = await self._remember(url, "Cached", await self._fetch(url))
        record.hits += 1
        record.last_usage = now_iso()
        return record.body

    async def _remember(self, url: str, kind: str, body: dict[str, Any]) -> ContextRecord:
        record = ContextRecord(uuid.uuid4().hex, url, kind, body, now_iso())
        await self.store.put_context(record)
        self._records[url] = record
        return record

    async def _fetch(self, url: str) -> dict[str, Any]:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise LdContextNotAvailableError(f"@context URL must be http(s): {url!r}")
        if not self.policy.allow_private:
            await refuse_private(
                parts.hostname, f"@context {url}", "AGILECITY_ALLOW_PRIVATE_CONTEXT_URLS",
                LdContextNotAvailableError,
            )  # fmt: skip
        try:
            async with httpx.AsyncClient(
                timeout=self.policy.timeout, follow_redirects=False
            ) as client:
                async with client.stream(
                    "GET", url, headers={"Accept": "application/ld+json, application/json"}
                ) as response:
                    if response.status_code != 200:
                        raise LdContextNotAvailableError(
                            f"fetching @context {url} answered HTTP {response.status_code}"
                        )
                    chunks: list[bytes] = []
                    size = 0
                    async for chunk in response.aiter_bytes():
                        size += len(chunk)
                        if size > self.policy.max_bytes:
                            raise LdContextNotAvailableError(
                                f"@context {url} exceeds {self.policy.max_bytes} bytes"
                            )
                        chunks.append(chunk)
        except httpx.HTTPError as exc:
            raise LdContextNotAvailableError(f"@context {url} could not be fetched: {exc}") from exc
        try:
            body = orjson.loads(b"".join(chunks))
        except orjson.JSONDecodeError as exc:
            raise LdContextNotAvailableError(f"@context {url} is not JSON") from exc
        if not isinstance(body, dict) or "@context" not in body:
            raise LdContextNotAvailableError(f"@context {url} has no @context member")
        return body

    # -- /jsonldContexts ---------------------------------------------------------------

    async def add_hosted(self, body: object) -> ContextRecord:
        """POST /jsonldContexts: store a context document and serve it under a local id."""
        if not isinstance(body, dict) or not isinstance(body.get("@context"), dict | list):
            raise BadRequestDataError("the body must be an object with an @context member")
        local_id = uuid.uuid4().hex
        record = ContextRecord(local_id, self.hosted_url(local_id), "Hosted", body, now_iso())
        if record.url in self._records:
            raise AlreadyExistsError(f"context {record.url} exists")
        await self.store.put_context(record)
        self._records[record.url] = record
        return record

    def records(self, kind: str | None = None) -> list[ContextRecord]:
        """Every known context record, optionally of one kind."""
        return [r for r in self._records.values() if kind is None or r.kind == kind]

    def find(self, ref: str) -> ContextRecord:
        """A record by local id or URL, or ResourceNotFound."""
        for record in self._records.values():
            if ref in (record.local_id, record.url):
                return record
        raise ResourceNotFoundError(f"no @context {ref!r}")

    async def delete(self, ref: str, reload: bool = False) -> None:
        """DELETE /jsonldContexts/{id}: remove a context, or re-fetch a cached one (reload)."""
        if is_core_context(ref):
            raise BadRequestDataError("the core context cannot be deleted")
        record = self.find(ref)
        if reload:
            if record.kind != "Cached":
                raise BadRequestDataError("only cached contexts can be reloaded")
            record.body = await self._fetch(record.url)
            await self.store.put_context(record)
        else:
            await self.store.delete_context(record.local_id)
            del self._records[record.url]
        self._term_maps.clear()
