"""Composition of the report desk from the settings, and its periodic retention purge."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from pathlib import Path

from agilecity.broker.broker import Broker
from agilecity.errors import BadRequestDataError
from agilecity.reports.categories import load_categories
from agilecity.reports.desk import DeskOptions, ReportDesk
from agilecity.reports.mail import Mailer, MailSettings
from agilecity.reports.model import District, RateLimiter, parse_districts
from agilecity.reports.photos import PhotoLimits
from agilecity.reports.repository import ReportRepository
from agilecity.settings import Settings

log = logging.getLogger("agilecity.reports")
PURGE_EVERY = 3600.0  # seconds between retention purges


def public_url(settings: Settings) -> str:
    """The platform's base URL for links (no trailing slash)."""
    return (settings.open311_public_url or f"http://{settings.host}:{settings.port}").rstrip("/")


def load_districts(path: str) -> tuple[District, ...]:
    """The districts of the GeoJSON file at ``path`` (none when it is empty)."""
    if not path:
        return ()
    try:
        document = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise BadRequestDataError(f"open311 districts file {path}: {exc}") from exc
    return tuple(parse_districts(document))


def build_desk(settings: Settings, broker: Broker) -> ReportDesk:
    """The report desk for these settings."""
    base = public_url(settings)
    repository = ReportRepository(broker, load_categories(settings.open311_categories_file), base)
    mail = MailSettings(
        settings.open311_smtp_host, settings.open311_smtp_port, settings.open311_mail_from
    )
    limits = PhotoLimits(settings.open311_max_photo_bytes, settings.open311_max_photo_pixels)
    options = DeskOptions(
        public_url=base,
        duplicate_distance_m=settings.open311_duplicate_distance_m,
        contact_retention_days=settings.open311_contact_retention_days,
        photo_retention_days=settings.open311_photo_retention_days,
        max_description_chars=settings.open311_max_description_chars,
        photo_limits=limits,
        districts=load_districts(settings.open311_districts_file),
    )
    return ReportDesk(repository, Mailer(mail), options)


def build_rate_limiter(settings: Settings) -> RateLimiter:
    """The per-client submission limit (per process)."""
    return RateLimiter(settings.open311_rate_limit, settings.open311_rate_window_seconds)


class RetentionTask:
    """Runs the desk's retention purge every hour (the first a minute after start)."""

    def __init__(self, desk: ReportDesk, every: float = PURGE_EVERY) -> None:
        self.desk = desk
        self.every = every
        self._task: asyncio.Task[None] | None = None
        self.stopping = False

    async def start(self) -> None:
        """Start the periodic purge."""
        self._task = asyncio.create_task(self._forever())

    async def stop(self) -> None:
        """Stop it, and let the e-mails being sent go out."""
        self.stopping = True
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self.desk.drain()

    async def _forever(self) -> None:
        await asyncio.sleep(min(60.0, self.every))
        while not self.stopping:
            try:
                counts = await self.desk.purge()
                if any(counts.values()):
                    log.info("report retention: deleted %s", counts)
            except Exception:
                if self.stopping:  # psycopg turns a cancelled query into QueryCanceled
                    return
                log.exception("report retention purge failed; retried next time")
            await asyncio.sleep(self.every)
