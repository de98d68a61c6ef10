"""Coverage-guided fuzzing (atheris) of the collector's decoding path: the bytes a client sends on the telemetry
stream, as the collector handles them — protobuf decoding, `validate`, and the ingest conversion of what passed
(the epoch summary to its stored JSON, step batches to step rows) — plus the spool scanner over the same bytes
framed as a spool file. Anything but a refusal the collector maps to a gRPC status (a `CollectorError`) or a
`DecodeError` is a finding: atheris stops and prints the input.

    pip install atheris
    python benchmarks/fuzz_decode.py -max_total_time=300 -rss_limit_mb=4096 [corpus_dir]

Seeds: valid messages of every kind (the corpus starts from them, so mutations reach deep fields). Results and
what was found: benchmarks/README.md, "Fuzzing"."""
from __future__ import annotations

import sys
import tempfile
import uuid
from pathlib import Path

import atheris

with atheris.instrument_imports(include=["atlas_collector", "atlas_callback._spool"]):
    from google.protobuf import json_format
    from google.protobuf.message import DecodeError

    import sqlalchemy as sa

    from atlas_callback._spool import frame, scan
    from atlas_collector import Store
    from atlas_collector._exceptions import CollectorError
    from atlas_collector._ingest import apply_message
    from atlas_collector._migrate import upgrade
    from atlas_collector._validate import validate
    from atlas_proto.v1 import telemetry_pb2 as tpb

RUN = "5f0c8a4e-6a1b-4b8e-9d7c-2f3e4a5b6c7d"
SESSION = "0b1c2d3e-4f50-4a6b-8c7d-9e0f1a2b3c4d"
_DIR = Path(tempfile.mkdtemp(prefix="atlas-fuzz-"))
_SPOOL = _DIR / "0-s.log"
_STORE: "Store | None" = None


def store() -> "Store":
    """A real SQLite store with the seed run started (each input is applied in a transaction rolled back)."""
    global _STORE
    if _STORE is None:
        _STORE = Store(f"sqlite:///{_DIR / 'fuzz.db'}")
        upgrade(_STORE.engine)
        start = tpb.ClientMessage.FromString(seeds()[0])
        with _STORE.engine.begin() as conn:
            apply_message(conn, start, validate(start))
    return _STORE


def seeds() -> list[bytes]:
    out = []
    start = tpb.ClientMessage(run_id=RUN, session=SESSION)
    start.run_start.protocol_version = tpb.PROTOCOL_VERSION_1
    start.run_start.project, start.run_start.run_name = "fuzz", "seed"
    start.run_start.framework = tpb.FRAMEWORK_PYTORCH
    start.run_start.world_size = 1
    start.run_start.started_at.GetCurrentTime()
    start.run_start.hyperparameters.update({"lr": 0.1, "layers": [1, 2], "name": "x"})
    out.append(start.SerializeToString())
    steps = tpb.ClientMessage(run_id=RUN, session=SESSION, seq=1)
    for i in range(3):
        x = steps.step_batch.samples.add(step=i, epoch=0, loss=1.0 / (i + 1), lr=0.1, grad_norm=2.0)
        x.metrics["acc"] = 0.5
    out.append(steps.SerializeToString())
    epoch = tpb.ClientMessage(run_id=RUN, session=SESSION, seq=2)
    e = epoch.epoch_summary
    e.epoch, e.global_step, e.duration_seconds = 0, 3, 1.5
    e.loss.mean, e.loss.count = 0.6, 3
    e.val_metrics["val_loss"] = 0.7
    e.carbon.epoch_co2_kg = 1e-6
    layer = e.layer_health.layers.add() if hasattr(e.layer_health, "layers") else None
    if layer is not None:
        layer.name = "net.0"
    e.facts.update({"optimizer": {"type": "SGD"}})
    out.append(epoch.SerializeToString())
    logs = tpb.ClientMessage(run_id=RUN, session=SESSION, seq=3)
    logs.log_batch.records.add(level="WARNING", logger="x", message="hello")
    out.append(logs.SerializeToString())
    end = tpb.ClientMessage(run_id=RUN, session=SESSION, seq=4)
    end.run_end.status = tpb.RUN_STATUS_FAILED
    end.run_end.error_message = "boom"
    out.append(end.SerializeToString())
    return out


def one_input(data: bytes) -> None:
    try:
        msg = tpb.ClientMessage.FromString(data)
    except DecodeError:
        msg = None
    if msg is not None:
        try:
            kind = validate(msg)
        except CollectorError:
            kind = None
        if kind:
            body = getattr(msg, msg.WhichOneof("body") or "run_id")
            if hasattr(body, "DESCRIPTOR"):  # what ingest stores: the body as JSON, and back
                text = json_format.MessageToJson(body, preserving_proto_field_name=True)
                json_format.Parse(text, type(body)())
        if kind and kind != "run_start":  # as the next record of the seed run: the real ingest, rolled back
            msg.run_id, msg.rank, msg.session, msg.seq = RUN, 0, SESSION, 1
            try:
                kind = validate(msg)
            except CollectorError:
                kind = None
        if kind and kind != "run_start":
            with store().engine.connect() as conn:
                trans = conn.begin()
                try:
                    apply_message(conn, msg, kind)
                except (CollectorError, sa.exc.SQLAlchemyError):
                    pass  # a refusal the Writer records with the run (a store error) or maps to a gRPC status
                finally:
                    trans.rollback()
    # The same bytes as a spool file: two frames of this run around them (scan never raises on bad bytes).
    good = tpb.ClientMessage(run_id=RUN, session=SESSION).SerializeToString()
    _SPOOL.write_bytes(frame(good) + data + frame(good))
    scan(_SPOOL, RUN, SESSION)


def main() -> None:
    corpus = [a for a in sys.argv[1:] if not a.startswith("-")]
    if not corpus:
        seed_dir = Path(tempfile.mkdtemp(prefix="atlas-fuzz-seeds-"))
        for i, seed in enumerate(seeds()):
            (seed_dir / f"seed{i}").write_bytes(seed)
        sys.argv.append(str(seed_dir))
    atheris.Setup(sys.argv, one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
