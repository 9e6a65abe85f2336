"""Subscription operations (clause 5.8): create, list, retrieve, update, delete, subscribe.

HTTP subscriptions are stored (so they survive restarts and are seen by every process);
in-process Python callbacks (``subscribe``) live in memory and are matched the same way.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from agilecity.broker.context import ContextSource, TermMap
from agilecity.broker.entities import check_uri
from agilecity.broker.network import refuse_private
from agilecity.broker.notifier import Callback
from agilecity.broker.subscriptions import (
    STATUS_MEMBERS,
    CompiledSubscription,
    compile_subscription,
    new_subscription_id,
)
from agilecity.broker.timeutil import now_iso
from agilecity.errors import BadRequestDataError, ResourceNotFoundError, TooManyResultsError

if TYPE_CHECKING:
    from agilecity.broker.broker import Broker

log = logging.getLogger("agilecity.subscriptions")
READ_ONLY = ("status", "createdAt", "modifiedAt")


class Subscriptions:
    """The subscription resources of a Broker."""

    def __init__(self, broker: Broker, *, allow_private_endpoints: bool = False) -> None:
        self.broker = broker
        self.allow_private_endpoints = allow_private_endpoints

    def _limits(self) -> dict[str, int]:
        limits = self.broker.limits
        return {
            "max_regex_length": limits.max_regex_length,
            "max_points": limits.max_geometry_points,
        }

    async def load(self) -> None:
        """Compile every stored subscription into the notifier (at start)."""
        await self.broker.notifier.sync_version()
        await self.reload()

    async def reload(self) -> None:
        """Make the notifier's registry match the stored subscriptions (all processes)."""
        notifier = self.broker.notifier
        stored: set[tuple[str, str]] = set()
        for doc in await self.broker.store.list_subscriptions(None):
            tenant = doc.pop("_tenant")
            stored.add((tenant, doc["id"]))
            terms = await self.broker.contexts.term_map(doc.get("jsonldContext"))
            try:
                sub = compile_subscription(tenant, doc, terms, **self._limits())
            except BadRequestDataError:
                log.exception("stored subscription %s no longer compiles", doc["id"])
                continue
            current = notifier.subscriptions.get((tenant, sub.id))
            if current is None or _definition(current.doc) != _definition(sub.doc):
                notifier.put(sub)
        for key in list(notifier.subscriptions):
            if key not in stored and key not in notifier.callbacks:
                notifier.remove(*key)

    async def _compile(
        self, tenant: str, payload: dict[str, Any], context: list[ContextSource] | None
    ) -> CompiledSubscription:
        terms: TermMap = await self.broker.contexts.term_map(context)
        doc = {k: v for k, v in payload.items() if k not in ("@context", *READ_ONLY)}
        doc.setdefault("id", new_subscription_id())
        if context:
            doc["jsonldContext"] = context
        sub = compile_subscription(tenant, doc, terms, **self._limits())
        if sub.expires_at is not None and sub.expires_at <= now_iso():
            raise BadRequestDataError("expiresAt is in the past")
        host = urlsplit(sub.endpoint).hostname or ""
        if not self.allow_private_endpoints:
            await refuse_private(
                host, f"notification endpoint {sub.endpoint}",
                "AGILECITY_ALLOW_PRIVATE_NOTIFICATION_URLS", BadRequestDataError,
            )  # fmt: skip
        return sub

    async def create(
        self, tenant: str, payload: object, context: list[ContextSource] | None
    ) -> str:
        """POST /subscriptions: validate, store, start matching; returns the id."""
        if not isinstance(payload, dict):
            raise BadRequestDataError("a subscription must be a JSON object")
        sub = await self._compile(tenant, payload, context)
        sub.doc["createdAt"] = sub.doc["modifiedAt"] = now_iso()
        await self.broker.store.put_subscription(tenant, sub.doc, create=True)
        self.broker.notifier.put(sub)
        return sub.id

    def subscribe(
        self,
        tenant: str,
        payload: dict[str, Any],
        callback: Callback,
        terms: TermMap,
    ) -> Callable[[], None]:
        """In-process subscription: ``callback(notification)`` for each matching change.

        ``payload`` is a Subscription without ``notification.endpoint`` (it is the callback).
        Returns a function that cancels the subscription.
        """
        doc = {"type": "Subscription", "id": new_subscription_id(), **payload}
        notification = dict(doc.get("notification") or {})
        notification["endpoint"] = {"uri": "http://in-process.invalid/callback"}
        doc["notification"] = notification
        sub = compile_subscription(tenant, doc, terms, **self._limits())
        self.broker.notifier.put(sub, callback)
        return lambda: self.broker.notifier.remove(tenant, sub.id)

    def render(self, doc: dict[str, Any], sub: CompiledSubscription) -> dict[str, Any]:
        """A stored subscription as the API shows it, with the status not yet saved added."""
        body = {k: v for k, v in doc.items() if k != "jsonldContext"}
        now = now_iso()
        if not sub.active:
            body["status"] = "paused"
        elif sub.expires_at is not None and sub.expires_at <= now:
            body["status"] = "expired"
        else:
            body["status"] = "active"
        body["isActive"] = sub.active
        notification = dict(body["notification"])
        for member in ("timesSent", "timesFailed"):
            notification.setdefault(member, 0)
        for member, value in sub.status.items():
            if isinstance(value, int):
                notification[member] = notification.get(member, 0) + value
            else:
                notification[member] = value
        body["notification"] = notification
        return body

    def _find(self, tenant: str, subscription_id: str) -> CompiledSubscription:
        sub = self.broker.notifier.subscriptions.get((tenant, subscription_id))
        if sub is None or (tenant, subscription_id) in self.broker.notifier.callbacks:
            raise ResourceNotFoundError(f"subscription {subscription_id} does not exist")
        return sub

    async def _stored(self, tenant: str, subscription_id: str) -> tuple[Any, CompiledSubscription]:
        check_uri(subscription_id, "subscription id")
        await self.broker.require_tenant(tenant)
        doc = await self.broker.store.get_subscription(tenant, subscription_id)
        if doc is None:
            raise ResourceNotFoundError(f"subscription {subscription_id} does not exist")
        if (tenant, subscription_id) not in self.broker.notifier.subscriptions:
            await self.reload()  # created by another process a moment ago
        return doc, self._find(tenant, subscription_id)

    async def retrieve(self, tenant: str, subscription_id: str) -> dict[str, Any]:
        """GET /subscriptions/{id}."""
        doc, sub = await self._stored(tenant, subscription_id)
        return self.render(doc, sub)

    async def list_page(self, tenant: str, limit: int | None, offset: int) -> tuple[list[Any], int]:
        """GET /subscriptions: a page in creation order, and the total."""
        await self.broker.require_tenant(tenant)
        limit = self.broker.limits.default_page_size if limit is None else limit
        if limit > self.broker.limits.max_page_size:
            raise TooManyResultsError(f"limit exceeds {self.broker.limits.max_page_size}")
        if limit < 0 or offset < 0:
            raise BadRequestDataError("limit and offset must not be negative")
        docs = await self.broker.store.list_subscriptions(tenant)
        registry = self.broker.notifier.subscriptions
        if any((tenant, d["id"]) not in registry for d in docs):
            await self.reload()
        page = []
        for doc in docs[offset : offset + limit]:
            doc.pop("_tenant", None)
            sub = registry.get((tenant, doc["id"]))
            if sub is not None:
                page.append(self.render(doc, sub))
        return page, len(docs)

    async def update(
        self, tenant: str, subscription_id: str, payload: object,
        context: list[ContextSource] | None,
    ) -> None:  # fmt: skip
        """PATCH /subscriptions/{id}: merge the given members (null removes one)."""
        if not isinstance(payload, dict):
            raise BadRequestDataError("the update must be a JSON object")
        stored, current = await self._stored(tenant, subscription_id)
        if payload.get("id", subscription_id) != subscription_id:
            raise BadRequestDataError("the subscription id cannot change")
        merged = dict(stored)
        for key, value in payload.items():
            if key == "notification" and isinstance(value, dict):
                merged["notification"] = {**merged["notification"], **value}
            elif value is None or value == "urn:ngsi-ld:null":
                merged.pop(key, None)
            else:
                merged[key] = value
        sub = await self._compile(tenant, merged, context or current.doc.get("jsonldContext"))
        if "createdAt" in stored:
            sub.doc["createdAt"] = stored["createdAt"]
        sub.doc["modifiedAt"] = now_iso()
        await self.broker.store.put_subscription(tenant, sub.doc, create=False)
        self.broker.notifier.put(sub)

    async def delete(self, tenant: str, subscription_id: str) -> None:
        """DELETE /subscriptions/{id}."""
        await self._stored(tenant, subscription_id)
        await self.broker.store.delete_subscription(tenant, subscription_id)
        self.broker.notifier.remove(tenant, subscription_id)


def _definition(doc: dict[str, Any]) -> dict[str, Any]:
    """A subscription document without its status members (what defines its matching)."""
    notification = {k: v for k, v in doc["notification"].items() if k not in STATUS_MEMBERS}
    return {**doc, "notification": notification}
