"""The Atlas UI in a real browser: Debian's chromium driven by Playwright, against a real `atlas-collector`
(gRPC + HTTP on loopback) and real Lightning runs. What a person sees: runs in the list, drawn charts that hold
the run's points, the issues, live growth, Stop, run names shown as text, the login.

Screenshots of every page go to the test's tmp dir; with ATLAS_UI_SCREENSHOTS=DIR they are also saved to DIR
(benchmarks/results/ui/ holds the committed ones)."""
from __future__ import annotations

import datetime
import os
import pathlib
import shutil
import threading
import time
import uuid
from typing import Any, Callable, Iterator

import pytest

from ui.conftest import UiClient, UiCollector, launch

CHROMIUM = os.environ.get("ATLAS_CHROMIUM", "/usr/bin/chromium")
SCREENSHOTS = os.environ.get("ATLAS_UI_SCREENSHOTS")  # read at import: the tests' fixture clears ATLAS_* variables
XSS = "<img src=x onerror=alert(1)>"

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not pathlib.Path(CHROMIUM).is_file(),
                       reason=f"no chromium at {CHROMIUM} (apt-get install chromium; scripts/test installs it as root)"),
]

# Pixels of the smoothed loss line's colour on the loss chart's canvas: the chart is drawn, not just created.
LINE_PIXELS = """(id) => {
  const u = window.__atlas.charts[id].u;
  const { left, top, width, height } = u.bbox;
  const d = u.ctx.getImageData(left, top, width, height).data;
  let n = 0;
  for (let i = 0; i < d.length; i += 4) if (Math.abs(d[i] - 91) < 30 && Math.abs(d[i + 1] - 156) < 30 && Math.abs(d[i + 2] - 246) < 30 && d[i + 3] > 200) n++;
  return n;
}"""
POINTS = "(id) => { const c = window.__atlas.charts[id]; return c && c.u ? c.u.data[0].length : -1; }"


def lit() -> Any:
    """The tiny Lightning pieces, imported late (tests/ is on sys.path through ui/conftest.py)."""
    import lightning.pytorch as pl

    from _lit import TinyClassifier, loaders, trainer

    class NanAfter(TinyClassifier):
        """A model whose loss turns NaN after `nan_at` optimisation steps (a real NaN through backward)."""

        def __init__(self, nan_at: int = 10**9, **kwargs: Any) -> None:
            super().__init__(**kwargs)
            self.nan_at = nan_at

        def training_step(self, batch: Any, batch_idx: int) -> Any:
            loss = super().training_step(batch, batch_idx)
            return loss * float("nan") if self.global_step >= self.nan_at else loss

    class Pace(pl.Callback):
        """Slows each batch to `seconds` (a run that lasts while the page watches) and records when each began."""

        def __init__(self, seconds: float) -> None:
            self.seconds = seconds
            self.starts: list[float] = []

        def on_train_batch_start(self, trainer: Any, module: Any, batch: Any, batch_idx: int) -> None:
            self.starts.append(time.time())

        def on_train_batch_end(self, trainer: Any, module: Any, outputs: Any, batch: Any, batch_idx: int) -> None:
            time.sleep(self.seconds)

    return TinyClassifier, NanAfter, Pace, loaders, trainer


def until(page: Any, js: str, timeout: float = 10.0) -> Any:
    """Poll a JavaScript expression in the page until it is truthy. (Playwright's wait_for_function evaluates a
    string inside the page, which the UI's Content-Security-Policy forbids, rightly: script-src 'self'.)"""
    return wait_for(lambda: page.evaluate(js), timeout, js)


def wait_for(fn: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = fn()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(0.2)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
        yield b
        b.close()


class Page:
    """A page with what it reported: dialogs (an alert would mean injected script ran), script errors."""

    def __init__(self, browser: Any) -> None:
        self.context = browser.new_context(viewport={"width": 1440, "height": 900})
        self.page = self.context.new_page()
        self.dialogs: list[str] = []
        self.errors: list[str] = []
        self.page.on("dialog", lambda d: (self.dialogs.append(d.message), d.dismiss()))
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))

    def close(self) -> None:
        self.context.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Page]:
    p = Page(browser)
    yield p
    p.close()


def shot(page: Any, tmp: pathlib.Path, name: str, full_page: bool = True) -> None:
    """A screenshot to tmp, and to $ATLAS_UI_SCREENSHOTS when set."""
    path = tmp / name
    page.screenshot(path=str(path), full_page=full_page, timeout=90_000)
    assert path.stat().st_size > 10_000, f"{name} is blank"
    if SCREENSHOTS:
        pathlib.Path(SCREENSHOTS).mkdir(parents=True, exist_ok=True)
        shutil.copy(path, pathlib.Path(SCREENSHOTS) / name)


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[UiCollector, dict[str, str]]]:
    """One collector with four runs: a healthy one, one whose loss turns NaN, one named like HTML, one that failed."""
    from atlas_callback import AtlasCallback

    TinyClassifier, NanAfter, _, loaders, trainer = lit()
    tmp = tmp_path_factory.mktemp("ui-browser")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("ATLAS_HOME", str(tmp / "home"))
        collector = launch(f"sqlite:///{tmp / 'ui.db'}")
        runs: dict[str, str] = {}
        try:
            for name, model, epochs, tags in (("healthy", TinyClassifier(hidden=32), 5, ["ci", "baseline"]),
                                              ("nan-loss", NanAfter(nan_at=40), 4, ["ci"]),
                                              (XSS, TinyClassifier(), 2, ["xss"]),
                                              ("broken", TinyClassifier(fail_at_step=5), 1, [])):
                atlas = AtlasCallback(project="browser", run_name=name, collector=collector.address, tags=tags)
                try:
                    trainer([atlas], max_epochs=epochs).fit(model, *loaders())
                except RuntimeError as exc:
                    assert "boom at step 5" in str(exc)
                runs[name] = atlas.run_id
            client = UiClient(collector.url)
            try:  # the diagnosis runs after ingest: wait until the NaN run's root cause is stored
                wait_for(lambda: any(i["check"] == "nan_loss" for i in
                                     client.get(f"/api/runs/{runs['nan-loss']}/issues").json()["issues"]),
                         30, "the nan_loss issue")
            finally:
                client.close()
            yield collector, runs
        finally:
            collector.stop()


def test_runs_list_shows_every_run_with_health_and_names_as_text(served, page: Page, tmp_path) -> None:
    collector, runs = served
    p = page.page
    p.goto(collector.url)
    p.wait_for_selector("table.runs tbody tr")
    rows = p.locator("table.runs tbody tr")
    assert rows.count() == 4
    names = p.locator("td.col-name a").all_text_contents()
    assert sorted(names) == sorted(["healthy", "nan-loss", XSS, "broken"])
    assert "4 runs" in p.locator(".page-head").inner_text()
    assert p.locator(f"tr[data-run='{runs['broken']}'] .badge").inner_text().lower() == "failed"
    # the NaN run's health is below the healthy run's, as numbers in the Health column
    client = UiClient(collector.url)
    health = {r["name"]: r["health"] for r in client.get("/api/runs").json()["runs"]}
    client.close()
    row = p.locator(f"tr[data-run='{runs['nan-loss']}']")
    assert row.locator(".pill.health").inner_text() == str(round(health["nan-loss"]))
    # a run named like HTML is its characters: no element made from it, no script run
    assert p.evaluate("document.querySelectorAll('img').length") == 0
    assert not page.dialogs and not page.errors
    # filtering by text narrows the list (server-side), sorting by name orders it
    p.fill("input[placeholder='Search name or id']", "nan")
    until(p, "document.querySelectorAll('table.runs tbody tr').length === 1")
    assert p.locator("td.col-name a").all_text_contents() == ["nan-loss"]
    p.fill("input[placeholder='Search name or id']", "")
    until(p, "document.querySelectorAll('table.runs tbody tr').length === 4")
    p.click("th.sortable:has-text('Name')")
    until(p, "[...document.querySelectorAll('th.sortable')].some((th) => th.textContent.startsWith('Name') && th.querySelector('.sort-ind'))")
    ordered = p.locator("td.col-name a").all_text_contents()
    assert ordered == sorted(ordered) or ordered == sorted(ordered, reverse=True)
    shot(p, tmp_path, "runs.png")


def test_run_page_draws_the_runs_points_and_lists_its_issues(served, page: Page, tmp_path) -> None:
    collector, runs = served
    client = UiClient(collector.url)
    detail = client.get(f"/api/runs/{runs['nan-loss']}").json()
    epochs = client.get(f"/api/runs/{runs['nan-loss']}/epochs").json()["epochs"]
    p = page.page
    p.goto(f"{collector.url}runs/{runs['nan-loss']}")
    until(p, f"({POINTS})('loss') > 0")
    # the loss chart holds one point per training step (a small run is not downsampled); the smoothed line is drawn
    assert p.evaluate(f"({POINTS})('loss')") == detail["steps"]
    xs = p.evaluate("window.__atlas.charts.loss.u.data[0]")
    assert xs[0] <= 1 and xs[-1] >= detail["steps"] - 1
    until(p, f"({LINE_PIXELS})('loss') > 100")
    # per-epoch charts: one point per epoch, with the validation loss the run logged (they are built once the
    # epochs have arrived, which may be after the loss chart has painted)
    until(p, "window.__atlas.runReady")
    assert p.evaluate(f"({POINTS})('epoch_loss')") == len(epochs)
    series = p.evaluate("window.__atlas.charts.epoch_loss.u.series.map((s) => s.label)")
    assert "val_loss" in series
    # the issues, ranked: the NaN loss first, with its explanation and fix, the symptom it explains folded under it
    first = p.locator(".overview-aside li.issue").first
    assert "nan_loss" in first.inner_text() and "critical" in first.inner_text().lower()
    assert "exploding_gradients" in first.inner_text()  # "explains exploding_gradients"
    # its marker stands on the step chart where it first appeared
    markers = p.evaluate("window.__atlas.charts.loss.markers")
    nan_issue = next(i for i in client.get(f"/api/runs/{runs['nan-loss']}/issues").json()["issues"]
                     if i["check"] == "nan_loss")
    assert any(m["severity"] == "critical" and abs(m["x"] - (nan_issue["step"] or 0)) <= 16 for m in markers)
    shot(p, tmp_path, "run.png")
    # a drag across the loss chart zooms every step chart and fetches that range from the server
    box = p.locator("[data-chart='loss'] .u-over").bounding_box()
    y = box["y"] + box["height"] / 2
    p.mouse.move(box["x"] + box["width"] * 0.25, y)
    p.mouse.down()
    p.mouse.move(box["x"] + box["width"] * 0.5, y, steps=5)
    p.mouse.up()
    until(p, "document.querySelector('.zoom-note').textContent.includes('double-click to reset')")
    lo, hi = p.evaluate("[window.__atlas.charts.loss.u.data[0][0], window.__atlas.charts.loss.u.data[0].at(-1)]")
    assert 0 < lo < hi < detail["steps"] - 5, (lo, hi)
    assert p.evaluate("window.__atlas.charts.lr.u.data[0][0]") >= lo - 1  # the other step charts follow
    assert p.evaluate("performance.getEntriesByType('resource').some((e) => e.name.includes('/steps') && e.name.includes('from='))")
    p.dblclick("[data-chart='loss'] .u-over")
    until(p, f"window.__atlas.charts.loss.u.data[0].length === {detail['steps']}")
    # the Issues tab: evidence, fix, symptoms under their cause
    p.click("button.tab[data-tab='Issues']")
    full = p.locator("[data-pane='issues'] li.issue.full").first
    assert "fix" in full.inner_text().lower() and nan_issue["suggestion"][:30] in full.inner_text()
    p.click("[data-pane='issues'] details.symptoms summary")
    assert "exploding_gradients" in p.locator("[data-pane='issues'] details.symptoms").first.inner_text()
    shot(p, tmp_path, "issues.png")
    for tab, name in (("Layers", "layers.png"), ("Model", "model.png"), ("Logs", "logs.png"), ("Config", "config.png")):
        p.click(f"button.tab[data-tab='{tab}']")
        p.wait_for_timeout(500)
        shot(p, tmp_path, name)
    assert "hidden" in p.locator("[data-pane='config']").inner_text()  # TinyClassifier's hyperparameters
    assert p.evaluate("window.__atlas.heatmap ? window.__atlas.heatmap.layers.length : 0") > 0
    assert not page.errors, page.errors
    client.close()


def test_a_run_named_like_html_is_shown_as_text(served, page: Page) -> None:
    collector, runs = served
    p = page.page
    p.goto(f"{collector.url}runs/{runs[XSS]}")
    p.wait_for_selector("h1.run-name[data-loaded]")
    assert p.locator("h1.run-name").inner_text().startswith(XSS)
    assert p.title().startswith(XSS)
    p.click("button.tab[data-tab='Config']")
    assert XSS in p.locator("[data-pane='config']").inner_text()
    p.goto(f"{collector.url}compare?runs={runs[XSS]},{runs['healthy']}")
    p.wait_for_selector("table.hp")
    assert XSS in p.locator(".compare-legend").inner_text()
    p.wait_for_timeout(300)
    assert p.evaluate("document.querySelectorAll('img').length") == 0
    assert not page.dialogs and not page.errors


def test_a_failed_run_shows_its_exception(served, page: Page) -> None:
    collector, runs = served
    p = page.page
    p.goto(f"{collector.url}runs/{runs['broken']}")
    p.wait_for_selector(".card.failure")
    text = p.locator(".card.failure").inner_text()
    assert "RuntimeError" in text and "boom at step 5: synthetic failure" in text
    assert p.locator(".run-name .badge").inner_text().lower() == "failed"
    assert not page.errors, page.errors


def test_the_agent_panel_says_plainly_when_no_llm_is_configured(served, page: Page) -> None:
    collector, runs = served
    p = page.page
    p.goto(f"{collector.url}runs/{runs['healthy']}")
    p.wait_for_selector("h1.run-name[data-loaded]")
    p.click("button:has-text('Ask')")
    p.fill("textarea.agent-input", "Why did the loss plateau?")
    p.click("form.agent-form button[type=submit]")
    p.wait_for_selector(".agent .form-error", timeout=15_000)
    assert "Why did the loss plateau?" in p.locator(".agent .msg.user").inner_text()
    error = p.locator(".agent .form-error").inner_text()
    assert error and "internal error" not in error.lower()
    # and the collector's own diagnosis stands in for the LLM's answer
    assert p.locator(".agent .fallback").inner_text().strip()
    assert not page.errors, page.errors


def test_compare_and_project_pages_overlay_the_runs(served, page: Page, tmp_path) -> None:
    collector, runs = served
    p = page.page
    p.goto(f"{collector.url}compare?runs={runs['healthy']},{runs['nan-loss']}")
    until(p, f"({POINTS})('compare_loss') > 0")
    labels = p.evaluate("window.__atlas.charts.compare_loss.u.series.slice(1).map((s) => s.label)")
    assert labels == ["healthy", "nan-loss"]
    # hidden=32 vs the default 16: that hyperparameter is highlighted as differing, lr is not
    differ = p.locator("table.hp tr.diff th").all_text_contents()
    assert "hidden" in differ and "lr" not in differ
    shot(p, tmp_path, "compare.png")
    p.goto(f"{collector.url}projects/browser")
    p.wait_for_selector("table.grid")
    assert p.locator("table.grid tbody tr").count() == 4
    shot(p, tmp_path, "project.png")
    assert not page.errors, page.errors


def test_live_run_page_grows_warns_of_a_critical_issue_and_stop_stops_the_trainer(
        ui_collector: UiCollector, ui_client: UiClient, page: Page, tmp_path) -> None:
    from atlas_callback import AtlasCallback

    _, NanAfter, Pace, loaders, trainer = lit()
    run_id = str(uuid.uuid4())
    pace = Pace(0.05)
    max_epochs = 60  # 16 steps an epoch: about a minute unless stopped
    atlas = AtlasCallback(project="live", run_name="watched", collector=ui_collector.address, run_id=run_id)
    t = trainer([pace, atlas], max_epochs=max_epochs)
    failure: list[BaseException] = []

    def fit() -> None:
        try:
            t.fit(NanAfter(nan_at=100), *loaders())
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            failure.append(exc)

    # a runs list open before the run starts shows it when it starts, without a reload
    listing = Page(page.context.browser)
    listing.page.goto(ui_collector.url)
    listing.page.wait_for_selector(".empty.big")
    worker = threading.Thread(target=fit, daemon=True)
    worker.start()
    try:
        wait_for(lambda: ui_client.get(f"/api/runs/{run_id}").status_code == 200
                 and ui_client.get(f"/api/runs/{run_id}").json()["steps"] > 0, 60, "the run to start")
        listing.page.wait_for_selector(f"tr[data-run='{run_id}'] .badge.status-running", timeout=10_000)
        assert listing.page.locator("td.col-name a").all_text_contents() == ["watched"]
        assert not listing.errors, listing.errors
        listing.close()
        p = page.page
        p.goto(f"{ui_collector.url}runs/{run_id}")
        until(p, f"({POINTS})('loss') > 0")
        p.evaluate("window.__noReload = true")
        before = p.evaluate(f"({POINTS})('loss')")
        # new steps reach the open page and the chart grows, without a reload
        until(p, f"({POINTS})('loss') >= {before + 10}", 15)
        assert p.evaluate("window.__noReload") is True
        # the NaN at step 100 becomes a critical issue while we watch: a banner says so
        p.wait_for_selector("#banner.critical", state="visible", timeout=30_000)
        assert "Critical issue" in p.locator("#banner").inner_text()
        assert worker.is_alive(), "the run ended before Stop could be tested"
        shot(p, tmp_path, "run_live.png", full_page=False)  # a live page repaints: the viewport is quicker
        # Stop in the UI: the trainer stops at its next batch, and the page shows it stopped
        clicked = time.time()
        p.click("button.btn.danger:has-text('Stop')")
        command = until(p, "window.__atlas.lastCommand", 20)
        worker.join(timeout=20)
        assert not worker.is_alive(), "the trainer did not stop within 20 s of Stop"
        assert not failure, failure
        assert command["kind"] == "stop" and command["delivered"] is True
        issued = datetime.datetime.fromisoformat(command["issued_at"].replace("Z", "+00:00")).timestamp()
        # the batch running when the command was issued may finish; at most one more starts before the stop
        started_after = [round(s - issued, 3) for s in pace.starts if s > issued]
        assert len(started_after) <= 2, f"batches started after the stop was issued: {started_after}"
        assert time.time() - clicked < 10
        assert t.global_step < max_epochs * 16
        p.wait_for_selector(".run-name .badge.status-stopped", timeout=15_000)
        assert not page.dialogs and not page.errors, page.errors
    finally:
        t.should_stop = True
        worker.join(timeout=30)


def test_with_a_token_the_page_asks_for_it_once_and_the_api_refuses_without_it(
        start_ui_collector, browser, tmp_path) -> None:
    collector = start_ui_collector(token="s3cret-token")
    page = Page(browser)
    try:
        p = page.page
        p.goto(collector.url)
        p.wait_for_selector("form.login-form")
        assert p.url.endswith("/login?next=%2F")
        assert p.evaluate("fetch('/api/runs').then((r) => r.status)") == 401
        shot(p, tmp_path, "login.png")
        p.fill("#token", "wrong")
        p.click("button:has-text('Sign in')")
        until(p, "document.querySelector('.form-error').textContent.length > 0")
        assert "not the collector's token" in p.locator(".form-error").inner_text()
        p.fill("#token", "s3cret-token")
        p.click("button:has-text('Sign in')")
        p.wait_for_selector("h1:has-text('Runs')")
        assert p.evaluate("fetch('/api/runs').then((r) => r.status)") == 200
        # the session cookie is HttpOnly: the page's scripts cannot read it
        assert "atlas_session" not in p.evaluate("document.cookie")
        cookies = {c["name"]: c for c in page.context.cookies()}
        assert cookies["atlas_session"]["httpOnly"] and cookies["atlas_session"]["sameSite"] == "Strict"
        # a reload keeps the session (asked once)
        p.reload()
        p.wait_for_selector("h1:has-text('Runs')")
        assert not page.errors, page.errors
    finally:
        page.close()


def test_metrics_tab_charts_every_metric_the_training_code_logged(ui_collector, page: Page, tmp_path) -> None:
    """Scalars logged with observer.log(...) appear in the run page's Metrics tab: one chart per key holding each
    logged point, and the keys with their last values."""
    from atlas_callback import Observer

    with Observer(project="ui", run_name="metrics", collector=ui_collector.address) as obs:
        for i in range(30):
            obs.step(1.0 / (i + 1), batch_size=4)
            obs.log({"reward": float(i) * 2, "kl": 0.5 - i / 100})
        run_id = obs.run_id
    client = UiClient(ui_collector.url)
    wait_for(lambda: len(client.get(f"/api/runs/{run_id}/metrics").json().get("metrics", {})) == 2, 15,
             "the two logged metrics stored")
    client.close()
    p = page.page
    p.goto(f"{ui_collector.url}runs/{run_id}?tab=metrics")
    until(p, "window.__atlas.charts['metric:reward'] && window.__atlas.charts['metric:reward'].u "
             "&& window.__atlas.charts['metric:kl'] && window.__atlas.charts['metric:kl'].u", 20)
    assert p.evaluate("window.__atlas.charts['metric:reward'].u.data[1].length") == 30
    assert p.evaluate("Math.max(...window.__atlas.charts['metric:reward'].u.data[1])") == 58.0
    rows = p.locator("table.metric-keys tbody tr")
    assert rows.count() == 2
    cells = rows.nth(1).locator("td").all_text_contents()
    assert cells[0] == "reward" and cells[1] == "30" and float(cells[2]) == 58.0, cells
    shot(p, tmp_path, "metrics.png")
    assert not page.errors, page.errors
