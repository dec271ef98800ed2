"""The reliability figures: what the reliability tests tried, for ``scripts/reliability``.

When ``BMB_RELIABILITY_REPORT`` names a file, each call below appends one JSON line to it
(``{"kind": ..., "test": <node id>, ...}``); without it they do nothing, so the tests behave as
they always did. Lines are short and appended with one ``write`` each (O_APPEND), so
concurrent writers cannot interleave them.

Kinds:
- ``history``: one Hypothesis example (a random history) a property test tried (``property``);
- ``faults``: faults injected in one test, by ``layer`` (storage, http) and ``kinds``;
- ``kills``: one command killed at random moments (``runs``, ``killed``, ``mid_way``) and then
  converged;
- ``bad_input``: one bad-input case that ended as documented;
- ``objects``: one end-state check: ``checked`` objects expected, ``lost`` of them missing or
  different (recorded before the test asserts, so a loss is counted even when it fails).
"""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

REPORT_ENV = "BMB_RELIABILITY_REPORT"


def enabled() -> bool:
    return bool(os.environ.get(REPORT_ENV))


def record(kind: str, **fields: Any) -> None:
    path = os.environ.get(REPORT_ENV)
    if not path:
        return
    test = os.environ.get("PYTEST_CURRENT_TEST", "").rsplit(" (", 1)[0]
    line = json.dumps({"kind": kind, "test": test, **fields}, sort_keys=True) + "\n"
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line.encode())
    finally:
        os.close(fd)


def history(prop: str) -> None:
    """One Hypothesis example of the ``prop`` property (snapshot, restore, gc) was tried."""
    record("history", property=prop)


def objects(expected: Mapping[Any, Any], actual: Mapping[Any, Any], *, what: str) -> int:
    """Record an end-state check and return how many expected objects ``actual`` lost: keys
    missing from it or with another value (extra keys are a failure too, but not a loss)."""
    lost = sum(1 for key, value in expected.items() if key not in actual or actual[key] != value)
    record("objects", what=what, checked=len(expected), lost=lost)
    return lost


# --- the summary scripts/reliability prints ------------------------------------------------

KILL_COMMANDS = ("sync", "snapshot", "restore", "gc")


@dataclass
class Summary:
    """The figures of one reliability run, added up from the report's lines."""

    histories: Counter[str] = field(default_factory=Counter)  # property → examples
    faults: dict[str, Counter[str]] = field(default_factory=dict)  # layer → kind → count
    calls: Counter[str] = field(default_factory=Counter)  # layer → calls/requests seen
    reruns: int = 0  # commands a user would have had to rerun because of the faults
    kills: dict[str, Counter[str]] = field(default_factory=dict)  # command → runs, killed, ...
    bad_inputs: int = 0
    checks: int = 0
    objects_checked: int = 0
    objects_lost: int = 0

    @classmethod
    def read(cls, lines: Iterable[str]) -> Summary:
        summary = cls()
        for line in lines:
            if not line.strip():
                continue
            rec = json.loads(line)
            kind = rec["kind"]
            if kind == "history":
                summary.histories[rec["property"]] += 1
            elif kind == "faults":
                summary.faults.setdefault(rec["layer"], Counter()).update(rec["kinds"])
                summary.calls[rec["layer"]] += rec["requests"]
                summary.reruns += rec.get("reruns", 0)
            elif kind == "kills":
                counts = summary.kills.setdefault(rec["command"], Counter())
                counts.update({k: rec[k] for k in ("runs", "killed", "mid_way", "partial")})
            elif kind == "bad_input":
                summary.bad_inputs += 1
            elif kind == "objects":
                summary.checks += 1
                summary.objects_checked += rec["checked"]
                summary.objects_lost += rec["lost"]
        return summary

    def problems(self) -> list[str]:
        """Why this run cannot stand as the reliability figures (empty: it can)."""
        found = []
        if self.objects_lost:
            found.append(f"{self.objects_lost} object(s) lost")
        missing = [c for c in KILL_COMMANDS if c not in self.kills]
        if missing:
            found.append(f"no kill figures for {', '.join(missing)} (were the slow tests run?)")
        if not self.histories:
            found.append("no histories were tried")
        if not self.faults:
            found.append("no faults were injected")
        return found

    def table(self) -> str:
        def n(value: int) -> str:
            return f"{value:,}"

        def kinds(counts: Counter[str]) -> str:
            return ", ".join(f"{kind} {n(c)}" for kind, c in sorted(counts.items()))

        order = {"snapshot": 0, "restore": 1, "gc": 2}
        histories = sorted(self.histories.items(), key=lambda item: order.get(item[0], 9))
        faults = [f"{layer} ({n(self.calls[layer])} calls): {kinds(counts)}"
                  for layer, counts in sorted(self.faults.items())]  # fmt: skip
        kills = [f"{cmd}: {n(k['killed'])} of {n(k['runs'])} runs killed, {n(k['mid_way'])} "
                 f"mid-way, {n(k['partial'])} leaving partial work"
                 for cmd in KILL_COMMANDS if (k := self.kills.get(cmd))]  # fmt: skip
        rows = [
            ("histories tried", sum(self.histories.values()),
             [" · ".join(f"{p} {n(c)}" for p, c in histories)]),
            ("faults injected", sum(map(sum, (c.values() for c in self.faults.values()))),
             [*faults, f"reruns needed: {n(self.reruns)}"]),
            ("kills survived", sum(k["killed"] for k in self.kills.values()), kills),
            ("bad inputs tried", self.bad_inputs,
             ["cases: exit code, message, no traceback, no bucket changed"]),
            ("objects lost", self.objects_lost,
             [f"of {n(self.objects_checked)} objects checked in {n(self.checks)} end-state "
              "checks"]),
        ]  # fmt: skip
        width = max(len(label) for label, _, _ in rows)
        count = max(len(n(value)) for _, value, _ in rows)
        lines = []
        for label, value, details in rows:
            for i, detail in enumerate(details or [""]):
                head = (
                    f"{label:<{width}}  {n(value):>{count}}"
                    if i == 0
                    else " " * (width + count + 2)
                )
                lines.append(f"{head}  {detail}".rstrip())
        return "\n".join(lines)

    def to_json(self) -> dict[str, Any]:
        return {
            "histories": dict(self.histories),
            "faults": {layer: dict(kinds) for layer, kinds in self.faults.items()},
            "calls": dict(self.calls),
            "reruns": self.reruns,
            "kills": {cmd: dict(k) for cmd, k in self.kills.items()},
            "bad_inputs": self.bad_inputs,
            "checks": self.checks,
            "objects_checked": self.objects_checked,
            "objects_lost": self.objects_lost,
        }
