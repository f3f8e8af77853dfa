"""The pages' static files, served by Tiergate itself under content-hashed names.

Each web package has a `static/` folder (gateway/webui/static holds the vendored htmx, Pico and uPlot
under `vendor/` and our own base stylesheet under `webui/`). A file `vendor/htmx.min.js` is served as
`/static/vendor/htmx.min.<hash>.js`, where <hash> is the start of its SHA-256: a changed file gets a new
URL, so every response can be cached forever (`immutable`) and a deploy never serves a stale script.
Templates ask for `asset("vendor/htmx.min.js")` and get the hashed URL."""

from __future__ import annotations

import hashlib
import mimetypes
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from litestar import Response, get
from litestar.datastructures import State
from litestar.exceptions import NotFoundException
from litestar.params import FromPath

STATIC_PREFIX = "/static/"
CACHE_FOREVER = "public, max-age=31536000, immutable"
HASH_CHARS = 12
_TYPES = {".js": "text/javascript", ".css": "text/css", ".svg": "image/svg+xml"}  # Litestar adds the charset


@dataclass(frozen=True, slots=True)
class Asset:
    path: Path
    url: str
    media_type: str
    content: bytes


@dataclass
class AssetRegistry:
    """Logical name → the file, its hashed URL and its bytes, read once at start (the files are small)."""

    by_name: dict[str, Asset] = field(default_factory=dict)
    by_url: dict[str, Asset] = field(default_factory=dict)

    @classmethod
    def scan(cls, folders: Iterable[Path]) -> AssetRegistry:
        registry = cls()
        for folder in folders:
            for path in sorted(p for p in folder.rglob("*") if p.is_file()):
                registry.add(path.relative_to(folder).as_posix(), path)
        return registry

    def add(self, name: str, path: Path) -> None:
        if name in self.by_name:
            raise ValueError(f"two static files are named {name!r}: {self.by_name[name].path} and {path}")
        content = path.read_bytes()
        digest = hashlib.sha256(content).hexdigest()[:HASH_CHARS]
        stem, dot, suffix = name.rpartition(".")
        hashed = f"{stem}.{digest}.{suffix}" if dot else f"{name}.{digest}"
        media_type = (
            _TYPES.get(path.suffix) or mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        )
        asset = Asset(path, f"{STATIC_PREFIX}{hashed}", media_type, content)
        self.by_name[name] = asset
        self.by_url[hashed] = asset

    def url(self, name: str) -> str:
        """The hashed URL of `name`; an unknown name is a programming error, so it fails loudly."""
        try:
            return self.by_name[name].url
        except KeyError:
            raise KeyError(f"no static file {name!r} (known: {sorted(self.by_name)})") from None


WEBUI_STATIC = Path(__file__).parent / "static"


@get("/static/{path:path}", include_in_schema=False, sync_to_thread=False)
def serve_static(path: FromPath[str], state: State) -> Response[bytes]:
    """A file by its hashed name, cached forever; anything else is a 404 (no directory listing, no
    unhashed names: a page that links a file always links the current one)."""
    registry: AssetRegistry = state.assets
    asset = registry.by_url.get(path.lstrip("/")[:300])
    if asset is None:
        raise NotFoundException("no such static file")
    return Response(
        asset.content,
        media_type=asset.media_type,
        headers={"Cache-Control": CACHE_FOREVER, "X-Content-Type-Options": "nosniff"},
    )
