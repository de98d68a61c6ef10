"""The Atlas UI opening a run with 1,000,000 step samples, in a real browser: time until its charts are drawn.

Writes one run straight into a fresh SQLite store through the collector's own ingest function (`apply_message`:
RunStart, 1,000 StepBatch messages of 1,000 samples — loss, lr, gradient norm, step time — 20 epoch summaries,
RunEnd), starts `atlas-collector --http 127.0.0.1:0` on it, and opens /runs/{id} in Debian's chromium (headless,
Playwright). Each uPlot chart records when it first painted (`performance.now()`, counted from the navigation's
start); a page load is done when every chart of the page has painted. Measured:

- cold: the first open after the collector started (the server reads and decodes the million samples);
- warm: --repeat more opens, each in a fresh browser profile (the server's column cache is filled, and the cold
  page's slower cards have arrived, so the server is idle), median and worst, and where their time goes; and
  --repeat opens in new tabs of one profile (the browser's cache holds the page's files too);
- the runs list with --runs more runs: the first page of 50 drawn, and pages far into the list;
- zoom: a drag-zoom to a 800-step range, until the charts hold that range at full resolution;
- the /steps answers (min/max buckets of about a pixel each: the loss, then the other series) as the browser
  timed them, and their size.

    python benchmarks/ui_load.py [--steps 1000000] [--repeat 5] [--out benchmarks/results/ui_load.txt]
"""
from __future__ import annotations

import argparse
import math
import os
import pathlib
import random
import statistics
import subprocess
import sys
import tempfile
import time
import uuid

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
BIN = pathlib.Path(sys.executable).parent
CHROMIUM = os.environ.get("ATLAS_CHROMIUM", "/usr/bin/chromium")

# Every chart of the page painted: the latest first paint, or null while one is missing.
ALL_DRAWN = """() => {
  const charts = Object.values(window.__atlas.charts);
  if (!window.__atlas.runReady || !charts.some((c) => c.spec.id === 'loss')) return null;
  if (charts.some((c) => !c.readyAt)) return null;
  return Math.max(...charts.map((c) => c.readyAt));
}"""
STEPS_TIMING = """() => performance.getEntriesByType('resource').filter((e) => e.name.includes('/steps'))
  .map((e) => ({ms: e.duration, bytes: e.encodedBodySize, loss: e.name.includes('series=loss&')}))"""
# Where a page load's time goes (ms from navigation start): the page, its script, the first data requests.
PHASES = """() => {
  const nav = performance.getEntriesByType('navigation')[0];
  const res = performance.getEntriesByType('resource');
  const end = (test) => { const e = res.filter(test); return e.length ? Math.max(...e.map((x) => x.responseEnd)) : null; };
  const start = (test) => { const e = res.filter(test); return e.length ? Math.min(...e.map((x) => x.startTime)) : null; };
  const server = (test) => { const e = res.filter(test).flatMap((x) => x.serverTiming.map((s) => s.duration));
    return e.length ? Math.max(...e) : null; };
  const api = (e) => e.name.includes('/api/runs/');
  return {server_max: server(api), html: nav.responseEnd, scripts: end((e) => e.initiatorType === 'script'),
          dcl: nav.domContentLoadedEventEnd, api_sent: start(api),
          loss_data: end((e) => e.name.includes('series=loss&')), other_data: end((e) => e.name.includes('/steps') &&
          !e.name.includes('series=loss&')), epochs_data: end((e) => e.name.includes('/epochs'))};
}"""


def fill(url: str, steps: int, epochs: int = 20) -> str:
    """One finished run with `steps` step samples and `epochs` epoch summaries; returns its id."""
    from atlas_collector import Store
    from atlas_collector._ingest import apply_message
    from atlas_proto.v1 import telemetry_pb2 as tpb

    store = Store(url)
    store.create_schema()
    run, session = str(uuid.uuid4()), str(uuid.uuid4())
    now = time.time() - 3600
    start = tpb.ClientMessage(run_id=run, session=session, seq=0)
    rs = start.run_start
    rs.protocol_version, rs.project, rs.run_name = tpb.PROTOCOL_VERSION_1, "bench", "one-million-steps"
    rs.started_at.FromSeconds(int(now))
    rng = random.Random(0)
    per_epoch = steps // epochs
    seq = 0
    with store.begin() as conn:
        apply_message(conn, start, "run_start")
    for first in range(1, steps + 1, 1000):
        m = tpb.ClientMessage(run_id=run, session=session, seq=(seq := seq + 1))
        for step in range(first, min(first + 1000, steps + 1)):
            loss = 2.3 * math.exp(-step / 150_000) + 0.2 + 0.08 * rng.random() + (0.6 if rng.random() < 1e-4 else 0)
            x = m.step_batch.samples.add(step=step, epoch=min(epochs - 1, (step - 1) // per_epoch), loss=loss,
                                         lr=0.1 * 0.5 * (1 + math.cos(math.pi * step / steps)),
                                         step_time_s=0.012 + 0.002 * rng.random(), batch_size=64)
            if step % 10 == 0:
                x.grad_norm = 1.5 * math.exp(-step / 300_000) + 0.3 * rng.random()
            x.time.FromNanoseconds(int((now + step * 0.0035) * 1e9))
        with store.begin() as conn:
            apply_message(conn, m, "step_batch")
    with store.begin() as conn:
        for e in range(epochs):
            m = tpb.ClientMessage(run_id=run, session=session, seq=(seq := seq + 1))
            s = m.epoch_summary
            s.epoch, s.duration_seconds, s.global_step = e, per_epoch * 0.0035, (e + 1) * per_epoch
            s.ended_at.FromSeconds(int(now + (e + 1) * per_epoch * 0.0035))
            s.loss.mean, s.loss.std, s.loss.count = 2.3 * math.exp(-(e + 0.5) * per_epoch / 150_000) + 0.24, 0.03, per_epoch
            s.val_metrics["val_loss"] = 2.3 * math.exp(-(e + 0.5) * per_epoch / 150_000) + 0.3 + 0.002 * max(0, e - 12) ** 2
            s.val_metrics["val_acc"] = 0.95 - 0.6 * math.exp(-(e + 1) / 4)
            s.throughput.samples_per_sec = 18_000 + 500 * rng.random()
            s.memory.process_rss_mb, s.system.cpu_percent = 2400 + 3 * e, 85 + 5 * rng.random()
            s.lr.append(0.1 * 0.5 * (1 + math.cos(math.pi * (e + 1) / epochs)))
            s.carbon.epoch_co2_kg, s.carbon.epoch_energy_kwh = 0.002, 0.008
            s.carbon.cumulative_co2_kg, s.carbon.cumulative_energy_kwh = 0.002 * (e + 1), 0.008 * (e + 1)
            apply_message(conn, m, "epoch_summary")
        end = tpb.ClientMessage(run_id=run, session=session, seq=seq + 1)
        end.run_end.status, end.run_end.total_steps, end.run_end.epochs = tpb.RUN_STATUS_COMPLETED, steps, epochs
        end.run_end.ended_at.FromSeconds(int(now + steps * 0.0035))
        apply_message(conn, end, "run_end")
    store.close()
    return run


def fill_runs(url: str, runs: int) -> None:
    """`runs` more finished runs (20 projects, tags, health scores) for the runs list, inserted in bulk."""
    import sqlalchemy as sa

    from atlas_collector import Store
    from atlas_collector import _schema as s

    store = Store(url)
    now = time.time()
    with store.begin() as conn:
        conn.execute(sa.insert(s.projects), [{"name": f"project-{p}", "created_at": now} for p in range(20)])
        pids = [r[0] for r in conn.execute(sa.select(s.projects.c.id).where(s.projects.c.name.like("project-%")))]
        statuses = ("completed", "completed", "completed", "failed", "stopped", "running")
        rows, tags = [], []
        for i in range(runs):
            run_id = str(uuid.uuid4())
            rows.append({"id": run_id, "project_id": pids[i % 20], "name": f"run-{i}", "status": statuses[i % 6],
                         "framework": "lightning", "started_at": now - (runs - i) * 60.0,
                         "ended_at": now - (runs - i) * 60.0 + 50, "last_seen_at": now, "on_critical": "warn",
                         "world_size": 1, "epochs": 10, "steps": 1000, "health_score": 100.0 - i % 40,
                         "hyperparameters": {"lr": 0.01}, "versions": {"torch": "2.13"}, "device": {"kind": "cpu"}})
            tags.append({"run_id": run_id, "tag": f"tag-{i % 50}"})
        for chunk in range(0, runs, 2000):
            conn.execute(sa.insert(s.runs), rows[chunk:chunk + 2000])
            conn.execute(sa.insert(s.run_tags), tags[chunk:chunk + 2000])
    store.close()


def open_list(browser, url: str, timeout: float = 120.0) -> float:
    """ms from navigation start until the runs list's first page is drawn (fresh profile)."""
    context = browser.new_context(viewport={"width": 1440, "height": 900})
    page = context.new_page()
    page.goto(url)
    deadline = time.monotonic() + timeout
    while (ms := page.evaluate("window.__atlas && window.__atlas.listDrawnAt")) is None or not ms:
        if time.monotonic() > deadline:
            raise SystemExit("runs list not drawn")
        time.sleep(0.01)
    rows = page.evaluate("document.querySelectorAll('table.runs tbody tr').length")
    assert rows == 50, rows
    context.close()
    return ms


def start_collector(db_url: str) -> tuple[subprocess.Popen[str], str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ATLAS_")}
    proc = subprocess.Popen([str(BIN / "atlas-collector"), "--listen", "127.0.0.1:0", "--http", "127.0.0.1:0",
                             "--db", db_url, "--log-level", "WARNING"], stdout=subprocess.PIPE, text=True, env=env)
    assert proc.stdout is not None
    first, second = proc.stdout.readline().strip(), proc.stdout.readline().strip()
    if not second.startswith("web UI on "):
        proc.kill()
        raise SystemExit(f"collector did not start with its UI: {first!r} {second!r}")
    return proc, second.removeprefix("web UI on ")


def open_run(browser, url: str, timeout: float = 60.0, context=None) -> dict:
    """Open the run page in a new tab (of a fresh browser profile unless `context` is given: then the browser's
    cache holds the page's files); returns the in-page timings (ms from navigation start)."""
    context = context or browser.new_context(viewport={"width": 1440, "height": 900})
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    t0 = time.perf_counter()
    page.goto(url)
    deadline = time.monotonic() + timeout
    drawn = None
    while drawn is None:
        if time.monotonic() > deadline:
            raise SystemExit(f"charts not drawn within {timeout} s; page errors: {errors}")
        drawn = page.evaluate(f"({ALL_DRAWN})()")
        if drawn is None:
            time.sleep(0.01)
    wall = (time.perf_counter() - t0) * 1000
    out = {"drawn_ms": drawn, "wall_ms": wall, "page": page, "context": context, "errors": errors,
           "loss_points": page.evaluate("window.__atlas.charts.loss.u.data[0].length"),
           "loss_ms": page.evaluate("window.__atlas.charts.loss.readyAt"),
           "charts": page.evaluate("Object.keys(window.__atlas.charts).length"),
           "steps_fetch": page.evaluate(f"({STEPS_TIMING})()"),
           "dcl_ms": page.evaluate("performance.getEntriesByType('navigation')[0].domContentLoadedEventEnd"),
           "phases": page.evaluate(f"({PHASES})()")}
    return out


def settle(page) -> None:
    """Wait (up to 30 s) until every card of the run page has its data: the slower ones (the Green-AI report,
    computed once per run on the server) arrive after the charts."""
    for _ in range(300):
        if not page.evaluate("document.querySelectorAll('.overview-aside .loading').length"):
            return
        page.wait_for_timeout(100)


def zoom(page, lo: int, hi: int, timeout: float = 30.0) -> float:
    """Zoom every step chart to [lo, hi] as a drag-selection does; ms until the loss chart holds that range."""
    page.evaluate("window.__atlas.zoomStart = performance.now()")
    page.evaluate(f"window.__atlas.charts.loss.spec.onZoom({lo}, {hi})")
    deadline = time.monotonic() + timeout
    check = f"""() => {{ const x = window.__atlas.charts.loss.u.data[0];
      return x.length && x[0] >= {lo} && x[x.length - 1] <= {hi} ? performance.now() - window.__atlas.zoomStart : null; }}"""
    while (ms := page.evaluate(f"({check})()")) is None:
        if time.monotonic() > deadline:
            raise SystemExit("zoom did not land")
        time.sleep(0.005)
    return ms


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=1_000_000)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--runs", type=int, default=10_000, help="more runs in the store, for the runs list")
    ap.add_argument("--out", default=str(ROOT / "benchmarks/results/ui_load.txt"))
    ap.add_argument("--screenshot", default=str(ROOT / "benchmarks/results/ui/run_1m.png"))
    args = ap.parse_args()
    from playwright.sync_api import sync_playwright

    lines: list[str] = []

    def say(text: str) -> None:
        print(text, flush=True)
        lines.append(text)

    tmp = tempfile.mkdtemp(prefix="atlas-uibench-")
    url = f"sqlite:///{tmp}/ui.db"
    t0 = time.perf_counter()
    run = fill(url, args.steps)
    fill_runs(url, args.runs)
    say(f"machine: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}; chromium {CHROMIUM}; "
        f"store: SQLite; {args.runs + 1:,} runs, one with {args.steps:,} step samples, filled in {time.perf_counter() - t0:.1f} s")
    proc, base = start_collector(url)
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
            page_url = f"{base}runs/{run}"
            cold = open_run(browser, page_url)
            say(f"cold open (server cache empty): all {cold['charts']} charts drawn at {cold['drawn_ms']:.0f} ms "
                f"(loss chart {cold['loss_ms']:.0f} ms, {cold['loss_points']:,} points); /steps answers "
                + ", ".join(f"{f['ms']:.0f} ms" for f in cold['steps_fetch']))
            settle(cold["page"])  # the warm opens start once the server has finished the cold page's work
            cold["context"].close()
            warm = []
            for _ in range(args.repeat):
                r = open_run(browser, page_url)
                warm.append(r)
                if r is not warm[-1] or len(warm) < args.repeat:
                    r["context"].close()
            drawn = [r["drawn_ms"] for r in warm]
            loss_fetch = [f["ms"] for r in warm for f in r["steps_fetch"] if f["loss"]]
            other_fetch = [f["ms"] for r in warm for f in r["steps_fetch"] if not f["loss"]]
            size = sum(f["bytes"] for f in warm[0]["steps_fetch"]) / 1024
            say(f"warm open x{args.repeat}: all {warm[0]['charts']} charts drawn at median "
                f"{statistics.median(drawn):.0f} ms, worst {max(drawn):.0f} ms (target < 1000 ms); loss chart "
                f"median {statistics.median(r['loss_ms'] for r in warm):.0f} ms with {warm[0]['loss_points']:,} "
                f"points (min/max buckets over {args.steps:,} steps)")
            say(f"  DOMContentLoaded median {statistics.median(r['dcl_ms'] for r in warm):.0f} ms; /steps answers "
                f"(median, as the browser timed them): loss {statistics.median(loss_fetch):.0f} ms, the other four "
                f"series {statistics.median(other_fetch):.0f} ms; {size:.0f} KiB together")
            phases = {k: statistics.median(r["phases"][k] for r in warm if r["phases"][k] is not None)
                      for k in warm[0]["phases"]}
            say("  where the time goes (median ms from navigation start): the page {html:.0f}, its scripts loaded "
                "{scripts:.0f}, DOMContentLoaded {dcl:.0f}, first API request sent {api_sent:.0f}; loss data in "
                "{loss_data:.0f}, the other step series {other_data:.0f}, epochs {epochs_data:.0f}; the slowest of the run's "
                "API requests spent {server_max:.0f} ms in the server (its Server-Timing)".format(**phases))
            shared = browser.new_context(viewport={"width": 1440, "height": 900})
            open_run(browser, page_url, context=shared)["page"].close()
            cached = []
            for _ in range(args.repeat):
                r = open_run(browser, page_url, context=shared)
                cached.append(r["drawn_ms"])
                r["page"].close()
            shared.close()
            say(f"warm open, browser cache warm too (a new tab of the same profile) x{args.repeat}: all charts drawn "
                f"at median {statistics.median(cached):.0f} ms, worst {max(cached):.0f} ms")
            last = warm[-1]
            page = last["page"]
            settle(page)  # the screenshot waits for the slower cards (Green AI) too
            pathlib.Path(args.screenshot).parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=args.screenshot, full_page=False)
            zooms = [zoom(page, int(args.steps * f), int(args.steps * f) + 800) for f in (0.5, 0.1, 0.9)]
            say(f"zoom to an 800-step range (full resolution, {page.evaluate('window.__atlas.charts.loss.u.data[0].length'):,} "
                f"points): median {statistics.median(zooms):.0f} ms, worst {max(zooms):.0f} ms")
            lists = [open_list(browser, base) for _ in range(args.repeat)]
            pages = [open_list(browser, f"{base}?offset={o}") for o in (50, 5000, args.runs - 50)]
            say(f"runs list of {args.runs + 1:,} runs, first page (50 rows) drawn at median "
                f"{statistics.median(lists):.0f} ms; pages at offsets 50, 5,000 and {args.runs - 50:,}: "
                + ", ".join(f"{ms:.0f} ms" for ms in pages))
            errors = [e for r in [cold, *warm] for e in r["errors"]]
            say(f"page errors: {len(errors)}" + (f" {errors[:3]}" if errors else ""))
            last["context"].close()
            browser.close()
    finally:
        proc.terminate()
        proc.wait(20)
    if args.out:
        pathlib.Path(args.out).write_text("\n".join(lines) + "\n")
        print(f"wrote {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
