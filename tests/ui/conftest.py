"""Fixtures for the web UI's tests (API and browser): a real `atlas-collector` serving gRPC and HTTP on free
loopback ports, a JSON client with the page's cookies and CSRF header, and a real Lightning run.

    def test_something(ui_collector, ui_client, lightning_run):
        run_id = lightning_run("my-run")                  # trains a tiny model against ui_collector (CPU, seconds)
        body = ui_client.get(f"/api/runs/{run_id}").json()
        page.goto(ui_collector.url + f"runs/{run_id}")    # a browser test opens the same URL

- `ui_collector` (function scope): a `UiCollector` with `.address` (gRPC HOST:PORT for trainers and the CLI),
  `.url` (the UI, e.g. ``http://127.0.0.1:40123/``), `.db_url`, `.token` (None), `.proc`; stopped afterwards.
- `start_ui_collector(*flags, token=None, env=None)`: start more (e.g. with a token); each is stopped at the end of the
  test. Its stdout's first two lines are ``listening on HOST:PORT`` and ``web UI on URL``.
- `ui_client`: a `UiClient` (httpx) on `ui_collector.url` that keeps cookies and sends `X-Atlas-CSRF` with
  POSTs, as the page does; `ui_client_for(collector)` makes one for another collector.
- `lightning_run(name, *, project="ui", tags=(), max_epochs=2, ...) -> run id`: a real Lightning run against
  `ui_collector`, finished when it returns.
"""
from __future__ import annotations

import pathlib
import signal
import subprocess
import sys
from typing import Any, Callable, Iterator

import pytest

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # conftest.py, _lit.py of tests/

from conftest import BIN, cli_env  # noqa: E402


class UiCollector:
    def __init__(self, proc: subprocess.Popen[str], address: str, url: str, db_url: str,
                 token: str | None) -> None:
        self.proc, self.address, self.url, self.db_url, self.token = proc, address, url, db_url, token

    def stop(self, timeout: float = 20.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait(5)


def launch(db_url: str, *flags: str, token: str | None = None, http: str = "127.0.0.1:0",
           env: dict[str, str] | None = None) -> UiCollector:
    """`atlas-collector --listen 127.0.0.1:0 --http 127.0.0.1:0 --db DB [flags]`, started and parsed. Its
    environment has no LLM settings (the agent answers 503) unless `env` gives them."""
    argv = [str(BIN / "atlas-collector"), "--listen", "127.0.0.1:0", "--http", http, "--db", db_url,
            "--log-level", "WARNING", *flags]
    if token:
        argv += ["--token", token]
    base = {k: v for k, v in cli_env().items()
            if not k.startswith(("OPENAI_", "ANTHROPIC_", "ATLAS_LLM_"))}
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                            env={**base, **(env or {})})
    assert proc.stdout is not None
    first = proc.stdout.readline().strip()
    second = proc.stdout.readline().strip()
    if not first.startswith("listening on ") or not second.startswith("web UI on "):
        proc.kill()
        raise RuntimeError(f"collector did not start with its UI: {first!r} {second!r}")
    return UiCollector(proc, first.removeprefix("listening on "), second.removeprefix("web UI on "), db_url, token)


@pytest.fixture
def start_ui_collector(tmp_path: pathlib.Path) -> Iterator[Callable[..., UiCollector]]:
    started: list[UiCollector] = []

    def start(*flags: str, token: str | None = None, db_url: str | None = None,
              env: dict[str, str] | None = None) -> UiCollector:
        db = db_url or f"sqlite:///{tmp_path / f'ui-{len(started)}.db'}"
        collector = launch(db, *flags, token=token, env=env)
        started.append(collector)
        return collector

    yield start
    for collector in started:
        collector.stop()


@pytest.fixture
def ui_collector(start_ui_collector: Callable[..., UiCollector]) -> UiCollector:
    return start_ui_collector()


class UiClient:
    """The page's side of the API: cookies kept, `X-Atlas-CSRF` sent with POSTs."""

    def __init__(self, url: str) -> None:
        import httpx

        self.url = url.rstrip("/")
        self.http = httpx.Client(base_url=self.url, timeout=30.0)

    def get(self, path: str, **kwargs: Any) -> Any:
        return self.http.get(path, **kwargs)

    def post(self, path: str, body: Any = None, *, csrf: bool = True, **kwargs: Any) -> Any:
        headers = dict(kwargs.pop("headers", {}) or {})
        if csrf:
            if not self.http.cookies.get("atlas_csrf"):
                self.http.get("/api/info")  # every answer sets the CSRF cookie when the browser has none
            headers["X-Atlas-CSRF"] = self.http.cookies.get("atlas_csrf") or ""
        return self.http.post(path, json=body, headers=headers, **kwargs)

    def stream(self, path: str, **kwargs: Any) -> Any:
        return self.http.stream("GET", path, **kwargs)

    def close(self) -> None:
        self.http.close()


@pytest.fixture
def ui_client_for() -> Iterator[Callable[[UiCollector], UiClient]]:
    made: list[UiClient] = []

    def make(collector: UiCollector) -> UiClient:
        made.append(UiClient(collector.url))
        return made[-1]

    yield make
    for client in made:
        client.close()


@pytest.fixture
def ui_client(ui_collector: UiCollector, ui_client_for: Callable[[UiCollector], UiClient]) -> UiClient:
    return ui_client_for(ui_collector)


@pytest.fixture
def lightning_run(ui_collector: UiCollector) -> Callable[..., str]:
    """Train a tiny Lightning model against `ui_collector`; returns the run id."""
    def train(name: str, *, project: str = "ui", tags: tuple[str, ...] = (), max_epochs: int = 2,
              callbacks: tuple[Any, ...] = (), **atlas_kwargs: Any) -> str:
        from atlas_callback import AtlasCallback
        from _lit import TinyClassifier, loaders, trainer

        atlas = AtlasCallback(project=project, run_name=name, collector=ui_collector.address, tags=list(tags),
                              **atlas_kwargs)
        t = trainer([*callbacks, atlas], max_epochs=max_epochs)
        t.fit(TinyClassifier(), *loaders())
        return atlas.run_id

    return train
