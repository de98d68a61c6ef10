"""The page's files as shipped in the package: self-contained (nothing from a CDN, every referenced file present,
uPlot with its licence), and written so the Content-Security-Policy holds (no inline script or style) and no
trainer string can become HTML (no innerHTML, no eval). Fast: no browser, no collector."""
from __future__ import annotations

import pathlib
import re

import pytest

STATIC = pathlib.Path(__file__).resolve().parents[2] / "atlas_collector" / "_web" / "static"
JS = sorted((STATIC / "js").glob("*.js"))


def test_index_references_only_shipped_files_and_has_nothing_inline() -> None:
    html = (STATIC / "index.html").read_text()
    refs = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert refs, "index.html references no assets"
    links = set(re.findall(r'<a [^>]*href="([^"]+)"', html))  # the page's own routes
    for ref in refs:
        if ref in links:
            assert ref.startswith("/") and not ref.startswith("//"), f"a link out of the UI: {ref}"
            continue
        assert ref.startswith("/static/"), f"index.html loads {ref} from outside the package"
        file = ref.removeprefix("/static/").split("?", 1)[0]
        assert (STATIC / file).is_file(), f"index.html references a missing file {ref}"
    assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", html), "an inline <script> (CSP: script-src 'self')"
    assert "<style" not in html and " style=" not in html, "inline style (CSP: style-src 'self')"
    assert not re.search(r"\son[a-z]+=", html), "an inline event handler"


def test_uplot_ships_with_its_licence() -> None:
    assert (STATIC / "vendor" / "uplot" / "uPlot.iife.min.js").stat().st_size > 40_000
    assert "MIT License" in (STATIC / "vendor" / "uplot" / "LICENSE").read_text()


@pytest.mark.parametrize("path", JS, ids=lambda p: p.name)
def test_module_never_parses_strings_as_html_or_code(path: pathlib.Path) -> None:
    code = path.read_text()
    for banned in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "new Function",
                   "setAttribute(\"style\"", "http://", "https://"):
        assert banned not in code, f"{path.name} uses {banned}"
    for target in re.findall(r'(?:from|import\()\s*"(\./[^"]+)"', code):
        assert (path.parent / target.split("?", 1)[0]).is_file(), f"{path.name} imports a missing module {target}"


def test_every_asset_url_carries_the_current_content_version() -> None:
    """The server caches `?v=` URLs for a year: a file changed without a new stamp would stay stale in browsers.
    After editing static/, run `.venv/bin/python -m atlas_collector._web._assets`."""
    from atlas_collector._web._assets import digest

    version = digest()
    hint = "the static files changed: run .venv/bin/python -m atlas_collector._web._assets"
    html = (STATIC / "index.html").read_text()
    refs = re.findall(r'(?:src|href)="(/static/[^"]+)"', html)
    assert refs and all(ref.endswith(f"?v={version}") for ref in refs), (hint, refs)
    for path in JS:
        for target in re.findall(r'(?:\bfrom|\bimport\()\s*"(\./[^"]+)"', path.read_text()):
            assert target.endswith(f".js?v={version}"), (hint, path.name, target)


def test_versioned_assets_are_cached_and_the_page_is_revalidated(tmp_path) -> None:
    """What the browser is told: the page and unversioned URLs revalidate, versioned ones are kept a year."""
    from starlette.testclient import TestClient

    from atlas_collector._web._app import _Static

    client = TestClient(_Static(directory=STATIC))
    assert "immutable" in client.get("/js/main.js?v=abc").headers["cache-control"]
    assert client.get("/js/main.js").headers["cache-control"] == "no-cache"
