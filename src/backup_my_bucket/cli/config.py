"""The config file: TOML whose top-level keys are global options and whose tables are commands.

    # backup-my-bucket.toml
    endpoint-url = "http://127.0.0.1:8333"
    workers = 32
    [gc]
    keep-daily = 7
    min-keep = 3

Precedence, highest first: command-line flags, environment (``BMB_<OPTION>`` for global
options, ``BMB_<COMMAND>_<OPTION>`` for command options, AWS_ENDPOINT_URL for the endpoint),
the config file, built-in defaults.
"""

from __future__ import annotations

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


def load_config(explicit: str | None) -> tuple[Path | None, dict[str, Any]]:
    """Read the config file: the explicit one (which must exist) or the first default found."""
    if explicit is not None:
        path = Path(explicit)
        if not path.is_file():
            raise UsageError(f"config file not found: {path}")
        candidates = [path]
    else:
        candidates = [p for p in default_config_paths() if p.is_file()]
    if not candidates:
        return None, {}
    path = candidates[0]
    try:
        with path.open("rb") as f:
            raw = tomllib.load(f)
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise UsageError(f"cannot read config file {path}: {exc}") from exc
    return path, _normalise(raw)


def _normalise(raw: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in raw.items():
        name = key.replace("-", "_")
        out[name] = _normalise(value) if isinstance(value, Mapping) else value
    return out


def check_config(path: Path | None, config: Mapping[str, Any], group: click.Group) -> None:
    """Refuse unknown keys: a misspelt retention option must not be silently ignored."""
    global_names = {p.name for p in group.params if p.name}
    for key, value in config.items():
        if isinstance(value, Mapping):
            command = group.commands.get(key.replace("_", "-")) or group.commands.get(key)
            if command is None:
                raise UsageError(f"{path}: unknown command table [{key}]")
            names = {p.name for p in command.params if p.name}
            for option in value:
                if option not in names:
                    raise UsageError(
                        f"{path}: [{key}] has unknown option {option!r}",
                        hint=f"see `backup-my-bucket {key} --help`",
                    )
        elif key not in global_names or key == "config":
            raise UsageError(
                f"{path}: unknown global option {key!r}", hint="see `backup-my-bucket --help`"
            )
