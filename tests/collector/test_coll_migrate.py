"""Schema migrations (Alembic) on both stores: `atlas-collector migrate`, start-up, pre-migration stores."""
from __future__ import annotations

import subprocess
import sys
import pathlib
import uuid

import sqlalchemy as sa

from atlas_collector import Store
from atlas_collector._migrate import head

BIN = pathlib.Path(sys.executable).parent
TABLES = {"projects", "runs", "run_tags", "ingest_cursors", "architectures", "epochs", "step_batches", "logs",
          "commands", "diagnostic_runs", "issues", "run_streams", "alembic_version"}


def migrate(db_url: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(BIN / "atlas-collector"), "migrate", "--db", db_url], capture_output=True,
                          text=True, timeout=60)


def test_migrate_creates_then_finds_the_schema_up_to_date(db_url: str) -> None:
    first = migrate(db_url)
    assert first.returncode == 0, first.stderr
    assert f"schema migrated from empty to revision {head()}" in first.stdout
    assert "password" not in first.stdout
    engine = sa.create_engine(db_url)
    assert TABLES <= set(sa.inspect(engine).get_table_names())
    engine.dispose()
    again = migrate(db_url)
    assert again.returncode == 0 and f"schema up to date at revision {head()}" in again.stdout


def test_a_store_from_before_migrations_is_stamped_and_upgraded_keeping_its_runs(db_url: str) -> None:
    from alembic import command

    from atlas_collector._migrate import _config

    engine = sa.create_engine(db_url)
    with engine.connect() as conn:  # what the foundation's create_all made: revision 0001 without bookkeeping
        command.upgrade(_config(conn), "0001")
        conn.commit()
        conn.execute(sa.text("DROP TABLE alembic_version"))
        conn.execute(sa.text("INSERT INTO projects (name, created_at) VALUES ('old', 1.0)"))
        run_id = str(uuid.uuid4())
        conn.execute(sa.text(
            "INSERT INTO runs (id, project_id, name, status, framework, started_at, last_seen_at) "
            "VALUES (:id, (SELECT id FROM projects WHERE name = 'old'), 'kept', 'completed', 'pytorch', 1.0, 2.0)"),
            {"id": run_id})
        conn.commit()
    engine.dispose()

    done = migrate(db_url)
    assert done.returncode == 0, done.stderr
    assert f"to revision {head()}" in done.stdout
    store = Store(db_url)
    with store.connect() as conn:
        assert store.get_run(conn, run_id)["name"] == "kept"
        assert TABLES <= set(sa.inspect(conn).get_table_names())
    store.close()


def test_the_daemon_migrates_an_empty_store_at_start(db_url: str) -> None:
    from conftest import start_collector_process

    proc = start_collector_process(db_url)
    try:
        store = Store(db_url)
        with store.connect() as conn:
            from atlas_collector._migrate import current

            assert current(conn) == head()
        store.close()
    finally:
        assert proc.stop() == 0


def test_step_samples_of_an_older_store_are_carried_into_step_batches_and_back(db_url: str) -> None:
    import math

    from alembic import command

    from atlas_collector._migrate import _config

    engine = sa.create_engine(db_url)
    run_id = str(uuid.uuid4())
    with engine.connect() as conn:  # a store at revision 0003: one row per step sample
        command.upgrade(_config(conn), "0003")
        conn.commit()
        conn.execute(sa.text("INSERT INTO projects (name, created_at) VALUES ('old', 1.0)"))
        conn.execute(sa.text(
            "INSERT INTO runs (id, project_id, name, status, framework, started_at, last_seen_at) "
            "VALUES (:id, (SELECT id FROM projects WHERE name = 'old'), 'kept', 'completed', 'pytorch', 1.0, 2.0)"),
            {"id": run_id})
        rows = [{"r": run_id, "rank": 0, "step": i, "loss": 1.0 / i, "kind": None, "gkind": None, "t": 100.0 + i}
                for i in range(1, 2502)]
        rows[9].update(loss=None, kind="nan")
        rows[10].update(gkind="inf")
        rows.append({"r": run_id, "rank": 1, "step": 1, "loss": 0.5, "kind": None, "gkind": None, "t": 101.0})
        conn.execute(sa.text(
            "INSERT INTO step_samples (run_id, rank, step, epoch, time, loss, loss_kind, grad_norm_kind, lr, "
            "amp_skipped) VALUES (:r, :rank, :step, 0, :t, :loss, :kind, :gkind, 0.01, false)"), rows)
        conn.commit()
    engine.dispose()

    done = migrate(db_url)
    assert done.returncode == 0, done.stderr
    store = Store(db_url)
    with store.connect() as conn:
        got = store.steps(conn, run_id, limit=10_000)
        assert [r["step"] for r in got] == list(range(1, 2502))
        assert got[0]["loss"] == 1.0 and got[0]["lr"] == 0.01 and got[0]["time"] == 101.0
        assert math.isnan(got[9]["loss"]) and got[10]["grad_norm"] == math.inf
        assert [r["loss"] for r in store.steps(conn, run_id, rank=1)] == [0.5]
        batches = conn.execute(sa.text("SELECT count FROM step_batches WHERE run_id = :r AND rank = 0 ORDER BY id"),
                               {"r": run_id}).scalars().all()
        assert batches == [1000, 1000, 501]
    store.close()

    engine = sa.create_engine(db_url)
    with engine.connect() as conn:  # and back: one row per sample again, nothing lost
        command.downgrade(_config(conn), "0003")
        conn.commit()
        back = conn.execute(sa.text("SELECT step, loss, loss_kind, grad_norm_kind FROM step_samples "
                                    "WHERE run_id = :r AND rank = 0 ORDER BY step"), {"r": run_id}).all()
    engine.dispose()
    assert len(back) == 2501 and back[0][:2] == (1, 1.0)
    assert back[9][1:3] == (None, "nan") and back[10][3] == "inf"
