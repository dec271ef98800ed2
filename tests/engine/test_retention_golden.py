"""Golden files for the retention policy: tests/golden/retention/*.json.

Each file holds the input (snapshots, policy, now) and the expected decisions, newest first.
Regenerate the expectations with ``BMB_UPDATE_GOLDEN=1 pytest tests/engine`` and review the
diff by hand: the files are the specification.
"""

from __future__ import annotations

import json
import os
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from backup_my_bucket.engine.retention import (
    RetentionPolicy,
    SnapshotRef,
    apply_policy,
    policy_from_options,
)
from backup_my_bucket.errors import UsageError

GOLDEN = Path(__file__).parent.parent / "golden" / "retention"
CASES = sorted(GOLDEN.glob("*.json"))


def _evaluate(case: dict[str, Any]) -> list[dict[str, Any]]:
    snapshots = [SnapshotRef(s["id"], datetime.fromisoformat(s["at"])) for s in case["snapshots"]]
    policy = policy_from_options(**case["policy"])
    decisions = apply_policy(snapshots, policy, datetime.fromisoformat(case["now"]))
    return [{"id": d.snapshot.id, "keep": d.keep, "reasons": list(d.reasons)} for d in decisions]


def test_there_are_enough_golden_cases() -> None:
    assert len(CASES) >= 12


@pytest.mark.parametrize("path", CASES, ids=[p.stem for p in CASES])
def test_golden(path: Path) -> None:
    case = json.loads(path.read_text())
    got = _evaluate(case)
    if os.environ.get("BMB_UPDATE_GOLDEN"):
        case["expected"] = got
        path.write_text(json.dumps(case, indent=2) + "\n")
    assert got == case["expected"]


def test_empty_policy_is_refused_with_a_hint() -> None:
    with pytest.raises(UsageError) as info:
        apply_policy([], RetentionPolicy(min_keep=3), datetime.fromisoformat("2026-01-01T00:00Z"))
    assert info.value.hint is not None
    assert "--keep-last" in info.value.hint
    assert RetentionPolicy().is_empty
    assert RetentionPolicy(min_keep=5).is_empty
    assert not policy_from_options(pit_window="1h").is_empty


@pytest.mark.parametrize(
    "options",
    [{"keep_last": -1}, {"min_keep": -2}, {"keep_within": "0s"}, {"keep_daily": -1}],
)
def test_bad_options_are_usage_errors(options: dict[str, Any]) -> None:
    with pytest.raises(UsageError):
        policy_from_options(**options)


def test_durations_are_parsed() -> None:
    policy = policy_from_options(keep_within="1d12h", pit_window="2h", keep_daily=7)
    assert policy.keep_within is not None and policy.keep_within.total_seconds() == 36 * 3600
    assert policy.pit_window is not None and policy.pit_window.total_seconds() == 7200
    assert policy.keep_daily == 7


def test_naive_times_are_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        apply_policy(
            [SnapshotRef("a", datetime(2026, 1, 1))],  # noqa: DTZ001
            RetentionPolicy(keep_last=1),
            datetime.fromisoformat("2026-01-02T00:00Z"),
        )
