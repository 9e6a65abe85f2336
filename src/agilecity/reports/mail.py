"""E-mail to reporters and followers when a report changes status (SMTP, best effort)."""

from __future__ import annotations

import asyncio
import logging
import smtplib
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formatdate, make_msgid

log = logging.getLogger("agilecity.reports")

STATUS_TEXT = {
    "submitted": "has been received",
    "acknowledged": "has been acknowledged by the city",
    "in_progress": "is being worked on",
    "resolved": "has been marked as fixed",
    "closed_not_fixed": "has been closed without a fix",
    "rejected": "has been rejected",
    "duplicate": "duplicates an existing report, which you now follow",
}


@dataclass(frozen=True)
class MailSettings:
    """Where mail goes (an empty host turns e-mail off) and who it is from."""

    host: str = ""
    port: int = 25
    sender: str = "agilecity@localhost"
    timeout: float = 10.0


def status_message(
    settings: MailSettings,
    to: str,
    report_id: str,
    service_name: str,
    status: str,
    note: str,
    link: str,
) -> EmailMessage:
    """The message telling ``to`` that a report changed status (with its tracking link)."""
    message = EmailMessage()
    message["From"] = settings.sender
    message["To"] = to
    message["Subject"] = f"Report {report_id} ({service_name}): {status.replace('_', ' ')}"
    message["Date"] = formatdate(localtime=False)
    message["Message-ID"] = make_msgid(domain=settings.sender.rpartition("@")[2] or "localhost")
    lines = [f"Your report {report_id} ({service_name}) {STATUS_TEXT.get(status, status)}."]
    if note:
        lines += ["", f"Note from the city: {note}"]
    lines += [
        "",
        f"Follow it, or reopen it if it is not fixed: {link}",
        "",
        "You receive this because you filed or followed this report.",
    ]
    message.set_content("\n".join(lines))
    return message


class Mailer:
    """Sends messages over SMTP in a worker thread; a failure is logged, never raised."""

    def __init__(self, settings: MailSettings) -> None:
        self.settings = settings
        self.sent = 0
        self.failed = 0

    @property
    def enabled(self) -> bool:
        """Whether an SMTP host is configured."""
        return bool(self.settings.host)

    def _send(self, messages: list[EmailMessage]) -> None:
        with smtplib.SMTP(
            self.settings.host, self.settings.port, timeout=self.settings.timeout
        ) as smtp:
            for message in messages:
                smtp.send_message(message)

    async def send(self, messages: list[EmailMessage]) -> bool:
        """Send messages in one SMTP session; False (and logged) when that fails."""
        if not self.enabled or not messages:
            return False
        try:
            await asyncio.to_thread(self._send, messages)
        except (OSError, smtplib.SMTPException):
            self.failed += len(messages)
            log.warning(
                "report e-mail to %s:%s failed",
                self.settings.host,
                self.settings.port,
                exc_info=True,
            )
            return False
        self.sent += len(messages)
        return True
