"""Every `atlas` query command against a real collector holding real runs: --help, table, --json, errors."""
from __future__ import annotations

import csv
import json
import subprocess
import sys
from typing import Iterator

import pytest

from cli_support import LOG_LINES, Store, atlas, atlas_json, free_port, one_line_error, stored_runs
from conftest import cli_env

ISSUE_FIELDS = ["run", "check", "severity", "category", "title", "description", "epoch", "step", "layer",
                "metric_key", "metric_value", "thresholds", "suggestion", "first_seen_epoch", "last_seen_epoch",
                "active"]
COMMANDS = ["runs", "runs show", "runs delete", "issues", "health", "green", "epochs", "logs", "arch", "trend",
            "compare", "stop", "pause", "resume", "watch", "export", "diagnose", "ask", "mcp", "demo", "sync"]


@pytest.fixture(scope="module")
def store() -> Iterator[Store]:
    yield stored_runs()  # built once per session, stopped at exit


def test_every_command_help_shows_an_example_and_loads_no_torch_or_grpc() -> None:
    code = (
        "import sys\nfrom click.testing import CliRunner\nfrom atlas_cli import cli\nout = {}\n"
        f"for cmd in {COMMANDS!r}:\n"
        "    r = CliRunner().invoke(cli, cmd.split() + ['--help'])\n"
        "    out[cmd] = (r.exit_code, r.output)\n"
        "r = CliRunner().invoke(cli, ['--help'])\nout['atlas'] = (r.exit_code, r.output)\n"
        "import json\nprint(json.dumps({'help': out, 'mods': sorted(m for m in sys.modules if m.split('.')[0] in "
        "('torch', 'grpc', 'rich', 'anthropic', 'openai', 'mcp'))}))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=cli_env(), timeout=60)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    for cmd, (exit_code, text) in result["help"].items():
        assert exit_code == 0, (cmd, text)
        assert "Example" in text, f"`atlas {cmd} --help` shows no example:\n{text}"
        assert f"atlas {cmd.split()[0] if cmd != 'atlas' else ''}" in text
    assert result["mods"] == [], f"--help imported {result['mods']}"


def test_usage_errors_exit_2_without_traceback() -> None:
    for args in (["issues", "--severity", "bogus"], ["compare", "only-one"], ["watch"], ["epochs", "x", "--from", "-1"],
                 ["issues", "some-run", "--all-runs"]):
        done = atlas(*args, check=False)
        assert done.returncode == 2, (args, done.stderr)
        assert "Traceback" not in done.stderr and "Usage:" in done.stderr


def test_a_collector_url_is_refused_with_the_address_to_use() -> None:
    """ATLAS_COLLECTOR=http://host:port was accepted, looked up as a host name and answered with a wrong command."""
    done = atlas("runs", check=False, env=cli_env(ATLAS_COLLECTOR="http://127.0.0.1:50051"))
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert "without a scheme" in done.stderr and "did you mean '127.0.0.1:50051'?" in done.stderr
    assert "atlas-collector --listen http" not in done.stderr


def test_the_runs_table_reads_as_people_read_it(store: Store) -> None:
    """Issue 17: a duration column, the start to the second (no microseconds), a whole-number health."""
    import re

    lines = atlas("runs", collector=store.address).stdout.splitlines()
    assert "STARTED (UTC)" in lines[0] and lines[0].rstrip().endswith("DURATION  TAGS")
    row = next(line for line in lines if "baseline" in line)
    assert re.search(r" \d{4}-\d\d-\d\d \d\d:\d\d:\d\d +(\d+(\.\d)?s|\d+m \d\ds) +cli-test$", row), row
    assert ".0 " not in row.split("baseline")[1][:40]  # health 98, not 98.0
    exact = atlas_json("runs", collector=store.address)
    assert all(r["started_at"].endswith("Z") for r in exact)  # --json keeps the exact ISO timestamps


def test_a_short_id_prefix_says_how_long_a_prefix_must_be(store: Store) -> None:
    short = store.runs["baseline"][:4]
    line = one_line_error(atlas("issues", short, collector=store.address, check=False))
    assert "at least 6 characters (4 given)" in line, line
    assert atlas_json("issues", store.runs["baseline"][:6], collector=store.address) is not None


@pytest.mark.parametrize("args", [["runs", "show", "{}"], ["epochs", "{}"], ["logs", "{}"], ["arch", "{}"],
                                  ["health", "{}"], ["green", "{}"], ["issues", "{}"], ["export", "{}"],
                                  ["stop", "{}"], ["watch", "{}"], ["compare", "baseline", "{}"]])
def test_unknown_run_exits_1_and_suggests_close_names(store: Store, args: list[str], tmp_path) -> None:
    argv = [a.format("baselin") for a in args]
    done = atlas(*argv, collector=store.address, check=False)
    line = one_line_error(done)
    assert "baselin" in line and "'baseline'" in line, line


@pytest.mark.parametrize("args", [["runs"], ["issues", "latest"], ["health", "x"], ["green", "x"], ["epochs", "x"],
                                  ["logs", "x"], ["arch", "x"], ["trend", "p"], ["compare", "a", "b"],
                                  ["stop", "x"], ["watch", "x"], ["export", "x"]])
def test_no_collector_exits_1_naming_the_address(args: list[str]) -> None:
    address = f"127.0.0.1:{free_port()}"
    line = one_line_error(atlas(*args, collector=address, check=False))
    assert address in line and "atlas-collector" in line


def test_epochs_table_and_json_match_the_training(store: Store) -> None:
    rows = atlas_json("epochs", "baseline", collector=store.address)
    assert [r["epoch"] for r in rows] == [0, 1, 2]
    assert all(r["loss_count"] == 16 and r["samples_per_sec"] > 0 for r in rows)
    assert rows[-1]["val_loss"] == pytest.approx(store.val_loss["baseline"], rel=1e-6)
    assert rows[0]["started_at"].endswith("Z") and rows[0]["tokens_per_sec"] is None
    # --json before the command, and a range
    ranged = json.loads(atlas("--json", "epochs", "baseline", "--from", "1", "--to", "1",
                              collector=store.address).stdout)
    assert [r["epoch"] for r in ranged] == [1]
    table = atlas("epochs", "baseline", collector=store.address).stdout.splitlines()
    assert table[0].split()[:3] == ["EPOCH", "LOSS", "VAL_LOSS"]
    assert len(table) == 4 and table[3].split()[0] == "2"
    assert f"{rows[-1]['val_loss']:.4g}" in table[3]


def test_logs_all_and_errors_only(store: Store) -> None:
    rows = atlas_json("logs", "streamed", collector=store.address)
    assert [(r["level"], r["epoch"]) for r in rows] == [(lvl, e) for e in (0, 1) for lvl, *_ in LOG_LINES]
    assert rows[2]["message"] == "CUDA out of memory while allocating 2.00 GiB (epoch 0)"
    assert rows[1]["logger"] == "py.warnings" and rows[0]["time"].endswith("Z") and rows[0]["rank"] == 0
    errors = atlas_json("logs", "streamed", "--errors", collector=store.address)
    assert [r["level"] for r in errors] == ["ERROR", "ERROR"]
    text = atlas("logs", "streamed", "--errors", collector=store.address).stdout
    assert "CUDA out of memory" in text and "loaded 512 samples" not in text


def test_arch_layer_table_tree_and_json(store: Store) -> None:
    a = atlas_json("arch", "streamed", collector=store.address)
    assert a["model_class"] == "SmallNet" and a["total_parameters"] == 20_810
    assert [(x["name"], x["type"], x["parameters"]) for x in a["layers"]] == [("conv1", "Conv2d", 320),
                                                                              ("fc", "Linear", 20_490)]
    assert a["layers"][0]["attributes"]["kernel_size"] == [3, 3]
    text = atlas("arch", "streamed", collector=store.address).stdout
    assert "20,810 parameters" in text
    assert any(line.split()[:3] == ["fc", "Linear", "20490"] for line in text.splitlines())
    assert "├── conv1 (Conv2d)  320 params" in text and "└── fc (Linear)  20,490 params" in text
    # the architecture AtlasCallback captured from the trained TinyClassifier
    real = atlas_json("arch", "baseline", collector=store.address)
    assert real["model_class"] == "TinyClassifier" and real["total_parameters"] == 8 * 16 + 16 + 16 * 3 + 3
    assert [(x["name"], x["parameters"]) for x in real["layers"] if x["parameters"]] == [("net.0", 144), ("net.2", 51)]
    text = atlas("arch", "baseline", collector=store.address).stdout
    assert "    ├── 0 (Linear)  144 params" in text and "    └── 2 (Linear)  51 params" in text


def test_compare_side_by_side(store: Store) -> None:
    c = atlas_json("compare", "baseline", "hot", collector=store.address)
    assert c["run_a"]["id"] == store.runs["baseline"] and c["run_b"]["id"] == store.runs["hot"]
    text = atlas("compare", "baseline", "hot", collector=store.address).stdout
    rows = {line.split()[0]: line.split()[1:] for line in text.splitlines() if line.strip()}
    assert rows["name"][:2] == ["baseline", "hot"]
    assert rows["epochs"][:3] == ["3", "5", "2"]  # B - A
    assert rows["lr"][:2] == ["0.05", "3"]


def test_issues_health_and_green_tell_the_same_story(store: Store) -> None:
    issues = atlas_json("issues", "hot", collector=store.address)
    assert issues, "the overfitting run has issues"
    for issue in issues:
        assert list(issue) == ISSUE_FIELDS or set(ISSUE_FIELDS) <= set(issue)
        assert issue["run"] == store.runs["hot"] and issue["severity"] in ("critical", "warning", "info")
    checks = {i["check"] for i in issues}
    assert "overfitting" in checks or "early_stopping_missed" in checks, checks
    warnings = atlas_json("issues", "hot", "--severity", "warning", collector=store.address)
    assert warnings and {i["severity"] for i in warnings} == {"warning"}
    assert {i["check"] for i in warnings} <= checks

    health = atlas_json("health", "hot", collector=store.address)
    assert health["run"] == store.runs["hot"]
    active = [i for i in issues if i["active"]]
    counts = {s: sum(i["severity"] == s for i in active) for s in ("critical", "warning", "info")}
    assert health["severity_counts"] == counts
    assert health["health_score"] == max(0, 100 - 20 * counts["critical"] - 7 * counts["warning"] - 2 * counts["info"])
    text = atlas("health", "hot", collector=store.address).stdout
    assert f"health score  {health['health_score']} / 100" in text
    assert active[0]["check"] in text  # health's top issue: the highest-ranked active one
    assert [i["check"] for i in health["top_issues"]] == [i["check"] for i in active][:len(health["top_issues"])]

    table = atlas("issues", "hot", collector=store.address).stdout
    assert table.splitlines()[0].split()[:4] == ["RUN", "#", "SEVERITY", "CHECK"]
    cleared = "" if issues[0]["active"] else " (cleared)"  # a cleared issue stays as history, ranked
    assert f"1. {issues[0]['check']}{cleared}: " in table  # the root cause, why it fired, and its fix
    assert [i["rank"] for i in issues] == list(range(1, len(issues) + 1))
    assert all(i["check"] in table for i in issues)

    everything = atlas_json("issues", "--all-runs", collector=store.address)
    assert {i["run"] for i in everything} >= {store.runs["hot"]}

    g = atlas_json("green", "hot", collector=store.address)
    for key in ("optimal_stop_epoch", "wasted_epochs", "wasted_compute_pct", "wasted_duration_seconds",
                "total_co2_kg", "total_energy_kwh", "wasted_co2_kg", "parameter_efficiency_score", "dead_layers",
                "wasted_energy_kwh", "total_cost_eur", "wasted_cost_eur", "grade", "co2_equivalents"):
        assert key in g, key
    assert g["grade"] in list("ABCDF")
    assert g["wasted_epochs"] >= 1  # val loss rose after the first epochs
    text = atlas("green", "hot", collector=store.address).stdout
    assert f"grade              {g['grade']}" in text and f"wasted epochs      {g['wasted_epochs']}" in text


def test_green_reads_co2_cost_and_equivalents(store: Store) -> None:
    g = atlas_json("green", "streamed", collector=store.address)
    assert g["total_co2_kg"] == pytest.approx(0.02) and g["total_energy_kwh"] == pytest.approx(0.08)
    assert g["total_cost_eur"] == pytest.approx(0.02 * 50 / 1000)
    assert g["co2_equivalents"]["km_driven_by_car"] == pytest.approx(0.02 / (0.393 / 1.609344))
    text = atlas("green", "streamed", collector=store.address).stdout
    assert "CO2 total          20 g" in text and "0.08 kWh" in text and "total 0.001 EUR" in text
    assert f"{g['co2_equivalents']['km_driven_by_car']:,.4g} km driven by an average car" in text
    assert "smartphone charges" in text and "no carbon data" not in text
    epochs = atlas_json("epochs", "streamed", collector=store.address)
    assert [e["cumulative_co2_kg"] for e in epochs] == pytest.approx([0.01, 0.02])
    table = atlas("epochs", "streamed", collector=store.address).stdout.splitlines()
    assert "CO2_TOTAL" in table[0] and table[1].rstrip().endswith("10 g") and table[2].rstrip().endswith("20 g")


def test_trend_of_a_project(store: Store) -> None:
    t = atlas_json("trend", "cli", collector=store.address)
    assert t["project"] == "cli" and t["run_count"] == 4
    assert [r["name"] for r in t["runs"]] == ["streamed", "baseline", "hot", "broken"]  # oldest start first
    assert [r["id"] for r in t["runs"]][1:3] == [store.runs["baseline"], store.runs["hot"]]
    text = atlas("trend", "cli", collector=store.address).stdout
    table = [line.split() for line in text.splitlines()]
    header = next(row for row in table if row and row[0] == "NAME")
    assert header[:3] == ["NAME", "ID", "STATUS"]
    assert [row[0] for row in table[table.index(header) + 1:]] == ["streamed", "baseline", "hot", "broken"]
    line = one_line_error(atlas("trend", "no-such-project", collector=store.address, check=False))
    assert "no-such-project" in line


def test_export_writes_events_and_scalars_then_diagnose_reads_them_offline(store: Store, tmp_path) -> None:
    out = tmp_path / "exp"
    summary = json.loads(atlas("export", "baseline", "-o", str(out), "--json", collector=store.address).stdout)
    assert summary["run"] == store.runs["baseline"] and summary["epochs"] == 3 and summary["steps"] == 48
    events = [json.loads(line) for line in (out / "events.jsonl").read_text().splitlines()]
    assert events[0]["type"] == "run" and events[0]["data"]["id"] == store.runs["baseline"]
    assert events[-1]["type"] == "end" and events[-1]["data"]["status"] == "completed"
    kinds = [e["type"] for e in events[2:-1]]
    assert kinds.count("step") == 48 and kinds.count("epoch") == 3
    # in order: each epoch summary follows its steps
    epoch_of = [(e["type"], e["data"].get("epoch", 0)) for e in events[2:-1]]
    assert [k for k in epoch_of if k[0] == "epoch"] == [("epoch", 0), ("epoch", 1), ("epoch", 2)]
    for i, (kind, ep) in enumerate(epoch_of):
        if kind == "step":
            assert ("epoch", ep) in epoch_of[i:]
    rows = list(csv.DictReader(open(out / "scalars.csv")))
    assert [int(r["epoch"]) for r in rows] == [0, 1, 2]
    assert float(rows[-1]["val_loss"]) == pytest.approx(store.val_loss["baseline"], rel=1e-6)

    # offline, without any collector
    done = atlas("diagnose", str(out), "--json", collector=f"127.0.0.1:{free_port()}")
    assert isinstance(json.loads(done.stdout), list)
    text = atlas("diagnose", str(out)).stdout
    assert f"run {store.runs['baseline']} (baseline), 3 epochs: health score" in text
    assert "grade" in text
    report = json.loads(atlas("diagnose", str(out), "--report").stdout)
    assert report["run"] == store.runs["baseline"] and 0 <= report["health_score"] <= 100
    assert report["sustainability"]["total_training_duration_seconds"] > 0

    line = one_line_error(atlas("diagnose", str(tmp_path), check=False))
    assert "no events.jsonl" in line
    (tmp_path / "a-file").write_text("")
    line = one_line_error(atlas("export", "baseline", "-o", str(tmp_path / "a-file" / "x"), collector=store.address,
                                check=False))
    assert "cannot write the export to" in line
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "events.jsonl").write_text('{"type": "run", "data": {}}\nnot json\n')
    assert "events.jsonl:2" in one_line_error(atlas("diagnose", str(tmp_path / "bad"), check=False))


@pytest.mark.parametrize("name", ["hot", "streamed"])
def test_offline_diagnosis_of_an_export_gives_the_collectors_issues(store: Store, tmp_path, name: str) -> None:
    atlas("export", name, "-o", str(tmp_path), collector=store.address)
    offline = json.loads(atlas("diagnose", str(tmp_path), "--json").stdout)
    online = atlas_json("issues", name, "--include-cleared", collector=store.address)
    key = lambda i: (i["rank"], i["check"], i["layer"], i["severity"], i["active"], i["first_seen_epoch"],  # noqa: E731
                     i["explains"])
    assert list(map(key, offline)) == list(map(key, online))  # the same issues in the same order (root cause first)
    assert offline, "the run has issues to compare"
    assert "the same issues as the collector" in atlas("diagnose", str(tmp_path)).stdout


@pytest.mark.parametrize("kind", ["stop", "pause"])
def test_control_refuses_a_run_that_has_ended(store: Store, kind: str) -> None:
    line = one_line_error(atlas(kind, "baseline", "--reason", "x", collector=store.address, check=False))
    assert f"{store.runs['baseline']} (baseline) has already ended (completed)" in line and kind in line


def test_runs_delete_asks_unless_yes(tmp_path) -> None:
    from conftest import start_collector_process

    from cli_support import stream_run

    proc = start_collector_process(f"sqlite:///{tmp_path / 'd.db'}")
    try:
        run_id = stream_run(proc.address, name="doomed")
        refused = atlas("runs", "delete", "doomed", collector=proc.address, input="n\n", check=False)
        assert refused.returncode == 1 and "Aborted" in refused.stderr
        assert len(atlas_json("runs", collector=proc.address)) == 1
        assert f"deleted run {run_id}" in atlas("runs", "delete", "doomed", "--yes", collector=proc.address).stdout
        assert atlas_json("runs", collector=proc.address) == []
    finally:
        proc.stop()


def test_a_collector_with_a_token_refuses_the_cli_without_it(tmp_path) -> None:
    from conftest import start_collector_process

    proc = start_collector_process(f"sqlite:///{tmp_path / 't.db'}", "--token", "s3cret")
    try:
        line = one_line_error(atlas("issues", "latest", collector=proc.address, check=False))
        assert proc.address in line and "token" in line and "ATLAS_TOKEN" in line
        assert "s3cret" not in line
        ok = atlas("--token", "s3cret", "runs", "--json", collector=proc.address)
        assert json.loads(ok.stdout) == []
        env_ok = atlas("runs", "--json", collector=proc.address, env=cli_env(ATLAS_TOKEN="s3cret"))
        assert json.loads(env_ok.stdout) == []
    finally:
        proc.stop()


def test_offline_diagnosis_applies_the_runs_threshold_overrides(store: Store, tmp_path) -> None:
    atlas("export", "hot", "-o", str(tmp_path), collector=store.address)
    path = tmp_path / "events.jsonl"
    lines = path.read_text().splitlines()
    before = {i["check"] for i in json.loads(atlas("diagnose", str(tmp_path), "--json").stdout)}
    assert "overfitting" in before
    run = json.loads(lines[0])
    run["data"]["thresholds"] = {"overfitting_epochs": 50.0}  # as protobuf Struct sends an integer
    path.write_text("\n".join([json.dumps(run)] + lines[1:]) + "\n")
    after = {i["check"] for i in json.loads(atlas("diagnose", str(tmp_path), "--json").stdout)}
    assert after == before - {"overfitting"}
    run["data"]["thresholds"] = {"no_such_threshold": 1}
    path.write_text("\n".join([json.dumps(run)] + lines[1:]) + "\n")
    assert "no_such_threshold" in one_line_error(atlas("diagnose", str(tmp_path), check=False))


def test_table_cells_from_a_trainer_are_printed_literally_not_as_rich_markup(monkeypatch, capsys) -> None:
    """A run named `[link=https://example.invalid]x` used to become a hyperlink in `atlas runs` on a terminal."""
    import sys

    from atlas_cli._app import render_table

    monkeypatch.setattr(sys.stdout, "isatty", lambda: True)
    monkeypatch.setenv("FORCE_COLOR", "1")
    name = "[link=https://example.invalid]x[/link] [bold red]loud"
    render_table([{"name": name, "status": "running"}], [("name", "NAME"), ("status", "STATUS")])
    out = capsys.readouterr().out
    assert "[link=https://example.invalid]x[/link]" in out and "[bold red]loud" in out
    assert "\x1b]8;" not in out  # no OSC 8 hyperlink


def test_every_atlas_command_a_diagnosis_suggests_parses_against_the_real_cli() -> None:
    """A fix that says `atlas logs RUN --level ERROR` when there is no `--level` does not work when followed
    (issue 17). Every `atlas ...` command quoted in a check's text must parse: click rejects an unknown option or
    command before `--help` is acted on."""
    import pathlib
    import re

    from click.testing import CliRunner

    from atlas_cli import _app
    import atlas_cli  # noqa: F401 - registers every command

    root = pathlib.Path(__file__).resolve().parents[2] / "atlas_diagnostics"
    quoted = sorted({m for f in root.glob("*.py") for m in re.findall(r"`atlas ([^`]+)`", f.read_text())})
    assert quoted, "no suggested command found: the pattern is stale"
    for command in quoted:
        args = [a.replace("RUN", "3f2a9c1b") for a in command.split()]
        done = CliRunner().invoke(_app.cli, [*args, "--help"])
        assert done.exit_code == 0, f"`atlas {command}` does not parse: {done.output}"
