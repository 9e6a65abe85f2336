"""Fixtures of the browser tests: headless Chromium driven by Playwright, and the demo town
running as a real ``agilecity demo`` process (SQLite, gateway on Mosquitto, auth on).

Chromium is Debian's (``/usr/bin/chromium``, installed by ``.ci/run``); without it the tests
are skipped with the reason, except in CI (``CI`` set), where they fail.
"""

from __future__ import annotations

import os
import random
import re
import shutil
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

CHROMIUM = os.environ.get("AGILECITY_TEST_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip
SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1280, "height": 900}
STAFF_USER, STAFF_PASSWORD = "agent.dupont", "correct horse battery staple"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Playwright's driver process (asyncio's Popen) is collected while it still exits at the
    session's end; its "still running" ResourceWarning is not the platform's doing."""
    for item in items:
        if "tests/web/" in str(item.path):
            item.add_marker(pytest.mark.filterwarnings(
                "ignore::pytest.PytestUnraisableExceptionWarning"))  # fmt: skip


def _unavailable(reason: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(reason + " (CI: browser tests are mandatory)")
    pytest.skip(reason)


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    """A headless Chromium (Playwright ``Browser``) for one test module: Playwright's sync
    API runs an event loop of its own, which must be gone before async tests run."""
    if not Path(CHROMIUM).is_file():
        _unavailable(f"{CHROMIUM} not found (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


def free_port() -> int:
    """A TCP port free on loopback now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass(frozen=True)
class DemoSite:
    """The running demo: its URL, the admin key it printed, a staff account, its store."""

    url: str
    admin_key: str
    staff_user: str
    staff_password: str
    db: str
    folder: Path

    def api(self) -> httpx.Client:
        """An HTTP client on the site with the admin key."""
        return httpx.Client(base_url=self.url, timeout=10,
                            headers={"Authorization": f"Bearer {self.admin_key}"})  # fmt: skip


@pytest.fixture(scope="session")
def demo_site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DemoSite]:
    """``agilecity demo`` (one backfilled day) in a temporary folder, until the session ends."""
    if shutil.which("mosquitto") is None and not _port_open(1883):
        _unavailable("Mosquitto is not running on 127.0.0.1:1883")
    folder = tmp_path_factory.mktemp("demo")
    db = f"sqlite:///{folder}/demo.sqlite"
    port = free_port()
    env = {**os.environ, "AGILECITY_DB": db, "AGILECITY_PORT": str(port),
           "AGILECITY_MQTT_SHARE_GROUP": f"web{uuid.uuid4().hex[:12]}",
           "AGILECITY_LOG_LEVEL": "warning",
           "AGILECITY_CONFIG": str(folder / "none.toml")}  # fmt: skip
    for name in ("AGILECITY_AUTH", "AGILECITY_SERVICES", "AGILECITY_WEB_BASEMAP"):
        env.pop(name, None)
    command = [sys.executable, "-m", "agilecity.cli"]
    subprocess.run([*command, "users", "add", STAFF_USER, "--role", "manager",
                    "--password-stdin"], input=STAFF_PASSWORD, text=True, env=env, check=True,
                   capture_output=True, cwd=folder)  # fmt: skip
    log = folder / "demo.log"
    seed = str(random.randrange(1_000, 1_000_000))  # its own MQTT topics, see tests/test_demo.py
    with log.open("wb") as out:
        process = subprocess.Popen(
            [*command, "demo", "--backfill-days", "1", "--seed", seed],
            env=env, cwd=folder, stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        key = _wait_live(process, log)
        yield DemoSite(f"http://127.0.0.1:{port}", key, STAFF_USER, STAFF_PASSWORD, db, folder)
    finally:
        process.terminate()
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            process.kill()


def _port_open(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def _wait_live(process: subprocess.Popen[bytes], log: Path) -> str:
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        text = log.read_text(errors="replace") if log.exists() else ""
        found = re.search(r"export AGILECITY_KEY=(ack_\S+)", text)
        if found and "demo town is live" in text:
            return found.group(1)
        if process.poll() is not None:
            raise AssertionError(f"agilecity demo exited with {process.returncode}:\n{text}")
        time.sleep(0.25)
    raise AssertionError("agilecity demo was not live after 240 s:\n" + log.read_text())
