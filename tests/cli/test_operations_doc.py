"""docs/operations.md's worked example, run as written against the test server; its alert
rules name metrics that exist."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from backup_my_bucket.ops.history import History
from backup_my_bucket.ops.metrics import PlanMetrics
from backup_my_bucket.ops.plans import parse_plan
from backup_my_bucket.storage.protocol import ObjectStore

from ..conftest import Receiver, unique_bucket
from .conftest import bmb

DOC = Path(__file__).resolve().parents[2] / "docs" / "operations.md"


def block(text: str, heading: str, language: str) -> str:
    """The first ```language block after ``heading``."""
    section = text[text.index(heading) :]
    match = re.search(rf"```{language}\n(.*?)```", section, re.S)
    assert match, f"no {language} block after {heading}"
    return match.group(1)


@pytest.mark.s3
async def test_worked_example(
    cli_env: None,
    s3_store: ObjectStore,
    receiver: Receiver,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    text = DOC.read_text()
    config = block(text, "### Worked example", "toml")
    commands = [
        line.removeprefix("$ ")
        for line in block(text, "### Worked example", "console").splitlines()
        if line.startswith("$ bmb ")
    ]
    assert len(commands) >= 5
    # the doc's names, made unique for this server; the ping URL pointed at a local receiver
    names = {
        name: unique_bucket(name.split("-")[-1])
        for name in ("app-assets-backup", "app-assets", "app-logs-backup", "app-logs")
    }
    textfile = tmp_path / "textfile" / "bmb.prom"
    substitutions = {
        **{f"s3://{old}": f"s3://{new}" for old, new in names.items()},
        "https://hc-ping.com": receiver.url,
        "/var/lib/node_exporter/textfile/bmb.prom": str(textfile),
    }

    def localise(line: str) -> str:
        for old, new in substitutions.items():
            line = re.sub(re.escape(old) + r"(?![\w-])", new, line)
        return line

    for doc_name, bucket in names.items():
        await s3_store.create_bucket(bucket)
        if not doc_name.endswith("backup"):
            for i in range(12):
                await s3_store.put(bucket, f"tmp/{i}" if i > 9 else f"f/{i:03d}", b"x" * i)
    monkeypatch.chdir(tmp_path)
    Path("backup-my-bucket.toml").write_text(localise(config))
    for command in commands:
        code, out, err = await bmb(capsys, *shlex.split(localise(command))[1:])
        assert code == 0, f"{command}: {err}"
    # what the example promises: both plans ran; metrics for node_exporter; the pings
    code, out, _ = await bmb(capsys, "--json", "plan", "history", "logs")
    assert '"status": "ok"' in out and '"copied": 10' in out  # tmp/* excluded
    families = {f.name: f for f in text_string_to_metric_families(textfile.read_text())}
    (success,) = [
        s for s in families["bmb_plan_last_run_success"].samples if s.labels["plan"] == "assets"
    ]
    assert success.value == 1
    assert [r.path for r in receiver.requests] == [
        "/eb095278-f28d-448d-87fb-7b75c171a6aa/start",
        "/eb095278-f28d-448d-87fb-7b75c171a6aa",
    ]


def test_alert_rules_use_metrics_that_exist(tmp_path: Path) -> None:
    rules = block(DOC.read_text(), "Alert rules", "yaml")
    used = set(re.findall(r"\bbmb_plan_[a-z_]+", rules))
    assert used
    plan = parse_plan("p", {"source": "s3://a", "backup": "s3://b"})
    exposed = generate_latest(PlanMetrics([plan], History(tmp_path)).registry()).decode()
    names = set(re.findall(r"^# TYPE (\w+)", exposed, re.M))
    assert used <= names, used - names
