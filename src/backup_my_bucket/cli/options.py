"""Option sets shared by several commands, and converters from text to our types."""

from __future__ import annotations

import os
import urllib.parse
from collections.abc import Callable
from typing import Any, TypeVar

import click

from ..errors import UsageError
from ..model import S3Url, folder
from ..units import parse_size
from .settings import check_executor

F = TypeVar("F", bound=Callable[..., Any])


class BadValue(click.BadParameter):
    """click's bad-parameter error with our hint (cli/main.py prints both, exit 2)."""

    def __init__(
        self,
        message: str,
        hint: str | None,
        param: click.Parameter | None = None,
        ctx: click.Context | None = None,
    ) -> None:
        super().__init__(message, ctx=ctx, param=param)
        self.hint = hint


def _where_from(param: click.Parameter | None, ctx: click.Context | None) -> str:
    """Where a bad value came from, when not the command line: a user who never typed it
    must learn where it is set."""
    if param is None or ctx is None or param.name is None:
        return ""
    source = ctx.get_parameter_source(param.name)
    if source is click.core.ParameterSource.ENVIRONMENT:
        envvar = param.envvar
        names = [envvar] if isinstance(envvar, str) else list(envvar or [])
        found = [str(n) for n in names if os.environ.get(str(n))] or [
            f"{ctx.auto_envvar_prefix}_{param.name.upper()}"
        ]
        return f" (from the environment: {found[0]})"
    if source is click.core.ParameterSource.DEFAULT_MAP:
        return " (from the config file)"
    return ""


class S3UrlType(click.ParamType):  # type: ignore[type-arg]  # generic only in click>=8.2
    name = "S3URL"

    def convert(
        self, value: Any, param: click.Parameter | None, ctx: click.Context | None
    ) -> S3Url:
        if isinstance(value, S3Url):
            return value
        try:
            return S3Url.parse(str(value))
        except UsageError as exc:
            raise BadValue(exc.message, exc.hint, param, ctx) from None


class SizeType(click.ParamType):  # type: ignore[type-arg]
    name = "SIZE"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> int:
        try:
            return parse_size(value)
        except UsageError as exc:
            raise BadValue(exc.message, exc.hint, param, ctx) from None


class EndpointType(click.ParamType):  # type: ignore[type-arg]
    """An S3 endpoint: ``http(s)://host[:port][/path]``. Checked here, so a missing scheme is
    a usage error naming the value and where it came from, not botocore's ValueError."""

    name = "URL"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> str:
        text = str(value).strip()
        where = _where_from(param, ctx)
        try:
            parts = urllib.parse.urlsplit(text)
            port_ok = parts.port is None or parts.port > 0
        except ValueError:
            parts, port_ok = urllib.parse.urlsplit(""), False
        if parts.scheme in ("http", "https") and parts.hostname and port_ok:
            return text
        if "://" not in text and text:
            hint = f"write the scheme too: http://{text} (or https://{text})"
        elif not port_ok:
            hint = "the port must be a number from 1 to 65535: http://127.0.0.1:9000"
        else:
            hint = "an endpoint looks like https://s3.eu-west-1.amazonaws.com or http://host:9000"
        raise BadValue(f"not an endpoint URL: {text!r}{where}", hint, param, ctx)


class ExecutorType(click.ParamType):  # type: ignore[type-arg]
    """``local`` or ``dask://HOST:PORT`` (engine/executor.py), checked before any command."""

    name = "EXECUTOR"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> str:
        try:
            return check_executor(str(value).strip())
        except UsageError as exc:
            raise BadValue(exc.message + _where_from(param, ctx), exc.hint, param, ctx) from None


class FolderType(click.ParamType):  # type: ignore[type-arg]
    """A relative prefix, read as a folder: ``docs`` means ``docs/`` (model.folder)."""

    name = "PREFIX"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> str:
        return folder(str(value))


S3URL = S3UrlType()
SIZE = SizeType()
ENDPOINT = EndpointType()
FOLDER = FolderType()
EXECUTOR = ExecutorType()


def _compose(*decorators: Callable[[F], F]) -> Callable[[F], F]:
    def apply(f: F) -> F:
        for decorator in reversed(decorators):
            f = decorator(f)
        return f

    return apply


def source_option(required: bool = True) -> Callable[[F], F]:
    return click.option(
        "--source",
        type=S3URL,
        required=required,
        help="The bucket to back up: s3://bucket[/folder] (s3://b/app1 means app1/).",
    )


def backup_option(required: bool = True) -> Callable[[F], F]:
    return click.option(
        "--backup",
        type=S3URL,
        required=required,
        help="The versioned backup bucket: s3://bucket[/folder].",
    )


dry_run_option = click.option(
    "--dry-run",
    is_flag=True,
    help="Print every planned copy and delete, then the totals; change nothing.",
)


def prefix_option(text: str) -> Callable[[F], F]:
    return click.option("--prefix", type=FOLDER, default="", help=text)


def yes_option(text: str) -> Callable[[F], F]:
    return click.option("--yes", is_flag=True, help=text)


filter_options = _compose(
    click.option(
        "--include", multiple=True, metavar="GLOB", help="Only keys matching GLOB (repeatable)."
    ),
    click.option(
        "--exclude", multiple=True, metavar="GLOB", help="Skip keys matching GLOB (repeatable)."
    ),
)

compare_tags_option = click.option(
    "--compare-tags",
    is_flag=True,
    help="Also compare the tags of every key whose content is unchanged (2 GetObjectTagging "
    "requests per key). Without it a change of tags alone goes unnoticed: it does not move "
    "LastModified. Changes of headers or metadata are noticed either way.",
)

sync_options = _compose(
    source_option(),
    backup_option(),
    dry_run_option,
    filter_options,
    click.option(
        "--multipart-threshold",
        type=SIZE,
        default="5GiB",
        show_default=True,
        help="Copy objects at least this large in parallel parts (UploadPartCopy).",
    ),
    compare_tags_option,
)

tag_option = click.option(
    "--tag", "tags", multiple=True, metavar="TEXT", help="A label (repeatable)."
)
snapshot_options = _compose(
    click.option(
        "--at",
        metavar="TIME",
        help="The instant to capture (ISO 8601 with a zone, or 2h, 3d ago); default: now.",
    ),
    tag_option,
)
