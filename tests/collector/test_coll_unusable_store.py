"""A store the collector cannot use at start: one line naming the database and the reason, exit 1, no traceback
(it was a 149-line traceback)."""
from __future__ import annotations

import pathlib
import sqlite3
import subprocess

import pytest

from conftest import BIN, cli_env


def _cases(tmp_path: pathlib.Path) -> dict[str, tuple[str, str]]:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    read_only = tmp_path / "ro.db"
    sqlite3.connect(read_only).execute("CREATE TABLE t (x)")
    return {
        "folder-is-a-file": (f"sqlite:///{blocker}/atlas.db", "its folder"),
        "read-only-sqlite": (f"sqlite:///{read_only}", "readonly database"),
        "postgres-refuses": ("postgresql+psycopg://no_such_role@127.0.0.1:5432/test", 'role "no_such_role"'),
    }


@pytest.mark.parametrize(("case", "command"), [("folder-is-a-file", []), ("read-only-sqlite", []),
                                               ("postgres-refuses", []), ("folder-is-a-file", ["migrate"])])
def test_an_unusable_store_is_one_clear_line_at_start(tmp_path: pathlib.Path, case: str, command: list[str]) -> None:
    url, reason = _cases(tmp_path)[case]
    if case == "read-only-sqlite":  # root ignores permission bits: make the file immutable instead
        path = url.removeprefix("sqlite:///").partition("?")[0]
        url = f"sqlite:///{path}"
        if subprocess.run(["chattr", "+i", path], capture_output=True).returncode != 0:
            pytest.skip("chattr +i is not available here")
        request_cleanup = path
    else:
        request_cleanup = None
    try:
        _check(url, reason, command)
    finally:
        if request_cleanup:
            subprocess.run(["chattr", "-i", request_cleanup], capture_output=True)


def _check(url: str, reason: str, command: list[str]) -> None:
    done = subprocess.run([str(BIN / "atlas-collector"), *command, "--listen", "127.0.0.1:0", "--db", url],
                          capture_output=True, text=True, env=cli_env(), timeout=60)
    assert done.returncode == 1, done.stderr
    errors = [line for line in done.stderr.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1 and "cannot use the store" in errors[0] and reason in errors[0], done.stderr
    assert "Traceback" not in done.stderr


def test_a_taken_port_is_one_line_and_nothing_is_opened_or_migrated(tmp_path: pathlib.Path) -> None:
    """Issue 17: a port already taken said "Failed to bind" (after gRPC's own error line) once the store had been
    created and migrated."""
    import socket

    holder = socket.socket()
    holder.bind(("127.0.0.1", 0))
    holder.listen()
    port = holder.getsockname()[1]
    store = tmp_path / "never.db"
    try:
        done = subprocess.run([str(BIN / "atlas-collector"), "--db", f"sqlite:///{store}", "--listen",
                               f"127.0.0.1:{port}"], capture_output=True, text=True, env=cli_env(), timeout=60)
    finally:
        holder.close()
    assert done.returncode == 1 and "Traceback" not in done.stderr
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "is taken by another process" in lines[0] and f"127.0.0.1:{port}" in lines[0], lines
    assert not store.exists()


def test_a_store_folder_that_did_not_exist_is_created_and_said(tmp_path: pathlib.Path) -> None:
    """Issue 17: a SQLite folder that does not exist was created silently (a typo in --db went unnoticed)."""
    store = tmp_path / "new" / "deeper" / "atlas.db"
    proc = subprocess.Popen([str(BIN / "atlas-collector"), "--db", f"sqlite:///{store}", "--listen", "127.0.0.1:0"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=cli_env())
    try:
        assert proc.stdout is not None and proc.stdout.readline().startswith("listening on")
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=30)
    assert f"created the folder {store.parent} for the store" in err
    assert store.exists()
