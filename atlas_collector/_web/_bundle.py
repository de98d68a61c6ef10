"""The page's script as one file: static/js/*.js (ES modules, the sources) joined into static/atlas.js.

A first visit to a run page used to fetch a dozen modules over the browser's six connections, and run.js could
not start its requests before the last of them (and the ones they import) had arrived. One file loads in one
round trip. The bundle is built here, in Python, from the modules as they are written (no Node build for users or
developers); the result is committed, and tests/ui/test_ui_browser_assets.py checks it matches the sources.

Each module becomes a function in a small registry, run the first time it is required, as a module is evaluated
once on first import: `import { a, b as c } from "./x.js"` becomes `const { a, b: c } = __require("x")` (the
imports stand at the top of each module, so the order of evaluation is the modules' own), `import("./x.js")`
(the router's pages) becomes `__import("x")` (a promise, as a dynamic import is), and each `export` declaration
exports its name through a getter (so an exported binding reads as it is now, as in a module). Only these forms
are accepted: anything else (`export default`, `export { ... }`, a re-export, `import.meta`) stops the build
with the file and line, rather than producing a bundle that behaves differently from the modules.

    .venv/bin/python -m atlas_collector._web._assets   # builds the bundle, then stamps the versions
"""
from __future__ import annotations

import pathlib
import re

STATIC = pathlib.Path(__file__).parent / "static"
SOURCES = STATIC / "js"
BUNDLE = STATIC / "atlas.js"
ENTRY = "main"

_NAME = r"[A-Za-z_$][\w$]*"
_STATIC_IMPORT = re.compile(r'^import \{([^}]*)\} from "\./(\w+)\.js(?:\?v=[0-9a-f]*)?";$')
_DYNAMIC_IMPORT = re.compile(r'\bimport\("\./(\w+)\.js(?:\?v=[0-9a-f]*)?"\)')
_EXPORT = re.compile(rf"^export ((?:async )?function\*? ({_NAME})|class ({_NAME})|(?:const|let) ({_NAME}))")
_UNSUPPORTED = re.compile(r"^\s*(?:export|import)\b|\bimport\.meta\b|\bimport\(")

HEADER = """\
// The Atlas UI's script: static/js/*.js joined into one file by atlas_collector/_web/_bundle.py (see there).
// Generated: edit the modules under static/js/ and run `python -m atlas_collector._web._assets`.
"""
RUNTIME = """\
(() => {
  "use strict";
  const factories = Object.create(null);
  const cache = Object.create(null);
  // A module's body runs once, on its first require. Its exports object is cached before the body runs: in a
  // cycle of imports, the module that closes it gets the exports of the one still running, as modules do.
  function __require(name) {
    if (name in cache) return cache[name];
    const exports = (cache[name] = Object.create(null));
    factories[name](__require, __import, exports);
    return exports;
  }
  // import(): the module, later (a dynamic import always settles asynchronously).
  function __import(name) {
    return Promise.resolve().then(() => __require(name));
  }
"""


class BundleError(ValueError):
    """A module uses a form of import or export the bundle does not translate."""


def _imports(names: str, where: str) -> str:
    """`a, b as c` as a destructuring pattern: `a, b: c`."""
    out = []
    for part in (p.strip() for p in names.split(",")):
        if not part:
            continue
        m = re.fullmatch(rf"({_NAME})(?:\s+as\s+({_NAME}))?", part)
        if not m:
            raise BundleError(f"{where}: cannot translate the imported name {part!r}")
        out.append(f"{m[1]}: {m[2]}" if m[2] else m[1])
    return ", ".join(out)


def module(path: pathlib.Path, known: set[str]) -> str:
    """One module as a registry entry."""
    exported: list[str] = []
    body: list[str] = []
    for number, line in enumerate(path.read_text().splitlines(), 1):
        where = f"{path.name}:{number}"
        imported = _STATIC_IMPORT.match(line)
        if imported:
            if imported[2] not in known:
                raise BundleError(f"{where}: imports a missing module {imported[2]}.js")
            body.append(f"const {{ {_imports(imported[1], where)} }} = __require({imported[2]!r});")
            continue
        export = _EXPORT.match(line)
        if export:
            exported.append(export[2] or export[3] or export[4])
            line = line.removeprefix("export ")
        for target in _DYNAMIC_IMPORT.findall(line):
            if target not in known:
                raise BundleError(f"{where}: imports a missing module {target}.js")
        line = _DYNAMIC_IMPORT.sub(lambda m: f"__import({m[1]!r})", line)
        if _UNSUPPORTED.search(line):
            raise BundleError(f"{where}: a form of import/export the bundle does not translate: {line.strip()!r}")
        body.append(line)
    getters = "".join(f"  {name}: {{ get: () => {name}, enumerable: true }},\n" for name in exported)
    # the body as written, not indented: a template literal may span lines
    text = "\n".join(body)
    return (f"factories[{path.stem!r}] = (__require, __import, __exports) => {{\n"
            f"Object.defineProperties(__exports, {{\n{getters}}});\n"
            f"{text}\n}};\n")


def build() -> str:
    """The bundle's text, from the modules as they are now."""
    sources = sorted(SOURCES.glob("*.js"))
    known = {p.stem for p in sources}
    if ENTRY not in known:
        raise BundleError(f"no {ENTRY}.js under {SOURCES}")
    parts = [HEADER, RUNTIME]
    for path in sources:
        parts.append(f"// ---- {path.name}\n")
        parts.append(module(path, known))
    parts.append(f"__require({ENTRY!r});\n}})();\n")
    return "".join(parts)


def write() -> bool:
    """Write the bundle; True when it changed."""
    text = build()
    if BUNDLE.is_file() and BUNDLE.read_text() == text:
        return False
    BUNDLE.write_text(text)
    return True
