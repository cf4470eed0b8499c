"""Templates and static files, loaded from the package and nothing else.

Owns how pages are rendered: Bottle SimpleTemplate files in ``views/`` with
HTML escaping on for every ``{{value}}`` (the templates use ``{{!...}}`` only
for ``base`` in the layout, which is itself rendered, escaped template
output). Static files are a fixed set read once from ``static/`` at start and
served from memory, so no request path ever reaches the filesystem.
"""

from __future__ import annotations

import hashlib
import mimetypes
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import bottle

PACKAGE = Path(__file__).resolve().parent
VIEWS_DIR = PACKAGE / "views"
STATIC_DIR = PACKAGE / "static"
TYPES = {
    ".css": "text/css; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
}


class Views:
    def __init__(self, root: Path = VIEWS_DIR) -> None:
        self.root = root
        self._cache: dict[str, Any] = {}
        self._lock = threading.Lock()

    def _template(self, name: str) -> Any:
        with self._lock:
            tpl = self._cache.get(name)
            if tpl is None:
                tpl = bottle.SimpleTemplate(name=name, lookup=[str(self.root)])
                self._cache[name] = tpl
            return tpl

    def render(self, name: str, **values: Any) -> str:
        text: str = self._template(name).render(**values)
        return text


@dataclass(frozen=True)
class StaticFile:
    body: bytes
    content_type: str
    etag: str


def load_static(root: Path = STATIC_DIR) -> dict[str, StaticFile]:
    files = {}
    for path in sorted(root.iterdir()):
        if not path.is_file() or path.name.startswith("."):
            continue
        body = path.read_bytes()
        kind = TYPES.get(path.suffix) or mimetypes.guess_type(path.name)[0]
        files[path.name] = StaticFile(
            body=body,
            content_type=kind or "application/octet-stream",
            etag='"' + hashlib.sha256(body).hexdigest()[:20] + '"',
        )
    return files
