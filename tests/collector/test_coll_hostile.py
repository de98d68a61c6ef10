"""Hostile stored rows, stores and settings at the collector (issue 18, items 1, 2 and 3).

- Rows an older collector let in (a negative rank, an epoch past 2^31, a device count of -1, a payload whose epoch
  or time no field can hold, 300 tags) must never make a query fail with 'Value out of range': the answer carries the
  value made to fit, and a log line says so. On both stores, with what each can hold.
- ListRuns pages an answer that would not fit a default gRPC client (4 MiB), however large the stored runs are.
- A store the collector cannot write to (read-only SQLite, read-only PostgreSQL) is refused at start with one line,
  even when its schema is already current (it used to start, then fail every write).
- A token a gRPC header cannot carry is refused at start naming where it came from."""
from __future__ import annotations

import logging
import pathlib
import sqlite3
import subprocess
import sys
import time
import uuid

import grpc
import pytest
import sqlalchemy as sa

from atlas_collector import Store, run_server
from atlas_collector import _queries
from atlas_collector import _schema as s
from atlas_proto.v1 import query_pb2 as qpb

from coll_support import Trainer, query
from conftest import cli_env

BIN = pathlib.Path(sys.executable).parent


@pytest.fixture(autouse=True)
def _every_repair_logged(monkeypatch: pytest.MonkeyPatch) -> None:
    """Repairs are logged at most once a minute per kind; each test starts with none logged."""
    monkeypatch.setattr(_queries, "_last_logged", {}, raising=False)


def _stored_run(address: str) -> str:
    t = Trainer(address).start(project="hostile", name="poisoned")
    t.steps([1.0, 0.9, 0.8])
    t.epoch(0, 1.0, val_loss=1.1)
    t.epoch(1, 0.9, val_loss=1.0)
    t.end()
    t.wait_acked()
    t.finish()
    return t.run_id


def _poison(store: Store, run_id: str) -> None:
    """What each store can hold: PostgreSQL's columns are int32 and varchar(200), SQLite's hold anything."""
    sqlite = store.dialect == "sqlite"
    big = 2**32 if sqlite else 2**31 - 1
    with store.begin() as conn:
        conn.execute(sa.update(s.runs).where(s.runs.c.id == run_id).values(
            epochs=big, world_size=-1, status="exploded", device={"kind": "cpu", "count": -1, "name": 7}))
        conn.execute(sa.insert(s.logs), [
            {"run_id": run_id, "rank": -1, "time": time.time(), "level": "ERROR", "logger": "x", "message": "neg",
             "epoch": -1, "kind": "error"},
            {"run_id": run_id, "rank": 0, "time": 1e18, "level": "INFO", "logger": "x", "message": "far",
             "epoch": big, "kind": "console"}])
        conn.execute(sa.insert(s.epochs).values(
            run_id=run_id, rank=0, epoch=big, payload={
                "epoch": 2**32 + 5, "globalStep": "-3", "endedAt": "10000-01-01T00:00:00Z", "durationSeconds": "x",
                "loss": {"count": "-1", "mean": 0.5}, "valMetrics": {"val_loss": 0.7, "bad": "text"},
                "lr": [0.1, "nope"]}))
        conn.execute(sa.insert(s.architectures).values(run_id=run_id, model_class="Net", total_parameters=10, payload={
            "modelClass": "Net", "totalParameters": "-5", "layers": [{"name": "fc", "type": "Linear",
                                                                      "parameters": "-1"}]}))
        conn.execute(sa.insert(s.run_tags), [{"run_id": run_id, "tag": f"t{i:03d}" + ("x" * 5000 if sqlite else "")}
                                             for i in range(300)])


def test_stored_values_out_of_range_are_answered_made_to_fit(db_url: str, caplog: pytest.LogCaptureFixture) -> None:
    with run_server(db=db_url) as collector:
        run_id = _stored_run(collector.address)
        healthy = _stored_run(collector.address)
        _poison(collector.store, run_id)
        q = query(collector.address)
        with caplog.at_level(logging.WARNING, logger="atlas_collector._queries"):
            listed = q.ListRuns(qpb.ListRunsRequest(), timeout=10)
            detail = q.GetRun(qpb.RunRef(run=run_id), timeout=10)
            logs = q.GetLogs(qpb.LogsRequest(run=run_id), timeout=10)
            epochs = q.GetEpochs(qpb.EpochsRequest(run=run_id), timeout=10)
            arch = q.GetArchitecture(qpb.RunRef(run=run_id), timeout=10)

    assert {r.id for r in listed.runs} == {run_id, healthy}
    summary = next(r for r in listed.runs if r.id == run_id)
    assert summary.epochs == min(2**32 - 1, 2**31 - 1 if "postgresql" in db_url else 2**32 - 1)
    assert summary.status == 0  # "exploded" is no status: unspecified, not an error
    assert len(summary.tags) == 256 and all(len(t) <= 200 for t in summary.tags)  # what ingest takes
    assert (detail.world_size, detail.device.kind, detail.device.count) == (0, "cpu", 0)
    assert sorted((r.message, r.rank, r.epoch) for r in logs.records) == sorted(
        [("neg", 0, 0), ("far", 0, 2**32 - 1 if "sqlite" in db_url else 2**31 - 1)])
    assert not logs.records[-1].HasField("time") or logs.records[-1].time.seconds < 253402300800
    last = epochs.epochs[-1].summary
    assert (last.epoch, last.global_step, last.loss.count, last.loss.mean) == (2**32 - 1, 0, 0, 0.5)
    assert not last.HasField("ended_at") and dict(last.val_metrics) == {"val_loss": 0.7}
    assert list(last.lr) == [0.1]
    assert [(x.name, x.parameters) for x in arch.layers] == [("fc", 0)] and arch.total_parameters == 0
    repaired = [r.getMessage() for r in caplog.records]
    kinds = ["run tags", "run device", "run world size", "log record rank", "epoch summary", "architecture"]
    for what in kinds + (["run epoch count"] if "sqlite" in db_url else []):  # PostgreSQL's int32 fits a uint32
        assert any(f"stored {what} of run {run_id}" in m for m in repaired), (what, repaired)


def _insert_runs(store: Store, count: int, *, tags: int = 0, name_bytes: int = 10) -> list[str]:
    ids = [str(uuid.uuid4()) for _ in range(count)]
    now = time.time()
    with store.begin() as conn:
        project = conn.execute(sa.insert(s.projects).values(name=f"big-{uuid.uuid4().hex[:6]}", created_at=now)
                               .returning(s.projects.c.id)).scalar_one()
        conn.execute(sa.insert(s.runs), [
            {"id": run_id, "project_id": project, "name": f"{i:04d}" + "n" * max(0, name_bytes - 4),
             "status": "completed", "framework": "pytorch", "started_at": now - i, "last_seen_at": now - i}
            for i, run_id in enumerate(ids)])
        if tags:
            conn.execute(sa.insert(s.run_tags), [{"run_id": run_id, "tag": f"{j:03d}" + "t" * 196}
                                                 for run_id in ids for j in range(tags)])
    return ids


def test_a_large_listing_comes_in_pages_a_default_client_can_receive(db_url: str) -> None:
    with run_server(db=db_url) as collector:
        ids = _insert_runs(collector.store, 100, tags=256)  # 100 runs x 51 KB of tags: 5 MiB in one answer
        with grpc.insecure_channel(collector.address) as channel:  # gRPC's default receive limit: 4 MiB
            q = query(collector.address, channel)
            seen, token, pages = [], "", 0
            while True:
                page = q.ListRuns(qpb.ListRunsRequest(limit=100, page_token=token), timeout=30)
                assert page.ByteSize() <= 4 * 2**20
                seen += [r.id for r in page.runs]
                pages += 1
                token = page.next_page_token
                if not token:
                    break
    assert seen == ids and pages >= 2 and page.total == 100


def test_one_run_bigger_than_a_page_still_comes_alone(tmp_path: pathlib.Path) -> None:
    """SQLite only: PostgreSQL's varchar(200) cannot hold a 5 MB run name."""
    with run_server(db=f"sqlite:///{tmp_path / 'c.db'}") as collector:
        ids = _insert_runs(collector.store, 3, name_bytes=5 * 2**20)
        q = query(collector.address, grpc.insecure_channel(
            collector.address, options=[("grpc.max_receive_message_length", 64 * 2**20)]))
        first = q.ListRuns(qpb.ListRunsRequest(limit=3), timeout=30)
        assert [r.id for r in first.runs] == ids[:1] and first.next_page_token == "1"


# ------------------------------------------------------------------------------------------- unusable stores

def _start(url: str, *extra: str) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run([str(BIN / "atlas-collector"), *extra, "--listen", "127.0.0.1:0", "--db", url],
                              capture_output=True, text=True, env=cli_env(), timeout=60)
    except subprocess.TimeoutExpired as exc:
        raise AssertionError(f"the collector started and served on a store it cannot write to: {exc.stdout!r}") \
            from None


def _one_line(done: subprocess.CompletedProcess[str], *needles: str) -> None:
    assert done.returncode == 1, (done.returncode, done.stdout, done.stderr)
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, done.stderr  # no Alembic chatter, no traceback: the one line that matters
    assert lines[0].startswith("Error: cannot use the store ")
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    assert "listening on" not in done.stdout


def test_a_read_only_sqlite_store_with_a_current_schema_is_refused_at_start(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "atlas.db"
    store = Store(f"sqlite:///{path}")
    store.create_schema()
    store.close()
    url = f"sqlite:///file:{path}?mode=ro&uri=true"
    _one_line(_start(url), url, "read-only", "readonly database")


def test_an_immutable_sqlite_file_with_a_current_schema_is_refused_at_start(tmp_path: pathlib.Path) -> None:
    """Root ignores permission bits; chattr +i stops it (SQLite then opens the file read-only, silently)."""
    path = tmp_path / "atlas.db"
    store = Store(f"sqlite:///{path}")
    store.create_schema()
    store.close()
    if subprocess.run(["chattr", "+i", str(path)], capture_output=True).returncode != 0:
        pytest.skip("chattr +i is not available here")
    try:
        _one_line(_start(f"sqlite:///{path}"), str(path), "read-only")
    finally:
        subprocess.run(["chattr", "-i", str(path)], capture_output=True)


@pytest.mark.postgres
def test_a_read_only_postgresql_store_is_refused_at_start(pg_database: str) -> None:
    from conftest import reset_pg

    url = reset_pg(pg_database)
    store = Store(url)
    store.create_schema()
    store.close()
    read_only = f"{url}?options=-c%20default_transaction_read_only%3Don"
    _one_line(_start(read_only), "read-only transaction")


@pytest.mark.parametrize("command", [[], ["migrate"]])
def test_an_unusable_store_is_the_only_line_on_stderr(tmp_path: pathlib.Path, command: list[str]) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    folder = tmp_path / "a-folder"
    folder.mkdir()
    _one_line(_start(f"sqlite:///{blocker}/atlas.db", *command), "its folder")
    _one_line(_start(f"sqlite:///{folder}", *command), "is a folder, not a database file")


def test_a_writable_store_still_starts(tmp_path: pathlib.Path) -> None:
    """The near miss: an empty folder that can be written gets its schema, and a read-only check leaves it as it
    was (no row written)."""
    with run_server(db=f"sqlite:///{tmp_path / 'new' / 'atlas.db'}") as collector:
        _stored_run(collector.address)
    con = sqlite3.connect(tmp_path / "new" / "atlas.db")
    assert con.execute("SELECT count(*) FROM runs").fetchone() == (1,)
    assert con.execute("SELECT count(*) FROM alembic_version").fetchone() == (1,)


# ------------------------------------------------------------------------------------------------- token

@pytest.mark.parametrize("where", ["flag", "env", "config"])
def test_a_token_a_header_cannot_carry_is_refused_naming_where_it_came_from(tmp_path: pathlib.Path,
                                                                            where: str) -> None:
    token = "s\u00e9cret"
    argv = [str(BIN / "atlas-collector"), "--listen", "127.0.0.1:0", "--db", f"sqlite:///{tmp_path / 'c.db'}"]
    env = cli_env()
    if where == "flag":
        argv += ["--token", token]
        source = "--token"
    elif where == "env":
        env["ATLAS_TOKEN"] = token
        source = "environment ATLAS_TOKEN"
    else:
        config = tmp_path / "collector.toml"
        config.write_text(f'[collector]\ntoken = "{token}"\n', encoding="utf-8")
        argv += ["--config", str(config)]
        source = f"config file '{config}': token"
    done = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=60)
    assert done.returncode == 2, done.stderr
    errors = [line for line in done.stderr.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1 and "Traceback" not in done.stderr
    assert errors[0].startswith(f"Error: {source}: the token must be printable ASCII"), errors[0]
    assert "character 2 of 6" in errors[0] and token not in errors[0]  # where the fault is, never the token
