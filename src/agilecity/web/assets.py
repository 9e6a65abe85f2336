"""Static assets of the pages: the project's own (``web/static``) and the npm packages
installed at setup (``web/node_modules``, never committed), compressed once, cached by ETag."""

from __future__ import annotations

import gzip
import hashlib
import mimetypes
from dataclasses import dataclass
from pathlib import Path

WEB_DIR = Path(__file__).parent
OWN_DIR = WEB_DIR / "static"
NODE_MODULES = WEB_DIR / "node_modules"
# URL prefix under /static/vendor/ -> the folder of an npm package the pages use
VENDOR = {
    "leaflet": NODE_MODULES / "leaflet" / "dist",
    "uplot": NODE_MODULES / "uplot" / "dist",
}
COMPRESSIBLE = (".js", ".css", ".json", ".svg", ".geojson", ".map")


@dataclass(frozen=True)
class Asset:
    """One file's bytes, its gzip form (for text) and its ETag."""

    body: bytes
    gzipped: bytes | None
    media_type: str
    etag: str


def make_asset(body: bytes, name: str, media_type: str | None = None) -> Asset:
    """An asset from bytes (compressed when worth it)."""
    kind = media_type or mimetypes.guess_type(name)[0] or "application/octet-stream"
    if kind.startswith("text/") or kind.endswith("javascript"):
        kind += "; charset=utf-8"
    packed = gzip.compress(body, 9, mtime=0) if name.endswith(COMPRESSIBLE) else None
    digest = hashlib.sha256(body).hexdigest()[:20]
    return Asset(body, packed if packed and len(packed) < len(body) else None, kind,
                 f'"{digest}"')  # fmt: skip


class AssetCache:
    """Files under the allowed folders, read once; anything else is not found."""

    def __init__(self) -> None:
        self._cache: dict[str, Asset | None] = {}

    def get(self, path: str) -> Asset | None:
        """The asset at ``path`` (``app.js``, ``vendor/leaflet/leaflet.js``), or None."""
        if path in self._cache:
            return self._cache[path]
        asset = None
        file = self._resolve(path)
        if file is not None:
            asset = make_asset(file.read_bytes(), file.name)
        self._cache[path] = asset
        return asset

    @staticmethod
    def _resolve(path: str) -> Path | None:
        parts = path.split("/")
        if not path or any(p in ("", ".", "..") or "\\" in p or "\0" in p for p in parts):
            return None
        if parts[0] == "vendor":
            if len(parts) < 3 or parts[1] not in VENDOR:
                return None
            root, rest = VENDOR[parts[1]], parts[2:]
        else:
            root, rest = OWN_DIR, parts
        file = root.joinpath(*rest)
        try:
            if file.resolve().is_relative_to(root.resolve()) and file.is_file():
                return file
        except (OSError, ValueError):
            return None
        return None


def vendor_installed() -> bool:
    """Whether ``npm ci`` has installed the front-end packages."""
    return all((folder).is_dir() for folder in VENDOR.values())
