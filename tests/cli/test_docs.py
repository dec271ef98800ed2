"""The docs say what the code does: every command has --help text and a user-guide section;
docs/cli.md names each command's options and no others; the README links the guides; the
JSON fields docs/cli.md lists are the ones the commands print (tests/cli/test_json_docs.py)."""

from __future__ import annotations

import importlib
import pkgutil
import re
from pathlib import Path

import click

from backup_my_bucket.cli import commands as commands_package
from backup_my_bucket.cli.main import COMMANDS, cli

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
OPTION = re.compile(r"(?<![\w-])--[a-z][a-z-]*[a-z]")


def commands(group: click.Group = cli, prefix: str = "") -> dict[str, click.Command]:
    """Every command by its path (``plan run``), subcommands included."""
    ctx = click.Context(group)
    found: dict[str, click.Command] = {}
    for name in group.list_commands(ctx):
        command = group.get_command(ctx, name)
        assert command is not None, name
        found[prefix + name] = command
        if isinstance(command, click.Group):
            found.update(commands(command, f"{prefix}{name} "))
    return found


def options(command: click.Command) -> set[str]:
    """The long options --help shows (hidden ones are not offered)."""
    return {
        name
        for param in command.params
        if isinstance(param, click.Option) and not param.hidden
        for name in (*param.opts, *param.secondary_opts)
        if name.startswith("--")
    }


def contract_block(title: str, end: str) -> str:
    text = (DOCS / "cli.md").read_text()
    start = text.index(f"\n{title}") + len(title) + 1
    return text[start : text.index(end, start)]


def entries() -> dict[str, str]:
    """docs/cli.md's COMMANDS block: each command path's lines (continuations included)."""
    block = contract_block("COMMANDS", "\nID is a snapshot id")
    known = commands()
    found: dict[str, str] = {}
    current = None
    for line in block.splitlines():
        head = re.match(r"^  ([a-z][a-z-]*)(?: ([a-z]+))?", line)
        if head and not line.startswith("   "):
            two = f"{head.group(1)} {head.group(2)}"
            current = two if two in known else head.group(1)
            found[current] = ""
        if current is not None:
            found[current] += line + "\n"
    return found


def test_every_command_is_documented() -> None:
    guide = (DOCS / "user-guide.md").read_text()
    for name, command in commands().items():
        assert command.help and len(command.help.strip()) > 20, f"{name} has no help text"
        if " " in name:
            continue  # subcommands: their group's section
        assert f"\n### {name}\n" in guide, f"docs/user-guide.md has no section for {name}"
        assert f"`bmb {name}" in guide or name == "promote", f"no example of {name}"


def test_every_command_is_in_the_cli_contract() -> None:
    documented = entries()
    for name in commands():
        if name != "plan":  # the group: its subcommands are the entries
            assert name in documented, f"docs/cli.md lacks {name}"


def test_each_command_lists_its_options_and_no_others() -> None:
    """`backup --help` once listed --at, which backup refuses: --help and docs/cli.md must
    name the same options, command by command."""
    known = commands()
    documented = entries()
    global_text = contract_block("GLOBAL OPTIONS", "\nCOMMANDS")
    everywhere = options(cli) | {"--help", "--version"}
    assert set(OPTION.findall(global_text)) == everywhere, "global options in docs/cli.md"
    group_options = options(known["plan"])
    for name, text in documented.items():
        command = known[name]
        allowed = options(command) | (group_options if name.startswith("plan ") else set())
        mentioned = set(OPTION.findall(text))
        assert options(command) <= mentioned, (name, options(command) - mentioned)
        assert mentioned <= allowed | everywhere, (name, mentioned - allowed)
    plan_text = "".join(t for n, t in documented.items() if n.startswith("plan "))
    assert group_options <= set(OPTION.findall(plan_text))


def test_hidden_options_are_not_offered() -> None:
    """backup refuses --at with a hint: it must not appear in its help."""
    backup = commands()["backup"]
    help_text = backup.get_help(click.Context(backup, info_name="backup"))
    assert "--at" not in help_text and "--tag" in help_text


def test_the_readme_links_the_guides() -> None:
    readme = (ROOT / "README.md").read_text()
    for doc in ("cli.md", "user-guide.md", "operations.md", "design.md"):
        assert f"](docs/{doc})" in readme, doc


def test_every_command_module_is_listed_with_its_own_summary() -> None:
    """The CLI imports a command's module when it runs (cli/lazy.py): a command in
    cli/commands/ that main.COMMANDS does not name would never run, and a summary that
    drifted from the command's help would show wrong in `bmb --help`."""
    defined: dict[str, tuple[str, click.Command]] = {}
    for info in pkgutil.iter_modules(commands_package.__path__):
        module = importlib.import_module(f"{commands_package.__name__}.{info.name}")
        for command in getattr(module, "COMMANDS", []):
            defined[command.name] = (info.name, command)
    assert set(defined) == set(COMMANDS)
    for name, (module, command) in defined.items():
        assert COMMANDS[name] == (module, command.get_short_help_str(limit=10_000)), name
