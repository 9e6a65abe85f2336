"""Helpers of the Open311 tests: a real SMTP sink, GPS-tagged photos, form posts."""

from __future__ import annotations

import asyncio
import io
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from email import message_from_bytes
from email.message import Message
from typing import Any

import httpx
from aiosmtpd.controller import Controller
from PIL import Image

V2 = "/open311/v2"
LAT, LONG = 50.6927, 3.1746  # Roubaix, Grand-Place
GPS_LAT, GPS_LONG = (50.0, 41.0, 33.72), (3.0, 10.0, 28.56)
SECRET_CAMERA = "AgileCityTestCam-7731"
CONTACT = {
    "email": "jeanne.reporter@example.org",
    "first_name": "Jeanne",
    "last_name": "Vandenbroucke",
    "phone": "+33 6 12 34 56 78",
    "device_id": "device-8c1f0e77",
    "account_id": "account-55127",
}


class Sink:
    """An aiosmtpd handler keeping every message it receives."""

    def __init__(self) -> None:
        self.messages: list[Message] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        self.messages.append(message_from_bytes(envelope.original_content))
        return "250 OK"

    async def wait_for(self, count: int, timeout: float = 10.0) -> list[Message]:
        """At least ``count`` messages, waiting for them to arrive."""
        deadline = time.monotonic() + timeout
        while len(self.messages) < count and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        assert len(self.messages) >= count, [m["Subject"] for m in self.messages]
        return self.messages


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def smtp_sink() -> Iterator[tuple[Sink, int]]:
    """A real SMTP server on loopback and the messages it got."""
    sink, port = Sink(), free_port()
    controller = Controller(sink, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield sink, port
    finally:
        controller.stop()


def gps_jpeg(size: tuple[int, int] = (640, 480), orientation: int | None = None) -> bytes:
    """A JPEG with EXIF: GPS position, camera make/model, an owner name."""
    image = Image.new("RGB", size, (200, 120, 40))
    for x in range(0, size[0], 20):
        for y in range(size[1] // 2):
            image.putpixel((x, y), (20, 40, 220))
    exif = Image.Exif()
    exif[0x010F] = "AgileCityTestMake"  # Make
    exif[0x0110] = SECRET_CAMERA  # Model
    exif[0x013B] = "Jeanne Vandenbroucke"  # Artist
    if orientation:
        exif[0x0112] = orientation
    gps = exif.get_ifd(0x8825)
    gps[1], gps[2], gps[3], gps[4] = "N", GPS_LAT, "E", GPS_LONG
    out = io.BytesIO()
    image.save(out, format="JPEG", exif=exif.tobytes(), quality=90)
    return out.getvalue()


def png_with_text() -> bytes:
    """A PNG with a text chunk holding a name."""
    from PIL import PngImagePlugin

    info = PngImagePlugin.PngInfo()
    info.add_text("Author", "Jeanne Vandenbroucke")
    out = io.BytesIO()
    Image.new("RGBA", (100, 80), (0, 255, 0, 128)).save(out, format="PNG", pnginfo=info)
    return out.getvalue()


def assert_no_metadata(data: bytes) -> None:
    """The image carries no EXIF (no GPS), no XMP, no text: only pixels."""
    with Image.open(io.BytesIO(data)) as image:
        assert image.format == "JPEG"
        assert not image.getexif(), dict(image.getexif())
        assert "exif" not in image.info and "xmp" not in image.info
        assert "icc_profile" not in image.info
    for needle in (b"Exif", b"GPS", SECRET_CAMERA.encode(), b"Vandenbroucke", b"http://ns.adobe"):
        assert needle not in data, needle


async def submit(
    client: httpx.AsyncClient, fmt: str = "json", photo: bytes | None = None, **fields: Any
) -> httpx.Response:
    """POST requests.{fmt} (multipart when a photo is given)."""
    data = {
        "service_code": "illegal_dumping",
        "lat": str(LAT),
        "long": str(LONG),
        "description": "Mattresses dumped by the bins",
        **fields,
    }
    if photo is not None:
        files = {"media": ("photo.jpg", photo, "image/jpeg")}
        return await client.post(f"{V2}/requests.{fmt}", data=data, files=files)
    return await client.post(f"{V2}/requests.{fmt}", data=data)
