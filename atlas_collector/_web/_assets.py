"""Versioned asset URLs: every URL of the page's own files carries `?v=<hash of the static tree>`.

The server caches a `/static/...?v=` URL for a year (`immutable`), so an open of the run page loads no asset
over the network once the browser has it. The version is a hash of the files' contents (with the version strings
themselves left out), stamped into index.html's links and scripts and into the modules' imports; a changed file
changes every URL. The stamp is committed (no build step for users); tests/ui/test_ui_browser_assets.py checks it is
current, and after editing a file under static/ one runs (it first rebuilds the page's one script, `_bundle`):

    .venv/bin/python -m atlas_collector._web._assets
"""
from __future__ import annotations

import hashlib
import pathlib
import re

STATIC = pathlib.Path(__file__).parent / "static"
_VERSION = re.compile(rb"\?v=[0-9a-f]*")
_INDEX_REF = re.compile(r'((?:href|src)=")(/static/[^"?]+)(?:\?v=[0-9a-f]*)?(")')
_IMPORT = re.compile(r'((?:\bfrom|\bimport\()\s*")(\./[^"?]+\.js)(?:\?v=[0-9a-f]*)?(")')


def files() -> list[pathlib.Path]:
    return sorted(p for p in STATIC.rglob("*") if p.is_file())


def digest() -> str:
    """The hash of the static tree's contents (paths and bytes, version strings removed): 12 hex digits."""
    h = hashlib.sha256()
    for path in files():
        h.update(path.relative_to(STATIC).as_posix().encode() + b"\0")
        h.update(_VERSION.sub(b"", path.read_bytes()) + b"\0")
    return h.hexdigest()[:12]


def stamp() -> str:
    """Write the current version into index.html and the modules' imports; returns it."""
    version = digest()
    index = STATIC / "index.html"
    index.write_text(_INDEX_REF.sub(lambda m: f"{m[1]}{m[2]}?v={version}{m[3]}", index.read_text()))
    for path in sorted((STATIC / "js").glob("*.js")):
        text = path.read_text()
        new = _IMPORT.sub(lambda m: f"{m[1]}{m[2]}?v={version}{m[3]}", text)
        if new != text:
            path.write_text(new)
    return version


if __name__ == "__main__":
    from . import _bundle

    print(f"{_bundle.BUNDLE.name} {'rebuilt' if _bundle.write() else 'unchanged'}; static assets stamped with "
          f"v={stamp()}")
