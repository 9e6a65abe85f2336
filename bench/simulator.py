"""Demo-town simulator: generation speed, and backfill speed through the in-process app.

Usage: ``.venv/bin/python bench/simulator.py [--days 21] [--backfill-days 3] [--db URL]``
(default store: a fresh SQLite file in a temporary folder). Prints one markdown table.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from collections import Counter
from datetime import timedelta
from pathlib import Path

import httpx

from agilecity.app import build_app
from agilecity.ingest.simulator import runner
from agilecity.ingest.simulator.town import Town
from agilecity.settings import Settings


def generation(days: float) -> tuple[int, float, Counter[str]]:
    """Readings of the whole town over ``days``, seconds taken, readings per device kind."""
    town = Town(seed=1)
    began = time.perf_counter()
    kinds: Counter[str] = Counter()
    for reading in town.readings(town.origin, town.origin + timedelta(days=days)):
        kinds[reading.device_id.split("-")[0]] += 1
    return sum(kinds.values()), time.perf_counter() - began, kinds


async def backfill(days: float, db: str, folder: Path) -> runner.BackfillSummary:
    """Backfill ``days`` of the whole town into a fresh store through the temporal API."""
    settings = Settings.load(
        {"db": db, "auth": False}, env={}, toml_path=folder / "absent.toml"
    )  # the open mode: the benchmark measures the writes, not the key check
    app = build_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:
            town = Town(seed=1)
            await runner.create_entities(client, town)
            end = town.origin + timedelta(days=days)
            return await runner.backfill(client, town, town.origin, end, progress=sys.stderr)


def main() -> None:
    """Run both measures and print the table."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--days", type=float, default=21.0, help="days generated (default 21)")
    parser.add_argument("--backfill-days", type=float, default=3.0, help="days backfilled")
    parser.add_argument("--db", help="store URL (default: a temporary SQLite file)")
    args = parser.parse_args()
    count, seconds, kinds = generation(args.days)
    with tempfile.TemporaryDirectory() as folder:
        db = args.db or f"sqlite:///{folder}/bench.sqlite"
        summary = asyncio.run(backfill(args.backfill_days, db, Path(folder)))
    print("| measure | readings | seconds | readings/s |")
    print("| --- | ---: | ---: | ---: |")
    print(f"| generate {args.days:g} days | {count:,} | {seconds:.1f} | {count / seconds:,.0f} |")
    print(
        f"| backfill {args.backfill_days:g} days ({summary.instances:,} instances) | "
        f"{summary.readings:,} | {summary.seconds:.1f} | {summary.rate:,.0f} |"
    )
    per_day = ", ".join(f"{k} {v / args.days:,.0f}" for k, v in kinds.most_common())
    print(f"\nreadings per simulated day: {per_day}")


if __name__ == "__main__":
    main()
