"""Every command has --help text and a section in the user guide."""

from __future__ import annotations

from pathlib import Path

from backup_my_bucket.cli.main import cli

DOCS = Path(__file__).resolve().parents[2] / "docs"


def test_every_command_is_documented() -> None:
    guide = (DOCS / "user-guide.md").read_text()
    for name, command in cli.commands.items():
        assert command.help and len(command.help.strip()) > 20, f"{name} has no help text"
        assert f"\n### {name}\n" in guide, f"docs/user-guide.md has no section for {name}"
        assert f"`bmb {name}" in guide or name == "promote", f"no example of {name}"


def test_every_command_is_in_the_cli_contract() -> None:
    contract = (DOCS / "cli.md").read_text()
    for name in cli.commands:
        assert f"\n  {name} " in contract, f"docs/cli.md lacks {name}"
