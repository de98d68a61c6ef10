"""Accuracy on real runs: labelled faulty Lightning programs and healthy controls, each trained on the CPU with a
real AtlasCallback streaming over gRPC to a real collector, whose issues are read back through the query service.

Each fault must raise its labelled checks by its labelled epoch (a NaN: at the step of the first bad batch); no
healthy control may raise a critical issue. The last test reports recall, critical false positives and detection
delays, and writes them to the file named by ``ATLAS_FAULT_RESULTS`` when it is set (the committed figures:
``ATLAS_FAULT_RESULTS=benchmarks/results/fault_suite.json pytest tests/faults``).
"""
from __future__ import annotations

import json
import os
import pathlib
from typing import Iterator

import pytest

from atlas_collector import run_server
from _fault_harness import RunResult, critical, judge, probe, run_program, summarise
from _fault_programs import FAULTS, HEALTHY, Expect, Program

RESULTS = pathlib.Path(os.environ["ATLAS_FAULT_RESULTS"]) if os.environ.get("ATLAS_FAULT_RESULTS") else None
PROGRAMS = FAULTS + HEALTHY
_results: dict[str, RunResult] = {}


@pytest.fixture(scope="module")
def collector(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """One real collector (gRPC on loopback, SQLite file) for every program of the suite."""
    with run_server(db=f"sqlite:///{tmp_path_factory.mktemp('faults') / 'faults.db'}") as c:
        yield c.address


def result_of(collector: str, program: Program) -> RunResult:
    if program.name not in _results:
        _results[program.name] = run_program(collector, program)
    return _results[program.name]


def test_suite_is_labelled_as_the_issue_asks() -> None:
    assert len({p.name for p in PROGRAMS}) == len(PROGRAMS)
    assert len(FAULTS) + len(HEALTHY) >= 30 and len(FAULTS) >= 15 and len(HEALTHY) >= 8
    assert len({e.check for p in FAULTS for e in p.expect}) >= 12  # distinct faults, distinct symptoms


def test_judge_refuses_late_wrong_layer_and_wrong_step_detections() -> None:
    """The verdicts can fail: a late issue, one on another layer, a NaN named two batches late, no issue."""
    def labelled(*expect: Expect) -> Program:
        return Program("labelled", "-", FAULTS[0].build, 3, expect)

    late = labelled(Expect("memory_growth", onset=1, by_epoch=2))
    layer = labelled(Expect("dead_layers", onset=0, by_epoch=1, layer="fc1"))
    nan = labelled(Expect("nan_loss", onset=2, by_epoch=2, at_step=38))

    def verdict(program: Program, **issue: object) -> bool:
        issues = [dict(severity="warning", **issue)] if issue else []
        return judge(RunResult(program, "r", 0.0, issues, []))[0].detected

    assert verdict(late, check="memory_growth", first_seen_epoch=2)
    assert not verdict(late, check="memory_growth", first_seen_epoch=3)
    assert not verdict(late, check="memory_growth", first_seen_epoch=0)  # before the leak began: a false alarm
    assert not verdict(late)
    assert verdict(layer, check="dead_layers", first_seen_epoch=1, layer="fc1")
    assert not verdict(layer, check="dead_layers", first_seen_epoch=1, layer="fc2")
    assert verdict(nan, check="nan_loss", first_seen_epoch=2, step=39)
    assert not verdict(nan, check="nan_loss", first_seen_epoch=2, step=40)
    assert not verdict(nan, check="nan_loss", first_seen_epoch=2)  # an epoch-level NaN issue names no step


@pytest.mark.parametrize("program", FAULTS, ids=lambda p: p.name)
def test_fault_is_detected_in_time(collector: str, program: Program) -> None:
    result = result_of(collector, program)
    verdicts = judge(result)
    seen = sorted(f"{i['check']}@{i.get('first_seen_epoch')}" for i in result.issues)
    for v in verdicts:
        assert v.detected, f"{program.name}: {v.why}; issues raised: {seen}"


@pytest.mark.parametrize("program", [p for p in FAULTS if p.symptom is not None], ids=lambda p: p.name)
def test_the_fault_shows_its_symptom_without_atlas(program: Program) -> None:
    """The fault is real, not assumed: a plain run with the program's own recorder (no Atlas) shows the symptom a
    person would look for."""
    assert program.symptom is not None
    missing = program.symptom.shows(probe(program))
    assert missing is None, f"{program.name}: {program.symptom.text}: {missing}"


@pytest.mark.parametrize("program", [p for p in FAULTS if p.critical_ok is not None or p.not_raised],
                         ids=lambda p: p.name)
def test_a_fault_is_not_called_by_its_look_alikes(collector: str, program: Program) -> None:
    """Nothing critical that would stop the run for the wrong reason, and none of the fault's look-alikes (a
    training loss that rises with validation is not overfitting; an easy task is not leakage) at warning or above."""
    result = result_of(collector, program)
    if program.critical_ok is not None:
        wrong = [f"{i['check']}: {i['description']}" for i in critical(result) if i["check"] not in program.critical_ok]
        assert not wrong, f"{program.name} raised critical issues that are not its fault: {wrong}"
    look_alikes = [f"{i['check']} ({i['severity']}): {i['description']}" for i in result.issues
                   if i["check"] in program.not_raised and i["severity"] != "info"]
    assert not look_alikes, f"{program.name} was called what it is not: {look_alikes}"


# Timing checks judge the machine as much as the run: on this shared 2-core machine (load 5-8) a healthy run's
# epochs now and then slow down for two epochs running. They are reported, not held against a control.
MACHINE_LOAD_CHECKS = frozenset({"throughput_degradation", "slow_epoch", "step_time_outlier"})


@pytest.mark.parametrize("program", HEALTHY, ids=lambda p: p.name)
def test_healthy_control_has_no_critical_issue_and_one_warning_at_most(collector: str, program: Program) -> None:
    result = result_of(collector, program)
    assert result.error is None
    assert result.epochs and len(result.epochs) == program.epochs  # it really trained and was stored
    bad = [f"{i['check']}: {i['description']}" for i in critical(result)]
    assert not bad, f"{program.name} raised critical issues: {bad}"
    warnings = {i["check"] for i in result.issues if i["severity"] == "warning"} - MACHINE_LOAD_CHECKS
    assert len(warnings) <= 1, f"{program.name} raised {sorted(warnings)}"


def test_recall_false_positives_and_delay_are_reported(collector: str) -> None:
    results = [result_of(collector, p) for p in PROGRAMS]
    summary = summarise(results)
    if RESULTS is not None:
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        RESULTS.write_text(json.dumps(summary, indent=2) + "\n")
    lines = [f"recall {summary['recall']:.2f} ({summary['faults']} faults), critical false positives on "
             f"{summary['healthy_controls']} healthy controls: {summary['critical_false_positives']}, "
             f"max delay {summary['max_delay_epochs']} epoch(s), suite {summary['seconds']} s",
             f"root cause ranked first: {summary['root_first']}/{summary['faults']}"]
    for row in summary["fault_runs"]:
        lines.append(f"  {row['program']:28s} ranked first: {row['ranked_first']} "
                     f"({'root' if row['root_first'] else 'not ' + '/'.join(row['root'])})")
        for c in row["checks"]:
            lines.append(f"  {row['program']:28s} {c['check']:24s} onset {c['onset_epoch']} by {c['by_epoch']} "
                         f"seen {c['first_seen_epoch']} {'OK' if c['detected'] else 'MISSED'}")
    for row in summary["healthy_runs"]:
        lines.append(f"  {row['program']:28s} critical {row['critical']} warnings {row['warnings']} "
                     f"infos {row['infos']}")
    lines.append(f"  warnings per healthy run: {summary['warnings_per_healthy_run']:.2f}")
    print("\n".join(lines))
    assert summary["recall"] >= 0.95, lines
    assert summary["root_first_rate"] >= 0.8, lines  # issue 19: the root cause ranked first in 80 % or more
    assert summary["warnings_per_healthy_run"] <= 1.0, lines
    assert summary["critical_false_positives"] == 0, lines
    assert summary["max_delay_epochs"] is not None and summary["max_delay_epochs"] <= 1, lines
    nan_rows = [c for row in summary["fault_runs"] for c in row["checks"] if c["at_step"] is not None]
    assert nan_rows and all(c["delay_steps"] is not None and 0 <= c["delay_steps"] <= 1 for c in nan_rows)
