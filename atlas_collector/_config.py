"""Collector configuration, resolved in one order: flag, then `ATLAS_*` environment, then the TOML file
named by `--config`/`ATLAS_CONFIG`, then the defaults below. Anything invalid is refused at start with
one message naming the setting, where it came from and what is allowed."""
from __future__ import annotations

import dataclasses
import ipaddress
import os
import pathlib
import tomllib
from typing import Any, Mapping

from ._exceptions import ConfigError
from ._store import default_db_url

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


def atlas_home(env: Mapping[str, str] | None = None) -> pathlib.Path:
    env = os.environ if env is None else env
    return pathlib.Path(env.get("ATLAS_HOME") or "~/.atlas").expanduser()


@dataclasses.dataclass(frozen=True)
class CollectorConfig:
    listen: str = "127.0.0.1:50051"
    # The web UI and its JSON API: HOST:PORT, "off", or empty for the default (`http_listen`)
    http: str = ""
    db: str = ""  # empty: sqlite file atlas.db under ATLAS_HOME
    token: str = ""
    tls_cert: str = ""
    tls_key: str = ""
    otlp_endpoint: str = ""
    log_level: str = "INFO"
    max_message_mb: int = 16  # largest client message accepted; larger ones get RESOURCE_EXHAUSTED
    max_inflight: int = 4096  # messages received but not yet committed, over all streams (backpressure);
    # one stream may hold a sixteenth of them (at least 16): a flooding client is slowed, the others go on
    stale_after_s: float = 300.0  # a run with no data for this long becomes `stale`
    shutdown_grace_s: float = 10.0
    retention_steps_per_run: int = 0  # keep at most this many step samples per run and rank (0: keep all)
    retention_days: float = 0.0  # delete step samples older than this many days (0: keep all)
    # The TOML file's [diagnostics] table: threshold overrides (atlas_diagnostics.Thresholds keys) for every run,
    # plus `disabled_checks` (list of check ids) and `eur_per_tonne` (CO2 price for the green report).
    diagnostics: Mapping[str, Any] = dataclasses.field(default_factory=dict, hash=False)
    # The TOML file's [alerts] table and its [[alerts.routes]] (atlas_collector/_alerts.py); `alert_webhook` is the
    # one-flag shortcut (--alert-webhook / ATLAS_ALERT_WEBHOOK): a generic webhook route for warnings and above.
    alerts: Mapping[str, Any] = dataclasses.field(default_factory=dict, hash=False)
    alert_webhook: str = ""

    def __post_init__(self) -> None:
        _check_listen(self.listen)
        object.__setattr__(self, "http", self.http.strip().lower() if self.http.strip().lower() == "off"
                           else self.http.strip())
        _check_http(self.http)
        if self.log_level.upper() not in LOG_LEVELS:
            raise ConfigError(f"log_level must be one of {', '.join(LOG_LEVELS)}, got {self.log_level!r}")
        object.__setattr__(self, "log_level", self.log_level.upper())
        if bool(self.tls_cert) != bool(self.tls_key):
            raise ConfigError("tls_cert and tls_key go together: set both (or neither)")
        for name in ("tls_cert", "tls_key"):
            path = getattr(self, name)
            if path and not pathlib.Path(path).is_file():
                raise ConfigError(f"{name} {path!r} is not a readable file")
        if not 1 <= self.max_message_mb <= 1024:
            raise ConfigError(f"max_message_mb must be between 1 and 1024, got {self.max_message_mb}")
        if not 16 <= self.max_inflight <= 1_000_000:
            raise ConfigError(f"max_inflight must be between 16 and 1000000, got {self.max_inflight}")
        if not self.stale_after_s > 0:
            raise ConfigError(f"stale_after_s must be > 0 seconds, got {self.stale_after_s}")
        if not self.shutdown_grace_s > 0:
            raise ConfigError(f"shutdown_grace_s must be > 0 seconds, got {self.shutdown_grace_s}")
        if self.retention_steps_per_run < 0:
            raise ConfigError(f"retention_steps_per_run must be >= 0 (0 keeps all), got {self.retention_steps_per_run}")
        if not self.retention_days >= 0:
            raise ConfigError(f"retention_days must be >= 0 (0 keeps all), got {self.retention_days}")
        _check_diagnostics(self.diagnostics)
        object.__setattr__(self, "alert_settings", _alert_settings(self.alerts, self.alert_webhook))
        if self.token and not (self.token.isascii() and self.token.isprintable()):
            raise ConfigError("token must be printable ASCII (it travels in a gRPC header, which holds nothing else); "
                              f"got one of {len(self.token)} characters with others in it")
        if not _is_loopback(self.listen) and not self.token:
            raise ConfigError(
                f"refusing to listen on {self.listen} without a token: anyone who can reach it could read and "
                "stop your runs. Set --token / ATLAS_TOKEN (and --tls-cert/--tls-key to encrypt), or listen on "
                "127.0.0.1"
            )
        if self.http not in ("", "off") and not _is_loopback(self.http) and not self.token:
            raise ConfigError(
                f"refusing to serve the web UI on {self.http} without a token: anyone who can reach it could read "
                "and stop your runs. Set --token / ATLAS_TOKEN, serve it on 127.0.0.1, or turn it off with --http off"
            )

    @property
    def http_listen(self) -> str | None:
        """Where the web UI listens: None when off; by default 127.0.0.1:8765 (a free port when the gRPC listen
        takes a free port, as tests and `atlas demo` do)."""
        if self.http == "off":
            return None
        if self.http:
            return self.http
        return "127.0.0.1:0" if self.listen.rpartition(":")[2] == "0" else DEFAULT_HTTP

    @property
    def db_url(self) -> str:
        return self.db or default_db_url(atlas_home())

    @property
    def thresholds(self) -> Any:
        """The collector-wide `atlas_diagnostics.Thresholds` (defaults with the [diagnostics] overrides)."""
        from atlas_diagnostics import Thresholds

        return Thresholds.from_mapping({k: v for k, v in self.diagnostics.items() if k not in _DIAG_EXTRA})

    @property
    def disabled_checks(self) -> tuple[str, ...]:
        return tuple(self.diagnostics.get("disabled_checks", ()))

    @property
    def eur_per_tonne(self) -> float:
        from atlas_diagnostics import DEFAULT_EUR_PER_TONNE

        return float(self.diagnostics.get("eur_per_tonne", DEFAULT_EUR_PER_TONNE))


_DIAG_EXTRA = ("disabled_checks", "eur_per_tonne")


def _alert_settings(table: Any, webhook: str) -> Any:
    """The checked `_alerts.AlertSettings` (a bad route is refused here, at start, with one message naming it)."""
    from ._alerts import parse_alerts

    if not isinstance(table, Mapping):
        raise ConfigError(f"[alerts] must be a table, got {table!r}")
    return parse_alerts(table, webhook)


def _check_diagnostics(table: Mapping[str, Any]) -> None:
    from atlas_diagnostics import CHECK_IDS, DiagnosticsError, Thresholds

    if not isinstance(table, Mapping):
        raise ConfigError(f"[diagnostics] must be a table, got {table!r}")
    try:
        Thresholds.from_mapping({k: v for k, v in table.items() if k not in _DIAG_EXTRA})
    except (DiagnosticsError, TypeError, ValueError) as exc:
        raise ConfigError(f"[diagnostics]: {exc}") from None
    disabled = table.get("disabled_checks", [])
    if not isinstance(disabled, (list, tuple)) or any(c not in CHECK_IDS for c in disabled):
        raise ConfigError(f"[diagnostics] disabled_checks must be a list of check ids ({', '.join(CHECK_IDS)}), "
                          f"got {disabled!r}")
    price = table.get("eur_per_tonne", 0.0)
    if isinstance(price, bool) or not isinstance(price, (int, float)) or not price >= 0:
        raise ConfigError(f"[diagnostics] eur_per_tonne must be a number >= 0, got {price!r}")


def _split_host_port(listen: str) -> tuple[str, str]:
    host, sep, port = listen.rpartition(":")
    if not sep or not host:
        raise ConfigError(f"listen must be HOST:PORT (e.g. 127.0.0.1:50051 or 127.0.0.1:0), got {listen!r}")
    return host.strip("[]"), port


def _check_listen(listen: str) -> None:
    _, port = _split_host_port(listen)
    if not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ConfigError(f"listen port must be a number from 0 to 65535, got {listen!r}")


DEFAULT_HTTP = "127.0.0.1:8765"


def _check_http(http: str) -> None:
    if http in ("", "off"):
        return
    host, sep, port = http.rpartition(":")
    if not sep or not host.strip("[]") or not port.isdigit() or not 0 <= int(port) <= 65535 or "/" in http:
        raise ConfigError(f"http must be HOST:PORT with a port from 0 to 65535 (e.g. 127.0.0.1:8765), or off, "
                          f"got {http!r}")


def _is_loopback(listen: str) -> bool:
    host, _ = _split_host_port(listen)
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


_ENV = {
    "listen": "ATLAS_LISTEN",
    "http": "ATLAS_HTTP",
    "db": "ATLAS_DB",
    "token": "ATLAS_TOKEN",
    "tls_cert": "ATLAS_TLS_CERT",
    "tls_key": "ATLAS_TLS_KEY",
    "otlp_endpoint": "ATLAS_OTLP_ENDPOINT",
    "log_level": "ATLAS_LOG_LEVEL",
    "alert_webhook": "ATLAS_ALERT_WEBHOOK",
}


def _coerce(name: str, value: Any, source: str) -> Any:
    field = {f.name: f for f in dataclasses.fields(CollectorConfig)}[name]
    kind = type(field.default)
    if kind is bool or isinstance(value, bool) and kind is not bool:
        raise ConfigError(f"{source}: {name} must be a {kind.__name__}, got {value!r}")
    try:
        return kind(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{source}: {name} must be a {kind.__name__}, got {value!r}") from None


def load_config(flags: Mapping[str, Any], env: Mapping[str, str] | None = None) -> CollectorConfig:
    """Resolve flags (None = not given), environment, config file and defaults into a checked config."""
    env = os.environ if env is None else env
    names = [f.name for f in dataclasses.fields(CollectorConfig)]
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}  # where each value came from, for the messages
    config_file = flags.get("config") or env.get("ATLAS_CONFIG")
    if config_file:
        path = pathlib.Path(config_file).expanduser()
        try:
            data = tomllib.loads(path.read_text())
        except OSError as exc:
            raise ConfigError(f"config file {str(path)!r} cannot be read: {exc.strerror}") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"config file {str(path)!r} is not valid TOML: {exc}") from None
        section = data.get("collector", data)
        diagnostics = section.get("diagnostics", data.get("diagnostics", {}))
        if diagnostics:
            values["diagnostics"] = diagnostics
        alerts = section.get("alerts", data.get("alerts", {}))
        if alerts:
            values["alerts"] = alerts
        for key, value in section.items():
            if key in ("diagnostics", "alerts"):
                continue
            if key not in names:
                raise ConfigError(f"config file {str(path)!r}: unknown key {key!r}; allowed: {', '.join(names)}")
            values[key] = _coerce(key, value, f"config file {str(path)!r}")
            sources[key] = f"config file {str(path)!r}: {key}"
    for name, var in _ENV.items():
        if env.get(var):
            values[name] = _coerce(name, env[var], f"environment {var}")
            sources[name] = f"environment {var}"
    for name in names:
        if flags.get(name) is not None:
            values[name] = _coerce(name, flags[name], f"--{name.replace('_', '-')}")
            sources[name] = f"--{name.replace('_', '-')}"
    _check_token(values.get("token") or "", sources.get("token", "token"))
    return CollectorConfig(**values)


def _check_token(token: str, source: str) -> None:
    """Printable ASCII only: a gRPC header holds nothing else, so any other token would fail every call. The message
    names where the token came from and the first character at fault by position, never the token."""
    bad = next((i for i, ch in enumerate(token) if not (ch.isascii() and ch.isprintable())), None)
    if bad is not None:
        raise ConfigError(f"{source}: the token must be printable ASCII (letters, digits, punctuation, space: it "
                          f"travels in a gRPC header, which holds nothing else); character {bad + 1} of "
                          f"{len(token)} is not")
