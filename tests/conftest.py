"""Shared fixtures: real collectors (subprocess or in-process), real SQLite files, the real PostgreSQL."""
from __future__ import annotations

import json
import os
import pathlib
import signal
import socket
import subprocess
import sys
import uuid
from typing import Iterator

import pytest

BIN = pathlib.Path(sys.executable).parent
PG_ADMIN_URL = os.environ.get("ATLAS_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark every test that needs the PostgreSQL server `postgres` (it asks for `pg_database`, or is the
    "postgres" case of a store parametrization), and every test of a module listed in SLOW_MODULES `slow`, so that
    `./scripts/test -m "not postgres and not slow"` is the fast subset that runs anywhere."""
    for item in items:
        callspec = getattr(item, "callspec", None)
        if ("pg_database" in getattr(item, "fixturenames", ())
                or (callspec is not None and ("postgres" in callspec.params.values() or "postgres" in callspec.id))):
            item.add_marker(pytest.mark.postgres)
        module = item.nodeid.split("::", 1)[0]
        if module in SLOW_MODULES:
            item.add_marker(pytest.mark.slow)


# Modules whose tests train real models or start real servers and browsers: each took 10 s or more in total in a
# full run (`./scripts/test --durations=0`, summed per module; 2026-12-04, a loaded 2-core machine). The rest of the
# suite, without PostgreSQL, is the fast subset: `./scripts/test -m "not postgres and not slow"`.
SLOW_MODULES: frozenset[str] = frozenset({
    "tests/faults/test_fault_suite.py",  # (not in that run: 31 fault programs and 26 controls, ~90 s idle)
    "tests/alerts/test_alerts_cli_config.py",
    "tests/alerts/test_alerts_restart.py",
    "tests/capture/test_cap_layers.py",
    "tests/capture/test_cap_notice.py",
    "tests/capture/test_cap_tls.py",
    "tests/cli/test_cli_agent.py",
    "tests/cli/test_cli_commands.py",
    "tests/cli/test_cli_field_order.py",
    "tests/cli/test_cli_hostile.py",
    "tests/cli/test_cli_poison_rows.py",
    "tests/cli/test_cli_sync_damaged.py",
    "tests/cli/test_cli_watch.py",
    "tests/collector/test_coll_commands.py",
    "tests/collector/test_coll_diagnostics.py",
    "tests/collector/test_coll_hostile.py",
    "tests/collector/test_coll_migrate.py",
    "tests/integrations/test_int_transformers.py",
    "tests/integrations/test_int_user_metrics.py",
    "tests/integrations/test_int_wandb_compat.py",
    "tests/otel/test_otel_export.py",
    "tests/otel/test_otel_phoenix.py",
    "tests/otel/test_otel_replay.py",
    "tests/reliability/test_rel_acks.py",
    "tests/reliability/test_rel_exit.py",
    "tests/reliability/test_rel_fuzz.py",
    "tests/reliability/test_rel_hostile.py",
    "tests/reliability/test_rel_network.py",
    "tests/capture/test_cap_control.py",
    "tests/contract/test_contract_spine.py",
    "tests/ui/test_ui_api.py",
    "tests/ui/test_ui_browser.py",
})


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No test reads or writes the developer's ~/.atlas or inherits their ATLAS_* settings."""
    for var in list(os.environ):
        if var.startswith("ATLAS_") and var != "ATLAS_TEST_PG":
            monkeypatch.delenv(var)
    monkeypatch.setenv("ATLAS_HOME", str(tmp_path / "atlas-home"))


def cli_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ATLAS_") or k == "ATLAS_HOME"}
    env.update(extra)
    return env


def free_port() -> int:
    """A loopback port nothing listens on (now)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def atlas_json(address: str, *args: str) -> object:
    """Run the real `atlas` CLI with --json against `address` and parse what it prints."""
    done = subprocess.run([str(BIN / "atlas"), "--collector", address, *args, "--json"], capture_output=True,
                          text=True, env=cli_env(), timeout=60)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def spool_files(home: pathlib.Path) -> list[pathlib.Path]:
    """The spool logs a trainer left under ATLAS_HOME (records not yet acknowledged)."""
    return sorted((home / "spool").rglob("*.log")) if (home / "spool").exists() else []


class CollectorProcess:
    def __init__(self, proc: subprocess.Popen[str], address: str, db_url: str) -> None:
        self.proc = proc
        self.address = address
        self.db_url = db_url

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 20.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        return self.proc.wait(timeout)


def start_collector_process(db_url: str, *extra: str, listen: str = "127.0.0.1:0") -> CollectorProcess:
    proc = subprocess.Popen(
        [str(BIN / "atlas-collector"), "--listen", listen, "--db", db_url, *extra],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=cli_env(),
    )
    assert proc.stdout is not None
    first = proc.stdout.readline().strip()
    if not first.startswith("listening on "):
        proc.kill()
        raise RuntimeError(f"collector did not start: first line {first!r}")
    return CollectorProcess(proc, first.removeprefix("listening on "), db_url)


@pytest.fixture
def collector_process(tmp_path: pathlib.Path) -> Iterator[CollectorProcess]:
    """`atlas-collector` as a real subprocess on a free loopback port with a SQLite file."""
    proc = start_collector_process(f"sqlite:///{tmp_path / 'collector.db'}")
    try:
        yield proc
    finally:
        if proc.proc.poll() is None:
            proc.stop()


@pytest.fixture(scope="session")
def pg_database() -> Iterator[str]:
    """A fresh database on the machine's PostgreSQL for this test session, dropped afterwards."""
    import sqlalchemy as sa

    name = f"atlas_test_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    except sa.exc.OperationalError as exc:
        pytest.fail(f"PostgreSQL at {PG_ADMIN_URL} is not reachable ({exc.orig}); start it with "
                    "`pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start`")
    url = sa.engine.make_url(PG_ADMIN_URL).set(database=name).render_as_string(hide_password=False)
    try:
        yield url
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def reset_pg(url: str) -> str:
    """Empty the PostgreSQL database at `url`: every table, of any schema revision (a migration test may leave an
    older revision's tables behind), and Alembic's bookkeeping."""
    import sqlalchemy as sa

    engine = sa.create_engine(url, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(sa.text("DROP SCHEMA public CASCADE"))
        conn.execute(sa.text("CREATE SCHEMA public"))
    engine.dispose()
    return url


@pytest.fixture(params=["sqlite", "postgres"])
def db_url(request: pytest.FixtureRequest, tmp_path: pathlib.Path) -> Iterator[str]:
    """The store on both backends: a SQLite file, and a clean schema in the session's PostgreSQL database."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'store.db'}"
        return
    yield reset_pg(request.getfixturevalue("pg_database"))
