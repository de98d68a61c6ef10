"""`atlas sync` with damaged spool files (issue 18, item 6), against a real collector, real spools written by the
real `SpoolWriter` and the real `atlas` command.

What a user must see: every intact record of every file is stored (once); each damaged file is named with the
byte offset of the damage and the sequences it cost, the loss is recorded with the run (a `Dropped` message: a
log line of kind "dropped"), the file is moved to SPOOL/damaged/RUN/ (never deleted) and the command exits 1 with
one summary line and no traceback; the other runs are uploaded and removed as usual. A file whose records could
all be read in spite of bad bytes (a wrong length prefix, bytes holding no record) is uploaded whole, named and
removed (exit 0), and so is the normal crash case: a last frame cut short in a file whose RunEnd never came."""
from __future__ import annotations

import collections
import json
import pathlib
import shutil
import struct
import subprocess
import uuid
from typing import Callable

import pytest

from atlas_callback._spool import SpoolWriter, frame as spool_frame, scan
from atlas_collector import Store, run_server
from atlas_collector import _schema as s
from atlas_proto.v1 import telemetry_pb2 as tpb
from cli_support import atlas

BATCHES, PER = 40, 100  # 4,000 steps a run: seq 1..40 hold steps (seq - 1) * 100 .. seq * 100 - 1, seq 41 the end


def _spool(root: pathlib.Path, *, acked: int = 0) -> tuple[str, pathlib.Path, list[int]]:
    """A run's spool as the trainer writes it: RunStart, 40 step batches of 100 steps, RunEnd. Returns the run id,
    the file and each frame's offset (index 0: RunStart, i: seq i)."""
    run_id, session = str(uuid.uuid4()), str(uuid.uuid4())
    writer = SpoolWriter(root, run_id, 0, session, 2**30)
    start = tpb.ClientMessage(run_id=run_id, session=session)
    start.run_start.protocol_version = tpb.PROTOCOL_VERSION_1
    start.run_start.project, start.run_start.run_name = "sync", f"run-{run_id[:4]}"
    start.run_start.started_at.GetCurrentTime()
    offsets = [writer.append(start)]
    for i in range(BATCHES):
        msg = tpb.ClientMessage(run_id=run_id, session=session, seq=i + 1)
        for k in range(PER):
            msg.step_batch.samples.add(step=i * PER + k, epoch=0, loss=1.0 / (1 + i * PER + k))
        offsets.append(writer.append(msg))
    end = tpb.ClientMessage(run_id=run_id, session=session, seq=BATCHES + 1)
    end.run_end.status = tpb.RUN_STATUS_COMPLETED
    end.run_end.total_steps = BATCHES * PER
    offsets.append(writer.append(end))
    if acked:
        writer.mark_acked(acked, force=True)
    writer.close(remove=False)
    return run_id, writer.path, offsets


def _stored(store: Store, run_id: str) -> tuple[int, int, str | None, list[str]]:
    """(distinct steps, duplicated steps, status, kinds of the run's log lines)."""
    import sqlalchemy as sa

    with store.connect() as conn:
        steps = collections.Counter(r["step"] for r in store.steps(conn, run_id, limit=10**9))
        status = conn.execute(sa.select(s.runs.c.status).where(s.runs.c.id == run_id)).scalar()
        kinds = [r[0] for r in conn.execute(sa.select(s.logs.c.kind).where(s.logs.c.run_id == run_id))]
    return len(steps), sum(c - 1 for c in steps.values()), status, kinds


def _steps(store: Store, run_id: str) -> set[int]:
    with store.connect() as conn:
        return {r["step"] for r in store.steps(conn, run_id, limit=10**9)}


def _losses(store: Store, run_id: str) -> list[str]:
    import sqlalchemy as sa

    with store.connect() as conn:
        return [r[0] for r in conn.execute(sa.select(s.logs.c.message)
                                           .where(s.logs.c.run_id == run_id, s.logs.c.kind == "dropped"))]


def _batches(*seqs: int) -> set[int]:
    """The steps the step batches `seqs` hold."""
    return {(q - 1) * PER + k for q in seqs for k in range(PER)}


def _runs(seqs: set[int]) -> list[tuple[int, int]]:
    """The runs of consecutive numbers in `seqs`, as (first, last)."""
    out: list[tuple[int, int]] = []
    for q in sorted(seqs):
        out[-1:] = [(out[-1][0], q)] if out and out[-1][1] == q - 1 else out[-1:] + [(q, q)]
    return out


def _put(path: pathlib.Path, offset: int, data: bytes) -> None:
    raw = bytearray(path.read_bytes())
    raw[offset:offset + len(data)] = data
    path.write_bytes(bytes(raw))


def _cut(path: pathlib.Path, start: int, stop: int) -> None:
    raw = path.read_bytes()
    path.write_bytes(raw[:start] + raw[stop:])


def _failed_with_one_summary(done: subprocess.CompletedProcess[str]) -> str:
    assert done.returncode == 1, done.stdout + done.stderr
    assert "Traceback" not in done.stdout + done.stderr
    summary = done.stderr.strip().splitlines()[-1]
    assert summary.startswith("Error: ") and "could not be uploaded whole" in summary, done.stderr
    return summary


# Damage that costs records: (how to damage the file given its frame offsets, the seqs lost (None: unknown how
# many, at the end), the byte offset named, the number of "dropped" lines the collector records).
Damager = Callable[[pathlib.Path, list[int]], None]
LOSSES: dict[str, tuple[Damager, set[int], Callable[[list[int]], int], int]] = {
    "garbage inside a frame": (lambda p, o: _put(p, o[10] + 40, b"\xff" * 30), {10}, lambda o: o[10], 1),
    "garbage across two frames": (lambda p, o: _put(p, o[11] - 10, b"\xee" * 30), {10, 11}, lambda o: o[10], 1),
    "two damaged frames": (lambda p, o: (_put(p, o[5] + 50, b"\xff" * 20), _put(p, o[30] + 50, b"\xff" * 20)),
                           {5, 30}, lambda o: o[30], 2),
    "a span cut out of the file": (lambda p, o: _cut(p, o[10] + 30, o[20] + 30), set(range(10, 20)),
                                   lambda o: o[10], 1),
}


@pytest.mark.parametrize("how", list(LOSSES))
def test_a_damaged_file_gives_every_intact_record_records_the_loss_and_is_kept(tmp_path: pathlib.Path,
                                                                               how: str) -> None:
    damage, lost, named_at, drops = LOSSES[how]
    root = tmp_path / "spool"
    good_id, good_path, _ = _spool(root)
    bad_id, bad_path, offsets = _spool(root)
    damage(bad_path, offsets)
    kept = root / "damaged" / bad_id / bad_path.name
    with run_server(db=f"sqlite:///{tmp_path / 'c.db'}") as collector:
        done = atlas("sync", str(root), collector=collector.address, check=False)
        summary = _failed_with_one_summary(done)
        assert "1 of 2 spool file(s)" in summary and str(root / "damaged") in summary
        named = [line for line in done.stderr.splitlines() if str(bad_path) in line]
        assert len(named) == 1 and "is damaged" in named[0] and f"at byte {named_at(offsets)} " in named[0], named
        for first, last in _runs(lost):
            assert (f"seq {first}..{last} lost" if first != last else f"seq {first} lost (1 record)") in named[0]
        assert f"synced run {good_id}" in done.stdout and bad_id not in done.stdout

        assert _stored(collector.store, good_id) == (4000, 0, "completed", [])
        assert not good_path.exists(), "a file uploaded whole is removed"
        steps, dups, status, kinds = _stored(collector.store, bad_id)
        assert _steps(collector.store, bad_id) == _batches(*range(1, BATCHES + 1)) - _batches(*lost)
        assert (dups, status) == (0, "completed"), "every intact record after the damage is stored, the end too"
        assert kinds == ["dropped"] * drops, "the collector records the loss with the run"
        assert any(f"damaged spool frame at byte {named_at(offsets)} of {bad_path}" in m
                   for m in _losses(collector.store, bad_id))
        assert kept.exists() and not bad_path.exists(), "the damaged file is moved aside, never deleted"

        again = atlas("sync", str(root), collector=collector.address)
        assert "nothing to sync" in again.stdout
        # The damaged folder can be synced again (another collector, say): nothing is stored twice, the file stays.
        retry = atlas("sync", str(root / "damaged"), collector=collector.address, check=False)
        _failed_with_one_summary(retry)
        assert kept.exists() and not (root / "damaged" / "damaged").exists()
        assert _stored(collector.store, bad_id) == (steps, 0, "completed", ["dropped"] * drops)


@pytest.mark.parametrize("prefix", [
    pytest.param(lambda o: (10, 0xFFFFFFF0), id="0xFFFFFFF0"),
    pytest.param(lambda o: (10, o[11] - o[10] + 20), id="into-the-middle-of-the-next-frame"),
    pytest.param(lambda o: (10, o[11] - o[10] - 4 + 2), id="two-bytes-into-the-next-frame"),
    pytest.param(lambda o: (10, o[11] - o[10] - 4 - 10), id="ten-bytes-short"),
    pytest.param(lambda o: (BATCHES + 1, 5000), id="the-run-end-past-the-end-of-the-file"),
])
def test_a_wrong_length_prefix_costs_nothing(tmp_path: pathlib.Path, prefix: Callable[[list[int]], tuple]) -> None:
    """Before: sync stopped at the bad prefix, said it had synced the run and deleted 3,100 intact steps (or died
    with a DecodeError). The record is read whole: the bytes up to the next frame are exactly it."""
    root = tmp_path / "spool"
    run_id, path, offsets = _spool(root)
    seq, length = prefix(offsets)
    _put(path, offsets[seq], struct.pack("<I", length))
    with run_server(db=f"sqlite:///{tmp_path / 'c.db'}") as collector:
        done = atlas("sync", str(root), "--json", collector=collector.address)
        assert f"warning: {path} had damaged bytes but every record was read: 4 bytes at byte {offsets[seq]}" \
            in done.stderr
        assert _stored(collector.store, run_id) == (4000, 0, "completed", [])
        (row,) = json.loads(done.stdout)
        assert (row["status"], row["records"], row["damaged"], row["moved_to"], row["removed"]) == \
            ("repaired", BATCHES + 1, [], None, True)
        assert [r["offset"] for r in row["repaired"]] == [offsets[seq]]
        assert not path.exists()


@pytest.mark.parametrize("tail", [
    pytest.param(lambda raw, o: raw[:o[25] + 30], id="mid-frame"),
    pytest.param(lambda raw, o: raw[:o[25] + 2], id="mid-length-prefix"),
    pytest.param(lambda raw, o: raw[:o[25] + 300] + b"\0" * 4096, id="then-a-page-of-zeros"),
])
def test_a_crash_while_writing_the_last_frame_is_the_normal_case(tmp_path: pathlib.Path, tail: Callable) -> None:
    """The trainer died while appending seq 25 (no RunEnd): seq 1..24 are uploaded, the cut frame is named as such
    and ignored, the run stays unended, exit 0."""
    root = tmp_path / "spool"
    run_id, path, offsets = _spool(root)
    path.write_bytes(tail(path.read_bytes(), offsets))
    with run_server(db=f"sqlite:///{tmp_path / 'c.db'}") as collector:
        done = atlas("sync", str(root), collector=collector.address)
        assert f"synced run {run_id} rank 0: 24 records" in done.stdout
        assert f"note: {path} ends in a record cut short" in done.stderr and f"at byte {offsets[25]})" in done.stderr
        assert _stored(collector.store, run_id) == (2400, 0, "running", [])
        assert not path.exists()


def test_damage_at_the_end_of_a_run_is_not_mistaken_for_a_crash(tmp_path: pathlib.Path) -> None:
    """Garbage over the RunEnd frame, and a file cut in the middle of a frame and then damaged further on: how
    many records were lost is unknown, so both files are damaged, not crashed."""
    root = tmp_path / "spool"
    end_id, end_path, end_offsets = _spool(root)
    _put(end_path, end_offsets[BATCHES + 1] + 45, b"\xff" * 20)
    mid_id, mid_path, mid_offsets = _spool(root)
    _put(mid_path, mid_offsets[20] + 60, b"\xff" * 20)
    mid_path.write_bytes(mid_path.read_bytes()[:mid_offsets[30] + 30])
    with run_server(db=f"sqlite:///{tmp_path / 'c.db'}") as collector:
        done = atlas("sync", str(root), collector=collector.address, check=False)
        assert "2 of 2 spool file(s)" in _failed_with_one_summary(done)
        assert (f"{end_path} is damaged: " in done.stderr
                and f"at byte {end_offsets[BATCHES + 1]} " in done.stderr
                and f"the records after seq {BATCHES} are lost (how many is unknown)" in done.stderr)
        assert f"{mid_path} is damaged: " in done.stderr and "seq 20 lost (1 record)" in done.stderr
        assert _stored(collector.store, end_id) == (4000, 0, "running", [])
        assert _stored(collector.store, mid_id)[:2] == (2800, 0)
        assert (root / "damaged" / end_id / end_path.name).exists()
        assert (root / "damaged" / mid_id / mid_path.name).exists()


def test_a_garbage_file_is_kept_and_the_other_runs_go_on(tmp_path: pathlib.Path) -> None:
    root = tmp_path / "spool"
    good_id, good_path, _ = _spool(root)
    junk_dir = root / str(uuid.uuid4())
    junk_dir.mkdir()
    junk = junk_dir / f"0-{uuid.uuid4()}.log"
    junk.write_bytes(bytes(range(256)) * 20)
    with run_server(db=f"sqlite:///{tmp_path / 'c.db'}") as collector:
        done = atlas("sync", str(root), "--json", collector=collector.address, check=False)
        _failed_with_one_summary(done)
        assert f"{junk} is damaged: 5120 bytes at byte 0" in done.stderr and "no intact frame" in done.stderr
        assert _stored(collector.store, good_id) == (4000, 0, "completed", [])
        assert (root / "damaged" / junk_dir.name / junk.name).read_bytes() == bytes(range(256)) * 20
        rows = {r["run"]: r for r in json.loads(done.stdout)}
        assert rows[good_id]["error"] is None and rows[good_id]["removed"] and not good_path.exists()
        assert rows[junk_dir.name]["damaged"][0]["to_end"] and rows[junk_dir.name]["status"] == "damaged"
        assert rows[junk_dir.name]["moved_to"] == str(root / "damaged" / junk_dir.name / junk.name)


def test_an_unreadable_run_start(tmp_path: pathlib.Path) -> None:
    """Garbage over the RunStart: a collector that already has the run (the trainer streamed its start before the
    collector went away) takes every record; one that never saw it takes nothing, and the file is kept."""
    root = tmp_path / "spool"
    run_id, path, offsets = _spool(root)
    early = tmp_path / "early"
    shutil.copytree(root, early)
    early_log = early / run_id / path.name
    early_log.write_bytes(early_log.read_bytes()[:offsets[3]])  # RunStart, seq 1, 2: what the collector saw live
    _put(path, 20, b"\xff" * 20)
    with run_server(db=f"sqlite:///{tmp_path / 'never.db'}") as collector:
        done = atlas("sync", str(root), collector=collector.address, check=False)
        _failed_with_one_summary(done)
        assert f"{path} is damaged: " in done.stderr and "the RunStart is unreadable" in done.stderr
        assert "collector has never seen run" in done.stderr
        kept = root / "damaged" / run_id / path.name
        assert kept.exists()
        shutil.move(str(kept.parent), str(root / run_id))
    with run_server(db=f"sqlite:///{tmp_path / 'seen.db'}") as collector:
        atlas("sync", str(early), collector=collector.address)
        done = atlas("sync", str(root), collector=collector.address)
        assert f"warning: {path} had damaged bytes but every record was read" in done.stderr
        assert "the RunStart is unreadable" in done.stderr
        assert _stored(collector.store, run_id) == (4000, 0, "completed", [])
        assert not path.exists()


def test_with_the_collector_away_every_file_stays_where_it_is(tmp_path: pathlib.Path) -> None:
    """Nothing could be uploaded, so nothing is judged lost: the damaged file is not moved aside yet, both files are
    kept in place for the next `atlas sync`, which then does the whole job."""
    from cli_support import free_port

    root = tmp_path / "spool"
    good_id, good_path, _ = _spool(root)
    bad_id, bad_path, offsets = _spool(root)
    _put(bad_path, offsets[10] + 40, b"\xff" * 30)
    done = atlas("sync", str(root), collector=f"127.0.0.1:{free_port()}", check=False)
    summary = _failed_with_one_summary(done)
    assert "2 of 2 spool file(s)" in summary and "they stay where they are: run `atlas sync` again" in summary
    assert done.stderr.count("cannot reach the Atlas collector") == 2 and "kept where it is" in done.stderr
    assert good_path.exists() and bad_path.exists() and not (root / "damaged").exists()
    with run_server(db=f"sqlite:///{tmp_path / 'c.db'}") as collector:
        done = atlas("sync", str(root), collector=collector.address, check=False)
        _failed_with_one_summary(done)
        assert _stored(collector.store, good_id) == (4000, 0, "completed", [])
        assert _stored(collector.store, bad_id) == (3900, 0, "completed", ["dropped"])
        assert not good_path.exists() and (root / "damaged" / bad_id / bad_path.name).exists()


@pytest.mark.parametrize("acked", [30, BATCHES + 1])
def test_a_spool_acked_by_another_collector_is_sent_whole(tmp_path: pathlib.Path, acked: int) -> None:
    """The .ack file says `acked` (a collector on another machine acked that far); a fresh collector lacks it all, so
    sync sends the whole file."""
    root = tmp_path / "spool"
    run_id, _, _ = _spool(root, acked=acked)
    with run_server(db=f"sqlite:///{tmp_path / 'c.db'}") as collector:
        atlas("sync", str(root), collector=collector.address)
        assert _stored(collector.store, run_id) == (4000, 0, "completed", [])


def _poison(path: pathlib.Path, offsets: list[int], *seqs: int) -> None:
    """Give the step batches `seqs` a step no store can hold (>= 2^63), each frame still well formed."""
    raw = path.read_bytes()
    frames = [raw[a:b] for a, b in zip(offsets, offsets[1:] + [len(raw)])]
    for seq in seqs:
        poison = tpb.ClientMessage.FromString(frames[seq][4:-4])  # length, message, CRC-32
        poison.step_batch.samples[0].step = 2**64 - 1
        frames[seq] = spool_frame(poison.SerializeToString())
    path.write_bytes(b"".join(frames))


def test_a_record_the_collector_refuses_does_not_wedge_the_sync(tmp_path: pathlib.Path) -> None:
    """Records no store can hold: the collector refuses each alone, sync names them once for the file (a warning,
    not a failure, exit 0) and counts them, in text and in --json; the rest of the run is stored."""
    root = tmp_path / "spool"
    run_id, path, offsets = _spool(root)
    _poison(path, offsets, 5, 6)
    with run_server(db=f"sqlite:///{tmp_path / 'c.db'}") as collector:
        done = atlas("sync", str(root), collector=collector.address)
        assert f"synced run {run_id} rank 0: {BATCHES + 1} records (2 refused by the collector" in done.stdout
        (warning,) = [line for line in done.stderr.splitlines() if "refused" in line]
        assert f"refused 2 record(s) of run {run_id} rank 0 ({path}): seq 5, 6: " in warning
        assert "StepBatch.samples[0].step = 18446744073709551615 is out of range" in warning
        assert _stored(collector.store, run_id) == (3800, 0, "completed", ["refused", "refused"])
        assert not path.exists()

        run_id, path, offsets = _spool(root)
        _poison(path, offsets, 6)
        done = atlas("sync", str(root), "--json", collector=collector.address)
        (row,) = json.loads(done.stdout)
        assert (row["status"], row["refused"], row["error"], row["removed"]) == ("synced", 1, None, True)
        assert row["refusals"][0]["seq"] == 6 and "is out of range" in row["refusals"][0]["reason"]
        assert _stored(collector.store, run_id) == (3900, 0, "completed", ["refused"])


def test_a_damaged_value_that_still_decodes_is_damage_not_data(tmp_path: pathlib.Path) -> None:
    """Found by fuzzing (tests/reliability/test_rel_fuzz.py): before frames carried a CRC-32, one flipped byte in a
    loss value, or one byte slipped into a frame, still decoded and was replayed as a loss of 1e154 (which the
    diagnostics would take for an explosion). Now the frame is named as damage and its record as lost."""
    root = tmp_path / "spool"
    run_id, path, offsets = _spool(root)
    raw = bytearray(path.read_bytes())
    raw[offsets[7] + 120] ^= 0x40  # inside a double of seq 7: the message still decodes
    raw[offsets[20] + 90:offsets[20] + 90] = b"\x00"  # a byte slipped into seq 20
    path.write_bytes(bytes(raw))
    found = scan(path, run_id)
    assert [(d.first_lost, d.last_lost) for d in found.damage] == [(7, 7), (20, 20)] and not found.repaired
    assert all(m.seq not in (7, 20) for m in found.messages) and len(found.messages) == BATCHES + 2 - 2


def test_a_spool_written_before_frames_had_a_crc_is_still_read_whole(tmp_path: pathlib.Path) -> None:
    """Spools left by an older Atlas (frames without the CRC) replay as they did."""
    root = tmp_path / "spool"
    run_id, path, offsets = _spool(root)
    raw = path.read_bytes()
    old = b"".join(struct.pack("<I", len(body)) + body for body in
                   (raw[a + 4:b - 4] for a, b in zip(offsets, offsets[1:] + [len(raw)])))
    path.write_bytes(old)
    found = scan(path, run_id)
    assert found.intact and [m.seq for m in found.messages] == list(range(BATCHES + 2))
    with run_server(db=f"sqlite:///{tmp_path / 'c.db'}") as collector:
        atlas("sync", str(root), collector=collector.address)
        assert _stored(collector.store, run_id) == (4000, 0, "completed", [])
