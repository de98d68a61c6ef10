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


@pytest.mark.parametrize("path", [*JS, STATIC / "atlas.js", STATIC / "early.js"], ids=lambda p: p.name)
def test_module_never_parses_strings_as_html_or_code(path: pathlib.Path) -> None:
    code = path.read_text()
    for banned in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "new Function",
                   "setAttribute(\"style\"", "http://", "https://"):
        assert banned not in code, f"{path.name} uses {banned}"
    for target in re.findall(r'(?:from|import\()\s*"(\./[^"]+)"', code):
        assert (path.parent / target.split("?", 1)[0]).is_file(), f"{path.name} imports a missing module {target}"


def test_the_page_loads_one_script_built_from_the_current_modules() -> None:
    """index.html loads early.js (a run page's first requests), uPlot and the bundle (static/atlas.js), which must
    be the modules under static/js/ as they are now: after editing one, run
    `.venv/bin/python -m atlas_collector._web._assets`."""
    from atlas_collector._web import _bundle

    html = (STATIC / "index.html").read_text()
    scripts = re.findall(r'<script[^>]*\bsrc="/static/([^"?]+)', html)
    assert scripts == ["early.js", "vendor/uplot/uPlot.iife.min.js", "atlas.js"], scripts
    assert "type=\"module\"" not in html and "modulepreload" not in html, "index.html still loads the modules"
    assert (STATIC / "atlas.js").read_text() == _bundle.build(), (
        "static/atlas.js is older than the modules: run .venv/bin/python -m atlas_collector._web._assets")


def test_the_bundle_refuses_what_it_cannot_translate(tmp_path, monkeypatch) -> None:
    """The bundle translates named imports, dynamic imports of a module and `export` declarations; any other form
    stops the build (a bundle that behaved differently from the modules would be worse than none)."""
    from atlas_collector._web import _bundle

    monkeypatch.setattr(_bundle, "SOURCES", tmp_path)
    (tmp_path / "main.js").write_text('import { b as c } from "./lib.js?v=1";\nexport const a = c(1);\n')
    (tmp_path / "lib.js").write_text('export function b(x) { return import("./main.js"); }\n')
    built = _bundle.build()
    assert "const { b: c } = __require('lib');" in built and "__import('main')" in built
    assert "a: { get: () => a, enumerable: true }" in built and "\nconst a = c(1);" in built
    for bad in ('export default 1;', 'export { a };', 'import x from "./lib.js";', 'const u = import.meta.url;',
                'import { q } from "./missing.js";'):
        (tmp_path / "main.js").write_text(bad + "\n")
        with pytest.raises(_bundle.BundleError, match="main.js:1"):
            _bundle.build()


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

    from starlette.applications import Starlette
    from starlette.routing import Route

    from atlas_collector._web._app import Assets

    assets = Assets(STATIC)
    client = TestClient(Starlette(routes=[Route("/{name:path}", assets.endpoint)]))
    assert "immutable" in client.get("/js/main.js?v=abc").headers["cache-control"]
    plain = client.get("/js/main.js")
    assert plain.headers["cache-control"] == "no-cache"
    assert plain.content == (STATIC / "js" / "main.js").read_bytes()
    assert plain.headers["content-type"].startswith(("text/javascript", "application/javascript"))
    assert client.get("/js/main.js", headers={"if-none-match": plain.headers["etag"]}).status_code == 304
    assert client.get("/no-such.js").status_code == 404 and client.get("/js").status_code == 404
    assert assets.get("../_app.py") is None and assets.get("js/../../_app.py") is None  # nothing outside static/
    assert client.post("/js/main.js").status_code == 405


def test_an_edited_asset_is_served_without_a_restart(tmp_path) -> None:
    """Assets are held in memory, but a file changed on disk (size or time) is read again."""
    import os

    from starlette.testclient import TestClient

    from atlas_collector._web._app import Assets

    from starlette.applications import Starlette
    from starlette.routing import Route

    (tmp_path / "a.css").write_text("body{}")
    client = TestClient(Starlette(routes=[Route("/{name:path}", Assets(tmp_path).endpoint)]))
    first = client.get("/a.css")
    assert first.text == "body{}" and first.headers["content-type"] == "text/css; charset=utf-8"
    (tmp_path / "a.css").write_text("body{color:red}")
    os.utime(tmp_path / "a.css", ns=(1, 1))
    second = client.get("/a.css")
    assert second.text == "body{color:red}" and second.headers["etag"] != first.headers["etag"]
