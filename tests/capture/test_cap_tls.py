"""A trainer asked for TLS never falls back to plaintext, and a token a gRPC header cannot carry is refused (issue 18,
items 2 and 6).

ATLAS_TLS_CA with a typo, a folder or a file that holds no certificate: the run goes offline (records kept in the
spool, nothing sent, as with ATLAS_MODE=offline) and one error line says why and that `atlas sync` uploads them; the
same as a `tls_ca=` argument raises ValueError naming the path. A real collector WITHOUT TLS stands by: had the
trainer fallen back to plaintext, the run would be there."""
from __future__ import annotations

import logging
import os
import pathlib
import subprocess
import uuid

import pytest

from atlas_callback import AtlasConfig, Observer
from conftest import BIN, atlas_json, cli_env, spool_files

QUIET = AtlasConfig(track_carbon=False, track_gpu=False, track_system=False, track_layer_health=False,
                    track_architecture=False)

NOT_A_CERT = "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\n-----END PRIVATE KEY-----\n"


def _bad_ca(tmp_path: pathlib.Path, kind: str) -> tuple[str, str]:
    """(a CA path that cannot serve, the reason the error gives)."""
    if kind == "missing":  # the typo of the issue: ca.pme for ca.pem
        return str(tmp_path / f"ca-{uuid.uuid4().hex[:6]}.pme"), "no such file"
    if kind == "folder":
        folder = tmp_path / f"certs-{uuid.uuid4().hex[:6]}"
        folder.mkdir()
        return str(folder), "it is a folder"
    path = tmp_path / f"{kind}-{uuid.uuid4().hex[:6]}.pem"
    path.write_text({"empty": "", "private-key": NOT_A_CERT}[kind])
    return str(path), "it holds no PEM certificate"


def _train(collector: str, name: str) -> None:
    with Observer(project="tls", run_name=name, collector=collector, config=QUIET) as obs:
        for i in range(12):
            obs.step(1.0 / (i + 1), batch_size=4)


@pytest.mark.parametrize("kind", ["missing", "folder", "empty", "private-key"])
def test_a_tls_ca_argument_that_holds_no_certificate_raises_naming_the_path(tmp_path: pathlib.Path,
                                                                              kind: str) -> None:
    path, reason = _bad_ca(tmp_path, kind)
    with pytest.raises(ValueError, match=r"`tls_ca` must be a readable PEM file") as caught:
        Observer(project="tls", tls_ca=path)
    assert path in str(caught.value) and reason in str(caught.value)


@pytest.mark.parametrize("kind", ["missing", "empty", "private-key"])
def test_an_unusable_atlas_tls_ca_keeps_the_run_in_the_spool_and_sends_nothing(
        tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture,
        collector_process, kind: str) -> None:
    path, reason = _bad_ca(tmp_path, kind)
    monkeypatch.setenv("ATLAS_TLS_CA", path)
    with caplog.at_level(logging.ERROR, logger="atlas_callback"):
        _train(collector_process.address, f"tls-{kind}")
    assert atlas_json(collector_process.address, "runs") == [], "records went out without the TLS asked for"
    home = pathlib.Path(os.environ["ATLAS_HOME"])
    assert len(spool_files(home)) == 1, "the records must be kept in the spool"
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR and "ATLAS_TLS_CA" in r.getMessage()]
    assert len(errors) == 1, errors
    assert path in errors[0] and reason in errors[0] and "offline" in errors[0] and "atlas sync" in errors[0]
    assert str(home / "spool") in errors[0]

    # what the message promises: `atlas sync` uploads the spooled run (here to the same plaintext collector, by hand)
    done = subprocess.run([str(BIN / "atlas"), "--collector", collector_process.address, "sync",
                           str(home / "spool")], capture_output=True, text=True, env=cli_env(), timeout=60)
    assert done.returncode == 0, done.stderr
    runs = atlas_json(collector_process.address, "runs")
    assert [(r["name"], r["steps"]) for r in runs] == [(f"tls-{kind}", 12)]


def test_an_unusable_atlas_tls_ca_with_the_spool_off_says_the_records_are_lost(
        tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture,
        collector_process) -> None:
    path, _ = _bad_ca(tmp_path, "missing")
    monkeypatch.setenv("ATLAS_TLS_CA", path)
    with caplog.at_level(logging.ERROR, logger="atlas_callback"):
        with Observer(project="tls", run_name="no-spool", collector=collector_process.address,
                      config=AtlasConfig(track_carbon=False, track_gpu=False, spool_max_mb=0)) as obs:
            obs.step(1.0, batch_size=4)
    assert atlas_json(collector_process.address, "runs") == []
    errors = [r.getMessage() for r in caplog.records if "ATLAS_TLS_CA" in r.getMessage()]
    assert len(errors) == 1 and "the spool is off" in errors[0] and "kept in the spool" not in errors[0], errors


def test_a_readable_ca_file_is_used_as_given(tmp_path: pathlib.Path) -> None:
    """The near miss: a real PEM certificate is accepted (TLS is then up to the collector's certificate)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    import datetime as dt

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(x509.oid.NameOID.COMMON_NAME, "atlas-test-ca")])
    now = dt.datetime.now(dt.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(1).not_valid_before(now).not_valid_after(now + dt.timedelta(days=1))
            .sign(key, hashes.SHA256()))
    ca = tmp_path / "ca.pem"
    ca.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    obs = Observer(project="tls", tls_ca=str(ca))
    assert obs._core.tls_ca == str(ca) and obs._core.mode == "online"


def test_a_bad_atlas_token_is_logged_once_per_process_and_not_sent(monkeypatch: pytest.MonkeyPatch,
                                                                     caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setenv("ATLAS_TOKEN", f"t\u00f6ken-{uuid.uuid4().hex[:6]}")
    with caplog.at_level(logging.ERROR, logger="atlas_callback"):
        first, second = Observer(project="tok"), Observer(project="tok")
    assert first._core.token is None and second._core.token is None
    assert sum("ignoring ATLAS_TOKEN" in r.getMessage() for r in caplog.records) == 1


@pytest.mark.parametrize("token", ["t\u00f6ken", "line\nbreak", "tab\there", "nul\x00", "del\x7f"])
def test_a_token_argument_a_grpc_header_cannot_carry_raises(token: str) -> None:
    with pytest.raises(ValueError, match=r"`token` must be a string of printable ASCII characters"):
        Observer(project="tok", token=token)
