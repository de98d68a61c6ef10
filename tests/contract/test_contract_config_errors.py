"""Every entry point refuses nonsense with a message naming the setting and what is allowed."""
from __future__ import annotations

import logging
import subprocess

import pytest

from atlas_callback import AtlasCallback, AtlasConfig
from atlas_callback._config import resolve_collector
from atlas_collector import CollectorConfig, ConfigError, load_config
from conftest import BIN, cli_env


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"on_critical": "explode"}, r"`on_critical` must be one of 'warn', 'pause', 'stop', got 'explode'"),
        ({"project": ""}, r"`project` must be a non-empty string"),
        ({"run_id": "abc"}, r"`run_id` must be a UUID"),
        ({"collector": "nohost"}, r"`collector` must be HOST:PORT"),
        ({"collector": "localhost:99999"}, r"`collector` its port must be a number from 1 to 65535"),
        ({"tags": "one"}, r"`tags` must be a list of non-empty strings"),
        ({"pause_timeout": 0}, r"`pause_timeout` must be a number of seconds > 0"),
        ({"tls_ca": "/nonexistent.pem"}, r"`tls_ca` must be a readable PEM file"),
        ({"token": "s\u00e9cret"}, r"`token` must be a string of printable ASCII characters"),
        ({"tags": ["ok", "t" * 201]}, r"`tags` must be at most 200 characters each, got one of 201"),
    ],
)
def test_callback_arguments_are_validated_at_once(kwargs, message) -> None:
    with pytest.raises(ValueError, match=message):
        AtlasCallback(**kwargs)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"loss_sync_every": 0}, r"`AtlasConfig.loss_sync_every` must be an integer from 1 to 10000, got 0"),
        ({"track_loss": "yes"}, r"`AtlasConfig.track_loss` must be True or False, got 'yes'"),
        ({"flush_timeout_s": -1}, r"`AtlasConfig.flush_timeout_s` must be a number > 0"),
        ({"layer_health_budget": 0}, r"`AtlasConfig.layer_health_budget` must be a share of training time in \(0, 1\]"),
        ({"layer_health_budget": 5}, r"`AtlasConfig.layer_health_budget` must be a share .* got 5"),
    ],
)
def test_atlas_config_is_validated(kwargs, message) -> None:
    with pytest.raises(ValueError, match=message):
        AtlasConfig(**kwargs)


def test_bad_environment_in_the_trainer_is_logged_once_and_the_default_used(monkeypatch, caplog) -> None:
    monkeypatch.setenv("ATLAS_COLLECTOR", "not a target")
    monkeypatch.setenv("ATLAS_MODE", "sometimes")
    with caplog.at_level(logging.WARNING):
        cb = AtlasCallback()
        AtlasCallback()
        assert resolve_collector(None) == "localhost:50051"
    assert cb._core.mode == "online"
    messages = [r.getMessage() for r in caplog.records]
    assert sum("ATLAS_COLLECTOR" in m for m in messages) <= 1
    assert sum("ATLAS_MODE" in m for m in messages) <= 1


@pytest.mark.parametrize(
    ("flags", "env", "message"),
    [
        ({"listen": "0.0.0.0:50051"}, {}, r"refusing to listen on 0.0.0.0:50051 without a token"),
        ({"listen": "localhost"}, {}, r"listen must be HOST:PORT"),
        ({"listen": "127.0.0.1:70000"}, {}, r"listen port must be a number from 0 to 65535"),
        ({}, {"ATLAS_LOG_LEVEL": "LOUD"}, r"log_level must be one of DEBUG, INFO, WARNING, ERROR, CRITICAL"),
        ({"tls_cert": "/nonexistent"}, {}, r"tls_cert and tls_key go together"),
        ({"token": "s\u00e9cret"}, {}, r"token must be printable ASCII"),
        ({}, {"ATLAS_TOKEN": "line\nbreak"}, r"token must be printable ASCII"),
    ],
)
def test_collector_config_errors(flags, env, message) -> None:
    with pytest.raises(ConfigError, match=message):
        load_config(flags, env)


def test_collector_config_precedence(tmp_path) -> None:
    toml = tmp_path / "atlas.toml"
    toml.write_text('[collector]\nlisten = "127.0.0.1:7000"\nlog_level = "DEBUG"\nstale_after_s = 60\n')
    env = {"ATLAS_CONFIG": str(toml), "ATLAS_LISTEN": "127.0.0.1:7001"}
    cfg = load_config({"listen": None}, env)
    assert (cfg.listen, cfg.log_level, cfg.stale_after_s) == ("127.0.0.1:7001", "DEBUG", 60.0)
    cfg = load_config({"listen": "127.0.0.1:7002"}, env)
    assert cfg.listen == "127.0.0.1:7002"
    assert isinstance(cfg, CollectorConfig)


def test_collector_config_file_unknown_key(tmp_path) -> None:
    toml = tmp_path / "atlas.toml"
    toml.write_text('[collector]\nlisten_on = "127.0.0.1:7000"\n')
    with pytest.raises(ConfigError, match=r"unknown key 'listen_on'; allowed: listen, http, db"):
        load_config({"config": str(toml)}, {})


def test_collector_refuses_public_listen_without_token_at_start() -> None:
    done = subprocess.run([str(BIN / "atlas-collector"), "--listen", "0.0.0.0:0"], capture_output=True, text=True,
                          env=cli_env(), timeout=30)
    assert done.returncode == 2
    assert "without a token" in done.stderr and "--token" in done.stderr and "Traceback" not in done.stderr


def test_cli_rejects_a_bad_collector_address_as_usage_error() -> None:
    done = subprocess.run([str(BIN / "atlas"), "--collector", "nonsense", "runs"], capture_output=True, text=True,
                          env=cli_env(), timeout=30)
    assert done.returncode == 2
    assert "must be HOST:PORT" in done.stderr and "Traceback" not in done.stderr


def test_cli_refuses_a_non_ascii_token_at_once() -> None:
    done = subprocess.run([str(BIN / "atlas"), "--token", "s\u00e9cret", "runs"], capture_output=True, text=True,
                          env=cli_env(), timeout=60)
    assert done.returncode == 2
    assert "must be printable ASCII" in done.stderr and "Traceback" not in done.stderr


def test_a_bad_token_in_the_trainer_environment_is_logged_and_not_sent(monkeypatch, caplog) -> None:
    monkeypatch.setenv("ATLAS_TOKEN", "s\u00e9cret")
    with caplog.at_level(logging.ERROR):
        cb = AtlasCallback()
    assert cb._core.token is None
    assert any("ignoring ATLAS_TOKEN" in r.getMessage() for r in caplog.records)


def test_a_tls_ca_that_cannot_be_read_never_falls_back_to_plaintext(monkeypatch, caplog, collector_process) -> None:
    """ATLAS_TLS_CA with a typo: the trainer used to log "connecting without TLS" and send its token in clear. Now
    nothing is sent: the run is spooled (offline) and the error says so."""
    import os
    import pathlib

    from atlas_callback import Observer
    from conftest import atlas_json, spool_files

    monkeypatch.setenv("ATLAS_TLS_CA", "/etc/atlas/ca.pme")
    with caplog.at_level(logging.ERROR):
        with Observer(project="tls", run_name="typo", collector=collector_process.address,
                      config=AtlasConfig(track_carbon=False, track_gpu=False)) as obs:
            for i in range(20):
                obs.step(1.0 / (i + 1), batch_size=4)
    assert atlas_json(collector_process.address, "runs") == [], "records went out without the TLS asked for"
    assert len(spool_files(pathlib.Path(os.environ["ATLAS_HOME"]))) == 1
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert any("ATLAS_TLS_CA='/etc/atlas/ca.pme' is not a readable file" in m and "atlas sync" in m for m in errors)
