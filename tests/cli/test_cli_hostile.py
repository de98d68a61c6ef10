"""The CLI against hostile runs (issue 18, items 1, 4 and 5): rows an older collector let in, values at the edge of
what the collector accepts, and strings a trainer chose to look like markup or terminal sequences.

Real parts: an in-process collector on real SQLite files and the machine's PostgreSQL, runs streamed over the real
telemetry protocol or inserted straight into the store's tables, the real `atlas` command in a subprocess (and in a
pseudo-terminal, where rich draws its tables)."""
from __future__ import annotations

import json
import os
import pathlib
import pty
import select
import subprocess
import sys
import time
import uuid
from typing import Any, Iterator

import pytest
import sqlalchemy as sa

from atlas_collector import Store, run_server
from atlas_collector import _schema as s
from cli_support import atlas, atlas_json
from conftest import BIN, cli_env

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent / "collector"))
from coll_support import Trainer  # noqa: E402


@pytest.fixture
def collector(db_url: str) -> Iterator[Any]:
    with run_server(db=db_url) as running:
        yield running


def _run(address: str, name: str = "r", *, project: str = "hostile", epochs: int = 2, co2: float | None = None,
         hyperparameters: dict[str, Any] | None = None) -> str:
    t = Trainer(address).start(project=project, name=name, hyperparameters=hyperparameters)
    t.steps([1.0, 0.9, 0.8])
    for e in range(epochs):
        t.epoch(e, 1.0 - 0.1 * e, val_loss=1.0 + 0.2 * e, co2=co2)
    t.end()
    t.wait_acked()
    t.finish()
    return t.run_id


# ------------------------------------------------------------------------------ item 1: rows out of range

def _poison(store: Store, run_id: str) -> None:
    """Values no answer field can hold, of the kinds each store can keep (PostgreSQL's columns are int32)."""
    with store.begin() as conn:
        conn.execute(sa.update(s.runs).where(s.runs.c.id == run_id).values(
            epochs=2**32 if store.dialect == "sqlite" else 2**31 - 1, ended_at=1e18,
            device={"kind": "cpu", "count": -1}))
        conn.execute(sa.insert(s.logs).values(run_id=run_id, rank=-1, time=time.time(), level="ERROR", logger="x",
                                              message="a line from rank -1", epoch=-1, kind="error"))
        conn.execute(sa.update(s.epochs).where(s.epochs.c.run_id == run_id, s.epochs.c.epoch == 1)
                     .values(payload={"epoch": 1, "globalStep": "-3", "endedAt": "10000-01-01T00:00:00Z",
                                      "loss": {"mean": 0.9, "count": "-1"}, "valMetrics": {"val_loss": 1.2}}))
        conn.execute(sa.insert(s.architectures).values(run_id=run_id, model_class="Net", total_parameters=1, payload={
            "modelClass": "Net", "totalParameters": "-5", "layers": [{"name": "fc", "type": "Linear",
                                                                      "parameters": "-1"}]}))


def test_every_command_reads_a_run_whose_stored_values_are_out_of_range(collector: Any,
                                                                         tmp_path: pathlib.Path) -> None:
    run_id = _run(collector.address, "poisoned")
    healthy = _run(collector.address, "healthy")
    _poison(collector.store, run_id)
    address = collector.address
    assert {r["id"] for r in atlas_json("runs", collector=address)} == {run_id, healthy}
    shown = atlas_json("runs", "show", run_id, collector=address)
    assert (shown["ended_at"], shown["device"]["count"], shown["status"]) == (None, 0, "completed")
    logs = atlas_json("logs", run_id, collector=address)
    assert [(r["message"], r["rank"], r["epoch"]) for r in logs] == [("a line from rank -1", 0, 0)]
    epochs = atlas_json("epochs", run_id, collector=address)
    assert [(e["epoch"], e["global_step"], e["ended_at"]) for e in epochs][1] == (1, 0, None)
    assert atlas_json("arch", run_id, collector=address)["layers"][0]["parameters"] == 0
    out = tmp_path / "export"
    done = atlas("export", run_id, "-o", str(out), collector=address)
    assert run_id in done.stdout and len((out / "events.jsonl").read_text().splitlines()) > 5
    for args in (["runs"], ["runs", "show", run_id], ["logs", run_id], ["epochs", run_id], ["arch", run_id]):
        atlas(*args, collector=address)  # the tables too


def test_delete_asks_about_and_removes_a_poisoned_run(collector: Any) -> None:
    run_id = _run(collector.address, "poisoned")
    healthy = _run(collector.address, "healthy")
    _poison(collector.store, run_id)
    done = atlas("runs", "delete", run_id[:8], collector=collector.address, input="y\n")
    assert f"Delete run {run_id} (poisoned" in done.stdout and f"deleted run {run_id}" in done.stdout
    assert [r["id"] for r in atlas_json("runs", collector=collector.address)] == [healthy]


def test_listing_more_runs_than_one_answer_holds_comes_in_pages(tmp_path: pathlib.Path) -> None:
    """70 runs of 1 MB each (SQLite only: PostgreSQL's varchar(200) cannot hold such a name) are more than the
    collector sends in one answer (64 MiB): `atlas runs` failed with RESOURCE_EXHAUSTED for everyone."""
    with run_server(db=f"sqlite:///{tmp_path / 'c.db'}") as running:
        now = time.time()
        with running.store.begin() as conn:
            project = conn.execute(sa.insert(s.projects).values(name="big", created_at=now)
                                   .returning(s.projects.c.id)).scalar_one()
            ids = [str(uuid.uuid4()) for _ in range(70)]
            conn.execute(sa.insert(s.runs), [
                {"id": run_id, "project_id": project, "name": f"{i:02d}" + "n" * 2**20, "status": "completed",
                 "framework": "pytorch", "started_at": now - i, "last_seen_at": now - i}
                for i, run_id in enumerate(ids)])
        done = atlas("runs", "--json", "--limit", "100", collector=running.address, timeout=120)
    assert [r["id"] for r in json.loads(done.stdout)] == ids


# ---------------------------------------------------------------------- item 4: values at the edge, crashes

def test_export_does_not_trust_a_stored_world_size(collector: Any, tmp_path: pathlib.Path) -> None:
    """A world size of 2^31-1 made `atlas export` ask for the epochs and steps of every rank: 2^32 calls."""
    run_id = _run(collector.address, "wide")
    with collector.store.begin() as conn:
        conn.execute(sa.update(s.runs).where(s.runs.c.id == run_id).values(world_size=2**31 - 1))
    done = atlas("export", run_id, "-o", str(tmp_path / "x"), "--json", collector=collector.address, timeout=60)
    summary = json.loads(done.stdout)
    assert (summary["epochs"], summary["steps"]) == (2, 3)


def test_export_writes_a_step_whose_time_protobuf_json_cannot_write(collector: Any, tmp_path: pathlib.Path) -> None:
    """The collector checks the first and last sample of a step batch; one in between with a time past year 9999
    (or nanos out of range) is stored as sent, and `atlas export` crashed on it (SerializeToJsonError)."""
    t = Trainer(collector.address).start(project="hostile", name="far-future")
    m = t._msg()
    now = int(time.time())
    for i, (seconds, nanos) in enumerate([(now, 0), (10**15, 0), (now, 1_999_999_999), (now + 1, 0)]):
        x = m.step_batch.samples.add(step=i + 1, epoch=0, loss=1.0, lr=0.01)
        x.time.seconds, x.time.nanos = seconds, nanos
    t.outbox.put(m)
    t.epoch(0, 1.0, val_loss=1.1)
    t.end()
    t.wait_acked()
    t.finish()
    out = tmp_path / "export"
    done = atlas("export", t.run_id, "-o", str(out), collector=collector.address, check=False)
    assert done.returncode == 0 and "Traceback" not in done.stderr and "internal error" not in done.stderr, done.stderr
    steps = [json.loads(line) for line in (out / "events.jsonl").read_text().splitlines()
             if json.loads(line)["type"] == "step"]
    assert sorted(int(e["data"]["step"]) for e in steps) == [1, 2, 3, 4]
    noted = {int(e["data"]["step"]): e["notes"] for e in steps if "notes" in e}
    assert sorted(noted) == [2, 3] and all("time" not in steps_data for steps_data in
                                          (e["data"] for e in steps if int(e["data"]["step"]) in noted))
    assert "1000000000000000 s" in noted[2][0] and "not a valid time" in noted[2][0]
    diagnosed = atlas("diagnose", str(out), check=False)  # the export reads back
    assert diagnosed.returncode == 0, diagnosed.stderr


def _no_infinity(value: Any) -> bool:
    if isinstance(value, dict):
        return all(_no_infinity(v) for v in value.values())
    if isinstance(value, list):
        return all(_no_infinity(v) for v in value)
    return not (isinstance(value, str) and value in ("Infinity", "-Infinity", "NaN"))


def _carbon_run(address: str, co2_per_epoch: float, epochs: int = 3) -> str:
    """Every reading finite (as the collector accepts), so that only their sum overflows."""
    t = Trainer(address).start(project="hostile", name="broken-carbon")
    t.steps([1.0, 0.9])
    for e in range(epochs):
        m = t._msg()
        summary = m.epoch_summary
        summary.epoch, summary.duration_seconds, summary.global_step = e, 2.0, (e + 1) * 10
        summary.ended_at.GetCurrentTime()
        summary.loss.mean, summary.loss.count = 1.0 - 0.1 * e, 10
        summary.val_metrics["val_loss"] = 1.0 + 0.2 * e
        c = summary.carbon
        c.epoch_co2_kg = c.epoch_energy_kwh = c.cumulative_co2_kg = c.cumulative_energy_kwh = co2_per_epoch
        c.power_draw_watts = 50.0
        t.outbox.put(m)
    t.end()
    t.wait_acked()
    t.finish()
    return t.run_id


def test_green_of_a_run_whose_co2_overflows_prints_numbers_or_null_and_says_why(collector: Any) -> None:
    run_id = _carbon_run(collector.address, 1.7e308)  # three epochs of 1.7e308 kg: the total is past 1.8e308
    green = atlas_json("green", run_id, collector=collector.address)
    assert _no_infinity(green), green  # JSON numbers or null, never the strings "Infinity"/"NaN"
    assert green["total_co2_kg"] is None and green["co2_equivalents"]["smartphone_charges"] is None
    assert any("total_co2_kg" in note and "beyond what a number holds" in note for note in green["notes"])
    text = atlas("green", run_id, collector=collector.address).stdout
    assert "CO2 total          inf kg" in text and "inf smartphone charges" in text
    assert "no carbon data" not in text and "note: " in text
    ok = _run(collector.address, "carbon-ok", epochs=2, co2=0.01)  # the near miss: an ordinary run has no note
    ordinary = atlas_json("green", ok, collector=collector.address)
    assert ordinary["notes"] == [] and ordinary["total_co2_kg"] == pytest.approx(0.02)


# ------------------------------------------------------------------- item 5: markup and terminal sequences

MARKUP = "[link=https://example.invalid]x[/link][bold red]Y"
ESCAPES = "\x1b]8;;https://raw.invalid\x1b\\raw\x1b]8;;\x1b\\\x1b[2J\r"  # an OSC 8 link, clear screen, CR
VISIBLE = "\\x1b]8;;https://raw.invalid\\x1b\\raw"  # how the CLI shows them


def _pty(argv: list[str], timeout: float = 60) -> str:
    """Run `argv` on a pseudo-terminal (a terminal with colour, as a person has): what it drew."""
    import fcntl
    import struct
    import termios

    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 60, 400, 0, 0))
    env = cli_env(TERM="xterm-256color", COLUMNS="400")
    env.pop("NO_COLOR", None)
    proc = subprocess.Popen(argv, stdin=slave, stdout=slave, stderr=slave, env=env, close_fds=True)
    os.close(slave)
    out, deadline = b"", time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.2)
            if ready:
                try:
                    chunk = os.read(master, 65536)
                except OSError:  # the child closed the terminal
                    break
                if not chunk:
                    break
                out += chunk
            elif proc.poll() is not None:
                break
    finally:
        os.close(master)
        if proc.poll() is None:
            proc.kill()
        proc.wait(10)
    assert proc.returncode == 0, out.decode(errors="replace")[-2000:]
    return out.decode("utf-8", errors="replace")


@pytest.fixture(scope="module")
def hostile(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    """A run whose name, project, tag, hyperparameter, log lines, issue and layer carry markup and escapes."""
    db = tmp_path_factory.mktemp("hostile") / "c.db"
    with run_server(db=f"sqlite:///{db}") as running:
        t = Trainer(running.address).start(project=MARKUP + "p", name=MARKUP + "n" + ESCAPES,
                                           hyperparameters={MARKUP + "k" + ESCAPES: MARKUP + "v" + ESCAPES})
        t.steps([1.0, 0.9])
        m = t._msg()
        record = m.log_batch.records.add(level="ERROR", logger=MARKUP + "lg", message=MARKUP + "msg" + ESCAPES,
                                         kind="error")
        record.time.GetCurrentTime()
        t.outbox.put(m)
        for e in range(3):
            t.epoch(e, 1.0 - 0.1 * e, val_loss=1.0 + 0.3 * e)
        t.end()
        t.wait_acked()
        t.finish()
        with running.store.begin() as conn:
            conn.execute(sa.insert(s.run_tags).values(run_id=t.run_id, tag=MARKUP + "tag" + ESCAPES))
            conn.execute(sa.insert(s.issues).values(
                run_id=t.run_id, check_id="dead_layers", key="L", severity="warning", category="sustainability",
                title=MARKUP + "title" + ESCAPES, description=MARKUP + "desc", suggestion=MARKUP + "fix" + ESCAPES,
                layer=MARKUP + "layer" + ESCAPES, epoch=1, first_seen_epoch=1, last_seen_epoch=2, active=True,
                created_at=1.0, updated_at=1.0))
            conn.execute(sa.insert(s.architectures).values(run_id=t.run_id, model_class=MARKUP + ESCAPES,
                                                           total_parameters=10, payload={
                "modelClass": MARKUP + ESCAPES, "totalParameters": "10",
                "layers": [{"name": MARKUP + "fc" + ESCAPES, "type": "Linear", "parameters": "10"}],
                "moduleTree": {"name": "", "type": "Net", "children": [{"name": MARKUP + "fc" + ESCAPES,
                                                                        "type": "Linear", "children": []}]}}))
        yield running.address, t.run_id


def _commands(run_id: str) -> list[list[str]]:
    return [["runs"], ["runs", "show", run_id], ["issues", run_id], ["health", run_id], ["logs", run_id],
            ["watch", run_id], ["compare", run_id, run_id], ["trend", MARKUP + "p"], ["arch", run_id],
            ["stop", run_id]]


def _printed_literally(out: str, what: str) -> None:
    assert "\x1b]8;" not in out, f"{what}: an OSC 8 hyperlink reached the terminal"
    assert "\x1b[2J" not in out and "https://raw.invalid\x1b" not in out, f"{what}: a trainer's escape was sent"
    assert "[link=https://example.invalid]x[/link][bold red]Y" in out, f"{what}: the markup is not shown as typed"


@pytest.mark.parametrize("index", range(10))
def test_strings_from_a_trainer_are_printed_literally_on_a_terminal(hostile: tuple[str, str], index: int) -> None:
    address, run_id = hostile
    args = _commands(run_id)[index]
    out = _pty([str(BIN / "atlas"), "--collector", address, *args]) if args[0] != "stop" else ""
    if args[0] == "stop":  # an ended run: the error names it
        done = atlas("stop", run_id, collector=address, check=False)
        out = done.stderr
        assert done.returncode == 1
    _printed_literally(out, " ".join(args))
    if args[0] in ("logs", "runs", "stop"):
        assert VISIBLE in out, f"{args}: the escapes are not shown as text"


@pytest.mark.parametrize("index", range(9))
def test_strings_from_a_trainer_are_printed_literally_when_piped(hostile: tuple[str, str], index: int) -> None:
    address, run_id = hostile
    args = _commands(run_id)[index]
    done = atlas(*args, collector=address)
    _printed_literally(done.stdout, " ".join(args))


def test_json_output_keeps_what_the_trainer_sent(hostile: tuple[str, str]) -> None:
    """The escapes are the data: JSON escapes them (\\u001b), and a reader gets them back exactly."""
    address, run_id = hostile
    done = atlas("runs", "show", run_id, "--json", collector=address)
    assert "\x1b" not in done.stdout
    assert json.loads(done.stdout)["name"] == MARKUP + "n" + ESCAPES


# --------------------------------------------------------------------- item 2: a token no header can carry

@pytest.mark.parametrize("where", ["flag", "env"])
def test_a_token_a_header_cannot_carry_is_a_usage_error_before_any_call(where: str) -> None:
    token = "t\u00f6ken"
    argv = [str(BIN / "atlas"), "--collector", "127.0.0.1:1"] + (["--token", token] if where == "flag" else [])
    env = cli_env(**({"ATLAS_TOKEN": token} if where == "env" else {}))
    done = subprocess.run([*argv, "runs"], capture_output=True, text=True, env=env, timeout=60)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    errors = [line for line in done.stderr.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1 and "ATLAS_TOKEN" in errors[0] and "printable ASCII" in errors[0], done.stderr
    assert "cannot reach" not in done.stderr  # refused at start, not after a call
