"""The reliability figures: recorded only when asked, added up and judged by the summary."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from .. import figures


def test_nothing_is_written_without_the_variable(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv(figures.REPORT_ENV, raising=False)
    monkeypatch.chdir(tmp_path)
    figures.history("gc")
    assert figures.objects({"a": 1, "b": 2}, {"a": 1}, what="x") == 1
    assert list(tmp_path.iterdir()) == []


def test_records_add_up_to_the_summary(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    report = tmp_path / "figures.jsonl"
    monkeypatch.setenv(figures.REPORT_ENV, str(report))
    figures.history("gc")
    figures.history("gc")
    figures.history("restore")
    figures.record("faults", layer="http", requests=100, kinds={"reset": 2, "latency": 3})
    figures.record("faults", layer="http", requests=50, kinds={"reset": 1}, reruns=2)
    for command in figures.KILL_COMMANDS:
        figures.record("kills", command=command, runs=20, killed=19, mid_way=15, partial=9)
    figures.record("bad_input", case="x", exit=2)
    assert figures.objects({"a": 1, "b": 2, "c": 3}, {"a": 1, "b": 0, "d": 4}, what="t") == 2
    lines = report.read_text().splitlines()
    assert json.loads(lines[0])["test"].endswith("test_records_add_up_to_the_summary")

    summary = figures.Summary.read(lines)
    assert summary.histories == {"gc": 2, "restore": 1}
    assert summary.faults == {"http": {"reset": 3, "latency": 3}}
    assert summary.calls == {"http": 150}
    assert summary.kills["gc"] == {"runs": 20, "killed": 19, "mid_way": 15, "partial": 9}
    assert (summary.bad_inputs, summary.checks, summary.objects_checked) == (1, 1, 3)
    assert summary.objects_lost == 2
    assert summary.problems() == ["2 object(s) lost"]
    table = summary.table().splitlines()
    assert table[0] == "histories tried    3  restore 1 · gc 2"
    assert table[1] == "faults injected    6  http (150 calls): latency 3, reset 3"
    assert table[2] == "                      reruns needed: 2"
    assert table[3] == (
        "kills survived    76  sync: 19 of 20 runs killed, 15 mid-way, 9 leaving partial work"
    )
    assert table[6].strip().startswith("gc: 19 of 20")
    assert table[-1] == "objects lost       2  of 3 objects checked in 1 end-state checks"
    assert json.loads(json.dumps(summary.to_json()))["objects_lost"] == 2


def test_a_run_without_the_slow_tests_is_not_a_reliability_run() -> None:
    summary = figures.Summary.read([json.dumps({"kind": "history", "property": "gc"})])
    problems = " ".join(summary.problems())
    assert "sync, snapshot, restore, gc" in problems and "no faults" in problems
