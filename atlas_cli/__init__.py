"""The `atlas` command line: runs, issues, health, live watch, control, and the agent.

Reads runs only through the collector's query service; never imports torch."""
from __future__ import annotations

from ._app import cli
from . import _runs as _runs  # noqa: F401  (registers commands)
from . import _demo as _demo  # noqa: F401
from . import _sync as _sync  # noqa: F401
from . import _issues as _issues  # noqa: F401
from . import _inspect as _inspect  # noqa: F401
from . import _control as _control  # noqa: F401
from . import _export as _export  # noqa: F401
from . import _watch as _watch  # noqa: F401
from . import _metrics as _metrics  # noqa: F401
from . import _ask as _ask  # noqa: F401
from . import _ui as _ui  # noqa: F401
from . import _alerts as _alerts  # noqa: F401

__all__ = ["cli", "main"]


def main() -> None:
    """The `atlas` script. A failure nobody foresaw is still one line on stderr and exit 1 (ATLAS_DEBUG=1 shows the
    traceback)."""
    import os
    import sys

    try:
        cli(prog_name="atlas")
    except Exception as exc:  # noqa: BLE001 - the last resort: never a traceback for users
        if os.environ.get("ATLAS_DEBUG"):
            raise
        import click

        from ._terminal import safe

        first = safe(str(exc).splitlines()[0]) if str(exc) else ""
        click.echo(f"Error: internal error: {type(exc).__name__}: {first} "
                   "(set ATLAS_DEBUG=1 to see the traceback)", err=True)
        sys.exit(1)
