"""`atlas sync` with damaged spool files (issue 18): every intact record of every file is uploaded, each damaged file
is named and moved aside (never deleted), the damaged spans are recorded as lost, and the command exits 1."""
from __future__ import annotations

import collections
import pathlib
import struct
import uuid

import pytest

from atlas_callback._spool import SpoolWriter
from atlas_collector import Store, run_server
from atlas_collector import _schema as s
from atlas_proto.v1 import telemetry_pb2 as tpb
from cli_support import atlas

BATCHES, PER = 40, 100  # 4,000 steps a run


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


def _damage(path: pathlib.Path, offset: int, data: bytes) -> None:
    raw = bytearray(path.read_bytes())
    raw[offset:offset + len(data)] = data
    path.write_bytes(bytes(raw))


@pytest.mark.parametrize("how", ["garbage-in-a-frame", "length-prefix-too-big", "length-prefix-into-next-frame"])
def test_a_damaged_file_is_uploaded_as_far_as_it_is_intact_named_and_kept(tmp_path: pathlib.Path, how: str) -> None:
    root = tmp_path / "spool"
    good_id, good_path, _ = _spool(root)
    bad_id, bad_path, offsets = _spool(root)
    hit = offsets[10]  # the frame of seq 10: steps 900..999
    if how == "garbage-in-a-frame":
        _damage(bad_path, hit + 40, b"\xff" * 30)
    elif how == "length-prefix-too-big":
        _damage(bad_path, hit, struct.pack("<I", 0xFFFFFFF0))
    else:  # a length that ends inside the next frame
        _damage(bad_path, hit, struct.pack("<I", offsets[11] - hit + 20))
    with run_server(db=f"sqlite:///{tmp_path / 'c.db'}") as collector:
        done = atlas("sync", str(root), collector=collector.address, check=False)
        assert done.returncode == 1, done.stdout + done.stderr
        assert str(bad_path) in done.stderr and "is damaged" in done.stderr and "Traceback" not in done.stderr
        assert f"synced run {good_id}" in done.stdout
        assert _stored(collector.store, good_id) == (4000, 0, "completed", [])
        steps, dups, status, kinds = _stored(collector.store, bad_id)
        assert (steps, dups, status) == (3900, 0, "completed"), "every intact record after the bad frame is stored"
        assert kinds == ["dropped"], "the damaged span is recorded as lost"
        assert not good_path.exists(), "a file uploaded whole is removed"
        kept = root / "damaged" / bad_id / bad_path.name
        assert kept.exists() and not bad_path.exists(), "the damaged file is moved aside, never deleted"

        again = atlas("sync", str(root), collector=collector.address)
        assert "nothing to sync" in again.stdout
        assert _stored(collector.store, bad_id)[:2] == (3900, 0)


def test_a_truncated_file_and_a_garbage_file_are_named_and_the_rest_goes_on(tmp_path: pathlib.Path) -> None:
    root = tmp_path / "spool"
    good_id, _, _ = _spool(root)
    cut_id, cut_path, offsets = _spool(root)
    cut_path.write_bytes(cut_path.read_bytes()[:offsets[25] + 30])  # a crash while writing seq 25
    junk_dir = root / str(uuid.uuid4())
    junk_dir.mkdir()
    junk = junk_dir / f"0-{uuid.uuid4()}.log"
    junk.write_bytes(b"\x07" * 5000)
    with run_server(db=f"sqlite:///{tmp_path / 'c.db'}") as collector:
        done = atlas("sync", str(root), "--json", collector=collector.address, check=False)
        assert done.returncode == 1
        assert str(cut_path) in done.stderr and str(junk) in done.stderr
        assert _stored(collector.store, good_id) == (4000, 0, "completed", [])
        assert _stored(collector.store, cut_id)[:3] == (2400, 0, "running"), "records before the cut are stored"
        assert (root / "damaged" / cut_id / cut_path.name).exists()
        assert (root / "damaged" / junk_dir.name / junk.name).exists()
        import json

        rows = {r["run"]: r for r in json.loads(done.stdout)}
        assert rows[cut_id]["damaged"][0]["reason"].startswith("the last frame is cut short")
        assert rows[good_id]["damaged"] == [] and rows[good_id]["error"] is None


def test_a_spool_acked_by_another_collector_is_sent_whole(tmp_path: pathlib.Path) -> None:
    """The .ack file says 30 (a collector on another machine acked that far); a fresh collector lacks 1..30. The
    collector refuses the gap, so sync sends the whole file."""
    root = tmp_path / "spool"
    run_id, _, _ = _spool(root, acked=30)
    with run_server(db=f"sqlite:///{tmp_path / 'c.db'}") as collector:
        atlas("sync", str(root), collector=collector.address)
        assert _stored(collector.store, run_id) == (4000, 0, "completed", [])


def test_a_record_the_collector_refuses_does_not_wedge_the_sync(tmp_path: pathlib.Path) -> None:
    """A spooled record no store can hold (a step >= 2^63): before, the collector answered INTERNAL and `atlas
    sync` failed on every try. Now that record is refused alone and named; the rest of the run is stored."""
    root = tmp_path / "spool"
    run_id, path, offsets = _spool(root)
    frames = [path.read_bytes()[offsets[i]:offsets[i + 1] if i + 1 < len(offsets) else None]
              for i in range(len(offsets))]
    poison = tpb.ClientMessage.FromString(frames[5][4:])
    poison.step_batch.samples[0].step = 2**64 - 1
    data = poison.SerializeToString()
    frames[5] = struct.pack("<I", len(data)) + data
    path.write_bytes(b"".join(frames))
    with run_server(db=f"sqlite:///{tmp_path / 'c.db'}") as collector:
        done = atlas("sync", str(root), collector=collector.address)
        assert "1 refused by the collector" in done.stdout
        assert "StepBatch.samples[0].step = 18446744073709551615 is out of range" in done.stderr
        assert _stored(collector.store, run_id) == (3900, 0, "completed", ["refused"])
        assert not path.exists()
