"""Citizen reports: filing (without a photo, with a small and a 12-megapixel one), listing
in JSON and XML, statistics; in-process client, SQLite and (if reachable) PostgreSQL.

    .venv/bin/python bench/open311_reports.py [postgresql://... (an empty database)]
"""

from __future__ import annotations

import asyncio
import io
import logging
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.conftest import running_app, test_settings  # noqa: E402
from tests.open311.support import V2, gps_jpeg, submit  # noqa: E402


def big_jpeg() -> bytes:
    """A 4000×3000 photo-like JPEG (about 3.7 MB)."""
    image = Image.effect_noise((4000, 3000), 12).convert("RGB")
    out = io.BytesIO()
    image.save(out, format="JPEG", quality=85)
    return out.getvalue()


async def timed(runs: int, call: Callable[[], Coroutine[Any, Any, Any]]) -> float:
    """Median milliseconds of ``runs`` calls."""
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        await call()
        times.append(time.perf_counter() - start)
    return round(statistics.median(times) * 1000, 1)


async def run(db: str | None) -> list[str]:
    """One row of the table."""
    overrides: dict[str, Any] = {
        "open311_rate_limit": 0,
        "open311_max_body_bytes": 30_000_000,
        "open311_max_photo_bytes": 29_000_000,
    }
    if db:
        overrides["db"] = db
    settings = test_settings(Path(tempfile.mkdtemp()), **overrides)
    small, big = gps_jpeg(), big_jpeg()
    async with running_app(settings) as (_, client):
        plain = await timed(300, lambda: submit(client))
        with_small = await timed(20, lambda: submit(client, photo=small))
        with_big = await timed(10, lambda: submit(client, photo=big))
        count = len((await client.get(f"{V2}/requests.json")).json())
        listing = await timed(10, lambda: client.get(f"{V2}/requests.json"))
        listing_xml = await timed(10, lambda: client.get(f"{V2}/requests.xml"))
        stats = await timed(5, lambda: client.get("/reports/statistics"))
    store = "PostgreSQL" if db else "SQLite"
    return [
        store,
        str(plain),
        str(with_small),
        str(with_big),
        str(count),
        str(listing),
        str(listing_xml),
        str(stats),
    ]


def main() -> None:
    """Print the table."""
    logging.disable(logging.WARNING)
    rows = [asyncio.run(run(None))]
    if len(sys.argv) > 1:
        rows.append(asyncio.run(run(sys.argv[1])))
    head = [
        "store",
        "file (ms)",
        "+640×480 photo",
        "+12 Mpx photo",
        "reports",
        "list JSON",
        "list XML",
        "statistics",
    ]
    print("| " + " | ".join(head) + " |")
    print("|" + " --- |" * len(head))
    for row in rows:
        print("| " + " | ".join(row) + " |")


if __name__ == "__main__":
    main()
