"""Edges fuzzed (issue 17): property-based tests (hypothesis) of every RPC's validation, the spool reader, RUN
resolution and the CLI's option parsing. Each property is what a user relies on: a hostile or broken input gets a
clear answer (a status with a message, an exit code with one line) and never an internal error, a traceback or a
collector that stops serving. The long coverage-guided run over the protobuf decoding path is benchmarks/fuzz_decode.py
(atheris), reported in benchmarks/README.md."""
from __future__ import annotations

import pathlib
import random
import uuid
from typing import Any, Iterator

import grpc
import pytest
from click.testing import CliRunner
from google.protobuf import message as pb_message
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from atlas_callback._spool import SpoolReader, SpoolWriter, scan
from atlas_cli import _app
from atlas_collector import run_server
from atlas_collector._exceptions import CollectorError
from atlas_collector._validate import validate
from atlas_proto.v1 import query_pb2 as qpb
from atlas_proto.v1 import query_pb2_grpc
from atlas_proto.v1 import telemetry_pb2 as tpb
from collector.coll_support import Trainer, wait_for

pytestmark = pytest.mark.filterwarnings("ignore::hypothesis.errors.NonInteractiveExampleWarning")
SESSION = "0b1c2d3e-4f50-4a6b-8c7d-9e0f1a2b3c4d"
FUZZ = settings(max_examples=120, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)

# Strings a trainer, a script or an attacker may send: control characters, bidi overrides, NULs, very long ones.
NASTY = st.one_of(
    st.text(max_size=40),
    st.sampled_from(["", " ", "\x00", "\x1b]0;pwned\x07", "\u202e", "<img src=x onerror=alert(1)>", "latest",
                     "../../etc/passwd", "'; DROP TABLE runs; --", "a" * 5000, "NaN", "-1", "\ud7ff", "%s%n"]),
)
_INT_RANGES = {
    FieldDescriptor.TYPE_INT32: (-(2**31), 2**31 - 1), FieldDescriptor.TYPE_SINT32: (-(2**31), 2**31 - 1),
    FieldDescriptor.TYPE_SFIXED32: (-(2**31), 2**31 - 1), FieldDescriptor.TYPE_UINT32: (0, 2**32 - 1),
    FieldDescriptor.TYPE_FIXED32: (0, 2**32 - 1), FieldDescriptor.TYPE_INT64: (-(2**63), 2**63 - 1),
    FieldDescriptor.TYPE_SINT64: (-(2**63), 2**63 - 1), FieldDescriptor.TYPE_SFIXED64: (-(2**63), 2**63 - 1),
    FieldDescriptor.TYPE_UINT64: (0, 2**64 - 1), FieldDescriptor.TYPE_FIXED64: (0, 2**64 - 1),
}


def _scalar(draw: Any, fd: FieldDescriptor) -> Any:
    t = fd.type
    if t == FieldDescriptor.TYPE_STRING:
        return draw(NASTY)
    if t == FieldDescriptor.TYPE_BYTES:
        return draw(st.binary(max_size=64))
    if t == FieldDescriptor.TYPE_BOOL:
        return draw(st.booleans())
    if t in (FieldDescriptor.TYPE_DOUBLE, FieldDescriptor.TYPE_FLOAT):
        value = draw(st.one_of(st.floats(allow_nan=True, allow_infinity=True),
                               st.sampled_from([0.0, -0.0, 1e308, -1e308, 5e-324, 3.4e38])))
        return value if t == FieldDescriptor.TYPE_DOUBLE else float(min(max(value, -3.4e38), 3.4e38)) \
            if value == value else value
    if t == FieldDescriptor.TYPE_ENUM:  # proto3 enums are open: unknown numbers arrive too
        known = [v.number for v in fd.enum_type.values]
        return draw(st.one_of(st.sampled_from(known), st.integers(-(2**31), 2**31 - 1)))
    lo, hi = _INT_RANGES[t]
    return draw(st.one_of(st.integers(lo, hi), st.sampled_from([max(lo, -1), 0, 1, min(hi, 2**31 - 1), hi])))


def fill(draw: Any, msg: pb_message.Message, depth: int = 0) -> pb_message.Message:
    """Random values in random fields of `msg` (at most one field of each oneof), nested up to depth 3."""
    chosen_oneofs: set[str] = set()
    for fd in msg.DESCRIPTOR.fields:
        if fd.containing_oneof is not None:
            if fd.containing_oneof.name in chosen_oneofs or not draw(st.integers(0, 3)) == 0:
                continue
            chosen_oneofs.add(fd.containing_oneof.name)
        elif not draw(st.booleans()):
            continue
        is_message = fd.type == FieldDescriptor.TYPE_MESSAGE
        if is_message and depth >= 3:
            continue
        if fd.is_repeated:
            if is_message and fd.message_type.GetOptions().map_entry:
                key_fd, value_fd = fd.message_type.fields_by_name["key"], fd.message_type.fields_by_name["value"]
                target = getattr(msg, fd.name)
                for _ in range(draw(st.integers(0, 3))):
                    key = _scalar(draw, key_fd)
                    if value_fd.type == FieldDescriptor.TYPE_MESSAGE:
                        fill(draw, target[key], depth + 1)
                    else:
                        target[key] = _scalar(draw, value_fd)
                continue
            for _ in range(draw(st.integers(0, 3))):
                if is_message:
                    fill(draw, getattr(msg, fd.name).add(), depth + 1)
                else:
                    getattr(msg, fd.name).append(_scalar(draw, fd))
            continue
        if is_message:
            fill(draw, getattr(msg, fd.name), depth + 1)
            getattr(msg, fd.name).SetInParent()
        else:
            setattr(msg, fd.name, _scalar(draw, fd))
    return msg


@st.composite
def client_messages(draw: Any, run_id: str | None = None) -> tpb.ClientMessage:
    msg = fill(draw, tpb.ClientMessage())
    if run_id is not None or draw(st.booleans()):  # a well-formed header lets the body's validation be reached
        msg.run_id = run_id or str(uuid.uuid4())
        msg.session = SESSION
        msg.rank = draw(st.integers(0, 3))
        msg.seq = draw(st.integers(1, 50))
    return msg


# ------------------------------------------------------------------------------------- telemetry validation


@FUZZ
@given(client_messages())
def test_validation_accepts_or_names_the_fault_for_any_client_message(msg: tpb.ClientMessage) -> None:
    try:
        kind = validate(msg)
    except CollectorError as exc:
        assert str(exc).strip(), "an invalid message was refused without saying why"
        return
    assert isinstance(kind, str) and kind


@FUZZ
@given(st.binary(max_size=512))
def test_random_bytes_decode_and_validate_or_are_refused(data: bytes) -> None:
    try:
        msg = tpb.ClientMessage.FromString(data)
    except pb_message.DecodeError:
        return
    try:
        validate(msg)
    except CollectorError as exc:
        assert str(exc).strip()


# ------------------------------------------------------------------------------ a real collector under fuzz


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Any, list[str]]]:
    """A real collector on loopback with two stored runs (the RPCs have something to find)."""
    path = tmp_path_factory.mktemp("fuzz") / "fuzz.db"
    with run_server(db=f"sqlite:///{path}") as c:
        ids = []
        for name in ("alpha", "beta"):
            trainer = Trainer(c.address)
            trainer.start(project="fuzz", name=name)
            trainer.steps([1.0, 0.9, 0.8])
            trainer.epoch(0, 0.85, val_loss=0.9)
            last = trainer.end()
            wait_for(lambda: trainer.acked() >= last, 20, "the seeded run stored")
            trainer.outbox.put(None)
            trainer.channel.close()
            ids.append(trainer.run_id)
        yield c, ids


_ALLOWED = {grpc.StatusCode.OK, grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.NOT_FOUND,
            grpc.StatusCode.FAILED_PRECONDITION, grpc.StatusCode.OUT_OF_RANGE, grpc.StatusCode.ALREADY_EXISTS,
            grpc.StatusCode.RESOURCE_EXHAUSTED, grpc.StatusCode.ABORTED}  # ABORTED: a sequence gap (resend)
_QUERY = query_pb2_grpc.QueryServiceStub
_METHODS = [m for m in qpb.DESCRIPTOR.services_by_name["QueryService"].methods]


def _request_class(desc: Descriptor) -> type:
    from google.protobuf import message_factory

    return message_factory.GetMessageClass(desc)


@st.composite
def query_requests(draw: Any, method: Any, ids: list[str]) -> pb_message.Message:
    req = fill(draw, _request_class(method.input_type)())
    for fd in req.DESCRIPTOR.fields:  # RUN fields: a stored id, a prefix of one (any length), a name or junk
        if fd.name in ("run", "run_a", "run_b") and fd.type == FieldDescriptor.TYPE_STRING and draw(st.booleans()):
            run = draw(st.sampled_from(ids))
            setattr(req, fd.name, draw(st.sampled_from([run, run[: draw(st.integers(0, len(run)))], "latest",
                                                        "alpha", "beta", run.upper()])))
    if method.name == "DeleteRun":  # keep the stored runs for the other RPCs: delete only what does not exist
        req.run = "0" * 32
    return req


@pytest.mark.parametrize("method", _METHODS, ids=[m.name for m in _METHODS])
def test_every_query_rpc_answers_any_request_with_a_status_and_a_message(served: tuple[Any, list[str]],
                                                                         method: Any) -> None:
    collector, ids = served
    channel = grpc.insecure_channel(collector.address)
    stub = _QUERY(channel)

    @settings(FUZZ, max_examples=60)
    @given(query_requests(method, ids))
    def prop(req: pb_message.Message) -> None:
        try:
            getattr(stub, method.name)(req, timeout=30)
        except grpc.RpcError as exc:
            assert exc.code() in _ALLOWED, f"{method.name}({req}) -> {exc.code()}: {exc.details()}"
            assert (exc.details() or "").strip(), f"{method.name} refused without a message"

    try:
        prop()
        # and the collector still serves afterwards
        listed = stub.ListRuns(qpb.ListRunsRequest(project="fuzz"), timeout=10)
        assert {r.id for r in listed.runs} >= set(ids)
    finally:
        channel.close()


def test_run_resolution_takes_unique_prefixes_of_six_or_more_and_says_why_shorter_ones_fail(
        served: tuple[Any, list[str]]) -> None:
    collector, ids = served
    channel = grpc.insecure_channel(collector.address)
    stub = _QUERY(channel)

    @FUZZ
    @given(st.sampled_from(ids), st.integers(1, 36))
    def prop(run_id: str, length: int) -> None:
        prefix = run_id[:length]
        others = [i for i in ids if i != run_id and i.startswith(prefix)]
        try:
            got = stub.GetRun(qpb.RunRef(run=prefix), timeout=10)
        except grpc.RpcError as exc:
            assert exc.code() in (grpc.StatusCode.NOT_FOUND, grpc.StatusCode.INVALID_ARGUMENT,
                                  grpc.StatusCode.FAILED_PRECONDITION), exc
            assert len(prefix) < 6 or others, f"{prefix!r} (unique, {len(prefix)} chars) did not resolve"
            assert "6" in (exc.details() or "") or "several" in (exc.details() or ""), exc.details()
            return
        assert len(prefix) >= 6 and not others
        assert run_id in str(got), f"{prefix!r} resolved to another run"

    try:
        prop()
    finally:
        channel.close()


def test_a_stream_of_random_messages_is_acked_or_refused_and_the_collector_keeps_serving(
        served: tuple[Any, list[str]]) -> None:
    collector, ids = served
    channel = grpc.insecure_channel(collector.address)
    stream = channel.stream_stream("/atlas.v1.TelemetryService/Stream",
                                   request_serializer=tpb.ClientMessage.SerializeToString,
                                   response_deserializer=tpb.ServerMessage.FromString)

    @settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
    @given(st.lists(client_messages(run_id="00000000-0000-4000-8000-000000000001"), min_size=1, max_size=4))
    def prop(bodies: list[tpb.ClientMessage]) -> None:
        run_id = str(uuid.uuid4())
        start = tpb.ClientMessage(run_id=run_id, session=SESSION)
        start.run_start.protocol_version = tpb.PROTOCOL_VERSION_1
        start.run_start.project, start.run_start.run_name = "fuzz", "stream"
        start.run_start.framework = tpb.FRAMEWORK_PYTORCH
        start.run_start.world_size = 1
        start.run_start.started_at.GetCurrentTime()
        for i, body in enumerate(bodies, start=1):
            body.run_id, body.session, body.seq, body.rank = run_id, SESSION, i, 0
        try:
            for _ in stream(iter([start, *bodies]), timeout=30):
                pass
        except grpc.RpcError as exc:
            assert exc.code() in _ALLOWED, f"{exc.code()}: {exc.details()}"
            assert (exc.details() or "").strip()

    try:
        prop()
        stub = _QUERY(channel)
        assert stub.GetRun(qpb.RunRef(run=ids[0]), timeout=10)
    finally:
        channel.close()


# ------------------------------------------------------------------------------------------------- spool


def _spool(root: pathlib.Path, n: int) -> tuple[str, list[tpb.ClientMessage], pathlib.Path]:
    run_id = str(uuid.uuid4())
    writer = SpoolWriter(root, run_id, 0, "s1", max_bytes=1 << 24)
    written = []
    start = tpb.ClientMessage(run_id=run_id, session="s1", seq=0)
    start.run_start.project = "spool"
    for seq in range(n):
        msg = start if seq == 0 else tpb.ClientMessage(run_id=run_id, session="s1", seq=seq)
        if seq:
            msg.step_batch.samples.add(step=seq, epoch=0, loss=1.0 / seq)
        writer.append(msg)
        written.append(msg)
    writer.close(remove=False)
    return run_id, written, writer.path


@FUZZ
@given(st.integers(1, 12), st.data())
def test_a_damaged_spool_is_read_without_error_and_keeps_what_is_intact(n: int, data: st.DataObject) -> None:
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        run_id, written, path = _spool(pathlib.Path(tmp), n)
        raw = bytearray(path.read_bytes())
        damage = data.draw(st.sampled_from(["truncate", "flip", "insert", "zero"]))
        at = data.draw(st.integers(0, len(raw)))
        if damage == "truncate":
            raw = raw[:at]
        elif damage == "flip" and raw:
            raw[min(at, len(raw) - 1)] ^= data.draw(st.integers(1, 255))
        elif damage == "insert":
            raw[at:at] = data.draw(st.binary(min_size=1, max_size=32))
        elif damage == "zero":
            raw[at:at + 16] = b"\0" * len(raw[at:at + 16])
        path.write_bytes(bytes(raw))
        result = scan(path, run_id, "s1", 0)
        by_seq = {m.seq: m for m in written}
        seqs = [m.seq for m in result.messages]
        assert seqs == sorted(set(seqs)), f"sequences out of order or repeated: {seqs}"
        if damage in ("truncate", "insert"):  # every message read is one that was written, byte for byte
            for msg in result.messages:
                assert msg == by_seq[msg.seq]
        # (A flipped or zeroed byte inside a frame's payload that still decodes is read as data: frames carry no
        # checksum. Found by this test; recorded in benchmarks/README.md, "Fuzzing".)
        if damage == "truncate":  # a cut keeps every frame before it
            assert seqs == list(range(len(seqs)))
        if result.intact:
            assert seqs == list(range(n)) or damage == "truncate", (damage, at, seqs)


@FUZZ
@given(st.binary(max_size=2048), st.sampled_from(["0-abc.log", "1-x.log", "junk.log", "0-.log"]))
def test_random_bytes_in_a_spool_folder_never_break_the_reader(data: bytes, name: str) -> None:
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        run_dir = pathlib.Path(tmp) / str(uuid.UUID(int=random.Random(data).getrandbits(128)))
        run_dir.mkdir()
        (run_dir / name).write_bytes(data)
        for stream in SpoolReader(tmp).streams():
            result = stream.scan()
            assert isinstance(result.intact, bool)
            assert all(m.run_id == stream.run_id for m in result.messages)


# --------------------------------------------------------------------------------------- CLI option parsing

_SAFE_COMMANDS = ["runs", "runs show", "issues", "health", "green", "epochs", "logs", "arch", "compare", "trend",
                  "export", "metrics", "stop", "pause", "resume", "diagnose", "sync"]
_TOKENS = st.one_of(
    st.sampled_from(["--json", "--limit", "--status", "--project", "--level", "--rank", "--since", "--tag",
                     "--active-only", "--errors", "--out", "-n", "--epoch", "--sort", "latest", "alpha", "0", "-1",
                     "99999999999999999999", "nan", "", "--", "-", "--help"]),
    NASTY.filter(lambda s: "\x00" not in s),
)


def test_every_command_parses_any_arguments_into_an_answer_or_one_line_error(served: tuple[Any, list[str]],
                                                                              tmp_path: pathlib.Path) -> None:
    collector, _ = served
    runner = CliRunner()

    @FUZZ
    @given(st.sampled_from(_SAFE_COMMANDS), st.lists(_TOKENS, max_size=4))
    def prop(command: str, args: list[str]) -> None:
        argv = ["--collector", collector.address, *command.split(), *args]
        if command == "export":
            argv += ["--out", str(tmp_path / "export")]
        result = runner.invoke(_app.cli, argv, env={"ATLAS_HOME": str(tmp_path / "home"), "ATLAS_TOKEN": ""},
                               catch_exceptions=True)
        assert result.exit_code in (0, 1, 2), (argv, result.exit_code, result.output)
        if result.exception is not None and not isinstance(result.exception, SystemExit):
            raise AssertionError(f"{argv}: {type(result.exception).__name__}: {result.exception}")
        assert "Traceback" not in result.output, (argv, result.output)

    prop()
