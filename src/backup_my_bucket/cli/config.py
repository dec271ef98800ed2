"""The config file: TOML whose top-level keys are global options and whose tables are commands.

    # backup-my-bucket.toml
    endpoint-url = "http://127.0.0.1:8333"
    workers = 32
    [gc]
    keep-daily = 7
    min-keep = 3
    [plans.assets]                      # a backup plan (ops/plans.py): `bmb plan run assets`
    source = "s3://assets"
    backup = "s3://assets-backup"

Precedence, highest first: command-line flags, environment (``BMB_<OPTION>`` for global
options, ``BMB_<COMMAND>_<OPTION>`` for command options, AWS_ENDPOINT_URL for the endpoint),
the config file, built-in defaults.
"""

from __future__ import annotations

import difflib
import tomllib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import click
import platformdirs

from ..errors import UsageError

APP_NAME = "backup-my-bucket"
LOCAL_CONFIG = Path(f"{APP_NAME}.toml")


def default_config_paths() -> list[Path]:
    return [LOCAL_CONFIG, Path(platformdirs.user_config_dir(APP_NAME)) / "config.toml"]


def find_config_arg(argv: Sequence[str]) -> str | None:
    """The value of --config in argv (before the command is parsed), if any."""
    for i, arg in enumerate(argv):
        if arg == "--":
            break
        if arg == "--config" and i + 1 < len(argv):
            return argv[i + 1]
        if arg.startswith("--config="):
            return arg.split("=", 1)[1]
    return None


def config_in_use(explicit: str | None) -> Path | None:
    """The config file: the explicit one (which must exist) or the first default found."""
    if explicit is not None:
        path = Path(explicit)
        if not path.is_file():
            raise UsageError(f"config file not found: {path}")
        return path
    return next((p for p in default_config_paths() if p.is_file()), None)


def load_config(explicit: str | None) -> tuple[Path | None, dict[str, Any]]:
    """Read the config file (:func:`config_in_use`); none at all is an empty config."""
    path = config_in_use(explicit)
    if path is None:
        return None, {}
    try:
        with path.open("rb") as f:
            raw = tomllib.load(f)
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise UsageError(f"cannot read config file {path}: {exc}") from exc
    return path, _normalise(raw)


def _normalise(raw: Mapping[str, Any], top: bool = True) -> dict[str, Any]:
    """Keys with underscores (dashes work too); plan names stay as written."""
    out: dict[str, Any] = {}
    for key, value in raw.items():
        name = key.replace("-", "_")
        if top and name == "plans" and isinstance(value, Mapping):
            out[name] = {
                plan: _normalise(table, False) if isinstance(table, Mapping) else table
                for plan, table in value.items()
            }
        else:
            out[name] = _normalise(value, False) if isinstance(value, Mapping) else value
    return out


def _nearest(name: str, known: Sequence[str]) -> str | None:
    near = difflib.get_close_matches(name, list(known), n=1, cutoff=0.6)
    return f"did you mean {near[0].replace('_', '-')!r}?" if near else None


def _check_table(path: Path | None, where: str, table: Mapping[str, Any], command: Any) -> None:
    names = [p.name for p in command.params if p.name]
    subcommands = command.commands if isinstance(command, click.Group) else {}
    for option, value in table.items():
        sub = subcommands.get(option.replace("_", "-"))
        if sub is not None and isinstance(value, Mapping):
            _check_table(path, f"{where}.{option}", value, sub)
        elif option not in names:
            raise UsageError(
                f"{path}: [{where}] has unknown option {option!r}",
                hint=_nearest(option, names) or f"see `backup-my-bucket {where} --help`",
            )


def check_config(path: Path | None, config: Mapping[str, Any], group: click.Group) -> None:
    """Refuse unknown keys: a misspelt retention option must not be silently ignored.

    Tables are commands (``[gc]``; ``[plan.run]`` for a subcommand), except ``[plans.NAME]``:
    backup plans, checked key by key (ops/plans.py)."""
    global_names = [p.name for p in group.params if p.name and p.name != "config"]
    ctx = click.Context(group)
    for key, value in config.items():
        if key == "plans":
            from ..ops.plans import parse_plans  # the ops layer: only for a file that has plans

            try:
                parse_plans(value)
            except UsageError as exc:
                raise UsageError(f"{path}: {exc.message}", hint=exc.hint) from None
        elif isinstance(value, Mapping):
            command = group.get_command(ctx, key.replace("_", "-")) or group.get_command(ctx, key)
            if command is None:
                raise UsageError(
                    f"{path}: unknown command table [{key}]",
                    hint=_nearest(key, [*group.list_commands(ctx), "plans"]),
                )
            _check_table(path, key, value, command)
        elif key not in global_names:
            raise UsageError(
                f"{path}: unknown global option {key!r}",
                hint=_nearest(key, global_names) or "see `backup-my-bucket --help`",
            )


ENV_PREFIX = "BMB_"
NOT_OPTIONS = frozenset({"BMB_WEED", "BMB_RELIABILITY_REPORT", "BMB_UPDATE_GOLDEN"})
"""Our variables that are not options: the SeaweedFS binary (localserver.py), the test and
reliability tools'; plus every ``BMB_TEST_*`` and the variables hooks get (ops/hooks.py)."""


def _env_names(command: click.Command, prefix: str) -> list[str]:
    """The environment variables click reads for ``command``'s options (and its
    subcommands'), ``prefix`` being its auto-envvar prefix (``BMB_GC``)."""
    names: list[str] = []
    for param in command.params:
        if not isinstance(param, click.Option) or param.name is None:
            continue
        if param.envvar:
            names += [param.envvar] if isinstance(param.envvar, str) else list(param.envvar)
        else:
            names.append(f"{prefix}_{param.name.upper()}")
    if isinstance(command, click.Group):
        ctx = click.Context(command)
        for name in command.list_commands(ctx):
            sub = command.get_command(ctx, name)
            if sub is not None:
                names += _env_names(sub, f"{prefix}_{name.upper().replace('-', '_')}")
    return names


def check_environment(environ: Mapping[str, str], group: click.Group) -> list[str]:
    """A warning for each ``BMB_*`` variable that sets no option (a misspelt
    ``BMB_GC_KEEP_DAYLY`` would be ignored in silence), naming the nearest known one."""
    ours = [n for n in environ if n.startswith(ENV_PREFIX) and n not in NOT_OPTIONS]
    ours = [n for n in ours if not n.startswith("BMB_TEST_")]
    if not ours:
        return []
    known = set(_env_names(click.Group(params=group.params), "BMB"))
    unknown = [n for n in ours if n not in known]
    if not unknown:
        return []
    from ..ops.hooks import HOOK_VARIABLES  # a hook that runs bmb passes these on

    unknown = [n for n in unknown if n not in HOOK_VARIABLES]
    if unknown:  # only now: every command's options (each command's module imported)
        known.update(_env_names(group, "BMB"))
        unknown = [n for n in unknown if n not in known]
    warnings = []
    for name in sorted(unknown):
        near = difflib.get_close_matches(name, sorted(known), n=1, cutoff=0.6)
        hint = f": did you mean {near[0]}?" if near else " (see docs/cli.md, Configuration)"
        warnings.append(f"environment variable {name} sets no option and is ignored{hint}")
    return warnings
