"""Message catalogues (French by default, English): the pages' and the services' strings.

The core strings live in ``web/messages/<lang>.json``; each city service may ship a
``messages.json`` (``{"fr": {...}, "en": {...}}``) in its package, merged in, so a new
service's panel is translated without touching the front-end core. Keys are dotted names.
"""

from __future__ import annotations

import importlib.resources
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import orjson

from agilecity.services.base import Service

LANGUAGES = ("fr", "en")
DEFAULT_LANGUAGE = "fr"
MESSAGES_DIR = Path(__file__).parent / "messages"


@dataclass(frozen=True)
class Catalogue:
    """Every message in every language."""

    messages: dict[str, dict[str, str]]

    def of(self, language: str) -> dict[str, str]:
        """The messages of a language (the default language's for a key it lacks)."""
        base = self.messages[DEFAULT_LANGUAGE]
        return {**base, **self.messages.get(language, {})}


def service_messages(service: Service) -> dict[str, dict[str, str]]:
    """The ``messages.json`` of a built-in service's package ({} when it has none)."""
    package = f"agilecity.services.{service.name}"
    try:
        text = importlib.resources.files(package).joinpath("messages.json").read_bytes()
    except (FileNotFoundError, ModuleNotFoundError):
        return {}
    loaded: dict[str, dict[str, str]] = orjson.loads(text)
    return loaded


def load_catalogue(services: Iterable[Service]) -> Catalogue:
    """The core catalogues with the given services' messages merged in."""
    messages: dict[str, dict[str, str]] = {}
    for language in LANGUAGES:
        messages[language] = orjson.loads((MESSAGES_DIR / f"{language}.json").read_bytes())
    for service in services:
        for language, extra in service_messages(service).items():
            if language in messages:
                messages[language].update(extra)
    return Catalogue(messages)


def pick_language(query: str | None, cookie: str | None) -> str:
    """The language asked in ``?lang=``, else the visitor's saved choice, else French."""
    for candidate in (query, cookie):
        if candidate in LANGUAGES:
            return candidate
    return DEFAULT_LANGUAGE
