"""Bearer token on both services, TLS with a real certificate, and logs that never carry the token."""
from __future__ import annotations

import datetime as dt
import ipaddress
import pathlib
import subprocess
import sys

import grpc
import pytest

from atlas_collector import run_server
from atlas_proto.v1 import query_pb2 as qpb
from atlas_proto.v1 import telemetry_pb2 as tpb

from coll_support import Trainer, query

TOKEN = "s3cret-token-value-42"
BIN = pathlib.Path(sys.executable).parent


def _call_both(address: str, token: str | None, channel: grpc.Channel | None = None) -> tuple[object, object]:
    """(ListRuns outcome, Stream outcome): the response/ack, or the RpcError."""
    md = (("authorization", f"Bearer {token}"),) if token is not None else None
    channel = channel or grpc.insecure_channel(address)
    try:
        listed: object = query(address, channel).ListRuns(qpb.ListRunsRequest(), timeout=10, metadata=md)
    except grpc.RpcError as exc:
        listed = exc
    trainer = Trainer(address, channel=channel, metadata=md).start()
    trainer.steps([1.0])
    from coll_support import wait_for

    wait_for(lambda: trainer.acked() >= 1 or trainer.error, what="ack or error")
    streamed: object = trainer.error if trainer.error is not None else trainer.acked()
    trainer.finish()
    return listed, streamed


@pytest.mark.parametrize("token", [None, "wrong", TOKEN[:-1]], ids=["missing", "wrong", "prefix"])
def test_a_missing_or_wrong_token_is_refused_on_both_services(tmp_path, token: str | None) -> None:
    with run_server(db=f"sqlite:///{tmp_path / 'c.db'}", token=TOKEN) as collector:
        listed, streamed = _call_both(collector.address, token)
        for outcome in (listed, streamed):
            assert isinstance(outcome, grpc.RpcError)
            assert outcome.code() == grpc.StatusCode.UNAUTHENTICATED
            assert outcome.details() == "missing or invalid token"  # nothing about the expected value


def test_the_right_token_works_on_both_services(tmp_path) -> None:
    with run_server(db=f"sqlite:///{tmp_path / 'c.db'}", token=TOKEN) as collector:
        listed, streamed = _call_both(collector.address, TOKEN)
        assert isinstance(listed, qpb.ListRunsResponse) and streamed == 1


def _self_signed(tmp_path: pathlib.Path) -> tuple[pathlib.Path, pathlib.Path]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = dt.datetime.now(dt.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost"),
                                                        x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


def test_tls_with_a_token_serves_a_client_that_trusts_the_certificate(tmp_path) -> None:
    cert, key = _self_signed(tmp_path)
    with run_server(db=f"sqlite:///{tmp_path / 'c.db'}", token=TOKEN, tls_cert=str(cert),
                    tls_key=str(key)) as collector:
        creds = grpc.ssl_channel_credentials(root_certificates=cert.read_bytes())
        listed, streamed = _call_both(collector.address, TOKEN, grpc.secure_channel(collector.address, creds))
        assert isinstance(listed, qpb.ListRunsResponse) and streamed == 1
        again = query(collector.address, grpc.secure_channel(collector.address, creds)).ListRuns(
            qpb.ListRunsRequest(), timeout=10, metadata=(("authorization", f"Bearer {TOKEN}"),))
        assert again.total == 1  # the run streamed over TLS is stored

        plain = grpc.insecure_channel(collector.address)  # a plaintext client gets nothing through
        with pytest.raises(grpc.RpcError) as refused:
            query(collector.address, plain).ListRuns(qpb.ListRunsRequest(), timeout=5,
                                                     metadata=(("authorization", f"Bearer {TOKEN}"),))
        assert refused.value.code() == grpc.StatusCode.UNAVAILABLE


def test_the_daemon_logs_one_line_per_event_with_the_run_and_never_the_token(tmp_path) -> None:
    proc = subprocess.Popen(
        [str(BIN / "atlas-collector"), "--listen", "127.0.0.1:0", "--db", f"sqlite:///{tmp_path / 'c.db'}",
         "--token", TOKEN, "--log-level", "DEBUG"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    address = proc.stdout.readline().strip().removeprefix("listening on ")
    _call_both(address, TOKEN)
    _call_both(address, "wrong")
    md = (("authorization", f"Bearer {TOKEN}"),)
    trainer = Trainer(address, metadata=md).start(name="logged")
    trainer.steps([1.0])
    trainer.wait_acked()
    query(address).SendCommand(qpb.CommandRequest(run="logged", kind=tpb.COMMAND_KIND_STOP), timeout=10,
                               metadata=md)
    trainer.wait_command()
    trainer.finish()
    proc.terminate()
    _, stderr = proc.communicate(timeout=20)
    assert proc.returncode == 0
    assert TOKEN not in stderr
    assert f"run={trainer.run_id} command=" in stderr and "kind=stop" in stderr
    assert f"run={trainer.run_id} stream joined" in stderr
