"""The demo (the README's first command) runs the whole story and verifies it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.s3


def test_demo_verifies_end_to_end(tmp_path: Path) -> None:
    done = subprocess.run(
        [Path(sys.executable).parent / "backup-my-bucket", "--json", "demo", "--objects", "30"],
        capture_output=True,
        text=True,
        timeout=240,
        env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "XDG_DATA_HOME": str(tmp_path / "d")},
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["verified"] is True
    assert report["objects"] == 30
    assert report["overwritten"] > 0 and report["deleted"] > 0
    assert report["restored"] == report["overwritten"] + report["deleted"]
    assert report["headers_and_tags_kept"] is True
    assert "Disaster" in done.stderr and "Traceback" not in done.stderr
