"""Background checkpoints of the SQLite WAL, so no commit waits for one."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import threading
from pathlib import Path

from agilecity.store.sqlite_schema import connect

log = logging.getLogger("agilecity.store")
INTERVAL = 0.5  # seconds between background checkpoints while writes go on
WAL_LIMIT = 64 * 1024 * 1024  # bytes of WAL after which the writer restarts it


def _size(path: str) -> int:
    try:
        return Path(path).stat().st_size
    except OSError:
        return 0


class Checkpointer:
    """Copies the WAL into the database file in its own thread while writes go on.

    A PASSIVE checkpoint never blocks the writer or the readers; the WAL starts again from
    its beginning once a checkpoint has copied all of it, so the file stays small. Commits
    are durable in the WAL before this runs (a crash here loses nothing: SQLite replays the
    WAL on the next open). The writer calls ``committed`` after each group and
    ``restart_if_asked`` between groups.
    """

    def __init__(self, path: str) -> None:
        self.path = path
        self._thread: threading.Thread | None = None
        self._committed = threading.Event()
        self._restart = threading.Event()  # set by this thread, done by the writer
        self._closing = threading.Event()

    def start(self) -> None:
        self._closing.clear()
        self._thread = threading.Thread(target=self._run, name="sqlite-checkpoint", daemon=True)
        self._thread.start()

    async def stop(self) -> None:
        """Stop after a last checkpoint that truncates the WAL (call once writes are done)."""
        if self._thread is None:
            return
        self._closing.set()
        self._committed.set()
        await asyncio.to_thread(self._thread.join)
        self._thread = None

    def committed(self) -> None:
        """A write group committed: there is WAL to copy."""
        self._committed.set()

    def restart_if_asked(self, conn: sqlite3.Connection) -> None:
        """On the writer's connection between two groups: restart the WAL if it grew.

        Under writes that never pause no passive checkpoint ever sees the whole WAL copied,
        so it would never start again from its beginning; a RESTART checkpoint between two
        groups leaves only what was written since the last checkpoint to copy."""
        if not self._restart.is_set():
            return
        self._restart.clear()
        try:
            conn.execute("PRAGMA wal_checkpoint(RESTART)").fetchone()
        except sqlite3.Error:
            log.exception("restarting the WAL failed; the next checkpoint retries")

    def _run(self) -> None:
        conn = connect(self.path)
        try:
            while not self._closing.is_set():
                self._committed.wait()
                if self._closing.wait(INTERVAL):
                    break
                self._committed.clear()
                try:
                    _, frames, copied = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
                    if frames != copied and _size(self.path + "-wal") > WAL_LIMIT:
                        self._restart.set()
                except sqlite3.Error:
                    log.exception("background checkpoint failed; retrying")
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()  # all writers done
        finally:
            conn.close()
