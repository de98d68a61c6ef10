"""The web UI's JSON API and event streams against a real `atlas-collector` (gRPC + HTTP on loopback) and real
Lightning runs: what a page reads, what it is told live, what it may do, and what it must refuse."""
from __future__ import annotations

import json
import pathlib
import subprocess
import threading
import time
from typing import Any, Iterator

import lightning.pytorch as pl
import pytest

from conftest import BIN, cli_env
from ui.conftest import UiClient, UiCollector, launch

XSS = "<img src=x onerror=alert(1)>"


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[UiCollector, dict[str, str]]]:
    """One collector and three finished runs, shared by the read-only tests of this module."""
    from atlas_callback import AtlasCallback
    from _lit import TinyClassifier, loaders, trainer

    tmp = tmp_path_factory.mktemp("ui-served")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("ATLAS_HOME", str(tmp / "home"))
        collector = launch(f"sqlite:///{tmp / 'ui.db'}")
        runs = {}
        try:
            for name, project, tags, epochs in (("alpha", "vision", ["ci", "small"], 3), ("beta", "vision", ["ci"], 1),
                                                (XSS, "text", ["xss"], 1)):
                atlas = AtlasCallback(project=project, run_name=name, collector=collector.address, tags=tags)
                trainer([atlas], max_epochs=epochs).fit(TinyClassifier(), *loaders())
                runs[name] = atlas.run_id
            yield collector, runs
        finally:
            collector.stop()


@pytest.fixture
def client(served: tuple[UiCollector, dict[str, str]]) -> Iterator[UiClient]:
    c = UiClient(served[0].url)
    yield c
    c.close()


def ok(resp: Any) -> Any:
    assert resp.status_code == 200, resp.text
    assert resp.headers["content-type"] == "application/json"
    return resp.json()


def test_runs_list_filters_sorts_and_pages(served, client) -> None:
    _, runs = served
    body = ok(client.get("/api/runs"))
    assert body["total"] == 3
    assert [r["name"] for r in body["runs"]] == [XSS, "beta", "alpha"]  # newest first
    alpha = next(r for r in body["runs"] if r["name"] == "alpha")
    assert alpha["id"] == runs["alpha"] and alpha["project"] == "vision" and alpha["status"] == "completed"
    assert alpha["epochs"] == 3 and alpha["tags"] == ["ci", "small"] and alpha["framework"] == "lightning"
    assert alpha["health"] == alpha["health_score"] and 0 <= alpha["health_score"] <= 100
    assert alpha["grade"] in ("A", "B", "C", "D", "F") and alpha["duration_seconds"] > 0
    # the same fields as `atlas runs --json`
    cli = json.loads(subprocess.run([str(BIN / "atlas"), "--collector", served[0].address, "runs", "--json"],
                                    capture_output=True, text=True, env=cli_env(), timeout=60, check=True).stdout)
    assert {k: v for k, v in alpha.items() if k in cli[0]} == next(r for r in cli if r["name"] == "alpha")

    assert [r["name"] for r in ok(client.get("/api/runs", params={"project": "vision"}))["runs"]] == ["beta", "alpha"]
    assert [r["name"] for r in ok(client.get("/api/runs", params={"tag": "small"}))["runs"]] == ["alpha"]
    assert [r["name"] for r in ok(client.get("/api/runs", params={"q": "lph"}))["runs"]] == ["alpha"]
    assert ok(client.get("/api/runs", params={"status": "running"}))["total"] == 0
    by_name = ok(client.get("/api/runs", params={"sort": "name", "order": "asc"}))["runs"]
    assert [r["name"] for r in by_name] == sorted([XSS, "beta", "alpha"])
    page = ok(client.get("/api/runs", params={"sort": "name", "order": "desc", "limit": 1, "offset": 1}))
    assert page["total"] == 3 and [r["name"] for r in page["runs"]] == ["alpha"]
    by_epochs = ok(client.get("/api/runs", params={"sort": "duration", "order": "desc"}))["runs"]
    assert by_epochs[0]["name"] == "alpha"  # three epochs take longest


@pytest.mark.parametrize("params, message", [
    ({"sort": "size"}, "sort must be one of started, name, health, duration, status, got 'size'"),
    ({"limit": "0"}, "limit must be from 1 to 1000, got 0"),
    ({"limit": "ten"}, "limit must be a whole number"),
    ({"status": "sleeping"}, "status must be one of"),
])
def test_bad_runs_parameters_get_one_line_400(client, params, message) -> None:
    resp = client.get("/api/runs", params=params)
    assert resp.status_code == 400 and resp.headers["content-type"] == "application/json"
    assert message in resp.json()["error"]


def test_run_pages_return_the_runs_data(served, client) -> None:
    _, runs = served
    rid = runs["alpha"]
    detail = ok(client.get(f"/api/runs/{rid[:8]}"))
    assert detail["id"] == rid and detail["name"] == "alpha" and detail["hyperparameters"]["hidden"] == 16
    assert detail["device"]["kind"] == "cpu" and "torch" in detail["versions"] and detail["on_critical"] == "warn"
    assert detail["grade"] in ("A", "B", "C", "D", "F")

    epochs = ok(client.get(f"/api/runs/{rid}/epochs"))["epochs"]
    assert [e["epoch"] for e in epochs] == [0, 1, 2]
    assert all(e["val_loss"] > 0 and e["loss_mean"] > 0 and e["samples_per_sec"] > 0 for e in epochs)

    issues = ok(client.get(f"/api/runs/{rid}/issues"))["issues"]
    cli = json.loads(subprocess.run([str(BIN / "atlas"), "--collector", served[0].address, "issues", rid, "--json"],
                                    capture_output=True, text=True, env=cli_env(), timeout=60, check=True).stdout)
    # both list cleared issues too (the CLI marks them "(cleared)"; --active-only hides them): the same list
    assert [(i["check"], i["rank"], i["active"]) for i in issues] == [(i["check"], i["rank"], i["active"]) for i in cli]
    ranks = [i["rank"] for i in issues if i["rank"]]
    assert ranks == sorted(ranks)

    health = ok(client.get(f"/api/runs/{rid}/health"))
    assert health["run"] == rid and set(health["severity_counts"]) == {"critical", "warning", "info"}
    green = ok(client.get(f"/api/runs/{rid}/green"))
    assert green["grade"] in ("A", "B", "C", "D", "F") and "co2_equivalents" in green

    layers = ok(client.get(f"/api/runs/{rid}/layers", params={"metric": "grad_norm"}))
    assert layers["x"] == [0, 1, 2] and layers["layers"]
    assert all(len(row) == 3 for row in layers["z"]) and any(v for row in layers["z"] for v in row)
    arch = ok(client.get(f"/api/runs/{rid}/architecture"))
    assert arch["total_parameters"] == 8 * 16 + 16 + 16 * 3 + 3
    assert [layer["type"] for layer in arch["layers"]][:3] == ["Linear", "ReLU", "Linear"]

    logs = ok(client.get(f"/api/runs/{rid}/logs", params={"limit": 2}))
    assert logs["run"] == rid and len(logs["logs"]) <= 2
    if logs["logs"]:
        rest = ok(client.get(f"/api/runs/{rid}/logs", params={"after": logs["next"]}))
        assert all(x["id"] > logs["next"] for x in rest["logs"])
    assert client.get(f"/api/runs/{rid}/logs", params={"level": "LOUD"}).status_code == 400

    compare = ok(client.get("/api/compare", params={"runs": f"{rid},{runs['beta']}"}))
    assert [r["name"] for r in compare["runs"]] == ["alpha", "beta"] and "pair" in compare
    trend = ok(client.get("/api/projects/vision/trend"))
    assert trend["project"] == "vision" and trend["run_count"] == 2

    missing = client.get("/api/runs/no-such-run")
    assert missing.status_code == 404 and "no run matches 'no-such-run'" in missing.json()["error"]


def test_a_hostile_run_name_comes_back_byte_exact_as_json(served, client) -> None:
    _, runs = served
    resp = client.get(f"/api/runs/{runs[XSS]}")
    assert resp.headers["content-type"] == "application/json"
    assert resp.json()["name"] == XSS
    assert json.dumps(XSS, ensure_ascii=False) in resp.text
    listed = client.get("/api/runs", params={"tag": "xss"})
    assert listed.headers["content-type"] == "application/json" and listed.json()["runs"][0]["name"] == XSS
    page = client.get(f"/runs/{runs[XSS]}")  # the page is the static shell: the name is never in the HTML
    assert page.headers["content-type"].startswith("text/html") and "onerror" not in page.text
    csp = page.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp and "default-src 'self'" in csp
    assert page.headers["x-content-type-options"] == "nosniff"


def test_steps_answer_a_downsampled_view_that_keeps_the_extremes(served, client) -> None:
    _, runs = served
    rid = runs["alpha"]
    full = ok(client.get(f"/api/runs/{rid}/steps", params={"points": 1000}))
    assert full["downsampled"] is False and full["total"] == len(full["step"]) == 48  # 16 steps x 3 epochs
    loss = full["series"]["loss"]["y"]
    small = ok(client.get(f"/api/runs/{rid}/steps", params={"points": 10, "series": "loss,lr"}))
    assert small["downsampled"] is True and small["total"] == 48
    assert set(small["series"]) == {"loss", "lr"} and len(small["step"]) == len(small["series"]["loss"]["y"]) == 10
    assert min(small["series"]["loss"]["min"]) == min(loss) and max(small["series"]["loss"]["max"]) == max(loss)
    zoom = ok(client.get(f"/api/runs/{rid}/steps", params={"from": 10, "to": 19, "points": 100}))
    assert zoom["step"] == list(range(10, 20)) and zoom["series"]["loss"]["y"] == loss[9:19]
    bad = client.get(f"/api/runs/{rid}/steps", params={"series": "loss,accuracy"})
    assert bad.status_code == 400 and "accuracy" in bad.json()["error"]


def test_downsampling_of_a_large_series_keeps_every_spike_and_nonfinite_step() -> None:
    import math

    from atlas_collector._web._downsample import Columns, view
    from atlas_proto.v1 import telemetry_pb2 as tpb

    cols = Columns()
    for first in range(0, 100_000, 5000):
        batch = tpb.StepBatch()
        for i in range(first, first + 5000):
            loss = 50.0 if i == 77_777 else (math.nan if i == 12_345 else 1.0 + (i % 7) / 10)
            batch.samples.add(step=i, loss=loss, batch_size=8, step_time_s=0.01)
        cols.add(batch)
    out = view(cols, ("loss", "lr", "samples_per_sec"), None, None, 2000)
    assert out["downsampled"] and len(out["step"]) == 2000 and out["total"] == 100_000
    assert max(out["series"]["loss"]["max"]) == 50.0 and min(out["series"]["loss"]["min"]) == 1.0
    assert out["series"]["loss"]["nonfinite"] == [12_345] and out["series"]["lr"] is None
    assert out["series"]["samples_per_sec"]["y"][0] == pytest.approx(800.0)


def test_the_fast_step_reader_decodes_exactly_what_protobuf_decodes() -> None:
    """The series cache reads stored StepBatch blobs from the wire format, vectorised; on every kind of sample
    (absent fields, zeros, NaN/Inf, huge steps, timestamps, metric maps, unordered steps) it gives what protobuf
    itself decodes, alone or with many batches at once."""
    import math
    import random

    import numpy as np

    from atlas_collector._web import _downsample as d
    from atlas_proto.v1 import telemetry_pb2 as tpb

    rnd = random.Random(7)
    blobs = []
    for _ in range(30):
        batch = tpb.StepBatch()
        for _ in range(rnd.randint(0, 200)):
            kw: dict[str, Any] = {"step": rnd.choice([0, rnd.randint(0, 10**6), rnd.randint(0, 2**45)]),
                                  "epoch": rnd.randint(0, 300)}
            for field in ("loss", "lr", "grad_norm", "step_time_s"):
                if rnd.random() < 0.8:
                    kw[field] = rnd.choice([0.0, -0.0, math.nan, math.inf, -math.inf, rnd.uniform(-1e9, 1e9), 5.0])
            if rnd.random() < 0.7:
                kw["batch_size"] = rnd.randint(0, 100_000)
            x = batch.samples.add(amp_skipped=rnd.random() < 0.3, **kw)
            if rnd.random() < 0.5:
                x.time.FromNanoseconds(rnd.randint(0, 2**62))
            for k in range(rnd.randint(0, 3)):
                x.metrics[f"m{k}"] = rnd.random()
        blobs.append(batch.SerializeToString())
    for group in (blobs[:1], blobs[:3], blobs):
        fast, slow = d._wire(group), d._decode_slow(group)
        assert fast["step"].tolist() == slow["step"].tolist()
        for name in d.SERIES:
            assert np.array_equal(fast["cols"][name], slow["cols"][name], equal_nan=True), name
            assert fast["present"][name] == slow["present"][name], name
            assert fast["bad"][name].tolist() == slow["bad"][name].tolist(), name
    cols = d.Columns()
    cols.extend(blobs)
    assert len(cols) == sum(len(tpb.StepBatch.FromString(b).samples) for b in blobs)
    assert (np.diff(cols.steps) >= 0).all()  # kept in step order


def test_green_is_computed_once_per_epoch_count_and_status(served, client) -> None:
    _, runs = served
    rid = runs["alpha"]
    first = ok(client.get(f"/api/runs/{rid}/green"))
    t0 = time.perf_counter()
    again = ok(client.get(f"/api/runs/{rid}/green"))
    assert again == first and time.perf_counter() - t0 < 0.5  # cached: one small read
    assert ok(client.get(f"/api/runs/{rid}"))["grade"] == first["grade"]
    assert ok(client.get(f"/api/runs/{rid}", params={"grade": "cached"}))["grade"] == first["grade"]
    assert first["grade"] in {"A", "B", "C", "D", "F"}


@pytest.mark.slow
def test_events_deliver_steps_and_epochs_within_a_second_while_a_run_trains(ui_collector, ui_client,
                                                                              lightning_run) -> None:
    from atlas_callback import AtlasConfig

    seen: dict[str, Any] = {"done_at": {}, "events": []}
    started = threading.Event()

    class Slow(pl.Callback):
        """Paces the run (20 ms a batch) and notes when each step finished on the trainer."""

        def on_train_batch_end(self, trainer, *args) -> None:
            seen["done_at"][trainer.global_step] = time.time()  # the step samples carry global_step
            time.sleep(0.02)
            if trainer.global_step == 3:
                started.set()

    def listen(run_id: str) -> None:
        with ui_client.stream(f"/api/runs/{run_id}/events", params={"after_step": -1},
                              timeout=30) as resp:
            assert resp.headers["content-type"].startswith("text/event-stream")
            event = None
            for line in resp.iter_lines():
                if line.startswith("event: "):
                    event = line[7:]
                elif line.startswith("data: ") and event:
                    seen["events"].append((time.time(), event, json.loads(line[6:])))
                    if event == "status" and json.loads(line[6:])["status"] == "completed":
                        return

    cfg = AtlasConfig(step_flush_seconds=0.05)
    trained: dict[str, str] = {}
    worker = threading.Thread(target=lambda: trained.setdefault(
        "id", lightning_run("live", max_epochs=3, callbacks=(Slow(),), config=cfg, run_id="5e5e5e5e-0000-4000-8000-"
                            "000000000001")), daemon=True)
    worker.start()
    assert started.wait(60)
    listener = threading.Thread(target=listen, args=("5e5e5e5e-0000-4000-8000-000000000001",), daemon=True)
    listener.start()
    worker.join(120)
    listener.join(30)
    kinds = [e[1] for e in seen["events"]]
    assert "step" in kinds and "epoch" in kinds and kinds[-1] == "status", kinds
    lags = []
    for at, kind, data in seen["events"]:
        if kind == "step":
            for step in data["step"]:
                if step in seen["done_at"] and step > 3:
                    lags.append(at - seen["done_at"][step])
    assert lags and max(lags) < 1.0, f"slowest step reached the page {max(lags):.2f} s after the trainer made it"
    steps = sorted({s for _, k, d in seen["events"] if k == "step" for s in d["step"]})
    assert steps == list(range(1, 49))  # every step (after_step=-1: from the start), none lost
    epochs = [d["epoch"] for _, k, d in seen["events"] if k == "epoch"]
    assert epochs[-3:] == [0, 1, 2] or epochs == sorted(set(epochs))


@pytest.mark.slow
def test_the_profiler_tab_gets_each_profiled_epochs_summary(ui_collector, ui_client, lightning_run) -> None:
    from atlas_callback import AtlasConfig

    profiled = lightning_run("profiled", max_epochs=2, config=AtlasConfig(track_profiler=True, profile_every_epochs=1))
    plain = lightning_run("plain", max_epochs=1)
    epochs = ok(ui_client.get(f"/api/runs/{profiled}/epochs"))["epochs"]
    assert [e["epoch"] for e in epochs if e.get("profiler")] == [0, 1]
    summary = epochs[-1]["profiler"]
    assert summary["top_ops"] and all(op["name"] and op["cpu_time_ms"] >= 0 for op in summary["top_ops"])
    assert summary["total_cpu_time_ms"] > 0
    assert not any("profiler" in e for e in ok(ui_client.get(f"/api/runs/{plain}/epochs"))["epochs"])


def test_post_stop_stops_the_trainer_at_the_next_batch(ui_collector, ui_client, lightning_run) -> None:
    run_id = "5707c0de-0000-4000-8000-000000000002"
    answer: dict[str, Any] = {}

    class StopAt(pl.Callback):
        def on_train_batch_end(self, trainer, *args) -> None:
            if trainer.global_step == 5 and "resp" not in answer:
                answer["step"] = trainer.global_step
                answer["resp"] = ui_client.post(f"/api/runs/{run_id}/command",
                                                {"action": "stop", "reason": "from the UI test"})
                time.sleep(0.5)  # the command reaches the trainer before the next batch boundary

    lightning_run("to-stop", max_epochs=5, callbacks=(StopAt(),), run_id=run_id)
    assert answer["resp"].status_code == 200, answer["resp"].text
    assert answer["resp"].json()["delivered"] is True and answer["resp"].json()["kind"] == "stop"
    detail = ok(ui_client.get(f"/api/runs/{run_id}"))
    assert detail["status"] == "stopped" and detail["steps"] <= 6
    again = ui_client.post(f"/api/runs/{run_id}/command", {"action": "stop"})
    assert again.status_code == 409 and "already ended" in again.json()["error"]


def test_post_without_the_csrf_header_is_refused(served, client) -> None:
    _, runs = served
    resp = client.post(f"/api/runs/{runs['alpha']}/command", {"action": "pause"}, csrf=False)
    assert resp.status_code == 403 and "CSRF" in resp.json()["error"]
    forged = client.post(f"/api/runs/{runs['alpha']}/command", {"action": "pause"},
                         headers={"Origin": "http://evil.example"})
    assert forged.status_code == 403 and "cross-site" in forged.json()["error"]
    rebinding = client.get("/api/runs", headers={"Host": "evil.example:80"})
    assert rebinding.status_code == 403
    bad = client.post(f"/api/runs/{runs['alpha']}/command", {"action": "explode"})
    assert bad.status_code == 400 and "action must be one of stop, pause, resume" in bad.json()["error"]


def test_with_a_token_the_api_needs_the_login_cookie(start_ui_collector, ui_client_for) -> None:
    collector = start_ui_collector(token="s3cret-token")
    client = ui_client_for(collector)
    info = ok(client.get("/api/info"))
    assert info["token_required"] is True
    for path in ("/api/runs", "/api/events", "/api/runs/latest/steps"):
        resp = client.get(path)
        assert resp.status_code == 401 and "login" in resp.json()["error"], path
    assert client.post("/api/login", {"token": "wrong"}).status_code == 401
    assert client.get("/api/runs").status_code == 401
    login = client.post("/api/login", {"token": "s3cret-token"})
    assert login.status_code == 200
    cookie = next(v for k, v in login.headers.multi_items() if k == "set-cookie" and v.startswith("atlas_session="))
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/" in cookie
    assert ok(client.get("/api/runs"))["total"] == 0
    stranger = ui_client_for(collector)
    stranger.http.cookies.set("atlas_session", "1700000000." + "0" * 64)
    assert stranger.get("/api/runs").status_code == 401


def test_http_off_serves_nothing_and_bad_values_are_refused_in_one_line(tmp_path: pathlib.Path) -> None:
    db = f"sqlite:///{tmp_path / 'c.db'}"
    proc = subprocess.Popen([str(BIN / "atlas-collector"), "--listen", "127.0.0.1:0", "--http", "off", "--db", db],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=cli_env())
    try:
        first = proc.stdout.readline()
        assert first.startswith("listening on ")
        ui = subprocess.run([str(BIN / "atlas"), "--collector", first.split()[-1], "ui", "--no-browser"],
                            capture_output=True, text=True, env=cli_env(), timeout=60)
        assert ui.returncode == 1 and "serves no web UI (it was started with --http off)" in ui.stderr
        from atlas_collector import CollectorConfig

        assert CollectorConfig(listen="127.0.0.1:0", http="off").http_listen is None
    finally:
        proc.terminate()
        out, _ = proc.communicate(timeout=20)
    assert "web UI" not in out

    for value, message in (("8765", "http must be HOST:PORT with a port from 0 to 65535"),
                           ("127.0.0.1:99999", "http must be HOST:PORT"),
                           ("http://127.0.0.1:8765", "http must be HOST:PORT"),
                           ("0.0.0.0:8765", "refusing to serve the web UI on 0.0.0.0:8765 without a token")):
        done = subprocess.run([str(BIN / "atlas-collector"), "--listen", "127.0.0.1:0", "--http", value, "--db", db],
                              capture_output=True, text=True, env=cli_env(), timeout=30)
        assert done.returncode == 2 and message in done.stderr, done.stderr
        assert len([line for line in done.stderr.splitlines() if line.startswith("Error")]) == 1
    env = cli_env(ATLAS_HTTP="nonsense")
    done = subprocess.run([str(BIN / "atlas-collector"), "--listen", "127.0.0.1:0", "--db", db],
                          capture_output=True, text=True, env=env, timeout=30)
    assert done.returncode == 2 and "environment ATLAS_HTTP" in done.stderr or "http must be" in done.stderr


def test_a_taken_http_port_is_refused_before_the_store_is_opened(tmp_path: pathlib.Path) -> None:
    import socket

    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen(1)
        port = holder.getsockname()[1]
        store = tmp_path / "never.db"
        done = subprocess.run([str(BIN / "atlas-collector"), "--listen", "127.0.0.1:0", "--http",
                               f"127.0.0.1:{port}", "--db", f"sqlite:///{store}"],
                              capture_output=True, text=True, env=cli_env(), timeout=30)
    assert done.returncode == 1 and f"cannot listen on 127.0.0.1:{port}: the port is taken" in done.stderr
    assert "--http" in done.stderr and not store.exists()


def test_atlas_ui_prints_the_url_without_a_browser(served) -> None:
    collector, runs = served
    env = cli_env(BROWSER="false")
    done = subprocess.run([str(BIN / "atlas"), "--collector", collector.address, "ui", runs["alpha"][:8],
                           "--no-browser"], capture_output=True, text=True, env=env, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"{collector.url}runs/{runs['alpha']}"


@pytest.mark.slow
def test_atlas_demo_serve_prints_each_runs_url_and_serves_until_ctrl_c(tmp_path: pathlib.Path) -> None:
    import re
    import signal

    import httpx

    proc = subprocess.Popen([str(BIN / "atlas"), "demo", "--epochs", "1", "--serve"], stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True, env=cli_env(ATLAS_HOME=str(tmp_path / "home")))
    lines: list[str] = []
    try:
        for line in proc.stdout:
            lines.append(line)
            if line.startswith("Serving the web UI at"):
                break
        out = "".join(lines)
        urls = re.findall(r"^UI: (http://127\.0\.0\.1:\d+/runs/[0-9a-f-]{36})$", out, re.M)
        assert len(urls) == 2, out
        for url in urls:  # the demo's runs, served while it waits
            page = httpx.get(url, timeout=10)
            assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
            api = httpx.get(url.replace("/runs/", "/api/runs/"), timeout=10).json()
            assert api["project"] == "demo" and api["name"] in ("demo-mlp", "demo-bug")
        proc.send_signal(signal.SIGINT)
        assert proc.wait(30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()


def test_atlas_help_and_the_collector_import_no_web_server() -> None:
    probe = ("import sys\nfrom atlas_cli import cli\n"
             "for args in (['--help'], ['ui', '--help'], ['demo', '--help']):\n"
             "    cli.main(args, prog_name='atlas', standalone_mode=False)\n"
             "import atlas_collector._server, atlas_collector._main\n"
             "print(sorted(m for m in ('starlette', 'uvicorn', 'torch') if m in sys.modules))")
    import sys

    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "[]"


def test_the_agent_answers_503_with_the_diagnostics_when_no_llm_is_configured(served, client) -> None:
    _, runs = served
    resp = client.post(f"/api/runs/{runs['alpha']}/ask", {"question": "is it healthy?"})
    assert resp.status_code == 503 and resp.headers["content-type"] == "application/json"
    assert "no LLM is configured" in resp.json()["error"] and "health" in resp.json()["fallback"].lower()
    assert client.post(f"/api/runs/{runs['alpha']}/ask", {"question": ""}).status_code == 400


@pytest.mark.slow
def test_the_agent_streams_tokens_and_tool_calls_from_an_openai_compatible_endpoint(start_ui_collector,
                                                                                   ui_client_for) -> None:
    import sys

    sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent / "cli"))
    from llm_fakes import FakeLLM, Reply

    with FakeLLM("openai", [Reply(tool_calls=[("get_run_health", {"run": "latest"})]),
                            Reply(text="The run is healthy: no active issue.")]) as llm:
        collector = start_ui_collector(env={"OPENAI_BASE_URL": llm.url, "OPENAI_API_KEY": "sk-test"})
        from atlas_callback import Observer

        with Observer(project="ui", run_name="asked", collector=collector.address) as obs:
            for i in range(5):
                obs.step(1.0 / (i + 1), batch_size=4)
            obs.flush({"val_loss": 0.5})
            run_id = obs.run_id
        client = ui_client_for(collector)
        headers = {"X-Atlas-CSRF": (client.get("/api/info") and client.http.cookies.get("atlas_csrf")) or ""}
        events = []
        with client.http.stream("POST", f"/api/runs/{run_id}/ask", json={"question": "how is it going?"},
                                headers=headers) as resp:
            assert resp.status_code == 200 and resp.headers["content-type"].startswith("text/event-stream")
            name = None
            for line in resp.iter_lines():
                if line.startswith("event: "):
                    name = line[7:]
                elif line.startswith("data: "):
                    events.append((name, json.loads(line[6:])))
    kinds = [k for k, _ in events]
    assert ("tool", {"name": "get_run_health", "arguments": {"run": "latest"}}) in events
    assert kinds[-1] == "done", events
    assert "healthy" in "".join(d["text"] for k, d in events if k == "token")
    assert events[-1][1]["answer"].startswith("The run is healthy") and events[-1][1]["provider"]


def test_requests_cancelled_by_a_shutdown_log_one_info_line_and_no_traceback(caplog) -> None:
    """A collector stopped while a page's request is still running (an event stream reading its baseline, a
    Green-AI report): uvicorn cancels it after its grace period and logs an ERROR with a traceback per request.
    The web server's filter turns that into one INFO line; before the shutdown, and for any other exception, the
    errors stay as they are."""
    import asyncio
    import logging
    import types

    from atlas_collector._web import _QuietShutdown

    server = types.SimpleNamespace(should_exit=False)
    quiet = _QuietShutdown(server)
    log = logging.getLogger("uvicorn.error")
    log.addFilter(quiet)
    cancelled = asyncio.CancelledError("Task cancelled, timeout graceful shutdown exceeded")
    try:
        with caplog.at_level(logging.INFO, logger="uvicorn.error"):
            log.error("Exception in ASGI application\n", exc_info=cancelled)  # while serving: kept
            server.should_exit = True
            log.error("Cancel %s running task(s), timeout graceful shutdown exceeded", 2)
            log.error("Exception in ASGI application\n", exc_info=cancelled)
            log.error("Exception in ASGI application\n", exc_info=ValueError("a real failure"))
    finally:
        log.removeFilter(quiet)
    got = [(r.levelname, r.getMessage(), r.exc_info[0].__name__ if r.exc_info else None) for r in caplog.records
           if r.name == "uvicorn.error"]
    assert got == [("ERROR", "Exception in ASGI application\n", "CancelledError"),
                   ("INFO", "web UI: 2 request(s) still running at shutdown were cancelled", None),
                   ("ERROR", "Exception in ASGI application\n", "ValueError")]


def test_a_run_page_starts_decoding_its_steps_only_for_a_browser_the_api_would_answer() -> None:
    """GET /runs/{id} (the HTML) starts the run's step series decoding while the browser loads the scripts; with a
    token, only for a browser that has logged in (the page is public: no one else makes the server work)."""
    from unittest import mock

    from starlette.testclient import TestClient

    from atlas_collector._web._app import build_app

    for token in ("", "s3cret"):
        api = mock.Mock(info={"version": "test"})
        client = TestClient(build_app(api, mock.Mock(), token=token, hosts={"testserver"}))
        page = client.get("/runs/abc123")
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
        if not token:
            api.prefetch_ref.assert_called_once_with("abc123")
            continue
        api.prefetch_ref.assert_not_called()
        assert client.post("/api/login", json={"token": token}).status_code == 200
        client.get("/runs/abc123")
        api.prefetch_ref.assert_called_once_with("abc123")
