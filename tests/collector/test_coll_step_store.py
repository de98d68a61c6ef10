"""Step samples stored one row per StepBatch (`atlas_collector/_steps.py`): reads in step order across ranks,
batches and resumed sessions, ranges cut inside batches, limits, retention at a boundary, on both stores."""
from __future__ import annotations

import math
import random
import time
import uuid

from atlas_collector import Store
from atlas_collector import _steps
from atlas_collector._ingest import apply_message
from atlas_collector._retention import apply_retention
from atlas_collector._validate import validate
from atlas_proto.v1 import telemetry_pb2 as tpb


def _start(run_id: str) -> tpb.ClientMessage:
    msg = tpb.ClientMessage(run_id=run_id)
    msg.run_start.protocol_version = tpb.PROTOCOL_VERSION_1
    msg.run_start.project = "p"
    msg.run_start.world_size = 2
    return msg


def _batch(run_id: str, session: str, rank: int, seq: int, steps: list[int], base: float) -> tpb.ClientMessage:
    msg = tpb.ClientMessage(run_id=run_id, rank=rank, session=session, seq=seq)
    for step in steps:
        x = msg.step_batch.samples.add(step=step, epoch=step // 10, loss=base + step, batch_size=8)
        x.time.FromNanoseconds(int((1_000_000 + step) * 1e9))
    return msg


def _fill(store: Store) -> tuple[str, list[tuple[int, int, float]]]:
    """Two ranks, batches of uneven size; rank 0 resumed in a new session that repeats steps 41-50."""
    run_id = str(uuid.uuid4())
    sessions = {0: str(uuid.uuid4()), 1: str(uuid.uuid4())}
    msgs = [_start(run_id)]
    expected: list[tuple[int, int, float]] = []  # (step, rank, loss) in arrival order
    for rank in (0, 1):
        first, seq = 1, 1
        for size in (7, 1, 13, 29):
            steps = list(range(first, first + size))
            msgs.append(_batch(run_id, sessions[rank], rank, seq, steps, base=rank * 1000.0))
            expected += [(s, rank, rank * 1000.0 + s) for s in steps]
            first, seq = first + size, seq + 1
    resumed = str(uuid.uuid4())
    msgs.append(_batch(run_id, resumed, 0, 1, list(range(41, 56)), base=0.5))
    expected += [(s, 0, 0.5 + s) for s in range(41, 56)]
    with store.begin() as conn:
        for m in msgs:
            apply_message(conn, m, validate(m))
    return run_id, expected


def _brute(expected, rank=None, lo=None, hi=None, limit=None):
    rows = [(s, r, loss) for s, r, loss in expected
            if (rank is None or r == rank) and (lo is None or s >= lo) and (hi is None or s <= hi)]
    rows = [t for _, t in sorted(enumerate(rows), key=lambda it: (it[1][0], it[1][1], it[0]))]
    return rows[:limit] if limit is not None else rows


def test_reads_match_a_row_per_sample_store_for_every_range_rank_and_limit(db_url: str) -> None:
    store = Store(db_url)
    store.create_schema()
    run_id, expected = _fill(store)
    rng = random.Random(7)
    cases = [(None, None, None, None), (0, None, None, None), (1, 5, 9, None), (0, 40, 45, None),
             (None, 8, 8, None), (0, None, None, 10), (None, 3, None, 5), (0, 45, None, 3)]
    cases += [(rng.choice([None, 0, 1]), rng.randint(1, 60), None, rng.choice([None, 1, 17])) for _ in range(12)]
    with store.connect() as conn:
        assert _steps.count(conn, run_id) == len(expected) == 115
        for rank, lo, hi, limit in cases:
            got = [(x.step, r, x.loss) for r, x in _steps.samples(conn, run_id, rank=rank, from_step=lo, to_step=hi,
                                                                limit=limit)]
            assert got == _brute(expected, rank, lo, hi, limit), (rank, lo, hi, limit)
        rows = store.steps(conn, run_id, rank=1, from_step=7, to_step=8)
        assert [(r["step"], r["rank"], r["loss"], r["batch_size"], r["time"]) for r in rows] == [
            (7, 1, 1007.0, 8, 1_000_007.0), (8, 1, 1008.0, 8, 1_000_008.0)]
        newest = _steps.latest(conn, run_id, 0, 5)
        assert [x.step for x in newest] == [51, 52, 53, 54, 55]
    store.close()


def test_retention_trims_a_boundary_batch_and_keeps_the_rest_whole(db_url: str) -> None:
    store = Store(db_url)
    store.create_schema()
    run_id, expected = _fill(store)
    with store.begin() as conn:
        deleted = apply_retention(conn, steps_per_run=20, now=time.time())
    with store.connect() as conn:
        kept0 = [x.step for _, x in _steps.samples(conn, run_id, rank=0)]
        kept1 = [x.step for _, x in _steps.samples(conn, run_id, rank=1)]
    # the newest 20 by arrival: rank 0's resumed batch (41-55) and the last 5 of its 29-sample batch (46-50)
    assert sorted(kept0) == sorted(list(range(46, 51)) + list(range(41, 56)))
    assert kept1 == list(range(31, 51))
    assert deleted == len(expected) - 40
    with store.begin() as conn:  # age: everything before step 48's time, whichever batch it is in
        deleted = apply_retention(conn, days=1.0, now=1_000_048.0 + 86400.0)
    with store.connect() as conn:
        left = sorted((x.step, r) for r, x in _steps.samples(conn, run_id, rank=None))
        assert all(step >= 48 for step, _ in left) and (48, 1) in left and (55, 0) in left
        assert _steps.count(conn, run_id) == len(left)
    store.close()


def test_nan_and_inf_survive_the_batch_encoding(db_url: str) -> None:
    store = Store(db_url)
    store.create_schema()
    run_id, session = str(uuid.uuid4()), str(uuid.uuid4())
    msg = tpb.ClientMessage(run_id=run_id, session=session, seq=1)
    for i, (loss, grad) in enumerate([(math.nan, 1.0), (math.inf, math.nan), (-math.inf, math.inf)], start=1):
        msg.step_batch.samples.add(step=i, epoch=0, loss=loss, grad_norm=grad)
    with store.begin() as conn:
        for m in (_start(run_id), msg):
            apply_message(conn, m, validate(m))
    with store.connect() as conn:
        rows = store.steps(conn, run_id)
    assert math.isnan(rows[0]["loss"]) and rows[1]["loss"] == math.inf and rows[2]["loss"] == -math.inf
    assert math.isnan(rows[1]["grad_norm"]) and rows[2]["grad_norm"] == math.inf
    store.close()


def test_latest_finds_the_newest_steps_when_a_batch_holds_a_jump(db_url: str) -> None:
    store = Store(db_url)
    store.create_schema()
    run_id, session = str(uuid.uuid4()), str(uuid.uuid4())
    first = _batch(run_id, session, 0, 1, [0, 1, 2, 3, 4, 5, 6, 7, 100], base=0.0)  # a step counter that jumped
    second = _batch(run_id, session, 0, 2, [99], base=0.0)
    with store.begin() as conn:
        for m in (_start(run_id), first, second):
            apply_message(conn, m, validate(m))
    with store.connect() as conn:
        assert [x.step for x in _steps.latest(conn, run_id, 0, 2)] == [99, 100]
        assert [x.step for x in _steps.latest(conn, run_id, 0, 3)] == [7, 99, 100]
        assert _steps.latest(conn, run_id, 0, 0) == [] and _steps.samples(conn, run_id, limit=0) == []
        assert store.steps(conn, run_id, limit=0) == []
    store.close()
