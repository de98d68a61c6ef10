"""Captured logs of a multi-rank run: every rank's records, each with its rank, through real gRPC."""
from __future__ import annotations

from atlas_collector import run_server
from atlas_proto.v1 import query_pb2 as qpb
from atlas_proto.v1 import telemetry_pb2 as tpb

from coll_support import Trainer, query


def test_logs_of_every_rank_come_back_with_their_rank(db_url: str) -> None:
    with run_server(db=db_url) as collector:
        rank0 = Trainer(collector.address).start(name="ddp-logs")
        rank1 = Trainer(collector.address, rank0.run_id, rank=1).start(name="ddp-logs")
        for trainer, text in ((rank0, "rank zero says hello"), (rank1, "NCCL watchdog: rank 1 timed out")):
            m = trainer._msg()
            r = m.log_batch.records.add(level="ERROR" if trainer is rank1 else "INFO", logger="train",
                                        message=text, epoch=0, kind="console")
            r.time.GetCurrentTime()
            trainer.outbox.put(m)
            trainer.wait_acked()
        records = query(collector.address).GetLogs(qpb.LogsRequest(run="ddp-logs"), timeout=10).records
        assert sorted((r.rank, r.level, r.message) for r in records) == [
            (0, "INFO", "rank zero says hello"), (1, "ERROR", "NCCL watchdog: rank 1 timed out")]
        errors = query(collector.address).GetLogs(qpb.LogsRequest(run="ddp-logs", errors_only=True), timeout=10)
        assert [(r.rank, r.message) for r in errors.records] == [(1, "NCCL watchdog: rank 1 timed out")]
        for trainer in (rank1, rank0):
            trainer.end(tpb.RUN_STATUS_COMPLETED)
            trainer.finish()
