"""Time a pathological regex, ``(a+)+$`` on ``aaa...b``, through idPattern and q on each store.

A backtracking engine takes time exponential in the length of the a-run; a linear-time one
does not. Entity ids are at most 2048 characters, so idPattern sees at most 2000 a's.
Prints one markdown table. Usage:
``.venv/bin/python bench/hostile_regex.py [--db sqlite] [--db postgresql://...] [--sizes 16,24]``.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path

import httpx

from agilecity.app import build_app
from agilecity.settings import Settings

PATTERN = "(a+)+$"


async def measure(db: str, sizes: list[int]) -> list[tuple[str, int, str, float, int]]:
    """(store, size, parameter, seconds, status) for each size and each regex parameter."""
    settings = Settings.load({"db": db}, env={}, toml_path=Path("/nonexistent.toml"))
    app = build_app(settings)
    rows: list[tuple[str, int, str, float, int]] = []
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:
            base = "/ngsi-ld/v1/entities"
            for size in sizes:
                text = "a" * size + "b"
                id_text = text[-2000:]  # ids are at most 2048 characters
                entity = {"id": f"urn:x:{id_text}", "type": "Hostile", "name": text}
                created = await client.post(base, json=entity)
                assert created.status_code in (201, 409), created.text
                for name, params in (
                    ("idPattern", {"type": "Hostile", "idPattern": PATTERN}),
                    ("q ~=", {"type": "Hostile", "q": f"name~={PATTERN}"}),
                ):
                    start = time.perf_counter()
                    response = await client.get(base, params=params)
                    elapsed = time.perf_counter() - start
                    rows.append((db.split(":")[0], size, name, elapsed, response.status_code))
                await client.delete(f"{base}/{entity['id']}")
    return rows


def main() -> int:
    """Run the measurement on each --db (a temporary SQLite file by default)."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--db", action="append", help="store URL, or 'sqlite' for a temporary file (default)"
    )
    parser.add_argument("--sizes", default="16,20,22,24,10000,100000")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    with tempfile.TemporaryDirectory() as tmp:
        rows: list[tuple[str, int, str, float, int]] = []
        for db in args.db or ["sqlite"]:
            url = f"sqlite:///{tmp}/bench.sqlite" if db == "sqlite" else db
            rows.extend(asyncio.run(measure(url, sizes)))
    print(f"| store | a-run length | parameter | seconds | status |  (pattern {PATTERN})")
    print("|---|---:|---|---:|---:|")
    for store, size, name, seconds, status in rows:
        print(f"| {store} | {size} | {name} | {seconds:.4f} | {status} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
